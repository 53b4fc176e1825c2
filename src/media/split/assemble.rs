//! Assembling a split job: every output file of the plan written by the same muxer threads,
//! staging and publication `transcode` uses (mp4 fast start, WebM/Matroska, HLS segments and
//! variant playlists with the master last). Its video is the parts' bitstreams one after the
//! other, packets copied (no re-encode), checked to join with strictly increasing timestamps,
//! interleaved by time with the audio part's streams.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Sender, bounded};
use ffmpeg_next as ff;

use super::{Layout, SOURCE_SHIFT_US, audio_file, video_file};
use crate::media::error::MediaError;
use crate::media::ffi;
use crate::media::hdr::HdrMetadata;
use crate::media::input::{self, Input};
use crate::media::output;
use crate::media::pipeline::mux::{self, MuxMsg, StreamSetup, StreamSummary};
use crate::media::pipeline::{self, Shared, TranscodeReport, Written};
use crate::media::plan::{Plan, VideoWork};
use crate::media::verify::{self, Expect};
use crate::preset::{Container, Preset};
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;

/// Joins the parts' outputs (part_dirs[seq]) and the audio into output_dir, as transcode
/// would have written them (`stem.ext`, or the HLS tree), outputs in publication order
/// (playlists last: variant playlists, then the master).
pub fn assemble(
    layout: &Layout,
    preset: &Preset,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
    output: &Path,
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<TranscodeReport, MediaError> {
    if layout.segment_us.is_some() {
        return super::hls::assemble_here(layout, preset, part_dirs, audio_dir, output);
    }
    let started = Instant::now();
    let frames = super::check_pieces(layout, preset, part_dirs, audio_dir)?;
    let plan = layout.plan.restore(preset)?;
    let sources = sources(&plan, preset, part_dirs, audio_dir)?;
    let staged = output::Layout::new(output, preset, &plan.renditions())?;
    let top = staged.top_path();
    let shared = Shared::new(stop, &plan, 0);
    let summaries = join(&shared, &plan, &staged, &sources, progress);
    if let Err(e) = pipeline::outcome(&shared, &plan, output, &summaries, ffi::log_mark()) {
        staged.discard();
        return Err(e);
    }
    progress(&shared.meter.snapshot(Phase::Finalizing));
    let outputs = pipeline::finalise_outputs(staged, &summaries, preset, &[], &[])?;
    // The joined output is read back as a whole transcode's is: the parts' joins are where a
    // lost frame or a gap would show.
    let (video, audio) = plan.carries(0, &layout.input);
    let expect = Expect::of(&layout.input, video, audio, plan.duration_trusted);
    let check = verify::check(preset.container, &top, &expect).inspect_err(|_| {
        for f in &outputs {
            let _ = std::fs::remove_file(&f.path);
        }
    })?;
    let done = shared.meter.snapshot(Phase::Done);
    progress(&done);
    Ok(TranscodeReport {
        outputs,
        checks: vec![check],
        input_damage: 0,
        input: layout.input.clone(),
        frames,
        out_time_seconds: done.out_time_seconds,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What one output file is made of.
struct Sources {
    /// The parts' video, in order, and the slot it fills.
    video: Vec<PathBuf>,
    video_slot: usize,
    frame_rate: Option<ff::Rational>,
    hvc1: bool,
    /// The audio part's file and the slots its streams fill, in order.
    other: Option<(PathBuf, Vec<usize>)>,
}

fn sources(
    plan: &Plan,
    preset: &Preset,
    part_dirs: &[PathBuf],
    audio_dir: Option<&Path>,
) -> Result<Vec<Sources>, MediaError> {
    let Some(VideoWork::Encode {
        renditions,
        frame_rate,
        ..
    }) = plan.video.as_ref().map(|v| &v.work)
    else {
        return Err(MediaError::Internal("a split plan without video".into()));
    };
    let mp4 = matches!(preset.container, Container::Mp4 | Container::Mov);
    let hevc = matches!(
        renditions.first().map(|r| r.spec.codec),
        Some(crate::preset::VideoCodec::Hevc)
    );
    let mut all = Vec::new();
    for (o, out) in plan.outputs.iter().enumerate() {
        let Some(r) = renditions.iter().find(|r| r.target.output == o) else {
            return Err(MediaError::Internal(format!("output {o} has no video")));
        };
        let other_slots: Vec<usize> = (0..out.slots.len())
            .filter(|&s| s != r.target.slot)
            .collect();
        let other = match (audio_dir, other_slots.is_empty()) {
            (Some(dir), false) => Some((existing(audio_file(dir, o))?, other_slots)),
            _ => None,
        };
        let video = part_dirs
            .iter()
            .map(|d| existing(video_file(d, o)))
            .collect::<Result<Vec<_>, _>>()?;
        all.push(Sources {
            video,
            video_slot: r.target.slot,
            frame_rate: r.grid.or(*frame_rate),
            hvc1: mp4 && hevc,
            other,
        });
    }
    Ok(all)
}

fn existing(path: PathBuf) -> Result<PathBuf, MediaError> {
    if path.is_file() {
        return Ok(path);
    }
    Err(MediaError::Part {
        path,
        reason: "missing: the piece that writes it has not finished here".into(),
    })
}

/// Runs a muxer thread and a feeding thread per output file; returns what each muxer wrote.
fn join(
    shared: &Shared,
    plan: &Plan,
    staged: &output::Layout,
    sources: &[Sources],
    progress: &mut dyn FnMut(&Progress),
) -> Vec<Written> {
    std::thread::scope(|s| {
        let mut muxers = Vec::new();
        let mut feeders = Vec::new();
        for (o, src) in sources.iter().enumerate() {
            let (tx, rx) = bounded::<MuxMsg>(256);
            let target = &staged.targets[o];
            let slots = &plan.outputs[o].slots;
            muxers.push(pipeline::spawn(s, format!("ffarm-mux-{o}"), move || {
                shared.guard("mux", || mux::run(shared, o, target, slots, rx))
            }));
            feeders.push(pipeline::spawn(s, format!("ffarm-join-{o}"), move || {
                shared.guard("join", || feed(shared, o, src, tx));
            }));
        }
        pipeline::watch(shared, &feeders, &muxers, progress);
        for h in feeders {
            let _ = h.join();
        }
        muxers
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// Feeds output file `output`'s muxer: its streams, then their packets in time order.
fn feed(
    shared: &Shared,
    output: usize,
    src: &Sources,
    tx: Sender<MuxMsg>,
) -> Result<(), MediaError> {
    let stop = shared.stop_token();
    let mut video = PartChain::new(&src.video, src.frame_rate, stop)?;
    announce_video(&video, src, &tx)?;
    let mut other = match &src.other {
        Some((path, slots)) => Some(Other::open(path, slots, stop, &tx)?),
        None => None,
    };
    let mut next_video = video.next()?;
    let mut next_other = match other.as_mut() {
        Some(o) => o.next()?,
        None => None,
    };
    loop {
        if shared.aborted() {
            return Ok(());
        }
        let take_video = match (&next_video, &next_other) {
            (Some(v), Some((_, o))) => seconds(v) <= seconds(o),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (slot, (packet, time_base)) = if take_video {
            let v = next_video.take().expect("checked above");
            next_video = video.next()?;
            if output == 0 {
                shared.meter.frames.fetch_add(1, Ordering::Relaxed);
            }
            (src.video_slot, v)
        } else {
            let (slot, o) = next_other.take().expect("checked above");
            next_other = other.as_mut().map_or(Ok(None), |o| o.next())?;
            (slot, o)
        };
        let msg = MuxMsg::Packet {
            slot,
            packet,
            time_base,
        };
        if tx.send(msg).is_err() {
            return Ok(());
        }
    }
    let all = std::iter::once(src.video_slot).chain(src.other.iter().flat_map(|(_, s)| s.clone()));
    for slot in all {
        let _ = tx.send(MuxMsg::End { slot });
    }
    Ok(())
}

/// A packet with the time base of its timestamps.
type Timed = (ff::Packet, ff::Rational);

/// A packet's decode time in seconds, for interleaving.
fn seconds((packet, tb): &Timed) -> f64 {
    packet.dts().or(packet.pts()).unwrap_or(0) as f64 * f64::from(*tb)
}

/// Announces the video stream, from the first part's file.
fn announce_video(video: &PartChain, src: &Sources, tx: &Sender<MuxMsg>) -> Result<(), MediaError> {
    let stream = video.stream()?;
    let facts = ffi::stream_facts(&stream);
    let mut params = stream.parameters();
    ffi::reset_codec_tag(&mut params);
    let setup = StreamSetup {
        params,
        time_base: stream.time_base(),
        frame_rate: src.frame_rate,
        display_matrix: None,
        hdr: HdrMetadata::default(),
        hvc1: src.hvc1,
        summary: StreamSummary {
            codec_string: None,
            width: facts.width,
            height: facts.height,
            frame_rate: src.frame_rate.map(f64::from),
            channels: None,
        },
    };
    let _ = tx.send(MuxMsg::Stream {
        slot: src.video_slot,
        setup: Box::new(setup),
    });
    Ok(())
}

/// The parts' video files read one after the other, timestamps back on the output's
/// timeline, checked to join cleanly: each starts with a keyframe after the previous part's
/// last frame, and decode timestamps rise strictly across the join.
struct PartChain<'a> {
    files: &'a [PathBuf],
    stop: &'a StopToken,
    frame_rate: Option<ff::Rational>,
    current: Input,
    index: usize,
    time_base: ff::Rational,
    /// The packets read ahead at the start of a part, ready to go.
    ahead: VecDeque<ff::Packet>,
    /// The latest presentation and decode times given (seconds).
    last_pts: Option<f64>,
    last_dts: Option<f64>,
}

impl<'a> PartChain<'a> {
    fn new(
        files: &'a [PathBuf],
        frame_rate: Option<ff::Rational>,
        stop: &'a StopToken,
    ) -> Result<Self, MediaError> {
        let first = files
            .first()
            .ok_or_else(|| MediaError::Internal("no parts".into()))?;
        let mut chain = PartChain {
            files,
            stop,
            frame_rate,
            current: open_part(first, stop)?,
            index: 0,
            time_base: ff::Rational::new(1, 1),
            ahead: VecDeque::new(),
            last_pts: None,
            last_dts: None,
        };
        chain.start_part()?;
        Ok(chain)
    }

    fn stream(&self) -> Result<ff::format::stream::Stream<'_>, MediaError> {
        self.current.ctx.stream(0).ok_or_else(|| MediaError::Part {
            path: self.current.path.clone(),
            reason: "it holds no stream".into(),
        })
    }

    /// The next packet of the parts, with its time base; None after the last part.
    fn next(&mut self) -> Result<Option<Timed>, MediaError> {
        loop {
            let packet = match self.ahead.pop_front() {
                Some(p) => Some(p),
                None => read(&mut self.current)?.map(|p| unshift(p, self.time_base)),
            };
            let Some(packet) = packet else {
                self.index += 1;
                let Some(path) = self.files.get(self.index) else {
                    return Ok(None);
                };
                self.current = open_part(path, self.stop)?;
                self.start_part()?;
                continue;
            };
            self.check_order(&packet)?;
            return Ok(Some((packet, self.time_base)));
        }
    }

    /// Reads a new part's first packets: NUT records presentation times only, and its reader
    /// derives decode times once it has seen the B-frame delay, so the first few come without
    /// one. They get the encoder's own: a frame apart, ending before the first one derived.
    fn start_part(&mut self) -> Result<(), MediaError> {
        self.time_base = self.stream()?.time_base();
        while self.ahead.len() < 64 {
            let Some(p) = read(&mut self.current)? else {
                break;
            };
            let has_dts = p.dts().is_some();
            self.ahead.push_back(unshift(p, self.time_base));
            if has_dts {
                break;
            }
        }
        let Some(first) = self.ahead.front() else {
            return Err(self.join_error("it holds no packet"));
        };
        let first_pts = first.pts().unwrap_or(0);
        if !first.is_key() {
            return Err(self.join_error("it does not start with a keyframe"));
        }
        let step = self.frame_ticks();
        let missing = self.ahead.iter().take_while(|p| p.dts().is_none()).count() as i64;
        for (k, p) in self.ahead.iter_mut().enumerate() {
            if p.dts().is_none() {
                let dts = first_pts - (missing - k as i64) * step;
                p.set_dts(Some(dts.min(p.pts().unwrap_or(dts))));
            }
        }
        let start = first_pts as f64 * f64::from(self.time_base);
        if self.last_pts.is_some_and(|last| start <= last) {
            return Err(self.join_error("it starts before the previous part's last frame"));
        }
        Ok(())
    }

    /// One frame period in the current time base (at least one tick).
    fn frame_ticks(&self) -> i64 {
        use ff::Rescale;
        self.frame_rate
            .filter(|r| r.numerator() > 0 && r.denominator() > 0)
            .map_or(1, |r| 1i64.rescale(r.invert(), self.time_base))
            .max(1)
    }

    fn check_order(&mut self, packet: &ff::Packet) -> Result<(), MediaError> {
        let tb = f64::from(self.time_base);
        let dts = packet.dts().map(|d| d as f64 * tb);
        if let (Some(d), Some(last)) = (dts, self.last_dts)
            && d <= last
        {
            return Err(self.join_error("its decode times run back into the previous part's"));
        }
        if let Some(p) = packet.pts() {
            let p = p as f64 * tb;
            self.last_pts = Some(self.last_pts.map_or(p, |l| l.max(p)));
        }
        self.last_dts = dts.or(self.last_dts);
        Ok(())
    }

    fn join_error(&self, what: &str) -> MediaError {
        MediaError::Part {
            path: self.current.path.clone(),
            reason: format!("part {} cannot be joined: {what}", self.index),
        }
    }
}

/// A piece's packet back on the output's timeline (the pieces are written shifted later).
fn unshift(mut packet: ff::Packet, tb: ff::Rational) -> ff::Packet {
    use ff::Rescale;
    let ticks = SOURCE_SHIFT_US.rescale(ff::Rational::new(1, 1_000_000), tb);
    packet.set_pts(packet.pts().map(|t| t - ticks));
    packet.set_dts(packet.dts().map(|t| t - ticks));
    packet
}

fn open_part(path: &Path, stop: &StopToken) -> Result<Input, MediaError> {
    let input = input::open(path, stop)?;
    if input.ctx.nb_streams() != 1 {
        return Err(MediaError::Part {
            path: path.to_path_buf(),
            reason: "a part's video file holds exactly one stream".into(),
        });
    }
    Ok(input)
}

/// The next packet of `input`, or None at its end.
fn read(input: &mut Input) -> Result<Option<ff::Packet>, MediaError> {
    let mut packet = ff::Packet::empty();
    loop {
        let mark = ffi::log_mark();
        match packet.read(&mut input.ctx) {
            Ok(()) => return Ok(Some(packet)),
            Err(ff::Error::Eof) => return Ok(None),
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => {}
            Err(e) => {
                return Err(MediaError::Demux {
                    path: input.path.clone(),
                    reason: crate::media::error::with_detail(&e, ffi::errors_since(mark)),
                });
            }
        }
    }
}

/// The audio part's file: its streams fill the output's other slots, in order.
struct Other {
    input: Input,
    slots: Vec<usize>,
    time_bases: Vec<ff::Rational>,
}

impl Other {
    fn open(
        path: &Path,
        slots: &[usize],
        stop: &StopToken,
        tx: &Sender<MuxMsg>,
    ) -> Result<Other, MediaError> {
        let input = input::open(path, stop)?;
        if input.ctx.nb_streams() as usize != slots.len() {
            return Err(MediaError::Part {
                path: path.to_path_buf(),
                reason: format!(
                    "it holds {} streams where the output has {} besides video",
                    input.ctx.nb_streams(),
                    slots.len()
                ),
            });
        }
        for (stream, &slot) in input.ctx.streams().zip(slots) {
            let mut params = stream.parameters();
            ffi::reset_codec_tag(&mut params);
            let setup = StreamSetup {
                params,
                time_base: stream.time_base(),
                frame_rate: None,
                display_matrix: None,
                hdr: HdrMetadata::default(),
                hvc1: false,
                summary: StreamSummary::default(),
            };
            let _ = tx.send(MuxMsg::Stream {
                slot,
                setup: Box::new(setup),
            });
        }
        let time_bases = input.ctx.streams().map(|s| s.time_base()).collect();
        Ok(Other {
            input,
            slots: slots.to_vec(),
            time_bases,
        })
    }

    fn next(&mut self) -> Result<Option<(usize, Timed)>, MediaError> {
        let Some(packet) = read(&mut self.input)? else {
            return Ok(None);
        };
        let i = packet.stream();
        let tb = self.time_bases[i];
        Ok(Some((self.slots[i], (unshift(packet, tb), tb))))
    }
}
