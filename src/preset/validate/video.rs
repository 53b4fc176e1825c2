//! The `[video]` section: copy or encode, the codec and its encoder, speed preset, profile,
//! size and frame-rate caps, keyframe interval, pixel format and encoder options.

use super::MAX_SIDE;
use super::check::Check;
use super::rate::{RateFields, rate};
use crate::preset::codecs::{Container, SpeedScale, VideoCodec, X264_PRESETS};
use crate::preset::spec;
use crate::preset::{HdrMode, PresetError, VideoEncoding, VideoOutput};

/// Profiles each encoder takes; a codec not listed takes none.
const H264_PROFILES: &[&str] = &["baseline", "main", "high", "high10", "high422", "high444"];
const HEVC_PROFILES: &[&str] = &["main", "main10", "main-intra", "main444-8", "main422-10"];
const VP9_PROFILES: &[&str] = &["0", "1", "2", "3"];

pub(super) fn video(
    c: &Check,
    container: Container,
    v: &spec::VideoSpec,
) -> Result<VideoOutput, PresetError> {
    if v.codec == "copy" {
        return copy(c, container, v);
    }
    let codec = codec(c, container, &v.codec)?;
    let rate = rate(
        c,
        "video",
        codec,
        RateFields {
            crf: v.crf,
            quality: v.quality,
            bitrate: &v.bitrate,
            max_bitrate: &v.max_bitrate,
            buffer_size: &v.buffer_size,
        },
    )?;
    // HLS may leave the rate to its renditions; the ladder checks that.
    if rate.crf.is_none()
        && rate.quality.is_none()
        && rate.bitrate.is_none()
        && !container.segmented()
    {
        return Err(c.err("video", "set crf (or quality for mpeg4/mjpeg) or bitrate"));
    }
    let encoder_preset = encoder_preset(c, codec, v.encoder_preset.as_ref())?;
    let profile = profile(c, codec, v.profile.as_deref())?;
    let max_width = c.int_in("video.max_width", v.max_width, 16, MAX_SIDE)?;
    let max_height = c.int_in("video.max_height", v.max_height, 16, MAX_SIDE)?;
    let max_fps = c.float_in("video.max_fps", v.max_fps, 1.0, 240.0)?;
    let keyframe_seconds = c
        .float_in("video.keyframe_seconds", v.keyframe_seconds, 0.1, 60.0)?
        .unwrap_or(2.0);
    let pixel_format = pixel_format(c, codec, v.pixel_format.as_deref())?;
    let hdr = hdr(c, codec, &pixel_format, v.hdr.as_deref())?;
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
        hdr,
        options,
    }))
}

/// `codec = "copy"`: the stream passes through, so no encoding setting may be given, and the
/// container must be one that can take a stream as it is.
fn copy(c: &Check, container: Container, v: &spec::VideoSpec) -> Result<VideoOutput, PresetError> {
    let extra = v.crf.is_some()
        || v.quality.is_some()
        || v.bitrate.is_some()
        || v.encoder_preset.is_some()
        || v.max_width.is_some()
        || v.max_height.is_some()
        || v.max_fps.is_some()
        || v.pixel_format.is_some()
        || v.hdr.is_some()
        || !v.options.is_empty();
    if extra {
        return Err(c.err(
            "video",
            "codec \"copy\" passes the stream through; it takes no encoding settings",
        ));
    }
    if container.segmented() || container.picture() {
        return Err(c.err(
            "video.codec",
            format!("container {container} cannot copy video; it must encode"),
        ));
    }
    Ok(VideoOutput::Copy)
}

/// The codec named, if the engine has its encoder and the container can hold it.
fn codec(c: &Check, container: Container, name: &str) -> Result<VideoCodec, PresetError> {
    let codec = VideoCodec::parse(name).ok_or_else(|| {
        let known: Vec<_> = VideoCodec::ALL.iter().map(|c| c.name()).collect();
        c.err(
            "video.codec",
            format!(
                "unknown video codec '{name}'; known: {}, copy",
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
    Ok(codec)
}

/// `encoder_preset`, spelt the way the codec's speed scale is: a name or a number in range.
fn encoder_preset(
    c: &Check,
    codec: VideoCodec,
    value: Option<&toml::Value>,
) -> Result<Option<String>, PresetError> {
    const FIELD: &str = "video.encoder_preset";
    match (value, codec.speed()) {
        (None, _) => Ok(None),
        (Some(_), SpeedScale::None) => {
            Err(c.err(FIELD, format!("{} has no speed presets", codec.name())))
        }
        (Some(toml::Value::String(s)), SpeedScale::Named) => {
            if !X264_PRESETS.contains(&s.as_str()) {
                return Err(c.err(
                    FIELD,
                    format!("unknown preset '{s}'; one of: {}", X264_PRESETS.join(", ")),
                ));
            }
            Ok(Some(s.clone()))
        }
        (Some(toml::Value::Integer(n)), SpeedScale::Number(lo, hi)) => {
            if !(i64::from(lo)..=i64::from(hi)).contains(n) {
                return Err(c.err(FIELD, format!("must be between {lo} and {hi} (got {n})")));
            }
            Ok(Some(n.to_string()))
        }
        (Some(other), SpeedScale::Named) => Err(c.err(
            FIELD,
            format!("must be a name like \"medium\" (got {other})"),
        )),
        (Some(other), SpeedScale::Number(lo, hi)) => Err(c.err(
            FIELD,
            format!("must be a number from {lo} to {hi} (got {other})"),
        )),
    }
}

/// `profile`, one of those the codec's encoder takes.
fn profile(
    c: &Check,
    codec: VideoCodec,
    profile: Option<&str>,
) -> Result<Option<String>, PresetError> {
    let Some(p) = profile else { return Ok(None) };
    let allowed = match codec {
        VideoCodec::H264 => H264_PROFILES,
        VideoCodec::Hevc => HEVC_PROFILES,
        VideoCodec::Vp9 => VP9_PROFILES,
        _ => &[],
    };
    if allowed.contains(&p) {
        return Ok(Some(p.to_string()));
    }
    Err(c.err(
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
    ))
}

/// `pixel_format` (the codec's default when unset): one the engine knows and, when the
/// encoder lists what it takes, one of those.
fn pixel_format(
    c: &Check,
    codec: VideoCodec,
    pixel_format: Option<&str>,
) -> Result<String, PresetError> {
    let pixel_format = pixel_format
        .unwrap_or_else(|| codec.default_pixel_format())
        .to_string();
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
    Ok(pixel_format)
}

/// `hdr`: "tonemap" (the default) or "keep". Keeping HDR needs a codec players take HDR in
/// and a pixel format deep enough for it: PQ and HLG in 8 bits band visibly.
fn hdr(
    c: &Check,
    codec: VideoCodec,
    pixel_format: &str,
    value: Option<&str>,
) -> Result<HdrMode, PresetError> {
    const FIELD: &str = "video.hdr";
    match value {
        None | Some("tonemap") => return Ok(HdrMode::Tonemap),
        Some("keep") => {}
        Some(other) => {
            return Err(c.err(
                FIELD,
                format!("unknown value '{other}'; one of: tonemap, keep"),
            ));
        }
    }
    if !codec.carries_hdr() {
        return Err(c.err(
            FIELD,
            format!(
                "\"keep\" needs a codec that carries HDR (hevc, vp9, av1), not {}",
                codec.name()
            ),
        ));
    }
    let bits = c.caps.pixel_format_bits(pixel_format).unwrap_or(8);
    if bits < 10 {
        return Err(c.err(
            FIELD,
            format!(
                "\"keep\" needs a pixel_format of 10 bits or more (e.g. \"yuv420p10le\"), \
                 not {pixel_format} ({bits} bits)"
            ),
        ));
    }
    Ok(HdrMode::Keep)
}
