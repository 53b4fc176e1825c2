//! What a submit request must pass before it is stored, in groups: its names (id, buckets,
//! key, prefix), its output not replacing its input, and the options' limits and
//! destinations. Each fails with the 400 a client can act on.

use std::path::Path as FsPath;

use super::shapes::{Options, Request};
use super::{MAX_ATTEMPTS, MAX_TIMEOUT_SECONDS};
use crate::api::error::{ApiError, ApiResult};
use crate::buckets::{validate_bucket, validate_key, validate_prefix};
use crate::job::{Chunking, validate_destination, validate_id};
use crate::preset::Preset;

/// The id, the input's bucket and key, and the output's bucket and prefix are valid names.
pub(super) fn names(request: &Request) -> ApiResult<()> {
    if let Some(id) = &request.id {
        validate_id(id).map_err(|m| ApiError::bad_request("bad-id", m))?;
    }
    validate_bucket(&request.input.bucket)?;
    validate_key(&request.input.key)?;
    validate_bucket(&request.output.bucket)?;
    validate_prefix(&request.output.prefix)?;
    Ok(())
}

/// The main output (named `PREFIX/STEM.EXT` by the preset's container extension `ext`)
/// would not replace the input.
pub(super) fn output_keeps_input(request: &Request, ext: &str) -> ApiResult<()> {
    let (input, output) = (&request.input, &request.output);
    if output.bucket != input.bucket || output_key(&input.key, &output.prefix, ext) != input.key {
        return Ok(());
    }
    let name = FsPath::new(&input.key)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(ApiError::bad_request(
        "output-overwrites-input",
        format!(
            "the output {}{name} would replace the input; choose another output prefix",
            output.prefix
        ),
    ))
}

/// Attempts and time limit within bounds; destinations are URLs a delivery can go to.
pub(super) fn options(options: &Options) -> ApiResult<()> {
    if let Some(n) = options
        .max_attempts
        .filter(|n| !(1..=MAX_ATTEMPTS).contains(n))
    {
        return Err(invalid(format!(
            "max_attempts must be 1 to {MAX_ATTEMPTS}, not {n}"
        )));
    }
    if let Some(t) = options
        .timeout_seconds
        .filter(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(t))
    {
        return Err(invalid(format!(
            "timeout_seconds must be 1 to {MAX_TIMEOUT_SECONDS}, not {t}"
        )));
    }
    for url in [&options.on_success, &options.on_failure]
        .into_iter()
        .flatten()
    {
        validate_destination(url).map_err(|m| ApiError::bad_request("bad-destination", m))?;
    }
    Ok(())
}

/// A list of presets: 1 to `MAX_PRESETS` names, none twice.
pub(super) fn preset_list(names: &[String]) -> ApiResult<()> {
    if names.is_empty() || names.len() > super::MAX_PRESETS {
        return Err(invalid(format!(
            "presets: name 1 to {} presets, not {}",
            super::MAX_PRESETS,
            names.len()
        )));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(invalid(format!("presets: '{n}' is named twice")));
        }
    }
    Ok(())
}

/// A clip that makes sense on its own, asked of presets that re-encode what they keep (a
/// copied stream can only be cut at its keyframes, which is not the clip asked for).
pub(super) fn clip(options: &Options, presets: &[&Preset]) -> ApiResult<()> {
    let Some(clip) = &options.clip else {
        return Ok(());
    };
    if let Some(problem) = clip.problem() {
        return Err(invalid(problem));
    }
    match presets
        .iter()
        .find_map(|p| p.copies_streams().map(|what| (p, what)))
    {
        Some((p, what)) => Err(invalid(format!(
            "clip: preset '{}' copies the input's {what} as it is, which cannot be cut at any              frame; use a preset that re-encodes",
            p.name
        ))),
        None => Ok(()),
    }
}

/// A watermark that makes sense, in a valid bucket (the input's when it names none).
pub(super) fn watermark(options: &mut Options, input_bucket: &str) -> ApiResult<()> {
    let Some(w) = options.watermark.as_mut() else {
        return Ok(());
    };
    if let Some(problem) = w.problem("watermark") {
        return Err(invalid(problem));
    }
    let bucket = w.bucket.get_or_insert_with(|| input_bucket.to_string());
    validate_bucket(bucket)?;
    validate_key(&w.key)?;
    Ok(())
}

/// Audio languages that are ISO 639 codes, each named once.
pub(super) fn audio(options: &Options) -> ApiResult<()> {
    match &options.audio {
        Some(a) => crate::job::language::choice("audio.languages", &a.languages)
            .map(|_| ())
            .map_err(invalid),
        None => Ok(()),
    }
}

/// Caption files that make sense (the language an ISO 639-2 code), each in a valid bucket
/// (the input's when it names none).
pub(super) fn captions(options: &mut Options, input_bucket: &str) -> ApiResult<()> {
    let media = crate::job::MediaOptions {
        captions: options.captions.clone(),
        ..crate::job::MediaOptions::default()
    };
    if let Some(problem) = media.problem() {
        return Err(invalid(problem));
    }
    for c in &mut options.captions {
        let bucket = c.bucket.get_or_insert_with(|| input_bucket.to_string());
        validate_bucket(bucket)?;
        validate_key(&c.key)?;
    }
    Ok(())
}

/// A job of several presets, or with media options, runs whole (chunking "off"); asking for parts is an error.
pub(super) fn whole(chunking: Option<Chunking>, why: &str) -> ApiResult<Chunking> {
    match chunking {
        Some(Chunking::Segments { .. }) => Err(invalid(format!(
            "chunking: a job of {why} runs whole, so it cannot be split into parts; use \
             \"auto\" or \"off\""
        ))),
        _ => Ok(Chunking::Off),
    }
}

/// A part length only for a preset whose jobs can be split.
pub(super) fn chunking(chunking: Option<Chunking>, preset: &Preset) -> ApiResult<()> {
    let Some(Chunking::Segments { .. }) = chunking else {
        return Ok(());
    };
    match preset.why_unsplittable() {
        None => Ok(()),
        Some(why) => Err(invalid(format!(
            "chunking: preset '{}' {why}, so its jobs cannot be split; use \"auto\" or \"off\"",
            preset.name
        ))),
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid-request", message)
}

/// The key of a job's main output (workers name it `PREFIX/STEM.EXT`).
fn output_key(input_key: &str, prefix: &str, ext: &str) -> String {
    let stem = FsPath::new(input_key)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "output".into());
    format!("{prefix}{stem}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keys() {
        assert_eq!(output_key("in/x.mov", "in/", "mov"), "in/x.mov");
        assert_eq!(output_key("x.mp4", "out/", "mp4"), "out/x.mp4");
    }

    #[test]
    fn options_within_limits() {
        assert!(options(&Options::default()).is_ok());
        let over = Options {
            max_attempts: Some(MAX_ATTEMPTS + 1),
            ..Options::default()
        };
        assert_eq!(
            options(&over).unwrap_err().message,
            "max_attempts must be 1 to 100, not 101"
        );
        let zero = Options {
            timeout_seconds: Some(0),
            ..Options::default()
        };
        assert_eq!(
            options(&zero).unwrap_err().message,
            "timeout_seconds must be 1 to 86400, not 0"
        );
    }
}
