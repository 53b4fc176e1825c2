//! PostgreSQL: the store analyzes its own tables when nothing else does (a server with
//! autovacuum off), so a new farm's plans are made from statistics that know its tables hold
//! rows.

use std::time::{Duration, Instant};

use ffarm::job::Outcome;
use sqlx::Connection;

use crate::store_harness::{TestStore, submit_together};

/// The store's tables that have been analyzed by a client (not autovacuum), by name.
async fn analyzed(url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND last_analyze IS NOT NULL ORDER BY relname",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read pg_stat_user_tables")
}

/// Claims the next `n` queued jobs and ends each succeeded.
async fn succeed(t: &TestStore, n: usize) {
    for _ in 0..n {
        let job = t
            .store
            .claim("w1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let done = Outcome::Succeeded { outputs: vec![] };
        t.store.finish(&job.id, job.attempt, done).await.unwrap();
    }
}

#[tokio::test]
async fn a_new_farms_tables_are_analyzed_by_the_store_itself() {
    let t = TestStore::postgres().await;
    // Whatever the server's setting, only the store may analyze these.
    t.execute(
        "ALTER TABLE job_specs SET (autovacuum_enabled = off); \
         ALTER TABLE job_states SET (autovacuum_enabled = off); \
         ALTER TABLE job_events SET (autovacuum_enabled = off); \
         ALTER TABLE job_attempts SET (autovacuum_enabled = off);",
    )
    .await;
    assert!(analyzed(&t.url).await.is_empty(), "nothing analyzed yet");

    let jobs = submit_together(
        std::slice::from_ref(&t.store),
        (0..300).map(|i| format!("in/s{i}.mp4")),
    )
    .await;
    succeed(&t, 100).await;
    assert_eq!(jobs.len(), 300);

    // Backends report their row counts within about ten seconds; the store looks every five.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = analyzed(&t.url).await;
    while !["job_attempts", "job_events", "job_specs", "job_states"]
        .iter()
        .all(|table| seen.iter().any(|s| s == table))
    {
        assert!(
            Instant::now() < deadline,
            "the store's tables were not analyzed within 60 s; analyzed: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        seen = analyzed(&t.url).await;
    }
    let mut conn = sqlx::PgConnection::connect(&t.url).await.unwrap();
    for table in ["job_specs", "job_states"] {
        let rows: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = $1")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(rows >= 300.0, "the statistics count {rows} jobs in {table}");
    }
    t.cleanup().await;
}

/// Index entries of `index` read so far, as the server's statistics report them once every
/// backend has reported (an idle backend reports within ten seconds).
async fn index_reads(url: &str, index: &str) -> i64 {
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = $1")
        .bind(index)
        .fetch_one(&mut conn)
        .await
        .expect("read pg_stat_user_indexes")
}

/// With statistics, pages behind a backlog still read about a page: 600 jobs that ran, then
/// 3,000 newer ones queued that never started. The planner, taking a status and a time for
/// independent, would walk every job newest first for the jobs started in the last hour (the
/// queued ones among them), and for the succeeded ones through the whole backlog.
#[tokio::test]
async fn pages_behind_a_backlog_read_about_a_page_once_the_tables_are_analyzed() {
    let t = TestStore::postgres().await;
    let stores = std::slice::from_ref(&t.store);
    submit_together(stores, (0..600).map(|i| format!("in/ran{i}.mp4"))).await;
    succeed(&t, 600).await;
    submit_together(stores, (0..3000).map(|i| format!("in/backlog{i}.mp4"))).await;
    t.execute("ANALYZE job_specs; ANALYZE job_states").await;
    let started = ffarm::store::ListFilter {
        time_field: ffarm::store::TimeField::Started,
        since: Some(ffarm::job::Timestamp::now().minus(Duration::from_secs(3600))),
        ..Default::default()
    };
    let succeeded = ffarm::store::ListFilter {
        statuses: vec![ffarm::job::Status::Succeeded],
        ..Default::default()
    };
    // With the state in a table of its own (migration 0007), a status with a bucket walked
    // through the bucket's index looks up the state of every job in the backlog first.
    let succeeded_in_bucket = ffarm::store::ListFilter {
        bucket: Some("media".into()),
        ..succeeded.clone()
    };
    let before = index_reads(&t.url, "jobs_created").await;
    let bucket_before = index_reads(&t.url, "jobs_bucket").await;
    for filter in [&started, &succeeded, &succeeded_in_bucket] {
        // More than the five runs after which a connection may keep a generic plan.
        for _ in 0..8 {
            let page = t.store.list(filter, 50, None).await.unwrap();
            assert_eq!(page.jobs.len(), 50, "{filter:?}");
            assert!(
                page.jobs
                    .iter()
                    .all(|j| j.status == ffarm::job::Status::Succeeded)
            );
        }
    }
    let read = index_reads(&t.url, "jobs_created").await - before;
    assert!(
        read < 600,
        "24 pages read {read} entries of the all-jobs index walking the backlog (3,600 jobs)"
    );
    let read = index_reads(&t.url, "jobs_bucket").await - bucket_before;
    assert!(
        read < 600,
        "8 pages of succeeded jobs in a bucket read {read} entries of the bucket's index \
         walking the backlog"
    );
    t.cleanup().await;
}
