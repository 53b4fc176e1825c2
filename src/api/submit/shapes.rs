//! The two shapes a `POST /v1/jobs` body comes in — the native request and the serverless
//! transcode function's — told apart by their fields and read into one [`Request`], with
//! the function's defaults filled in and the shape's own rules (a preset or a format, not
//! both) applied.

use serde::Deserialize;
use serde_json::Value;

use super::DEFAULT_OUTPUT_PREFIX;
use crate::api::error::{ApiError, ApiResult};
use crate::job::{
    AudioChoice, Caption, Chunking, Clip, ObjectRef, OutputTarget, SubtitleOptions, Watermark,
};

/// The native submit request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"input": {"bucket": "media", "key": "in/clip.mp4"}, "preset": "h264-720p"}))]
pub struct SubmitRequest {
    /// Names the job (`[A-Za-z0-9_-]{1,128}`); submitting an existing id returns that job.
    pub id: Option<String>,
    pub input: ObjectRef,
    /// A preset name (see `GET /v1/presets`); or give `presets` or `dst_format` instead.
    pub preset: Option<String>,
    /// Several presets, one output each, made from one read and one decode of the input
    /// (at most 8, no repeats). Their outputs are named `STEM.PRESET.EXT` under the prefix.
    /// Such a job runs whole: its chunking is `"off"`.
    #[schema(example = json!(["hls-abr", "h264-720p", "poster-jpg"]))]
    pub presets: Option<Vec<String>>,
    /// A container (mp4, mov, mkv, webm, flv, avi, ts, m3u8, mp3, m4a, ogg, wav): its
    /// default preset.
    pub dst_format: Option<String>,
    /// Default: the input's bucket, prefix `out/`.
    pub output: Option<OutputRequest>,
    pub priority: Option<i32>,
    /// 1 to 100; default 3.
    pub max_attempts: Option<u32>,
    /// 1 to 86400; default from the configuration (24 h).
    pub timeout_seconds: Option<u64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    /// Replace outputs another input wrote under the same keys; default false (such a job
    /// fails with `output-conflict`, leaving them as they are).
    pub overwrite: Option<bool>,
    /// Whether the job's video may be split into parts that several workers encode:
    /// `"auto"` (when the input is long and the farm has room), `"off"`, or
    /// `{"segment_seconds": N}` (N ≥ 2; only for presets that encode video). Default: what
    /// the preset says, else `"auto"`.
    pub chunking: Option<Chunking>,
    /// Transcode only this part of the input: `{"start": s, "end": s}` in seconds of the
    /// input's timeline (either may be left out: from 0, to the end). Frame-accurate; the
    /// audio is cut to match. Only for presets that encode (not copy) their streams; such
    /// a job runs whole. A clip past the input's end fails the job `clip-out-of-range`.
    #[schema(example = json!({"start": 30.0, "end": 45.5}))]
    pub clip: Option<Clip>,
    /// An image (PNG or JPEG) composited on every video output, over the preset's own:
    /// `{"key": ..., "bucket": ..., "position": "bottom-right", "margin": 0.03,
    /// "opacity": 1.0, "height_ratio": 0.1}` (only `key` required; the bucket defaults to
    /// the input's; margin and height are shares of the output's height). Such a job runs
    /// whole.
    #[schema(example = json!({"key": "logos/acme.png", "position": "top-right", "opacity": 0.7}))]
    pub watermark: Option<Watermark>,
    /// Measure each video output's SSIM and PSNR against the source before the job
    /// succeeds (shown in its outputs' `check.quality`); default false, or the preset's
    /// `quality`. Such a job runs whole.
    pub quality: Option<bool>,
    /// Which audio tracks to keep: `{"languages": ["eng", "und"]}` (ISO 639 codes; `und`:
    /// tracks that name no language), in that order, over the presets' `[audio]
    /// languages`. Several kept tracks go into containers that hold several and become
    /// alternate audio renditions (an `AUDIO` group) in HLS. An input with none of them
    /// fails the job `audio-language-missing`. Such a job runs whole.
    #[schema(example = json!({"languages": ["eng", "fra"]}))]
    pub audio: Option<AudioChoice>,
    /// Caption files (SRT, ASS/SSA or WebVTT) carried into every output that holds text
    /// subtitles (WebVTT renditions in HLS, mov_text in MP4/MOV, WebVTT in MKV/WebM):
    /// `[{"key": ..., "language": "eng", "bucket": ..., "name": ...}]`; `language` is ISO
    /// 639-2 (three lowercase letters), the bucket defaults to the input's. A missing
    /// object is a 400 `captions-not-found`; a file that is not text subtitles fails the job
    /// `captions-invalid`. Such a job runs whole.
    #[schema(example = json!([{"key": "subs/movie.en.srt", "language": "eng", "name": "English"}]))]
    pub captions: Option<Vec<Caption>>,
    /// `{"side_files": true}`: every caption track also as `NAME.LANG.vtt` beside each
    /// output; `{"burn_in": true}`: the first caption track (an attached file, else the
    /// input's first text stream) rendered into every video output's picture.
    pub subtitles: Option<SubtitleOptions>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputRequest {
    pub bucket: Option<String>,
    /// A key prefix; a missing trailing `/` is added.
    pub prefix: Option<String>,
}

/// The serverless video-transcode function's event, accepted as is.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"bucket": "media", "object": "in/clip.mp4", "output_dir": "out/seed", "dst_format": "webm"}))]
pub struct ServerlessTranscodeRequest {
    pub id: Option<String>,
    pub bucket: String,
    /// The input key.
    pub object: String,
    /// Outputs go to `OUTPUT_DIR/STEM.FORMAT`.
    pub output_dir: String,
    pub dst_format: String,
    /// As in the native request.
    pub overwrite: Option<bool>,
    /// As in the native request (the function's event has no such field; ffarm takes it so
    /// a caller of this shape can turn splitting off or choose a part length too).
    pub chunking: Option<Chunking>,
}

/// Either shape: the fields tell them apart.
// `Deserialize` is derived for the schema's sake (`untagged` makes it a `oneOf`): `parse`
// picks the shape by its fields instead, so an error speaks of the shape the client meant.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SubmitBody {
    Native(Box<SubmitRequest>),
    ServerlessTranscode(ServerlessTranscodeRequest),
}

/// A submit request in either shape, before the checks.
#[derive(Debug)]
pub(super) struct Request {
    pub id: Option<String>,
    pub input: ObjectRef,
    pub preset: PresetChoice,
    pub output: OutputTarget,
    pub options: Options,
    /// May replace other inputs' outputs (either shape may ask).
    pub overwrite: bool,
    /// Whether the job may be split, if the request says (either shape may).
    pub chunking: Option<Chunking>,
}

/// How a request names its preset.
#[derive(Debug)]
pub(super) enum PresetChoice {
    /// A preset by name.
    Name(String),
    /// Several presets by name: one output each.
    Names(Vec<String>),
    /// A container: its default preset.
    Format(String),
}

/// What only the native shape can ask for; absent, the defaults.
#[derive(Debug, Default)]
pub(super) struct Options {
    pub priority: Option<i32>,
    pub max_attempts: Option<u32>,
    pub timeout_seconds: Option<u64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub clip: Option<Clip>,
    pub watermark: Option<Watermark>,
    pub quality: bool,
    pub audio: Option<AudioChoice>,
    pub captions: Vec<Caption>,
    pub subtitles: Option<SubtitleOptions>,
}

/// Reads a body of either shape into a [`Request`].
pub(super) fn parse(body: &Value) -> ApiResult<Request> {
    match shape(body)? {
        SubmitBody::Native(native) => native.into_request(),
        SubmitBody::ServerlessTranscode(function) => Ok(function.into_request()),
    }
}

/// Which shape the body is, read as that shape.
fn shape(body: &Value) -> ApiResult<SubmitBody> {
    let Value::Object(map) = body else {
        return Err(invalid("the body must be a JSON object"));
    };
    if map.contains_key("input") {
        Ok(SubmitBody::Native(deserialize(body)?))
    } else if ["bucket", "object", "output_dir", "dst_format"]
        .iter()
        .any(|k| map.contains_key(*k))
    {
        Ok(SubmitBody::ServerlessTranscode(deserialize(body)?))
    } else {
        Err(invalid(
            "expected {\"input\": {\"bucket\", \"key\"}, \"preset\", …} or \
             {\"bucket\", \"object\", \"output_dir\", \"dst_format\"}",
        ))
    }
}

/// Reads one shape; the error names the field at fault (`input.key: invalid type …`).
fn deserialize<T: serde::de::DeserializeOwned>(body: &Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(body.clone()).map_err(|e| {
        let at = e.path().to_string();
        invalid(at_field(&at, &e.into_inner().to_string()))
    })
}

/// `message` prefixed with the field it is about (`at`, a path such as `output.prefix`). An
/// unknown field's path may end at that field, which the message names already: then only
/// the part before it is added (`output: unknown field `prefx`…`).
fn at_field(at: &str, message: &str) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let at = match unknown.and_then(|field| at.strip_suffix(field)) {
        Some(parent) if parent.is_empty() || parent.ends_with('.') => parent.trim_end_matches('.'),
        _ => at,
    };
    if at.is_empty() || at == "." {
        message.to_string()
    } else {
        format!("{at}: {message}")
    }
}

impl SubmitRequest {
    fn into_request(self) -> ApiResult<Request> {
        let preset = match (self.preset, self.presets, self.dst_format) {
            (Some(name), None, None) => PresetChoice::Name(name),
            (None, Some(names), None) => PresetChoice::Names(names),
            (None, None, Some(format)) => PresetChoice::Format(format),
            (None, None, None) => {
                return Err(invalid(
                    "missing preset: name a preset (GET /v1/presets), presets or a dst_format",
                ));
            }
            _ => {
                return Err(invalid(
                    "give one of preset, presets and dst_format, not several",
                ));
            }
        };
        let output = self.output.unwrap_or(OutputRequest {
            bucket: None,
            prefix: None,
        });
        Ok(Request {
            id: self.id,
            output: OutputTarget {
                bucket: output.bucket.unwrap_or_else(|| self.input.bucket.clone()),
                prefix: as_prefix(output.prefix.as_deref().unwrap_or(DEFAULT_OUTPUT_PREFIX)),
            },
            input: self.input,
            preset,
            overwrite: self.overwrite.unwrap_or(false),
            chunking: self.chunking,
            options: Options {
                priority: self.priority,
                max_attempts: self.max_attempts,
                timeout_seconds: self.timeout_seconds,
                on_success: self.on_success,
                on_failure: self.on_failure,
                clip: self.clip,
                watermark: self.watermark,
                quality: self.quality.unwrap_or(false),
                audio: self.audio,
                captions: self.captions.unwrap_or_default(),
                subtitles: self.subtitles,
            },
        })
    }
}

impl ServerlessTranscodeRequest {
    /// Outputs beside each other in `output_dir` of the input's bucket; the rest defaults.
    fn into_request(self) -> Request {
        Request {
            id: self.id,
            output: OutputTarget {
                bucket: self.bucket.clone(),
                prefix: as_prefix(&self.output_dir),
            },
            input: ObjectRef {
                bucket: self.bucket,
                key: self.object,
            },
            preset: PresetChoice::Format(self.dst_format),
            options: Options::default(),
            overwrite: self.overwrite.unwrap_or(false),
            chunking: self.chunking,
        }
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid-request", message)
}

/// A prefix from what a client wrote: surrounding slashes trimmed, one `/` at the end.
fn as_prefix(p: &str) -> String {
    let p = p.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefixes() {
        assert_eq!(as_prefix("a"), "a/");
        assert_eq!(as_prefix("/a/b/"), "a/b/");
        assert_eq!(as_prefix(""), "");
    }

    #[test]
    fn errors_name_the_field_once() {
        let unknown = |at: &str, field: &str| at_field(at, &format!("unknown field `{field}`"));
        assert_eq!(unknown("presett", "presett"), "unknown field `presett`");
        assert_eq!(
            unknown("output.prefx", "prefx"),
            "output: unknown field `prefx`"
        );
        assert_eq!(
            unknown("chunking", "seconds"),
            "chunking: unknown field `seconds`"
        );
        assert_eq!(unknown("xprefx", "prefx"), "xprefx: unknown field `prefx`");
        assert_eq!(at_field(".", "expected a map"), "expected a map");
        assert_eq!(
            at_field("input.key", "invalid type"),
            "input.key: invalid type"
        );
    }

    #[test]
    fn the_fields_tell_the_shapes_apart() {
        let native = parse(&json!({"input": {"bucket": "b", "key": "k.mp4"}, "preset": "p"}));
        let native = native.unwrap();
        assert!(matches!(native.preset, PresetChoice::Name(ref p) if p == "p"));
        assert_eq!(native.output.prefix, "out/");
        let function = parse(&json!({"bucket": "b", "object": "in/k.mp4",
            "output_dir": "/a/", "dst_format": "webm"}))
        .unwrap();
        assert!(matches!(function.preset, PresetChoice::Format(ref f) if f == "webm"));
        assert_eq!(
            (function.input.key.as_str(), function.output.prefix.as_str()),
            ("in/k.mp4", "a/")
        );
        let neither = parse(&json!({"preset": "p"})).unwrap_err();
        assert!(
            neither.message.starts_with("expected {\"input\""),
            "{}",
            neither.message
        );
        let both = parse(&json!({"input": {"bucket": "b", "key": "k"}, "preset": "p",
            "dst_format": "mp4"}))
        .unwrap_err();
        assert_eq!(
            both.message,
            "give one of preset, presets and dst_format, not several"
        );
        let wrong = parse(&json!({"bucket": "b", "object": 5, "output_dir": "a",
            "dst_format": "mp4"}))
        .unwrap_err();
        assert!(
            wrong.message.starts_with("object: invalid type"),
            "{}",
            wrong.message
        );
    }
}
