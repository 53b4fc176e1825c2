//! A job's clip applied to a plan: the output's timeline moved to start at the clip's start,
//! the video frames outside it dropped (frame-accurate: every frame is decoded), the audio
//! trimmed to the same times by `atrim`, reading begun at the keyframe before the clip and
//! ended soon after it.

use std::path::Path;

use super::{Plan, poster_time};
use crate::job::Clip;
use crate::media::error::MediaError;
use crate::preset::Preset;

const MICROS: f64 = 1e6;

/// Clips `plan` (made for `preset`) to `clip`, or says why the clip does not fit the input.
pub(crate) fn clip(
    plan: &mut Plan,
    clip: &Clip,
    preset: &Preset,
    input: &Path,
) -> Result<(), MediaError> {
    if let Some(what) = preset.copies_streams() {
        return Err(MediaError::Unsupported(format!(
            "preset {} copies the input's {what} as it is, which cannot be cut at any frame; \
             a clip needs a preset that re-encodes",
            preset.name
        )));
    }
    let known = plan.duration.filter(|_| plan.duration_trusted);
    let (start, length) = clip.within(known).map_err(|what| MediaError::Clip {
        path: input.to_path_buf(),
        what,
    })?;
    let start_us = (start * MICROS).round() as i64;
    let length_us = length.map_or(i64::MAX, |l| (l * MICROS).round() as i64);
    plan.start_offset_us += start_us;
    plan.keep_us = Some((0, length_us));
    plan.clip_us = Some(length_us);
    plan.duration = length.or(plan.duration.map(|d| (d - start).max(0.0)));
    if plan.poster_at.is_some() {
        plan.poster_at = poster_time(preset, plan.duration);
    }
    Ok(())
}

/// The audio filters that cut decoded samples to a clip of `length_us` (output time: the
/// clip starts at 0), sample-accurately.
pub(crate) fn audio_trim(length_us: i64) -> String {
    if length_us == i64::MAX {
        "atrim=start=0".to_string()
    } else {
        format!("atrim=start=0:end={:.6}", length_us as f64 / MICROS)
    }
}

/// How far past a clip's end the demuxer reads (µs): packets of different streams lie this
/// close together in any file that plays, and B-frames a little further ahead than their
/// display times.
pub(crate) const READ_PAST_US: i64 = 5_000_000;
