//! The `[hls]` section (hls and cmaf containers): segment length, the ladder of renditions,
//! each with a unique name, its size caps and its rate control, and segment encryption.

use super::MAX_SIDE;
use super::check::Check;
use super::rate::{RateFields, rate};
use crate::preset::codecs::{Container, VideoCodec};
use crate::preset::spec;
use crate::preset::{HlsEncryption, HlsLadder, PresetError, RateControl, Rendition, VideoOutput};

pub(super) fn hls(
    c: &Check,
    h: &spec::HlsSpec,
    container: Container,
    video: &Option<VideoOutput>,
) -> Result<HlsLadder, PresetError> {
    let segment_seconds = c
        .float_in("hls.segment_seconds", h.segment_seconds, 1.0, 60.0)?
        .unwrap_or(6.0);
    let codec = match video {
        Some(VideoOutput::Encode(v)) => v.codec,
        _ => VideoCodec::H264,
    };
    let mut renditions: Vec<Rendition> = Vec::new();
    for (i, r) in h.renditions.iter().enumerate() {
        let field = format!("hls.renditions[{i}]");
        if container == Container::Cmaf && r.name == "audio" {
            return Err(c.err(
                &format!("{field}.name"),
                "'audio' names a cmaf output's audio rendition; pick another name",
            ));
        }
        let rendition = rendition(c, &field, codec, r, &renditions)?;
        renditions.push(rendition);
    }
    if renditions.is_empty()
        && let Some(VideoOutput::Encode(v)) = video
        && v.rate == RateControl::default()
    {
        return Err(c.err("video", "set crf or bitrate (or list [[hls.renditions]])"));
    }
    Ok(HlsLadder {
        segment_seconds,
        renditions,
        encryption: encryption(c, h.encryption.as_deref(), container)?,
    })
}

/// `encryption`: "aes-128" (whole segments, AES-128-CBC, the key per job) on MPEG-TS HLS;
/// CMAF's segments are shared with DASH, which has no whole-segment encryption, so a cmaf
/// preset takes none (decision 0082).
fn encryption(
    c: &Check,
    value: Option<&str>,
    container: Container,
) -> Result<Option<HlsEncryption>, PresetError> {
    match value {
        None | Some("none") => Ok(None),
        Some("aes-128") if container == Container::Hls => Ok(Some(HlsEncryption::Aes128)),
        Some("aes-128") => Err(c.err(
            "hls.encryption",
            format!(
                "a {container} preset cannot encrypt: its segments are shared with DASH, \
                 which has no whole-segment AES-128 (use an hls container)"
            ),
        )),
        Some(other) => Err(c.err(
            "hls.encryption",
            format!("use \"aes-128\" or \"none\" (got '{other}')"),
        )),
    }
}

/// One rung of the ladder (`field` names it), after the rungs `before` it.
fn rendition(
    c: &Check,
    field: &str,
    codec: VideoCodec,
    r: &spec::RenditionSpec,
    before: &[Rendition],
) -> Result<Rendition, PresetError> {
    let valid_name = !r.name.is_empty()
        && r.name.len() <= 32
        && r.name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if !valid_name {
        return Err(c.err(
            &format!("{field}.name"),
            "use 1-32 of a-z, A-Z, 0-9, '-', '_'",
        ));
    }
    if before.iter().any(|o| o.name == r.name) {
        return Err(c.err(
            &format!("{field}.name"),
            format!("'{}' is used twice", r.name),
        ));
    }
    let rate = rate(
        c,
        field,
        codec,
        RateFields {
            crf: r.crf,
            quality: None,
            bitrate: &r.bitrate,
            max_bitrate: &r.max_bitrate,
            buffer_size: &r.buffer_size,
        },
    )?;
    if rate.crf.is_none() && rate.bitrate.is_none() {
        return Err(c.err(field, "set crf or bitrate for each rendition"));
    }
    Ok(Rendition {
        name: r.name.clone(),
        max_width: c.int_in(&format!("{field}.max_width"), r.max_width, 16, MAX_SIDE)?,
        max_height: c.int_in(&format!("{field}.max_height"), r.max_height, 16, MAX_SIDE)?,
        rate,
        audio_bitrate: c.bitrate(&format!("{field}.audio_bitrate"), &r.audio_bitrate)?,
    })
}
