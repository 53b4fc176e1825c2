//! API errors: every failure is `{"error": {"code", "message"}}` with the right status, and
//! client mistakes (bad JSON, unknown fields, oversized bodies, bad paths) are 4xx, never 5xx.
//! Owns the mapping from the library's errors to HTTP.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::buckets::BucketError;
use crate::exec::ExecError;
use crate::preset::PresetError;
use crate::store::StoreError;

/// The error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable ("job-not-found", "unknown-preset", "malformed-json", …).
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!("{} {}: {}", self.status, self.code, self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            StoreError::IdConflict { .. }
            | StoreError::IllegalTransition { .. }
            | StoreError::Fenced { .. } => StatusCode::CONFLICT,
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<BucketError> for ApiError {
    fn from(e: BucketError) -> Self {
        let status = match &e {
            BucketError::BadName(_) | BucketError::BadKey { .. } => StatusCode::BAD_REQUEST,
            BucketError::NotFound { .. } => StatusCode::NOT_FOUND,
            BucketError::KeyConflict { .. } => StatusCode::CONFLICT,
            BucketError::Config { .. } | BucketError::Transfer { .. } => StatusCode::BAD_GATEWAY,
            BucketError::Io { .. } | BucketError::Stopped => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<PresetError> for ApiError {
    fn from(e: PresetError) -> Self {
        let status = match &e {
            PresetError::Unknown { .. } | PresetError::UnknownFormat { .. } => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match &r {
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed-json"),
            JsonRejection::JsonDataError(_) => (StatusCode::BAD_REQUEST, "invalid-request"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large")
            }
            _ => (StatusCode::BAD_REQUEST, "bad-body"),
        };
        // serde's message names the field and position: keep it, without axum's preamble.
        let message = match std::error::Error::source(&r) {
            Some(inner) => format!("{}: {}", r.body_text_prefix(), source_chain(inner)),
            None => r.body_text(),
        };
        ApiError::new(status, code, message)
    }
}

trait Prefix {
    fn body_text_prefix(&self) -> &'static str;
}

impl Prefix for JsonRejection {
    fn body_text_prefix(&self) -> &'static str {
        match self {
            JsonRejection::JsonSyntaxError(_) => "malformed JSON",
            JsonRejection::JsonDataError(_) => "invalid request",
            _ => "bad request body",
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        last = s.to_string();
        cur = s.source();
    }
    last
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body-too-large"
        } else {
            "bad-body"
        };
        ApiError::new(r.status(), code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let message = match std::error::Error::source(&r) {
            Some(inner) => format!("bad query string: {}", source_chain(inner)),
            None => r.body_text(),
        };
        ApiError::bad_request("bad-query", message)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("bad-path", r.body_text())
    }
}

/// `axum::Json` whose rejections are API errors.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are API errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejections are API errors.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The JSON 404 for unknown routes.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("no-route", format!("no such endpoint: {}", uri.path()))
}

/// The JSON 405 for a known route with the wrong method.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
