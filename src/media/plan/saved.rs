//! A plan written down: the whole input's plan, decided once when a split job is laid out,
//! carried as JSON to every part, and read back there, so that every part sets up its filters
//! and encoders exactly as the unsplit transcode would (the same sizes, rates, time bases
//! and encoder options) without seeing the input those were decided from. The codecs are not
//! written down: they come back from the preset, which the parts are given by name.

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::{
    AudioPlan, AudioWork, CopyPlan, OutputPlan, Plan, RenditionPlan, SlotInfo, Target, VideoPlan,
    VideoWork,
};
use crate::media::encode::{AudioEncoderSpec, VideoEncoderSpec};
use crate::media::error::MediaError;
use crate::media::geometry::Rotation;
use crate::media::hdr::HdrColour;
use crate::media::input::OutputLimit;
use crate::preset::{AudioOutput, HdrMode, Loudness, Preset, VideoOutput};

/// A rational number as `(numerator, denominator)`.
type Ratio = (i32, i32);

/// The plan of a transcode that encodes video, in a form that travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    outputs: Vec<SavedOutput>,
    video: SavedVideo,
    audio: Vec<SavedAudio>,
    subtitles: Vec<SavedCopy>,
    duration: Option<f64>,
    duration_trusted: bool,
    limit_seconds: f64,
    limit_declared: Option<f64>,
    start_offset_us: i64,
    global_header: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedOutput {
    rendition: Option<String>,
    slots: Vec<SlotInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedVideo {
    input: usize,
    deinterlace: bool,
    rotation: Rotation,
    frame_rate: Option<Ratio>,
    /// Left out when the stream is not HDR, so an SDR input's layout reads as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hdr: Option<HdrColour>,
    renditions: Vec<SavedRendition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedRendition {
    target: Target,
    max_width: Option<u32>,
    max_height: Option<u32>,
    grid: Option<Ratio>,
    options: Vec<(String, String)>,
    fixed_quality: Option<u32>,
    pixel_format: String,
    keyframe_seconds: f64,
    force_keyframes_every: Option<f64>,
    #[serde(default, skip_serializing_if = "HdrMode::is_tonemap")]
    hdr: HdrMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SavedAudioWork {
    Copy {
        targets: Vec<Target>,
    },
    Encode {
        groups: Vec<(SavedAudioSpec, Vec<Target>)>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedAudio {
    input: usize,
    work: SavedAudioWork,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedAudioSpec {
    options: Vec<(String, String)>,
    sample_rate: Option<u32>,
    channels: Option<u32>,
    /// Absent from layouts written before loudness normalisation existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loudness: Option<Loudness>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedCopy {
    input: usize,
    targets: Vec<Target>,
}

fn ratio(r: ff::Rational) -> Ratio {
    (r.numerator(), r.denominator())
}

fn rational((n, d): Ratio) -> ff::Rational {
    ff::Rational::new(n, d)
}

impl SavedPlan {
    /// Writes `plan` down; None when it does not encode video (nothing to split).
    pub(crate) fn of(plan: &Plan) -> Option<SavedPlan> {
        let video = plan.video.as_ref()?;
        let VideoWork::Encode {
            deinterlace,
            rotation,
            frame_rate,
            hdr,
            renditions,
        } = &video.work
        else {
            return None;
        };
        Some(SavedPlan {
            outputs: plan
                .outputs
                .iter()
                .map(|o| SavedOutput {
                    rendition: o.rendition.clone(),
                    slots: o.slots.clone(),
                })
                .collect(),
            video: SavedVideo {
                input: video.input,
                deinterlace: *deinterlace,
                rotation: *rotation,
                frame_rate: frame_rate.map(ratio),
                hdr: hdr.clone(),
                renditions: renditions.iter().map(save_rendition).collect(),
            },
            audio: plan.audio.iter().map(save_audio).collect(),
            subtitles: plan
                .copies
                .iter()
                .map(|c| SavedCopy {
                    input: c.input,
                    targets: c.targets.clone(),
                })
                .collect(),
            duration: plan.duration,
            duration_trusted: plan.duration_trusted,
            limit_seconds: plan.limit.seconds,
            limit_declared: plan.limit.declared,
            start_offset_us: plan.start_offset_us,
            global_header: plan.global_header,
        })
    }

    /// The input's video stream index.
    pub(crate) fn video_input(&self) -> usize {
        self.video.input
    }

    /// The input streams other than video the plan uses (audio, subtitles), in index order.
    pub(crate) fn other_inputs(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self
            .audio
            .iter()
            .map(|a| a.input)
            .chain(self.subtitles.iter().map(|s| s.input))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Subtracted from every timestamp so the output starts at zero (µs).
    pub(crate) fn start_offset_us(&self) -> i64 {
        self.start_offset_us
    }

    /// The plan again, its codecs taken from `preset` (the one it was made with).
    pub(crate) fn restore(&self, preset: &Preset) -> Result<Plan, MediaError> {
        let Some(VideoOutput::Encode(v)) = &preset.video else {
            return Err(MediaError::Unsupported(format!(
                "preset {} does not encode video, but this split layout does",
                preset.name
            )));
        };
        let video = VideoPlan {
            input: self.video.input,
            work: VideoWork::Encode {
                deinterlace: self.video.deinterlace,
                rotation: self.video.rotation,
                frame_rate: self.video.frame_rate.map(rational),
                hdr: self.video.hdr.clone(),
                renditions: self
                    .video
                    .renditions
                    .iter()
                    .map(|r| restore_rendition(r, v.codec))
                    .collect(),
            },
        };
        let audio = self
            .audio
            .iter()
            .map(|a| restore_audio(a, preset))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            outputs: self
                .outputs
                .iter()
                .map(|o| OutputPlan {
                    rendition: o.rendition.clone(),
                    audio_member: None,
                    slots: o.slots.clone(),
                    global_header: self.global_header,
                    hvc1: matches!(
                        preset.container,
                        crate::preset::Container::Mp4 | crate::preset::Container::Mov
                    ),
                })
                .collect(),
            video: Some(video),
            audio,
            copies: self
                .subtitles
                .iter()
                .map(|c| CopyPlan {
                    input: c.input,
                    targets: c.targets.clone(),
                })
                .collect(),
            captions: Vec::new(),
            duration: self.duration,
            duration_trusted: self.duration_trusted,
            limit: OutputLimit {
                seconds: self.limit_seconds,
                declared: self.limit_declared,
            },
            start_offset_us: self.start_offset_us,
            poster_at: None,
            global_header: self.global_header,
            keep_us: None,
            first_packet_skip: Vec::new(),
            clip_us: None,
        })
    }
}

fn save_rendition(r: &RenditionPlan) -> SavedRendition {
    SavedRendition {
        target: r.target,
        max_width: r.max_width,
        max_height: r.max_height,
        grid: r.grid.map(ratio),
        options: r.spec.options.clone(),
        fixed_quality: r.spec.fixed_quality,
        pixel_format: r.spec.pixel_format.clone(),
        keyframe_seconds: r.spec.keyframe_seconds,
        force_keyframes_every: r.spec.force_keyframes_every,
        hdr: r.hdr,
    }
}

fn restore_rendition(r: &SavedRendition, codec: crate::preset::VideoCodec) -> RenditionPlan {
    RenditionPlan {
        target: r.target,
        max_width: r.max_width,
        max_height: r.max_height,
        grid: r.grid.map(rational),
        spec: VideoEncoderSpec {
            codec,
            options: r.options.clone(),
            fixed_quality: r.fixed_quality,
            pixel_format: r.pixel_format.clone(),
            keyframe_seconds: r.keyframe_seconds,
            force_keyframes_every: r.force_keyframes_every,
            threads: 0,
        },
        pick_at: None,
        tiles: None,
        logo: None,
        burn: None,
        hdr: r.hdr,
    }
}

fn save_audio(a: &AudioPlan) -> SavedAudio {
    let work = match &a.work {
        AudioWork::Copy { targets } => SavedAudioWork::Copy {
            targets: targets.clone(),
        },
        AudioWork::Encode { groups } => SavedAudioWork::Encode {
            groups: groups
                .iter()
                .map(|(spec, targets)| {
                    let saved = SavedAudioSpec {
                        options: spec.options.clone(),
                        sample_rate: spec.sample_rate,
                        channels: spec.channels,
                        loudness: spec.loudness,
                    };
                    (saved, targets.clone())
                })
                .collect(),
        },
    };
    SavedAudio {
        input: a.input,
        work,
    }
}

fn restore_audio(a: &SavedAudio, preset: &Preset) -> Result<AudioPlan, MediaError> {
    let work = match &a.work {
        SavedAudioWork::Copy { targets } => AudioWork::Copy {
            targets: targets.clone(),
        },
        SavedAudioWork::Encode { groups } => {
            let Some(AudioOutput::Encode(enc)) = &preset.audio else {
                return Err(MediaError::Unsupported(format!(
                    "preset {} does not encode audio, but this split layout does",
                    preset.name
                )));
            };
            AudioWork::Encode {
                groups: groups
                    .iter()
                    .map(|(s, targets)| {
                        let spec = AudioEncoderSpec {
                            codec: enc.codec,
                            options: s.options.clone(),
                            sample_rate: s.sample_rate,
                            channels: s.channels,
                            loudness: s.loudness,
                        };
                        (spec, targets.clone())
                    })
                    .collect(),
            }
        }
    };
    Ok(AudioPlan {
        input: a.input,
        work,
    })
}
