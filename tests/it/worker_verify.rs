//! Outputs are read back before a job succeeds, through a real `ffarm worker`: a succeeded
//! job's outputs carry what the check found (length, streams, the files a playlist names);
//! an output damaged after it was written (the engine's `damage` test fault) fails the job
//! `output-invalid`, leaves nothing in the bucket, and only the failure destination hears.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use ffarm::job::Status;
use ffarm::worker::protocol::TEST_ENGINE_FAULT_ENV;

use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm};

const LIMIT: Duration = Duration::from_secs(120);

/// A destination on port 0 recording which of its paths were called.
async fn destination() -> (String, Arc<Mutex<Vec<String>>>) {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/{which}",
            post(
                |State(h): State<Arc<Mutex<Vec<String>>>>, UrlPath(which): UrlPath<String>| async move {
                    h.lock().unwrap().push(which);
                    "ok"
                },
            ),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_carry_their_check_and_a_damaged_one_fails_the_job() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    let fault = "in/damaged.mp4=damage";
    farm.start_process(&["--workers", "1"], &[(TEST_ENGINE_FAULT_ENV, fault)]);
    farm.put(&valid("h264_aac.mp4"), "in/clip.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/damaged.mp4");
    let (url, hits) = destination().await;

    // A whole job: the outputs that stand for an output say what was found.
    let job = farm
        .submit("in/clip.mp4", "h264-720p+hls-720p", |s| {
            s.output.prefix = "out/".into()
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let checked = |key: &str| {
        done.outputs
            .iter()
            .find(|o| o.key == key)
            .and_then(|o| o.check.clone())
            .unwrap_or_else(|| panic!("{key} carries its check: {:?}", done.outputs))
    };
    let mp4 = checked("out/clip.h264-720p.mp4");
    assert!((mp4.duration_seconds.unwrap() - 2.0).abs() < 0.1, "{mp4:?}");
    assert!(mp4.streams[0].starts_with("h264 640x360"), "{mp4:?}");
    assert!(
        mp4.streams.iter().any(|s| s.starts_with("aac 48000 Hz")),
        "{mp4:?}"
    );
    let hls = checked("out/clip.hls-720p.m3u8");
    assert!(hls.files >= 1, "its segments counted: {hls:?}");
    let segments = done.outputs.iter().filter(|o| o.key.ends_with(".ts"));
    assert!(segments.clone().count() >= 1);
    assert!(segments.into_iter().all(|o| o.check.is_none()));
    assert_eq!(mp4.input_damage, 0);

    // Damage the decoder concealed: the job succeeds and its output says so.
    let concealed = farm.bucket_dir().join("in/concealed.mp4");
    crate::media_many::concealable_copy(&valid("h264_aac.mp4"), &concealed);
    let job = farm
        .submit("in/concealed.mp4", "h264-480p", |s| {
            s.output.prefix = "out/".into()
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let check = done.outputs[0].check.clone().unwrap();
    assert!(check.input_damage > 0, "{check:?}");

    // A damaged output: the job fails, nothing is published, only the failure is told.
    let job = farm
        .submit("in/damaged.mp4", "h264-720p", |s| {
            s.output.prefix = "bad/".into();
            s.max_attempts = 1;
            s.on_success = Some(format!("{url}/success"));
            s.on_failure = Some(format!("{url}/failure"));
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "output-invalid", "{err:?}");
    assert!(
        err.message.contains("damaged.mp4") && err.message.contains("not whole"),
        "{}",
        err.message
    );
    assert!(done.outputs.is_empty());
    let left = crate::helpers::files_under(&farm.bucket_dir().join("bad"));
    assert!(left.is_empty(), "{left:?}");
    let started = std::time::Instant::now();
    while hits.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*hits.lock().unwrap(), ["failure"]);
    farm.cleanup().await;
}
