//! Video lanes. The decoder thread decodes, deinterlaces and rotates once, then fans each
//! frame out (by reference, not copy) to one thread per rendition, which scales, caps the
//! frame rate, converts the pixel format and encodes, so renditions encode in parallel.

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::Shared;
use super::decode::{self, Health};
use super::mux::{MuxMsg, StreamSetup, StreamSummary};
use crate::media::encode::{self, VideoInputShape};
use crate::media::error::MediaError;
use crate::media::ffi;
use crate::media::geometry::{self, DEINTERLACE, Rotation};
use crate::media::graph::Graph;
use crate::media::plan::RenditionPlan;
use crate::preset::VideoCodec;

/// What the decoder thread needs to know.
pub(crate) struct DecodeLane {
    pub decoder: ff::decoder::Video,
    pub health: Health,
    pub time_base: ff::Rational,
    pub source_rate: Option<ff::Rational>,
    pub deinterlace: bool,
    pub rotation: Rotation,
    /// For a poster: the media time (seconds) of the one frame wanted.
    pub poster_at: Option<f64>,
}

pub(crate) fn run_decoder(
    shared: &Shared,
    mut lane: DecodeLane,
    packets: Receiver<ff::Packet>,
    renditions: Vec<Sender<ff::frame::Video>>,
) -> Result<(), MediaError> {
    let mut state = FanOut {
        renditions,
        pre: None,
        pre_decided: false,
        end_pts: None,
        last: None,
    };
    for packet in packets.iter() {
        if shared.aborted() || shared.enough() {
            return Ok(());
        }
        let mark = ffi::log_mark();
        if let Err(e) = lane.decoder.send_packet(&packet) {
            lane.health.error(&e, mark);
        }
        if drain(shared, &mut lane, &mut state)? {
            return Ok(());
        }
    }
    if shared.aborted() {
        return Ok(());
    }
    let _ = lane.decoder.send_eof();
    if drain(shared, &mut lane, &mut state)? {
        return Ok(());
    }
    lane.health.verdict()?;
    // A poster whose time lies past the last frame takes the last frame.
    if let Some(last) = state.last.take() {
        state.emit(shared, &lane, last)?;
        shared.set_enough();
        return Ok(());
    }
    let end = state.end_pts;
    if let Some(pre) = state.pre.as_mut() {
        pre.finish(end)?;
        state.drain_pre(shared, lane.time_base)?;
    }
    Ok(())
}

/// Where a frame ends, in `time_base`: its pts plus its duration (or one frame period).
fn frame_end(
    frame: &ff::frame::Video,
    time_base: ff::Rational,
    rate: Option<ff::Rational>,
) -> Option<i64> {
    use ff::Rescale;
    let pts = frame.pts()?;
    let mut duration = ffi::frame_duration(frame);
    if duration == 0
        && let Some(r) = rate.filter(|r| r.numerator() > 0)
    {
        duration = 1i64.rescale(r.invert(), time_base);
    }
    Some(pts + duration)
}

struct FanOut {
    renditions: Vec<Sender<ff::frame::Video>>,
    pre: Option<Graph>,
    pre_decided: bool,
    /// Where the latest frame into the pre-graph ends (its stream time base).
    end_pts: Option<i64>,
    /// For a poster: the latest frame before the wanted time.
    last: Option<ff::frame::Video>,
}

impl FanOut {
    fn emit(
        &mut self,
        shared: &Shared,
        lane: &DecodeLane,
        frame: ff::frame::Video,
    ) -> Result<(), MediaError> {
        if !self.pre_decided {
            self.pre_decided = true;
            let mut chain: Vec<&str> = Vec::new();
            if lane.deinterlace || frame.is_interlaced() {
                chain.push(DEINTERLACE);
            }
            chain.extend(lane.rotation.filters());
            if !chain.is_empty() {
                self.pre = Some(Graph::video(
                    &frame,
                    lane.time_base,
                    lane.source_rate,
                    &chain.join(","),
                )?);
            }
        }
        self.end_pts = frame_end(&frame, lane.time_base, lane.source_rate).max(self.end_pts);
        match self.pre.as_mut() {
            Some(pre) => {
                pre.push(&frame)?;
                self.drain_pre(shared, lane.time_base)
            }
            None => {
                self.send(frame);
                Ok(())
            }
        }
    }

    /// Passes the pre-graph's frames on, back in the stream's time base (deinterlacers
    /// halve the time base; the renditions expect the stream's).
    fn drain_pre(&mut self, shared: &Shared, time_base: ff::Rational) -> Result<(), MediaError> {
        use ff::Rescale;
        loop {
            let mut out = ff::frame::Video::empty();
            let Some(pre) = self.pre.as_mut() else {
                return Ok(());
            };
            if !pre.pull(&mut out)? || shared.aborted() {
                return Ok(());
            }
            let out_tb = pre.output_time_base();
            if out_tb != time_base {
                let pts = out.pts().map(|p| p.rescale(out_tb, time_base));
                out.set_pts(pts);
            }
            self.send(out);
        }
    }

    /// Sends a frame to every rendition: a new reference for all but the last.
    fn send(&mut self, frame: ff::frame::Video) {
        let n = self.renditions.len();
        for tx in &self.renditions[..n.saturating_sub(1)] {
            if let Some(r) = ffi::frame_ref(&frame) {
                let _ = tx.send(ff::frame::Video::from(r));
            }
        }
        if let Some(tx) = self.renditions.last() {
            let _ = tx.send(frame);
        }
    }
}

/// Receives every frame the decoder has ready; true when a poster got its frame.
fn drain(shared: &Shared, lane: &mut DecodeLane, state: &mut FanOut) -> Result<bool, MediaError> {
    loop {
        let mut frame = ff::frame::Video::empty();
        let mark = ffi::log_mark();
        match lane.decoder.receive_frame(&mut frame) {
            Ok(()) => {}
            Err(e) if decode::is_drained(&e) => return Ok(false),
            Err(e) => {
                lane.health.error(&e, mark);
                return Ok(false);
            }
        }
        lane.health.decoded += 1;
        let pts = frame.timestamp();
        frame.set_pts(pts);
        if let Some(at) = lane.poster_at {
            let t = frame
                .pts()
                .map_or(0.0, |p| p as f64 * f64::from(lane.time_base));
            if t + 1e-3 < at {
                state.last = Some(frame);
                continue;
            }
            state.last = None;
            state.emit(shared, lane, frame)?;
            let end = state.end_pts;
            if let Some(pre) = state.pre.as_mut() {
                pre.finish(end)?;
                state.drain_pre(shared, lane.time_base)?;
            }
            shared.set_enough();
            return Ok(true);
        }
        state.emit(shared, lane, frame)?;
    }
}

/// What one rendition thread needs to know.
pub(crate) struct RenditionLane<'p> {
    pub plan: &'p RenditionPlan,
    /// Counts frames for progress (the first rendition does).
    pub counts_frames: bool,
    pub time_base: ff::Rational,
    pub source_rate: Option<ff::Rational>,
    pub global_header: bool,
    pub hvc1: bool,
    pub mux: Sender<MuxMsg>,
}

struct Encoding {
    graph: Graph,
    /// Where the latest frame into the graph ends (input time base).
    end_pts: Option<i64>,
    encoder: Option<ff::encoder::Video>,
    time_base: ff::Rational,
    next_keyframe: f64,
}

pub(crate) fn run_rendition(
    shared: &Shared,
    lane: RenditionLane,
    frames: Receiver<ff::frame::Video>,
) -> Result<(), MediaError> {
    let slot = lane.plan.target.slot;
    let mut enc: Option<Encoding> = None;
    for frame in frames.iter() {
        if shared.aborted() {
            return Ok(());
        }
        if enc.is_none() {
            let (w, h) = geometry::fit(
                frame.width(),
                frame.height(),
                (
                    frame.aspect_ratio().numerator(),
                    frame.aspect_ratio().denominator(),
                ),
                lane.plan.max_width,
                lane.plan.max_height,
            );
            let fps = lane
                .plan
                .fps
                .map(|r| format!(",fps={}/{}", r.numerator(), r.denominator()))
                .unwrap_or_default();
            let chain = format!(
                "scale={w}:{h}:flags=bicubic,setsar=1{fps},format={}",
                lane.plan.spec.pixel_format
            );
            let graph = Graph::video(&frame, lane.time_base, lane.source_rate, &chain)?;
            enc = Some(Encoding {
                graph,
                end_pts: None,
                encoder: None,
                time_base: ff::Rational::new(1, 1),
                next_keyframe: 0.0,
            });
        }
        let Some(e) = enc.as_mut() else { continue };
        e.end_pts = frame_end(&frame, lane.time_base, lane.source_rate).max(e.end_pts);
        e.graph.push(&frame)?;
        pump(shared, &lane, e)?;
    }
    if shared.aborted() {
        return Ok(());
    }
    if let Some(e) = enc.as_mut() {
        e.graph.finish(e.end_pts)?;
        pump(shared, &lane, e)?;
        if let Some(encoder) = e.encoder.as_mut() {
            let _ = encoder.send_eof();
            receive_packets(&lane, encoder, e.time_base)?;
        }
    }
    let _ = lane.mux.send(MuxMsg::End { slot });
    Ok(())
}

/// Moves filtered frames into the encoder and encoded packets to the muxer.
fn pump(shared: &Shared, lane: &RenditionLane, e: &mut Encoding) -> Result<(), MediaError> {
    loop {
        let mut filtered = ff::frame::Video::empty();
        if !e.graph.pull(&mut filtered)? || shared.aborted() {
            return Ok(());
        }
        if e.encoder.is_none() {
            open_encoder(lane, e, &filtered)?;
        }
        let every = lane.plan.spec.force_keyframes_every;
        let t = filtered
            .pts()
            .map_or(0.0, |p| p as f64 * f64::from(e.time_base));
        match every {
            Some(step) if t + 1e-6 >= e.next_keyframe => {
                filtered.set_kind(ff::picture::Type::I);
                while e.next_keyframe <= t + 1e-6 {
                    e.next_keyframe += step;
                }
            }
            _ => filtered.set_kind(ff::picture::Type::None),
        }
        let Some(encoder) = e.encoder.as_mut() else {
            continue;
        };
        let mark = ffi::log_mark();
        encoder
            .send_frame(&filtered)
            .map_err(|err| MediaError::Encode {
                codec: lane.plan.spec.codec.encoder().into(),
                reason: crate::media::error::with_detail(&err, ffi::errors_since(mark)),
            })?;
        if lane.counts_frames {
            shared
                .meter
                .frames
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        receive_packets(lane, encoder, e.time_base)?;
    }
}

fn open_encoder(
    lane: &RenditionLane,
    e: &mut Encoding,
    first: &ff::frame::Video,
) -> Result<(), MediaError> {
    let time_base = e.graph.output_time_base();
    let frame_rate = e
        .graph
        .output_frame_rate()
        .or(lane.plan.fps)
        .or(lane.source_rate);
    let shape = VideoInputShape {
        width: first.width(),
        height: first.height(),
        pixel_format: first.format(),
        time_base,
        frame_rate,
    };
    let encoder = encode::open_video(&lane.plan.spec, &shape, first, lane.global_header)?;
    let params = ff::codec::Parameters::from(&encoder);
    let setup = StreamSetup {
        params,
        time_base,
        frame_rate,
        display_matrix: None,
        hvc1: lane.hvc1 && lane.plan.spec.codec == VideoCodec::Hevc,
        summary: StreamSummary {
            // Read from the first keyframe's SPS by the muxer thread.
            codec_string: None,
            width: first.width(),
            height: first.height(),
            frame_rate: frame_rate.map(f64::from),
        },
    };
    let _ = lane.mux.send(MuxMsg::Stream {
        slot: lane.plan.target.slot,
        setup: Box::new(setup),
    });
    e.time_base = time_base;
    e.encoder = Some(encoder);
    Ok(())
}

fn receive_packets(
    lane: &RenditionLane,
    encoder: &mut ff::encoder::Video,
    time_base: ff::Rational,
) -> Result<(), MediaError> {
    loop {
        let mut packet = ff::Packet::empty();
        let mark = ffi::log_mark();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => {
                let msg = MuxMsg::Packet {
                    slot: lane.plan.target.slot,
                    packet,
                    time_base,
                };
                if lane.mux.send(msg).is_err() {
                    return Ok(());
                }
            }
            Err(e) if decode::is_drained(&e) => return Ok(()),
            Err(e) => {
                return Err(MediaError::Encode {
                    codec: lane.plan.spec.codec.encoder().into(),
                    reason: crate::media::error::with_detail(&e, ffi::errors_since(mark)),
                });
            }
        }
    }
}
