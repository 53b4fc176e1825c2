//! The delivery outbox on both backends: every ending of a job with somewhere to go (and only
//! such an ending) leaves one delivery holding the job as it ended; holds keep two processes from delivering at once and
//! fence a holder whose hold expired; each try is one entry in the job's history.

use std::time::Duration;

use ffarm::job::{JobError, JobSpec, Outcome, OutputObject, Status, Timestamp};
use ffarm::store::{Delivery, JobStore};

use crate::helpers::spec;
use crate::store_harness::conformance;

const LEASE: Duration = Duration::from_secs(30);
const HOLD: Duration = Duration::from_secs(30);

/// `sp` with somewhere to go either way.
fn with_destinations(sp: JobSpec) -> JobSpec {
    JobSpec {
        on_success: Some("http://hooks.example/done".into()),
        on_failure: Some("http://hooks.example/dead".into()),
        ..sp
    }
}

async fn run_to(s: &dyn JobStore, key: &str, outcome: Outcome) -> String {
    let mut sp = with_destinations(spec(key));
    sp.max_attempts = 1;
    let id = s.submit(None, sp).await.unwrap().job.id;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    s.finish(&id, job.attempt, outcome).await.unwrap();
    id
}

/// Everything due now, taken by `holder`.
async fn take(s: &dyn JobStore, holder: &str) -> Vec<Delivery> {
    s.claim_deliveries(holder, HOLD, 100).await.unwrap()
}

async fn every_ending_and_only_an_ending_leaves_one_delivery(s: &dyn JobStore) {
    assert!(take(s, "w/1").await.is_empty(), "an empty outbox");
    let outputs = vec![OutputObject {
        bucket: "media".into(),
        key: "out/a.mp4".into(),
        bytes: 42,
        check: None,
    }];
    let ok = run_to(
        s,
        "in/a.mp4",
        Outcome::Succeeded {
            outputs: outputs.clone(),
        },
    )
    .await;
    let bad = run_to(
        s,
        "in/b.mp4",
        Outcome::Failed(JobError::new("input-unreadable", "broken", false)),
    )
    .await;
    // A queued job cancelled ends too; a job still queued or running has nothing to deliver.
    let queued = s
        .submit(None, with_destinations(spec("in/c.mp4")))
        .await
        .unwrap()
        .job
        .id;
    s.cancel(&queued, "not wanted").await.unwrap();
    s.submit(None, with_destinations(spec("in/d.mp4")))
        .await
        .unwrap();
    let running = s
        .submit(None, with_destinations(spec("in/e.mp4")))
        .await
        .unwrap()
        .job
        .id;
    while let Some(j) = s.claim("w/2", LEASE).await.unwrap() {
        if j.id == running {
            break;
        }
    }
    // A retryable failure with attempts left goes back to the queue: not an ending.
    s.heartbeat(&running, 1, LEASE, None).await.unwrap();
    s.finish(
        &running,
        1,
        Outcome::Failed(JobError::new("storage-timeout", "slow", true)),
    )
    .await
    .unwrap();

    let taken = take(s, "w/1").await;
    let ids: Vec<(&str, Status)> = taken
        .iter()
        .map(|d| (d.job.id.as_str(), d.job.status))
        .collect();
    assert_eq!(
        ids,
        vec![
            (ok.as_str(), Status::Succeeded),
            (bad.as_str(), Status::Failed),
            (queued.as_str(), Status::Cancelled),
        ],
        "one delivery per ending, in the order they ended"
    );
    // Each holds the job as `get` shows it at its ending.
    assert_eq!(taken[0].job, s.get(&ok).await.unwrap());
    assert_eq!(taken[0].job.outputs, outputs);
    assert_eq!(
        taken[1].job.error.as_ref().unwrap().code,
        "input-unreadable"
    );
    assert!(taken.iter().all(|d| d.tries == 0));
    assert!(taken[0].id < taken[1].id && taken[1].id < taken[2].id);
}

/// An ending with nowhere to go (no `on_success` for a success, no `on_failure` for a failure
/// or cancellation) leaves nothing in the outbox.
async fn an_ending_with_nowhere_to_go_leaves_no_delivery(s: &dyn JobStore) {
    let mut only_failures = spec("in/f.mp4");
    only_failures.on_failure = Some("http://hooks.example/dead".into());
    only_failures.max_attempts = 1;
    s.submit(None, only_failures).await.unwrap();
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(&job.id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    let mut none = spec("in/g.mp4");
    none.max_attempts = 1;
    s.submit(None, none).await.unwrap();
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(
        &job.id,
        job.attempt,
        Outcome::Failed(JobError::new("input-unreadable", "broken", false)),
    )
    .await
    .unwrap();
    let quiet = spec("in/h.mp4");
    let quiet = s.submit(None, quiet).await.unwrap().job.id;
    s.cancel(&quiet, "not wanted").await.unwrap();
    assert!(take(s, "w/1").await.is_empty(), "nothing to deliver");
    // The same job with an on_failure URL, failing: one delivery.
    let failing = run_to(
        s,
        "in/i.mp4",
        Outcome::Failed(JobError::new("input-unreadable", "broken", false)),
    )
    .await;
    let taken = take(s, "w/1").await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].job.id, failing);
}

async fn a_hold_keeps_others_off_and_fences_its_holder_once_expired(s: &dyn JobStore) {
    let id = run_to(s, "in/a.mp4", Outcome::Succeeded { outputs: vec![] }).await;
    let short = Duration::from_millis(300);
    let mine = s.claim_deliveries("w/1", short, 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        take(s, "w/2").await.is_empty(),
        "held: nobody else takes it meanwhile"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let theirs = take(s, "w/2").await;
    assert_eq!(
        theirs.len(),
        1,
        "the hold expired: another process takes it"
    );
    assert_eq!(theirs[0].id, mine[0].id);
    // The first holder's late record is refused and records nothing.
    let err = s
        .record_delivery(
            mine[0].id,
            "w/1",
            None,
            Some(("late".into(), serde_json::json!({}))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "illegal-transition", "{err}");
    let notes = |events: Vec<ffarm::store::JobEvent>| {
        events
            .into_iter()
            .filter(|e| e.kind == "delivery")
            .collect::<Vec<_>>()
    };
    assert!(notes(s.events(&id).await.unwrap()).is_empty());
    s.record_delivery(
        theirs[0].id,
        "w/2",
        None,
        Some(("on_success delivered".into(), serde_json::json!({"n": 1}))),
    )
    .await
    .unwrap();
    let noted = notes(s.events(&id).await.unwrap());
    assert_eq!(noted.len(), 1);
    assert_eq!(noted[0].reason, "on_success delivered");
    assert_eq!(
        noted[0].worker.as_deref(),
        Some("w/2"),
        "by whoever delivered"
    );
    assert_eq!(noted[0].attempt, 1);
    assert_eq!(noted[0].detail, Some(serde_json::json!({"n": 1})));
    assert!(take(s, "w/3").await.is_empty(), "delivered: gone");
}

async fn a_try_schedules_the_next_and_counts(s: &dyn JobStore) {
    let id = run_to(
        s,
        "in/a.mp4",
        Outcome::Failed(JobError::new("input-unreadable", "broken", false)),
    )
    .await;
    let d = take(s, "w/1").await.remove(0);
    let next = Timestamp::now().plus(Duration::from_millis(500));
    s.record_delivery(
        d.id,
        "w/1",
        Some(next),
        Some(("try 1 failed".into(), serde_json::json!({}))),
    )
    .await
    .unwrap();
    assert!(
        take(s, "w/1").await.is_empty(),
        "not before its next try, even for the same holder"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = take(s, "w/2").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].tries, 1);
    assert_eq!(again[0].id, d.id, "the same delivery");
    // Dropped without a note (nowhere to deliver): gone, and the history has the one try.
    s.record_delivery(again[0].id, "w/2", None, None)
        .await
        .unwrap();
    assert!(take(s, "w/2").await.is_empty());
    let tries: Vec<String> = s
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "delivery")
        .map(|e| e.reason)
        .collect();
    assert_eq!(tries, vec!["try 1 failed".to_string()]);
}

async fn a_delivery_keeps_its_ending_when_the_job_moves_on(s: &dyn JobStore) {
    let id = run_to(
        s,
        "in/a.mp4",
        Outcome::Failed(JobError::new("input-unreadable", "broken", false)),
    )
    .await;
    s.retry(&id).await.unwrap();
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(&id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    let taken = take(s, "w/1").await;
    let endings: Vec<(Status, u32)> = taken
        .iter()
        .map(|d| (d.job.status, d.job.attempt))
        .collect();
    assert_eq!(
        endings,
        vec![(Status::Failed, 1), (Status::Succeeded, 2)],
        "the failure is still delivered as the failure it was"
    );
    assert_eq!(
        taken[0].job.error.as_ref().map(|e| e.code.as_str()),
        Some("input-unreadable")
    );
}

async fn concurrent_couriers_never_share_a_delivery(s: &dyn JobStore) {
    for i in 0..20 {
        run_to(
            s,
            &format!("in/{i}.mp4"),
            Outcome::Succeeded { outputs: vec![] },
        )
        .await;
    }
    let holders: Vec<String> = (0..20).map(|w| format!("w/{}", w % 4)).collect();
    let claims = holders.iter().map(|h| s.claim_deliveries(h, HOLD, 3));
    let mut ids: Vec<i64> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .map(|d| d.id)
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a delivery was taken twice");
    assert_eq!(n, 20);
}

conformance!(
    every_ending_and_only_an_ending_leaves_one_delivery,
    an_ending_with_nowhere_to_go_leaves_no_delivery,
    a_hold_keeps_others_off_and_fences_its_holder_once_expired,
    a_try_schedules_the_next_and_counts,
    a_delivery_keeps_its_ending_when_the_job_moves_on,
    concurrent_couriers_never_share_a_delivery,
);
