//! Turns a preset file into a [`Preset`], checking every field against what the container
//! and FFmpeg's encoders accept. Each error names the file, the field and the problem.

use std::collections::BTreeMap;

use super::codecs::{AudioCodec, Container, QualityScale, SpeedScale, VideoCodec, X264_PRESETS};
use super::spec::{self, Bitrate, PresetSpec};
use super::{
    AudioEncoding, AudioOutput, Capabilities, HlsLadder, PosterAt, Preset, PresetError,
    RateControl, Rendition, VideoEncoding, VideoOutput,
};

/// Largest width/height a preset may ask for.
const MAX_SIDE: i64 = 16_384;

struct Check<'a> {
    file: &'a str,
    caps: &'a dyn Capabilities,
}

impl Check<'_> {
    fn err(&self, field: &str, problem: impl Into<String>) -> PresetError {
        PresetError::Invalid {
            file: self.file.to_string(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    fn int_in(
        &self,
        field: &str,
        v: Option<i64>,
        lo: i64,
        hi: i64,
    ) -> Result<Option<u32>, PresetError> {
        match v {
            None => Ok(None),
            Some(v) if (lo..=hi).contains(&v) => Ok(Some(v as u32)),
            Some(v) => Err(self.err(field, format!("must be between {lo} and {hi} (got {v})"))),
        }
    }

    fn float_in(
        &self,
        field: &str,
        v: Option<f64>,
        lo: f64,
        hi: f64,
    ) -> Result<Option<f64>, PresetError> {
        match v {
            None => Ok(None),
            Some(v) if v.is_finite() && v >= lo && v <= hi => Ok(Some(v)),
            Some(v) => Err(self.err(field, format!("must be between {lo} and {hi} (got {v})"))),
        }
    }

    fn bitrate(&self, field: &str, v: &Option<Bitrate>) -> Result<Option<u64>, PresetError> {
        let Some(v) = v else { return Ok(None) };
        let bits = match v {
            Bitrate::Number(n) => Some(*n as f64),
            Bitrate::Text(s) => parse_bitrate(s),
        };
        match bits {
            Some(b) if (1_000.0..=1_000_000_000.0).contains(&b) => Ok(Some(b.round() as u64)),
            Some(b) => Err(self.err(
                field,
                format!("bit rate {b} is out of range (1k to 1000M bits per second)"),
            )),
            None => Err(self.err(
                field,
                format!(
                    "'{}' is not a bit rate; write e.g. 128k, 2.5M or 800000",
                    display(v)
                ),
            )),
        }
    }

    fn options(
        &self,
        field: &str,
        encoder: &str,
        options: &BTreeMap<String, toml::Value>,
    ) -> Result<BTreeMap<String, String>, PresetError> {
        let mut out = BTreeMap::new();
        for (key, value) in options {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => (if *b { "1" } else { "0" }).to_string(),
                other => {
                    return Err(self.err(
                        &format!("{field}.{key}"),
                        format!(
                            "must be a string, number or boolean (got {})",
                            other.type_str()
                        ),
                    ));
                }
            };
            if !self.caps.encoder_has_option(encoder, key) {
                return Err(self.err(
                    &format!("{field}.{key}"),
                    format!("encoder {encoder} has no option '{key}'"),
                ));
            }
            out.insert(key.clone(), value);
        }
        Ok(out)
    }
}

fn display(v: &Bitrate) -> String {
    match v {
        Bitrate::Number(n) => n.to_string(),
        Bitrate::Text(s) => s.clone(),
    }
}

/// "128k" → 128000, "2.5M" → 2500000, "800000" → 800000.
pub(crate) fn parse_bitrate(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1e3),
        (i, 'm' | 'M') => (&s[..i], 1e6),
        _ => (s, 1.0),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n * mult)
}

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

fn video(c: &Check, container: Container, v: &spec::VideoSpec) -> Result<VideoOutput, PresetError> {
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

#[allow(clippy::too_many_arguments)] // one argument per rate-control field of the file
fn rate(
    c: &Check,
    section: &str,
    codec: VideoCodec,
    crf: Option<i64>,
    quality: Option<i64>,
    bitrate: &Option<Bitrate>,
    max_bitrate: &Option<Bitrate>,
    buffer_size: &Option<Bitrate>,
) -> Result<RateControl, PresetError> {
    let crf = match (crf, codec.quality()) {
        (None, _) => None,
        (Some(_), QualityScale::Qscale) => {
            return Err(c.err(
                &format!("{section}.crf"),
                format!("{} has no crf; use quality (1-31) or bitrate", codec.name()),
            ));
        }
        (Some(v), QualityScale::Crf(lo, hi)) => c.int_in(
            &format!("{section}.crf"),
            Some(v),
            i64::from(lo),
            i64::from(hi),
        )?,
    };
    let quality = match (quality, codec.quality()) {
        (None, _) => None,
        (Some(v), QualityScale::Qscale) => {
            c.int_in(&format!("{section}.quality"), Some(v), 1, 31)?
        }
        (Some(_), QualityScale::Crf(..)) => {
            return Err(c.err(
                &format!("{section}.quality"),
                format!("{} uses crf, not quality", codec.name()),
            ));
        }
    };
    let bitrate = c.bitrate(&format!("{section}.bitrate"), bitrate)?;
    let max_bitrate = c.bitrate(&format!("{section}.max_bitrate"), max_bitrate)?;
    let buffer_size = c.bitrate(&format!("{section}.buffer_size"), buffer_size)?;
    if crf.is_some() && bitrate.is_some() && codec != VideoCodec::Vp9 && codec != VideoCodec::Vp8 {
        return Err(c.err(
            section,
            "set crf or bitrate, not both (cap a crf with max_bitrate)",
        ));
    }
    if max_bitrate.is_some() != buffer_size.is_some() {
        return Err(c.err(section, "max_bitrate and buffer_size go together"));
    }
    if let (Some(b), Some(m)) = (bitrate, max_bitrate)
        && m < b
    {
        return Err(c.err(
            &format!("{section}.max_bitrate"),
            "must not be below bitrate",
        ));
    }
    Ok(RateControl {
        crf,
        quality,
        bitrate,
        max_bitrate,
        buffer_size,
    })
}

fn audio(c: &Check, container: Container, a: &spec::AudioSpec) -> Result<AudioOutput, PresetError> {
    if a.codec == "copy" {
        if a.bitrate.is_some()
            || a.channels.is_some()
            || a.sample_rate.is_some()
            || !a.options.is_empty()
        {
            return Err(c.err(
                "audio",
                "codec \"copy\" passes the stream through; it takes no encoding settings",
            ));
        }
        return Ok(AudioOutput::Copy);
    }
    let codec = AudioCodec::parse(&a.codec).ok_or_else(|| {
        let known: Vec<_> = AudioCodec::ALL.iter().map(|c| c.name()).collect();
        c.err(
            "audio.codec",
            format!(
                "unknown audio codec '{}'; known: {}, copy",
                a.codec,
                known.join(", ")
            ),
        )
    })?;
    if !c.caps.encoder_available(codec.encoder()) {
        return Err(c.err(
            "audio.codec",
            format!(
                "this FFmpeg build has no {} encoder for {}",
                codec.encoder(),
                codec.name()
            ),
        ));
    }
    if !container.holds_audio(codec) {
        return Err(c.err(
            "audio.codec",
            format!("container {container} cannot hold {} audio", codec.name()),
        ));
    }
    let bitrate = c.bitrate("audio.bitrate", &a.bitrate)?;
    if bitrate.is_some() && !codec.has_bitrate() {
        return Err(c.err(
            "audio.bitrate",
            format!(
                "{} is lossless/uncompressed; it takes no bitrate",
                codec.name()
            ),
        ));
    }
    let channels = c.int_in(
        "audio.channels",
        a.channels,
        1,
        i64::from(codec.max_channels()),
    )?;
    let sample_rate = c.int_in("audio.sample_rate", a.sample_rate, 8_000, 192_000)?;
    if let Some(rate) = sample_rate {
        let rates = c.caps.encoder_sample_rates(codec.encoder());
        if !rates.is_empty() && !rates.contains(&rate) {
            let list: Vec<String> = rates.iter().map(u32::to_string).collect();
            return Err(c.err(
                "audio.sample_rate",
                format!(
                    "{} does not take {rate} Hz; it takes: {}",
                    codec.encoder(),
                    list.join(", ")
                ),
            ));
        }
    }
    let options = c.options("audio.options", codec.encoder(), &a.options)?;
    Ok(AudioOutput::Encode(AudioEncoding {
        codec,
        bitrate,
        channels,
        sample_rate,
        options,
    }))
}

fn hls(
    c: &Check,
    h: &spec::HlsSpec,
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
        if renditions.iter().any(|o| o.name == r.name) {
            return Err(c.err(
                &format!("{field}.name"),
                format!("'{}' is used twice", r.name),
            ));
        }
        let rate = rate(
            c,
            &field,
            codec,
            r.crf,
            None,
            &r.bitrate,
            &r.max_bitrate,
            &r.buffer_size,
        )?;
        if rate.crf.is_none() && rate.bitrate.is_none() {
            return Err(c.err(&field, "set crf or bitrate for each rendition"));
        }
        renditions.push(Rendition {
            name: r.name.clone(),
            max_width: c.int_in(&format!("{field}.max_width"), r.max_width, 16, MAX_SIDE)?,
            max_height: c.int_in(&format!("{field}.max_height"), r.max_height, 16, MAX_SIDE)?,
            rate,
            audio_bitrate: c.bitrate(&format!("{field}.audio_bitrate"), &r.audio_bitrate)?,
        });
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

#[cfg(test)]
mod tests {
    use super::parse_bitrate;

    #[test]
    fn bitrates_parse_with_suffixes() {
        assert_eq!(parse_bitrate("128k"), Some(128_000.0));
        assert_eq!(parse_bitrate("2.5M"), Some(2_500_000.0));
        assert_eq!(parse_bitrate("800000"), Some(800_000.0));
        assert_eq!(parse_bitrate("fast"), None);
        assert_eq!(parse_bitrate("-1k"), None);
        assert_eq!(parse_bitrate(""), None);
    }
}
