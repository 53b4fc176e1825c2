//! The `[audio]` section: copy or encode, the codec and its encoder, bit rate, channels,
//! sample rate, loudness normalisation and encoder options.

use super::check::Check;
use crate::preset::codecs::{AudioCodec, Container};
use crate::preset::spec;
use crate::preset::{AudioEncoding, AudioOutput, Loudness, PresetError};

pub(super) fn audio(
    c: &Check,
    container: Container,
    a: &spec::AudioSpec,
) -> Result<AudioOutput, PresetError> {
    if a.codec == "copy" {
        return copy(c, a);
    }
    let codec = codec(c, container, &a.codec)?;
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
    let sample_rate = sample_rate(c, codec, a.sample_rate)?;
    let loudness = a.loudness.as_ref().map(|v| loudness(c, v)).transpose()?;
    let options = c.options("audio.options", codec.encoder(), &a.options)?;
    Ok(AudioOutput::Encode(AudioEncoding {
        codec,
        bitrate,
        channels,
        sample_rate,
        loudness,
        options,
    }))
}

/// `languages`: which tracks to keep, each an ISO 639 code named once.
pub(super) fn languages(
    c: &Check,
    a: Option<&spec::AudioSpec>,
) -> Result<Vec<String>, PresetError> {
    match a.and_then(|a| a.languages.as_ref()) {
        Some(codes) => crate::job::language::choice("audio.languages", codes).map_err(|m| {
            let (field, problem) = m.split_once(": ").unwrap_or(("audio.languages", &m));
            c.err(field, problem)
        }),
        None => Ok(Vec::new()),
    }
}

/// `codec = "copy"`: the stream passes through, so no encoding setting may be given.
fn copy(c: &Check, a: &spec::AudioSpec) -> Result<AudioOutput, PresetError> {
    if a.loudness.is_some() {
        return Err(c.err(
            "audio.loudness",
            "codec \"copy\" passes the stream through untouched; normalising its loudness \
             needs it encoded (name a codec)",
        ));
    }
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
    Ok(AudioOutput::Copy)
}

/// The codec named, if the engine has its encoder and the container can hold it.
fn codec(c: &Check, container: Container, name: &str) -> Result<AudioCodec, PresetError> {
    let codec = AudioCodec::parse(name).ok_or_else(|| {
        let known: Vec<_> = AudioCodec::ALL.iter().map(|c| c.name()).collect();
        c.err(
            "audio.codec",
            format!(
                "unknown audio codec '{name}'; known: {}, copy",
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
    Ok(codec)
}

/// `sample_rate`, in the range ffarm allows and, when the encoder lists the rates it takes,
/// one of those.
fn sample_rate(
    c: &Check,
    codec: AudioCodec,
    sample_rate: Option<i64>,
) -> Result<Option<u32>, PresetError> {
    let Some(rate) = c.int_in("audio.sample_rate", sample_rate, 8_000, 192_000)? else {
        return Ok(None);
    };
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
    Ok(Some(rate))
}

/// The keys of `loudness`: each one's name, the range FFmpeg's `loudnorm` filter takes for it,
/// and its value when left out.
const LOUDNESS_KEYS: [(&str, f64, f64, f64); 3] = [
    ("target", -70.0, -5.0, Loudness::DEFAULT.target),
    ("true_peak", -9.0, 0.0, Loudness::DEFAULT.true_peak),
    ("range", 1.0, 50.0, Loudness::DEFAULT.range),
];

const LOUDNESS_SHAPE: &str =
    "write { target = -16.0, true_peak = -1.5, range = 11.0 } (LUFS, dBTP, LU)";

/// `loudness = { target, true_peak, range }`: each a number in `loudnorm`'s range, each left
/// out taking [`Loudness::DEFAULT`]'s.
fn loudness(c: &Check, value: &toml::Value) -> Result<Loudness, PresetError> {
    let toml::Value::Table(table) = value else {
        return Err(c.err(
            "audio.loudness",
            format!("{LOUDNESS_SHAPE} (got {})", value.type_str()),
        ));
    };
    if let Some(key) = table
        .keys()
        .find(|k| !LOUDNESS_KEYS.iter().any(|(name, ..)| name == k))
    {
        return Err(c.err(
            &format!("audio.loudness.{key}"),
            format!("unknown key; {LOUDNESS_SHAPE}"),
        ));
    }
    let mut values = [0.0; 3];
    for (value, key) in values.iter_mut().zip(LOUDNESS_KEYS) {
        *value = loudness_value(c, table, key)?;
    }
    let [target, true_peak, range] = values;
    Ok(Loudness {
        target,
        true_peak,
        range,
    })
}

/// One key of `loudness`: a number (whole or not) in its range, or its default.
fn loudness_value(
    c: &Check,
    table: &toml::Table,
    (name, lo, hi, default): (&str, f64, f64, f64),
) -> Result<f64, PresetError> {
    let field = format!("audio.loudness.{name}");
    let number = match table.get(name) {
        None => return Ok(default),
        Some(toml::Value::Float(f)) => *f,
        Some(toml::Value::Integer(i)) => *i as f64,
        Some(other) => {
            return Err(c.err(
                &field,
                format!("must be a number (got {})", other.type_str()),
            ));
        }
    };
    Ok(c.float_in(&field, Some(number), lo, hi)?.unwrap_or(default))
}
