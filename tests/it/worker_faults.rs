//! Workers facing trouble: a task that crashes, a worker killed with SIGKILL mid-job, a
//! worker asked to shut down, and destinations that must hear about every ending.

use ffarm::worker::WorkerState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ffarm::job::Status;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::{malformed_dir, valid};
use crate::worker_harness::{Backend, Farm, alive, long_clip};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashing_task_is_retried_and_the_worker_lives_on() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/crash.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/fine.mp4");
    let worker = farm.start_process(
        &["--workers", "1"],
        &[
            ("FFARM_TEST_ABORT_KEY", "in/crash.mp4"),
            ("FFARM_RETRY__BASE_SECONDS", "0.2"),
        ],
    );
    let crash = farm
        .submit("in/crash.mp4", "mp4", |s| s.max_attempts = 2)
        .await;
    let done = farm.wait_terminal(&crash.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Failed);
    assert_eq!(done.attempt, 2, "the crash was retried");
    let err = done.error.unwrap();
    assert_eq!(err.code, "task-crashed");
    assert!(
        err.message.contains("SIGABRT"),
        "the signal is named: {}",
        err.message
    );
    let events = farm.store.events(&crash.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.reason.contains("retrying")),
        "{events:?}"
    );
    // The worker is alive and still working.
    assert!(alive(worker as i32));
    let fine = farm.submit("in/fine.mp4", "mp4", |_| {}).await;
    assert_eq!(
        farm.wait_terminal(&fine.id, Duration::from_secs(60))
            .await
            .status,
        Status::Succeeded
    );
    assert!(alive(worker as i32));
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_that_ignores_the_stop_is_killed_when_the_grace_period_ends() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/stuck.mp4");
    farm.start_process(
        &["--workers", "1"],
        &[
            (
                ffarm::worker::protocol::TEST_IGNORE_STOP_ENV,
                "in/stuck.mp4",
            ),
            ("FFARM_WORKER__STOP_GRACE_SECONDS", "2"),
        ],
    );
    let job = farm.submit("in/stuck.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 2.0).await;
    let pid = farm.task_pid(&job.id, 1).await;
    // Stop right after a heartbeat (progress is announced by it): a kill that waited for the
    // heartbeat after the grace period would land about a second late.
    farm.wait_heartbeat(&job.id).await;
    let asked = Instant::now();
    farm.store.cancel(&job.id, "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(alive(pid), "the task ignored SIGTERM");
    while alive(pid) {
        assert!(
            asked.elapsed() < Duration::from_secs(6),
            "not killed after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let died = asked.elapsed();
    let done = farm.wait_terminal(&job.id, Duration::from_secs(10)).await;
    assert_eq!(done.status, Status::Cancelled);
    let log = farm.log_lines(&job.id).await;
    assert!(
        died >= Duration::from_secs(2) && died < Duration::from_millis(2500),
        "killed {died:?} after the cancel, with a grace period of 2 s:\n{}",
        log.join("\n")
    );
    assert!(log.iter().any(|l| l.contains("SIGKILL")), "{log:?}");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_tasks_workspace_is_kept_for_a_while() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&malformed_dir().join("bitflip.mp4"), "in/broken.mp4");
    let mut config = farm.config();
    config.worker.keep_failed_workspace_seconds = 3;
    farm.start_in_process(config);
    let job = farm.submit("in/broken.mp4", "mp4", |_| {}).await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Failed);
    let ws = farm.data.path().join(format!("workspaces/{}-a1", job.id));
    assert!(
        ws.join("input/broken.mp4").exists(),
        "the input is there to look at"
    );
    assert!(ws.join("task.json").exists());
    let started = Instant::now();
    while ws.exists() {
        assert!(started.elapsed() < Duration::from_secs(10), "kept too long");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "removed too early"
    );
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_job_is_replaced_and_the_job_succeeds_once() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/long.mp4");
    let retry = [("FFARM_RETRY__BASE_SECONDS", "0.2")];
    let a = farm.start_process(
        &[
            "--workers",
            "1",
            "--lease-seconds",
            "3",
            "--worker-id",
            "host-a/1",
        ],
        &retry,
    );
    let job = farm.submit("in/long.mp4", "h264-480p", |_| {}).await;
    let running = farm.wait_transcoding(&job.id, 2.0).await;
    assert_eq!(running.worker.as_deref(), Some("host-a/1"));
    let task = farm.task_pid(&job.id, 1).await;
    kill(Pid::from_raw(a as i32), Signal::SIGKILL).unwrap();
    // Its task dies with it (parent-death signal): no orphan keeps writing.
    let killed = Instant::now();
    while alive(task) {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "orphaned task {task} still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    farm.start_process(
        &[
            "--workers",
            "1",
            "--lease-seconds",
            "3",
            "--worker-id",
            "host-b/2",
        ],
        &retry,
    );
    let done = farm.wait_terminal(&job.id, Duration::from_secs(120)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempt, 2);
    assert_eq!(done.worker.as_deref(), Some("host-b/2"));
    let events = farm.store.events(&job.id).await.unwrap();
    let successes = events
        .iter()
        .filter(|e| e.to == Some(Status::Succeeded))
        .count();
    assert_eq!(successes, 1, "exactly one success recorded");
    assert!(
        events
            .iter()
            .any(|e| e.reason.contains("stopped renewing its lease")),
        "{events:?}"
    );
    assert_eq!(
        farm.outputs(),
        vec!["long_mp4/long.mp4".to_string()],
        "one set of outputs"
    );
    // The registry still lists the dead worker, no longer seen: it shows as lost.
    let workers = farm.store.workers().await.unwrap();
    let dead = workers
        .iter()
        .find(|w| w.id == "host-a/1")
        .expect("the dead worker is listed");
    let live = workers
        .iter()
        .find(|w| w.id == "host-b/2")
        .expect("the live worker is listed");
    assert!(
        dead.last_seen.0
            <= ffarm::job::Timestamp::now().0 - (killed.elapsed().as_micros() as i64) + 6_000_000
    );
    let later = dead
        .last_seen
        .plus(ffarm::worker::LOST_AFTER)
        .plus(Duration::from_secs(1));
    assert_eq!(WorkerState::of(dead, later), WorkerState::Lost);
    assert_eq!(
        WorkerState::of(live, ffarm::job::Timestamp::now()),
        WorkerState::Active
    );
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_frozen_past_its_lease_kills_its_task_and_reports_nothing() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/long.mp4");
    let retry = ("FFARM_RETRY__BASE_SECONDS", "0.2");
    // Its task ignores SIGTERM: only a kill ends it, as a lost lease asks.
    let a = farm.start_process(
        &[
            "--workers",
            "1",
            "--lease-seconds",
            "3",
            "--worker-id",
            "frozen/1",
        ],
        &[
            retry,
            (ffarm::worker::protocol::TEST_IGNORE_STOP_ENV, "in/long.mp4"),
        ],
    );
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 2.0).await;
    let task = farm.task_pid(&job.id, 1).await;
    // The worker stops; its task, in a process group of its own, runs on.
    kill(Pid::from_raw(a as i32), Signal::SIGSTOP).unwrap();
    farm.start_process(
        &[
            "--workers",
            "1",
            "--lease-seconds",
            "3",
            "--worker-id",
            "other/2",
        ],
        &[retry],
    );
    let taken = farm
        .wait_for(&job.id, Duration::from_secs(60), |j| {
            j.attempt == 2 && j.status == Status::Running
        })
        .await;
    assert_eq!(taken.worker.as_deref(), Some("other/2"));
    assert!(
        alive(task),
        "the first task kept running while its worker was stopped"
    );
    kill(Pid::from_raw(a as i32), Signal::SIGCONT).unwrap();
    let resumed = Instant::now();
    while alive(task) {
        assert!(
            resumed.elapsed() < Duration::from_secs(3),
            "the first worker let its task run on after losing the lease"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = farm.wait_terminal(&job.id, Duration::from_secs(180)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert_eq!((done.attempt, done.worker.as_deref()), (2, Some("other/2")));
    let events = farm.store.events(&job.id).await.unwrap();
    let successes = events
        .iter()
        .filter(|e| e.to == Some(Status::Succeeded))
        .count();
    assert_eq!(successes, 1, "{events:?}");
    // The first attempt stays as the reaper ended it: its worker reported nothing on it.
    let attempts = farm.store.attempts(&job.id).await.unwrap();
    assert_eq!(
        attempts[0].outcome.as_deref(),
        Some("queued"),
        "{attempts:?}"
    );
    assert_eq!(attempts[0].worker.as_deref(), Some("frozen/1"));
    assert!(alive(a as i32), "the first worker lives on");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_hands_running_jobs_back_without_losing_an_attempt() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/long.mp4");
    let worker = farm.start_process(
        &[
            "--workers",
            "1",
            "--drain-timeout",
            "1",
            "--worker-id",
            "drainer/1",
        ],
        &[],
    );
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| s.max_attempts = 1)
        .await;
    farm.wait_transcoding(&job.id, 2.0).await;
    let task = farm.task_pid(&job.id, 1).await;
    let asked = Instant::now();
    let status = farm.signal_and_wait(worker, Signal::SIGTERM).await;
    assert!(status.success(), "a clean exit after draining: {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "drained in {:?}",
        asked.elapsed()
    );
    assert!(!alive(task));
    let back = farm.store.get(&job.id).await.unwrap();
    assert_eq!(back.status, Status::Queued, "handed back");
    let events = farm.store.events(&job.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.reason.contains("draining worker")),
        "{events:?}"
    );
    assert!(
        farm.store
            .workers()
            .await
            .unwrap()
            .iter()
            .all(|w| w.id != "drainer/1"),
        "deregistered"
    );
    // Nothing lost: the next worker runs it, and its one allowed attempt is still there.
    farm.start_process(&["--workers", "1"], &[]);
    let done = farm.wait_terminal(&job.id, Duration::from_secs(120)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_signal_stops_a_draining_worker_at_once() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/long.mp4");
    let worker = farm.start_process(&["--workers", "1", "--drain-timeout", "600"], &[]);
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 2.0).await;
    kill(Pid::from_raw(worker as i32), Signal::SIGTERM).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        farm.store.get(&job.id).await.unwrap().status,
        Status::Running,
        "still draining"
    );
    let asked = Instant::now();
    let status = farm.signal_and_wait(worker, Signal::SIGTERM).await;
    assert!(status.success());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        asked.elapsed()
    );
    assert_eq!(
        farm.store.get(&job.id).await.unwrap().status,
        Status::Queued
    );
    farm.cleanup().await;
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, serde_json::Value)>>>);

async fn receive(
    State(r): State<Received>,
    axum::extract::Path(which): axum::extract::Path<String>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> StatusCode {
    let mut got = r.0.lock().unwrap();
    let first_flaky = which == "flaky" && !got.iter().any(|(w, _)| w == "flaky");
    got.push((which, body));
    if first_flaky {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn destinations_receive_every_ending() {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/hook/{which}", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/ok.mp4");
    farm.put(&malformed_dir().join("random.mp4"), "in/bad.mp4");
    let mut config = farm.config();
    // The configured default catches jobs that name no destination of their own (filled in
    // as the API and the triggers make jobs).
    config.destinations.on_failure = Some(format!("{base}/hook/default-failure"));
    let defaults = config.destinations.clone();
    farm.start_in_process(config);
    let ok = farm
        .submit("in/ok.mp4", "mp4", |s| {
            s.on_success = Some(format!("{base}/hook/flaky"));
            defaults.fill(s);
        })
        .await;
    let bad = farm.submit("in/bad.mp4", "mp4", |s| defaults.fill(s)).await;
    farm.wait_terminal(&ok.id, Duration::from_secs(60)).await;
    farm.wait_terminal(&bad.id, Duration::from_secs(60)).await;
    let started = Instant::now();
    loop {
        let n = received.0.lock().unwrap().len();
        if n >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "deliveries: {:?}",
            received.0.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = received.0.lock().unwrap().clone();
    let flaky: Vec<_> = got.iter().filter(|(w, _)| w == "flaky").collect();
    assert_eq!(flaky.len(), 2, "retried after the 500");
    assert_eq!(flaky[1].1["id"], ok.id);
    assert_eq!(flaky[1].1["status"], "succeeded");
    assert_eq!(flaky[1].1["outputs"][0]["key"], "out/ok_mp4/ok.mp4");
    let dead: Vec<_> = got.iter().filter(|(w, _)| w == "default-failure").collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1["id"], bad.id);
    assert_eq!(dead[0].1["status"], "failed");
    assert!(
        dead[0].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad.mp4")
    );
    // Each delivery is in the job's history (recorded once the destination has answered).
    let started = Instant::now();
    let deliveries = loop {
        let deliveries: Vec<_> = farm
            .store
            .events(&ok.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "delivery")
            .collect();
        if deliveries.len() >= 2 || started.elapsed() > Duration::from_secs(10) {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert!(
        deliveries[0].reason.contains("failed: HTTP 500"),
        "{:?}",
        deliveries[0]
    );
    assert!(
        deliveries[1].reason.contains("delivered"),
        "{:?}",
        deliveries[1]
    );
    farm.cleanup().await;
}
