//! Which renditions of a preset's HLS ladder an input gets: a small source would otherwise
//! get several identical renditions (nothing is upscaled), and an input without video gets
//! one audio rendition.

use crate::media::ffi;
use crate::media::geometry::{self, Rotation};
use crate::media::input::Input;
use crate::media::probe::ProbeReport;
use crate::preset::{Container, Preset, Rendition, VideoOutput};

/// An HLS ladder as planned for one input: per output, the rendition's name and audio bit
/// rate, and the video rung it encodes.
#[derive(Debug, Default)]
pub(super) struct Ladder<'p> {
    pub names: Vec<String>,
    pub audio_bitrates: Vec<Option<u64>>,
    /// Empty for an audio-only input.
    pub video: Vec<&'p Rendition>,
    /// CMAF: the audio is the last output, a rendition of its own, and the video outputs
    /// carry none (decision 0081).
    pub audio_apart: bool,
}

/// What the one rendition of an audio-only input is called, and CMAF's audio rendition.
pub(crate) const AUDIO_ONLY_RENDITION: &str = "audio";

/// CMAF's video rendition when the preset lists no ladder.
const VIDEO_RENDITION: &str = "video";

impl<'p> Ladder<'p> {
    /// The ladder for `preset` on this input ([`Ladder::rungs`]); for CMAF with video and
    /// audio, the audio is added as a rendition of its own at the best bit rate a rung asks
    /// for, as DASH and CMAF players expect one track per file (a preset without a ladder
    /// then gets `video` and `audio`).
    pub fn for_input(input: &Input, probe: &ProbeReport, preset: &'p Preset) -> Ladder<'p> {
        let mut ladder = Self::rungs(input, probe, preset);
        let apart = preset.container == Container::Cmaf
            && preset.audio.is_some()
            && probe.video().is_some()
            && probe.audio().next().is_some();
        if apart {
            if ladder.names.is_empty() {
                ladder.names.push(VIDEO_RENDITION.into());
                ladder.audio_bitrates.push(None);
            }
            let best = ladder.audio_bitrates.iter().flatten().max().copied();
            ladder.names.push(AUDIO_ONLY_RENDITION.into());
            ladder.audio_bitrates.push(best);
            ladder.audio_apart = true;
        }
        ladder
    }

    /// The outputs (of `count`) that carry audio: the audio rendition alone, or all.
    pub fn audio_outputs(&self, count: usize) -> std::ops::Range<usize> {
        if self.audio_apart {
            count.saturating_sub(1)..count
        } else {
            0..count
        }
    }

    /// The preset's renditions, minus those that would come out the same size as another: a
    /// small source would otherwise get several identical renditions (nothing is upscaled).
    /// Of renditions that tie, the one with the smallest size box — whose bit rate was chosen
    /// for a picture that size — is kept. An input without video would make every rung the
    /// same audio, so it gets one rendition, `audio`, with the best audio bit rate any rung
    /// asks for.
    fn rungs(input: &Input, probe: &ProbeReport, preset: &'p Preset) -> Ladder<'p> {
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
                audio_apart: false,
            };
        };
        let video = distinct_rungs(input, sv.index, preset, &hls.renditions);
        Ladder {
            names: video.iter().map(|r| r.name.clone()).collect(),
            audio_bitrates: video.iter().map(|r| r.audio_bitrate).collect(),
            video,
            audio_apart: false,
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
