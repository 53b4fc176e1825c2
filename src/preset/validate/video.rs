//! The `[video]` section: copy or encode, the codec and its encoder, speed preset, profile,
//! size and frame-rate caps, keyframe interval, pixel format and encoder options.

use super::MAX_SIDE;
use super::check::Check;
use super::rate::rate;
use crate::preset::codecs::{Container, SpeedScale, VideoCodec, X264_PRESETS};
use crate::preset::spec;
use crate::preset::{PresetError, VideoEncoding, VideoOutput};

pub(super) fn video(
    c: &Check,
    container: Container,
    v: &spec::VideoSpec,
) -> Result<VideoOutput, PresetError> {
    if v.codec == "copy" {
        let extra = v.crf.is_some()
            || v.quality.is_some()
            || v.bitrate.is_some()
            || v.encoder_preset.is_some()
            || v.max_width.is_some()
            || v.max_height.is_some()
            || v.max_fps.is_some()
            || v.pixel_format.is_some()
            || !v.options.is_empty();
        if extra {
            return Err(c.err(
                "video",
                "codec \"copy\" passes the stream through; it takes no encoding settings",
            ));
        }
        if matches!(container, Container::Hls | Container::Jpg) {
            return Err(c.err(
                "video.codec",
                format!("container {container} cannot copy video; it must encode"),
            ));
        }
        return Ok(VideoOutput::Copy);
    }
    let codec = VideoCodec::parse(&v.codec).ok_or_else(|| {
        let known: Vec<_> = VideoCodec::ALL.iter().map(|c| c.name()).collect();
        c.err(
            "video.codec",
            format!(
                "unknown video codec '{}'; known: {}, copy",
                v.codec,
                known.join(", ")
            ),
        )
    })?;
    if !c.caps.encoder_available(codec.encoder()) {
        return Err(c.err(
            "video.codec",
            format!(
                "this FFmpeg build has no {} encoder for {}",
                codec.encoder(),
                codec.name()
            ),
        ));
    }
    if !container.holds_video(codec) {
        return Err(c.err(
            "video.codec",
            format!("container {container} cannot hold {} video", codec.name()),
        ));
    }
    let rate = rate(
        c,
        "video",
        codec,
        v.crf,
        v.quality,
        &v.bitrate,
        &v.max_bitrate,
        &v.buffer_size,
    )?;
    if rate.crf.is_none()
        && rate.quality.is_none()
        && rate.bitrate.is_none()
        && container != Container::Hls
    {
        return Err(c.err("video", "set crf (or quality for mpeg4/mjpeg) or bitrate"));
    }
    let encoder_preset = match (&v.encoder_preset, codec.speed()) {
        (None, _) => None,
        (Some(_), SpeedScale::None) => {
            return Err(c.err(
                "video.encoder_preset",
                format!("{} has no speed presets", codec.name()),
            ));
        }
        (Some(toml::Value::String(s)), SpeedScale::Named) => {
            if !X264_PRESETS.contains(&s.as_str()) {
                return Err(c.err(
                    "video.encoder_preset",
                    format!("unknown preset '{s}'; one of: {}", X264_PRESETS.join(", ")),
                ));
            }
            Some(s.clone())
        }
        (Some(toml::Value::Integer(n)), SpeedScale::Number(lo, hi)) => {
            if !(i64::from(lo)..=i64::from(hi)).contains(n) {
                return Err(c.err(
                    "video.encoder_preset",
                    format!("must be between {lo} and {hi} (got {n})"),
                ));
            }
            Some(n.to_string())
        }
        (Some(other), SpeedScale::Named) => {
            return Err(c.err(
                "video.encoder_preset",
                format!("must be a name like \"medium\" (got {other})"),
            ));
        }
        (Some(other), SpeedScale::Number(lo, hi)) => {
            return Err(c.err(
                "video.encoder_preset",
                format!("must be a number from {lo} to {hi} (got {other})"),
            ));
        }
    };
    let profile = match &v.profile {
        None => None,
        Some(p) => {
            let allowed: &[&str] = match codec {
                VideoCodec::H264 => &["baseline", "main", "high", "high10", "high422", "high444"],
                VideoCodec::Hevc => &["main", "main10", "main-intra", "main444-8", "main422-10"],
                VideoCodec::Vp9 => &["0", "1", "2", "3"],
                _ => &[],
            };
            if !allowed.contains(&p.as_str()) {
                return Err(c.err(
                    "video.profile",
                    if allowed.is_empty() {
                        format!("{} takes no profile", codec.name())
                    } else {
                        format!(
                            "unknown {} profile '{p}'; one of: {}",
                            codec.name(),
                            allowed.join(", ")
                        )
                    },
                ));
            }
            Some(p.clone())
        }
    };
    let max_width = c.int_in("video.max_width", v.max_width, 16, MAX_SIDE)?;
    let max_height = c.int_in("video.max_height", v.max_height, 16, MAX_SIDE)?;
    let max_fps = c.float_in("video.max_fps", v.max_fps, 1.0, 240.0)?;
    let keyframe_seconds = c
        .float_in("video.keyframe_seconds", v.keyframe_seconds, 0.1, 60.0)?
        .unwrap_or(2.0);
    let pixel_format = v
        .pixel_format
        .clone()
        .unwrap_or_else(|| codec.default_pixel_format().to_string());
    if !c.caps.pixel_format_exists(&pixel_format) {
        return Err(c.err(
            "video.pixel_format",
            format!("unknown pixel format '{pixel_format}'"),
        ));
    }
    let accepted = c.caps.encoder_pixel_formats(codec.encoder());
    if !accepted.is_empty() && !accepted.contains(&pixel_format) {
        return Err(c.err(
            "video.pixel_format",
            format!(
                "{} does not take {pixel_format}; it takes: {}",
                codec.encoder(),
                accepted.join(", ")
            ),
        ));
    }
    let options = c.options("video.options", codec.encoder(), &v.options)?;
    Ok(VideoOutput::Encode(VideoEncoding {
        codec,
        rate,
        encoder_preset,
        profile,
        max_width,
        max_height,
        max_fps,
        pixel_format,
        keyframe_seconds,
        options,
    }))
}
