//! The worker registry: a worker process registers what it is (its machine's host name
//! whatever its id, its version, slots and exec address), leaves on a clean exit, shows as lost
//! when killed, and is forgotten some time after that.

use ffarm::worker::WorkerState;
use std::time::{Duration, Instant};

use ffarm::job::Timestamp;
use ffarm::store::WorkerInfo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::worker_harness::{Backend, Farm};

async fn wait_worker(farm: &Farm, id: &str) -> WorkerInfo {
    let started = Instant::now();
    loop {
        if let Some(w) = farm
            .store
            .workers()
            .await
            .unwrap()
            .into_iter()
            .find(|w| w.id == id)
        {
            return w;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{id} never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_registers_its_host_version_slots_and_address() {
    let mut farm = Farm::new(Backend::Postgres).await;
    let pid = farm.start_process(
        &[
            "--workers",
            "3",
            "--worker-id",
            "edge-7",
            "--advertise",
            "127.0.0.1:9123",
        ],
        &[],
    );
    let w = wait_worker(&farm, "edge-7").await;
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(w.host, host, "the machine's name, not taken from the id");
    assert_eq!(w.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(w.slots, 3);
    assert_eq!(w.address.as_deref(), Some("127.0.0.1:9123"));
    assert!(!w.draining);
    assert_eq!(WorkerState::of(&w, Timestamp::now()), WorkerState::Active);
    // A clean exit takes it off the registry.
    let status = farm.signal_and_wait(pid, Signal::SIGTERM).await;
    assert!(status.success());
    assert!(farm.store.workers().await.unwrap().is_empty());
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_shows_as_lost_and_is_forgotten_later() {
    let mut farm = Farm::new(Backend::Postgres).await;
    let dead = farm.start_process(&["--workers", "1", "--worker-id", "doomed/1"], &[]);
    wait_worker(&farm, "doomed/1").await;
    kill(Pid::from_raw(dead as i32), Signal::SIGKILL).unwrap();
    let _ = farm.processes.pop().unwrap().wait();
    let killed = Instant::now();
    // Another worker forgets lost workers one second after they show as lost.
    let mut config = farm.config();
    config.worker.id = Some("survivor/2".into());
    config.worker.forget_lost_after_seconds = 1;
    farm.start_in_process(config);
    wait_worker(&farm, "survivor/2").await;
    let mut seen_lost = false;
    loop {
        let workers = farm.store.workers().await.unwrap();
        let now = Timestamp::now();
        match workers.iter().find(|w| w.id == "doomed/1") {
            Some(w) => {
                let state = WorkerState::of(w, now);
                if killed.elapsed() < Duration::from_secs(14) {
                    assert_eq!(state, WorkerState::Active, "lost only once unseen for 20 s");
                }
                seen_lost |= state == WorkerState::Lost;
            }
            None => break,
        }
        assert!(
            killed.elapsed() < Duration::from_secs(45),
            "never forgotten: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen_lost, "shown as lost before it was forgotten");
    assert!(
        killed.elapsed() >= ffarm::worker::LOST_AFTER - Duration::from_secs(5),
        "forgotten after {:?}",
        killed.elapsed()
    );
    let left: Vec<String> = farm
        .store
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(left, vec!["survivor/2".to_string()], "the live one stays");
    farm.cleanup().await;
}
