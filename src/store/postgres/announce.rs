//! Announcing committed changes to every process that listens (NOTIFY on `CHANNEL`).
//!
//! A transaction that calls NOTIFY holds a database-wide lock from its commit until the commit
//! is flushed, so notifying from the write itself made every durable write of the farm commit
//! one after the other. Changes are therefore announced after their statement commits, from a
//! statement of their own that writes nothing and so holds that lock only while it queues the
//! notifications. Announcements leave in the order they are posted, batched like the writes;
//! a process that dies between a commit and its announcement leaves listeners to notice the
//! change by their fallback polling, as after a lost listening connection.

use sqlx::PgPool;

use super::CHANNEL;
use super::batch::Batcher;
use super::batched::all_failed;
use crate::job::Job;
use crate::store::codec::to_json;
use crate::store::{Change, Result};

pub(super) struct Announcer {
    queue: Batcher<Change, ()>,
}

impl Announcer {
    pub fn start(pool: PgPool) -> Announcer {
        let queue = Batcher::start(1, move |changes| {
            let pool = pool.clone();
            async move { notify(&pool, changes).await }
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

async fn notify(pool: &PgPool, changes: Vec<Change>) -> Vec<Result<()>> {
    let n = changes.len();
    let payloads: Vec<String> = changes.iter().map(to_json).collect();
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
