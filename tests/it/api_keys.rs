//! Encrypted HLS through the farm (decision 0082): a job with `hls-720p-aes` runs on a
//! worker, its playlists name `[api] key_uri` for the job, `GET /v1/jobs/{id}/key` answers
//! its 16 bytes under the API's token (401 without it), the key an earlier attempt stored is
//! the one used, and it decrypts every segment the job uploaded; a job without a key is a 404; the key is in no job
//! JSON. On SQLite and PostgreSQL.

use std::time::Duration;

use ffarm::job::Status;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api_harness::{Api, case};
use crate::helpers::valid;
use crate::media_cmaf::assert_decrypts;
use crate::worker_harness::Backend;

const TOKEN: &str = "key-route-token-0123456789";

async fn key_of(api: &Api, id: &str) -> [u8; 16] {
    let resp = api
        .request(Method::GET, &format!("/v1/jobs/{id}/key"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    let bytes = resp.bytes().await.unwrap();
    bytes.as_ref().try_into().expect("16 bytes")
}

async fn encrypted_job_and_its_key(backend: Backend) {
    let mut api = Api::start(backend, |c| c.token = Some(TOKEN.into())).await;
    api.farm.put(&valid("hls_source_1080p.mp4"), "src/enc.mp4");
    api.farm.put(&valid("h264_aac.mp4"), "src/plain.mp4");
    let (s, job) = api
        .post(
            "/v1/jobs",
            &json!({"input": {"bucket": "media", "key": "src/enc.mp4"}, "preset": "hls-720p-aes",
                    "output": {"bucket": "media", "prefix": "out/enc/"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let (s, plain) = api
        .post(
            "/v1/jobs",
            &json!({"input": {"bucket": "media", "key": "src/plain.mp4"}, "preset": "h264-480p"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plain}");
    let plain_id = plain["id"].as_str().unwrap().to_string();
    // Before it runs, the job has no key.
    api.check_errors([case("the key of a job not run yet")
        .get(format!("/v1/jobs/{id}/key"))
        .answers(404, "key-not-found")])
        .await;
    // An earlier attempt's key (as a retried job has): the worker encrypts with it rather
    // than make another, so the players' copy stays good.
    let earlier: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
    assert_eq!(
        api.farm.store.segment_key(&id, earlier).await.unwrap(),
        earlier
    );
    // The workers name the key where players fetch it.
    let mut config = api.farm.config();
    config.api.key_uri = "https://farm.example.com/v1/jobs/{job}/key".into();
    api.farm.start_in_process(config);
    let done = api
        .wait_status(
            &id,
            Duration::from_secs(180),
            &[Status::Succeeded, Status::Failed],
        )
        .await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    api.wait_status(&plain_id, Duration::from_secs(120), &[Status::Succeeded])
        .await;

    let key = key_of(&api, &id).await;
    assert_eq!(key, earlier, "the stored key, not a new one");
    let uri = format!("https://farm.example.com/v1/jobs/{id}/key");
    let playlist = api.farm.bucket_dir().join("out/enc/enc.m3u8");
    let segments = assert_decrypts(&playlist, &key, &uri);
    assert!(segments >= 3);
    let listed = api.farm.bucket_dir().join("out/enc");
    let names: Vec<String> = std::fs::read_dir(&listed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("key")),
        "no key file is uploaded: {names:?}"
    );
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let (_, job_json) = api.get(&format!("/v1/jobs/{id}")).await;
    let (_, listing) = api.get("/v1/jobs").await;
    let (_, history) = api.get(&format!("/v1/jobs/{id}/history")).await;
    for text in [
        job_json.to_string(),
        listing.to_string(),
        history.to_string(),
    ] {
        assert!(!text.contains(&hex), "the key shows in {text}");
    }

    api.check_errors([
        case("the key without a token")
            .get(format!("/v1/jobs/{id}/key"))
            .without_token()
            .answers(401, "unauthorized"),
        case("the key with a wrong token")
            .get(format!("/v1/jobs/{id}/key"))
            .with_token("wrong-token-wrong-token")
            .answers(401, "unauthorized"),
        case("a job that encrypts nothing")
            .get(format!("/v1/jobs/{plain_id}/key"))
            .answers(404, "key-not-found"),
        case("no such job")
            .get("/v1/jobs/no-such-job/key")
            .answers(404, "job-not-found"),
    ])
    .await;

    api.shutdown().await;
}

#[tokio::test]
async fn encrypted_job_and_its_key_sqlite() {
    encrypted_job_and_its_key(Backend::Sqlite).await;
}

#[tokio::test]
async fn encrypted_job_and_its_key_postgres() {
    encrypted_job_and_its_key(Backend::Postgres).await;
}
