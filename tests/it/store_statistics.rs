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

#[tokio::test]
async fn a_new_farms_tables_are_analyzed_by_the_store_itself() {
    let t = TestStore::postgres().await;
    // Whatever the server's setting, only the store may analyze these.
    t.execute(
        "ALTER TABLE jobs SET (autovacuum_enabled = off); \
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
    for _ in 0..100 {
        let job = t
            .store
            .claim("w1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let done = Outcome::Succeeded { outputs: vec![] };
        t.store.finish(&job.id, job.attempt, done).await.unwrap();
    }
    assert_eq!(jobs.len(), 300);

    // Backends report their row counts within about ten seconds; the store looks every five.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = analyzed(&t.url).await;
    while !["job_attempts", "job_events", "jobs"]
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
    let rows: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'jobs'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(rows >= 300.0, "the statistics count {rows} jobs");
    t.cleanup().await;
}
