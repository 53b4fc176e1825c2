//! Workers running real task processes: jobs succeed with their outputs in the bucket, keep
//! their lease however long they run, stop within a second, time out, and fail clearly on bad
//! input while the worker carries on.

use std::time::{Duration, Instant};

use ffarm::job::{Outcome, Status};
use ffarm::progress::Phase;

use crate::helpers::{ffprobe, ffprobe_streams, malformed_dir, valid};
use crate::worker_harness::{Backend, Farm, alive, long_clip};

async fn job_succeeds_with_outputs_in_the_bucket(backend: Backend) {
    let mut farm = Farm::new(backend).await;
    farm.put(&valid("h264_aac_1080p.mp4"), "in/holiday clip.mp4");
    match backend {
        Backend::Sqlite => farm.start_in_process(farm.config()),
        Backend::Postgres => {
            farm.start_process(&["--workers", "1"], &[]);
        }
    }
    let job = farm
        .submit("in/holiday clip.mp4", "h264-720p", |_| {})
        .await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempt, 1);
    assert_eq!(done.outputs.len(), 1);
    let out = &done.outputs[0];
    assert_eq!(
        (out.bucket.as_str(), out.key.as_str()),
        ("media", "out/holiday clip_mp4/holiday clip.mp4")
    );
    let file = farm.bucket_dir().join(&out.key);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), out.bytes);
    let probe = ffprobe(&file);
    let v = &ffprobe_streams(&probe, "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720))
    );
    // The attempt's measurements and log.
    let attempt = &farm.store.attempts(&job.id).await.unwrap()[0];
    for phase in ["downloading", "probing", "transcoding", "uploading"] {
        assert!(
            attempt.stats.phases.contains_key(phase),
            "phase {phase} timed: {:?}",
            attempt.stats
        );
    }
    assert!(attempt.stats.cpu_seconds.unwrap() > 0.1);
    assert!(attempt.stats.peak_memory_bytes.unwrap() > 10 << 20);
    let log = farm.log_lines(&job.id).await;
    assert!(
        log.iter()
            .any(|l| l.contains("transcoding with preset h264-720p")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("exit code 0")), "{log:?}");
    // Progress reached the store and ended done.
    assert_eq!(done.progress.as_ref().map(|p| p.phase), Some(Phase::Done));
    // The workspace is gone.
    assert!(crate::helpers::files_under(&farm.data.path().join("workspaces")).is_empty());
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_job_succeeds_with_outputs_in_the_bucket() {
    job_succeeds_with_outputs_in_the_bucket(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_job_succeeds_with_outputs_in_the_bucket() {
    job_succeeds_with_outputs_in_the_bucket(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_job_keeps_its_lease_and_reports_progress_every_second() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&long_clip(), "in/long.mp4");
    let mut config = farm.config();
    config.worker.lease_seconds = 3;
    farm.start_in_process(config);
    let mut changes = farm.store.subscribe();
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    let started = Instant::now();
    // Progress arrives at least once a second while it runs.
    let mut last = Instant::now();
    let mut reports = 0;
    // What the task has used so far travels with its progress.
    let mut cpu = vec![];
    let done = loop {
        match tokio::time::timeout(Duration::from_millis(1500), changes.recv()).await {
            Ok(Ok(ffarm::store::Change::Progress { id, progress })) if id == job.id => {
                assert!(
                    last.elapsed() <= Duration::from_millis(1500),
                    "a gap of {:?}",
                    last.elapsed()
                );
                last = Instant::now();
                reports += 1;
                if let (Some(c), Some(m)) = (progress.cpu_seconds, progress.peak_memory_bytes) {
                    assert!(m > 10 << 20, "a transcoding task's peak memory: {m}");
                    cpu.push(c);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {
                let j = farm.store.get(&job.id).await.unwrap();
                if j.status.is_terminal() {
                    break j;
                }
                panic!("no progress for 1.5 s while {}", j.status);
            }
        }
        let j = farm.store.get(&job.id).await.unwrap();
        if j.status.is_terminal() {
            break j;
        }
    };
    let ran = started.elapsed();
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert!(
        ran > Duration::from_secs(9),
        "ran {ran:?}: longer than three lease periods"
    );
    assert_eq!(done.attempt, 1, "the lease was never lost");
    assert!(
        cpu.windows(2).all(|w| w[1] >= w[0]) && cpu.last() > Some(&2.0),
        "CPU seconds so far, as reported: {cpu:?}"
    );
    assert!(
        reports as f64 >= ran.as_secs_f64() * 0.8,
        "{reports} progress reports in {ran:?}"
    );
    let events = farm.store.events(&job.id).await.unwrap();
    assert!(
        !events.iter().any(|e| e.reason.contains("worker")),
        "{events:?}"
    );
    farm.cleanup().await;
}

async fn stop_mid_transcode_ends_cancelled_within_a_second(backend: Backend) {
    let mut farm = Farm::new(backend).await;
    farm.put(&long_clip(), "in/long.mp4");
    match backend {
        Backend::Sqlite => farm.start_in_process(farm.config()),
        Backend::Postgres => {
            farm.start_process(&["--workers", "1"], &[]);
        }
    }
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 3.0).await;
    let pid = farm.task_pid(&job.id, 1).await;
    assert!(alive(pid));
    let asked = Instant::now();
    farm.store
        .cancel(&job.id, "stop from the test")
        .await
        .unwrap();
    while alive(pid) {
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "task {pid} still running {:?} after the cancel",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gone = asked.elapsed();
    let done = farm.wait_terminal(&job.id, Duration::from_secs(10)).await;
    assert_eq!(done.status, Status::Cancelled);
    assert!(
        farm.outputs().is_empty(),
        "no partial output: {:?}",
        farm.outputs()
    );
    let log = farm.log_lines(&job.id).await;
    assert!(
        log.iter().any(|l| l.contains("cancel requested")),
        "{log:?}"
    );
    eprintln!("stop latency ({backend:?}): {gone:?}");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_stop_mid_transcode_ends_cancelled_within_a_second() {
    stop_mid_transcode_ends_cancelled_within_a_second(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stop_mid_transcode_ends_cancelled_within_a_second() {
    stop_mid_transcode_ends_cancelled_within_a_second(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ladders_under_one_prefix_keep_their_own_master_playlists() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/first.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/second.mp4");
    farm.start_in_process(farm.config());
    let mut jobs = Vec::new();
    for key in ["in/first.mp4", "in/second.mp4"] {
        jobs.push(
            farm.submit(key, "hls-abr", |s| s.output.prefix = "hls/".into())
                .await,
        );
    }
    for (job, stem) in jobs.iter().zip(["first", "second"]) {
        let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
        assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
        // Published last, and named after the input: the master is the job's own.
        let master = done.outputs.last().unwrap();
        assert_eq!(master.key, format!("hls/{stem}.m3u8"));
        let text = std::fs::read_to_string(farm.bucket_dir().join(&master.key)).unwrap();
        assert!(text.contains("#EXT-X-STREAM-INF"), "{text}");
        assert!(text.contains(&format!("\n{stem}_480p.m3u8\n")), "{text}");
        let other = if stem == "first" { "second" } else { "first" };
        assert!(!text.contains(other), "{text}");
    }
    assert!(!farm.bucket_dir().join("hls/master.m3u8").exists());
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_past_its_time_limit_fails_with_timeout() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&long_clip(), "in/long.mp4");
    farm.start_in_process(farm.config());
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| {
            s.timeout_seconds = 3;
            s.max_attempts = 1;
        })
        .await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.unwrap();
    assert_eq!(err.code, "timeout");
    assert!(err.message.contains("time limit of 3 s"), "{}", err.message);
    assert!(farm.outputs().is_empty());
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_workers_time_limit_caps_a_longer_job_limit() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&long_clip(), "in/long.mp4");
    let mut config = farm.config();
    config.worker.job_timeout_seconds = 3;
    farm.start_in_process(config);
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| {
            s.timeout_seconds = 3600;
            s.max_attempts = 1;
        })
        .await;
    let started = Instant::now();
    let done = farm.wait_terminal(&job.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.unwrap();
    assert_eq!(err.code, "timeout");
    assert!(
        err.message
            .contains("time limit of 3 s (the worker's worker.job_timeout_seconds)"),
        "{}",
        err.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(farm.outputs().is_empty());
    farm.cleanup().await;
}

#[test]
fn a_job_without_a_time_limit_gets_24_hours() {
    let spec: ffarm::job::JobSpec = serde_json::from_value(serde_json::json!({
        "input": {"bucket": "media", "key": "in/a.mp4"},
        "preset": "mp4",
        "output": {"bucket": "media", "prefix": "out/"},
    }))
    .unwrap();
    assert_eq!(spec.timeout_seconds, 24 * 3600);
    // The API fills in the worker setting, whose default is the same 24 h.
    let config = ffarm::config::Config::default();
    assert_eq!(config.worker.job_timeout_seconds, 24 * 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_inputs_fail_clearly_and_the_worker_carries_on() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.start_in_process(farm.config());
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(malformed_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        farm.put(&entry.path(), &format!("in/{name}"));
        ids.push((
            name.clone(),
            farm.submit(&format!("in/{name}"), "h264-720p", |_| {})
                .await
                .id,
        ));
    }
    // A missing input and an unknown preset fail just as clearly.
    ids.push((
        "missing".into(),
        farm.submit("in/not-there.mp4", "h264-720p", |_| {})
            .await
            .id,
    ));
    farm.put(&valid("h264_aac.mp4"), "in/ok.mp4");
    ids.push((
        "bad-preset".into(),
        farm.submit("in/ok.mp4", "no-such-preset", |_| {}).await.id,
    ));
    for (name, id) in &ids {
        let done = farm.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(done.status, Status::Failed, "{name}");
        let err = done.error.unwrap();
        assert!(
            !err.retryable,
            "{name}: a bad input is not retried ({err:?})"
        );
        assert_eq!(done.attempt, 1, "{name}");
        assert!(err.message.len() > 10, "{name}: {err:?}");
        let expect = match name.as_str() {
            "missing" => "object-not-found",
            "bad-preset" => "unknown-preset",
            "empty.mp4" => "input-empty",
            _ => "",
        };
        if !expect.is_empty() {
            assert_eq!(err.code, expect, "{name}");
        }
    }
    // The worker is still there and still works.
    let ok = farm.submit("in/ok.mp4", "mp4", |_| {}).await;
    let done = farm.wait_terminal(&ok.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Succeeded);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_worker_cannot_finish_a_job_it_lost() {
    // The store side of fencing, through the worker's own calls: a job claimed by a worker that
    // then loses its lease is refused when that worker reports.
    let farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/a.mp4");
    let job = farm.submit("in/a.mp4", "mp4", |_| {}).await;
    let claimed = farm
        .store
        .claim("ghost/1", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    farm.store.reap().await.unwrap();
    let err = farm
        .store
        .finish(
            &job.id,
            claimed.attempt,
            Outcome::Succeeded { outputs: vec![] },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "stale-attempt");
    farm.cleanup().await;
}
