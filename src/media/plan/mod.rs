//! The plan for one transcode: which input streams are used, how each is treated (copied,
//! or decoded, filtered and encoded per rendition), and which output file and stream slot
//! each result goes to. Decided once, from the probe and the preset, before any work starts.

mod clip;
mod ladder;
mod merge;
mod queries;
mod rates;
mod saved;

use std::sync::Arc;

use ffmpeg_next as ff;

use super::encode::{self, AudioEncoderSpec, VideoEncoderSpec};
use super::error::MediaError;
use super::ffi::{self, DurationSource};
use super::geometry::Rotation;
use super::hdr::{HdrColour, Tags};
use super::input::{Input, OutputLimit};
use super::probe::{ProbeReport, StreamReport};
use super::watermark::Logo;
use crate::preset::{
    AudioEncoding, AudioOutput, Container, HdrMode, PosterAt, Preset, RateControl, Storyboard,
    VideoCodec, VideoEncoding, VideoOutput,
};
pub(crate) use clip::{READ_PAST_US, audio_trim, clip};
use ladder::Ladder;
pub(crate) use merge::merge;
use rates::{SourceRates, f64_to_rational, frame_grid};
pub use saved::SavedPlan;

/// Where an encoded or copied stream goes: output file `output`, stream slot `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Target {
    pub output: usize,
    pub slot: usize,
}

/// Per output stream: what players should know about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SlotInfo {
    pub language: Option<String>,
    pub default: bool,
}

#[derive(Debug)]
pub(crate) struct OutputPlan {
    /// The HLS rendition this output carries, in an ABR ladder.
    pub rendition: Option<String>,
    pub slots: Vec<SlotInfo>,
    /// Its muxer wants codec headers out of band.
    pub global_header: bool,
    /// Its container is MP4 or MOV (HEVC is tagged `hvc1` there).
    pub hvc1: bool,
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub outputs: Vec<OutputPlan>,
    pub video: Option<VideoPlan>,
    pub audio: Vec<AudioPlan>,
    /// Streams copied as they are: subtitles; in a plan of several presets, also a video or
    /// audio stream one preset copies while another encodes it.
    pub copies: Vec<CopyPlan>,
    pub duration: Option<f64>,
    /// The duration comes from timestamps or headers, not a bit-rate estimate, so an output
    /// much shorter than it means the input is cut short.
    pub duration_trusted: bool,
    /// How far the output may run before the input counts as lying about its length.
    pub limit: OutputLimit,
    /// Subtracted from every timestamp so the output starts at zero (microseconds).
    pub start_offset_us: i64,
    /// For a poster: the media time of the wanted picture (seconds). Set only when the
    /// picture is all the plan makes, so reading can start there; a poster made beside
    /// other outputs picks its frame in its rendition (`RenditionPlan::pick_at`).
    pub poster_at: Option<f64>,
    /// The muxer wants codec headers out of band (every output's, in a plan of one preset).
    pub global_header: bool,
    /// Only the video frames whose output time (µs) lies in `[from, until)` are kept (one
    /// part of a split job); None keeps them all.
    pub keep_us: Option<(i64, i64)>,
    /// Per input stream, samples its first packet's decoder drops (priming a copy lost).
    pub first_packet_skip: Vec<(usize, u32)>,
    /// A job's clip: the output runs from 0 (the clip's start, folded into
    /// `start_offset_us`) for this long (µs; `i64::MAX` to the input's end); reading starts
    /// at the keyframe before it, audio is trimmed to it (see `clip`).
    pub clip_us: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct VideoPlan {
    pub input: usize,
    pub work: VideoWork,
}

#[derive(Debug)]
pub(crate) enum VideoWork {
    Copy {
        targets: Vec<Target>,
    },
    Encode {
        deinterlace: bool,
        rotation: Rotation,
        /// The source's real (average) frame rate, when known: what encoders are told.
        frame_rate: Option<ff::Rational>,
        /// The stream's HDR colour, when its parameters say it is HDR: what pictures that
        /// do not say are taken to be.
        hdr: Option<HdrColour>,
        renditions: Vec<RenditionPlan>,
    },
}

#[derive(Debug)]
pub(crate) struct RenditionPlan {
    pub target: Target,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    /// Frames are placed on this rate's grid: the preset's cap when the source is faster,
    /// or the source's base rate for codecs and containers that need a constant rate. At
    /// most one frame goes on each tick (the one the `fps` filter would pick) and none is
    /// ever duplicated, so the frame count never grows. None: timestamps pass through.
    pub grid: Option<ff::Rational>,
    pub spec: VideoEncoderSpec,
    /// Encode only the one frame at this media time (seconds): a poster made from the same
    /// decode as other outputs.
    pub pick_at: Option<f64>,
    /// A storyboard: a thumbnail every interval, tiled into sheets.
    pub tiles: Option<Storyboard>,
    /// A watermark composited on every picture.
    pub logo: Option<Arc<Logo>>,
    /// What becomes of HDR pictures: tone-mapped to SDR, or kept.
    pub hdr: HdrMode,
}

#[derive(Debug)]
pub(crate) struct AudioPlan {
    pub input: usize,
    pub work: AudioWork,
}

#[derive(Debug)]
pub(crate) enum AudioWork {
    Copy {
        targets: Vec<Target>,
    },
    /// One encoder per distinct setting, each feeding one or more outputs.
    Encode {
        groups: Vec<(AudioEncoderSpec, Vec<Target>)>,
    },
}

#[derive(Debug)]
pub(crate) struct CopyPlan {
    pub input: usize,
    pub targets: Vec<Target>,
}

/// Builds the plan for transcoding `input` (probed as `probe`) with `preset`.
pub(crate) fn plan(
    input: &Input,
    probe: &ProbeReport,
    preset: &Preset,
) -> Result<Plan, MediaError> {
    let muxer_flags = ffi::muxer_flags(preset.container.muxer()).unwrap_or(0);
    let ladder = Ladder::for_input(input, probe, preset);
    let global_header = muxer_flags & ffi::AVFMT_GLOBALHEADER != 0;
    let hvc1 = matches!(preset.container, Container::Mp4 | Container::Mov);
    let mut outputs = output_plans(&ladder, global_header, hvc1);
    // Each step adds its streams' slots to the outputs, so slots number video first, then
    // audio, then subtitles.
    let video = plan_video(input, probe, preset, &ladder, &mut outputs)?;
    let audio = plan_audio(input, probe, preset, &ladder, &mut outputs)?;
    let copies = plan_subtitles(input, probe, preset, &mut outputs);
    if video.is_none() && audio.is_empty() {
        return Err(MediaError::NoStreams {
            path: input.path.clone(),
            why: nothing_to_do(probe, preset),
        });
    }
    let duration = probe.duration_seconds;
    let poster_at = poster_time(preset, duration);
    let duration_source = ffi::duration_source(&input.ctx);
    Ok(Plan {
        outputs,
        video,
        audio,
        copies,
        duration: duration.filter(|d| *d > 0.0),
        duration_trusted: duration_source != DurationSource::BitRate,
        limit: OutputLimit::new(duration, duration_source),
        start_offset_us: ffi::input_start_time(&input.ctx).unwrap_or(0),
        poster_at,
        global_header,
        keep_us: None,
        first_packet_skip: Vec::new(),
        clip_us: None,
    })
}

/// One output file per rendition of the ladder (one in all without a ladder), no slots yet.
fn output_plans(ladder: &Ladder, global_header: bool, hvc1: bool) -> Vec<OutputPlan> {
    let output_count = ladder.names.len().max(1);
    (0..output_count)
        .map(|i| OutputPlan {
            rendition: ladder.names.get(i).cloned(),
            slots: Vec::new(),
            global_header,
            hvc1,
        })
        .collect()
}

/// Adds a stream slot to output file `output`.
fn add_slot(outputs: &mut [OutputPlan], output: usize, info: SlotInfo) -> Target {
    let slot = outputs[output].slots.len();
    outputs[output].slots.push(info);
    Target { output, slot }
}

/// What becomes of the input's video: copied into every output, encoded once per
/// rendition, or nothing (no video in the input or the preset).
fn plan_video(
    input: &Input,
    probe: &ProbeReport,
    preset: &Preset,
    ladder: &Ladder,
    outputs: &mut [OutputPlan],
) -> Result<Option<VideoPlan>, MediaError> {
    match (&preset.video, probe.video()) {
        (Some(VideoOutput::Copy), Some(sv)) => {
            plan_video_copy(input, sv, preset, outputs).map(Some)
        }
        (Some(VideoOutput::Encode(v)), Some(sv)) => Ok(Some(plan_video_encode(
            input, sv, v, preset, ladder, outputs,
        ))),
        _ => Ok(None),
    }
}

/// Video copied into every output, when the container can hold its codec.
fn plan_video_copy(
    input: &Input,
    sv: &StreamReport,
    preset: &Preset,
    outputs: &mut [OutputPlan],
) -> Result<VideoPlan, MediaError> {
    let container = preset.container;
    let codec_id = stream_codec_id(input, sv.index);
    if ffi::muxer_supports(container.muxer(), codec_id) == Some(false) {
        return Err(MediaError::Unsupported(format!(
            "preset {}: cannot copy {} video into {container}",
            preset.name, sv.codec
        )));
    }
    let targets = (0..outputs.len())
        .map(|o| add_slot(outputs, o, slot_info(sv, true)))
        .collect();
    Ok(VideoPlan {
        input: sv.index,
        work: VideoWork::Copy { targets },
    })
}

/// Video decoded once, deinterlaced and rotated as the source needs, and encoded per
/// rendition.
fn plan_video_encode(
    input: &Input,
    sv: &StreamReport,
    v: &VideoEncoding,
    preset: &Preset,
    ladder: &Ladder,
    outputs: &mut [OutputPlan],
) -> VideoPlan {
    let container = preset.container;
    let rates = SourceRates::of(input, sv.index);
    // Timestamps pass through (variable frame rate kept) unless the rate is capped,
    // or the codec or container needs a constant rate (MPEG-4 Part 2's small time
    // base; AVI, which has no timestamps of its own).
    let constant_rate = v.codec == VideoCodec::Mpeg4 || container == Container::Avi;
    let grid = if container.picture() {
        None
    } else {
        frame_grid(v.max_fps.map(f64_to_rational), rates, constant_rate)
    };
    let renditions = rendition_plans(sv, v, preset, ladder, grid, outputs);
    let facts = input
        .ctx
        .stream(sv.index)
        .map(|s| ffi::stream_facts(&s))
        .unwrap_or_default();
    VideoPlan {
        input: sv.index,
        work: VideoWork::Encode {
            deinterlace: matches!(sv.field_order.as_deref(), Some("tt" | "bb" | "tb" | "bt")),
            rotation: Rotation::from_display_degrees(facts.rotation),
            frame_rate: rates.average.or(rates.base),
            hdr: stream_hdr(sv),
            renditions,
        },
    }
}

/// The stream's HDR colour, as its parameters (the container's or the codec headers' tags)
/// say it.
fn stream_hdr(sv: &StreamReport) -> Option<HdrColour> {
    HdrColour::from_tags(&Tags {
        transfer: sv.color_transfer.as_deref(),
        primaries: sv.color_primaries.as_deref(),
        matrix: sv.color_space.as_deref(),
        range: sv.color_range.as_deref(),
    })
}

/// The encodings of the video: one per rung of the ladder, or the preset's own without one.
fn rendition_plans(
    sv: &StreamReport,
    v: &VideoEncoding,
    preset: &Preset,
    ladder: &Ladder,
    grid: Option<ff::Rational>,
    outputs: &mut [OutputPlan],
) -> Vec<RenditionPlan> {
    let segment = preset.hls.as_ref().map(|h| h.segment_seconds);
    let tile_width = preset.storyboard.map(|s| s.tile_width);
    let make_spec = |rate: &RateControl| {
        let mut spec = encode::video_spec(v, rate);
        if let Some(s) = segment {
            spec.keyframe_seconds = s;
            spec.force_keyframes_every = Some(s);
        }
        spec
    };
    if ladder.video.is_empty() {
        let target = add_slot(outputs, 0, slot_info(sv, true));
        vec![RenditionPlan {
            target,
            max_width: tile_width.or(v.max_width),
            max_height: if tile_width.is_some() {
                None
            } else {
                v.max_height
            },
            grid,
            spec: make_spec(&v.rate),
            pick_at: None,
            tiles: preset.storyboard,
            logo: None,
            hdr: v.hdr,
        }]
    } else {
        ladder
            .video
            .iter()
            .enumerate()
            .map(|(o, r)| RenditionPlan {
                target: add_slot(outputs, o, slot_info(sv, true)),
                max_width: r.max_width.or(v.max_width),
                max_height: r.max_height.or(v.max_height),
                grid,
                spec: make_spec(&r.rate),
                pick_at: None,
                tiles: None,
                logo: None,
                hdr: v.hdr,
            })
            .collect()
    }
}

/// The audio streams to keep: all of them, or the main one when the container holds fewer.
fn audio_sources(probe: &ProbeReport, container: Container) -> Vec<&StreamReport> {
    let all: Vec<_> = probe.audio().collect();
    if container.max_audio_tracks() >= all.len() {
        all
    } else {
        let main = all.iter().find(|s| s.default).or(all.first()).copied();
        main.into_iter()
            .take(container.max_audio_tracks())
            .collect()
    }
}

/// What becomes of each kept audio stream: copied into every output, or encoded; the first
/// is every output's default track.
fn plan_audio(
    input: &Input,
    probe: &ProbeReport,
    preset: &Preset,
    ladder: &Ladder,
    outputs: &mut [OutputPlan],
) -> Result<Vec<AudioPlan>, MediaError> {
    let mut audio = Vec::new();
    let Some(preset_audio) = &preset.audio else {
        return Ok(audio);
    };
    for (i, sa) in audio_sources(probe, preset.container).iter().enumerate() {
        let work = match preset_audio {
            AudioOutput::Copy => audio_copy(input, sa, i == 0, preset, ladder, outputs)?,
            AudioOutput::Encode(a) => audio_encode(sa, i == 0, a, ladder, outputs),
        };
        audio.push(AudioPlan {
            input: sa.index,
            work,
        });
    }
    Ok(audio)
}

/// An audio stream copied into every output, when the container can hold its codec.
fn audio_copy(
    input: &Input,
    sa: &StreamReport,
    first: bool,
    preset: &Preset,
    ladder: &Ladder,
    outputs: &mut [OutputPlan],
) -> Result<AudioWork, MediaError> {
    let container = preset.container;
    let codec_id = stream_codec_id(input, sa.index);
    if ffi::muxer_supports(container.muxer(), codec_id) == Some(false) {
        return Err(MediaError::Unsupported(format!(
            "preset {}: cannot copy {} audio into {container}",
            preset.name, sa.codec
        )));
    }
    let targets = ladder
        .audio_outputs(outputs.len())
        .map(|o| add_slot(outputs, o, slot_info(sa, first)))
        .collect();
    Ok(AudioWork::Copy { targets })
}

/// An audio stream encoded for every output: renditions that ask for the same audio bit
/// rate share one encoder.
fn audio_encode(
    sa: &StreamReport,
    first: bool,
    a: &AudioEncoding,
    ladder: &Ladder,
    outputs: &mut [OutputPlan],
) -> AudioWork {
    let mut groups: Vec<(Option<u64>, Vec<Target>)> = Vec::new();
    for o in ladder.audio_outputs(outputs.len()) {
        let bitrate = ladder.audio_bitrates.get(o).copied().flatten();
        let target = add_slot(outputs, o, slot_info(sa, first));
        match groups.iter_mut().find(|(b, _)| *b == bitrate) {
            Some((_, targets)) => targets.push(target),
            None => groups.push((bitrate, vec![target])),
        }
    }
    AudioWork::Encode {
        groups: groups
            .into_iter()
            .map(|(bitrate, targets)| (encode::audio_spec(a, bitrate), targets))
            .collect(),
    }
}

/// The subtitle streams copied into the first output, when the preset asks for them and
/// the container can hold them.
fn plan_subtitles(
    input: &Input,
    probe: &ProbeReport,
    preset: &Preset,
    outputs: &mut [OutputPlan],
) -> Vec<CopyPlan> {
    let container = preset.container;
    let mut subtitles = Vec::new();
    if !preset.copy_subtitles {
        return subtitles;
    }
    for s in probe.streams.iter().filter(|s| s.kind == "subtitle") {
        if ffi::muxer_supports(container.muxer(), stream_codec_id(input, s.index)) != Some(true) {
            tracing::warn!(
                "subtitle stream #{} ({}) cannot go into {container}; left out",
                s.index,
                s.codec
            );
            continue;
        }
        let target = add_slot(outputs, 0, slot_info(s, false));
        subtitles.push(CopyPlan {
            input: s.index,
            targets: vec![target],
        });
    }
    subtitles
}

/// For a poster: the media time of the picture the preset asks for, kept inside the input.
fn poster_time(preset: &Preset, duration: Option<f64>) -> Option<f64> {
    preset.poster.map(|p| {
        let d = duration.unwrap_or(0.0);
        let at = match p {
            PosterAt::Percent(pct) => d * pct / 100.0,
            PosterAt::Seconds(s) => s,
        };
        at.clamp(0.0, (d - 0.05).max(0.0))
    })
}

fn nothing_to_do(probe: &ProbeReport, preset: &Preset) -> String {
    let has_video = probe.video().is_some();
    let has_audio = probe.audio().next().is_some();
    match (has_video, has_audio) {
        (false, false) => "the input has no video or audio stream".into(),
        (true, false) if preset.video.is_none() => format!(
            "preset {} makes audio only ({}) and the input has no audio stream",
            preset.name, preset.container
        ),
        (false, true) if preset.audio.is_none() => format!(
            "preset {} makes a picture or video only ({}) and the input has no video stream",
            preset.name, preset.container
        ),
        _ => format!("preset {} uses none of the input's streams", preset.name),
    }
}

fn slot_info(s: &StreamReport, default: bool) -> SlotInfo {
    SlotInfo {
        language: s.language.clone().filter(|l| l != "und"),
        default,
    }
}

fn stream_codec_id(input: &Input, index: usize) -> ff::codec::Id {
    input
        .ctx
        .stream(index)
        .map_or(ff::codec::Id::None, |s| s.parameters().id())
}

/// Which preset fits an output file name's extension (for `ffarm transcode IN OUT` without
/// `--preset`).
pub fn preset_for_extension(ext: &str) -> Option<&'static str> {
    let ext = ext.to_ascii_lowercase();
    crate::preset::FORMAT_DEFAULTS
        .iter()
        .copied()
        .find(|f| *f == ext)
        .or(match ext.as_str() {
            "jpg" | "jpeg" => Some("poster-jpg"),
            "vtt" => Some("storyboard"),
            _ => None,
        })
}
