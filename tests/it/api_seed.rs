//! The serverless video-transcode function's five example invocations, sent as they are to
//! `POST /v1/jobs`: mov twice under different ids, flv, avi and m3u8 of one input all succeed
//! with valid outputs where the function put them, and a repeated id does not run twice.

use std::time::Duration;

use ffarm::job::Status;
use reqwest::StatusCode;
use serde_json::json;

use crate::api_harness::Api;
use crate::helpers::{ffprobe, ffprobe_streams, valid};
use crate::worker_harness::Backend;

#[tokio::test]
async fn five_invocations_of_the_serverless_function() {
    let mut api = Api::start(Backend::Sqlite, |_| {}).await;
    api.farm.put(&valid("h264_aac.mp4"), "480P.mp4");
    let invocation = |id: &str, format: &str| json!({"id": id, "bucket": "media", "object": "480P.mp4", "output_dir": "a", "dst_format": format});
    let calls = [
        ("my1", "mov"),
        ("my2", "mov"),
        ("my3", "flv"),
        ("my4", "avi"),
        ("my5", "m3u8"),
    ];
    for (id, format) in calls {
        let (s, job) = api.post("/v1/jobs", &invocation(id, format)).await;
        assert_eq!(s, StatusCode::CREATED, "{job}");
        assert_eq!(job["id"], id);
        assert_eq!(job["preset"], format);
        assert_eq!(job["output"], json!({"bucket": "media", "prefix": "a/"}));
    }
    let mut config = api.farm.config();
    config.workers = Some(2);
    api.farm.start_in_process(config);
    for (id, _) in calls {
        let job = api
            .wait_status(
                id,
                Duration::from_secs(120),
                &[Status::Succeeded, Status::Failed],
            )
            .await;
        assert_eq!(job.status, Status::Succeeded, "{id}: {:?}", job.error);
        assert_eq!(job.attempt, 1);
    }
    let out = api.farm.bucket_dir().join("a");
    for (file, container) in [
        ("480P.mov", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("480P.flv", "flv"),
        ("480P.avi", "avi"),
        ("480P.m3u8", "hls"),
    ] {
        let probe = ffprobe(&out.join(file));
        assert_eq!(probe["format"]["format_name"], container, "{file}");
        assert_eq!(ffprobe_streams(&probe, "video").len(), 1, "{file}");
    }

    // The same id again: that job, not another run.
    let before = api.job("my1").await;
    let (s, again) = api.post("/v1/jobs", &invocation("my1", "mov")).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "succeeded");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = api.job("my1").await;
    assert_eq!(
        (after.attempt, after.finished_at),
        (before.attempt, before.finished_at)
    );
    // The same id for other work is refused.
    let (s, conflict) = api.post("/v1/jobs", &invocation("my1", "flv")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{conflict}");
    api.shutdown().await;
}
