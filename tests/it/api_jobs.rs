//! The job endpoints over real HTTP, on SQLite and on PostgreSQL: submit in both shapes, every
//! client error, get, cancel, retry, logs and history (listing is `api_listing`'s).

use ffarm::job::Status;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_harness::{Api, assert_error, case};
use crate::helpers::valid;
use crate::worker_harness::Backend;

fn native(key: &str) -> Value {
    json!({"input": {"bucket": "media", "key": key}, "preset": "h264-720p"})
}

/// `native("src/clip.mp4")` with each of `fields` set over it.
fn clip_with(fields: Value) -> Value {
    let mut body = native("src/clip.mp4");
    for (name, value) in fields.as_object().unwrap() {
        body[name] = value.clone();
    }
    body
}

async fn submit_and_errors(backend: Backend) {
    let api = Api::start(backend, |_| {}).await;
    api.farm.put(&valid("h264_aac.mp4"), "src/clip.mp4");

    // Created, with a Location; the same id and spec again is that job; another spec is 409.
    let mut body = native("src/clip.mp4");
    body["id"] = json!("clip-1");
    let resp = api
        .request(Method::POST, "/v1/jobs")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["location"], "/v1/jobs/clip-1");
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["output"], json!({"bucket": "media", "prefix": "out/"}));
    assert_eq!(job["trigger"]["source"], "api");
    assert_eq!(job["trigger"]["payload"], body);
    let again = api.post("/v1/jobs", &body).await;
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(again.1["created_at"], job["created_at"]);
    body["preset"] = json!("h264-480p");
    assert_error(
        &api.post("/v1/jobs", &body).await,
        409,
        "id-conflict",
        &["clip-1"],
    );
    // Whether outputs of other inputs may be replaced is part of the spec too.
    assert_eq!(job["overwrite"], false);
    body["preset"] = json!("h264-720p");
    body["overwrite"] = json!(true);
    assert_error(
        &api.post("/v1/jobs", &body).await,
        409,
        "id-conflict",
        &["clip-1"],
    );
    body["id"] = json!("clip-overwrite");
    let (status, replacing) = api.post("/v1/jobs", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{replacing}");
    assert_eq!(replacing["overwrite"], true);
    assert_eq!(api.post("/v1/jobs", &body).await.0, StatusCode::OK);
    body["overwrite"] = json!(false);
    assert_error(
        &api.post("/v1/jobs", &body).await,
        409,
        "id-conflict",
        &["clip-overwrite"],
    );
    let seed = json!({"id": "seed-overwrite", "bucket": "media", "object": "src/clip.mp4",
                      "output_dir": "a", "dst_format": "mov", "overwrite": true});
    let (status, seeded) = api.post("/v1/jobs", &seed).await;
    assert_eq!(status, StatusCode::CREATED, "{seeded}");
    assert_eq!(seeded["overwrite"], true);

    // A clip: stored, shown, and the job runs whole.
    let (status, clipped) = api
        .post(
            "/v1/jobs",
            &clip_with(json!({"clip": {"start": 0.5, "end": 1.5}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{clipped}");
    assert_eq!(clipped["clip"], json!({"start": 0.5, "end": 1.5}));
    assert_eq!(clipped["chunking"], "off");
    let id = clipped["id"].as_str().unwrap();
    let (_, read) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(read["clip"], clipped["clip"]);

    // Without an id: a fresh job each time.
    let (s1, a) = api.post("/v1/jobs", &native("src/clip.mp4")).await;
    let (s2, b) = api.post("/v1/jobs", &native("src/clip.mp4")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_ne!(a["id"], b["id"]);

    // Every client mistake is a 4xx naming the problem.
    let cancel = format!("/v1/jobs/{}/cancel", a["id"].as_str().unwrap());
    let big = format!("{{\"input\": \"{}\"}}", "x".repeat(5 << 20));
    api.check_errors([
        case("unknown preset")
            .post("/v1/jobs", clip_with(json!({"preset": "h265-8k"})))
            .answers(400, "unknown-preset")
            .saying(&["h265-8k", "h264-720p"]),
        case("key climbing out")
            .post("/v1/jobs", native("../etc/passwd"))
            .answers(400, "bad-key")
            .saying(&[".."]),
        case("absolute key")
            .post("/v1/jobs", native("/abs.mp4"))
            .answers(400, "bad-key")
            .saying(&["absolute"]),
        case("input not found")
            .post("/v1/jobs", native("src/none.mp4"))
            .answers(404, "object-not-found")
            .saying(&["src/none.mp4"]),
        case("bad bucket")
            .post(
                "/v1/jobs",
                clip_with(json!({"input": {"bucket": "Bad Bucket", "key": "src/clip.mp4"}})),
            )
            .answers(400, "bad-bucket")
            .saying(&["Bad Bucket"]),
        case("JSON cut short")
            .post_raw("/v1/jobs", "{\"input\": ")
            .answers(400, "malformed-json")
            .saying(&["EOF"]),
        case("not an object")
            .post_raw("/v1/jobs", "[1, 2]")
            .answers(400, "invalid-request")
            .saying(&["object"]),
        case("unknown field")
            .post("/v1/jobs", clip_with(json!({"colour": "blue"})))
            .answers(400, "invalid-request")
            .saying(&["unknown field `colour`"]),
        case("neither shape")
            .post("/v1/jobs", json!({"hello": 1}))
            .answers(400, "invalid-request")
            .saying(&["expected"]),
        case("both a preset and a format")
            .post("/v1/jobs", clip_with(json!({"dst_format": "mp4"})))
            .answers(400, "invalid-request")
            .saying(&["not several"]),
        case("no preset")
            .post(
                "/v1/jobs",
                json!({"input": {"bucket": "media", "key": "src/clip.mp4"}}),
            )
            .answers(400, "invalid-request")
            .saying(&["preset"]),
        case("no attempts")
            .post("/v1/jobs", clip_with(json!({"max_attempts": 0})))
            .answers(400, "invalid-request")
            .saying(&["max_attempts"]),
        case("timeout over a day")
            .post("/v1/jobs", clip_with(json!({"timeout_seconds": 90_000})))
            .answers(400, "invalid-request")
            .saying(&["timeout_seconds"]),
        case("negative attempts")
            .post("/v1/jobs", clip_with(json!({"max_attempts": -1})))
            .answers(400, "invalid-request")
            .saying(&["max_attempts"]),
        case("destination not http")
            .post(
                "/v1/jobs",
                clip_with(json!({"on_success": "ftp://example.com/x"})),
            )
            .answers(400, "bad-destination")
            .saying(&["http"]),
        case("id with a space")
            .post("/v1/jobs", clip_with(json!({"id": "has space"})))
            .answers(400, "bad-id")
            .saying(&["has space"]),
        case("output over the input")
            .post(
                "/v1/jobs",
                json!({"input": {"bucket": "media", "key": "src/clip.mp4"},
                                     "dst_format": "mp4", "output": {"prefix": "src"}}),
            )
            .answers(400, "output-overwrites-input")
            .saying(&["src/clip.mp4"]),
        case("clip starting before 0")
            .post("/v1/jobs", clip_with(json!({"clip": {"start": -1}})))
            .answers(400, "invalid-request")
            .saying(&["clip.start", "-1"]),
        case("clip ending before it starts")
            .post(
                "/v1/jobs",
                clip_with(json!({"clip": {"start": 5, "end": 2}})),
            )
            .answers(400, "invalid-request")
            .saying(&["clip.end", "after clip.start"]),
        case("clip with an unknown field")
            .post("/v1/jobs", clip_with(json!({"clip": {"from": 1}})))
            .answers(400, "invalid-request")
            .saying(&["from"]),
        case("clip of a copying preset")
            .post(
                "/v1/jobs",
                clip_with(json!({"preset": "remux-mkv", "clip": {"end": 1}})),
            )
            .answers(400, "invalid-request")
            .saying(&["remux-mkv", "copies the input's video"]),
        case("clip split into parts")
            .post(
                "/v1/jobs",
                clip_with(json!({"clip": {"end": 1}, "chunking": {"segment_seconds": 4}})),
            )
            .answers(400, "invalid-request")
            .saying(&["a clip runs whole"]),
        case("watermark too opaque")
            .post(
                "/v1/jobs",
                clip_with(json!({"watermark": {"key": "src/clip.mp4", "opacity": 2}})),
            )
            .answers(400, "invalid-request")
            .saying(&["watermark.opacity", "0 to 1"]),
        case("watermark in an unknown place")
            .post(
                "/v1/jobs",
                clip_with(json!({"watermark": {"key": "a.png", "position": "middle"}})),
            )
            .answers(400, "invalid-request")
            .saying(&["middle", "bottom-right"]),
        case("watermark not in the bucket")
            .post(
                "/v1/jobs",
                clip_with(json!({"watermark": {"key": "logos/none.png"}})),
            )
            .answers(400, "watermark-not-found")
            .saying(&["logos/none.png"]),
        case("watermark split into parts")
            .post(
                "/v1/jobs",
                clip_with(json!({"watermark": {"key": "src/clip.mp4"},
                                 "chunking": {"segment_seconds": 4}})),
            )
            .answers(400, "invalid-request")
            .saying(&["a watermark runs whole"]),
        case("audio in an unknown language")
            .post(
                "/v1/jobs",
                clip_with(json!({"audio": {"languages": ["eng", "xx"]}})),
            )
            .answers(400, "invalid-request")
            .saying(&["audio.languages[1]", "'xx' is not an ISO 639 language code"]),
        case("audio languages split into parts")
            .post(
                "/v1/jobs",
                clip_with(json!({"audio": {"languages": ["eng"]},
                                 "chunking": {"segment_seconds": 4}})),
            )
            .answers(400, "invalid-request")
            .saying(&["a choice of audio languages runs whole"]),
        case("captions in an unknown language format")
            .post(
                "/v1/jobs",
                clip_with(json!({"captions": [{"key": "src/clip.mp4", "language": "en-US"}]})),
            )
            .answers(400, "invalid-request")
            .saying(&["captions[0].language", "en-US", "ISO 639-2"]),
        case("captions without a language")
            .post(
                "/v1/jobs",
                clip_with(json!({"captions": [{"key": "src/clip.mp4"}]})),
            )
            .answers(400, "invalid-request")
            .saying(&["language"]),
        case("captions not in the bucket")
            .post(
                "/v1/jobs",
                clip_with(json!({"captions": [{"key": "subs/none.srt", "language": "eng"}]})),
            )
            .answers(400, "captions-not-found")
            .saying(&["captions[0]", "subs/none.srt"]),
        case("captions split into parts")
            .post(
                "/v1/jobs",
                clip_with(json!({"subtitles": {"burn_in": true},
                                 "chunking": {"segment_seconds": 4}})),
            )
            .answers(400, "invalid-request")
            .saying(&["captions runs whole"]),
        case("unknown format")
            .post(
                "/v1/jobs",
                json!({"input": {"bucket": "media", "key": "src/clip.mp4"},
                                     "dst_format": "gif"}),
            )
            .answers(400, "unknown-format")
            .saying(&["gif"]),
        case("body too large")
            .post_raw("/v1/jobs", big)
            .answers(413, "body-too-large"),
        // Unknown routes and methods answer in the same shape.
        case("unknown route")
            .get("/v1/nothing")
            .answers(404, "no-route")
            .saying(&["/v1/nothing"]),
        case("method not allowed")
            .request(Method::DELETE, "/v1/jobs")
            .answers(405, "method-not-allowed")
            .saying(&["DELETE"]),
        case("unknown job")
            .get("/v1/jobs/nope")
            .answers(404, "job-not-found")
            .saying(&["nope"]),
        // Text a store cannot hold (PostgreSQL refuses NUL) is the client's mistake, not a 5xx.
        case("NUL in a job's id")
            .get("/v1/jobs/a%00b")
            .answers(404, "job-not-found")
            .saying(&["a\0b"]),
        case("NUL in a history's id")
            .get("/v1/jobs/a%00b/history")
            .answers(404, "job-not-found")
            .saying(&["a\0b"]),
        case("NUL in a log's id")
            .get("/v1/jobs/a%00b/logs")
            .answers(404, "job-not-found")
            .saying(&["a\0b"]),
        case("NUL in a retry's id")
            .post("/v1/jobs/a%00b/retry", json!(null))
            .answers(404, "job-not-found"),
        case("NUL in q")
            .get("/v1/jobs?q=a%00b")
            .answers(400, "bad-query")
            .saying(&["q", "NUL"]),
        case("NUL in bucket")
            .get("/v1/jobs?bucket=a%00b")
            .answers(400, "bad-query")
            .saying(&["bucket", "NUL"]),
        case("NUL in prefix")
            .get("/v1/jobs?prefix=a%00b")
            .answers(400, "bad-query")
            .saying(&["prefix", "NUL"]),
        case("NUL in preset")
            .get("/v1/jobs?preset=a%00b")
            .answers(400, "bad-query")
            .saying(&["preset", "NUL"]),
        case("control character in a destination")
            .post(
                "/v1/jobs",
                clip_with(json!({"on_success": "http://example.com/a\u{0}b"})),
            )
            .answers(400, "bad-destination")
            .saying(&["control character"]),
        case("NUL in a cancel's reason")
            .post(&cancel, json!({"reason": "a\u{0}b"}))
            .answers(400, "invalid-request")
            .saying(&["NUL"]),
    ])
    .await;
    let resp = api
        .request(Method::POST, "/v1/jobs")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A time further back than there is, like text a store cannot hold, is never a 5xx.
    let (s, _) = api.get("/v1/jobs?since=999999999999999999d").await;
    assert_eq!(s, StatusCode::OK);
    // No body and a JSON null are both no reason.
    let (s, cancelled) = api.post(&cancel, &json!(null)).await;
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    api.shutdown().await;
}

#[tokio::test]
async fn submit_and_errors_sqlite() {
    submit_and_errors(Backend::Sqlite).await;
}

#[tokio::test]
async fn submit_and_errors_postgres() {
    submit_and_errors(Backend::Postgres).await;
}

async fn lifecycle(backend: Backend) {
    let mut api = Api::start(backend, |_| {}).await;
    api.farm.put(&valid("h264_aac.mp4"), "src/clip.mp4");
    let (_, job) = api.post("/v1/jobs", &native("src/clip.mp4")).await;
    let id = job["id"].as_str().unwrap().to_string();

    // Retry needs a finished job; cancel of a queued one finishes it; a second cancel is 409.
    assert_error(
        &api.post(&format!("/v1/jobs/{id}/retry"), &json!({})).await,
        409,
        "illegal-transition",
        &[],
    );
    let (s, c) = api
        .post(
            &format!("/v1/jobs/{id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "cancelled");
    // Cancelling again changes nothing.
    let (s, c) = api.post(&format!("/v1/jobs/{id}/cancel"), &json!({})).await;
    assert_eq!(
        (s, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    api.check_errors([
        case("cancel with an unknown field")
            .post_raw(format!("/v1/jobs/{id}/cancel"), "{\"why\": 1}")
            .answers(400, "invalid-request")
            .saying(&["why"]),
        case("cancel of an unknown job")
            .post("/v1/jobs/nope/cancel", json!({}))
            .answers(404, "job-not-found"),
    ])
    .await;
    let (s, r) = api.post(&format!("/v1/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "queued");
    // An empty cancel body is fine.
    let (s, _) = api
        .send(api.request(Method::POST, &format!("/v1/jobs/{id}/cancel")))
        .await;
    assert_eq!(s, StatusCode::OK);

    // History: every transition with its reason.
    let (s, h) = api.get(&format!("/v1/jobs/{id}/history")).await;
    assert_eq!(s, StatusCode::OK);
    let reasons: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"changed my mind"), "{reasons:?}");
    assert!(h["events"].as_array().unwrap().len() >= 4, "{h}");

    // Run it for real; its task's log pages by sequence number.
    let (s, r) = api.post(&format!("/v1/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(
        (s, r["status"].as_str()),
        (StatusCode::OK, Some("queued")),
        "{r}"
    );
    let config = api.farm.config();
    api.farm.start_in_process(config);
    let done = api
        .wait_status(
            &id,
            std::time::Duration::from_secs(60),
            &[Status::Succeeded],
        )
        .await;
    assert_eq!(done.outputs[0].key, "out/clip.mp4");
    let (s, all) = api.get(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let all = all["lines"].as_array().unwrap().clone();
    assert!(all.len() > 4, "{all:?}");
    assert!(
        all.iter()
            .any(|l| l["line"].as_str().unwrap().contains("[task] downloading"))
    );
    let (_, first) = api.get(&format!("/v1/jobs/{id}/logs?limit=3")).await;
    assert_eq!(first["lines"].as_array().unwrap()[..], all[..3]);
    let next = first["next"].as_i64().unwrap();
    let (_, rest) = api.get(&format!("/v1/jobs/{id}/logs?after={next}")).await;
    assert_eq!(rest["lines"].as_array().unwrap()[..], all[3..]);
    let (_, none) = api.get(&format!("/v1/jobs/{id}/logs?attempt=9")).await;
    assert_eq!(none["lines"], json!([]));
    api.check_errors([
        // Succeeded: cancel is an illegal transition now.
        case("cancel of a succeeded job")
            .post(format!("/v1/jobs/{id}/cancel"), json!({}))
            .answers(409, "illegal-transition"),
        case("logs of an unknown job")
            .get("/v1/jobs/nope/logs")
            .answers(404, "job-not-found"),
        case("logs after a word")
            .get(format!("/v1/jobs/{id}/logs?after=x"))
            .answers(400, "bad-query")
            .saying(&["after"]),
    ])
    .await;
    api.shutdown().await;
}

#[tokio::test]
async fn lifecycle_sqlite() {
    lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn lifecycle_postgres() {
    lifecycle(Backend::Postgres).await;
}

#[tokio::test]
async fn presets_workers_health_and_openapi() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let (s, presets) = api.get("/v1/presets").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = presets
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in ["h264-720p", "mp4", "m3u8", "flv"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let (s, p) = api.get("/v1/presets/h264-720p").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["name"], "h264-720p");
    assert_error(
        &api.get("/v1/presets/nope").await,
        404,
        "unknown-preset",
        &["nope"],
    );

    let (s, w) = api.get("/v1/workers").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(w, json!([]));

    let (s, h) = api.get("/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["store"], "sqlite");

    let (s, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/retry",
        "/v1/jobs/{id}/logs",
        "/v1/jobs/{id}/events",
        "/v1/events",
        "/v1/triggers/oss",
        "/v1/triggers/s3",
        "/v1/buckets/{bucket}/objects/{key}",
        "/v1/presets",
        "/v1/workers",
        "/metrics",
        "/healthz",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Job"].is_object());
    // A job's caption files and subtitle options are described (decision 0080).
    let caption = &doc["components"]["schemas"]["Caption"];
    assert_eq!(
        caption["required"],
        serde_json::json!(["key", "language"]),
        "{caption}"
    );
    assert!(doc["components"]["schemas"]["SubtitleOptions"].is_object());
    api.shutdown().await;
}

/// The configured default destinations are filled in when a job is made — through the API
/// in both shapes and by a trigger — so the job shows where its ending goes; a destination
/// the job names is kept.
#[tokio::test]
async fn default_destinations_are_filled_in_when_a_job_is_made() {
    let api = Api::start(Backend::Sqlite, |c| {
        c.destinations.on_success = Some("http://hooks.example/done".into());
        c.destinations.on_failure = Some("http://hooks.example/dead".into());
    })
    .await;
    api.farm.put(&valid("h264_aac.mp4"), "src/clip.mp4");
    let (s, job) = api.post("/v1/jobs", &native("src/clip.mp4")).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["on_success"], "http://hooks.example/done");
    assert_eq!(job["on_failure"], "http://hooks.example/dead");
    let mut own = native("src/clip.mp4");
    own["on_failure"] = json!("http://mine.example/failed");
    let (_, job) = api.post("/v1/jobs", &own).await;
    assert_eq!(job["on_success"], "http://hooks.example/done");
    assert_eq!(job["on_failure"], "http://mine.example/failed");
    let seed = json!({"id": "seed-1", "bucket": "media", "object": "src/clip.mp4",
                      "output_dir": "seed/", "dst_format": "mov"});
    let (_, job) = api.post("/v1/jobs", &seed).await;
    assert_eq!(job["on_failure"], "http://hooks.example/dead", "{job}");
    let (s, answer) = api
        .send(
            api.request(Method::PUT, "/v1/buckets/media/objects/in/up.mp4")
                .body(std::fs::read(valid("h264_aac.mp4")).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{answer}");
    let id = answer["jobs"][0]["id"].as_str().unwrap();
    let (_, job) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["trigger"]["source"], "upload", "{job}");
    assert_eq!(job["on_success"], "http://hooks.example/done", "{job}");
    // The page learns from /v1/info whether exec can open, and with which token.
    let (s, info) = api.get("/v1/info").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(info["exec"], json!({"enabled": false, "token": "none"}));
    assert_eq!(info["store"], "sqlite");
    api.shutdown().await;
}
