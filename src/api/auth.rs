//! API authentication: with a token configured, every request but `/healthz` and the page's
//! static files must carry it as `Authorization: Bearer TOKEN` (what MinIO's `auth_token`
//! sends) or, for clients that cannot set headers (EventSource, download links, some
//! webhooks), as `?access_token=TOKEN`. Compared in constant time. Also owns the rule that
//! listening beyond loopback needs a token.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Paths anyone may call: load balancers probe health without credentials.
pub(super) const OPEN_PATHS: [&str; 1] = ["/healthz"];

/// Open paths, and the page's static files: they hold no data, and the page asks for the
/// token when the API refuses it. Everything under `/v1` and `/metrics` stays protected.
fn is_open(path: &str) -> bool {
    OPEN_PATHS.contains(&path) || super::web::is_page(path)
}

pub(crate) fn presented(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION)
        && let Ok(v) = v.to_str()
    {
        let v = v.trim();
        return Some(match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim().into(),
            _ => v.into(),
        });
    }
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// The request without `access_token` in its query: handlers never see the secret (and their
/// strict query parsing does not trip over it).
fn without_query_token(mut req: Request) -> Request {
    let Some(query) = req.uri().query() else {
        return req;
    };
    if !query.split('&').any(|p| p.starts_with("access_token=")) {
        return req;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("access_token="))
        .collect();
    let path = req.uri().path().to_string();
    let pq = if kept.is_empty() {
        path
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

pub async fn require_token(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let given = presented(&req);
    let mut req = without_query_token(req);
    // Exec opens shells: its own check (own switch, own token, even without an API token).
    if super::exec::is_exec_path(req.uri().path()) {
        return match crate::exec::authorize(&app.config, given.as_deref()) {
            Ok(grant) => {
                req.extensions_mut().insert(grant);
                next.run(req).await
            }
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    let Some(token) = app.config.token.as_deref() else {
        return next.run(req).await;
    };
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    match given {
        Some(given) if constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes()) => {
            next.run(req).await
        }
        given => {
            let message = if given.is_some() {
                "the token is wrong"
            } else {
                "this server needs a token: send `Authorization: Bearer TOKEN` (the ffarm \
                 command reads it from FFARM_TOKEN)"
            };
            let mut r =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// An address beyond loopback with no token configured: the listen address, and why it is
/// refused and what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to listen on {listen} without a token: anyone who can reach it could submit \
     jobs, read and write media and cancel work. Set a token of 16 or more characters \
     (token = \"…\" in ffarm.toml, or FFARM_TOKEN), or listen on 127.0.0.1"
)]
pub struct ExposureError {
    pub listen: String,
}

/// Refuses an address beyond loopback when there is no token.
pub fn check_exposure(
    listen: &str,
    addrs: &[SocketAddr],
    token: Option<&str>,
) -> Result<(), ExposureError> {
    if token.is_some() || addrs.iter().all(|a| a.ip().is_loopback()) {
        return Ok(());
    }
    Err(ExposureError {
        listen: listen.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure() {
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert!(check_exposure("x", &[lo], None).is_ok());
        let refused = check_exposure("x", &[any], None).unwrap_err();
        assert_eq!(refused.listen, "x");
        assert!(refused.to_string().contains("token"), "{refused}");
        assert!(check_exposure("x", &[lo, any], Some("t")).is_ok());
    }
}
