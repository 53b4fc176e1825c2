//! A job whose stored row cannot be read (a column edited by hand, a bad restore) is reported
//! as unreadable, naming the column, by every operation that reads it: never as a missing job,
//! and never by a panic.

use std::time::Duration;

use ffarm::job::Outcome;
use ffarm::store::StoreError;

use crate::helpers::spec;
use crate::store_harness::{TestStore, with_test_store};

/// What an operation on the damaged job answered: a backend error naming the column.
fn names_the_column(what: &str, got: Result<impl std::fmt::Debug, StoreError>) {
    match got {
        Err(StoreError::Backend(msg)) => assert!(
            msg.contains("stored progress unreadable"),
            "{what}: the error should name the unreadable column, got: {msg}"
        ),
        other => panic!("{what}: expected an unreadable-row error, got {other:?}"),
    }
}

async fn a_job_whose_row_cannot_be_read_is_reported_so(ts: TestStore) {
    let s = &ts.store;
    let queued = s.submit(None, spec("in/queued.mp4")).await.unwrap().job;
    s.submit(None, spec("in/running.mp4")).await.unwrap();
    // Claims take the oldest first: the first submitted, then the second.
    let first = s
        .claim("w/1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, queued.id);
    let running = s
        .claim("w/1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // Put the first back in the queue by hand, then damage both rows the same way (on
    // PostgreSQL the state is a table of its own, migration 0007).
    let states = if ts.is_postgres() {
        "job_states"
    } else {
        "jobs"
    };
    ts.execute(&format!(
        "UPDATE {states} SET status = 'queued', worker = NULL, lease_expires_at = NULL \
         WHERE id = '{}'; \
         UPDATE {states} SET progress = 'not json'",
        queued.id
    ))
    .await;

    names_the_column("get", s.get(&queued.id).await);
    names_the_column("cancel of a queued job", s.cancel(&queued.id, "").await);
    names_the_column("retry", s.retry(&queued.id).await.map(|_| ()));
    names_the_column("cancel of a running job", s.cancel(&running.id, "").await);
    // PostgreSQL decides this finish from its claim and writes it before reading the row
    // back; the answer names the damage all the same.
    let finished = s
        .finish(
            &running.id,
            running.attempt,
            Outcome::Succeeded { outputs: vec![] },
        )
        .await;
    names_the_column("finish", finished);
    // A job that is really missing still says so.
    assert!(matches!(
        s.cancel("no-such-job", "").await,
        Err(StoreError::NotFound { .. })
    ));
}

with_test_store!(a_job_whose_row_cannot_be_read_is_reported_so);
