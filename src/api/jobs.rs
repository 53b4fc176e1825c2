//! Job endpoints other than submit: list (filters, cursor pagination), get, cancel, retry,
//! logs and history.

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::job::{Job, Status, Timestamp, validate_id};
use crate::store::{
    AttemptInfo, JobEvent, ListFilter, LogLine, Page, StoreError, TimeField, page_limit,
};

/// A job id from a path. One that no job can have (see `validate_id`) names no job: it is not
/// found without asking the store, which may refuse some strings outright (PostgreSQL: NUL).
pub(super) fn job_id(id: &str) -> ApiResult<&str> {
    validate_id(id).map_err(|_| StoreError::NotFound { id: id.to_string() })?;
    Ok(id)
}

/// Refuses a NUL character in text the store is asked about (PostgreSQL cannot hold one).
fn no_nul(what: &str, text: Option<&str>) -> ApiResult<()> {
    if text.is_some_and(|t| t.contains('\0')) {
        return Err(ApiError::bad_request(
            "bad-query",
            format!("{what}: contains a NUL character"),
        ));
    }
    Ok(())
}

/// `GET /v1/jobs` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Comma-separated statuses (queued, running, cancelling, succeeded, failed, cancelled).
    pub status: Option<String>,
    /// Only jobs at or after this time: RFC 3339, YYYY-MM-DD, or back from now (15m, 2h, 7d).
    pub since: Option<String>,
    /// Only jobs before this time (same forms as `since`).
    pub until: Option<String>,
    /// Which time `since`/`until` apply to: created (default), started or finished.
    pub time_field: Option<TimeField>,
    pub bucket: Option<String>,
    /// Input keys starting with this.
    pub prefix: Option<String>,
    pub preset: Option<String>,
    /// A substring of the id or the input key.
    pub q: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The store filter these parameters ask for.
    pub fn filter(&self) -> ApiResult<ListFilter> {
        let bad = |m: String| ApiError::bad_request("bad-query", m);
        no_nul("bucket", self.bucket.as_deref())?;
        no_nul("prefix", self.prefix.as_deref())?;
        no_nul("preset", self.preset.as_deref())?;
        no_nul("q", self.q.as_deref())?;
        let mut statuses = vec![];
        for s in self.status.iter().flat_map(|s| s.split(',')) {
            let s = s.trim();
            if !s.is_empty() {
                statuses.push(s.parse::<Status>().map_err(bad)?);
            }
        }
        let time = |t: &Option<String>, which: &str| -> ApiResult<Option<Timestamp>> {
            t.as_deref()
                .map(|t| Timestamp::parse(t).map_err(|m| bad(format!("{which}: {m}"))))
                .transpose()
        };
        Ok(ListFilter {
            statuses,
            time_field: self.time_field.unwrap_or_default(),
            since: time(&self.since, "since")?,
            until: time(&self.until, "until")?,
            bucket: self.bucket.clone(),
            key_prefix: self.prefix.clone(),
            preset: self.preset.clone(),
            search: self.q.clone().filter(|q| !q.is_empty()),
        })
    }
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = Page), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<Page>> {
    let filter = params.filter()?;
    let page = app
        .store
        .list(
            &filter,
            page_limit(params.limit.unwrap_or(0)),
            params.cursor.as_deref().filter(|c| !c.is_empty()),
        )
        .await?;
    Ok(Json(page))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(app.store.get(job_id(&id)?).await?))
}

/// `POST /v1/jobs/{id}/cancel` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Kept in the job's history.
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    request_body(content = Option<CancelRequest>, description = "optional"),
    responses((status = 200, description = "cancelled (queued) or cancelling (running)", body = Job),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already finished", body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn cancel(
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> ApiResult<Json<Job>> {
    let id = job_id(&id)?;
    let body = body?;
    // No body, or JSON null, is no reason.
    let req: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        serde_json::from_slice::<Option<CancelRequest>>(&body)
            .map_err(|e| {
                let code = if e.is_data() {
                    "invalid-request"
                } else {
                    "malformed-json"
                };
                ApiError::bad_request(code, e.to_string())
            })?
            .unwrap_or_default()
    };
    if req.reason.as_deref().is_some_and(|r| r.contains('\0')) {
        return Err(ApiError::bad_request(
            "invalid-request",
            "reason: contains a NUL character",
        ));
    }
    let reason = req
        .reason
        .map(|r| r.chars().take(500).collect::<String>())
        .unwrap_or_else(|| "cancelled through the API".into());
    // A queued job ends here, its ending written into the delivery outbox with it (a running
    // one ends in its worker); the farm's couriers deliver it.
    let job = app.store.cancel(id, &reason).await?;
    Ok(Json(job))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "queued again, as a new attempt", body = Job),
        (status = 404, body = ErrorBody), (status = 409, description = "not finished", body = ErrorBody)))]
pub async fn retry(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    Ok(Json(app.store.retry(job_id(&id)?).await?))
}

/// `GET /v1/jobs/{id}/logs` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// One attempt's lines (default: every attempt's).
    pub attempt: Option<u32>,
    /// Lines after this sequence number (the previous answer's `next`).
    pub after: Option<i64>,
    /// At most this many lines, 1 to 10000 (default 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// Pass as `after` to get the lines that follow.
    pub next: i64,
}

#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs", params(("id" = String, Path, description = "job id"), LogParams),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> ApiResult<Json<LogPage>> {
    let after = p.after.unwrap_or(0).max(0);
    let limit = match p.limit {
        None | Some(0) => 1000,
        Some(n) => n.min(10_000),
    };
    // The job must exist even when it has no lines yet.
    let id = job_id(&id)?;
    app.store.get(id).await?;
    let lines = app.store.logs(id, p.attempt, after, limit).await?;
    let next = lines.last().map(|l| l.seq).unwrap_or(after);
    Ok(Json(LogPage { lines, next }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    /// Every transition and note, oldest first.
    pub events: Vec<JobEvent>,
    pub attempts: Vec<AttemptInfo>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}/history", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = History), (status = 404, body = ErrorBody)))]
pub async fn history(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<History>> {
    let id = job_id(&id)?;
    app.store.get(id).await?;
    Ok(Json(History {
        events: app.store.events(id).await?,
        attempts: app.store.attempts(id).await?,
    }))
}
