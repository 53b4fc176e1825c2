//! The progress page: the static files of `web/` compiled into the binary (`include_dir`) and
//! served at `/` (index.html) and `/assets/{*path}`, with their type, an ETag (revalidated on
//! every load, answered 304 when unchanged) and a Content-Security-Policy that keeps the page
//! to its own origin. The files hold no data, so they are served without the token.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use super::error::ApiError;

static WEB: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/web");
/// Front-end packages from the npm registry (the web terminal), copied here by build.rs and
/// served under `vendor/`; empty when the build had none.
static VENDOR: Dir<'_> = include_dir!("$OUT_DIR/vendor");

/// Everything the page loads comes from this server: no CDN, fonts or frames, which also
/// makes it work offline. Styles may be inline because xterm.js (the terminal) writes its
/// theme into a `<style>` element; scripts may not.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// A file ready to serve.
struct Asset {
    body: &'static [u8],
    content_type: String,
    etag: String,
}

/// Every file of `web/` by its path, typed and tagged once.
fn assets() -> &'static HashMap<String, Asset> {
    static ASSETS: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let mut map = HashMap::new();
        collect(&WEB, "", &mut map);
        collect(&VENDOR, "vendor/", &mut map);
        map
    })
}

fn collect(dir: &'static Dir<'static>, prefix: &str, map: &mut HashMap<String, Asset>) {
    for file in dir.files() {
        let path = format!(
            "{prefix}{}",
            file.path().to_string_lossy().replace('\\', "/")
        );
        let body = file.contents();
        let digest = Sha256::digest(body);
        let etag = format!(
            "\"{}\"",
            digest[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        map.insert(
            path.clone(),
            Asset {
                body,
                content_type: content_type(&path),
                etag,
            },
        );
    }
    for sub in dir.dirs() {
        collect(sub, prefix, map);
    }
}

/// The type a browser needs: modules must be served as JavaScript, text carries its charset.
fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = match mime.essence_str() {
        "application/javascript" => "text/javascript",
        other => other,
    };
    if essence.starts_with("text/") || essence == "image/svg+xml" || essence.ends_with("json") {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(asset) = assets().get(path) else {
        return ApiError::not_found("not-found", format!("no page file '{path}'")).into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, &asset.content_type);
    set(header::ETAG, &asset.etag);
    // Names are not fingerprinted: always revalidate (cheap, thanks to the ETag), so a new
    // binary's page is never mixed with an old cached module.
    set(header::CACHE_CONTROL, "no-cache");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Download links carry `?access_token=`: never send the page's URL elsewhere.
    set(header::REFERRER_POLICY, "no-referrer");
    if path.ends_with(".html") {
        set(header::CONTENT_SECURITY_POLICY, CSP);
        set(header::X_FRAME_OPTIONS, "DENY");
    }
    response
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /assets/{*path}`: its scripts, styles and icon.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// Whether this binary carries the web terminal (its npm packages were there at build time).
pub fn has_terminal() -> bool {
    assets().contains_key("vendor/xterm.js")
}

/// Whether a path is the page or one of its files (open without the token).
pub fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/assets/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_browser_type() {
        let all = assets();
        assert!(all.contains_key("index.html"));
        for (path, a) in all {
            assert_ne!(
                a.content_type, "application/octet-stream",
                "{path} would not be understood by a browser"
            );
            assert!(a.etag.starts_with('"') && a.etag.len() == 26, "{}", a.etag);
        }
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml; charset=utf-8");
    }

    #[test]
    fn pages_are_open_and_the_api_is_not() {
        assert!(is_page("/"));
        assert!(is_page("/assets/app.js"));
        assert!(!is_page("/v1/jobs"));
        assert!(!is_page("/metrics"));
        assert!(!is_page("/assetsx"));
    }
}
