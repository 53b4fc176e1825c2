//! PostgreSQL's side of split jobs: each write is one transaction on the synchronous pool
//! (`parts.rs`), announced once committed; the reads (a job's parts, its plan, the farm's
//! room, scratch due for removal, the parts workers hold) read the committed rows.

use std::time::Duration;

use sqlx::{Postgres, Row, Transaction};

use super::PostgresStore;
use super::parts;
use crate::job::{Job, Part, PartInfo, PartOutcome, Scratch, SplitPlan, Timestamp};
use crate::progress::Progress;
use crate::store::parts::{PartRow, Report, worker_lost};
use crate::store::{Capacity, Change, ClaimedPart, Heartbeat, Result};

/// How many jobs a claim tries before it reports nothing to take (each tried job had its
/// last claimable part taken by another claim meanwhile).
const CLAIM_TRIES: usize = 8;

impl PostgresStore {
    /// Commits a write's transaction, then announces its changes.
    async fn commit<T>(&self, tx: Transaction<'_, Postgres>, done: (T, Vec<Change>)) -> Result<T> {
        tx.commit().await?;
        self.announce(done.1);
        Ok(done.0)
    }

    fn announce(&self, changes: Vec<Change>) {
        for change in changes {
            self.announcer.post(change);
        }
    }

    pub(super) async fn split_now(&self, id: &str, attempt: u32, plan: &SplitPlan) -> Result<Job> {
        let now = Timestamp::now();
        let mut tx = self.durable.begin().await?;
        let done = parts::split(&mut tx, id, attempt, plan, now).await?;
        self.commit(tx, done).await
    }

    pub(super) async fn cancel_now(&self, id: &str, reason: &str) -> Result<Job> {
        let now = Timestamp::now();
        let mut tx = self.durable.begin().await?;
        let done = parts::cancel(&mut tx, id, reason, now).await?;
        self.commit(tx, done).await
    }

    pub(super) async fn claim_part_now(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedPart>> {
        let mut tried = Vec::new();
        for _ in 0..CLAIM_TRIES {
            let now = Timestamp::now();
            let mut conn = self.durable.acquire().await?;
            let Some(id) = parts::next_job(&mut conn, now, &tried).await? else {
                return Ok(None);
            };
            drop(conn);
            let lease_until = now.plus(lease);
            let mut tx = self.durable.begin().await?;
            let done = parts::claim_part_of(&mut tx, &id, worker, lease_until, now).await?;
            let claimed = self.commit(tx, done).await?;
            if claimed.is_some() {
                return Ok(claimed);
            }
            tried.push(id);
        }
        Ok(None)
    }

    pub(super) async fn heartbeat_part_now(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        let now = Timestamp::now();
        let lease_until = now.plus(lease);
        let mut tx = self.durable.begin().await?;
        let done =
            parts::heartbeat_part(&mut tx, id, seq, attempt, lease_until, progress, now).await?;
        self.commit(tx, done).await
    }

    pub(super) async fn finish_part_now(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        outcome: PartOutcome,
    ) -> Result<Job> {
        let (now, policy) = (Timestamp::now(), self.policy);
        let report = Report {
            seq,
            attempt,
            outcome,
        };
        let mut tx = self.durable.begin().await?;
        let done = parts::finish_part(&mut tx, id, report, &policy, now, false).await?;
        Ok(self.commit(tx, done).await?.0)
    }

    /// Ends the part attempts whose leases expired: the jobs that changed status.
    pub(super) async fn reap_parts(&self) -> Result<Vec<Job>> {
        let now = Timestamp::now();
        let mut conn = self.durable.acquire().await?;
        let lost = parts::expired_parts(&mut conn, now).await?;
        drop(conn);
        let mut jobs = Vec::new();
        for (id, seq, attempt) in lost {
            let (seq, attempt) = (seq as u32, attempt as u32);
            let before = self.get_bare(&id).await?.status;
            let reaped = self.reap_part(&id, seq, attempt, now).await;
            match reaped {
                Ok((job, true)) if job.status != before => jobs.push(job),
                Ok(_) => {}
                Err(e) => tracing::warn!("reaping part {id}#{seq}: {e}"),
            }
        }
        Ok(jobs)
    }

    /// Ends part `seq`'s attempt as lost, if its lease still expired before `now`.
    async fn reap_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        now: Timestamp,
    ) -> Result<(Job, bool)> {
        let (lost, policy) = (worker_lost(seq, attempt), self.policy);
        let mut tx = self.durable.begin().await?;
        let done = parts::finish_part(&mut tx, id, lost, &policy, now, true).await?;
        self.commit(tx, done).await
    }

    pub(super) async fn forget_scratch_now(&self, id: &str) -> Result<bool> {
        let mut tx = self.durable.begin().await?;
        let done = parts::forget_scratch(&mut tx, id).await?;
        self.commit(tx, done).await
    }

    pub(super) async fn part_infos(&self, id: &str) -> Result<Vec<PartInfo>> {
        let rows = parts::job_parts(&self.durable, id).await?;
        Ok(rows.iter().map(PartRow::info).collect())
    }

    pub(super) async fn parts_now(&self, id: &str) -> Result<Vec<Part>> {
        self.get_bare(id).await?;
        let rows = parts::job_parts(&self.durable, id).await?;
        Ok(rows.into_iter().map(|r| r.part).collect())
    }

    pub(super) async fn split_plan_now(&self, id: &str) -> Result<Option<SplitPlan>> {
        self.get_bare(id).await?;
        let Some(mut plan) = parts::stored_plan(&self.durable, id).await? else {
            return Ok(None);
        };
        let rows = parts::job_parts(&self.durable, id).await?;
        plan.parts = rows.iter().map(PartRow::plan).collect();
        Ok(Some(plan))
    }

    pub(super) async fn capacity_now(&self) -> Result<Capacity> {
        let sql = "SELECT (SELECT COALESCE(SUM(slots), 0)::BIGINT FROM workers WHERE NOT draining) \
                    AS slots, \
             (SELECT count(*) FROM job_states WHERE status IN ('running', 'cancelling') \
              AND lease_expires_at IS NOT NULL) AS held, \
             (SELECT count(*) FROM job_states WHERE status = 'queued' AND run_after <= $1) \
                    AS queued_jobs, \
             (SELECT count(*) FROM job_parts p JOIN job_states j ON j.id = p.job_id \
              WHERE p.status = 'queued' AND p.run_after <= $1 AND j.status = 'running' \
                AND j.attempt = p.job_attempt AND j.lease_expires_at IS NULL \
                AND NOT EXISTS (SELECT 1 FROM job_parts d WHERE d.job_id = p.job_id \
                    AND d.status <> 'succeeded' AND d.seq IN \
                    (SELECT value::BIGINT FROM jsonb_array_elements_text(p.after::JSONB)))) \
                    AS queued_parts, \
             (SELECT count(*) FROM job_parts WHERE status IN ('running', 'cancelling')) \
                    AS running";
        let row = sqlx::query(sql)
            .bind(Timestamp::now().0)
            .fetch_one(&self.durable)
            .await?;
        let n = |c: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(c)?.max(0) as u64) };
        Ok(Capacity {
            slots: n("slots")?,
            busy: n("held")? + n("running")?,
            queued_jobs: n("queued_jobs")?,
            queued_parts: n("queued_parts")?,
            running_parts: n("running")?,
        })
    }

    pub(super) async fn scratch_due_now(
        &self,
        keep_failed: Duration,
        limit: u32,
    ) -> Result<Vec<(String, Scratch)>> {
        let failed_before = Timestamp::now().0 - keep_failed.as_micros() as i64;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT sp.job_id, sp.scratch_bucket, sp.scratch_prefix FROM job_splits sp \
             JOIN job_states j ON j.id = sp.job_id \
             WHERE (j.status IN ('succeeded', 'cancelled') \
                    OR (j.status = 'failed' AND j.finished_at <= $1)) \
               AND NOT EXISTS (SELECT 1 FROM job_parts p WHERE p.job_id = sp.job_id \
                               AND p.status IN ('running', 'cancelling')) \
             ORDER BY j.finished_at, sp.job_id LIMIT $2",
        )
        .bind(failed_before)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.durable)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, bucket, prefix)| (id, Scratch { bucket, prefix }))
            .collect())
    }

    /// The parts held by workers, as (worker, "JOB#SEQ").
    pub(super) async fn held_parts(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT worker, job_id || '#' || seq FROM job_parts \
             WHERE status IN ('running', 'cancelling') AND worker IS NOT NULL \
             ORDER BY job_id, seq",
        )
        .fetch_all(&self.durable)
        .await?)
    }
}
