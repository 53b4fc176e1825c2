//! Turns a preset file into a [`Preset`], checking every field against what the container
//! and the engine's encoders accept. Each error names the file, the field and the problem.
//! This file reads the file as a whole and decides which sections its container takes; each
//! section is checked in its own file.

mod audio;
mod check;
mod hls;
mod rate;
mod video;

use super::codecs::Container;
use super::spec::{self, PresetSpec};
use super::{Capabilities, HlsLadder, PosterAt, Preset, PresetError, VideoOutput};
use audio::audio;
use check::Check;
use hls::hls;
use video::video;

/// Largest width/height a preset may ask for.
const MAX_SIDE: i64 = 16_384;

pub(super) fn parse(
    name: &str,
    file: &str,
    text: &str,
    caps: &dyn Capabilities,
) -> Result<Preset, PresetError> {
    let c = Check { file, caps };
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
    {
        return Err(c.err(
            "(name)",
            format!("preset names use a-z, 0-9, '-' and '_' (at most 64); got '{name}'"),
        ));
    }
    let spec: PresetSpec = toml::from_str(text).map_err(|e| PresetError::Parse {
        file: file.to_string(),
        message: e.to_string().trim().replace('\n', " "),
    })?;
    let description = spec.description.trim().to_string();
    if description.is_empty() {
        return Err(c.err("description", "must not be empty"));
    }
    let container = Container::parse(&spec.container).ok_or_else(|| {
        let known: Vec<_> = Container::ALL.iter().map(|c| c.name()).collect();
        c.err(
            "container",
            format!(
                "unknown container '{}'; known: {}",
                spec.container,
                known.join(", ")
            ),
        )
    })?;

    let video = match &spec.video {
        None => None,
        Some(_) if container.audio_only() => {
            return Err(c.err("video", format!("container {container} holds no video")));
        }
        Some(v) => Some(video(&c, container, v)?),
    };
    let audio = match &spec.audio {
        None => None,
        Some(_) if container.picture() => {
            return Err(c.err("audio", format!("container {container} holds no audio")));
        }
        Some(a) => Some(audio(&c, container, a)?),
    };
    if video.is_none() && audio.is_none() {
        return Err(c.err("(file)", "a preset needs a [video] or an [audio] section"));
    }
    if container.picture() && !matches!(&video, Some(VideoOutput::Encode(_))) {
        return Err(c.err(
            "video",
            "a jpg preset needs a [video] section that encodes (mjpeg)",
        ));
    }

    let hls = match (&spec.hls, container) {
        (Some(h), Container::Hls) => Some(hls(&c, h, &video)?),
        (None, Container::Hls) => Some(HlsLadder {
            segment_seconds: 6.0,
            renditions: Vec::new(),
        }),
        (Some(_), other) => {
            return Err(c.err(
                "hls",
                format!("only an hls container takes [hls] (this is {other})"),
            ));
        }
        (None, _) => None,
    };
    if container == Container::Hls && !matches!(&video, Some(VideoOutput::Encode(_))) {
        return Err(c.err("video", "an hls preset must encode video (h264)"));
    }

    let poster = match (&spec.poster, container) {
        (Some(p), Container::Jpg) => Some(poster(&c, p)?),
        (None, Container::Jpg) => Some(PosterAt::Percent(10.0)),
        (Some(_), other) => {
            return Err(c.err(
                "poster",
                format!("only a jpg container takes [poster] (this is {other})"),
            ));
        }
        (None, _) => None,
    };

    let copy_subtitles = match &spec.subtitles {
        None => false,
        Some(s) if s.codec == "copy" => {
            if container.audio_only() || container.picture() || container == Container::Hls {
                return Err(c.err(
                    "subtitles",
                    format!("container {container} holds no subtitles"),
                ));
            }
            true
        }
        Some(s) => {
            return Err(c.err(
                "subtitles.codec",
                format!("only \"copy\" is supported (got '{}')", s.codec),
            ));
        }
    };

    Ok(Preset {
        name: name.to_string(),
        description,
        container,
        video,
        audio,
        hls,
        poster,
        copy_subtitles,
        origin: file.to_string(),
    })
}

fn poster(c: &Check, p: &spec::PosterSpec) -> Result<PosterAt, PresetError> {
    match (p.at_percent, p.at_seconds) {
        (Some(_), Some(_)) => Err(c.err("poster", "set at_percent or at_seconds, not both")),
        (Some(pct), None) => Ok(PosterAt::Percent(
            c.float_in("poster.at_percent", Some(pct), 0.0, 100.0)?
                .unwrap_or(10.0),
        )),
        (None, Some(s)) => Ok(PosterAt::Seconds(
            c.float_in("poster.at_seconds", Some(s), 0.0, 172_800.0)?
                .unwrap_or(0.0),
        )),
        (None, None) => Ok(PosterAt::Percent(10.0)),
    }
}
