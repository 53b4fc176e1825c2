//! A stored row that cannot be read (a column edited by hand, a bad restore) is reported as
//! unreadable, naming the column, by every operation that reads it: a job's row never as a
//! missing job, a history entry, log line, attempt or worker never as a value left out, and
//! none by a panic.

use std::time::Duration;

use ffarm::job::{Outcome, Timestamp};
use ffarm::store::{JobStore, StoreError, WorkerInfo};

use crate::helpers::spec;
use crate::store_harness::{TestStore, with_test_store};

/// What an operation on a damaged row answered: a backend error naming the column.
fn names_the_column(what: &str, column: &str, got: Result<impl std::fmt::Debug, StoreError>) {
    let expected = format!("stored {column} unreadable");
    match got {
        Err(StoreError::Backend(msg)) => assert!(
            msg.contains(&expected),
            "{what}: the error should name the unreadable column ({expected}), got: {msg}"
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

    names_the_column("get", "progress", s.get(&queued.id).await);
    names_the_column(
        "cancel of a queued job",
        "progress",
        s.cancel(&queued.id, "").await,
    );
    names_the_column("retry", "progress", s.retry(&queued.id).await.map(|_| ()));
    names_the_column(
        "cancel of a running job",
        "progress",
        s.cancel(&running.id, "").await,
    );
    // PostgreSQL decides this finish from its claim and writes it before reading the row
    // back; the answer names the damage all the same.
    let finished = s
        .finish(
            &running.id,
            running.attempt,
            Outcome::Succeeded { outputs: vec![] },
        )
        .await;
    names_the_column("finish", "progress", finished);
    // A job that is really missing still says so.
    assert!(matches!(
        s.cancel("no-such-job", "").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// The records a job's history is read as, besides the job itself.
#[derive(Debug, Clone, Copy)]
enum Record {
    Events,
    Logs,
    Attempts,
    Workers,
}

/// Reads `record` of `job` (the workers: all of them), answering how many were read.
async fn read(s: &dyn JobStore, record: Record, job: &str) -> Result<usize, StoreError> {
    match record {
        Record::Events => s.events(job).await.map(|v| v.len()),
        Record::Logs => s.logs(job, None, 0, 100).await.map(|v| v.len()),
        Record::Attempts => s.attempts(job).await.map(|v| v.len()),
        Record::Workers => s.workers().await.map(|v| v.len()),
    }
}

/// Each damage (`{id}` is the job's id), the record it shows in and the column it names. The
/// workers' goes last: it damages every worker's row.
const DAMAGES: &[(&str, Record, &str)] = &[
    (
        "UPDATE job_events SET detail = 'not json' WHERE job_id = '{id}'",
        Record::Events,
        "job_events.detail",
    ),
    (
        "UPDATE job_events SET to_status = 'lost' WHERE job_id = '{id}'",
        Record::Events,
        "job_events.to_status",
    ),
    (
        "UPDATE job_logs SET attempt = -1 WHERE job_id = '{id}'",
        Record::Logs,
        "job_logs.attempt",
    ),
    (
        "UPDATE job_attempts SET stats = 'not json' WHERE job_id = '{id}'",
        Record::Attempts,
        "job_attempts.stats",
    ),
    (
        "UPDATE job_attempts SET error = '{' WHERE job_id = '{id}'",
        Record::Attempts,
        "job_attempts.error",
    ),
    (
        "UPDATE job_attempts SET log_bytes = -1 WHERE job_id = '{id}'",
        Record::Attempts,
        "job_attempts.log_bytes",
    ),
    (
        "UPDATE workers SET slots = -1",
        Record::Workers,
        "workers.slots",
    ),
];

fn worker(id: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        host: "host-a".into(),
        address: None,
        slots: 2,
        version: "0.1.0".into(),
        started_at: Timestamp::now(),
        last_seen: Timestamp::now(),
        draining: false,
        running: vec![],
        sandbox: None,
    }
}

async fn a_history_value_that_cannot_be_read_is_reported_with_its_column(ts: TestStore) {
    let s = &*ts.store;
    s.register_worker(&worker("w/1")).await.unwrap();
    for (i, (damage, record, column)) in DAMAGES.iter().enumerate() {
        // A job of its own for each damage, running, with a log line: an entry in every
        // record. The earlier ones are running too, so the claim takes this one.
        let id = s
            .submit(None, spec(&format!("in/{i}.mp4")))
            .await
            .unwrap()
            .job
            .id;
        let job = s
            .claim("w/1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.id, id);
        s.append_logs(&id, job.attempt, &["frame=1".to_string()])
            .await
            .unwrap();
        assert!(read(s, *record, &id).await.unwrap() > 0, "{record:?}");
        ts.execute(&damage.replace("{id}", &id)).await;
        names_the_column(damage, column, read(s, *record, &id).await);
    }
    // The damage stays where it was done: the first job's attempts still read.
    let first = s.list(&Default::default(), 1000, None).await.unwrap().jobs;
    let first = &first.last().unwrap().id;
    assert_eq!(s.attempts(first).await.unwrap().len(), 1);
}

/// A worker's sandbox level is a JSON column: one that is not a level is unreadable, named,
/// never listed as a worker that reported none.
async fn a_workers_sandbox_level_that_cannot_be_read_is_reported_so(ts: TestStore) {
    let s = &*ts.store;
    s.register_worker(&worker("w/1")).await.unwrap();
    assert_eq!(s.workers().await.unwrap()[0].sandbox, None);
    ts.execute("UPDATE workers SET sandbox = '{\"enabled\": \"yes\"}'")
        .await;
    names_the_column("workers", "workers.sandbox", s.workers().await);
}

with_test_store!(
    a_job_whose_row_cannot_be_read_is_reported_so,
    a_history_value_that_cannot_be_read_is_reported_with_its_column,
    a_workers_sandbox_level_that_cannot_be_read_is_reported_so,
);
