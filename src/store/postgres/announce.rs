//! Announcing committed changes to every process that listens (NOTIFY on `CHANNEL`).
//!
//! A transaction that calls NOTIFY holds a database-wide lock from its commit until the commit
//! is flushed, so notifying from the write itself made every durable write of the farm commit
//! one after the other. Changes are therefore announced after their statement commits, from a
//! statement of their own that writes nothing and so holds that lock only while it queues the
//! notifications. Announcements leave in the order they are posted, batched like the writes;
//! a process that dies between a commit and its announcement leaves listeners to notice the
//! change by their fallback polling, as after a lost listening connection.
//!
//! A batch's changes travel together: each notification's payload is a JSON array of changes,
//! as many as fit under `MAX_PAYLOAD` bytes. Every notification is queued by the server and
//! delivered to every listening connection as a message of its own, so one per change would
//! cost the server and each listening process three messages per job.
//!
//! And they leave at most once per `TICK`: after each announcement the next waits out the
//! rest of the tick, gathering what is posted meanwhile, unless a full batch is waiting.
//! Announcing as often as changes came (one statement per write batch, a thousand or more a
//! second) cost as much as a tenth of the farm's throughput in statements, notifications and
//! wake-ups of every listener (BENCHMARKS.md, 2026-12-04); a change now reaches listeners at
//! most a tick later than it would have.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use super::CHANNEL;
use super::batched::all_failed;
use super::gather::{Batcher, MAX_BATCH};
use crate::job::Job;
use crate::store::rows::to_json;
use crate::store::{Change, Result};

/// The least time from one announcement's start to the next's.
const TICK: Duration = Duration::from_millis(5);

pub(super) struct Announcer {
    queue: Batcher<Change, ()>,
}

impl Announcer {
    pub fn start(pool: PgPool) -> Announcer {
        let queue = Batcher::start(1, move |changes| {
            let pool = pool.clone();
            async move {
                let (started, n) = (Instant::now(), changes.len());
                let out = notify(&pool, changes).await;
                if n < MAX_BATCH {
                    tokio::time::sleep_until(started + TICK).await;
                }
                out
            }
        });
        Announcer { queue }
    }

    /// Announces a change that has committed.
    pub fn post(&self, change: Change) {
        if !self.queue.post(change) {
            tracing::warn!("store announcements are backed up; one was dropped");
        }
    }

    /// Announces a job's new status.
    pub fn status(&self, job: &Job) {
        self.post(Change::Status {
            id: job.id.clone(),
            status: job.status,
        });
    }
}

/// The most bytes put in one notification's payload (the server refuses 8,000 and more).
const MAX_PAYLOAD: usize = 7_900;

/// The changes as JSON arrays of at most `MAX_PAYLOAD` bytes each, in order.
fn payloads(changes: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for change in changes {
        let one = to_json(change);
        // "[" + "," per element + "]": what closing the array after `one` would take.
        if !current.is_empty() && current.len() + one.len() + 2 > MAX_PAYLOAD {
            current.push(']');
            out.push(std::mem::take(&mut current));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(&one);
    }
    if !current.is_empty() {
        current.push(']');
        out.push(current);
    }
    out
}

/// The changes a notification's payload carries: an array of them, or (from a process of an
/// earlier version) one.
pub(super) fn parse(payload: &str) -> serde_json::Result<Vec<Change>> {
    if payload.trim_start().starts_with('[') {
        serde_json::from_str(payload)
    } else {
        serde_json::from_str(payload).map(|c| vec![c])
    }
}

async fn notify(pool: &PgPool, changes: Vec<Change>) -> Vec<Result<()>> {
    let n = changes.len();
    let payloads = payloads(&changes);
    let sent = sqlx::query("SELECT count(pg_notify($1, p)) FROM UNNEST($2::TEXT[]) AS p")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(pool)
        .await;
    match sent {
        Ok(_) => (0..n).map(|_| Ok(())).collect(),
        Err(e) => {
            tracing::warn!("announcing {n} store changes: {e}; listeners catch up by polling");
            all_failed(n, &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Status;

    fn status(i: usize) -> Change {
        Change::Status {
            id: format!("job-{i:05}"),
            status: Status::Queued,
        }
    }

    #[test]
    fn payloads_hold_every_change_in_order_and_stay_under_the_limit() {
        let changes: Vec<Change> = (0..1_000).map(status).collect();
        let payloads = payloads(&changes);
        assert!(
            payloads.len() > 1,
            "1,000 changes do not fit in one payload"
        );
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<Change> = payloads.iter().flat_map(|p| parse(p).unwrap()).collect();
        assert_eq!(back, changes);
    }

    #[test]
    fn a_single_change_payload_is_still_understood() {
        let one = to_json(&status(7));
        assert_eq!(parse(&one).unwrap(), vec![status(7)]);
        assert!(payloads(&[]).is_empty());
    }
}
