//! Video lanes. The decoder thread decodes, deinterlaces and rotates once, then fans each
//! frame out (by reference, not copy) to one thread per rendition, which scales, converts the
//! pixel format, places frames on the rate grid when there is one, and encodes, so
//! renditions encode in parallel. A source whose pictures change size or format mid-stream
//! gets its filters rebuilt for the new pictures; each rendition keeps the size it chose
//! from the first picture and scales later ones into it, keeping their aspect and padding
//! the rest with black, so nothing is stretched and the encoder never sees a new size.

use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::Shared;
use super::decode::{self, Health};
use super::grid::Grid;
use super::mux::{MuxMsg, StreamSetup, StreamSummary};
use super::thumbs::{self, Thumbnails};
use crate::media::captions;
use crate::media::encode::{self, VideoInputShape};
use crate::media::error::MediaError;
use crate::media::ffi;
use crate::media::geometry::{self, DEINTERLACE, Rotation};
use crate::media::graph::{Graph, VideoShape};
use crate::media::hdr::{self, HdrColour, HdrMetadata};
use crate::media::plan::RenditionPlan;
use crate::media::watermark;
use crate::preset::VideoCodec;

/// What the decoder thread needs to know.
pub(crate) struct DecodeLane {
    pub decoder: ff::decoder::Video,
    pub health: Health,
    pub time_base: ff::Rational,
    pub frame_rate: Option<ff::Rational>,
    pub deinterlace: bool,
    pub rotation: Rotation,
    /// The stream's HDR colour, when its parameters say it is HDR.
    pub hdr: Option<HdrColour>,
    /// Every rendition tone-maps HDR pictures: done once here, before the fan-out.
    pub tonemap_once: bool,
    /// For a poster: the media time (seconds) of the one frame wanted.
    pub poster_at: Option<f64>,
    /// Only frames whose time (µs) lies in `[from, until)` go on (a split job's part).
    pub keep_us: Option<(i64, i64)>,
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
        pre_chain: None,
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
            shared.meter.damaged.fetch_add(1, Ordering::Relaxed);
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

/// The filters every rendition shares, decided on the first picture: deinterlacing, rotation
/// and, when every rendition tone-maps and the picture is HDR, the tone map; None when the
/// source needs none of them.
fn pre_chain(lane: &DecodeLane, frame: &ff::frame::Video) -> Option<String> {
    let mut chain: Vec<String> = Vec::new();
    if lane.deinterlace || frame.is_interlaced() {
        chain.push(DEINTERLACE.into());
    }
    chain.extend(lane.rotation.filters().iter().map(|f| f.to_string()));
    if lane.tonemap_once
        && let Some(colour) = HdrColour::of_frame(frame, lane.hdr.as_ref())
    {
        chain.push(colour.tonemap_chain());
    }
    (!chain.is_empty()).then(|| chain.join(","))
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
    /// Deinterlacing and rotation, when the source needs either (decided on its first frame).
    pre_chain: Option<String>,
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
            self.pre_chain = pre_chain(lane, &frame);
        }
        if self.pre_chain.is_some() {
            let stale = self.pre.as_ref().is_some_and(|g| !g.accepts_video(&frame));
            if stale && let Some(pre) = self.pre.as_mut() {
                // Pictures of a new shape: let the old graph hand over what it holds first.
                pre.finish(self.end_pts)?;
                self.drain_pre(shared, lane.time_base)?;
            }
            if stale || self.pre.is_none() {
                let chain = self.pre_chain.as_deref().unwrap_or_default();
                self.pre = Some(Graph::video(
                    &frame,
                    lane.time_base,
                    lane.frame_rate,
                    chain,
                )?);
            }
        }
        self.end_pts = frame_end(&frame, lane.time_base, lane.frame_rate).max(self.end_pts);
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
                shared.meter.damaged.fetch_add(1, Ordering::Relaxed);
                return Ok(false);
            }
        }
        lane.health.decoded += 1;
        if ffi::frame_damaged(&frame) {
            shared.meter.damaged.fetch_add(1, Ordering::Relaxed);
        }
        let pts = frame.timestamp();
        frame.set_pts(pts);
        if !in_range(lane, pts) {
            continue;
        }
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

/// Whether a frame at `pts` (the stream's time base) is one this run keeps.
fn in_range(lane: &DecodeLane, pts: Option<i64>) -> bool {
    use ff::Rescale;
    match (lane.keep_us, pts) {
        (Some((from, until)), Some(pts)) => {
            let us = pts.rescale(lane.time_base, ff::Rational::new(1, 1_000_000));
            from <= us && us < until
        }
        _ => true,
    }
}

/// What one rendition thread needs to know.
pub(crate) struct RenditionLane<'p> {
    pub plan: &'p RenditionPlan,
    /// Counts frames for progress (the first rendition does).
    pub counts_frames: bool,
    pub time_base: ff::Rational,
    pub frame_rate: Option<ff::Rational>,
    /// The stream's HDR colour, when its parameters say it is HDR.
    pub hdr: Option<&'p HdrColour>,
    pub global_header: bool,
    pub hvc1: bool,
    pub mux: Sender<MuxMsg>,
}

struct Encoding {
    graph: Graph,
    /// The size of every picture this rendition encodes, chosen from the first one.
    frame: (u32, u32),
    /// Where the latest frame into the graph ends (input time base).
    end_pts: Option<i64>,
    grid: Option<Grid>,
    encoder: Option<ff::encoder::Video>,
    time_base: ff::Rational,
    next_keyframe: f64,
    /// The latest timestamp encoded: a damaged input's frames that go back in time are
    /// dropped (an encoder given them would write packets no muxer takes).
    last_pts: Option<i64>,
}

/// The rendition's filters for pictures shaped like `frame`: tone-mapped or tagged when HDR
/// (unless done before the fan-out), scaled to `size` inside a picture of `frame_size`.
fn rendition_graph(
    lane: &RenditionLane,
    frame: &ff::frame::Video,
    size: (u32, u32),
    frame_size: (u32, u32),
) -> Result<Graph, MediaError> {
    let pixel_format = &lane.plan.spec.pixel_format;
    let picture = geometry::picture_chain(size, frame_size, pixel_format, None);
    let mut chain = match hdr::rendition_filters(lane.plan.hdr, frame, lane.hdr) {
        Some(hdr) => format!("{hdr},{picture}"),
        None => picture,
    };
    if let Some(t) = lane.plan.tiles {
        chain.push_str(&format!(",tile={}x{}", t.columns, t.rows));
    }
    if let Some(script) = &lane.plan.burn {
        // Rendered at the rendition's own size (sharp on every rung), then back to the
        // encoder's pixel format.
        let burn = captions::burn_filter(script);
        chain.push_str(&format!(",{burn},format={pixel_format}"));
    }
    match &lane.plan.logo {
        Some(logo) => {
            let chain = watermark::overlay_chain(&chain, frame_size, pixel_format, &logo.placement);
            Graph::video_with_picture(
                frame,
                lane.time_base,
                lane.frame_rate,
                &chain,
                &logo.picture,
            )
        }
        None => Graph::video(frame, lane.time_base, lane.frame_rate, &chain),
    }
}

pub(crate) fn run_rendition(
    shared: &Shared,
    lane: RenditionLane,
    frames: Receiver<ff::frame::Video>,
) -> Result<(), MediaError> {
    if let Some(tiles) = lane.plan.tiles {
        let mut thumbs = Thumbnails::new(
            shared,
            &frames,
            tiles.interval_seconds,
            lane.time_base,
            lane.frame_rate,
        );
        encode_frames(shared, &lane, &mut thumbs)?;
        shared
            .meter
            .tiled(lane.plan.target.output, thumbs.handed_out());
        return Ok(());
    }
    match lane.plan.pick_at {
        Some(at) => {
            let picked = thumbs::pick(shared, &frames, at, lane.time_base);
            // The decoder's sends to a gone rendition are ignored.
            drop(frames);
            encode_frames(shared, &lane, picked)
        }
        None => encode_frames(shared, &lane, frames.iter()),
    }
}

/// Scales, places on the grid and encodes `frames`, then flushes the encoder and ends the
/// rendition's slot.
fn encode_frames(
    shared: &Shared,
    lane: &RenditionLane,
    frames: impl IntoIterator<Item = ff::frame::Video>,
) -> Result<(), MediaError> {
    let slot = lane.plan.target.slot;
    let mut enc: Option<Encoding> = None;
    for frame in frames {
        if shared.aborted() {
            return Ok(());
        }
        match enc.as_mut() {
            None => {
                let size = geometry::fit(
                    frame.width(),
                    frame.height(),
                    VideoShape::of(&frame).sar,
                    lane.plan.max_width,
                    lane.plan.max_height,
                );
                enc = Some(Encoding {
                    graph: rendition_graph(lane, &frame, size, size)?,
                    frame: size,
                    end_pts: None,
                    grid: lane.plan.grid.map(Grid::new),
                    encoder: None,
                    time_base: ff::Rational::new(1, 1),
                    next_keyframe: 0.0,
                    last_pts: None,
                });
            }
            Some(e) if !e.graph.accepts_video(&frame) => {
                e.graph.finish(None)?;
                pump(shared, lane, e)?;
                let size = geometry::fit_into(
                    frame.width(),
                    frame.height(),
                    VideoShape::of(&frame).sar,
                    e.frame,
                );
                tracing::info!(
                    "the source's pictures change to {}x{} ({:?}): scaled to {}x{} in the \
                     {}x{} output",
                    frame.width(),
                    frame.height(),
                    frame.format(),
                    size.0,
                    size.1,
                    e.frame.0,
                    e.frame.1
                );
                e.graph = rendition_graph(lane, &frame, size, e.frame)?;
            }
            Some(_) => {}
        }
        let Some(e) = enc.as_mut() else { continue };
        e.end_pts = frame_end(&frame, lane.time_base, lane.frame_rate).max(e.end_pts);
        e.graph.push(&frame)?;
        pump(shared, lane, e)?;
    }
    if shared.aborted() {
        return Ok(());
    }
    if let Some(e) = enc.as_mut() {
        e.graph.finish(e.end_pts)?;
        pump(shared, lane, e)?;
        let end = e.end_pts;
        if let Some(last) = e.grid.as_mut().and_then(|g| g.finish(end, lane.time_base)) {
            encode(shared, lane, e, last)?;
        }
        if let Some(encoder) = e.encoder.as_mut() {
            let _ = encoder.send_eof();
            receive_packets(lane, encoder, e.time_base)?;
        }
    }
    let _ = lane.mux.send(MuxMsg::End { slot });
    Ok(())
}

/// Moves filtered frames through the rate grid into the encoder.
fn pump(shared: &Shared, lane: &RenditionLane, e: &mut Encoding) -> Result<(), MediaError> {
    loop {
        let mut filtered = ff::frame::Video::empty();
        if !e.graph.pull(&mut filtered)? || shared.aborted() {
            return Ok(());
        }
        let frame = match e.grid.as_mut() {
            Some(grid) => match grid.push(filtered, lane.time_base) {
                Some(frame) => frame,
                None => continue,
            },
            None => filtered,
        };
        encode(shared, lane, e, frame)?;
    }
}

/// Encodes one frame (its timestamp in the encoder's time base) and passes on the packets.
fn encode(
    shared: &Shared,
    lane: &RenditionLane,
    e: &mut Encoding,
    mut frame: ff::frame::Video,
) -> Result<(), MediaError> {
    if let (Some(pts), Some(last)) = (frame.pts(), e.last_pts)
        && pts <= last
    {
        tracing::debug!("dropped a frame at {pts}, not after the previous one at {last}");
        return Ok(());
    }
    e.last_pts = frame.pts().or(e.last_pts);
    if e.encoder.is_none() {
        open_encoder(lane, e, &frame)?;
    }
    let t = frame
        .pts()
        .map_or(0.0, |p| p as f64 * f64::from(e.time_base));
    match lane.plan.spec.force_keyframes_every {
        Some(step) if t + 1e-6 >= e.next_keyframe => {
            frame.set_kind(ff::picture::Type::I);
            while e.next_keyframe <= t + 1e-6 {
                e.next_keyframe += step;
            }
        }
        _ => frame.set_kind(ff::picture::Type::None),
    }
    let Some(encoder) = e.encoder.as_mut() else {
        return Ok(());
    };
    let mark = ffi::log_mark();
    encoder
        .send_frame(&frame)
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
    receive_packets(lane, encoder, e.time_base)
}

fn open_encoder(
    lane: &RenditionLane,
    e: &mut Encoding,
    first: &ff::frame::Video,
) -> Result<(), MediaError> {
    let (time_base, frame_rate) = match &e.grid {
        Some(grid) => (grid.time_base(), lane.plan.grid),
        None => (
            e.graph.output_time_base(),
            e.graph.output_frame_rate().or(lane.frame_rate),
        ),
    };
    let shape = VideoInputShape {
        width: first.width(),
        height: first.height(),
        pixel_format: first.format(),
        time_base,
        frame_rate,
    };
    let hdr = HdrMetadata::of_frame(first);
    let encoder = encode::open_video(&lane.plan.spec, &shape, first, &hdr, lane.global_header)?;
    let params = ff::codec::Parameters::from(&encoder);
    let setup = StreamSetup {
        params,
        time_base,
        frame_rate,
        display_matrix: None,
        hdr,
        hvc1: lane.hvc1 && lane.plan.spec.codec == VideoCodec::Hevc,
        summary: StreamSummary {
            // Read from the first keyframe's SPS by the muxer thread.
            codec_string: None,
            width: first.width(),
            height: first.height(),
            frame_rate: frame_rate.map(f64::from),
            channels: None,
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
