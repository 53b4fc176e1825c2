//! A task stopped or failing after its uploads began removes what it had uploaded: no
//! segments without the playlist that names them stay behind (folder buckets here; S3 in
//! `worker_s3`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ffarm::buckets::Buckets;
use ffarm::job::Status;
use futures_util::TryStreamExt;

use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm};

/// HLS in one-second segments of a small picture: many files, quickly made.
const HLS_1S: &str = r#"description = "HLS with 1 s segments (tests)"
container = "hls"
[video]
codec = "h264"
encoder_preset = "ultrafast"
crf = 30
pixel_format = "yuv420p"
max_width = 640
max_height = 360
[audio]
codec = "aac"
bitrate = "64k"
[hls]
segment_seconds = 1
"#;

/// A presets directory holding `hls-1s`, inside the farm's data directory.
pub fn test_presets(farm: &Farm) -> PathBuf {
    let dir = farm.data.path().join("test-presets");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hls-1s.toml"), HLS_1S).unwrap();
    dir
}

/// The keys under `prefix` in a bucket, as the farm's own bucket code lists them.
pub async fn keys_under(buckets: &Buckets, bucket: &str, prefix: &str) -> Vec<String> {
    let store = buckets.store(bucket).unwrap();
    let prefix = object_store::path::Path::from(prefix.trim_end_matches('/'));
    let mut keys: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Runs a 13-segment HLS job from `bucket` into `bucket` on a worker process whose task waits a
/// second between uploads, stops it once the first segment is in the bucket, and checks that
/// nothing is left under the output prefix. `envs` configure the bucket for the worker.
pub async fn a_stop_while_uploading_leaves_nothing(
    farm: &mut Farm,
    buckets: &Buckets,
    bucket: &str,
    envs: &[(String, String)],
) {
    let presets = test_presets(farm);
    let mut envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    envs.push((ffarm::worker::protocol::TEST_SLOW_UPLOAD_ENV, "in/clip.mp4"));
    farm.start_process(
        &["--workers", "1", "--presets-dir", presets.to_str().unwrap()],
        &envs,
    );
    let job = farm
        .submit("in/clip.mp4", "hls-1s", |s| {
            s.input.bucket = bucket.into();
            s.output.bucket = bucket.into();
            s.output.prefix = "out/clip/".into();
        })
        .await;
    let started = Instant::now();
    loop {
        if !keys_under(buckets, bucket, "out/clip/").await.is_empty() {
            break;
        }
        let j = farm.store.get(&job.id).await.unwrap();
        assert!(!j.status.is_terminal(), "ended before uploading: {j:?}");
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "nothing uploaded yet"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    farm.store
        .cancel(&job.id, "stop while uploading")
        .await
        .unwrap();
    let done = farm.wait_terminal(&job.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, Status::Cancelled);
    let left = keys_under(buckets, bucket, "out/clip/").await;
    assert!(left.is_empty(), "left in the bucket: {left:?}");
    let log = farm.log_lines(&job.id).await;
    assert!(
        log.iter()
            .any(|l| l.contains("object(s) this attempt had uploaded")),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_while_uploading_leaves_nothing_in_a_folder_bucket() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("hls_source_1080p.mp4"), "in/clip.mp4");
    let buckets = Buckets::new(farm.data.path(), Default::default()).unwrap();
    a_stop_while_uploading_leaves_nothing(&mut farm, &buckets, "media", &[]).await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_while_uploading_removes_what_was_uploaded() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("hls_source_1080p.mp4"), "in/clip.mp4");
    // The second segment cannot be stored: a folder is where its file would go.
    std::fs::create_dir_all(farm.bucket_dir().join("out/clip/clip_00001.ts")).unwrap();
    let mut config = farm.config();
    config.presets_dir = Some(test_presets(&farm));
    farm.start_in_process(config);
    let job = farm
        .submit("in/clip.mp4", "hls-1s", |s| {
            s.output.prefix = "out/clip/".into()
        })
        .await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(90)).await;
    assert_eq!(done.status, Status::Failed);
    assert_eq!(
        done.error.as_ref().unwrap().code,
        "key-conflict",
        "{done:?}"
    );
    let buckets = Buckets::new(farm.data.path(), Default::default()).unwrap();
    let left = keys_under(&buckets, "media", "out/clip/").await;
    assert!(
        left.is_empty(),
        "the first segment was uploaded and must be gone: {left:?}"
    );
    farm.cleanup().await;
}
