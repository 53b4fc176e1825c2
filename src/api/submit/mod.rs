//! `POST /v1/jobs`: reads a submit request in either shape — the native one
//! (`{input, preset, output, …}`) or the serverless transcode function's
//! (`{bucket, object, output_dir, dst_format}`) — checks everything a worker would trip over
//! later (preset, keys, destinations, the input existing), and stores the job. The shapes
//! are `shapes`'s, the checks `checks`'s.

mod checks;
mod shapes;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::Value;

use self::shapes::{PresetChoice, Request, SubmitBody};
use super::AppState;
use super::error::{ApiError, ApiResult, Json};
use crate::job::{
    Chunking, DEFAULT_MAX_ATTEMPTS, Job, JobSpec, MediaOptions, Trigger, join_presets,
};
use crate::preset::Preset;
use crate::store::{StoreError, Submitted};

/// Longest a job may run.
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 3600;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Where outputs go when a request names no prefix.
pub const DEFAULT_OUTPUT_PREFIX: &str = "out/";

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
    let submitted = store(&app, id, spec).await?;
    Ok(answer(submitted))
}

/// Reads and checks a request body of either shape: the id it names, and the job.
fn read(app: &AppState, body: Value) -> ApiResult<(Option<String>, JobSpec)> {
    let mut request = shapes::parse(&body)?;
    let presets = presets(app, &request.preset)?;
    checks::names(&request)?;
    for p in &presets {
        checks::output_keeps_input(&request, &output_suffix(p, presets.len() > 1))?;
    }
    checks::options(&request.options)?;
    checks::clip(&request.options, &presets)?;
    checks::watermark(&mut request.options, &request.input.bucket)?;
    checks::audio(&request.options)?;
    checks::captions(&mut request.options, &request.input.bucket)?;
    let captions = !request.options.captions.is_empty()
        || request
            .options
            .subtitles
            .is_some_and(|s| s.side_files || s.burn_in)
        || presets.iter().any(|p| !p.captions.is_none());
    let chunking = match presets.as_slice() {
        _ if request.options.clip.is_some() => checks::whole(request.chunking, "a clip")?,
        _ if request.options.watermark.is_some()
            || presets.iter().any(|p| p.watermark.is_some()) =>
        {
            checks::whole(request.chunking, "a watermark")?
        }
        _ if request.options.quality || presets.iter().any(|p| p.quality) => {
            checks::whole(request.chunking, "quality figures")?
        }
        _ if request.options.audio.is_some() => {
            checks::whole(request.chunking, "a choice of audio languages")?
        }
        _ if captions => checks::whole(request.chunking, "captions")?,
        [one] => {
            checks::chunking(request.chunking, one)?;
            one.resolve_chunking(request.chunking)
        }
        _ => checks::whole(request.chunking, "several presets")?,
    };
    let names: Vec<String> = presets.iter().map(|p| p.name.clone()).collect();
    Ok((
        request.id.clone(),
        spec(app, request, join_presets(&names), chunking, body),
    ))
}

/// Most presets one job may name.
pub const MAX_PRESETS: usize = 8;

/// The presets a request names, by name or by format: one, or several without repeats.
fn presets<'a>(app: &'a AppState, choice: &PresetChoice) -> ApiResult<Vec<&'a Preset>> {
    Ok(match choice {
        PresetChoice::Name(name) => vec![app.presets.get(name)?],
        PresetChoice::Format(format) => vec![app.presets.for_format(format)?],
        PresetChoice::Names(names) => {
            checks::preset_list(names)?;
            names
                .iter()
                .map(|n| app.presets.get(n))
                .collect::<Result<_, _>>()?
        }
    })
}

/// What follows the input's stem in an output's name: `EXT`, or `PRESET.EXT` when the job
/// has several presets (what workers name them).
fn output_suffix(preset: &Preset, several: bool) -> String {
    let ext = preset.container.extension();
    if several {
        format!("{}.{ext}", preset.name)
    } else {
        ext.to_string()
    }
}

/// The job a checked request asks for: its options over the defaults, the configuration's
/// destinations where it names none, its resolved chunking, and the body as the trigger's
/// payload.
fn spec(
    app: &AppState,
    request: Request,
    preset: String,
    chunking: Chunking,
    body: Value,
) -> JobSpec {
    let options = request.options;
    let mut spec = JobSpec {
        input: request.input,
        preset,
        output: request.output,
        priority: options.priority.unwrap_or(0),
        max_attempts: options.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        timeout_seconds: options.timeout_seconds.unwrap_or_else(|| {
            app.config
                .worker
                .job_timeout_seconds
                .min(MAX_TIMEOUT_SECONDS)
        }),
        on_success: options.on_success,
        on_failure: options.on_failure,
        trigger: Some(Trigger {
            source: "api".into(),
            payload: body,
        }),
        overwrite: request.overwrite,
        chunking,
        media: MediaOptions {
            clip: options.clip,
            watermark: options.watermark,
            quality: options.quality,
            audio: options.audio,
            captions: options.captions,
            subtitles: options.subtitles,
        },
    };
    app.config.destinations.fill(&mut spec);
    spec
}

/// Stores the job. A new id's input must be there: better a 404 now than a failure in a
/// worker.
async fn store(app: &AppState, id: Option<String>, spec: JobSpec) -> ApiResult<Submitted> {
    if !exists(app, id.as_deref()).await? {
        app.buckets
            .size(&spec.input.bucket, &spec.input.key)
            .await?;
        if let Some(w) = &spec.media.watermark {
            let bucket = w.bucket.as_deref().unwrap_or(&spec.input.bucket);
            app.buckets.size(bucket, &w.key).await.map_err(|e| {
                ApiError::bad_request("watermark-not-found", format!("watermark: {e}"))
            })?;
        }
        for (i, c) in spec.media.captions.iter().enumerate() {
            let bucket = c.bucket.as_deref().unwrap_or(&spec.input.bucket);
            app.buckets.size(bucket, &c.key).await.map_err(|e| {
                ApiError::bad_request("captions-not-found", format!("captions[{i}]: {e}"))
            })?;
        }
    }
    Ok(app.store.submit(id, spec).await?)
}

/// Whether a job with this id is stored already.
async fn exists(app: &AppState, id: Option<&str>) -> ApiResult<bool> {
    let Some(id) = id else {
        return Ok(false);
    };
    match app.store.get(id).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// 201 with a new job, 200 with the one the id already named; `Location` says where it is.
fn answer(submitted: Submitted) -> impl IntoResponse {
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/jobs/{}", submitted.job.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    (status, headers, Json(submitted.job))
}
