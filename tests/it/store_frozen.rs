//! PostgreSQL: a farm process stopped in the middle of one of the store's transactions (a
//! frozen VM, SIGSTOP) cannot hold that job's rows for as long as it stays stopped; the
//! server ends its session and the other processes' reaper goes on.

use std::time::{Duration, Instant};

use ffarm::job::Status;
use ffarm::store::postgres::{IDLE_IN_TRANSACTION, PostgresStore};
use sqlx::ConnectOptions;

use crate::store_harness::{TestStore, submit_together};

#[tokio::test]
async fn a_process_frozen_inside_a_transaction_does_not_hold_up_the_reaper() {
    let t = TestStore::postgres().await;
    // Every connection of every pool carries the limit.
    let own = PostgresStore::open(&t.url).await.unwrap();
    let limit = own
        .setting("idle_in_transaction_session_timeout")
        .await
        .unwrap();
    for value in [&limit.durable, &limit.fast, &limit.lanes] {
        assert_eq!(value, IDLE_IN_TRANSACTION, "{limit:?}");
    }
    drop(own);
    let jobs = submit_together(std::slice::from_ref(&t.store), ["in/frozen.mp4".into()]).await;
    let job = t
        .store
        .claim("frozen/1", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id, jobs[0].id);

    // A connection as any farm process opens it, stopped half-way through a log append: the
    // attempt's counters are locked and the COMMIT never comes.
    let mut frozen = PostgresStore::connect_options(&t.url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut frozen).await.unwrap();
    sqlx::query("SELECT log_lines FROM job_attempts WHERE job_id = $1 AND attempt = 1 FOR UPDATE")
        .bind(&job.id)
        .fetch_one(&mut frozen)
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let reaped = tokio::time::timeout(Duration::from_secs(30), t.store.reap())
        .await
        .unwrap_or_else(|_| {
            panic!("the reaper still waited on the frozen transaction after 30 s (limit {IDLE_IN_TRANSACTION})")
        })
        .unwrap();
    assert_eq!(
        reaped.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [job.id.as_str()]
    );
    let after = t.store.get(&job.id).await.unwrap();
    assert_eq!((after.status, after.attempt), (Status::Queued, 1));
    let attempts = t.store.attempts(&job.id).await.unwrap();
    assert_eq!(attempts[0].outcome.as_deref(), Some("queued"));
    // It waited for the server to end the frozen session, not for anything longer.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        sqlx::query("SELECT 1").execute(&mut frozen).await.is_err(),
        "the frozen session was ended by the server"
    );
    drop(frozen);
    // The store's own connections are not hurt by it.
    let again = submit_together(std::slice::from_ref(&t.store), ["in/after.mp4".into()]).await;
    assert_eq!(again.len(), 1);
    t.cleanup().await;
}
