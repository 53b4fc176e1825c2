//! Wiring a plan before any thread starts: a channel into each muxer, the copied streams
//! announced to their muxers, a decoder lane opened for each encoded stream (so a broken
//! stream fails before anything runs) with a channel per video rendition, caption streams
//! encoded, and the route each input stream's packets take from the demuxer.

use crossbeam_channel::{Receiver, Sender, bounded};
use ffmpeg_next as ff;

use super::audio::{self, AudioLane};
use super::decode;
use super::demux::Route;
use super::measure::Measures;
use super::mux::{MuxMsg, StreamSetup, StreamSummary};
use super::video::{self, DecodeLane, RenditionLane};
use crate::media::captions;
use crate::media::error::MediaError;
use crate::media::ffi;
use crate::media::hdr::{self, HdrColour, HdrMetadata};
use crate::media::input::Input;
use crate::media::plan::{self, AudioWork, Plan, RenditionPlan, VideoWork};

/// A lane with the channel its input comes in by.
pub(super) type Fed<Lane, Item> = (Lane, Receiver<Item>);

/// The pipeline's parts, connected and ready to run.
pub(super) struct Wiring<'p> {
    /// Per input stream: where the demuxer sends its packets.
    pub routes: Vec<Route>,
    /// Per output file: what its muxer receives.
    pub muxers: Vec<Receiver<MuxMsg>>,
    /// The video decoder and its renditions, when video is encoded.
    pub video: Option<VideoLanes<'p>>,
    /// One lane per encoded audio stream, with the packets it decodes.
    pub audio: Vec<Fed<AudioLane, ff::Packet>>,
    /// Caption streams, encoded and announced: the packets each slot is sent.
    pub captions: Vec<CaptionFeed>,
}

/// A caption stream's packets (in milliseconds), for its muxer's slot.
pub(super) struct CaptionFeed {
    pub mux: Sender<MuxMsg>,
    pub slot: usize,
    pub packets: Vec<ff::Packet>,
}

/// The video decoder lane (its packets in, one frame channel out per rendition) and the
/// rendition lanes those frames go to.
pub(super) struct VideoLanes<'p> {
    pub decoder: DecodeLane,
    pub packets: Receiver<ff::Packet>,
    pub frames: Vec<Sender<ff::frame::Video>>,
    pub renditions: Vec<Fed<RenditionLane<'p>, ff::frame::Video>>,
}

/// Connects `plan`'s parts for reading `input`: opens every decoder and announces every
/// copied stream to its muxers.
pub(super) fn wire<'p>(
    input: &Input,
    plan: &'p Plan,
    measures: &Measures,
) -> Result<Wiring<'p>, MediaError> {
    // Channels: one into each muxer; one into each decoder lane; one per rendition.
    let (mux_tx, muxers): (Vec<Sender<MuxMsg>>, Vec<_>) =
        plan.outputs.iter().map(|_| bounded::<MuxMsg>(256)).unzip();
    let mut routes: Vec<Route> = (0..input.ctx.nb_streams())
        .map(|_| Route::default())
        .collect();
    announce_copies(input, plan, &mux_tx, &mut routes);
    // Decoders are opened here so a broken stream fails before any thread starts.
    let video = open_video_lanes(input, plan, &mux_tx, &mut routes)?;
    let audio = open_audio_lanes(input, plan, measures, &mux_tx, &mut routes)?;
    let captions = announce_captions(plan, &mux_tx)?;
    end_idle_slots(plan, &mux_tx);
    // The coordinator keeps no sender: each muxer ends when its last producer does.
    drop(mux_tx);
    Ok(Wiring {
        routes,
        muxers,
        video,
        audio,
        captions,
    })
}

/// Caption streams are encoded now (all their cues are known) and announced; a thread
/// sends their packets once the muxers run.
fn announce_captions(
    plan: &Plan,
    mux_tx: &[Sender<MuxMsg>],
) -> Result<Vec<CaptionFeed>, MediaError> {
    let mut feeds = Vec::new();
    for c in &plan.captions {
        let (params, packets) = captions::encoded(&c.track, c.encoder)?;
        let mux = mux_tx[c.target.output].clone();
        let setup = StreamSetup {
            params,
            time_base: captions::MILLISECONDS,
            frame_rate: None,
            display_matrix: None,
            hdr: HdrMetadata::default(),
            hvc1: false,
            summary: StreamSummary::default(),
        };
        let _ = mux.send(MuxMsg::Stream {
            slot: c.target.slot,
            setup: Box::new(setup),
        });
        feeds.push(CaptionFeed {
            mux,
            slot: c.target.slot,
            packets,
        });
    }
    Ok(feeds)
}

/// Slots nothing in the plan produces (a split job's part writes only some of each output's
/// streams) are ended at once, so their muxers do not wait for them.
fn end_idle_slots(plan: &Plan, mux_tx: &[Sender<MuxMsg>]) {
    let mut produced: Vec<plan::Target> = copied_streams(plan)
        .into_iter()
        .flat_map(|(_, targets)| targets)
        .collect();
    if let Some(v) = &plan.video
        && let VideoWork::Encode { renditions, .. } = &v.work
    {
        produced.extend(renditions.iter().map(|r| r.target));
    }
    produced.extend(plan.captions.iter().map(|c| c.target));
    for a in &plan.audio {
        if let AudioWork::Encode { groups } = &a.work {
            produced.extend(groups.iter().flat_map(|(_, t)| t.iter().copied()));
        }
    }
    for (output, o) in plan.outputs.iter().enumerate() {
        for slot in 0..o.slots.len() {
            if !produced.contains(&plan::Target { output, slot }) {
                let _ = mux_tx[output].send(MuxMsg::End { slot });
            }
        }
    }
}

/// The input streams that are copied, and where each goes.
fn copied_streams(plan: &Plan) -> Vec<(usize, Vec<plan::Target>)> {
    let mut copies: Vec<(usize, Vec<plan::Target>)> = plan
        .copies
        .iter()
        .map(|c| (c.input, c.targets.clone()))
        .collect();
    if let Some(v) = &plan.video
        && let VideoWork::Copy { targets } = &v.work
    {
        copies.push((v.input, targets.clone()));
    }
    for a in &plan.audio {
        if let AudioWork::Copy { targets } = &a.work {
            copies.push((a.input, targets.clone()));
        }
    }
    copies
}

/// Copied streams announce themselves now, from the input's parameters, and their packets
/// are routed straight to the muxers.
fn announce_copies(input: &Input, plan: &Plan, mux_tx: &[Sender<MuxMsg>], routes: &mut [Route]) {
    for (index, targets) in copied_streams(plan) {
        let Some(stream) = input.ctx.stream(index) else {
            continue;
        };
        let facts = ffi::stream_facts(&stream);
        let mut params = stream.parameters().clone();
        ffi::reset_codec_tag(&mut params);
        let rate = stream.avg_frame_rate();
        for t in &targets {
            let setup = StreamSetup {
                params: params.clone(),
                time_base: stream.time_base(),
                frame_rate: (facts.medium == Some("video") && rate.numerator() > 0).then_some(rate),
                display_matrix: facts.display_matrix,
                hdr: HdrMetadata::default(),
                hvc1: plan.outputs[t.output].hvc1 && facts.codec == "hevc",
                summary: StreamSummary::default(),
            };
            let _ = mux_tx[t.output].send(MuxMsg::Stream {
                slot: t.slot,
                setup: Box::new(setup),
            });
        }
        routes[index]
            .copy
            .extend(targets.iter().map(|t| (mux_tx[t.output].clone(), t.slot)));
    }
}

/// Opens the video decoder, when the plan encodes video, and a lane per rendition.
fn open_video_lanes<'p>(
    input: &Input,
    plan: &'p Plan,
    mux_tx: &[Sender<MuxMsg>],
    routes: &mut [Route],
) -> Result<Option<VideoLanes<'p>>, MediaError> {
    let Some(v) = &plan.video else {
        return Ok(None);
    };
    let VideoWork::Encode {
        deinterlace,
        rotation,
        frame_rate,
        hdr,
        renditions,
    } = &v.work
    else {
        return Ok(None);
    };
    let stream = input
        .ctx
        .stream(v.input)
        .ok_or_else(|| MediaError::Internal("video stream vanished".into()))?;
    let decoder = decode::open(&input.path, &stream)?
        .video()
        .map_err(|e| MediaError::Decode {
            path: input.path.clone(),
            stream: v.input,
            codec: ffi::stream_facts(&stream).codec,
            reason: e.to_string(),
        })?;
    let (packet_tx, packets) = bounded::<ff::Packet>(64);
    routes[v.input].decode = Some(packet_tx);
    let tonemap_once = hdr::tonemap_once(renditions.iter().map(|r| r.hdr));
    let (frames, renditions) = rendition_lanes(
        plan,
        renditions,
        (stream.time_base(), *frame_rate),
        hdr.as_ref(),
        mux_tx,
    );
    Ok(Some(VideoLanes {
        decoder: DecodeLane {
            decoder,
            health: decode::Health::new(&input.path, &stream),
            time_base: stream.time_base(),
            frame_rate: *frame_rate,
            deinterlace: *deinterlace,
            rotation: *rotation,
            hdr: hdr.clone(),
            tonemap_once,
            poster_at: plan.poster_at,
            keep_us: plan.keep_us,
        },
        packets,
        frames,
        renditions,
    }))
}

/// A lane per rendition, each with the channel its frames come in by; the first counts
/// frames for progress.
fn rendition_lanes<'p>(
    plan: &Plan,
    renditions: &'p [RenditionPlan],
    (time_base, frame_rate): (ff::Rational, Option<ff::Rational>),
    hdr: Option<&'p HdrColour>,
    mux_tx: &[Sender<MuxMsg>],
) -> (
    Vec<Sender<ff::frame::Video>>,
    Vec<Fed<RenditionLane<'p>, ff::frame::Video>>,
) {
    let mut frame_txs = Vec::new();
    let mut lanes = Vec::new();
    // A poster's rendition sees one frame: another counts them, when there is one.
    let counter = renditions
        .iter()
        .position(|r| r.pick_at.is_none())
        .unwrap_or(0);
    for (i, r) in renditions.iter().enumerate() {
        let (tx, rx) = bounded::<ff::frame::Video>(4);
        frame_txs.push(tx);
        lanes.push((
            video::RenditionLane {
                plan: r,
                counts_frames: i == counter,
                time_base,
                frame_rate,
                hdr,
                global_header: plan.outputs[r.target.output].global_header,
                hvc1: plan.outputs[r.target.output].hvc1,
                mux: mux_tx[r.target.output].clone(),
            },
            rx,
        ));
    }
    (frame_txs, lanes)
}

/// Opens a decoder lane per encoded audio stream, each feeding its encoder groups (those
/// that normalise loudness given what the first pass measured).
fn open_audio_lanes(
    input: &Input,
    plan: &Plan,
    measures: &Measures,
    mux_tx: &[Sender<MuxMsg>],
    routes: &mut [Route],
) -> Result<Vec<Fed<AudioLane, ff::Packet>>, MediaError> {
    let mut audio_lanes = Vec::new();
    let trim = plan.clip_us.map(plan::audio_trim);
    for (i, a) in plan.audio.iter().enumerate() {
        let AudioWork::Encode { groups } = &a.work else {
            continue;
        };
        let opened = decode::open_audio(input, a.input)?;
        let (packet_tx, packet_rx) = bounded::<ff::Packet>(128);
        routes[a.input].decode = Some(packet_tx);
        let groups = groups
            .iter()
            .enumerate()
            .map(|(g, (spec, targets))| {
                // Targets share an encoder only when their muxers agree on this.
                let global_header = targets
                    .first()
                    .is_some_and(|t| plan.outputs[t.output].global_header);
                let outputs = targets.iter().map(|t| t.output).collect();
                let senders = targets
                    .iter()
                    .map(|t| (mux_tx[t.output].clone(), t.slot))
                    .collect();
                let group = audio::Group::new(spec.clone(), senders, global_header, trim.clone());
                match measures.get(i).and_then(|m| m.get(g)).copied().flatten() {
                    Some(m) => group.normalising(a.input, m.measured, outputs),
                    None => group,
                }
            })
            .collect();
        audio_lanes.push((
            AudioLane {
                decoder: opened.decoder,
                health: opened.health,
                time_base: opened.time_base,
                groups,
            },
            packet_rx,
        ));
    }
    Ok(audio_lanes)
}
