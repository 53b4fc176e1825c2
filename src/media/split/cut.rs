//! Cutting the input into the parts' sources by stream copy, in one pass over its packets.
//! A part's source starts at its cut keyframe and holds every packet needed to decode every
//! frame of its range: with open GOPs the frames just before a cut are B-frames that come
//! after the next part's keyframe in decode order and refer to it, so a source runs on past
//! its range's end through that keyframe and those leading frames; the next part leaves them
//! out (they are not its frames and cannot be decoded without what precedes them). The
//! non-video streams the output carries go, whole, to `src/rest.nut`.

use std::path::{Path, PathBuf};

use ff::Rescale;
use ffmpeg_next as ff;

use super::{Layout, SOURCE_SHIFT_US, publish, rest_path, source_path, staging};
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::input::{self, Input};
use crate::stop::StopToken;

const MICROS: ff::Rational = ff::Rational(1, 1_000_000);

/// Writes `dir/src/{seq}.nut` per video part and `dir/src/rest.nut` (the non-video streams)
/// if the output carries any; returns their paths, the parts' in order, then the rest.
pub fn cut(
    input: &Path,
    layout: &Layout,
    dir: &Path,
    stop: &StopToken,
) -> Result<Vec<PathBuf>, MediaError> {
    let cut = cut_into(input, layout, dir, stop);
    if cut.is_err() {
        // A stop or failure leaves no partly written source behind.
        for seq in 0..layout.ranges.len() {
            let _ = std::fs::remove_file(staging(&source_path(dir, seq)));
        }
        let _ = std::fs::remove_file(staging(&rest_path(dir)));
    }
    cut
}

fn cut_into(
    input: &Path,
    layout: &Layout,
    dir: &Path,
    stop: &StopToken,
) -> Result<Vec<PathBuf>, MediaError> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| MediaError::io(&src, e))?;
    let mut input = input::open(input, stop)?;
    let video = layout.plan.video_input();
    let start_offset_us = layout.plan.start_offset_us();
    let shifts: Vec<i64> = input
        .ctx
        .streams()
        .map(|s| shift_ticks(start_offset_us, s.time_base()))
        .collect();
    let mut parts: Vec<Part> = (0..layout.ranges.len())
        .map(|seq| Part::new(layout, seq, source_path(dir, seq)))
        .collect();
    let mut rest = match layout.rest_streams.is_empty() {
        true => None,
        false => Some(Writer::open(&input, &layout.rest_streams, rest_path(dir))?),
    };
    read_packets(&mut input, stop, |input, packet| {
        let index = packet.stream();
        let shifted = shifted(packet, shifts[index]);
        if index == video {
            let tb = input.ctx.stream(index).map_or(MICROS, |s| s.time_base());
            let t = packet.pts().or(packet.dts()).map(|t| t.rescale(tb, MICROS));
            for part in &mut parts {
                part.offer(input, &shifted, t, packet.is_key())?;
            }
            Ok(())
        } else if let Some(rest) = rest.as_mut() {
            rest.write(shifted)
        } else {
            Ok(())
        }
    })?;
    let mut written = Vec::new();
    for part in parts {
        written.push(part.finish()?);
    }
    if let Some(rest) = rest {
        written.push(rest.finish()?);
    }
    Ok(written)
}

/// Reads every packet of `input`, handing each to `take`, until its end or a stop.
fn read_packets(
    input: &mut Input,
    stop: &StopToken,
    mut take: impl FnMut(&Input, &ff::Packet) -> Result<(), MediaError>,
) -> Result<(), MediaError> {
    let mut packet = ff::Packet::empty();
    loop {
        if stop.is_stopped() {
            return Err(MediaError::Stopped);
        }
        let mark = ffi::log_mark();
        match packet.read(&mut input.ctx) {
            Ok(()) => take(input, &packet)?,
            Err(ff::Error::Eof) => return Ok(()),
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => {}
            Err(e) => {
                return Err(MediaError::Demux {
                    path: input.path.clone(),
                    reason: with_detail(&e, ffi::errors_since(mark)),
                });
            }
        }
    }
}

/// How far a stream's timestamps move in the sources (its time base): later by the source
/// shift, earlier by the input's start offset — each rescaled on its own, so that a reader
/// taking the shift off again lands exactly where `transcode` puts the packet.
fn shift_ticks(start_offset_us: i64, tb: ff::Rational) -> i64 {
    SOURCE_SHIFT_US.rescale(MICROS, tb) - start_offset_us.rescale(MICROS, tb)
}

fn shifted(packet: &ff::Packet, ticks: i64) -> ff::Packet {
    let mut p = ffi::packet_ref(packet);
    p.set_pts(packet.pts().map(|t| t + ticks));
    p.set_dts(packet.dts().map(|t| t + ticks));
    p.set_position(-1);
    p
}

/// Where a part's source stands in the pass over the input.
#[derive(PartialEq)]
enum Stage {
    /// Before its keyframe.
    Waiting,
    /// From its keyframe on, until the next part's keyframe.
    Open,
    /// Past the next part's keyframe: only the leading frames still in its range.
    Tail,
    Closed,
}

/// One part's source being written.
struct Part {
    seq: usize,
    /// Its range, µs of the input's timeline (the first from the start, the last to the end).
    from: i64,
    until: i64,
    path: PathBuf,
    stage: Stage,
    writer: Option<Writer>,
}

impl Part {
    fn new(layout: &Layout, seq: usize, path: PathBuf) -> Part {
        let (from, until) = layout.keep_us(seq);
        Part {
            seq,
            from,
            until,
            path,
            stage: Stage::Waiting,
            writer: None,
        }
    }

    /// Takes the video packet at `t` (µs, None when it has no timestamp) if this part's
    /// source needs it.
    fn offer(
        &mut self,
        input: &Input,
        packet: &ff::Packet,
        t: Option<i64>,
        key: bool,
    ) -> Result<(), MediaError> {
        let t = t.unwrap_or(i64::MIN);
        let keep = match self.stage {
            Stage::Waiting if self.seq == 0 || (key && t >= self.from) => {
                let streams = [packet.stream()];
                self.writer = Some(Writer::open(input, &streams, self.path.clone())?);
                self.stage = Stage::Open;
                true
            }
            Stage::Waiting | Stage::Closed => false,
            Stage::Open if key && t >= self.until => {
                self.stage = Stage::Tail;
                true
            }
            // Leading frames of this part's keyframe belong to the part before.
            Stage::Open => t >= self.from,
            Stage::Tail if t < self.until => true,
            Stage::Tail => {
                self.stage = Stage::Closed;
                false
            }
        };
        match (keep, self.writer.as_mut()) {
            (true, Some(w)) => w.write(ffi::packet_ref(packet)),
            _ => Ok(()),
        }
    }

    fn finish(self) -> Result<PathBuf, MediaError> {
        match self.writer {
            Some(w) => w.finish(),
            None => Err(MediaError::Part {
                path: self.path,
                reason: format!(
                    "the input has no keyframe at {:.3} s, where part {} starts",
                    self.from as f64 / 1e6,
                    self.seq
                ),
            }),
        }
    }
}

/// A NUT file receiving copies of some of the input's streams.
struct Writer {
    octx: ff::format::context::Output,
    /// Per input stream: its index in this file and both time bases.
    map: Vec<Option<(usize, ff::Rational, ff::Rational)>>,
    staged: PathBuf,
    path: PathBuf,
}

impl Writer {
    fn open(input: &Input, streams: &[usize], path: PathBuf) -> Result<Writer, MediaError> {
        let staged = staging(&path);
        let name = crate::media::utf8_path(&staged)?;
        let mark = ffi::log_mark();
        let mut octx = ffi::open_output(name, "nut").map_err(|e| mux_error(&path, e, mark))?;
        let mut map = vec![None; input.ctx.nb_streams() as usize];
        for (out, &index) in streams.iter().enumerate() {
            let Some(ist) = input.ctx.stream(index) else {
                continue;
            };
            let mut ost = octx
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(|e| mux_error(&path, e, mark))?;
            let mut params = ist.parameters();
            ffi::reset_codec_tag(&mut params);
            ost.set_parameters(params);
            ost.set_time_base(ist.time_base());
            ost.set_metadata(ist.metadata().to_owned());
            map[index] = Some((out, ist.time_base(), ist.time_base()));
        }
        octx.write_header().map_err(|e| mux_error(&path, e, mark))?;
        for (index, entry) in map.iter_mut().enumerate() {
            if let Some((out, _, out_tb)) = entry
                && let Some(st) = octx.stream(*out)
            {
                *out_tb = st.time_base();
                tracing::trace!("cut: stream {index} as {out}, time base {out_tb}");
            }
        }
        Ok(Writer {
            octx,
            map,
            staged,
            path,
        })
    }

    fn write(&mut self, mut packet: ff::Packet) -> Result<(), MediaError> {
        let Some(Some((out, in_tb, out_tb))) = self.map.get(packet.stream()).copied() else {
            return Ok(());
        };
        packet.rescale_ts(in_tb, out_tb);
        packet.set_stream(out);
        let mark = ffi::log_mark();
        packet
            .write_interleaved(&mut self.octx)
            .map_err(|e| mux_error(&self.path, e, mark))
    }

    fn finish(mut self) -> Result<PathBuf, MediaError> {
        let mark = ffi::log_mark();
        self.octx
            .write_trailer()
            .map_err(|e| mux_error(&self.path, e, mark))?;
        drop(self.octx);
        publish(&self.staged, &self.path)?;
        Ok(self.path)
    }
}

fn mux_error(path: &Path, e: ff::Error, mark: u64) -> MediaError {
    MediaError::Mux {
        path: path.to_path_buf(),
        reason: with_detail(&e, ffi::errors_since(mark)),
    }
}
