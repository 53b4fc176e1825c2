//! A preset's `chunking`: `"auto"`, `"off"` or `{ segment_seconds = N }`, and only for a
//! preset whose jobs can be split when it names a part length.

use super::check::Check;
use crate::job::{Chunking, MIN_SEGMENT_SECONDS};
use crate::preset::codecs::Container;
use crate::preset::{PresetError, VideoOutput, unsplittable};

/// The file's `chunking`, if it says one.
pub(super) fn chunking(
    c: &Check,
    value: Option<&toml::Value>,
    container: Container,
    video: &Option<VideoOutput>,
) -> Result<Option<Chunking>, PresetError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let chunking = read(c, value)?;
    if let Chunking::Segments { .. } = chunking
        && let Some(why) = unsplittable(container, video)
    {
        return Err(c.err(
            "chunking",
            format!("this preset {why}, so its jobs cannot be split; leave segment_seconds out"),
        ));
    }
    Ok(Some(chunking))
}

/// `"auto"`, `"off"`, or a table holding `segment_seconds` alone.
fn read(c: &Check, value: &toml::Value) -> Result<Chunking, PresetError> {
    let choices = "write \"auto\", \"off\" or { segment_seconds = N }";
    match value {
        toml::Value::String(s) if s == "auto" => Ok(Chunking::Auto),
        toml::Value::String(s) if s == "off" => Ok(Chunking::Off),
        toml::Value::String(s) => {
            Err(c.err("chunking", format!("\"{s}\" is not a choice; {choices}")))
        }
        toml::Value::Table(t) => {
            if let Some(key) = t.keys().find(|k| *k != "segment_seconds") {
                return Err(c.err("chunking", format!("unknown key '{key}'; {choices}")));
            }
            Ok(Chunking::Segments {
                segment_seconds: segment_seconds(c, t.get("segment_seconds"))?,
            })
        }
        other => Err(c.err("chunking", format!("{choices} (got {})", other.type_str()))),
    }
}

/// A part length: whole seconds, at least [`MIN_SEGMENT_SECONDS`].
fn segment_seconds(c: &Check, value: Option<&toml::Value>) -> Result<u32, PresetError> {
    let field = "chunking.segment_seconds";
    let Some(n) = value.and_then(toml::Value::as_integer) else {
        return Err(c.err(field, "must be a whole number of seconds"));
    };
    if n < i64::from(MIN_SEGMENT_SECONDS) {
        return Err(c.err(
            field,
            format!("must be at least {MIN_SEGMENT_SECONDS} (got {n})"),
        ));
    }
    u32::try_from(n).map_err(|_| c.err(field, format!("{n} is too long")))
}
