//! Split jobs over both backends: a split queues the parts with the assembly waiting on the
//! others; claims go by job then seq and keep to max_parallel; part reports are fenced by the
//! part's attempt; part failures retry with backoff or fail the job and stop its other parts;
//! a lost part is reaped alone; cancel and retry cover split jobs (a retry keeps the finished
//! parts of an unchanged input); the job's progress is aggregated from its parts and
//! announced; bad input gets a clear error. The helpers serve `store_parts_farm` too.

use std::time::Duration;

use ffarm::job::{
    Job, JobError, JobSpec, OutputObject, PartKind, PartOutcome, PartPlan, Scratch, SplitPlan,
    Status, Timestamp,
};
use ffarm::progress::Progress;
use ffarm::store::{ClaimedPart, JobStore, Reservation, StoreError, WorkerInfo};

use crate::helpers::spec;
use crate::store_harness::conformance;

pub(crate) const LEASE: Duration = Duration::from_secs(30);
pub(crate) const SECOND: i64 = 1_000_000;

/// A job on `key` claimed by "planner", `tweak`ed first (ahead of anything backing off).
pub(crate) async fn running(s: &dyn JobStore, key: &str, tweak: impl FnOnce(&mut JobSpec)) -> Job {
    let mut sp = spec(key);
    sp.priority = 10;
    tweak(&mut sp);
    let id = s.submit(None, sp).await.unwrap().job.id;
    for _ in 0..200 {
        if let Some(job) = s.claim("planner", LEASE).await.unwrap() {
            assert_eq!(job.id, id, "the job under test is claimed first");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} was never claimable");
}

/// A plan of video parts over `ranges` (seconds), an audio part if asked, and the assembly
/// after every other part.
pub(crate) fn plan(job: &Job, ranges: &[(i64, i64)], audio: bool, max_parallel: u32) -> SplitPlan {
    let end = ranges.last().map_or(0, |r| r.1) * SECOND;
    let mut parts: Vec<PartPlan> = ranges
        .iter()
        .zip(0..)
        .map(|(r, seq)| part(seq, PartKind::Video, r.0 * SECOND, r.1 * SECOND, vec![]))
        .collect();
    let n = parts.len() as u32;
    if audio {
        parts.push(part(n, PartKind::Audio, 0, end, vec![]));
    }
    let others = (0..parts.len() as u32).collect();
    parts.push(part(parts.len() as u32, PartKind::Assemble, 0, end, others));
    SplitPlan {
        parts,
        scratch: Scratch::of("media", &job.id),
        input_version: "etag-1".into(),
        max_parallel,
        detail: serde_json::json!({"duration_us": end}),
    }
}

fn part(seq: u32, kind: PartKind, start_us: i64, end_us: i64, after: Vec<u32>) -> PartPlan {
    PartPlan {
        seq,
        kind,
        start_us,
        end_us,
        after,
    }
}

/// `n` video parts of 10 s each (no audio).
pub(crate) fn tens(n: i64) -> Vec<(i64, i64)> {
    (0..n).map(|i| (i * 10, i * 10 + 10)).collect()
}

/// A running job split into `ranges` video parts and an assembly.
pub(crate) async fn split_job(s: &dyn JobStore, key: &str, ranges: &[(i64, i64)], max: u32) -> Job {
    let job = running(s, key, |_| {}).await;
    s.split(&job.id, job.attempt, &plan(&job, ranges, false, max))
        .await
        .unwrap()
}

pub(crate) async fn claim(s: &dyn JobStore, worker: &str) -> ClaimedPart {
    claim_within(s, worker, LEASE, Duration::from_secs(5)).await
}

/// Claims a part, waiting out a backoff for up to `wait`.
pub(crate) async fn claim_within(
    s: &dyn JobStore,
    w: &str,
    lease: Duration,
    wait: Duration,
) -> ClaimedPart {
    let until = std::time::Instant::now() + wait;
    loop {
        if let Some(c) = s.claim_part(w, lease).await.unwrap() {
            return c;
        }
        assert!(std::time::Instant::now() < until, "no part to claim");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn succeed(s: &dyn JobStore, c: &ClaimedPart, outputs: Vec<OutputObject>) -> Job {
    let result = serde_json::json!({"made": format!("parts/{}/", c.part.seq)});
    let outcome = PartOutcome::Succeeded { result, outputs };
    s.finish_part(&c.job.id, c.part.seq, c.part.attempt, outcome)
        .await
        .unwrap()
}

pub(crate) async fn fail(s: &dyn JobStore, c: &ClaimedPart, retryable: bool) -> Job {
    let e = JobError::new("encode-failed", "the encoder gave up", retryable);
    s.finish_part(
        &c.job.id,
        c.part.seq,
        c.part.attempt,
        PartOutcome::Failed(e),
    )
    .await
    .unwrap()
}

/// The parts' (status, attempt) by seq, as the job shows them.
async fn states(s: &dyn JobStore, id: &str) -> Vec<(Status, u32)> {
    let job = s.get(id).await.unwrap();
    job.parts.iter().map(|p| (p.status, p.attempt)).collect()
}

#[track_caller]
fn fenced<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Fenced { .. })), "{r:?}");
}

async fn split_queues_parts_with_the_assembly_waiting(s: &dyn JobStore) {
    let job = running(s, "a.mp4", |_| {}).await;
    let p = plan(&job, &tens(3), true, 0);
    let split = s.split(&job.id, job.attempt, &p).await.unwrap();
    assert_eq!(split.status, Status::Running);
    assert_eq!(
        (split.worker.as_deref(), split.lease_expires_at),
        (None, None)
    );
    assert_eq!(split.parts.len(), 5);
    assert!(split.parts.iter().all(|p| p.status == Status::Queued));
    assert_eq!(split.parts[1].start_seconds, 10.0);
    assert_eq!(s.split_plan(&job.id).await.unwrap(), Some(p.clone()));
    assert_eq!(s.get(&job.id).await.unwrap().parts, split.parts);
    // The planning attempt no longer holds the job: its parts do.
    fenced(s.heartbeat(&job.id, job.attempt, LEASE, None).await);
    let whole = ffarm::job::Outcome::Succeeded { outputs: vec![] };
    fenced(s.finish(&job.id, job.attempt, whole).await);
    fenced(s.split(&job.id, job.attempt, &p).await);
    // The audio, one piece as long as the input, goes first; then the video parts in order.
    assert_eq!(claim(s, "w0").await.part.kind, PartKind::Audio);
    let claimed = [claim(s, "w1").await, claim(s, "w2").await];
    assert_eq!(
        claimed.iter().map(|c| c.part.seq).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(
        (claimed[0].plan.clone(), claimed[0].job.id.clone()),
        (p, job.id.clone())
    );
    assert_eq!(
        (claimed[0].part.attempt, claimed[0].part.job_attempt),
        (1, job.attempt)
    );
    assert_eq!(claim(s, "w3").await.part.seq, 2);
    assert!(
        s.claim_part("w5", LEASE).await.unwrap().is_none(),
        "assembly waits"
    );
    let events = s.events(&job.id).await.unwrap();
    let notes: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "part")
        .map(|e| e.reason.as_str())
        .collect();
    assert!(notes[0].contains("split into 5 parts"), "{notes:?}");
    assert!(
        notes[1].contains("part 3 (audio): attempt 1 claimed by w0"),
        "{notes:?}"
    );
}

async fn claims_go_by_job_then_seq_and_keep_to_max_parallel(s: &dyn JobStore) {
    let low = split_job(s, "low.mp4", &tens(4), 2).await;
    let mut hi = spec("high.mp4");
    hi.priority = 20;
    s.submit(None, hi).await.unwrap();
    let hi = s.claim("planner", LEASE).await.unwrap().unwrap();
    s.split(&hi.id, hi.attempt, &plan(&hi, &tens(1), false, 0))
        .await
        .unwrap();
    assert_eq!(claim(s, "w").await.job.id, hi.id, "higher priority first");
    let a = claim(s, "w").await;
    let b = claim(s, "w").await;
    assert_eq!(
        (a.job.id.as_str(), a.part.seq, b.part.seq),
        (low.id.as_str(), 0, 1)
    );
    assert!(
        s.claim_part("w", LEASE).await.unwrap().is_none(),
        "max_parallel 2"
    );
    assert_eq!(
        s.capacity().await.unwrap().queued_parts,
        2,
        "not max_parallel"
    );
    succeed(s, &a, vec![]).await;
    assert_eq!(claim(s, "w").await.part.seq, 2);
}

async fn part_reports_are_fenced_by_the_part_attempt(s: &dyn JobStore) {
    let job = split_job(s, "f.mp4", &tens(1), 0).await;
    let c = claim(s, "w1").await;
    fenced(s.heartbeat_part(&job.id, 0, 2, LEASE, None).await);
    let released = s
        .finish_part(&job.id, 0, 1, PartOutcome::Released)
        .await
        .unwrap();
    assert_eq!(released.parts[0].status, Status::Queued);
    let again = claim(s, "w2").await;
    assert_eq!(again.part.attempt, 2);
    fenced(
        s.heartbeat_part(&job.id, 0, c.part.attempt, LEASE, None)
            .await,
    );
    fenced(s.finish_part(&job.id, 0, 1, PartOutcome::Cancelled).await);
    let beat = s.heartbeat_part(&job.id, 0, 2, LEASE, None).await.unwrap();
    assert!(!beat.stop_requested);
    let missing = s.heartbeat_part(&job.id, 9, 1, LEASE, None).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

async fn the_assembly_runs_last_and_ends_the_job(s: &dyn JobStore) {
    let job = running(s, "d.mp4", |sp| {
        sp.on_success = Some("https://hooks.example/done".into())
    })
    .await;
    s.split(&job.id, job.attempt, &plan(&job, &tens(2), true, 0))
        .await
        .unwrap();
    let parts = [
        claim(s, "w").await,
        claim(s, "w").await,
        claim(s, "w").await,
    ];
    register(s, "w", 2, false).await;
    let running = &s.workers().await.unwrap()[0].running;
    assert_eq!(
        running,
        &[
            format!("{}#0", job.id),
            format!("{}#1", job.id),
            format!("{}#2", job.id)
        ]
    );
    for c in &parts[..2] {
        succeed(s, c, vec![]).await;
        assert!(s.claim_part("w", LEASE).await.unwrap().is_none());
    }
    succeed(s, &parts[2], vec![]).await;
    let assembly = claim(s, "w").await;
    assert_eq!(
        (assembly.part.seq, assembly.part.kind),
        (3, PartKind::Assemble)
    );
    let made = s.parts(&job.id).await.unwrap();
    assert_eq!(
        made[1].result,
        Some(serde_json::json!({"made": "parts/1/"}))
    );
    let key = vec!["out/d.mp4".to_string()];
    let r = s
        .reserve_outputs(&job.id, assembly.part.job_attempt, &key)
        .await;
    assert!(matches!(r, Ok(Reservation::Reserved)), "{r:?}");
    let out = OutputObject {
        bucket: "media".into(),
        key: key[0].clone(),
        bytes: 42,
        check: None,
    };
    let done = succeed(s, &assembly, vec![out.clone()]).await;
    assert_eq!(
        (done.status, done.outputs.clone()),
        (Status::Succeeded, vec![out])
    );
    assert!(done.finished_at.is_some());
    let deliveries = s.claim_deliveries("d", LEASE, 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].job.status, Status::Succeeded);
}

pub(crate) async fn register(s: &dyn JobStore, id: &str, slots: u32, draining: bool) {
    let now = Timestamp::now();
    let w = WorkerInfo {
        id: id.into(),
        host: "h".into(),
        address: None,
        slots,
        version: "t".into(),
        started_at: now,
        last_seen: now,
        draining,
        running: vec![],
        sandbox: None,
    };
    s.register_worker(&w).await.unwrap();
}

async fn a_retryable_part_failure_runs_again_after_backoff(s: &dyn JobStore) {
    let job = split_job(s, "r.mp4", &tens(1), 0).await;
    let c = claim(s, "w").await;
    let after = fail(s, &c, true).await;
    assert_eq!(after.status, Status::Running);
    assert_eq!(after.parts[0].status, Status::Queued);
    assert!(
        s.claim_part("w", LEASE).await.unwrap().is_none(),
        "backing off"
    );
    let again = claim(s, "w").await;
    assert_eq!((again.part.seq, again.part.attempt), (0, 2));
    let notes = s.events(&job.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|e| e.kind == "part" && e.reason.contains("retrying"))
    );
}

async fn a_final_part_failure_fails_the_job_and_stops_the_others(s: &dyn JobStore) {
    let job = split_job(s, "x.mp4", &tens(3), 0).await;
    let (a, b) = (claim(s, "w1").await, claim(s, "w2").await);
    let failed = fail(s, &a, false).await;
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.unwrap();
    assert!(error.message.starts_with("part 0: "), "{error:?}");
    assert_eq!(
        states(s, &job.id).await,
        [
            (Status::Failed, 1),
            (Status::Cancelling, 1),
            (Status::Cancelled, 0),
            (Status::Cancelled, 0)
        ]
    );
    assert!(
        s.heartbeat_part(&job.id, 1, 1, LEASE, None)
            .await
            .unwrap()
            .stop_requested
    );
    let stopped = s
        .finish_part(&job.id, 1, b.part.attempt, PartOutcome::Cancelled)
        .await;
    assert_eq!(stopped.unwrap().status, Status::Failed);
    // Attempts exhausted: a retryable failure of the last one fails the job too.
    let once = running(s, "y.mp4", |sp| sp.max_attempts = 1).await;
    s.split(&once.id, once.attempt, &plan(&once, &tens(1), false, 0))
        .await
        .unwrap();
    let last = fail(s, &claim(s, "w").await, true).await;
    assert_eq!(last.status, Status::Failed);
    assert!(last.error.unwrap().message.starts_with("part 0: "));
}

async fn a_lost_part_is_reaped_alone(s: &dyn JobStore) {
    let job = split_job(s, "l.mp4", &tens(2), 0).await;
    let lost = claim_within(s, "gone", Duration::from_millis(50), Duration::ZERO).await;
    let kept = claim(s, "alive").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.reap().await.unwrap();
    assert_eq!(
        states(s, &job.id).await,
        [
            (Status::Queued, 1),
            (Status::Running, 1),
            (Status::Queued, 0)
        ]
    );
    assert_eq!(
        s.get(&job.id).await.unwrap().status,
        Status::Running,
        "never reaped"
    );
    let again = claim(s, "w").await;
    assert_eq!((again.part.seq, again.part.attempt), (lost.part.seq, 2));
    assert_eq!(
        s.parts(&job.id).await.unwrap()[kept.part.seq as usize].attempt,
        1
    );
    let notes = s.events(&job.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|e| e.reason.contains("stopped renewing the part's lease"))
    );
}

async fn cancel_stops_the_parts(s: &dyn JobStore) {
    let idle = split_job(s, "c1.mp4", &tens(2), 0).await;
    let cancelled = s.cancel(&idle.id, "").await.unwrap();
    assert_eq!(
        cancelled.status,
        Status::Cancelled,
        "no part running: at once"
    );
    assert!(
        states(s, &idle.id)
            .await
            .iter()
            .all(|p| p.0 == Status::Cancelled)
    );
    let busy = split_job(s, "c2.mp4", &tens(3), 0).await;
    let (a, b) = (claim(s, "w1").await, claim(s, "w2").await);
    assert_eq!(
        s.cancel(&busy.id, "").await.unwrap().status,
        Status::Cancelling
    );
    assert!(s.claim_part("w3", LEASE).await.unwrap().is_none());
    assert!(
        s.heartbeat_part(&busy.id, 0, 1, LEASE, None)
            .await
            .unwrap()
            .stop_requested
    );
    let one = s
        .finish_part(&busy.id, a.part.seq, 1, PartOutcome::Cancelled)
        .await
        .unwrap();
    assert_eq!(one.status, Status::Cancelling);
    assert!(
        s.scratch_due(Duration::ZERO, 10)
            .await
            .unwrap()
            .iter()
            .all(|d| d.0 != busy.id)
    );
    let last = s
        .finish_part(&busy.id, b.part.seq, 1, PartOutcome::Cancelled)
        .await
        .unwrap();
    assert_eq!(last.status, Status::Cancelled);
    let due: Vec<String> = s
        .scratch_due(Duration::from_secs(3600), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(due, [idle.id.clone(), busy.id.clone()]);
}

/// Fails split job `job` (split by `version`) through part `seq` after the others before it
/// succeeded.
pub(crate) async fn fail_at(
    s: &dyn JobStore,
    job: &Job,
    version: &str,
    ranges: usize,
    seq: u32,
) -> Job {
    let mut p = plan(job, &tens(ranges as i64), false, 0);
    p.input_version = version.into();
    s.split(&job.id, job.attempt, &p).await.unwrap();
    for _ in 0..seq {
        let c = claim(s, "w").await;
        succeed(s, &c, vec![]).await;
    }
    fail(s, &claim(s, "w").await, false).await
}

async fn a_retry_keeps_finished_parts_of_an_unchanged_input(s: &dyn JobStore) {
    let job = running(s, "re.mp4", |_| {}).await;
    assert_eq!(fail_at(s, &job, "v1", 3, 2).await.status, Status::Failed);
    s.retry(&job.id).await.unwrap();
    let job = s.claim("planner", LEASE).await.unwrap().unwrap();
    assert_eq!(job.attempt, 2);
    let failed = fail_at(s, &job, "v1", 3, 0).await;
    assert_eq!(
        states(s, &job.id).await,
        [
            (Status::Succeeded, 1),
            (Status::Succeeded, 1),
            (Status::Failed, 2),
            (Status::Cancelled, 0)
        ],
        "the finished parts kept, the failed one ran as its attempt 2: {failed:?}"
    );
    s.retry(&job.id).await.unwrap();
    let job = s.claim("planner", LEASE).await.unwrap().unwrap();
    let p = SplitPlan {
        input_version: "v2".into(),
        ..plan(&job, &tens(3), false, 0)
    };
    let replaced = s.split(&job.id, job.attempt, &p).await.unwrap();
    assert!(
        replaced.parts.iter().all(|p| p.status == Status::Queued),
        "{replaced:?}"
    );
    let c = claim(s, "w").await;
    assert_eq!(
        (c.part.seq, c.part.attempt),
        (0, 2),
        "attempt numbers never repeat"
    );
}

async fn job_progress_is_aggregated_from_the_parts(s: &dyn JobStore) {
    let job = split_job(s, "p.mp4", &[(0, 10), (10, 40)], 0).await;
    let (a, b) = (claim(s, "w").await, claim(s, "w").await);
    let at = |percent, speed| Progress {
        percent,
        speed: Some(speed),
        fps: Some(25.0 * speed),
        ..Progress::default()
    };
    let mut changes = s.subscribe();
    s.heartbeat_part(&job.id, 0, a.part.attempt, LEASE, Some(&at(50.0, 2.0)))
        .await
        .unwrap();
    s.heartbeat_part(&job.id, 1, b.part.attempt, LEASE, Some(&at(10.0, 1.0)))
        .await
        .unwrap();
    let p = s.get(&job.id).await.unwrap().progress.unwrap();
    assert!((p.percent - 20.0).abs() < 1e-9, "5 s + 3 s of 40: {p:?}");
    assert_eq!((p.speed, p.fps), (Some(3.0), Some(75.0)));
    assert!((p.eta_seconds.unwrap() - 32.0 / 3.0).abs() < 1e-9);
    succeed(s, &a, vec![]).await;
    let p = s.get(&job.id).await.unwrap().progress.unwrap();
    assert!((p.percent - 32.5).abs() < 1e-9, "10 s + 3 s of 40: {p:?}");
    assert_eq!(p.speed, Some(1.0));
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(ffarm::store::Change::Progress { id, .. }) = changes.recv().await
                && id == job.id
            {
                return;
            }
        }
    });
    seen.await.expect("the job's progress is announced");
    let parts = tokio::time::timeout(Duration::from_secs(5), async {
        while changes.recv().await != Ok(ffarm::store::Change::Parts { id: job.id.clone() }) {}
    });
    parts.await.expect("the part's end is announced");
}

async fn bad_input_gets_a_clear_error(s: &dyn JobStore) {
    let queued = s.submit(None, spec("q.mp4")).await.unwrap().job;
    let p = plan(&queued, &tens(2), false, 0);
    let e = s.split(&queued.id, 0, &p).await.unwrap_err();
    assert!(
        e.to_string().contains("a queued job cannot be split"),
        "{e}"
    );
    let job = running(s, "b.mp4", |_| {}).await;
    fenced(
        s.split(&job.id, job.attempt + 1, &plan(&job, &tens(2), false, 0))
            .await,
    );
    let invalid = |mut p: SplitPlan, edit: fn(&mut SplitPlan)| {
        edit(&mut p);
        p
    };
    let base = plan(&job, &tens(2), false, 0);
    for (bad, says) in [
        (
            invalid(base.clone(), |p| p.parts.clear()),
            "at least one part",
        ),
        (
            invalid(base.clone(), |p| p.parts[1].start_us = 5 * SECOND),
            "overlap",
        ),
        (
            invalid(base.clone(), |p| p.parts[2].after.push(7)),
            "part 7",
        ),
        (
            invalid(base.clone(), |p| p.scratch.prefix = "out/".into()),
            "not the job's own",
        ),
    ] {
        let e = s.split(&job.id, job.attempt, &bad).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(_)) && e.to_string().contains(says),
            "{e}"
        );
    }
    let e = s.split("no-such-job", 1, &base).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    s.split(&job.id, job.attempt, &base).await.unwrap();
    let e = s
        .finish_part(&job.id, 9, 1, PartOutcome::Cancelled)
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&format!("{}#9", job.id)), "{e}");
    fenced(s.finish_part(&job.id, 0, 1, PartOutcome::Cancelled).await);
}

conformance!(
    split_queues_parts_with_the_assembly_waiting,
    claims_go_by_job_then_seq_and_keep_to_max_parallel,
    part_reports_are_fenced_by_the_part_attempt,
    the_assembly_runs_last_and_ends_the_job,
    a_retryable_part_failure_runs_again_after_backoff,
    a_final_part_failure_fails_the_job_and_stops_the_others,
    a_lost_part_is_reaped_alone,
    cancel_stops_the_parts,
    a_retry_keeps_finished_parts_of_an_unchanged_input,
    job_progress_is_aggregated_from_the_parts,
    bad_input_gets_a_clear_error,
);
