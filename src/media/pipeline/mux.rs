//! The muxer thread of one output file. Streams announce themselves (after their encoder
//! opened on the first real frame); once every slot is announced or finished, the header is
//! written and packets flow. Timestamps are rescaled and kept monotonic, as the command line
//! does.

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;

use super::Shared;
use crate::media::captions;
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::hdr::HdrMetadata;
use crate::media::hls;
use crate::media::output::MuxTarget;
use crate::media::plan::SlotInfo;

/// A stream's description, sent before its first packet.
pub(crate) struct StreamSetup {
    pub params: ff::codec::Parameters,
    pub time_base: ff::Rational,
    pub frame_rate: Option<ff::Rational>,
    pub display_matrix: Option<[i32; 9]>,
    /// Mastering-display and light-level metadata of kept HDR, written into the container.
    pub hdr: HdrMetadata,
    /// Tag HEVC as `hvc1` (what Apple players require in MP4/MOV).
    pub hvc1: bool,
    pub summary: StreamSummary,
}

/// What the HLS master playlist needs to know about a written stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamSummary {
    pub codec_string: Option<String>,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    /// An audio stream's channel count.
    pub channels: Option<u32>,
}

pub(crate) enum MuxMsg {
    Stream {
        slot: usize,
        setup: Box<StreamSetup>,
    },
    Packet {
        slot: usize,
        packet: ff::Packet,
        time_base: ff::Rational,
    },
    /// The producer of this slot is done (it may never have announced a stream).
    End { slot: usize },
}

struct Slot {
    setup: Option<Box<StreamSetup>>,
    ended: bool,
    pending: Vec<(ff::Packet, ff::Rational)>,
    out_index: Option<usize>,
    out_time_base: ff::Rational,
    last_dts: Option<i64>,
}

/// Runs one muxer until every producer has finished; returns the summaries of the streams
/// it wrote.
pub(crate) fn run(
    shared: &Shared,
    output: usize,
    target: &MuxTarget,
    infos: &[SlotInfo],
    rx: Receiver<MuxMsg>,
) -> Result<Vec<StreamSummary>, MediaError> {
    let mut muxer = Muxer::open(shared, output, target, infos)?;
    loop {
        if shared.aborted() {
            return Ok(Vec::new());
        }
        let Ok(msg) = rx.recv() else { break };
        muxer.receive(msg)?;
        // The header waits for every slot, and for one stream at least: an output whose
        // producers all ended without one has nothing to write (`finish` says so).
        let ready = muxer.slots.iter().all(|s| s.setup.is_some() || s.ended)
            && muxer.slots.iter().any(|s| s.setup.is_some());
        if !muxer.header_written && ready {
            muxer.start_writing()?;
        }
        if muxer.slots.iter().all(|s| s.ended) {
            break;
        }
    }
    if shared.aborted() {
        return Ok(Vec::new());
    }
    muxer.finish()
}

/// One output file being written: its slots, and whether its header is out.
struct Muxer<'a> {
    shared: &'a Shared<'a>,
    output: usize,
    target: &'a MuxTarget,
    infos: &'a [SlotInfo],
    octx: ff::format::context::Output,
    slots: Vec<Slot>,
    header_written: bool,
}

impl<'a> Muxer<'a> {
    /// Opens the output file, every slot waiting for its stream.
    fn open(
        shared: &'a Shared<'a>,
        output: usize,
        target: &'a MuxTarget,
        infos: &'a [SlotInfo],
    ) -> Result<Self, MediaError> {
        let path = target.path.to_string_lossy().into_owned();
        let mark = ffi::log_mark();
        let octx = ffi::open_output(&path, target.muxer).map_err(|e| mux_error(target, e, mark))?;
        let slots: Vec<Slot> = infos
            .iter()
            .map(|_| Slot {
                setup: None,
                ended: false,
                pending: Vec::new(),
                out_index: None,
                out_time_base: ff::Rational::new(1, 1),
                last_dts: None,
            })
            .collect();
        Ok(Muxer {
            shared,
            output,
            target,
            infos,
            octx,
            slots,
            header_written: false,
        })
    }

    /// Takes one message: a stream's description, the end of a slot, or a packet (written,
    /// or held until the header is out).
    fn receive(&mut self, msg: MuxMsg) -> Result<(), MediaError> {
        match msg {
            MuxMsg::Stream { slot, mut setup } => {
                if setup.params.id() == ff::codec::Id::H264 {
                    setup.summary.codec_string =
                        hls::avc_codec_string(&ffi::extradata(&setup.params));
                }
                self.slots[slot].setup = Some(setup);
            }
            MuxMsg::End { slot } => self.slots[slot].ended = true,
            MuxMsg::Packet {
                slot,
                packet,
                time_base,
            } => {
                if self.header_written {
                    write(
                        self.shared,
                        self.output,
                        &mut self.octx,
                        &mut self.slots[slot],
                        packet,
                        time_base,
                    )
                    .map_err(|(e, m)| mux_error(self.target, e, m))?;
                } else {
                    self.slots[slot].pending.push((packet, time_base));
                }
            }
        }
        Ok(())
    }

    /// Writes the header, then the packets held back until it was out.
    fn start_writing(&mut self) -> Result<(), MediaError> {
        write_header(&mut self.octx, &mut self.slots, self.infos, self.target)
            .map_err(|(e, m)| header_error(self.target, e, m))?;
        self.header_written = true;
        for slot in &mut self.slots {
            for (packet, tb) in std::mem::take(&mut slot.pending) {
                write(self.shared, self.output, &mut self.octx, slot, packet, tb)
                    .map_err(|(e, m)| mux_error(self.target, e, m))?;
            }
        }
        Ok(())
    }

    /// Ends the file — the header first if the producers went before every slot was
    /// described or ended, then the trailer — and returns the summaries of its streams:
    /// none when no stream reached it, and nothing is written (the run then fails as an
    /// input with nothing in it: `pipeline::outcome`).
    fn finish(mut self) -> Result<Vec<StreamSummary>, MediaError> {
        if !self.header_written {
            if self.slots.iter().all(|s| s.setup.is_none()) {
                return Ok(Vec::new());
            }
            write_header(&mut self.octx, &mut self.slots, self.infos, self.target)
                .map_err(|(e, m)| header_error(self.target, e, m))?;
        }
        let mark = ffi::log_mark();
        self.octx
            .write_trailer()
            .map_err(|e| mux_error(self.target, e, mark))?;
        Ok(self
            .slots
            .into_iter()
            .filter_map(|s| s.setup.map(|setup| setup.summary))
            .collect())
    }
}

fn mux_error(target: &MuxTarget, e: ff::Error, mark: u64) -> MediaError {
    MediaError::Mux {
        path: target.path.clone(),
        reason: with_detail(&e, ffi::errors_since(mark)),
    }
}

/// A muxer that will not take the streams is a mismatch of input and preset, not a passing
/// fault.
fn header_error(target: &MuxTarget, e: ff::Error, mark: u64) -> MediaError {
    MediaError::Unsupported(format!(
        "the {} muxer refused the streams: {}",
        target.muxer,
        with_detail(&e, ffi::errors_since(mark))
    ))
}

fn write_header(
    octx: &mut ff::format::context::Output,
    slots: &mut [Slot],
    infos: &[SlotInfo],
    target: &MuxTarget,
) -> Result<(), (ff::Error, u64)> {
    let mark = ffi::log_mark();
    let mut next = 0;
    for (slot, info) in slots.iter_mut().zip(infos) {
        let Some(setup) = &slot.setup else { continue };
        let mut ost = octx
            .add_stream(ff::encoder::find(ff::codec::Id::None))
            .map_err(|e| (e, mark))?;
        ost.set_parameters(setup.params.clone());
        ost.set_time_base(setup.time_base);
        if let Some(rate) = setup.frame_rate {
            ffi::set_stream_frame_rate(&mut ost, rate);
        }
        if let Some(matrix) = &setup.display_matrix {
            ffi::set_display_matrix(&mut ost, matrix);
        }
        let hdr = &setup.hdr;
        ffi::set_stream_hdr_metadata(&mut ost, hdr.mastering.as_ref(), hdr.light.as_ref());
        // Only QuickTime-family files know the tag (a split job's NUT pieces would refuse it).
        if setup.hvc1 && matches!(target.muxer, "mp4" | "mov") {
            ffi::set_codec_tag(&mut ost, *b"hvc1");
        }
        if let Some(lang) = &info.language {
            let mut meta = ff::Dictionary::new();
            let lang = match target.muxer {
                "mov" => captions::quicktime_language(lang),
                _ => lang,
            };
            meta.set("language", lang);
            ost.set_metadata(meta);
        }
        ffi::set_disposition(&mut ost, info.default);
        slot.out_index = Some(next);
        next += 1;
    }
    let mut options = ff::Dictionary::new();
    for (k, v) in &target.options {
        options.set(k, v);
    }
    octx.write_header_with(options).map_err(|e| (e, mark))?;
    for slot in slots.iter_mut() {
        if let Some(i) = slot.out_index
            && let Some(st) = octx.stream(i)
        {
            slot.out_time_base = st.time_base();
        }
    }
    Ok(())
}

fn write(
    shared: &Shared,
    output: usize,
    octx: &mut ff::format::context::Output,
    slot: &mut Slot,
    mut packet: ff::Packet,
    time_base: ff::Rational,
) -> Result<(), (ff::Error, u64)> {
    let Some(index) = slot.out_index else {
        return Ok(());
    };
    if let Some(setup) = slot.setup.as_mut()
        && setup.summary.codec_string.is_none()
        && setup.params.id() == ff::codec::Id::H264
    {
        setup.summary.codec_string = packet.data().and_then(hls::avc_codec_string);
    }
    packet.rescale_ts(time_base, slot.out_time_base);
    packet.set_stream(index);
    packet.set_position(-1);
    // Keep decode timestamps strictly increasing, nudging as the command line does.
    if let (Some(dts), Some(last)) = (packet.dts(), slot.last_dts)
        && dts <= last
    {
        let fixed = last + 1;
        packet.set_dts(Some(fixed));
        if packet.pts().is_some_and(|p| p < fixed) {
            packet.set_pts(Some(fixed));
        }
    }
    if let Some(dts) = packet.dts() {
        slot.last_dts = Some(dts);
    }
    // Caption packets all come before the run's other packets: their times do not say how
    // far the output has been written.
    let timed = slot
        .setup
        .as_ref()
        .is_none_or(|s| s.params.medium() != ff::media::Type::Subtitle);
    if let Some(end) = packet.pts().or(packet.dts())
        && timed
    {
        let end = end + packet.duration().max(0);
        let us = end as f64 * f64::from(slot.out_time_base) * 1e6;
        shared.meter.wrote_until(output, us as i64);
    }
    let mark = ffi::log_mark();
    packet.write_interleaved(octx).map_err(|e| (e, mark))
}
