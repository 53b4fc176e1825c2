//! The job store conformance suite: written once over `&dyn JobStore`, run against SQLite and
//! PostgreSQL (see `store_harness`). Lifecycle, leases, fencing, retries, cancel.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ffarm::job::{JobError, Outcome, OutputObject, Status, Trigger};
use ffarm::progress::{Phase, Progress};
use ffarm::store::{Change, JobStore, StoreError};

use crate::helpers::spec;
use crate::store_harness::conformance;

const LEASE: Duration = Duration::from_secs(30);

fn retryable(msg: &str) -> Outcome {
    Outcome::Failed(JobError::new("storage-timeout", msg, true))
}

/// The next job `worker` can claim, waiting for one whose backoff or requeue is due.
async fn claim_when_due(s: &dyn JobStore, worker: &str) -> ffarm::job::Job {
    loop {
        if let Some(j) = s.claim(worker, LEASE).await.unwrap() {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn submit(s: &dyn JobStore, key: &str) -> String {
    s.submit(None, spec(key)).await.unwrap().job.id
}

async fn submit_get_and_history(s: &dyn JobStore) {
    let mut sp = spec("in/a b&c é.mp4");
    sp.on_success = Some("http://127.0.0.1:9/ok".into());
    sp.overwrite = true;
    sp.chunking = ffarm::job::Chunking::Segments {
        segment_seconds: 30,
    };
    sp.media.clip = Some(ffarm::job::Clip {
        start: 1.5,
        end: Some(4.25),
    });
    sp.trigger = Some(Trigger {
        source: "oss".into(),
        payload: serde_json::json!({"events": [{"eventName": "ObjectCreated:PutObject"}]}),
    });
    let sub = s
        .submit(Some("my1-480P-mp4".into()), sp.clone())
        .await
        .unwrap();
    assert!(sub.created);
    let job = s.get("my1-480P-mp4").await.unwrap();
    assert_eq!(job, sub.job);
    assert_eq!(job.status, Status::Queued);
    assert_eq!(job.spec(), sp);
    assert_eq!(job.attempt, 0);
    assert!(job.started_at.is_none() && job.finished_at.is_none());
    let generated = s.submit(None, spec("in/x.mp4")).await.unwrap().job;
    assert_eq!(generated.id.len(), 26, "a ULID");
    let events = s.events("my1-480P-mp4").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].from, events[0].to), (None, Some(Status::Queued)));
    assert_eq!(events[0].reason, "submitted");
    assert!(matches!(
        s.get("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn idempotent_submit_and_conflicts(s: &dyn JobStore) {
    let first = s
        .submit(Some("dup".into()), spec("in/a.mp4"))
        .await
        .unwrap();
    assert!(first.created);
    // Same id, same work (the trigger payload may differ on redelivery): the same job.
    let mut again = spec("in/a.mp4");
    again.trigger = Some(Trigger {
        source: "s3".into(),
        payload: serde_json::json!({"redelivered": true}),
    });
    let second = s.submit(Some("dup".into()), again).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(second.job.created_at, first.job.created_at);
    // Same id, different work: a conflict.
    let err = s
        .submit(Some("dup".into()), spec("in/b.mp4"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdConflict { .. }), "{err}");
    assert_eq!(err.code(), "id-conflict");
    // Whether it may replace other inputs' outputs is part of the work.
    let mut replacing = spec("in/a.mp4");
    replacing.overwrite = true;
    let err = s.submit(Some("dup".into()), replacing).await.unwrap_err();
    assert!(matches!(err, StoreError::IdConflict { .. }), "{err}");
    // So is whether it may be split into parts.
    let mut unsplit = spec("in/a.mp4");
    unsplit.chunking = ffarm::job::Chunking::Off;
    let err = s.submit(Some("dup".into()), unsplit).await.unwrap_err();
    assert!(matches!(err, StoreError::IdConflict { .. }), "{err}");
    // And which part of the input it transcodes.
    let mut clipped = spec("in/a.mp4");
    clipped.media.clip = Some(ffarm::job::Clip {
        start: 0.0,
        end: Some(2.0),
    });
    let err = s.submit(Some("dup".into()), clipped).await.unwrap_err();
    assert!(matches!(err, StoreError::IdConflict { .. }), "{err}");
    for bad in ["", "has space", "../etc", &"x".repeat(129)] {
        let err = s
            .submit(Some(bad.into()), spec("in/a.mp4"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
    assert_eq!(
        s.events("dup").await.unwrap().len(),
        1,
        "no second job, no second event"
    );
}

async fn claim_order_priority_then_age(s: &dyn JobStore) {
    let low = submit(s, "in/low.mp4").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let low2 = submit(s, "in/low2.mp4").await;
    let mut hi = spec("in/high.mp4");
    hi.priority = 10;
    let high = s.submit(None, hi).await.unwrap().job.id;
    let a = s.claim("w/1", LEASE).await.unwrap().unwrap();
    let b = s.claim("w/1", LEASE).await.unwrap().unwrap();
    let c = s.claim("w/2", LEASE).await.unwrap().unwrap();
    assert_eq!([a.id, b.id, c.id.clone()], [high, low, low2]);
    assert!(s.claim("w/1", LEASE).await.unwrap().is_none());
    assert_eq!(c.status, Status::Running);
    assert_eq!(c.attempt, 1);
    assert_eq!(c.worker.as_deref(), Some("w/2"));
    let lease = c.lease_expires_at.unwrap().0 - ffarm::job::Timestamp::now().0;
    assert!(
        (29_000_000..=30_000_000).contains(&lease),
        "lease {lease} µs"
    );
    assert!(c.started_at.is_some());
}

async fn concurrent_claimers_never_share_a_job(s: &dyn JobStore) {
    let s: Arc<&dyn JobStore> = Arc::new(s);
    for round in 0..3 {
        let mut ids = HashSet::new();
        for i in 0..200 {
            ids.insert(submit(*s, &format!("in/r{round}-{i}.mp4")).await);
        }
        let claimed = futures_util::future::join_all((0..16).map(|w| {
            let s = s.clone();
            async move {
                let mut mine = Vec::new();
                while let Some(job) = s.claim(&format!("w/{w}"), LEASE).await.unwrap() {
                    mine.push(job.id.clone());
                    s.finish(&job.id, job.attempt, Outcome::Succeeded { outputs: vec![] })
                        .await
                        .unwrap();
                }
                mine
            }
        }))
        .await;
        let all: Vec<String> = claimed.into_iter().flatten().collect();
        let unique: HashSet<String> = all.iter().cloned().collect();
        assert_eq!(
            all.len(),
            unique.len(),
            "round {round}: a job was claimed twice"
        );
        assert_eq!(unique, ids, "round {round}: every job claimed once");
    }
}

fn progress(percent: f64) -> Progress {
    Progress {
        phase: Phase::Transcoding,
        percent,
        fps: Some(90.0),
        speed: Some(3.0),
        eta_seconds: Some(10.0),
        frames: 300,
        out_time_seconds: 10.0,
        ..Progress::default()
    }
}

async fn heartbeat_renews_and_carries_stop_requests(s: &dyn JobStore) {
    let id = submit(s, "in/a.mp4").await;
    let job = s
        .claim("w/1", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let hb = s
        .heartbeat(
            &id,
            job.attempt,
            Duration::from_secs(60),
            Some(&progress(42.0)),
        )
        .await
        .unwrap();
    assert!(!hb.stop_requested);
    let got = s.get(&id).await.unwrap();
    assert_eq!(got.progress.unwrap().percent, 42.0);
    assert!(got.lease_expires_at.unwrap().0 > job.lease_expires_at.unwrap().0 + 50_000_000);
    // No progress: the lease is renewed, progress kept.
    s.heartbeat(&id, job.attempt, Duration::from_secs(60), None)
        .await
        .unwrap();
    assert_eq!(s.get(&id).await.unwrap().progress.unwrap().percent, 42.0);
    let c = s.cancel(&id, "").await.unwrap();
    assert_eq!(c.status, Status::Cancelling);
    let hb = s.heartbeat(&id, job.attempt, LEASE, None).await.unwrap();
    assert!(
        hb.stop_requested,
        "a stop reaches the worker through its heartbeat"
    );
    // A wrong attempt is fenced.
    let err = s
        .heartbeat(&id, job.attempt + 1, LEASE, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert!(matches!(
        s.heartbeat("nope", 1, LEASE, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn success_records_outputs_attempt_and_history(s: &dyn JobStore) {
    let id = submit(s, "in/a.mp4").await;
    let job = s.claim("host-a/3", LEASE).await.unwrap().unwrap();
    let outputs = vec![OutputObject {
        bucket: "media".into(),
        key: "out/a.mp4".into(),
        bytes: 1234,
        check: None,
    }];
    let done = s
        .finish(
            &id,
            job.attempt,
            Outcome::Succeeded {
                outputs: outputs.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.outputs, outputs);
    assert!(done.finished_at.is_some());
    assert!(done.lease_expires_at.is_none());
    assert_eq!(done.worker.as_deref(), Some("host-a/3"));
    let events = s.events(&id).await.unwrap();
    let path: Vec<_> = events.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        path,
        [
            (None, Some(Status::Queued)),
            (Some(Status::Queued), Some(Status::Running)),
            (Some(Status::Running), Some(Status::Succeeded)),
        ]
    );
    assert_eq!(events[1].worker.as_deref(), Some("host-a/3"));
    assert_eq!(events[1].attempt, 1);
    assert_eq!(events[1].reason, "claimed by host-a/3");
    let attempts = s.attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("succeeded"));
    assert_eq!(attempts[0].worker.as_deref(), Some("host-a/3"));
    assert!(attempts[0].finished_at.is_some());
    // Terminal: a second finish is refused.
    let err = s
        .finish(&id, job.attempt, Outcome::Cancelled)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
}

async fn retries_back_off_and_stop_at_max_attempts(s: &dyn JobStore) {
    let id = submit(s, "in/a.mp4").await;
    for attempt in 1..=3u32 {
        // Backoff: not claimable at once (after the first attempt).
        let job = claim_when_due(s, "w/1").await;
        assert_eq!(job.attempt, attempt);
        let after = s
            .finish(&id, attempt, retryable("the bucket timed out"))
            .await
            .unwrap();
        if attempt < 3 {
            assert_eq!(after.status, Status::Queued, "attempt {attempt} requeued");
            // The test policy: 200 ms · 2^(n-1), times a jitter factor in [0.5, 1].
            let run_after = after.run_after.unwrap();
            let backoff = run_after.0 - after.updated_at.0;
            let least = 100_000 * 2i64.pow(attempt - 1);
            assert!(
                (least..=2 * least).contains(&backoff),
                "backoff before attempt {}: {backoff} µs",
                attempt + 1
            );
            if ffarm::job::Timestamp::now().0 + 30_000 < run_after.0 {
                assert!(
                    s.claim("w/1", LEASE).await.unwrap().is_none(),
                    "not before run_after"
                );
            }
            assert_eq!(after.error.as_ref().unwrap().code, "storage-timeout");
        } else {
            assert_eq!(after.status, Status::Failed, "attempts exhausted");
            assert!(after.finished_at.is_some());
        }
    }
    let events = s.events(&id).await.unwrap();
    assert!(
        events.last().unwrap().reason.contains("after 3 attempts"),
        "{events:?}"
    );
    assert_eq!(s.attempts(&id).await.unwrap().len(), 3);
    // A final error fails at once.
    let id = submit(s, "in/b.mp4").await;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    let failed = s
        .finish(
            &id,
            job.attempt,
            Outcome::Failed(JobError::new(
                "input-unreadable",
                "moov atom not found",
                false,
            )),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.unwrap().message, "moov atom not found");
}

async fn lease_expiry_requeues_and_fences_the_stale_worker(s: &dyn JobStore) {
    let id = submit(s, "in/a.mp4").await;
    // Long enough that a slow first claim on a busy machine still leaves it unexpired.
    let short = Duration::from_secs(1);
    let stale = s.claim("w/dead", short).await.unwrap().unwrap();
    assert!(s.reap().await.unwrap().is_empty(), "not expired yet");
    tokio::time::sleep(short + Duration::from_millis(200)).await;
    let reaped = s.reap().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].status, Status::Queued);
    assert_eq!(reaped[0].error.as_ref().unwrap().code, "worker-lost");
    let job = claim_when_due(s, "w/alive").await;
    assert_eq!(job.attempt, 2);
    // The stale worker's late writes are refused.
    for result in [
        s.heartbeat(&id, stale.attempt, LEASE, None)
            .await
            .map(|_| ()),
        s.finish(&id, stale.attempt, Outcome::Succeeded { outputs: vec![] })
            .await
            .map(|_| ()),
        s.append_logs(&id, stale.attempt, &["late".into()]).await,
    ] {
        assert!(
            matches!(
                result,
                Err(StoreError::Fenced {
                    attempt: 1,
                    current: 2,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    let done = s
        .finish(&id, 2, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    // A lost worker holding a job being cancelled: the job ends cancelled, not retried.
    let id = submit(s, "in/c.mp4").await;
    s.claim("w/dead", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    s.cancel(&id, "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.reap().await.unwrap();
    assert_eq!(s.get(&id).await.unwrap().status, Status::Cancelled);
}

async fn cancel_in_every_state(s: &dyn JobStore) {
    // queued → cancelled at once
    let q = submit(s, "in/q.mp4").await;
    let c = s.cancel(&q, "user changed their mind").await.unwrap();
    assert_eq!(c.status, Status::Cancelled);
    assert!(c.finished_at.is_some());
    assert_eq!(
        s.events(&q).await.unwrap().last().unwrap().reason,
        "user changed their mind"
    );
    assert!(
        s.claim("w/1", LEASE).await.unwrap().is_none(),
        "a cancelled job is not claimed"
    );
    // cancelled → cancel again: unchanged
    assert_eq!(s.cancel(&q, "").await.unwrap().status, Status::Cancelled);
    // running → cancelling → (worker confirms) cancelled
    let r = submit(s, "in/r.mp4").await;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    assert_eq!(s.cancel(&r, "").await.unwrap().status, Status::Cancelling);
    assert_eq!(
        s.cancel(&r, "").await.unwrap().status,
        Status::Cancelling,
        "idempotent"
    );
    let done = s.finish(&r, job.attempt, Outcome::Cancelled).await.unwrap();
    assert_eq!(done.status, Status::Cancelled);
    assert_eq!(
        s.attempts(&r).await.unwrap()[0].outcome.as_deref(),
        Some("cancelled")
    );
    // succeeded / failed → refused
    let ok = submit(s, "in/ok.mp4").await;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(&ok, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    let err = s.cancel(&ok, "").await.unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("job '{ok}': a succeeded job cannot be cancelled")
    );
    let bad = submit(s, "in/bad.mp4").await;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(
        &bad,
        job.attempt,
        Outcome::Failed(JobError::new("unsupported", "no", false)),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.cancel(&bad, "").await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert!(matches!(
        s.cancel("nope", "").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A worker's finish lands after its job moved (a stop request came in while it ran): it is
/// decided from where the job is, not from where the worker's claim left it.
async fn a_finish_after_a_stop_request_is_decided_from_the_stop(s: &dyn JobStore) {
    let id = submit(s, "in/moved.mp4").await;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.cancel(&id, "").await.unwrap();
    let end = s
        .finish(&id, job.attempt, retryable("the connection dropped"))
        .await
        .unwrap();
    assert_eq!(
        end.status,
        Status::Cancelled,
        "not retried: it was being stopped"
    );
    assert_eq!(
        s.events(&id).await.unwrap().last().unwrap().reason,
        "stopped on request (the connection dropped)"
    );
    let id = submit(s, "in/moved2.mp4").await;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.cancel(&id, "").await.unwrap();
    let end = s
        .finish(&id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    assert_eq!(end.status, Status::Succeeded);
    assert_eq!(
        s.events(&id).await.unwrap().last().unwrap().reason,
        "succeeded (the task completed before the stop landed)"
    );
    // A claim from this store, then a reap and a new claim: the first attempt's finish is
    // refused, and the second's goes through.
    let id = submit(s, "in/moved3.mp4").await;
    let stale = s
        .claim("w/1", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.reap().await.unwrap().len(), 1);
    let job = claim_when_due(s, "w/2").await;
    let late = s
        .finish(&id, stale.attempt, Outcome::Succeeded { outputs: vec![] })
        .await;
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    let end = s
        .finish(&id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    assert_eq!((end.status, end.attempt), (Status::Succeeded, 2));
}

async fn cancel_racing_finish_ends_in_exactly_one_terminal_state(s: &dyn JobStore) {
    for round in 0..30 {
        let id = submit(s, &format!("in/race{round}.mp4")).await;
        let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
        let fail = Outcome::Failed(JobError::new("input-unreadable", "broken", false));
        let (cancel, finish) =
            tokio::join!(s.cancel(&id, ""), s.finish(&id, job.attempt, fail.clone()));
        // Whichever landed second either applied on top (cancel then fail → cancelled) or was
        // refused (fail then cancel → illegal); a cancel that landed first needs the worker's
        // confirmation, which the finish just gave.
        let end = s.get(&id).await.unwrap();
        assert!(
            end.status.is_terminal(),
            "round {round}: {:?} / {:?} → {}",
            cancel.map(|j| j.status),
            finish.map(|j| j.status),
            end.status
        );
        let terminal_events = s
            .events(&id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to.is_some_and(|t| t.is_terminal()))
            .count();
        assert_eq!(
            terminal_events, 1,
            "round {round}: exactly one terminal transition"
        );
    }
}

async fn explicit_retry_opens_a_new_attempt(s: &dyn JobStore) {
    let id = submit(s, "in/a.mp4").await;
    for _ in 0..3 {
        let job = claim_when_due(s, "w/1").await;
        s.finish(&id, job.attempt, retryable("timeout"))
            .await
            .unwrap();
    }
    assert_eq!(s.get(&id).await.unwrap().status, Status::Failed);
    let again = s.retry(&id).await.unwrap();
    assert_eq!(again.status, Status::Queued);
    assert!(again.error.is_none() && again.finished_at.is_none());
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    assert_eq!(job.attempt, 4, "a new attempt");
    // A fresh set of automatic retries after the explicit one.
    let after = s.finish(&id, 4, retryable("timeout")).await.unwrap();
    assert_eq!(after.status, Status::Queued);
    // Cancelled jobs can be retried; running or succeeded ones cannot.
    let c = submit(s, "in/c.mp4").await;
    s.cancel(&c, "").await.unwrap();
    assert_eq!(s.retry(&c).await.unwrap().status, Status::Queued);
    let err = s.retry(&c).await.unwrap_err();
    assert!(
        err.to_string().contains("only failed or cancelled"),
        "{err}"
    );
}

async fn a_draining_worker_hands_back_without_counting_an_attempt(s: &dyn JobStore) {
    let mut sp = spec("in/a.mp4");
    sp.max_attempts = 1;
    let id = s.submit(None, sp).await.unwrap().job.id;
    for _ in 0..3 {
        let job = s.claim("w/draining", LEASE).await.unwrap().unwrap();
        let back = s.finish(&id, job.attempt, Outcome::Released).await.unwrap();
        assert_eq!(back.status, Status::Queued);
        assert!(
            back.run_after
                .is_none_or(|t| t <= ffarm::job::Timestamp::now()),
            "claimable at once"
        );
    }
    // The one real attempt is still available.
    let job = s.claim("w/new", LEASE).await.unwrap().unwrap();
    let failed = s
        .finish(&id, job.attempt, retryable("timeout"))
        .await
        .unwrap();
    assert_eq!(
        failed.status,
        Status::Failed,
        "max_attempts = 1 counts only the real attempt"
    );
}

async fn notifications_announce_changes(s: &dyn JobStore) {
    let mut rx = s.subscribe();
    let wait = |rx: &mut tokio::sync::broadcast::Receiver<Change>,
                want: Box<dyn Fn(&Change) -> bool + Send>| {
        let mut rx = rx.resubscribe();
        async move {
            tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    let c = rx.recv().await.unwrap();
                    if want(&c) {
                        return c;
                    }
                }
            })
            .await
            .expect("notified within a second")
        }
    };
    let queued = wait(
        &mut rx,
        Box::new(|c| {
            matches!(
                c,
                Change::Status {
                    status: Status::Queued,
                    ..
                }
            )
        }),
    );
    let id = submit(s, "in/a.mp4").await;
    match queued.await {
        Change::Status { id: got, .. } => assert_eq!(got, id),
        other => panic!("{other:?}"),
    }
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    let progress_seen = wait(&mut rx, Box::new(|c| matches!(c, Change::Progress { .. })));
    s.heartbeat(&id, job.attempt, LEASE, Some(&progress(12.5)))
        .await
        .unwrap();
    match progress_seen.await {
        Change::Progress { id: got, progress } => {
            assert_eq!(got, id);
            assert_eq!(progress.percent, 12.5);
        }
        other => panic!("{other:?}"),
    }
    let stop = wait(
        &mut rx,
        Box::new(|c| {
            matches!(
                c,
                Change::Status {
                    status: Status::Cancelling,
                    ..
                }
            )
        }),
    );
    s.cancel(&id, "").await.unwrap();
    stop.await;
}

/// A job's segment key: made by the first caller, the same for every later one (a retry's
/// attempt), kept apart from the job (never in its JSON), none for a job that never asked,
/// `NotFound` for no job.
async fn segment_keys_are_made_once_and_kept(s: &dyn JobStore) {
    let id = submit(s, "in/key.mp4").await;
    assert_eq!(s.stored_segment_key(&id).await.unwrap(), None);
    let first = s.segment_key(&id, [7; 16]).await.unwrap();
    assert_eq!(first, [7; 16]);
    let again = s.segment_key(&id, [9; 16]).await.unwrap();
    assert_eq!(again, [7; 16], "the first key stays");
    assert_eq!(s.stored_segment_key(&id).await.unwrap(), Some([7; 16]));
    let json = serde_json::to_string(&s.get(&id).await.unwrap()).unwrap();
    assert!(!json.contains("[7,7") && !json.contains("0707"), "{json}");
    let other = submit(s, "in/other.mp4").await;
    assert_eq!(s.stored_segment_key(&other).await.unwrap(), None);
    for missing in [
        s.segment_key("no-such-job", [1; 16]).await.unwrap_err(),
        s.stored_segment_key("no-such-job").await.unwrap_err(),
    ] {
        assert!(
            matches!(missing, StoreError::NotFound { .. }),
            "{missing:?}"
        );
    }
}

conformance!(
    segment_keys_are_made_once_and_kept,
    submit_get_and_history,
    idempotent_submit_and_conflicts,
    claim_order_priority_then_age,
    concurrent_claimers_never_share_a_job,
    heartbeat_renews_and_carries_stop_requests,
    success_records_outputs_attempt_and_history,
    retries_back_off_and_stop_at_max_attempts,
    lease_expiry_requeues_and_fences_the_stale_worker,
    cancel_in_every_state,
    cancel_racing_finish_ends_in_exactly_one_terminal_state,
    a_finish_after_a_stop_request_is_decided_from_the_stop,
    explicit_retry_opens_a_new_attempt,
    a_draining_worker_hands_back_without_counting_an_attempt,
    notifications_announce_changes,
);
