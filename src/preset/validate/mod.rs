//! Turns a preset file into a [`Preset`], checking every field against what the container
//! and the engine's encoders accept. Each error names the file, the field and the problem.
//! This file reads the file as a whole; the container's rules and each section are checked
//! in their own files.

mod audio;
mod check;
mod chunking;
mod container;
mod hls;
mod rate;
mod video;

use super::spec::PresetSpec;
use super::{Capabilities, Container, Preset, PresetError, VideoOutput};
use crate::job::{Chunking, Watermark};
use check::Check;

/// Largest width/height a preset may ask for.
const MAX_SIDE: i64 = 16_384;

/// The preset `name` from `file`'s `text`, each encoding setting checked against `caps`.
/// Checks run in the file's order, so the first mistake is the one reported.
pub(super) fn parse(
    name: &str,
    file: &str,
    text: &str,
    caps: &dyn Capabilities,
) -> Result<Preset, PresetError> {
    let c = Check { file, caps };
    check_name(&c, name)?;
    let spec = read(file, text)?;
    let description = spec.description.trim().to_string();
    if description.is_empty() {
        return Err(c.err("description", "must not be empty"));
    }
    let container = container::named(&c, &spec.container)?;
    let video = container::video_section(&c, container, spec.video.as_ref())?;
    let audio = container::audio_section(&c, container, spec.audio.as_ref())?;
    let audio_languages = audio::languages(&c, spec.audio.as_ref())?;
    container::has_a_stream(&c, container, &video, &audio)?;
    let hls = container::hls_section(&c, container, spec.hls.as_ref(), &video)?;
    let poster = container::poster_section(&c, container, spec.poster.as_ref())?;
    let storyboard = container::storyboard_section(&c, container, spec.storyboard.as_ref())?;
    let (copy_subtitles, captions) =
        container::subtitles_section(&c, container, &video, spec.subtitles.as_ref())?;
    let watermark = watermark_section(&c, container, &video, spec.watermark)?;
    let chunking = chunking::chunking(&c, spec.chunking.as_ref(), container, &video)?;
    if let (Some(Chunking::Segments { .. }), true) = (
        chunking,
        watermark.is_some() || spec.quality == Some(true) || !captions.is_none(),
    ) {
        return Err(c.err(
            "chunking",
            "a preset with captions, a watermark or quality figures runs whole: its jobs \
             cannot be split into parts",
        ));
    }
    Ok(Preset {
        name: name.to_string(),
        description,
        container,
        video,
        audio,
        hls,
        poster,
        storyboard,
        copy_subtitles,
        audio_languages,
        captions,
        watermark,
        quality: spec.quality.unwrap_or(false),
        chunking,
        origin: file.to_string(),
    })
}

/// A watermark for a preset that encodes moving video, naming its bucket.
fn watermark_section(
    c: &Check,
    container: Container,
    video: &Option<VideoOutput>,
    watermark: Option<Watermark>,
) -> Result<Option<Watermark>, PresetError> {
    let Some(w) = watermark else {
        return Ok(None);
    };
    if container.picture() || !matches!(video, Some(VideoOutput::Encode(_))) {
        return Err(c.err(
            "watermark",
            "only a preset that encodes moving video can composite a watermark",
        ));
    }
    if let Some(problem) = w.problem("watermark") {
        let (field, what) = problem.split_once(": ").unwrap_or(("watermark", &problem));
        return Err(c.err(field, what));
    }
    if w.bucket.is_none() {
        return Err(c.err(
            "watermark.bucket",
            "name the bucket the image is in (a preset has no input bucket to default to)",
        ));
    }
    Ok(Some(w))
}

/// Preset names appear in URLs and job records: a short lower-case word.
fn check_name(c: &Check, name: &str) -> Result<(), PresetError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
    if valid {
        return Ok(());
    }
    Err(c.err(
        "(name)",
        format!("preset names use a-z, 0-9, '-' and '_' (at most 64); got '{name}'"),
    ))
}

/// The file's TOML, with unknown keys refused; the parser's message is kept on one line.
fn read(file: &str, text: &str) -> Result<PresetSpec, PresetError> {
    toml::from_str(text).map_err(|e| PresetError::Parse {
        file: file.to_string(),
        message: e.to_string().trim().replace('\n', " "),
    })
}
