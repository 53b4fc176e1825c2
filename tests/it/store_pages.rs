//! Pages and counts against what the rows say: jobs sharing a creation time page correctly,
//! both ways of reading a page (finding a filter's few matches, walking newest first past many)
//! give the same pages as filtering everything by hand, and the running totals behind
//! unfiltered counts agree with counting the rows, also after an upgrade.

use std::collections::HashSet;
use std::time::Duration;

use ffarm::job::{Job, JobError, Outcome, Status, Timestamp};
use ffarm::store::{JobStore, ListFilter, StoreError, TimeField};

use crate::helpers::spec;
use crate::store_harness::{TestStore, submit_together, with_test_store};

const LEASE: Duration = Duration::from_secs(30);

/// Every page of `f`, `limit` at a time, in the order given.
async fn all_jobs(s: &dyn JobStore, f: &ListFilter, limit: u32) -> Vec<Job> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.list(f, limit, cursor.as_deref()).await.unwrap();
        assert!(page.jobs.len() <= limit as usize);
        seen.extend(page.jobs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

/// Every page of `f`: (created_at, id) in the order given.
async fn all_pages(s: &dyn JobStore, f: &ListFilter, limit: u32) -> Vec<(Timestamp, String)> {
    let jobs = all_jobs(s, f, limit).await;
    jobs.into_iter().map(|j| (j.created_at, j.id)).collect()
}

fn assert_newest_first_once(seen: &[(Timestamp, String)], what: &str) {
    let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), seen.len(), "{what}: a job twice");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "{what}: not strictly newest first by (created_at, id)"
    );
}

/// Jobs created in the same microsecond (PostgreSQL gives a batch of concurrent submits one
/// timestamp) are ordered by id, and a page boundary among them loses and repeats none.
async fn jobs_created_together_page_correctly(ts: TestStore) {
    let s = &*ts.store;
    let keys = (0..300).map(|i| format!("in/t{i:04}.mp4"));
    let jobs = submit_together(std::slice::from_ref(&ts.store), keys).await;
    if ts.is_postgres() {
        let times: HashSet<Timestamp> = jobs.iter().map(|j| j.created_at).collect();
        assert!(
            times.len() < jobs.len(),
            "concurrent submits were batched and share timestamps"
        );
    }
    // Five timestamps only, sixty jobs each, on both backends.
    let times = "created_at = 1700000000000000 + CAST(substr(input_key, 5, 4) AS INTEGER) % 5";
    if ts.is_postgres() {
        // Both copies of the time (migration 0007).
        ts.execute(&format!(
            "UPDATE job_specs SET {times}; \
             UPDATE job_states t SET created_at = s.created_at FROM job_specs s WHERE s.id = t.id"
        ))
        .await;
    } else {
        ts.execute(&format!("UPDATE jobs SET {times}")).await;
    }
    for i in (0..300).step_by(7) {
        s.cancel(&jobs[i].id, "").await.unwrap();
    }
    let want: HashSet<String> = jobs.iter().map(|j| j.id.clone()).collect();
    for limit in [7, 50, 60] {
        let seen = all_pages(s, &ListFilter::default(), limit).await;
        assert_newest_first_once(&seen, &format!("all, pages of {limit}"));
        let ids: HashSet<String> = seen.into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, want, "pages of {limit}: every job");
    }
    // Several statuses (a merge of one walk per status), and a narrow prefix (found through
    // its index and sorted) across the same ties.
    let two = ListFilter {
        statuses: vec![Status::Queued, Status::Cancelled],
        ..ListFilter::default()
    };
    let seen = all_pages(s, &two, 9).await;
    assert_newest_first_once(&seen, "two statuses");
    assert_eq!(seen.len(), 300);
    let narrow = ListFilter {
        key_prefix: Some("in/t01".into()),
        ..ListFilter::default()
    };
    let seen = all_pages(s, &narrow, 8).await;
    assert_newest_first_once(&seen, "narrow prefix");
    assert_eq!(seen.len(), 100);
}

/// What a filter keeps, decided by hand from the job.
fn keeps(f: &ListFilter, j: &Job) -> bool {
    let time = match f.time_field {
        TimeField::Created => Some(j.created_at),
        TimeField::Started => j.started_at,
        TimeField::Finished => j.finished_at,
    };
    let in_window = match (f.since, f.until) {
        (None, None) => true,
        (since, until) => {
            time.is_some_and(|t| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u))
        }
    };
    (f.statuses.is_empty() || f.statuses.contains(&j.status))
        && in_window
        && f.bucket.as_ref().is_none_or(|b| *b == j.input.bucket)
        && f.key_prefix
            .as_ref()
            .is_none_or(|p| j.input.key.starts_with(p.as_str()))
        && f.preset.as_ref().is_none_or(|p| *p == j.preset)
}

/// A store where some filters match many jobs (more than the store finds through an index)
/// and others few: every page of every filter equals the hand-filtered list of all jobs.
async fn both_ways_of_reading_a_page_agree(ts: TestStore) {
    let s = &*ts.store;
    let n = 1600;
    let submits = (0..n).map(|i| {
        let mut sp = spec(&match i % 40 {
            0 => format!("up/{i:05}.mov"),
            1 => format!("in/rare/{i:05}.mp4"),
            _ => format!("in/{i:05}.mp4"),
        });
        if i % 3 == 0 {
            sp.preset = "hls-abr".into();
        }
        if i % 10 == 0 {
            sp.input.bucket = "other".into();
        }
        s.submit(None, sp)
    });
    futures_util::future::join_all(submits)
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    // 1,300 start, most end (some failing for good, some back in the queue), 30 are stopped
    // on the way, and a few queued ones are cancelled.
    let worker = |w: usize| async move {
        for i in (w..1300).step_by(4) {
            let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
            let outcome = match i % 20 {
                0 => Some(Outcome::Failed(JobError::new("unsupported", "no", false))),
                1 => Some(Outcome::Failed(JobError::new(
                    "storage-timeout",
                    "slow",
                    true,
                ))),
                2 => None,
                _ => Some(Outcome::Succeeded { outputs: vec![] }),
            };
            match outcome {
                Some(o) => {
                    s.finish(&job.id, job.attempt, o).await.unwrap();
                }
                None if i % 40 == 2 => {
                    s.cancel(&job.id, "").await.unwrap();
                }
                None => {}
            }
        }
    };
    futures_util::future::join_all((0..4).map(worker)).await;
    // The last few fail and wait for their retry: queued, with a start time.
    for _ in 0..5 {
        let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
        let slow = Outcome::Failed(JobError::new("storage-timeout", "slow", true));
        s.finish(&job.id, job.attempt, slow).await.unwrap();
    }
    let jobs = all_jobs(s, &ListFilter::default(), 1000).await;
    assert_eq!(jobs.len(), n);
    for j in jobs.iter().filter(|j| j.status == Status::Queued).take(20) {
        s.cancel(&j.id, "").await.unwrap();
    }
    let jobs = all_jobs(s, &ListFilter::default(), 1000).await;
    let mut started: Vec<Timestamp> = jobs.iter().filter_map(|j| j.started_at).collect();
    let mut finished: Vec<Timestamp> = jobs.iter().filter_map(|j| j.finished_at).collect();
    started.sort();
    finished.sort();
    let window = |field, since: Option<Timestamp>, until: Option<Timestamp>| ListFilter {
        time_field: field,
        since,
        until,
        ..ListFilter::default()
    };
    let few_started = (Some(started[500]), Some(started[530]));
    let many_started = (Some(started[100]), None);
    let few_finished = (Some(finished[200]), Some(finished[240]));
    let many_finished = (None, Some(finished[1150]));
    let filters: Vec<(&str, ListFilter)> = vec![
        (
            "many keys",
            ListFilter {
                key_prefix: Some("in/".into()),
                ..ListFilter::default()
            },
        ),
        (
            "few keys",
            ListFilter {
                key_prefix: Some("in/rare/".into()),
                ..ListFilter::default()
            },
        ),
        (
            "few keys, other bucket",
            ListFilter {
                key_prefix: Some("up/".into()),
                bucket: Some("other".into()),
                ..ListFilter::default()
            },
        ),
        (
            "many keys, failed or cancelled",
            ListFilter {
                key_prefix: Some("in/".into()),
                statuses: vec![Status::Failed, Status::Cancelled],
                ..ListFilter::default()
            },
        ),
        (
            "many keys, one preset",
            ListFilter {
                key_prefix: Some("in/".into()),
                preset: Some("hls-abr".into()),
                ..ListFilter::default()
            },
        ),
        (
            "started, few",
            window(TimeField::Started, few_started.0, few_started.1),
        ),
        (
            "started, many",
            window(TimeField::Started, many_started.0, many_started.1),
        ),
        (
            "started, many, queued again",
            ListFilter {
                statuses: vec![Status::Queued],
                ..window(TimeField::Started, many_started.0, many_started.1)
            },
        ),
        (
            "finished, few",
            window(TimeField::Finished, few_finished.0, few_finished.1),
        ),
        (
            "finished, many",
            window(TimeField::Finished, many_finished.0, many_finished.1),
        ),
        (
            "finished, many, running",
            ListFilter {
                statuses: vec![Status::Running],
                ..window(TimeField::Finished, many_finished.0, many_finished.1)
            },
        ),
        (
            "finished, many, failed, many keys",
            ListFilter {
                statuses: vec![Status::Failed],
                key_prefix: Some("in/".into()),
                ..window(TimeField::Finished, many_finished.0, many_finished.1)
            },
        ),
        (
            "created, with few keys",
            ListFilter {
                key_prefix: Some("in/rare/".into()),
                ..window(TimeField::Created, Some(jobs[n / 2].created_at), None)
            },
        ),
        (
            "running or cancelling",
            ListFilter {
                statuses: vec![Status::Running, Status::Cancelling],
                ..ListFilter::default()
            },
        ),
    ];
    for (what, f) in &filters {
        let want: Vec<String> = jobs
            .iter()
            .filter(|j| keeps(f, j))
            .map(|j| j.id.clone())
            .collect();
        for limit in [50, 1000] {
            let seen = all_pages(s, f, limit).await;
            assert_newest_first_once(&seen, what);
            let got: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
            let first_difference = got.iter().zip(&want).position(|(g, w)| g != w);
            assert!(
                got == want,
                "{what}, pages of {limit}: {} jobs listed, {} match; first difference at {:?}",
                got.len(),
                want.len(),
                first_difference
            );
        }
    }
    // Enough of each kind that both ways were taken: some filters match more jobs than a
    // store finds through an index (1,000), some fewer.
    let matches = |f: &ListFilter| jobs.iter().filter(|j| keeps(f, j)).count();
    assert!(matches(&filters[0].1) > 1000 && matches(&filters[1].1) < 100);
    assert!(matches(&filters[6].1) > 1000 && matches(&filters[5].1) < 100);
    assert!(matches(&filters[9].1) > 1000 && matches(&filters[8].1) < 100);
    assert!(
        matches(&filters[7].1) > 0,
        "some failed attempts wait for a retry"
    );
}

/// The unfiltered counts (running totals kept by the database) equal the counts of the rows
/// after every kind of transition, made by two instances at once.
async fn running_totals_agree_with_the_rows(ts: TestStore) {
    let (a, b) = (ts.store.clone(), ts.another().await);
    let everything = ListFilter {
        since: Some(Timestamp(0)),
        ..ListFilter::default()
    };
    let work = |s: std::sync::Arc<dyn JobStore>, me: usize| async move {
        for i in 0..120 {
            let id = s
                .submit(None, spec(&format!("in/c{me}-{i}.mp4")))
                .await
                .unwrap()
                .job
                .id;
            if i % 9 == 0 {
                // The other instance may have claimed it, and even ended it, by now.
                match s.cancel(&id, "").await {
                    Ok(_) | Err(StoreError::IllegalTransition { .. }) => {}
                    Err(e) => panic!("cancelling {id}: {e}"),
                }
            }
            let Some(job) = s.claim(&format!("w/{me}"), LEASE).await.unwrap() else {
                continue;
            };
            let outcome = match i % 6 {
                0 => Outcome::Failed(JobError::new("unsupported", "no", false)),
                1 => Outcome::Failed(JobError::new("storage-timeout", "slow", true)),
                2 => Outcome::Released,
                3 => {
                    s.cancel(&job.id, "").await.unwrap();
                    Outcome::Cancelled
                }
                _ => Outcome::Succeeded { outputs: vec![] },
            };
            let ended = s.finish(&job.id, job.attempt, outcome).await.unwrap();
            if ended.status == Status::Failed && i % 12 == 0 {
                s.retry(&job.id).await.unwrap();
            }
        }
    };
    tokio::join!(work(a.clone(), 0), work(b.clone(), 1));
    // A lost worker: its job is reaped back to the queue.
    let lost = a.claim("w/lost", Duration::from_millis(50)).await.unwrap();
    assert!(lost.is_some(), "something left to claim");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.reap().await.unwrap().len(), 1);
    for s in [&a, &b] {
        let totals = s.counts(&ListFilter::default()).await.unwrap();
        let rows = s.counts(&everything).await.unwrap();
        assert_eq!(totals, rows);
        assert_eq!(totals.values().sum::<u64>(), 240);
        for status in [
            Status::Queued,
            Status::Succeeded,
            Status::Failed,
            Status::Cancelled,
        ] {
            assert!(totals[&status] > 0, "{status} occurs");
        }
    }
}

with_test_store!(
    jobs_created_together_page_correctly,
    both_ways_of_reading_a_page_agree,
    running_totals_agree_with_the_rows,
);

/// A store created before the running totals existed (schema of the first migrations) with
/// jobs in it counts them once upgraded.
async fn upgrade_counts_the_jobs_already_there(ts_url: &str, postgres: bool, first: &[&str]) {
    let dir = crate::helpers::tempdir();
    let backend = if postgres { "postgres" } else { "sqlite" };
    for name in first {
        let from = format!("{}/migrations/{backend}/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(&from, dir.path().join(name)).unwrap();
    }
    let old = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    let insert = "INSERT INTO jobs (id, status, input_bucket, input_key, preset, output_bucket, \
                  output_prefix, max_attempts, timeout_seconds, created_at, updated_at) VALUES \
                  ('a', 'queued', 'm', 'k', 'p', 'm', 'o', 3, 60, 1, 1), \
                  ('b', 'queued', 'm', 'k', 'p', 'm', 'o', 3, 60, 2, 2), \
                  ('c', 'failed', 'm', 'k', 'p', 'm', 'o', 3, 60, 3, 3)";
    if postgres {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(ts_url).await.unwrap();
        old.run(&mut conn).await.unwrap();
        sqlx::query(insert).execute(&mut conn).await.unwrap();
    } else {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("{ts_url}?mode=rwc"))
            .await
            .unwrap();
        old.run(&mut conn).await.unwrap();
        sqlx::query(insert).execute(&mut conn).await.unwrap();
    }
    let store = ffarm::store::open(ts_url).await.unwrap();
    let counts = store.counts(&ListFilter::default()).await.unwrap();
    assert_eq!(counts[&Status::Queued], 2);
    assert_eq!(counts[&Status::Failed], 1);
    assert_eq!(counts.values().sum::<u64>(), 3);
    let job = store.claim("w/1", LEASE).await.unwrap().unwrap();
    store
        .finish(&job.id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    let counts = store.counts(&ListFilter::default()).await.unwrap();
    assert_eq!(
        (counts[&Status::Queued], counts[&Status::Succeeded]),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrade_counts_the_jobs_already_there() {
    let dir = crate::helpers::tempdir();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    upgrade_counts_the_jobs_already_there(&url, false, &["0001_jobs.sql"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgrade_counts_the_jobs_already_there() {
    let (url, _dropped) = crate::store_harness::empty_postgres().await;
    let first = ["0001_jobs.sql", "0002_history_per_statement.sql"];
    upgrade_counts_the_jobs_already_there(&url, true, &first).await;
}
