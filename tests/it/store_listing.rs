//! The job store conformance suite, continued: listing with filters and cursors, counts,
//! logs bounded per attempt, attempt measurements, the workers registry (with each worker's
//! sandbox level).

use std::collections::HashSet;
use std::time::Duration;

use ffarm::job::{JobError, Outcome, Status, Timestamp};
use ffarm::sandbox::{Level, Limits};
use ffarm::store::{
    AttemptStats, JobStore, ListFilter, MAX_LOG_BYTES_PER_ATTEMPT, MAX_LOG_LINE_BYTES,
    MAX_LOG_LINES_PER_ATTEMPT, StoreError, TimeField, WorkerInfo,
};

use crate::helpers::spec;
use crate::store_harness::conformance;

const LEASE: Duration = Duration::from_secs(30);

async fn pagination_returns_every_job_exactly_once(s: &dyn JobStore) {
    let mut want = HashSet::new();
    for i in 0..2500 {
        let mut sp = spec(&format!("in/{:04}.mp4", i));
        if i % 5 == 0 {
            sp.preset = "hls-abr".into();
        }
        want.insert(s.submit(None, sp).await.unwrap().job.id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s
            .list(&ListFilter::default(), 100, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.jobs.len() <= 100);
        seen.extend(page.jobs.iter().map(|j| (j.created_at, j.id.clone())));
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 25);
    let ids: HashSet<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(seen.len(), 2500, "no job twice");
    assert_eq!(ids, want, "every job");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, in a stable order"
    );
    // Filters.
    let f = ListFilter {
        preset: Some("hls-abr".into()),
        ..ListFilter::default()
    };
    let page = s.list(&f, 1000, None).await.unwrap();
    assert_eq!(page.jobs.len(), 500);
    assert!(page.jobs.iter().all(|j| j.preset == "hls-abr"));
    let f = ListFilter {
        key_prefix: Some("in/01".into()),
        bucket: Some("media".into()),
        ..ListFilter::default()
    };
    assert_eq!(s.list(&f, 1000, None).await.unwrap().jobs.len(), 100);
    let f = ListFilter {
        bucket: Some("other".into()),
        ..ListFilter::default()
    };
    assert!(s.list(&f, 10, None).await.unwrap().jobs.is_empty());
    let f = ListFilter {
        search: Some("IN/0042".into()),
        ..ListFilter::default()
    };
    let found = s.list(&f, 10, None).await.unwrap().jobs;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].input.key, "in/0042.mp4");
    // A wildcard in the search is a literal.
    let f = ListFilter {
        search: Some("%".into()),
        ..ListFilter::default()
    };
    assert!(s.list(&f, 10, None).await.unwrap().jobs.is_empty());
    assert!(matches!(
        s.list(&ListFilter::default(), 10, Some("garbage")).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn status_and_time_window_filters_and_counts(s: &dyn JobStore) {
    let before = Timestamp::now();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            s.submit(None, spec(&format!("in/{i}.mp4")))
                .await
                .unwrap()
                .job
                .id,
        );
    }
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(&job.id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.finish(
        &job.id,
        job.attempt,
        Outcome::Failed(JobError::new("unsupported", "x", false)),
    )
    .await
    .unwrap();
    let running = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.cancel(&ids[5], "").await.unwrap();
    let counts = s.counts(&ListFilter::default()).await.unwrap();
    assert_eq!(counts[&Status::Queued], 2);
    assert_eq!(counts[&Status::Running], 1);
    assert_eq!(counts[&Status::Succeeded], 1);
    assert_eq!(counts[&Status::Failed], 1);
    assert_eq!(counts[&Status::Cancelled], 1);
    assert_eq!(counts[&Status::Cancelling], 0);
    let f = ListFilter {
        statuses: vec![Status::Succeeded, Status::Failed],
        ..ListFilter::default()
    };
    let done = s.list(&f, 50, None).await.unwrap().jobs;
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|j| j.status.is_terminal()));
    // Time windows on created, started and finished.
    let window = |field, since: Timestamp, until: Option<Timestamp>| ListFilter {
        time_field: field,
        since: Some(since),
        until,
        ..ListFilter::default()
    };
    assert_eq!(
        s.list(&window(TimeField::Created, before, None), 50, None)
            .await
            .unwrap()
            .jobs
            .len(),
        6
    );
    let future = Timestamp::now().plus(Duration::from_secs(3600));
    assert!(
        s.list(&window(TimeField::Created, future, None), 50, None)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    assert!(
        s.list(&window(TimeField::Created, before, Some(before)), 50, None)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    assert_eq!(
        s.list(&window(TimeField::Started, before, None), 50, None)
            .await
            .unwrap()
            .jobs
            .len(),
        3
    );
    // Finished: succeeded, failed, and the queued job cancelled at once.
    assert_eq!(
        s.list(&window(TimeField::Finished, before, None), 50, None)
            .await
            .unwrap()
            .jobs
            .len(),
        3
    );
    let counts = s
        .counts(&window(TimeField::Started, before, None))
        .await
        .unwrap();
    assert_eq!(counts.values().sum::<u64>(), 3);
    assert_eq!(counts[&Status::Running], 1);
    let _ = running;
}

async fn logs_are_kept_per_attempt_and_bounded(s: &dyn JobStore) {
    let id = s.submit(None, spec("in/a.mp4")).await.unwrap().job.id;
    assert!(matches!(
        s.append_logs(&id, 1, &["early".into()]).await,
        Err(StoreError::Fenced { .. })
    ));
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    s.append_logs(&id, 1, &["first line".into(), "second line ☃".into()])
        .await
        .unwrap();
    let long = "x".repeat(10_000);
    s.append_logs(&id, 1, &[long]).await.unwrap();
    let lines = s.logs(&id, Some(1), 0, 100).await.unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1].line, "second line ☃");
    assert_eq!(lines[2].line.len(), 4096, "a very long line is cut");
    // Reading after a sequence number: only newer lines (a tail -f).
    let newer = s.logs(&id, None, lines[0].seq, 100).await.unwrap();
    assert_eq!(newer.len(), 2);
    // A chatty job cannot fill the disk.
    let chunk: Vec<String> = (0..5000).map(|i| format!("frame {i}")).collect();
    for _ in 0..5 {
        s.append_logs(&id, 1, &chunk).await.unwrap();
    }
    let attempt = &s.attempts(&id).await.unwrap()[0];
    assert_eq!(attempt.log_lines, MAX_LOG_LINES_PER_ATTEMPT);
    assert_eq!(attempt.log_dropped, 3 + 25_000 - MAX_LOG_LINES_PER_ATTEMPT);
    let first = s.logs(&id, Some(1), 0, 20_000).await.unwrap();
    assert_eq!(first.len(), 10_000, "pages of at most 10,000");
    let mut all = first;
    loop {
        let more = s
            .logs(&id, Some(1), all.last().unwrap().seq, 10_000)
            .await
            .unwrap();
        if more.is_empty() {
            break;
        }
        all.extend(more);
    }
    assert_eq!(
        all.len() as u32,
        MAX_LOG_LINES_PER_ATTEMPT + 1,
        "the kept lines and one notice"
    );
    assert!(all.last().unwrap().line.contains("log limit reached"));
    // The next attempt starts a fresh budget.
    s.finish(
        &id,
        job.attempt,
        Outcome::Failed(JobError::new("storage-timeout", "t", true)),
    )
    .await
    .unwrap();
    let job = loop {
        if let Some(j) = s.claim("w/1", LEASE).await.unwrap() {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    s.append_logs(&id, job.attempt, &["attempt two".into()])
        .await
        .unwrap();
    let two = s.logs(&id, Some(2), 0, 10).await.unwrap();
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].attempt, 2);
}

/// Long lines reach the byte budget long before the line budget: what is kept stops at
/// 4 MiB, to the line, and the rest is counted and dropped with one notice.
async fn logs_are_bounded_in_bytes_per_attempt(s: &dyn JobStore) {
    let id = s.submit(None, spec("in/a.mp4")).await.unwrap().job.id;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    let full = "b".repeat(MAX_LOG_LINE_BYTES);
    // 4 MiB is 1024 lines of 4 KiB; a short line first leaves room for only 1023 of them.
    s.append_logs(&id, job.attempt, &["start".into()])
        .await
        .unwrap();
    let chunk: Vec<String> = (0..300).map(|_| full.clone()).collect();
    for _ in 0..4 {
        s.append_logs(&id, job.attempt, &chunk).await.unwrap();
    }
    let a = &s.attempts(&id).await.unwrap()[0];
    let fits = (MAX_LOG_BYTES_PER_ATTEMPT as usize - 5) / MAX_LOG_LINE_BYTES;
    assert_eq!(fits, 1023);
    assert_eq!(a.log_lines as usize, 1 + fits);
    assert_eq!(a.log_bytes as usize, 5 + fits * MAX_LOG_LINE_BYTES);
    assert!(a.log_bytes <= MAX_LOG_BYTES_PER_ATTEMPT);
    assert_eq!(a.log_dropped as usize, 1200 - fits);
    assert!(
        a.log_lines < MAX_LOG_LINES_PER_ATTEMPT,
        "the byte budget, not the line one"
    );
    // Nor does a short line that would fit the bytes left: the log ends at its notice.
    s.append_logs(&id, job.attempt, &["late".into()])
        .await
        .unwrap();
    let lines = s.logs(&id, Some(job.attempt), 0, 10_000).await.unwrap();
    assert_eq!(lines.len(), 1 + fits + 1, "the kept lines and one notice");
    assert!(lines.last().unwrap().line.contains("log limit reached"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.line.contains("log limit"))
            .count(),
        1
    );
    assert_eq!(
        s.attempts(&id).await.unwrap()[0].log_dropped as usize,
        1200 - fits + 1
    );
}

async fn attempt_measurements_are_recorded(s: &dyn JobStore) {
    let id = s.submit(None, spec("in/a.mp4")).await.unwrap().job.id;
    let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
    let stats = AttemptStats {
        phases: [
            ("downloading", 1.5),
            ("probing", 0.1),
            ("transcoding", 40.2),
            ("uploading", 2.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        cpu_seconds: Some(75.5),
        peak_memory_bytes: Some(512 << 20),
    };
    s.record_attempt(&id, job.attempt, &stats).await.unwrap();
    s.finish(&id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    let a = &s.attempts(&id).await.unwrap()[0];
    assert_eq!(a.stats, stats);
    s.note(
        &id,
        "delivery",
        "on_success delivered (200)",
        serde_json::json!({"url": "http://x", "status": 200}),
    )
    .await
    .unwrap();
    let last = s.events(&id).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "delivery");
    assert_eq!(last.detail.unwrap()["status"], 200);
    assert!(matches!(
        s.note("nope", "x", "y", serde_json::Value::Null).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn workers_registry(s: &dyn JobStore) {
    let w = WorkerInfo {
        id: "host-a/1234".into(),
        host: "host-a".into(),
        address: Some("10.0.0.5:9090".into()),
        slots: 2,
        version: "0.1.0".into(),
        started_at: Timestamp::now(),
        last_seen: Timestamp::now(),
        draining: false,
        running: vec![],
        sandbox: Some(Level {
            enabled: true,
            landlock_abi: Some(6),
            seccomp: true,
            network_namespace: false,
            limits: Some(Limits {
                cpu_seconds: Some(3600),
                ..Limits::default()
            }),
            missing: vec!["network namespace: Operation not permitted (EPERM)".into()],
        }),
    };
    s.register_worker(&w).await.unwrap();
    s.submit(Some("held".into()), spec("in/a.mp4"))
        .await
        .unwrap();
    s.claim("host-a/1234", LEASE).await.unwrap().unwrap();
    let before = s.workers().await.unwrap()[0].last_seen;
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.touch_worker("host-a/1234", true).await.unwrap();
    let listed = s.workers().await.unwrap();
    assert_eq!(listed.len(), 1);
    let got = &listed[0];
    assert_eq!(
        (got.host.as_str(), got.slots, got.address.as_deref()),
        ("host-a", 2, Some("10.0.0.5:9090"))
    );
    assert!(got.draining);
    assert!(got.last_seen > before);
    assert_eq!(got.running, vec!["held".to_string()]);
    assert_eq!(got.sandbox, w.sandbox, "the sandbox level as registered");
    // A worker that reported no level lists none; registering again replaces the level.
    let quiet = WorkerInfo {
        id: "host-b/1".into(),
        sandbox: None,
        ..w.clone()
    };
    s.register_worker(&quiet).await.unwrap();
    assert_eq!(s.workers().await.unwrap()[1].sandbox, None);
    let off = Level::default();
    s.register_worker(&WorkerInfo {
        sandbox: Some(off.clone()),
        ..quiet
    })
    .await
    .unwrap();
    assert_eq!(s.workers().await.unwrap()[1].sandbox, Some(off));
    s.remove_worker("host-b/1").await.unwrap();
    assert!(matches!(
        s.touch_worker("ghost", false).await,
        Err(StoreError::NotFound { .. })
    ));
    s.remove_worker("host-a/1234").await.unwrap();
    assert!(s.workers().await.unwrap().is_empty());
}

conformance!(
    pagination_returns_every_job_exactly_once,
    status_and_time_window_filters_and_counts,
    logs_are_kept_per_attempt_and_bounded,
    logs_are_bounded_in_bytes_per_attempt,
    attempt_measurements_are_recorded,
    workers_registry,
);
