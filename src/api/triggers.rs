//! Bucket event webhooks: `POST /v1/triggers/oss` (Alibaba OSS notifications, also through
//! MNS / EventBridge) and `POST /v1/triggers/s3` (AWS S3, SNS, MinIO). A readable notification
//! is answered 200 with the jobs it made or found and what it ignored and why; only a store
//! failure is a 5xx, so the sender delivers again and nothing is lost.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::triggers::{FiredJob, Ignored, Parsed, PayloadError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TriggerAnswer {
    pub jobs: Vec<FiredJob>,
    /// Objects or events that made no job, each with the reason.
    #[schema(value_type = Vec<Object>)]
    pub ignored: Vec<Ignored>,
}

async fn handle(
    app: &AppState,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&[u8]) -> Result<Parsed, PayloadError>,
) -> ApiResult<Json<TriggerAnswer>> {
    let body = body?;
    let parsed = parse(&body).map_err(|e| ApiError::bad_request("bad-payload", e.message))?;
    let fired = app.triggers.fire(parsed).await?;
    for i in &fired.ignored {
        if i.event.as_deref() == Some(crate::triggers::s3::SNS_CONFIRMATION) {
            // SNS sends the confirmation URL once, and only an operator can visit it: say it
            // where they look, not at debug level.
            tracing::warn!("{}", i.reason);
        } else {
            tracing::debug!("trigger ignored {:?}/{:?}: {}", i.bucket, i.key, i.reason);
        }
    }
    Ok(Json(TriggerAnswer {
        jobs: fired.jobs,
        ignored: fired.ignored,
    }))
}

#[utoipa::path(post, path = "/v1/triggers/oss", tag = "triggers",
    request_body(content = Object, description = "an OSS event notification ({\"events\": [...]}), \
        as MNS delivers it (JSON, XML or the Base64 body) or as an EventBridge event"),
    responses((status = 200, body = TriggerAnswer), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, description = "the job store is unavailable: deliver again", body = ErrorBody)))]
pub async fn oss(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TriggerAnswer>> {
    handle(&app, body, crate::triggers::oss::parse).await
}

#[utoipa::path(post, path = "/v1/triggers/s3", tag = "triggers",
    request_body(content = Object, description = "an S3 or MinIO event notification \
        ({\"Records\": [...]}), or as SNS or EventBridge deliver it"),
    responses((status = 200, body = TriggerAnswer), (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, description = "the job store is unavailable: deliver again", body = ErrorBody)))]
pub async fn s3(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TriggerAnswer>> {
    handle(&app, body, crate::triggers::s3::parse).await
}
