//! Uploads and downloads over real HTTP: a streamed upload lands in the bucket and fires the
//! rules, a large one goes in parts, the size limit answers 413 and leaves nothing behind;
//! downloads carry type, eTag and byte ranges. Also the token and the loopback rule.

use ffarm::worker::Shutdown;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_harness::{Api, api_config, assert_error, case};
use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm};

/// The path of `key` in the bucket `media`.
fn object(key: &str) -> String {
    format!("/v1/buckets/media/objects/{key}")
}

#[tokio::test]
async fn uploads_fire_rules_and_downloads_stream() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let clip = std::fs::read(valid("h264_aac.mp4")).unwrap();
    let put = |key: &str, body: Vec<u8>| api.request(Method::PUT, &object(key)).body(body);
    // Under the default rule's prefix: a job, its id derived from the stored object.
    let (s, up) = api.send(put("in/my%20clip.mp4", clip.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["key"], "in/my clip.mp4");
    assert_eq!(up["bytes"], clip.len());
    assert_eq!(up["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(up["jobs"][0]["preset"], "h264-720p");
    assert_eq!(up["jobs"][0]["input"]["key"], "in/my clip.mp4");
    let on_disk = api.farm.bucket_dir().join("in/my clip.mp4");
    assert_eq!(std::fs::read(&on_disk).unwrap(), clip);
    let job = api.job(up["jobs"][0]["id"].as_str().unwrap()).await;
    assert_eq!(job.trigger.unwrap().source, "upload");
    // Elsewhere: stored, no job, and the answer says why.
    let (s, other) = api.send(put("misc/clip.mp4", clip.clone())).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(other["jobs"], json!([]));
    assert!(
        other["ignored"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("prefix"),
        "{other}"
    );

    // Larger than one part: streamed in parts, byte for byte.
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (s, b) = api.send(put("misc/big.bin", big.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        std::fs::read(api.farm.bucket_dir().join("misc/big.bin")).unwrap(),
        big
    );

    // Downloads: whole, a range, a suffix, and an unsatisfiable range.
    let r = api
        .request(Method::GET, "/v1/buckets/media/objects/in/my%20clip.mp4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), clip);
    let r = api
        .request(Method::GET, "/v1/buckets/media/objects/misc/big.bin")
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", big.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), big[100..200]);
    let r = api
        .request(Method::GET, "/v1/buckets/media/objects/misc/big.bin")
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), big[big.len() - 10..]);
    let r = api
        .request(Method::GET, "/v1/buckets/media/objects/misc/big.bin")
        .header("range", format!("bytes={}-", big.len() + 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    api.check_errors([
        case("object not found")
            .get("/v1/buckets/media/objects/none.mp4")
            .answers(404, "object-not-found")
            .saying(&["none.mp4"]),
        case("key climbing out")
            .get("/v1/buckets/media/objects/a/..%2F..%2Fsecret")
            .answers(400, "bad-key"),
        case("bad bucket")
            .get("/v1/buckets/BAD/objects/x")
            .answers(400, "bad-bucket")
            .saying(&["BAD"]),
        case("read from a bucket not there")
            .get("/v1/buckets/nobody/objects/x.mp4")
            .answers(404, "object-not-found")
            .saying(&["nobody"]),
        case("job on a bucket not there")
            .post(
                "/v1/jobs",
                json!({"input": {"bucket": "nobody", "key": "x.mp4"}, "preset": "mp4"}),
            )
            .answers(404, "object-not-found")
            .saying(&["nobody"]),
        case("empty segment")
            .put(object("a//b.mp4"), vec![1])
            .answers(400, "bad-key")
            .saying(&["empty segment"]),
    ])
    .await;
    // Neither reading from a bucket that does not exist nor a job on it made a folder for it.
    assert!(!api.farm.data.path().join("buckets/nobody").exists());
    api.shutdown().await;
}

#[tokio::test]
async fn upload_limit() {
    let api = Api::start(Backend::Sqlite, |c| c.api.max_upload_bytes = 1000).await;
    let put = |key: &str, n: usize| api.request(Method::PUT, &object(key)).body(vec![7u8; n]);
    let (s, _) = api.send(put("misc/ok.bin", 1000)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_error(
        &api.send(put("misc/big.bin", 1001)).await,
        413,
        "body-too-large",
        &["1000"],
    );
    // Streamed without a length: cut off at the limit, nothing stored.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![1u8; 300])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = api
        .request(Method::PUT, "/v1/buckets/media/objects/misc/stream.bin")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let dir = api.farm.bucket_dir().join("misc");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ok.bin"]);
    api.shutdown().await;
}

/// A folder bucket is a file system: keys it cannot hold as files are the client's to fix
/// (a 4xx naming the problem), never a storage failure.
#[tokio::test]
async fn keys_a_folder_bucket_cannot_hold() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    api.farm.put(&valid("h264_aac.mp4"), "misc/clip.mp4");
    // Under an object, or over other objects; a segment longer than a file name may be, and
    // the names partial uploads take.
    let long = object(&"a".repeat(300));
    api.check_errors([
        case("put under an object")
            .put(object("misc/clip.mp4/x"), vec![7u8; 10])
            .answers(409, "key-conflict")
            .saying(&["misc/clip.mp4/x", "under an object"]),
        case("put over objects")
            .put(object("misc"), vec![7u8; 10])
            .answers(409, "key-conflict")
            .saying(&["other objects are stored under"]),
        case("get under an object")
            .get(object("misc/clip.mp4/x"))
            .answers(404, "object-not-found")
            .saying(&["misc/clip.mp4/x"]),
        case("job on a key under an object")
            .post(
                "/v1/jobs",
                json!({"input": {"bucket": "media", "key": "misc/clip.mp4/x"},
                       "preset": "h264-720p"}),
            )
            .answers(404, "object-not-found"),
        case("put a segment too long")
            .put(&long, vec![7u8; 10])
            .answers(400, "bad-key")
            .saying(&["too long"]),
        case("get a segment too long")
            .get(&long)
            .answers(400, "bad-key")
            .saying(&["too long"]),
        case("put a partial upload's name")
            .put(object("misc/x%231"), vec![7u8; 10])
            .answers(400, "bad-key")
            .saying(&["partial uploads"]),
        case("get a partial upload's name")
            .get(object("misc/x%231"))
            .answers(400, "bad-key")
            .saying(&["partial uploads"]),
        case("put a partial upload's name at the top")
            .put(object("y%2342"), vec![7u8; 10])
            .answers(400, "bad-key")
            .saying(&["partial uploads"]),
        case("get a partial upload's name at the top")
            .get(object("y%2342"))
            .answers(400, "bad-key")
            .saying(&["partial uploads"]),
    ])
    .await;
    let (s, _) = api
        .send(
            api.request(Method::PUT, &object("misc/x%23a1"))
                .body(vec![7u8; 10]),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    api.shutdown().await;
}

#[tokio::test]
async fn token_guards_every_call_but_health() {
    let token = "s3cret-token-of-some-length";
    let api = Api::start(Backend::Sqlite, |c| c.token = Some(token.into())).await;
    let anon = |path: &str| api.http.get(format!("{}{path}", api.url));
    api.check_errors([
        case("jobs without a token")
            .get("/v1/jobs")
            .without_token()
            .answers(401, "unauthorized")
            .saying(&["FFARM_TOKEN"]),
        case("presets without a token")
            .get("/v1/presets")
            .without_token()
            .answers(401, "unauthorized")
            .saying(&["FFARM_TOKEN"]),
        case("metrics without a token")
            .get("/metrics")
            .without_token()
            .answers(401, "unauthorized")
            .saying(&["FFARM_TOKEN"]),
        case("OpenAPI without a token")
            .get("/v1/openapi.json")
            .without_token()
            .answers(401, "unauthorized")
            .saying(&["FFARM_TOKEN"]),
        case("events without a token")
            .get("/v1/events")
            .without_token()
            .answers(401, "unauthorized")
            .saying(&["FFARM_TOKEN"]),
        case("a wrong token")
            .get("/v1/jobs")
            .with_token("nope-nope-nope-nope")
            .answers(401, "unauthorized")
            .saying(&["wrong"]),
    ])
    .await;
    let (s, _) = api.send(anon("/healthz")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.get("/v1/jobs").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .send(anon(&format!("/v1/jobs?access_token={token}")))
        .await;
    assert_eq!(s, StatusCode::OK);
    api.shutdown().await;
}

#[tokio::test]
async fn beyond_loopback_needs_a_token() {
    let farm = Farm::new(Backend::Sqlite).await;
    let mut config = api_config(&farm);
    config.listen = "0.0.0.0:0".into();
    let (_tx, rx) = tokio::sync::watch::channel(0u8);
    let err = ffarm::serve::run_on(farm.store.clone(), config.clone(), Shutdown(rx), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
    assert!(err.contains("FFARM_TOKEN"), "{err}");
    config.token = Some("a-token-of-16-chars-or-more".into());
    let api = Api::serve(farm, config).await;
    let (s, _) = api.get("/v1/jobs").await;
    assert_eq!(s, StatusCode::OK);
    api.shutdown().await;
}
