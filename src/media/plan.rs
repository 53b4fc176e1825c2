//! The plan for one transcode: which input streams are used, how each is treated (copied,
//! or decoded, filtered and encoded per rendition), and which output file and stream slot
//! each result goes to. Decided once, from the probe and the preset, before any work starts.

use ffmpeg_next as ff;

use super::encode::{self, AudioEncoderSpec, VideoEncoderSpec};
use super::error::MediaError;
use super::ffi::{self, DurationSource};
use super::geometry::{self, Rotation};
use super::input::{Input, OutputLimit};
use super::probe::ProbeReport;
use crate::preset::{
    AudioOutput, Container, PosterAt, Preset, RateControl, Rendition, VideoCodec, VideoOutput,
};

/// Where an encoded or copied stream goes: output file `output`, stream slot `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub output: usize,
    pub slot: usize,
}

/// Per output stream: what players should know about it.
#[derive(Debug, Clone)]
pub(crate) struct SlotInfo {
    pub language: Option<String>,
    pub default: bool,
}

#[derive(Debug)]
pub(crate) struct OutputPlan {
    /// The HLS rendition this output carries, in an ABR ladder.
    pub rendition: Option<String>,
    pub slots: Vec<SlotInfo>,
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub outputs: Vec<OutputPlan>,
    pub video: Option<VideoPlan>,
    pub audio: Vec<AudioPlan>,
    pub subtitles: Vec<CopyPlan>,
    pub duration: Option<f64>,
    /// The duration comes from timestamps or headers, not a bit-rate estimate, so an output
    /// much shorter than it means the input is cut short.
    pub duration_trusted: bool,
    /// How far the output may run before the input counts as lying about its length.
    pub limit: OutputLimit,
    /// Subtracted from every timestamp so the output starts at zero (microseconds).
    pub start_offset_us: i64,
    /// For a poster: the media time of the wanted picture (seconds).
    pub poster_at: Option<f64>,
    /// The muxer wants codec headers out of band.
    pub global_header: bool,
}

impl Plan {
    /// Per output file, the HLS rendition it carries.
    pub fn renditions(&self) -> Vec<Option<String>> {
        self.outputs.iter().map(|o| o.rendition.clone()).collect()
    }
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
    let container = preset.container;
    let muxer_flags = ffi::muxer_flags(container.muxer()).unwrap_or(0);
    let ladder = Ladder::for_input(input, probe, preset);
    let output_count = ladder.names.len().max(1);
    let mut outputs: Vec<OutputPlan> = (0..output_count)
        .map(|i| OutputPlan {
            rendition: ladder.names.get(i).cloned(),
            slots: Vec::new(),
        })
        .collect();
    let add_slot = |outputs: &mut Vec<OutputPlan>, output: usize, info: SlotInfo| {
        let slot = outputs[output].slots.len();
        outputs[output].slots.push(info);
        Target { output, slot }
    };

    let source_video = probe.video();
    let video = match (&preset.video, source_video) {
        (Some(VideoOutput::Copy), Some(sv)) => {
            let codec_id = stream_codec_id(input, sv.index);
            if ffi::muxer_supports(container.muxer(), codec_id) == Some(false) {
                return Err(MediaError::Unsupported(format!(
                    "preset {}: cannot copy {} video into {container}",
                    preset.name, sv.codec
                )));
            }
            let targets = (0..output_count)
                .map(|o| add_slot(&mut outputs, o, slot_info(sv, true)))
                .collect();
            Some(VideoPlan {
                input: sv.index,
                work: VideoWork::Copy { targets },
            })
        }
        (Some(VideoOutput::Encode(v)), Some(sv)) => {
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
            let segment = preset.hls.as_ref().map(|h| h.segment_seconds);
            let make_spec = |rate: &RateControl| {
                let mut spec = encode::video_spec(v, rate);
                if let Some(s) = segment {
                    spec.keyframe_seconds = s;
                    spec.force_keyframes_every = Some(s);
                }
                spec
            };
            let renditions = if ladder.video.is_empty() {
                let target = add_slot(&mut outputs, 0, slot_info(sv, true));
                vec![RenditionPlan {
                    target,
                    max_width: v.max_width,
                    max_height: v.max_height,
                    grid,
                    spec: make_spec(&v.rate),
                }]
            } else {
                ladder
                    .video
                    .iter()
                    .enumerate()
                    .map(|(o, r)| RenditionPlan {
                        target: add_slot(&mut outputs, o, slot_info(sv, true)),
                        max_width: r.max_width.or(v.max_width),
                        max_height: r.max_height.or(v.max_height),
                        grid,
                        spec: make_spec(&r.rate),
                    })
                    .collect()
            };
            let facts = input
                .ctx
                .stream(sv.index)
                .map(|s| ffi::stream_facts(&s))
                .unwrap_or_default();
            Some(VideoPlan {
                input: sv.index,
                work: VideoWork::Encode {
                    deinterlace: matches!(
                        sv.field_order.as_deref(),
                        Some("tt" | "bb" | "tb" | "bt")
                    ),
                    rotation: Rotation::from_display_degrees(facts.rotation),
                    frame_rate: rates.average.or(rates.base),
                    renditions,
                },
            })
        }
        _ => None,
    };

    let audio_sources: Vec<_> = {
        let all: Vec<_> = probe.audio().collect();
        if container.max_audio_tracks() >= all.len() {
            all
        } else {
            let main = all.iter().find(|s| s.default).or(all.first()).copied();
            main.into_iter()
                .take(container.max_audio_tracks())
                .collect()
        }
    };
    let mut audio = Vec::new();
    if let Some(preset_audio) = &preset.audio {
        for (i, sa) in audio_sources.iter().enumerate() {
            let info = |first: bool| SlotInfo {
                language: sa.language.clone().filter(|l| l != "und"),
                default: first,
            };
            let work = match preset_audio {
                AudioOutput::Copy => {
                    let codec_id = stream_codec_id(input, sa.index);
                    if ffi::muxer_supports(container.muxer(), codec_id) == Some(false) {
                        return Err(MediaError::Unsupported(format!(
                            "preset {}: cannot copy {} audio into {container}",
                            preset.name, sa.codec
                        )));
                    }
                    let targets = (0..output_count)
                        .map(|o| add_slot(&mut outputs, o, info(i == 0)))
                        .collect();
                    AudioWork::Copy { targets }
                }
                AudioOutput::Encode(a) => {
                    // Renditions that ask for the same audio bit rate share one encoder.
                    let mut groups: Vec<(Option<u64>, Vec<Target>)> = Vec::new();
                    for o in 0..output_count {
                        let bitrate = ladder.audio_bitrates.get(o).copied().flatten();
                        let target = add_slot(&mut outputs, o, info(i == 0));
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
            };
            audio.push(AudioPlan {
                input: sa.index,
                work,
            });
        }
    }

    let mut subtitles = Vec::new();
    if preset.copy_subtitles {
        for s in probe.streams.iter().filter(|s| s.kind == "subtitle") {
            if ffi::muxer_supports(container.muxer(), stream_codec_id(input, s.index)) != Some(true)
            {
                tracing::warn!(
                    "subtitle stream #{} ({}) cannot go into {container}; left out",
                    s.index,
                    s.codec
                );
                continue;
            }
            let target = add_slot(&mut outputs, 0, slot_info(s, false));
            subtitles.push(CopyPlan {
                input: s.index,
                targets: vec![target],
            });
        }
    }

    if video.is_none() && audio.is_empty() {
        return Err(MediaError::NoStreams {
            path: input.path.clone(),
            why: nothing_to_do(probe, preset),
        });
    }

    let duration = probe.duration_seconds;
    let poster_at = preset.poster.map(|p| {
        let d = duration.unwrap_or(0.0);
        let at = match p {
            PosterAt::Percent(pct) => d * pct / 100.0,
            PosterAt::Seconds(s) => s,
        };
        at.clamp(0.0, (d - 0.05).max(0.0))
    });
    let duration_source = ffi::duration_source(&input.ctx);
    Ok(Plan {
        outputs,
        video,
        audio,
        subtitles,
        duration: duration.filter(|d| *d > 0.0),
        duration_trusted: duration_source != DurationSource::BitRate,
        limit: OutputLimit::new(duration, duration_source),
        start_offset_us: ffi::input_start_time(&input.ctx).unwrap_or(0),
        poster_at,
        global_header: muxer_flags & ffi::AVFMT_GLOBALHEADER != 0,
    })
}

/// An HLS ladder as planned for one input: per output, the rendition's name and audio bit
/// rate, and the video rung it encodes.
#[derive(Debug, Default)]
struct Ladder<'p> {
    names: Vec<String>,
    audio_bitrates: Vec<Option<u64>>,
    /// Empty for an audio-only input.
    video: Vec<&'p Rendition>,
}

/// What the one rendition of an audio-only input is called.
const AUDIO_ONLY_RENDITION: &str = "audio";

impl<'p> Ladder<'p> {
    /// The preset's renditions, minus those that would come out the same size as another: a
    /// small source would otherwise get several identical renditions (nothing is upscaled).
    /// Of renditions that tie, the one with the smallest size box — whose bit rate was chosen
    /// for a picture that size — is kept. An input without video would make every rung the
    /// same audio, so it gets one rendition, `audio`, with the best audio bit rate any rung
    /// asks for.
    fn for_input(input: &Input, probe: &ProbeReport, preset: &'p Preset) -> Ladder<'p> {
        let Some(hls) = &preset.hls else {
            return Ladder::default();
        };
        if hls.renditions.is_empty() {
            return Ladder::default();
        }
        let Some(sv) = probe.video() else {
            return Ladder {
                names: vec![AUDIO_ONLY_RENDITION.into()],
                audio_bitrates: vec![hls.renditions.iter().filter_map(|r| r.audio_bitrate).max()],
                video: Vec::new(),
            };
        };
        let video = distinct_rungs(input, sv.index, preset, &hls.renditions);
        Ladder {
            names: video.iter().map(|r| r.name.clone()).collect(),
            audio_bitrates: video.iter().map(|r| r.audio_bitrate).collect(),
            video,
        }
    }
}

fn distinct_rungs<'p>(
    input: &Input,
    video_index: usize,
    preset: &Preset,
    rungs: &'p [Rendition],
) -> Vec<&'p Rendition> {
    let facts = input
        .ctx
        .stream(video_index)
        .map(|s| ffi::stream_facts(&s))
        .unwrap_or_default();
    let (mut w, mut h) = (facts.width, facts.height);
    let mut sar = facts.sample_aspect_ratio.unwrap_or((1, 1));
    if matches!(
        Rotation::from_display_degrees(facts.rotation),
        Rotation::Clockwise90 | Rotation::CounterClockwise90
    ) {
        std::mem::swap(&mut w, &mut h);
        sar = (sar.1, sar.0);
    }
    let default = |r: &Rendition| {
        let (mw, mh) = match &preset.video {
            Some(VideoOutput::Encode(v)) => {
                (r.max_width.or(v.max_width), r.max_height.or(v.max_height))
            }
            _ => (r.max_width, r.max_height),
        };
        (
            geometry::fit(w, h, sar, mw, mh),
            u64::from(mw.unwrap_or(u32::MAX)) * u64::from(mh.unwrap_or(u32::MAX)),
        )
    };
    let sized: Vec<_> = rungs.iter().map(|r| (r, default(r))).collect();
    sized
        .iter()
        .filter(|(_, (size, area))| {
            !sized
                .iter()
                .any(|(_, (other, other_area))| other == size && other_area < area)
        })
        .map(|(r, _)| *r)
        .collect()
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

fn slot_info(s: &super::probe::StreamReport, default: bool) -> SlotInfo {
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

/// A video stream's frame rates as FFmpeg reports them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SourceRates {
    /// `avg_frame_rate`: frames over time, the rate a viewer sees.
    pub average: Option<ff::Rational>,
    /// `r_frame_rate`: the base rate every timestamp fits on; above the average for a
    /// variable-rate stream.
    pub base: Option<ff::Rational>,
}

impl SourceRates {
    fn of(input: &Input, index: usize) -> SourceRates {
        let sane = |r: ff::Rational| {
            (r.numerator() > 0 && r.denominator() > 0 && f64::from(r) < 1000.0).then_some(r)
        };
        match input.ctx.stream(index) {
            Some(s) => SourceRates {
                average: sane(s.avg_frame_rate()),
                base: sane(s.rate()),
            },
            None => SourceRates::default(),
        }
    }
}

/// The grid a rendition's frames go on ([`RenditionPlan::grid`]). A cap applies when the
/// source's real rate — its average, not the base rate a variable-rate stream's timestamps
/// are written in — is above it, or is unknown: frames are only ever dropped onto the cap's
/// grid, so capping an unknown rate cannot add any. Otherwise a constant-rate output gets the
/// base rate, on which every source frame has a tick of its own.
fn frame_grid(
    cap: Option<ff::Rational>,
    rates: SourceRates,
    constant_rate: bool,
) -> Option<ff::Rational> {
    let capped = match (cap, rates.average) {
        (Some(c), Some(avg)) if f64::from(avg) > f64::from(c) * 1.001 => Some(c),
        (Some(c), None) => Some(c),
        _ => None,
    };
    capped.or_else(|| {
        constant_rate.then(|| {
            rates
                .base
                .or(rates.average)
                .unwrap_or(ff::Rational::new(25, 1))
        })
    })
}

fn f64_to_rational(v: f64) -> ff::Rational {
    // Common NTSC rates keep their exact form.
    for (num, den) in [(24000, 1001), (30000, 1001), (60000, 1001)] {
        if (v - f64::from(num) / f64::from(den)).abs() < 0.005 {
            return ff::Rational::new(num, den);
        }
    }
    if (v - v.round()).abs() < 1e-9 {
        return ff::Rational::new(v.round() as i32, 1);
    }
    ff::Rational::new((v * 1000.0).round() as i32, 1000).reduce()
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
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: i32, den: i32) -> ff::Rational {
        ff::Rational::new(num, den)
    }

    fn rates(average: Option<ff::Rational>, base: Option<ff::Rational>) -> SourceRates {
        SourceRates { average, base }
    }

    #[test]
    fn a_cap_applies_only_when_the_real_rate_is_above_it() {
        let cap = Some(r(60, 1));
        // Variable frame rate: timestamps on a 120 fps base, 45 fps on average. Capping at
        // 60 would only pad it with duplicates.
        assert_eq!(
            frame_grid(cap, rates(Some(r(45, 1)), Some(r(120, 1))), false),
            None
        );
        assert_eq!(
            frame_grid(cap, rates(Some(r(60, 1)), Some(r(60, 1))), false),
            None
        );
        assert_eq!(
            frame_grid(cap, rates(Some(r(60000, 1001)), None), false),
            None,
            "59.94 is within the cap"
        );
        assert_eq!(
            frame_grid(Some(r(30, 1)), rates(Some(r(50, 1)), Some(r(50, 1))), false),
            Some(r(30, 1))
        );
        assert_eq!(frame_grid(cap, rates(None, Some(r(120, 1))), false), cap);
        assert_eq!(frame_grid(None, rates(Some(r(120, 1)), None), false), None);
    }

    #[test]
    fn constant_rate_outputs_take_the_base_rate_unless_capped() {
        let vfr = rates(Some(r(45, 1)), Some(r(120, 1)));
        assert_eq!(frame_grid(None, vfr, true), Some(r(120, 1)));
        assert_eq!(frame_grid(Some(r(60, 1)), vfr, true), Some(r(120, 1)));
        assert_eq!(
            frame_grid(Some(r(30, 1)), vfr, true),
            Some(r(30, 1)),
            "a cap below the average still applies"
        );
        assert_eq!(frame_grid(None, rates(None, None), true), Some(r(25, 1)));
    }
}
