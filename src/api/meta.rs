//! The farm around the jobs: presets, the worker registry, health, and Prometheus metrics
//! (gauges read from the store at scrape time; durations and fps recorded by workers).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use super::error::{ApiResult, ErrorBody, Json, Path};
use crate::job::{Status, Timestamp};
use crate::store::{ListFilter, WorkerInfo};

#[utoipa::path(get, path = "/v1/presets", tag = "presets",
    responses((status = 200, description = "every preset, validated", body = Vec<Object>)))]
pub async fn presets(State(app): State<AppState>) -> Json<Vec<crate::preset::Preset>> {
    Json(app.presets.iter().cloned().collect())
}

#[utoipa::path(get, path = "/v1/presets/{name}", tag = "presets",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn preset(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<crate::preset::Preset>> {
    let p = app
        .presets
        .get(&name)
        .map_err(|e| super::error::ApiError::not_found(e.code(), e.to_string()))?;
    Ok(Json(p.clone()))
}

/// A worker as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerView {
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// active, draining, or lost (not seen for 20 s).
    pub state: crate::worker::WorkerState,
    /// Slots in use.
    pub busy: u32,
}

#[utoipa::path(get, path = "/v1/workers", tag = "workers",
    responses((status = 200, body = Vec<WorkerView>), (status = 503, body = ErrorBody)))]
pub async fn workers(State(app): State<AppState>) -> ApiResult<Json<Vec<WorkerView>>> {
    let now = Timestamp::now();
    let list = app.store.workers().await?;
    Ok(Json(
        list.into_iter()
            .map(|w| WorkerView {
                state: crate::worker::WorkerState::of(&w, now),
                busy: w.running.len() as u32,
                info: w,
            })
            .collect(),
    ))
}

/// What a client of this farm needs to know before it calls it: the web console reads it to
/// show the terminal only where exec can open, and to ask for exec's own token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Info {
    pub version: String,
    /// The store's backend: sqlite or postgres.
    pub store: String,
    /// Whether API calls need a token.
    pub token_required: bool,
    pub exec: ExecInfo,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExecInfo {
    /// `[exec] enabled`.
    pub enabled: bool,
    /// Which token opens a session: `exec` (exec's own), `api` (the API's), or `none` (no
    /// token is configured, so exec refuses every session).
    #[schema(value_type = String)]
    pub token: &'static str,
}

#[utoipa::path(get, path = "/v1/info", tag = "meta",
    responses((status = 200, body = Info)))]
pub async fn info(State(app): State<AppState>) -> Json<Info> {
    let config = &app.config;
    let token = match (&config.exec.token, &config.token) {
        (Some(_), _) => "exec",
        (None, Some(_)) => "api",
        (None, None) => "none",
    };
    Json(Info {
        version: env!("CARGO_PKG_VERSION").into(),
        store: app.store.backend().into(),
        token_required: config.token.is_some(),
        exec: ExecInfo {
            enabled: config.exec.enabled,
            token,
        },
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// "ok", or "unavailable" when the store cannot be reached.
    pub status: String,
    pub store: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let probe = app.store.counts(&ListFilter::default()).await;
    let (code, status, error) = match probe {
        Ok(_) => (StatusCode::OK, "ok", None),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some(e.to_string()),
        ),
    };
    (
        code,
        Json(Health {
            status: status.into(),
            store: app.store.backend().into(),
            version: env!("CARGO_PKG_VERSION").into(),
            error,
        }),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 503, body = ErrorBody)))]
pub async fn metrics(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    let counts = app.store.counts(&ListFilter::default()).await?;
    for status in Status::ALL {
        let n = counts.get(&status).copied().unwrap_or(0);
        metrics::gauge!("ffarm_jobs", "status" => status.to_string()).set(n as f64);
    }
    let n = |s| counts.get(&s).copied().unwrap_or(0) as f64;
    metrics::gauge!("ffarm_queue_depth").set(n(Status::Queued));
    metrics::gauge!("ffarm_running_tasks").set(n(Status::Running) + n(Status::Cancelling));
    let now = Timestamp::now();
    let (mut total, mut busy, mut live) = (0u32, 0u32, 0u32);
    for w in app.store.workers().await? {
        if crate::worker::WorkerState::of(&w, now) != crate::worker::WorkerState::Lost {
            live += 1;
            total += w.slots;
            busy += w.running.len() as u32;
        }
    }
    metrics::gauge!("ffarm_workers").set(live as f64);
    metrics::gauge!("ffarm_slots").set(total as f64);
    metrics::gauge!("ffarm_busy_slots").set(busy as f64);
    let capacity = app.store.capacity().await?;
    metrics::gauge!("ffarm_parts", "status" => "queued").set(capacity.queued_parts as f64);
    metrics::gauge!("ffarm_parts", "status" => "running").set(capacity.running_parts as f64);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    ))
}
