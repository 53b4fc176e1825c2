//! Uploads and downloads over real HTTP: a streamed upload lands in the bucket and fires the
//! rules, a large one goes in parts, the size limit answers 413 and leaves nothing behind;
//! downloads carry type, eTag and byte ranges. Also the token and the loopback rule.

use ffarm::worker::Shutdown;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_harness::{Api, api_config, assert_error};
use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm};

#[tokio::test]
async fn uploads_fire_rules_and_downloads_stream() {
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    let clip = std::fs::read(valid("h264_aac.mp4")).unwrap();
    let put = |key: &str, body: Vec<u8>| {
        api.request(Method::PUT, &format!("/v1/buckets/media/objects/{key}"))
            .body(body)
    };
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

    assert_error(
        &api.get("/v1/buckets/media/objects/none.mp4").await,
        404,
        "object-not-found",
        &["none.mp4"],
    );
    assert_error(
        &api.get("/v1/buckets/media/objects/a/..%2F..%2Fsecret")
            .await,
        400,
        "bad-key",
        &[],
    );
    assert_error(
        &api.get("/v1/buckets/BAD/objects/x").await,
        400,
        "bad-bucket",
        &["BAD"],
    );
    // Reading from a bucket that does not exist makes no folder for it.
    let nobody = api.farm.data.path().join("buckets/nobody");
    assert_error(
        &api.get("/v1/buckets/nobody/objects/x.mp4").await,
        404,
        "object-not-found",
        &["nobody"],
    );
    assert!(!nobody.exists());
    let e = json!({"input": {"bucket": "nobody", "key": "x.mp4"}, "preset": "mp4"});
    assert_error(
        &api.post("/v1/jobs", &e).await,
        404,
        "object-not-found",
        &["nobody"],
    );
    assert!(!nobody.exists());
    assert_error(
        &api.send(put("a//b.mp4", vec![1])).await,
        400,
        "bad-key",
        &["empty segment"],
    );
    api.shutdown().await;
}

#[tokio::test]
async fn upload_limit() {
    let api = Api::start(Backend::Sqlite, |c| c.api.max_upload_bytes = 1000).await;
    let put = |key: &str, n: usize| {
        api.request(Method::PUT, &format!("/v1/buckets/media/objects/{key}"))
            .body(vec![7u8; n])
    };
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
    let put = |key: &str| {
        api.request(Method::PUT, &format!("/v1/buckets/media/objects/{key}"))
            .body(vec![7u8; 10])
    };
    let get = |key: &str| api.request(Method::GET, &format!("/v1/buckets/media/objects/{key}"));
    // Under an object, or over other objects.
    assert_error(
        &api.send(put("misc/clip.mp4/x")).await,
        409,
        "key-conflict",
        &["misc/clip.mp4/x", "under an object"],
    );
    assert_error(
        &api.send(put("misc")).await,
        409,
        "key-conflict",
        &["other objects are stored under"],
    );
    assert_error(
        &api.send(get("misc/clip.mp4/x")).await,
        404,
        "object-not-found",
        &["misc/clip.mp4/x"],
    );
    let job =
        json!({"input": {"bucket": "media", "key": "misc/clip.mp4/x"}, "preset": "h264-720p"});
    assert_error(
        &api.post("/v1/jobs", &job).await,
        404,
        "object-not-found",
        &[],
    );
    // A segment longer than a file name may be, and the names partial uploads take.
    let long = "a".repeat(300);
    assert_error(&api.send(put(&long)).await, 400, "bad-key", &["too long"]);
    assert_error(&api.send(get(&long)).await, 400, "bad-key", &["too long"]);
    for key in ["misc/x%231", "y%2342"] {
        assert_error(
            &api.send(put(key)).await,
            400,
            "bad-key",
            &["partial uploads"],
        );
        assert_error(
            &api.send(get(key)).await,
            400,
            "bad-key",
            &["partial uploads"],
        );
    }
    let (s, _) = api.send(put("misc/x%23a1")).await;
    assert_eq!(s, StatusCode::CREATED);
    api.shutdown().await;
}

#[tokio::test]
async fn token_guards_every_call_but_health() {
    let token = "s3cret-token-of-some-length";
    let api = Api::start(Backend::Sqlite, |c| c.token = Some(token.into())).await;
    let anon = |path: &str| api.http.get(format!("{}{path}", api.url));
    for path in [
        "/v1/jobs",
        "/v1/presets",
        "/metrics",
        "/v1/openapi.json",
        "/v1/events",
    ] {
        let got = api.send(anon(path)).await;
        assert_error(&got, 401, "unauthorized", &["FFARM_TOKEN"]);
    }
    let wrong = api
        .send(anon("/v1/jobs").bearer_auth("nope-nope-nope-nope"))
        .await;
    assert_error(&wrong, 401, "unauthorized", &["wrong"]);
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
