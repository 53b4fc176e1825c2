//! SQLite's side of split jobs: the writes go through the single writer (`parts.rs`), the
//! reads (a job's parts, its plan, the farm's room, scratch due for removal) run on the
//! read-only pool.

use std::time::Duration;

use sqlx::Row;

use super::SqliteStore;
use super::parts;
use crate::job::{Job, Part, PartInfo, PartOutcome, Scratch, SplitPlan, Timestamp};
use crate::progress::Progress;
use crate::store::parts::{PartRow, Report};
use crate::store::rows::{PART_COLUMNS, SPLIT_COLUMNS, part_from_row, split_from_row};
use crate::store::{Capacity, ClaimedPart, Heartbeat, JobStore, Result};

/// Parts a claim could take now (without `max_parallel`), for `capacity`.
const CLAIMABLE_PARTS: &str = "SELECT count(*) FROM job_parts p INDEXED BY job_parts_queued \
    JOIN jobs j ON j.id = p.job_id \
    WHERE p.status = 'queued' AND p.run_after <= ?1 AND j.status = 'running' \
      AND j.attempt = p.job_attempt AND j.lease_expires_at IS NULL \
      AND NOT EXISTS (SELECT 1 FROM json_each(p.after) a JOIN job_parts d \
                      ON d.job_id = p.job_id AND d.seq = a.value WHERE d.status <> 'succeeded')";

impl SqliteStore {
    pub(super) async fn split_now(&self, id: &str, attempt: u32, plan: &SplitPlan) -> Result<Job> {
        let (id, plan, now) = (id.to_string(), plan.clone(), Timestamp::now());
        self.writer
            .write(true, move |c| parts::split(c, id, attempt, plan, now))
            .await
    }

    pub(super) async fn claim_part_now(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedPart>> {
        let (worker, now) = (worker.to_string(), Timestamp::now());
        self.writer
            .write(false, move |c| {
                parts::claim_part(c, worker, now.plus(lease), now)
            })
            .await
    }

    pub(super) async fn heartbeat_part_now(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        let (id, progress, now) = (id.to_string(), progress.cloned(), Timestamp::now());
        self.writer
            .write(false, move |c| {
                parts::heartbeat_part(c, id, seq, attempt, now.plus(lease), progress, now)
            })
            .await
    }

    pub(super) async fn finish_part_now(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        outcome: PartOutcome,
    ) -> Result<Job> {
        let (id, policy, now) = (id.to_string(), self.policy, Timestamp::now());
        self.writer
            .write(true, move |c| {
                let report = Report {
                    seq,
                    attempt,
                    outcome,
                };
                parts::finish_part(c, id, report, policy, now)
            })
            .await
    }

    pub(super) async fn forget_scratch_now(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.writer
            .write(true, move |c| parts::forget_scratch(c, id))
            .await
    }

    /// The job's parts as stored, by seq.
    pub(super) async fn part_rows(&self, id: &str) -> Result<Vec<PartRow>> {
        let sql = format!("SELECT {PART_COLUMNS} FROM job_parts WHERE job_id = ? ORDER BY seq");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(part_from_row).collect()
    }

    pub(super) async fn part_infos(&self, id: &str) -> Result<Vec<PartInfo>> {
        Ok(self
            .part_rows(id)
            .await?
            .iter()
            .map(PartRow::info)
            .collect())
    }

    pub(super) async fn parts_now(&self, id: &str) -> Result<Vec<Part>> {
        self.get(id).await?;
        Ok(self
            .part_rows(id)
            .await?
            .into_iter()
            .map(|r| r.part)
            .collect())
    }

    pub(super) async fn split_plan_now(&self, id: &str) -> Result<Option<SplitPlan>> {
        self.get(id).await?;
        let sql = format!("SELECT {SPLIT_COLUMNS} FROM job_splits WHERE job_id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        let Some((mut plan, _)) = row.as_ref().map(split_from_row).transpose()? else {
            return Ok(None);
        };
        plan.parts = self
            .part_rows(id)
            .await?
            .iter()
            .map(PartRow::plan)
            .collect();
        Ok(Some(plan))
    }

    pub(super) async fn capacity_now(&self) -> Result<Capacity> {
        let sql = format!(
            "SELECT (SELECT COALESCE(SUM(slots), 0) FROM workers WHERE draining = 0) AS slots, \
             (SELECT count(*) FROM jobs WHERE status IN ('running', 'cancelling') \
              AND lease_expires_at IS NOT NULL) AS held, \
             (SELECT count(*) FROM jobs INDEXED BY jobs_queue WHERE status = 'queued' \
              AND run_after <= ?1) AS queued_jobs, \
             ({CLAIMABLE_PARTS}) AS queued_parts, \
             (SELECT count(*) FROM job_parts WHERE status IN ('running', 'cancelling')) AS running"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Timestamp::now().0)
            .fetch_one(&self.read)
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
             JOIN jobs j ON j.id = sp.job_id \
             WHERE (j.status IN ('succeeded', 'cancelled') \
                    OR (j.status = 'failed' AND j.finished_at <= ?)) \
               AND NOT EXISTS (SELECT 1 FROM job_parts p WHERE p.job_id = sp.job_id \
                               AND p.status IN ('running', 'cancelling')) \
             ORDER BY j.finished_at, sp.job_id LIMIT ?",
        )
        .bind(failed_before)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, bucket, prefix)| (id, Scratch { bucket, prefix }))
            .collect())
    }

    /// The parts held by workers, as (worker, "JOB#SEQ").
    pub(super) async fn held_parts(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT worker, job_id || '#' || seq FROM job_parts INDEXED BY job_parts_worker \
             WHERE status IN ('running', 'cancelling') AND worker IS NOT NULL \
             ORDER BY job_id, seq",
        )
        .fetch_all(&self.read)
        .await?)
    }
}
