//! Objects through the API: uploads streamed into a bucket (bounded only by
//! `api.max_upload_bytes`), which then fire the trigger rules; downloads streamed out with
//! type, length, eTag and single byte ranges.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::buckets::{Access, PART_SIZE, storage_error};
use crate::triggers::{FiredJob, Ignored, Source};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub e_tag: Option<String>,
    /// Jobs the upload made through the trigger rules.
    pub jobs: Vec<FiredJob>,
    /// Why no rule fired, when none did.
    #[schema(value_type = Vec<Object>)]
    pub ignored: Vec<Ignored>,
}

/// An object's bytes (how the document shows the bodies, which stream).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // only documents
pub struct Binary(Vec<u8>);

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!("the upload is larger than api.max_upload_bytes ({limit} bytes)"),
    )
}

#[utoipa::path(put, path = "/v1/buckets/{bucket}/objects/{key}", tag = "objects",
    params(("bucket" = String, Path, pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$", example = "media"),
        ("key" = String, Path, min_length = 1, max_length = 1024,
            description = "the object key (at most 1024 bytes); may contain '/'", example = "in/upload.mp4")),
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses((status = 201, body = Uploaded), (status = 400, body = ErrorBody),
        (status = 409, description = "a folder bucket cannot store the key beside the objects in it \
            (under an object, or over other objects)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 502, description = "the bucket's storage failed", body = ErrorBody)))]
pub async fn upload(
    State(app): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let path = app.buckets.key_path(&bucket, &key)?;
    let limit = app.config.api.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if limit > 0 && declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let store = app.buckets.store(&bucket)?;
    let mut stream = body.into_data_stream();
    let mut first = Vec::new();
    let mut total = 0u64;
    let mut writer: Option<WriteMultipart> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                if let Some(w) = writer {
                    let _ = w.abort().await;
                }
                return Err(ApiError::bad_request(
                    "upload-interrupted",
                    format!("reading the upload: {e}"),
                ));
            }
        };
        total += chunk.len() as u64;
        if limit > 0 && total > limit {
            if let Some(w) = writer {
                let _ = w.abort().await;
            }
            return Err(too_large(limit));
        }
        match &mut writer {
            Some(w) => {
                w.wait_for_capacity(4)
                    .await
                    .map_err(|e| storage_error(&bucket, &key, Access::Write, e))?;
                w.write(&chunk);
            }
            None => {
                first.extend_from_slice(&chunk);
                if first.len() >= PART_SIZE {
                    // Large: switch to a multipart upload, published only when complete.
                    let upload = store
                        .put_multipart(&path)
                        .await
                        .map_err(|e| storage_error(&bucket, &key, Access::Write, e))?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                    w.write(&std::mem::take(&mut first));
                    writer = Some(w);
                }
            }
        }
    }
    let e_tag = match writer {
        Some(w) => {
            w.finish()
                .await
                .map_err(|e| storage_error(&bucket, &key, Access::Write, e))?
                .e_tag
        }
        None => {
            store
                .put(&path, PutPayload::from(first))
                .await
                .map_err(|e| storage_error(&bucket, &key, Access::Write, e))?
                .e_tag
        }
    };
    let fired = app
        .triggers
        .fire_local(Source::Upload, &bucket, &key)
        .await
        .map_err(|e| match e {
            crate::triggers::FireError::Bucket(b) => ApiError::from(b),
            crate::triggers::FireError::Store(s) => ApiError::from(s),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            bucket,
            key,
            bytes: total,
            e_tag,
            jobs: fired.jobs,
            ignored: fired.ignored,
        }),
    ))
}

/// A single byte range, as `Range: bytes=…` asks: `None` for a header we do not serve (several
/// ranges, other units) — the whole object is sent then, as HTTP allows.
fn parse_range(value: &str) -> Option<GetRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => b.parse().ok().map(GetRange::Suffix),
        (false, true) => a.parse().ok().map(GetRange::Offset),
        (false, false) => {
            let (s, e): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (e >= s).then(|| GetRange::Bounded(s..e.saturating_add(1)))
        }
        (true, true) => None,
    }
}

fn satisfiable(r: &GetRange, size: u64) -> bool {
    match r {
        GetRange::Bounded(x) => x.start < size,
        GetRange::Offset(o) => *o < size,
        GetRange::Suffix(n) => *n > 0 && size > 0,
    }
}

#[utoipa::path(get, path = "/v1/buckets/{bucket}/objects/{key}", tag = "objects",
    params(("bucket" = String, Path, pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$", example = "media"),
        ("key" = String, Path, min_length = 1, max_length = 1024,
            description = "the object key (at most 1024 bytes); may contain '/'", example = "in/clip.mp4"),
        ("Range" = Option<String>, Header, description = "one byte range: bytes=START-END", example = "bytes=0-99")),
    responses((status = 200, description = "the object, typed by its key's extension (application/octet-stream when unknown)", content_type = "*/*", body = Binary),
        (status = 206, description = "the requested range", content_type = "*/*", body = Binary),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, description = "the range is outside the object", body = ErrorBody),
        (status = 502, description = "the bucket's storage failed", body = ErrorBody)))]
pub async fn download(
    State(app): State<AppState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = app.buckets.key_path(&bucket, &key)?;
    let store = app.buckets.reader(&bucket, &key)?;
    let meta = store
        .head(&path)
        .await
        .map_err(|e| storage_error(&bucket, &key, Access::Read, e))?;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    if let Some(r) = &range
        && !satisfiable(r, meta.size)
    {
        let mut e = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
            format!("the object has {} bytes", meta.size),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
            e.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        return Ok(e);
    }
    let got = store
        .get_opts(
            &path,
            GetOptions {
                range: range.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| storage_error(&bucket, &key, Access::Read, e))?;
    let served = got.range.clone();
    let size = got.meta.size;
    let e_tag = got.meta.e_tag.clone();
    let modified = got.meta.last_modified;
    let mut response = Response::new(Body::from_stream(got.into_stream()));
    let h = response.headers_mut();
    let mime = mime_guess::from_path(&key).first_or_octet_stream();
    let mut set = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, mime.to_string());
    set(
        header::CONTENT_LENGTH,
        (served.end - served.start).to_string(),
    );
    set(header::ACCEPT_RANGES, "bytes".into());
    set(
        header::LAST_MODIFIED,
        modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    );
    if let Some(t) = e_tag {
        set(header::ETAG, format!("\"{}\"", t.trim_matches('"')));
    }
    if range.is_some() {
        set(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{size}",
                served.start,
                served.end.saturating_sub(1)
            ),
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99"), Some(GetRange::Bounded(0..100)));
        assert_eq!(parse_range("bytes=100-"), Some(GetRange::Offset(100)));
        assert_eq!(parse_range("bytes=-5"), Some(GetRange::Suffix(5)));
        assert_eq!(parse_range("bytes=5-1"), None);
        assert_eq!(parse_range("bytes=0-1,5-6"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert!(!satisfiable(&GetRange::Offset(10), 10));
        assert!(satisfiable(&GetRange::Bounded(9..20), 10));
    }
}
