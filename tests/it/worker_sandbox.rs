//! The sandbox through real workers: what a worker reports of it, and what becomes of an
//! attempt whose engine the sandbox stops (a trapped system call, the memory limit), hangs
//! (the stall detector) or runs without it (`worker.sandbox = false`) — each named, and the
//! worker lives on and runs its next job.

use std::time::{Duration, Instant};

use ffarm::job::{Job, Status};
use ffarm::worker::protocol::TEST_ENGINE_FAULT_ENV;

use crate::helpers::{fixtures, valid};
use crate::worker_harness::{Backend, Farm, alive, long_clip};

const LIMIT: Duration = Duration::from_secs(120);

/// The job's log, every attempt.
async fn log_of(farm: &Farm, job: &Job) -> String {
    let lines = farm.store.logs(&job.id, None, 0, 10_000).await.unwrap();
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Submits a small clip and checks it succeeds: the worker still works.
async fn still_works(farm: &Farm, worker: u32) {
    let fine = farm.submit("in/fine.mp4", "mp4", |_| {}).await;
    let done = farm.wait_terminal(&fine.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert!(alive(worker as i32), "the worker lives on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_reports_the_sandbox_its_engines_get() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.start_process(
        &["--workers", "1"],
        &[("FFARM_WORKER__MEMORY_LIMIT_BYTES", "3221225472")],
    );
    let started = Instant::now();
    let worker = loop {
        let workers = farm.store.workers().await.unwrap();
        if let Some(w) = workers.into_iter().next() {
            break w;
        }
        assert!(started.elapsed() < LIMIT, "no worker registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let level = worker.sandbox.expect("a worker reports its sandbox");
    assert!(level.enabled);
    assert!(level.seccomp, "{level:?}");
    assert_eq!(
        level.landlock_abi,
        ffarm::sandbox::kernel_abi(),
        "{level:?}"
    );
    assert_eq!(level.limits.as_ref().unwrap().memory_bytes, 3 << 30);
    if level.landlock_abi.is_some() && level.network_namespace {
        assert!(level.missing.is_empty(), "{level:?}");
    } else {
        assert!(
            !level.missing.is_empty(),
            "what is missing is named: {level:?}"
        );
    }
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapped_system_call_fails_the_job_as_a_sandbox_violation() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/hostile.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/fine.mp4");
    let fault = "in/hostile.mp4=socket".to_string();
    let worker = farm.start_process(&["--workers", "1"], &[(TEST_ENGINE_FAULT_ENV, &fault)]);
    let job = farm.submit("in/hostile.mp4", "mp4", |_| {}).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "sandbox-violation", "{err:?}");
    assert!(
        err.message.contains("socket"),
        "the call is named: {}",
        err.message
    );
    assert!(!err.retryable, "final");
    assert_eq!(done.attempt, 1, "not retried");
    let log = log_of(&farm, &done).await;
    assert!(log.contains("ffarm sandbox-violation: socket"), "{log}");
    still_works(&farm, worker).await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_memory_bomb_ends_at_the_memory_limit() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&fixtures().join("limits/memory_bomb.mp4"), "in/bomb.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/fine.mp4");
    let worker = farm.start_process(
        &["--workers", "1"],
        &[("FFARM_WORKER__MEMORY_LIMIT_BYTES", "1073741824")],
    );
    let job = farm.submit("in/bomb.mp4", "h264-720p", |_| {}).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "memory-limit", "{err:?}");
    assert!(err.message.contains("1.0 GiB"), "{}", err.message);
    assert!(!err.retryable);
    assert_eq!(done.attempt, 1);
    still_works(&farm, worker).await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_engine_is_killed_after_the_stall_limit_and_retried() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/hung.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/fine.mp4");
    let fault = "in/hung.mp4=hang".to_string();
    let worker = farm.start_process(
        &["--workers", "1"],
        &[
            (TEST_ENGINE_FAULT_ENV, &fault),
            ("FFARM_WORKER__STALL_SECONDS", "3"),
            ("FFARM_RETRY__BASE_SECONDS", "0.2"),
        ],
    );
    let started = Instant::now();
    let job = farm
        .submit("in/hung.mp4", "h264-720p", |s| s.max_attempts = 2)
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    let took = started.elapsed();
    assert_eq!(done.status, Status::Failed);
    assert_eq!(done.attempt, 2, "a stall is retried");
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "stalled", "{err:?}");
    assert!(err.retryable);
    assert!(err.message.contains("3 s"), "{}", err.message);
    // Two attempts of three seconds without progress each, and not much more.
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(60),
        "{took:?}"
    );
    let events = farm.store.events(&job.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.reason.contains("retrying")),
        "{events:?}"
    );
    still_works(&farm, worker).await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_sandbox_every_job_says_so() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/fine.mp4");
    let worker = farm.start_process(&["--workers", "1"], &[("FFARM_WORKER__SANDBOX", "false")]);
    let job = farm.submit("in/fine.mp4", "mp4", |_| {}).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let log = log_of(&farm, &done).await;
    assert!(log.contains("the sandbox is off"), "{log}");
    let workers = farm.store.workers().await.unwrap();
    let level = workers[0].sandbox.clone().unwrap();
    assert!(!level.enabled, "{level:?}");
    assert!(alive(worker as i32));
    farm.cleanup().await;
}

/// Every shipped preset (on a clip with sound) and every valid fixture (with the `mp4` preset:
/// decoded and encoded) through a real worker, with the sandbox on.
async fn everything_transcodes_in_the_sandbox(backend: Backend) {
    let mut farm = Farm::new(backend).await;
    farm.put(&valid("h264_aac.mp4"), "in/clip.mp4");
    farm.start_process(&["--workers", "2"], &[]);
    let presets = ffarm::preset::Presets::builtin(&ffarm::media::caps::Ffmpeg).unwrap();
    let mut jobs = Vec::new();
    for name in presets.names() {
        let prefix = format!("out/preset/{name}/");
        let job = farm
            .submit("in/clip.mp4", name, |s| s.output.prefix = prefix)
            .await;
        jobs.push((format!("preset {name}"), job));
    }
    let mut fixtures: Vec<_> = std::fs::read_dir(crate::helpers::valid_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    for path in fixtures {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let key = format!("in/fixtures/{name}");
        farm.put(&path, &key);
        jobs.push((
            format!("fixture {name}"),
            farm.submit(&key, "mp4", |_| {}).await,
        ));
    }
    let mut failed = Vec::new();
    for (what, job) in &jobs {
        let done = farm.wait_terminal(&job.id, Duration::from_secs(600)).await;
        if done.status != Status::Succeeded {
            failed.push(format!("{what}: {:?} {:?}", done.status, done.error));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    let workers = farm.store.workers().await.unwrap();
    assert!(
        workers
            .iter()
            .all(|w| w.sandbox.as_ref().is_some_and(|l| l.enabled))
    );
    println!("{} jobs transcoded in the sandbox", jobs.len());
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_preset_and_fixture_transcodes_in_the_sandbox_sqlite() {
    everything_transcodes_in_the_sandbox(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_preset_and_fixture_transcodes_in_the_sandbox_postgres() {
    everything_transcodes_in_the_sandbox(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_output_past_the_file_size_limit_ends_as_output_too_large() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/big.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/fine.mp4");
    // The clip's MP4 output is about 220 KB; the limit is 64 KB. (The next job, the same
    // clip, fails too: a worker with such a limit is only good for this check.)
    let worker = farm.start_process(
        &["--workers", "1"],
        &[("FFARM_WORKER__OUTPUT_LIMIT_BYTES", "65536")],
    );
    let job = farm.submit("in/big.mp4", "h264-720p", |_| {}).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "output-too-large", "{err:?}");
    assert!(
        err.message.contains("worker.output_limit_bytes"),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    assert!(alive(worker as i32), "the worker lives on");
    farm.cleanup().await;
}
