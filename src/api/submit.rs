//! `POST /v1/jobs`: reads a submit request in either shape — the native one
//! (`{input, preset, output, …}`) or the serverless transcode function's
//! (`{bucket, object, output_dir, dst_format}`) — checks everything a worker would trip over
//! later (preset, keys, destinations, the input existing), and stores the job.

use std::path::Path as FsPath;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ApiResult, Json};
use crate::buckets::{validate_bucket, validate_key, validate_prefix};
use crate::job::{
    DEFAULT_MAX_ATTEMPTS, Job, JobSpec, ObjectRef, OutputTarget, Trigger, validate_id,
};

/// Longest a job may run.
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 3600;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Where outputs go when a request names no prefix.
pub const DEFAULT_OUTPUT_PREFIX: &str = "out/";

/// The native submit request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"input": {"bucket": "media", "key": "in/clip.mp4"}, "preset": "h264-720p"}))]
pub struct SubmitRequest {
    /// Names the job (`[A-Za-z0-9_-]{1,128}`); submitting an existing id returns that job.
    pub id: Option<String>,
    pub input: ObjectRef,
    /// A preset name (see `GET /v1/presets`); or give `dst_format` instead.
    pub preset: Option<String>,
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
}

/// Either shape: the fields tell them apart.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the body; requests are read through `serde_json::Value`
pub enum SubmitBody {
    Native(SubmitRequest),
    ServerlessTranscode(ServerlessTranscodeRequest),
}

#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content = SubmitBody, description = "a native request, or the serverless \
        function's {bucket, object, output_dir, dst_format}"),
    responses(
        (status = 201, description = "created", body = Job),
        (status = 200, description = "a job with this id and the same spec exists", body = Job),
        (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, description = "the id exists with a different spec", body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody),
        (status = 415, description = "not sent as application/json", body = super::error::ErrorBody)))]
pub async fn submit(
    State(app): State<AppState>,
    Json(body): Json<Value>,
) -> ApiResult<impl IntoResponse> {
    let (id, spec) = read(&app, body)?;
    let exists = match &id {
        Some(id) => match app.store.get(id).await {
            Ok(_) => true,
            Err(crate::store::StoreError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        },
        None => false,
    };
    if !exists {
        // Fail now rather than in a worker: the input must be there.
        app.buckets
            .size(&spec.input.bucket, &spec.input.key)
            .await?;
    }
    let submitted = app.store.submit(id, spec).await?;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/jobs/{}", submitted.job.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((status, headers, Json(submitted.job)))
}

/// Reads and checks a request body of either shape.
pub fn read(app: &AppState, body: Value) -> ApiResult<(Option<String>, JobSpec)> {
    let Value::Object(map) = &body else {
        return Err(ApiError::bad_request(
            "invalid-request",
            "the body must be a JSON object",
        ));
    };
    let shape_error = |e: serde_path_to_error::Error<serde_json::Error>| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        let message = if at == "." || inner.to_string().starts_with("unknown field") {
            inner.to_string()
        } else {
            format!("{at}: {inner}")
        };
        ApiError::bad_request("invalid-request", message)
    };
    let (id, input, preset, output, req) = if map.contains_key("input") {
        let req: SubmitRequest =
            serde_path_to_error::deserialize(body.clone()).map_err(shape_error)?;
        let preset = match (&req.preset, &req.dst_format) {
            (Some(p), None) => app.presets.get(p)?.name.clone(),
            (None, Some(f)) => app.presets.for_format(f)?.name.clone(),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "invalid-request",
                    "give either preset or dst_format, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "invalid-request",
                    "missing preset: name a preset (GET /v1/presets) or a dst_format",
                ));
            }
        };
        let output = req.output.as_ref();
        let output = OutputTarget {
            bucket: output
                .and_then(|o| o.bucket.clone())
                .unwrap_or_else(|| req.input.bucket.clone()),
            prefix: as_prefix(
                output
                    .and_then(|o| o.prefix.as_deref())
                    .unwrap_or(DEFAULT_OUTPUT_PREFIX),
            ),
        };
        (req.id.clone(), req.input.clone(), preset, output, Some(req))
    } else if ["bucket", "object", "output_dir", "dst_format"]
        .iter()
        .any(|k| map.contains_key(*k))
    {
        let req: ServerlessTranscodeRequest =
            serde_path_to_error::deserialize(body.clone()).map_err(shape_error)?;
        let preset = app.presets.for_format(&req.dst_format)?.name.clone();
        let output = OutputTarget {
            bucket: req.bucket.clone(),
            prefix: as_prefix(&req.output_dir),
        };
        let input = ObjectRef {
            bucket: req.bucket,
            key: req.object,
        };
        (req.id, input, preset, output, None)
    } else {
        return Err(ApiError::bad_request(
            "invalid-request",
            "expected {\"input\": {\"bucket\", \"key\"}, \"preset\", …} or \
             {\"bucket\", \"object\", \"output_dir\", \"dst_format\"}",
        ));
    };

    if let Some(id) = &id {
        validate_id(id).map_err(|m| ApiError::bad_request("bad-id", m))?;
    }
    validate_bucket(&input.bucket)?;
    validate_key(&input.key)?;
    validate_bucket(&output.bucket)?;
    validate_prefix(&output.prefix)?;
    let ext = app.presets.get(&preset)?.container.extension();
    if output.bucket == input.bucket && output_key(&input.key, &output.prefix, ext) == input.key {
        return Err(ApiError::bad_request(
            "output-overwrites-input",
            format!(
                "the output {}{} would replace the input; choose another output prefix",
                output.prefix,
                FsPath::new(&input.key)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        ));
    }

    let mut spec = JobSpec {
        input,
        preset,
        output,
        priority: 0,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        timeout_seconds: app
            .config
            .worker
            .job_timeout_seconds
            .min(MAX_TIMEOUT_SECONDS),
        on_success: None,
        on_failure: None,
        trigger: Some(Trigger {
            source: "api".into(),
            payload: body.clone(),
        }),
    };
    if let Some(req) = req {
        spec.priority = req.priority.unwrap_or(0);
        if let Some(n) = req.max_attempts {
            if !(1..=MAX_ATTEMPTS).contains(&n) {
                return Err(ApiError::bad_request(
                    "invalid-request",
                    format!("max_attempts must be 1 to {MAX_ATTEMPTS}, not {n}"),
                ));
            }
            spec.max_attempts = n;
        }
        if let Some(t) = req.timeout_seconds {
            if !(1..=MAX_TIMEOUT_SECONDS).contains(&t) {
                return Err(ApiError::bad_request(
                    "invalid-request",
                    format!("timeout_seconds must be 1 to {MAX_TIMEOUT_SECONDS}, not {t}"),
                ));
            }
            spec.timeout_seconds = t;
        }
        for url in [&req.on_success, &req.on_failure].into_iter().flatten() {
            crate::job::validate_destination(url)
                .map_err(|m| ApiError::bad_request("bad-destination", m))?;
        }
        spec.on_success = req.on_success;
        spec.on_failure = req.on_failure;
    }
    app.config.destinations.fill(&mut spec);
    Ok((id, spec))
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
    fn prefixes_and_output_keys() {
        assert_eq!(as_prefix("a"), "a/");
        assert_eq!(as_prefix("/a/b/"), "a/b/");
        assert_eq!(as_prefix(""), "");
        assert_eq!(output_key("in/x.mov", "in/", "mov"), "in/x.mov");
        assert_eq!(output_key("x.mp4", "out/", "mp4"), "out/x.mp4");
    }
}
