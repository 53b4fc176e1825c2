//! `GET /v1/jobs/{id}/key`: the 16 bytes of a job's HLS segment key (decision 0082), as
//! players fetch what `#EXT-X-KEY` names; under the API's token like every `/v1` route.
//! A job without a key (its presets encrypt nothing, or it has not run) is a 404.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, Path};
use super::jobs::job_id;

#[utoipa::path(get, path = "/v1/jobs/{id}/key", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 200, description = "the job's AES-128 segment key: 16 bytes",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = ErrorBody),
        (status = 404, description = "no such job, or it has no key", body = ErrorBody)))]
pub async fn key(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = job_id(&id)?;
    let Some(key) = app.store.stored_segment_key(id).await? else {
        return Err(ApiError::not_found(
            "key-not-found",
            format!(
                "job '{id}' has no segment key (its presets encrypt nothing, or it has not run)"
            ),
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        key.to_vec(),
    )
        .into_response())
}
