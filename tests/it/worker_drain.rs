//! Draining a worker: SIGINT (like SIGTERM) stops claiming and lets running tasks finish
//! within the drain timeout; a stop that arrives as two signals at once, or straight as a stop,
//! does not wait out the drain timeout.

use std::time::{Duration, Instant};

use ffarm::job::Status;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm, alive, long_clip};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_lets_running_tasks_finish_and_claims_nothing_more() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/long.mp4");
    farm.put(&valid("h264_aac.mp4"), "in/next.mp4");
    // Two slots: one stays free, so only the drain keeps the second job from being claimed.
    let worker = farm.start_process(
        &[
            "--workers",
            "2",
            "--drain-timeout",
            "300",
            "--worker-id",
            "drainer/1",
        ],
        &[],
    );
    let running = farm.submit("in/long.mp4", "h264-480p", |_| {}).await;
    farm.wait_transcoding(&running.id, 2.0).await;
    kill(Pid::from_raw(worker as i32), Signal::SIGINT).unwrap();
    let started = Instant::now();
    loop {
        let w = farm.store.workers().await.unwrap();
        if w.iter().any(|w| w.id == "drainer/1" && w.draining) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not draining: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let next = farm.submit("in/next.mp4", "mp4", |_| {}).await;
    let mut child = farm.processes.pop().unwrap();
    let exited = tokio::task::spawn_blocking(move || child.wait());
    // While it drains, the queued job stays queued.
    while !exited.is_finished() {
        let n = farm.store.get(&next.id).await.unwrap();
        assert_eq!(n.status, Status::Queued, "claimed while draining: {n:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.await.unwrap().unwrap();
    assert!(status.success(), "a clean exit after draining: {status}");
    let done = farm.store.get(&running.id).await.unwrap();
    assert_eq!(
        done.status,
        Status::Succeeded,
        "finished within the drain timeout"
    );
    assert_eq!(done.attempt, 1);
    let next = farm.store.get(&next.id).await.unwrap();
    assert_eq!((next.status, next.attempt), (Status::Queued, 0));
    assert!(
        farm.store.workers().await.unwrap().is_empty(),
        "deregistered"
    );
    farm.cleanup().await;
}

/// The job's task is gone and the job is back in the queue, its attempt not counted.
async fn handed_back(farm: &Farm, id: &str, task: i32) {
    let started = Instant::now();
    while alive(task) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "task still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = farm.store.get(id).await.unwrap();
    assert_eq!(job.status, Status::Queued, "{job:?}");
    let events = farm.store.events(id).await.unwrap();
    assert!(
        events.iter().any(|e| e.reason.contains("draining worker")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_signals_at_once_stop_without_waiting_out_the_drain_timeout() {
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&long_clip(), "in/long.mp4");
    let worker = farm.start_process(&["--workers", "1", "--drain-timeout", "600"], &[]);
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 2.0).await;
    let task = farm.task_pid(&job.id, 1).await;
    let asked = Instant::now();
    kill(Pid::from_raw(worker as i32), Signal::SIGTERM).unwrap();
    kill(Pid::from_raw(worker as i32), Signal::SIGINT).unwrap();
    let mut child = farm.processes.pop().unwrap();
    let exited = tokio::task::spawn_blocking(move || child.wait());
    let status = tokio::time::timeout(Duration::from_secs(10), exited)
        .await
        .expect("the worker waited out its drain timeout")
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    eprintln!("stopped in {:?}", asked.elapsed());
    handed_back(&farm, &job.id, task).await;
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_without_a_drain_first_does_not_wait_out_the_drain_timeout() {
    let farm = Farm::new(Backend::Sqlite).await;
    farm.put(&long_clip(), "in/long.mp4");
    let mut config = farm.config();
    config.worker.drain_timeout_seconds = 600;
    let ctx = ffarm::worker::context(farm.store.clone(), config).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(0u8);
    let run = tokio::spawn(ffarm::worker::run(ctx, ffarm::worker::Shutdown(rx)));
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 2.0).await;
    let task = farm.task_pid(&job.id, 1).await;
    // Straight to "stop now", as `serve` and the tests ask.
    tx.send(2).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the worker waited out its drain timeout")
        .unwrap()
        .unwrap();
    handed_back(&farm, &job.id, task).await;
    farm.cleanup().await;
}
