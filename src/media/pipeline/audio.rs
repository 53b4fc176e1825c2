//! Audio lanes: one thread per input audio stream decodes, then per encoder group resamples,
//! remixes (downmix to the preset's channels), normalises loudness when the preset asks
//! (`loudness::Normaliser`, from the first pass's measure) and re-frames to the encoder's
//! frame size, encodes, and sends each packet to every output of the group. The encoder's
//! format is fixed by the first frame; a stream whose sample rate, sample format or channel
//! layout changes mid-stream (concatenated or broadcast captures) gets a new converting graph
//! for the new frames, while the normaliser and the re-framing graph after it carry on, so no
//! samples are lost and no short frame reaches the encoder mid-stream.

use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::Shared;
use super::decode::{self, Health};
use super::mux::{MuxMsg, StreamSetup, StreamSummary};
use crate::media::encode::{self, AudioEncoderSpec, OpenedAudio};
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::graph::{AudioShape, Graph};
use crate::media::hdr::HdrMetadata;
use crate::media::loudness::{self, Measured, Normaliser};
use crate::preset::AudioCodec;

pub(crate) struct AudioLane {
    pub decoder: ff::decoder::Audio,
    pub health: Health,
    pub time_base: ff::Rational,
    pub groups: Vec<Group>,
}

/// One encoder and the outputs it feeds.
pub(crate) struct Group {
    pub spec: AudioEncoderSpec,
    pub targets: Vec<(Sender<MuxMsg>, usize)>,
    /// Its outputs' muxers want codec headers out of band.
    global_header: bool,
    /// Filters that cut the samples to a clip, before any conversion.
    trim: Option<String>,
    /// Where it normalises loudness: the input stream's index, what the first pass measured
    /// of it, and the output files it goes to (whose records say what was done).
    loudness: Option<(usize, Measured, Vec<usize>)>,
    state: Option<Encoding>,
    /// Fallback timestamps for frames that carry none: the next expected pts.
    next_pts: Option<i64>,
}

impl Group {
    pub fn new(
        spec: AudioEncoderSpec,
        targets: Vec<(Sender<MuxMsg>, usize)>,
        global_header: bool,
        trim: Option<String>,
    ) -> Self {
        Group {
            spec,
            targets,
            global_header,
            trim,
            loudness: None,
            state: None,
            next_pts: None,
        }
    }

    /// The same group, normalising input stream `stream` as measured (`measured`) on its
    /// way to output files `outputs`.
    pub fn normalising(mut self, stream: usize, measured: Measured, outputs: Vec<usize>) -> Self {
        self.loudness = Some((stream, measured, outputs));
        self
    }
}

struct Encoding {
    /// Resamples and remixes frames of one input shape into the encoder's format.
    convert: Graph,
    /// Brings the converted audio to the preset's loudness.
    normalise: Option<Normaliser>,
    /// Cuts the converted samples into frames of the encoder's size, when it has one.
    reframe: Option<Graph>,
    opened: OpenedAudio,
}

pub(crate) fn run(
    shared: &Shared,
    mut lane: AudioLane,
    packets: Receiver<ff::Packet>,
) -> Result<(), MediaError> {
    for packet in packets.iter() {
        if shared.aborted() {
            return Ok(());
        }
        let mark = ffi::log_mark();
        if let Err(e) = lane.decoder.send_packet(&packet) {
            lane.health.error(&e, mark);
            shared.meter.damaged.fetch_add(1, Ordering::Relaxed);
        }
        drain(shared, &mut lane)?;
    }
    if shared.aborted() {
        return Ok(());
    }
    let _ = lane.decoder.send_eof();
    drain(shared, &mut lane)?;
    lane.health.verdict()?;
    for group in &mut lane.groups {
        if let Some(st) = group.state.as_mut() {
            st.convert.finish(None)?;
            pump(st, &group.targets)?;
            if let Some(normalise) = st.normalise.as_mut() {
                normalise.finish()?;
            }
            drain_normalised(st, &group.targets)?;
            if let Some(reframe) = st.reframe.as_mut() {
                reframe.finish(None)?;
            }
            drain_reframe(st, &group.targets)?;
            let _ = st.opened.encoder.send_eof();
            receive_packets(&mut st.opened, st.normalise.as_mut(), &group.targets)?;
        }
        for (tx, slot) in &group.targets {
            let _ = tx.send(MuxMsg::End { slot: *slot });
        }
        record_loudness(shared, group)?;
    }
    Ok(())
}

/// Records what normalisation did to a group's audio, for its outputs' checks.
fn record_loudness(shared: &Shared, group: &mut Group) -> Result<(), MediaError> {
    let Some((stream, measured, outputs)) = group.loudness.take() else {
        return Ok(());
    };
    let normaliser = group.state.as_mut().and_then(|st| st.normalise.take());
    let checked = match normaliser {
        Some(n) => n.report(stream)?,
        None => loudness::unchanged(stream, &measured),
    };
    tracing::info!("loudness of {checked}");
    shared.normalised(&outputs, checked);
    Ok(())
}

fn drain(shared: &Shared, lane: &mut AudioLane) -> Result<(), MediaError> {
    loop {
        let mut frame = ff::frame::Audio::empty();
        let mark = ffi::log_mark();
        match lane.decoder.receive_frame(&mut frame) {
            Ok(()) => {}
            Err(e) if decode::is_drained(&e) => return Ok(()),
            Err(e) => {
                lane.health.error(&e, mark);
                shared.meter.damaged.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        if shared.aborted() {
            return Ok(());
        }
        lane.health.decoded += 1;
        if ffi::frame_damaged(&frame) {
            shared.meter.damaged.fetch_add(1, Ordering::Relaxed);
        }
        let (groups, tb) = (&mut lane.groups, lane.time_base);
        decode::fan_out(frame, groups.len(), |i, f| feed(&mut groups[i], f, tb))?;
    }
}

fn feed(
    group: &mut Group,
    mut frame: ff::frame::Audio,
    tb: ff::Rational,
) -> Result<(), MediaError> {
    let pts = frame.timestamp().or(group.next_pts);
    frame.set_pts(pts);
    if let Some(p) = pts {
        let samples = frame.samples() as i64;
        let step = (samples as f64 / f64::from(frame.rate().max(1)) / f64::from(tb)).round() as i64;
        group.next_pts = Some(p + step);
    }
    let shape = AudioShape::of(&frame);
    match group.state.as_mut() {
        None => group.state = Some(start(group, &frame, &shape, tb)?),
        Some(st) if !st.convert.accepts_audio(&shape) => {
            // The stream changed format: everything the old graph holds goes out first.
            st.convert.finish(None)?;
            pump(st, &group.targets)?;
            tracing::info!(
                "the source's audio changes to {} Hz {} {}: resampled into the encoder's {} \
                 Hz, {} channel(s)",
                shape.rate,
                shape.layout,
                shape.format.name(),
                st.opened.sample_rate,
                st.opened.channels
            );
            let chain = convert_chain(&st.opened, group.trim.as_deref());
            st.convert = Graph::audio(&shape, tb, &chain, None)?;
        }
        Some(_) => {}
    }
    let Some(st) = group.state.as_mut() else {
        return Ok(());
    };
    st.convert.push(&frame)?;
    pump(st, &group.targets)
}

/// Opens the group's encoder for a stream whose first frame is `frame`, builds its graphs
/// and announces its stream to every output.
fn start(
    group: &Group,
    frame: &ff::frame::Audio,
    shape: &AudioShape,
    tb: ff::Rational,
) -> Result<Encoding, MediaError> {
    let opened = encode::open_audio(
        &group.spec,
        frame.rate(),
        ffi::frame_channels(frame),
        frame.format(),
        group.global_header,
    )?;
    let chain = convert_chain(&opened, group.trim.as_deref());
    let convert = Graph::audio(shape, tb, &chain, None)?;
    let encoder_shape = opened.format().shape();
    let reframe = opened
        .frame_size
        .map(|n| Graph::audio(&encoder_shape, opened.time_base(), "anull", Some(n)))
        .transpose()?;
    let normalise = match (&group.spec.loudness, &group.loudness) {
        (Some(target), Some((_, measured, _))) => Normaliser::new(target, *measured, &opened)?,
        (Some(_), None) => {
            return Err(MediaError::Internal(
                "the loudness measure found no audio in a stream the run decodes".into(),
            ));
        }
        (None, _) => None,
    };
    let params = ff::codec::Parameters::from(&opened.encoder);
    let codec_string = match group.spec.codec {
        AudioCodec::Aac => Some("mp4a.40.2".to_string()),
        AudioCodec::Mp3 => Some("mp4a.40.34".to_string()),
        _ => None,
    };
    for (tx, slot) in &group.targets {
        let setup = StreamSetup {
            params: params.clone(),
            time_base: opened.time_base(),
            frame_rate: None,
            display_matrix: None,
            hdr: HdrMetadata::default(),
            hvc1: false,
            summary: StreamSummary {
                codec_string: codec_string.clone(),
                channels: Some(u32::from(opened.encoder.channels())),
                ..StreamSummary::default()
            },
        };
        let _ = tx.send(MuxMsg::Stream {
            slot: *slot,
            setup: Box::new(setup),
        });
    }
    Ok(Encoding {
        convert,
        normalise,
        reframe,
        opened,
    })
}

/// Resampling and remixing into the encoder's rate, sample format and channel layout, a
/// clip's trim first (it cuts on the source's own samples).
fn convert_chain(opened: &OpenedAudio, trim: Option<&str>) -> String {
    let convert = opened.format().conversion();
    match trim {
        Some(t) => format!("{t},{convert}"),
        None => convert,
    }
}

fn encode_error(opened: &OpenedAudio, e: &ff::Error, mark: u64) -> MediaError {
    MediaError::Encode {
        codec: opened
            .encoder
            .codec()
            .map_or_else(|| "audio".into(), |c| c.name().to_string()),
        reason: with_detail(e, ffi::errors_since(mark)),
    }
}

/// Gives `frame`, which came out of a graph whose sink's time base is `from`, the encoder's
/// time base `to`.
fn retime(frame: &mut ff::frame::Audio, from: ff::Rational, to: ff::Rational) {
    use ff::Rescale;
    if from != to {
        let pts = frame.pts().map(|p| p.rescale(from, to));
        frame.set_pts(pts);
    }
}

/// Moves converted frames on: through the normaliser when there is one, then through the
/// re-framing graph when there is one, else straight into the encoder.
fn pump(st: &mut Encoding, targets: &[(Sender<MuxMsg>, usize)]) -> Result<(), MediaError> {
    let (from, tb) = (st.convert.output_time_base(), st.opened.time_base());
    loop {
        let mut converted = ff::frame::Audio::empty();
        if !st.convert.pull(&mut converted)? {
            return Ok(());
        }
        retime(&mut converted, from, tb);
        match st.normalise.as_mut() {
            Some(normalise) => {
                normalise.push(&converted)?;
                drain_normalised(st, targets)?;
            }
            None => reframe_or_send(st, &converted, targets)?,
        }
    }
}

/// Moves every frame the normaliser has ready on (already in the encoder's time base).
fn drain_normalised(
    st: &mut Encoding,
    targets: &[(Sender<MuxMsg>, usize)],
) -> Result<(), MediaError> {
    loop {
        let mut normalised = ff::frame::Audio::empty();
        let Some(normalise) = st.normalise.as_mut() else {
            return Ok(());
        };
        if !normalise.pull(&mut normalised)? {
            return Ok(());
        }
        reframe_or_send(st, &normalised, targets)?;
    }
}

/// Into the re-framing graph when there is one, else straight into the encoder.
fn reframe_or_send(
    st: &mut Encoding,
    frame: &ff::frame::Audio,
    targets: &[(Sender<MuxMsg>, usize)],
) -> Result<(), MediaError> {
    match st.reframe.as_mut() {
        Some(reframe) => {
            reframe.push(frame)?;
            drain_reframe(st, targets)
        }
        None => send(&mut st.opened, st.normalise.as_mut(), frame, targets),
    }
}

/// Encodes every whole frame the re-framing graph has ready (and, once it is finished, the
/// last partial one).
fn drain_reframe(st: &mut Encoding, targets: &[(Sender<MuxMsg>, usize)]) -> Result<(), MediaError> {
    let tb = st.opened.time_base();
    let Some(reframe) = st.reframe.as_mut() else {
        return Ok(());
    };
    let from = reframe.output_time_base();
    loop {
        let mut framed = ff::frame::Audio::empty();
        if !reframe.pull(&mut framed)? {
            return Ok(());
        }
        retime(&mut framed, from, tb);
        send(&mut st.opened, st.normalise.as_mut(), &framed, targets)?;
    }
}

/// Encodes a frame and sends its packets on (a normaliser measures them).
fn send(
    opened: &mut OpenedAudio,
    normalise: Option<&mut Normaliser>,
    frame: &ff::frame::Audio,
    targets: &[(Sender<MuxMsg>, usize)],
) -> Result<(), MediaError> {
    let mark = ffi::log_mark();
    opened
        .encoder
        .send_frame(frame)
        .map_err(|e| encode_error(opened, &e, mark))?;
    receive_packets(opened, normalise, targets)
}

fn receive_packets(
    opened: &mut OpenedAudio,
    mut normalise: Option<&mut Normaliser>,
    targets: &[(Sender<MuxMsg>, usize)],
) -> Result<(), MediaError> {
    let time_base = opened.time_base();
    loop {
        let mut packet = ff::Packet::empty();
        let mark = ffi::log_mark();
        match opened.encoder.receive_packet(&mut packet) {
            Ok(()) => {
                if let Some(n) = normalise.as_deref_mut() {
                    n.encoded(&packet)?;
                }
                for (tx, slot) in targets {
                    let _ = tx.send(MuxMsg::Packet {
                        slot: *slot,
                        packet: ffi::packet_ref(&packet),
                        time_base,
                    });
                }
            }
            Err(e) if decode::is_drained(&e) => return Ok(()),
            Err(e) => return Err(encode_error(opened, &e, mark)),
        }
    }
}
