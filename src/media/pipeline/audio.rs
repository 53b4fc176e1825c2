//! Audio lanes: one thread per input audio stream decodes, then per encoder group resamples,
//! remixes (downmix to the preset's channels) and re-frames to the encoder's frame size,
//! encodes, and sends each packet to every output of the group.

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::Shared;
use super::decode::{self, Health};
use super::mux::{MuxMsg, StreamSetup, StreamSummary};
use crate::media::encode::{self, AudioEncoderSpec, OpenedAudio};
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::graph::Graph;
use crate::preset::AudioCodec;

pub(crate) struct AudioLane {
    pub decoder: ff::decoder::Audio,
    pub health: Health,
    pub time_base: ff::Rational,
    pub global_header: bool,
    pub groups: Vec<Group>,
}

/// One encoder and the outputs it feeds.
pub(crate) struct Group {
    pub spec: AudioEncoderSpec,
    pub targets: Vec<(Sender<MuxMsg>, usize)>,
    state: Option<(Graph, OpenedAudio)>,
    /// Fallback timestamps for frames that carry none: the next expected pts.
    next_pts: Option<i64>,
}

impl Group {
    pub fn new(spec: AudioEncoderSpec, targets: Vec<(Sender<MuxMsg>, usize)>) -> Self {
        Group {
            spec,
            targets,
            state: None,
            next_pts: None,
        }
    }
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
        if let Some((graph, opened)) = group.state.as_mut() {
            graph.finish(None)?;
            pump(graph, opened, &group.targets)?;
            let _ = opened.encoder.send_eof();
            receive_packets(opened, &group.targets)?;
        }
        for (tx, slot) in &group.targets {
            let _ = tx.send(MuxMsg::End { slot: *slot });
        }
    }
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
                return Ok(());
            }
        }
        if shared.aborted() {
            return Ok(());
        }
        lane.health.decoded += 1;
        let n = lane.groups.len();
        for i in 0..n {
            let f = if i + 1 == n {
                std::mem::replace(&mut frame, ff::frame::Audio::empty())
            } else {
                match ffi::frame_ref(&frame) {
                    Some(r) => ff::frame::Audio::from(r),
                    None => continue,
                }
            };
            feed(&mut lane.groups[i], f, lane.time_base, lane.global_header)?;
        }
    }
}

fn feed(
    group: &mut Group,
    mut frame: ff::frame::Audio,
    tb: ff::Rational,
    global_header: bool,
) -> Result<(), MediaError> {
    let pts = frame.timestamp().or(group.next_pts);
    frame.set_pts(pts);
    if let Some(p) = pts {
        let samples = frame.samples() as i64;
        let step = (samples as f64 / f64::from(frame.rate().max(1)) / f64::from(tb)).round() as i64;
        group.next_pts = Some(p + step);
    }
    if group.state.is_none() {
        let opened = encode::open_audio(
            &group.spec,
            frame.rate(),
            ffi::frame_channels(&frame),
            frame.format(),
            global_header,
        )?;
        let chain = format!(
            "aresample={rate},aformat=sample_fmts={fmt}:sample_rates={rate}:channel_layouts={layout}",
            rate = opened.sample_rate,
            fmt = opened.sample_format.name(),
            layout = ffi::default_layout_name(opened.channels),
        );
        let graph = Graph::audio(&frame, tb, &chain, opened.frame_size)?;
        let params = ff::codec::Parameters::from(&opened.encoder);
        let codec_string = match group.spec.codec {
            AudioCodec::Aac => Some("mp4a.40.2".to_string()),
            AudioCodec::Mp3 => Some("mp4a.40.34".to_string()),
            _ => None,
        };
        for (tx, slot) in &group.targets {
            let setup = StreamSetup {
                params: params.clone(),
                time_base: ff::Rational::new(1, opened.sample_rate as i32),
                frame_rate: None,
                display_matrix: None,
                hvc1: false,
                summary: StreamSummary {
                    codec_string: codec_string.clone(),
                    ..StreamSummary::default()
                },
            };
            let _ = tx.send(MuxMsg::Stream {
                slot: *slot,
                setup: Box::new(setup),
            });
        }
        group.state = Some((graph, opened));
    }
    let Some((graph, opened)) = group.state.as_mut() else {
        return Ok(());
    };
    graph.push(&frame)?;
    pump(graph, opened, &group.targets)
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

fn pump(
    graph: &mut Graph,
    opened: &mut OpenedAudio,
    targets: &[(Sender<MuxMsg>, usize)],
) -> Result<(), MediaError> {
    let sink_tb = graph.output_time_base();
    let enc_tb = ff::Rational::new(1, opened.sample_rate as i32);
    loop {
        let mut filtered = ff::frame::Audio::empty();
        if !graph.pull(&mut filtered)? {
            return Ok(());
        }
        if sink_tb != enc_tb {
            use ff::Rescale;
            let pts = filtered.pts().map(|p| p.rescale(sink_tb, enc_tb));
            filtered.set_pts(pts);
        }
        let mark = ffi::log_mark();
        opened
            .encoder
            .send_frame(&filtered)
            .map_err(|e| encode_error(opened, &e, mark))?;
        receive_packets(opened, targets)?;
    }
}

fn receive_packets(
    opened: &mut OpenedAudio,
    targets: &[(Sender<MuxMsg>, usize)],
) -> Result<(), MediaError> {
    let time_base = ff::Rational::new(1, opened.sample_rate as i32);
    loop {
        let mut packet = ff::Packet::empty();
        let mark = ffi::log_mark();
        match opened.encoder.receive_packet(&mut packet) {
            Ok(()) => {
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
