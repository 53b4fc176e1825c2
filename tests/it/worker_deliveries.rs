//! Destination deliveries are durable: an ending waits in the store's outbox until some worker
//! delivers it, so a worker killed while the destination is failing loses nothing; tries are
//! recorded, carry one idempotency key, give up after the limit with a final entry, and a
//! draining worker finishes the try it has in flight.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ffarm::job::Status;
use ffarm::store::JobEvent;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::valid;
use crate::worker_harness::{Backend, Farm};

/// One request a destination received.
#[derive(Debug, Clone)]
struct Hit {
    key: Option<String>,
    body: serde_json::Value,
    answered: u16,
}

/// A destination on port 0 that fails (503) until told to recover, and may answer slowly.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    arrived: Arc<std::sync::atomic::AtomicUsize>,
}

async fn hook(
    State(r): State<Receiver>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> StatusCode {
    use std::sync::atomic::Ordering::SeqCst;
    r.arrived.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(r.delay_ms.load(SeqCst))).await;
    let answer = if r.failing.load(SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    r.hits.lock().unwrap().push(Hit {
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        answered: answer.as_u16(),
    });
    answer
}

impl Receiver {
    /// Serves the receiver; returns its URL.
    async fn start(&self) -> String {
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn delivery_notes(farm: &Farm, id: &str) -> Vec<JobEvent> {
    farm.store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "delivery")
        .collect()
}

/// Waits until the job's history satisfies `done`.
async fn wait_notes(
    farm: &Farm,
    id: &str,
    limit: Duration,
    done: impl Fn(&[JobEvent]) -> bool,
) -> Vec<JobEvent> {
    let started = Instant::now();
    loop {
        let notes = delivery_notes(farm, id).await;
        if done(&notes) {
            return notes;
        }
        assert!(started.elapsed() < limit, "deliveries so far: {notes:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_while_the_destination_fails_loses_no_delivery() {
    let receiver = Receiver::default();
    receiver.set_failing(true);
    let url = receiver.start().await;
    let mut farm = Farm::new(Backend::Postgres).await;
    farm.put(&valid("h264_aac.mp4"), "in/a.mp4");
    let tries = [("FFARM_DESTINATIONS__ATTEMPTS", "20")];
    let a = farm.start_process(&["--workers", "1", "--worker-id", "a/1"], &tries);
    let job = farm
        .submit("in/a.mp4", "mp4", |s| s.on_success = Some(url.clone()))
        .await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    // The first try failed and is recorded; the worker dies while waiting to try again.
    let notes = wait_notes(&farm, &job.id, Duration::from_secs(20), |n| !n.is_empty()).await;
    kill(Pid::from_raw(a as i32), Signal::SIGKILL).unwrap();
    let _ = farm.processes.pop().unwrap().wait();
    assert!(notes[0].reason.contains("failed: HTTP 503"), "{notes:?}");
    assert_eq!(notes[0].worker.as_deref(), Some("a/1"));

    receiver.set_failing(false);
    farm.start_process(&["--workers", "1", "--worker-id", "b/2"], &tries);
    let notes = wait_notes(&farm, &job.id, Duration::from_secs(60), |n| {
        n.iter().any(|e| e.reason.contains("delivered"))
    })
    .await;
    let delivered: Vec<&JobEvent> = notes
        .iter()
        .filter(|e| e.reason.contains("delivered"))
        .collect();
    assert_eq!(delivered.len(), 1, "{notes:?}");
    assert_eq!(delivered[0].worker.as_deref(), Some("b/2"), "{notes:?}");
    assert!(
        notes
            .iter()
            .all(|e| e.reason.contains("delivered") || e.worker.as_deref() == Some("a/1")),
        "every failed try was the first worker's: {notes:?}"
    );
    // What the destination saw: the job as it ended, every try under one idempotency key,
    // exactly one of them answered 200.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = receiver.hits();
    assert_eq!(
        hits.iter().filter(|h| h.answered == 200).count(),
        1,
        "{hits:?}"
    );
    assert_eq!(
        hits.len(),
        notes.len(),
        "one request per recorded try: {hits:?}"
    );
    let key = hits[0].key.clone().expect("an Idempotency-Key header");
    assert!(key.starts_with(&format!("{}:1:", job.id)), "{key}");
    assert!(hits.iter().all(|h| h.key.as_deref() == Some(key.as_str())));
    let last = &hits.last().unwrap().body;
    assert_eq!(last["id"], job.id);
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["outputs"][0]["key"], "out/a_mp4/a.mp4");
    // Nothing is left in the outbox.
    assert!(
        farm.store
            .claim_deliveries("the-test", Duration::from_secs(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ending_that_cannot_be_delivered_is_given_up_with_a_final_entry() {
    let receiver = Receiver::default();
    receiver.set_failing(true);
    let url = receiver.start().await;
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(
        &crate::helpers::malformed_dir().join("random.mp4"),
        "in/bad.mp4",
    );
    let mut config = farm.config();
    config.destinations.attempts = 3;
    // The configured dead-letter destination, filled in as the job is made: it names none.
    config.destinations.on_failure = Some(url);
    let defaults = config.destinations.clone();
    farm.start_in_process(config);
    let job = farm.submit("in/bad.mp4", "mp4", |s| defaults.fill(s)).await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Failed);
    let notes = wait_notes(&farm, &job.id, Duration::from_secs(30), |n| {
        n.iter().any(|e| e.reason.contains("gave up"))
    })
    .await;
    let reasons: Vec<&str> = notes.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(notes.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("on_failure delivery 1/3") && reasons[0].contains("HTTP 503"));
    assert!(reasons[1].contains("delivery 2/3"));
    assert!(reasons[2].contains("delivery 3/3") && reasons[2].contains("gave up, not delivered"));
    assert_eq!(notes[2].detail.as_ref().unwrap()["gave_up"], true);
    // The tries were spaced by the backoff (1 s, then 2 s).
    assert!(notes[1].at.0 - notes[0].at.0 >= 900_000, "{notes:?}");
    assert!(notes[2].at.0 - notes[1].at.0 >= 1_900_000, "{notes:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.hits().len(), 3, "no try after giving up");
    assert_eq!(receiver.hits()[0].body["status"], "failed");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draining_worker_finishes_the_delivery_in_flight() {
    let receiver = Receiver::default();
    receiver
        .delay_ms
        .store(2000, std::sync::atomic::Ordering::SeqCst);
    let url = receiver.start().await;
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/a.mp4");
    let worker = farm.start_process(&["--workers", "1", "--worker-id", "drainer/1"], &[]);
    let job = farm
        .submit("in/a.mp4", "mp4", |s| s.on_success = Some(url.clone()))
        .await;
    farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    let started = Instant::now();
    while receiver.arrived.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "no delivery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The destination is still answering: the worker is asked to stop now.
    let asked = Instant::now();
    let status = farm.signal_and_wait(worker, Signal::SIGTERM).await;
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "exited after {:?}, before the destination answered",
        asked.elapsed()
    );
    let notes = delivery_notes(&farm, &job.id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].reason.contains("delivered"), "{notes:?}");
    assert_eq!(notes[0].worker.as_deref(), Some("drainer/1"));
    farm.cleanup().await;
}
