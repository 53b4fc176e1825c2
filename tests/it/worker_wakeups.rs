//! Workers react to the store's notifications, not to their polling: with the fallback poll
//! at a minute, a submitted job is claimed at once and a stop reaches the running task well
//! before the next heartbeat would have carried it — in one process on SQLite and across
//! processes on PostgreSQL.

use std::time::{Duration, Instant};

use ffarm::job::Status;

use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm, alive, long_clip};

/// A fallback poll far longer than any test waits.
const LONG_POLL: &str = "60";
/// What "at once" means here: well under the 1 s a poll or a heartbeat would take.
const AT_ONCE: Duration = Duration::from_millis(500);

/// Starts one worker with a one-minute poll: in this process on SQLite (sharing the store, as
/// in `ffarm serve`), as an `ffarm worker` process on PostgreSQL.
fn start_slow_polling_worker(farm: &mut Farm, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            let mut config = farm.config();
            config.worker.poll_seconds = LONG_POLL.parse().unwrap();
            farm.start_in_process(config);
        }
        Backend::Postgres => {
            farm.start_process(
                &["--workers", "1"],
                &[("FFARM_WORKER__POLL_SECONDS", LONG_POLL)],
            );
        }
    }
}

/// Waits until the worker registered and has had time to find the queue empty, so only a
/// notification can make it claim again.
async fn wait_idle(farm: &Farm) {
    let started = Instant::now();
    while farm.store.workers().await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "no worker");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
}

async fn a_submitted_job_is_claimed_at_once(backend: Backend) {
    let mut farm = Farm::new(backend).await;
    farm.put(&valid("h264_aac.mp4"), "in/a.mp4");
    start_slow_polling_worker(&mut farm, backend);
    wait_idle(&farm).await;
    let job = farm.submit("in/a.mp4", "mp4", |_| {}).await;
    let submitted = Instant::now();
    loop {
        let j = farm.store.get(&job.id).await.unwrap();
        if j.status != Status::Queued {
            break;
        }
        assert!(
            submitted.elapsed() < AT_ONCE,
            "still queued {:?} after the submit: claims wait for the poll",
            submitted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "claimed {:?} after the submit ({backend:?})",
        submitted.elapsed()
    );
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_submitted_job_is_claimed_at_once() {
    a_submitted_job_is_claimed_at_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_submitted_job_is_claimed_at_once() {
    a_submitted_job_is_claimed_at_once(Backend::Postgres).await;
}

async fn a_stop_reaches_the_task_before_the_next_heartbeat(backend: Backend) {
    let mut farm = Farm::new(backend).await;
    farm.put(&long_clip(), "in/long.mp4");
    start_slow_polling_worker(&mut farm, backend);
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    farm.wait_transcoding(&job.id, 2.0).await;
    let pid = farm.task_pid(&job.id, 1).await;
    // Progress is announced by the heartbeat: stopping right after one leaves a whole second
    // before the next, which would carry the stop too if nothing else did.
    farm.wait_heartbeat(&job.id).await;
    let asked = Instant::now();
    farm.store
        .cancel(&job.id, "stop from the test")
        .await
        .unwrap();
    while alive(pid) {
        assert!(
            asked.elapsed() < AT_ONCE,
            "task {pid} still running {:?} after the cancel",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "stopped {:?} after the cancel ({backend:?})",
        asked.elapsed()
    );
    let done = farm.wait_terminal(&job.id, Duration::from_secs(10)).await;
    assert_eq!(done.status, Status::Cancelled);
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_stop_reaches_the_task_before_the_next_heartbeat() {
    a_stop_reaches_the_task_before_the_next_heartbeat(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_stop_reaches_the_task_before_the_next_heartbeat() {
    a_stop_reaches_the_task_before_the_next_heartbeat(Backend::Postgres).await;
}
