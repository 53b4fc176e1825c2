//! PostgreSQL writes of split jobs (`migrations/postgres/0011_job_parts.sql`), each inside
//! one transaction its caller commits. Every one first locks the job's state row, so the
//! writes to one job's parts follow one another (a claim counts the running parts against
//! `max_parallel` and no other claim of that job comes between; an end decides the job's fate
//! from siblings nobody moves meanwhile) and all lock in one order, the job then its parts,
//! which no deadlock can come out of. The decisions are `store::parts`'.

use sqlx::PgConnection;

use super::ops::{apply_update, current};
use crate::job::{Job, RetryPolicy, SplitPlan, Status, Timestamp};
use crate::progress::Progress;
use crate::store::parts::{self, PartEnd, PartRow, Report};
use crate::store::rows::{PART_COLUMNS, SPLIT_COLUMNS, part_from_row, split_from_row, to_json};
use crate::store::transitions::Current;
use crate::store::{Change, ClaimedPart, Heartbeat, Result, StoreError};

pub(super) type Done<T> = Result<(T, Vec<Change>)>;

/// Locks the job's state row for the rest of the transaction and reads the job.
pub(super) async fn lock_job(c: &mut PgConnection, id: &str) -> Result<(Job, Current)> {
    sqlx::query("SELECT 1 FROM job_states WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    current(&mut *c, id).await
}

/// The job's parts, by seq.
pub(super) async fn job_parts<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    id: &str,
) -> Result<Vec<PartRow>> {
    let sql = format!("SELECT {PART_COLUMNS} FROM job_parts WHERE job_id = $1 ORDER BY seq");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(exec)
        .await?;
    rows.iter().map(part_from_row).collect()
}

/// The plan the job was split by, without its parts.
pub(super) async fn stored_plan<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    id: &str,
) -> Result<Option<SplitPlan>> {
    let sql = format!("SELECT {SPLIT_COLUMNS} FROM job_splits WHERE job_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(exec)
        .await?;
    Ok(row
        .as_ref()
        .map(split_from_row)
        .transpose()?
        .map(|(p, _)| p))
}

/// Adds a "part" note to the job's history.
async fn note(
    c: &mut PgConnection,
    id: &str,
    row: Option<&PartRow>,
    attempt: u32,
    reason: &str,
) -> Result<()> {
    let detail = row.map(
        |r| serde_json::json!({"seq": r.part.seq, "kind": r.part.kind, "attempt": r.part.attempt}),
    );
    sqlx::query(
        "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, \
         attempt, detail) VALUES ($1, $2, 'part', NULL, NULL, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(Timestamp::now().0)
    .bind(reason)
    .bind(row.and_then(|r| r.part.worker.clone()))
    .bind(i64::from(attempt))
    .bind(detail.as_ref().map(to_json))
    .execute(&mut *c)
    .await?;
    Ok(())
}

fn parts_change(id: &str) -> Change {
    Change::Parts { id: id.to_string() }
}

fn status_change(job: &Job) -> Change {
    Change::Status {
        id: job.id.clone(),
        status: job.status,
    }
}

pub(super) async fn split(
    c: &mut PgConnection,
    id: &str,
    attempt: u32,
    plan: &SplitPlan,
    now: Timestamp,
) -> Done<Job> {
    let (_, cur) = lock_job(c, id).await?;
    parts::check_split(id, &cur, attempt, plan)?;
    let old = job_parts(&mut *c, id).await?;
    let old_plan = stored_plan(&mut *c, id).await?;
    let re = parts::replan(old_plan.as_ref(), &old, plan);
    write_parts(c, id, plan, &re, &cur, now).await?;
    save_plan(c, id, plan, attempt, now).await?;
    let rows = job_parts(&mut *c, id).await?;
    release_job(c, id, attempt, parts::job_progress(&rows), now).await?;
    note(c, id, None, attempt, &parts::split_note(plan, &re)).await?;
    let (mut job, _) = current(&mut *c, id).await?;
    job.parts = rows.iter().map(PartRow::info).collect();
    Ok((job, vec![parts_change(id)]))
}

/// Writes the plan's parts over the job's old ones: kept parts join the new attempt, the
/// others are queued afresh, parts the plan no longer has are removed.
async fn write_parts(
    c: &mut PgConnection,
    id: &str,
    plan: &SplitPlan,
    re: &parts::Replan,
    cur: &Current,
    now: Timestamp,
) -> Result<()> {
    let drop: Vec<i64> = re.drop.iter().map(|s| i64::from(*s)).collect();
    sqlx::query("DELETE FROM job_parts WHERE job_id = $1 AND seq = ANY($2)")
        .bind(id)
        .bind(&drop)
        .execute(&mut *c)
        .await?;
    for p in &plan.parts {
        if re.keep.contains(&p.seq) {
            sqlx::query(
                "UPDATE job_parts SET job_attempt = $1, after = $2, updated_at = $3 \
                 WHERE job_id = $4 AND seq = $5",
            )
            .bind(i64::from(cur.attempt))
            .bind(to_json(&p.after))
            .bind(now.0)
            .bind(id)
            .bind(i64::from(p.seq))
            .execute(&mut *c)
            .await?;
            continue;
        }
        let base = re.base.get(&p.seq).copied().unwrap_or(0);
        queue_afresh(c, id, p, base, cur, now).await?;
    }
    Ok(())
}

/// Stores the plan (without its parts) as made by `attempt`.
async fn save_plan(
    c: &mut PgConnection,
    id: &str,
    plan: &SplitPlan,
    attempt: u32,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO job_splits (job_id, scratch_bucket, scratch_prefix, input_version, \
         max_parallel, detail, job_attempt, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id) DO UPDATE SET scratch_bucket = excluded.scratch_bucket, \
         scratch_prefix = excluded.scratch_prefix, input_version = excluded.input_version, \
         max_parallel = excluded.max_parallel, detail = excluded.detail, \
         job_attempt = excluded.job_attempt, created_at = excluded.created_at",
    )
    .bind(id)
    .bind(&plan.scratch.bucket)
    .bind(&plan.scratch.prefix)
    .bind(&plan.input_version)
    .bind(i64::from(plan.max_parallel))
    .bind(to_json(&plan.detail))
    .bind(i64::from(attempt))
    .bind(now.0)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The job gives up its worker and lease (it is split from now on), guarded by its attempt
/// still holding it.
async fn release_job(
    c: &mut PgConnection,
    id: &str,
    attempt: u32,
    progress: Option<Progress>,
    now: Timestamp,
) -> Result<()> {
    let released = sqlx::query(
        "UPDATE job_states SET worker = NULL, lease_expires_at = NULL, progress = $1, \
         updated_at = $2 WHERE id = $3 AND status = 'running' AND attempt = $4 \
         AND lease_expires_at IS NOT NULL",
    )
    .bind(progress.as_ref().map(to_json))
    .bind(now.0)
    .bind(id)
    .bind(i64::from(attempt))
    .execute(&mut *c)
    .await?;
    if released.rows_affected() == 0 {
        return Err(StoreError::IllegalTransition {
            id: id.to_string(),
            reason: "the job changed while it was being split".into(),
        });
    }
    Ok(())
}

/// Writes part `p` as queued for a new set of attempts counting on from `base`.
async fn queue_afresh(
    c: &mut PgConnection,
    id: &str,
    p: &crate::job::PartPlan,
    base: u32,
    cur: &Current,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO job_parts (job_id, seq, kind, start_us, end_us, after, status, attempt, \
         max_attempts, retry_base, job_attempt, run_after, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $7, $9, $10, $10) \
         ON CONFLICT (job_id, seq) DO UPDATE SET kind = excluded.kind, \
         start_us = excluded.start_us, end_us = excluded.end_us, after = excluded.after, \
         status = 'queued', attempt = excluded.attempt, max_attempts = excluded.max_attempts, \
         retry_base = excluded.retry_base, job_attempt = excluded.job_attempt, worker = NULL, \
         lease_expires_at = NULL, run_after = excluded.run_after, progress = NULL, \
         result = NULL, error = NULL, started_at = NULL, finished_at = NULL, \
         updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(i64::from(p.seq))
    .bind(p.kind.as_str())
    .bind(p.start_us)
    .bind(p.end_us)
    .bind(to_json(&p.after))
    .bind(i64::from(base))
    .bind(i64::from(cur.max_attempts))
    .bind(i64::from(cur.attempt))
    .bind(now.0)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The claimable parts (queued, due, not waiting on an unfinished part, their job running
/// split by the attempt that planned them, below its `max_parallel`), best first.
pub(super) const CLAIMABLE: &str = "FROM job_parts p JOIN job_states j ON j.id = p.job_id \
    JOIN job_splits sp ON sp.job_id = p.job_id \
    WHERE p.status = 'queued' AND p.run_after <= $1 AND j.status = 'running' \
      AND j.attempt = p.job_attempt AND j.lease_expires_at IS NULL \
      AND sp.job_attempt = p.job_attempt \
      AND NOT EXISTS (SELECT 1 FROM job_parts d WHERE d.job_id = p.job_id \
                      AND d.status <> 'succeeded' \
                      AND d.seq IN (SELECT value::BIGINT \
                                    FROM jsonb_array_elements_text(p.after::JSONB))) \
      AND (sp.max_parallel = 0 OR sp.max_parallel > \
           (SELECT count(*) FROM job_parts r WHERE r.job_id = p.job_id \
            AND r.status IN ('running', 'cancelling')))";

/// The job whose part a claim should take next, leaving out `tried` (unlocked: a hint).
pub(super) async fn next_job(
    c: &mut PgConnection,
    now: Timestamp,
    tried: &[String],
) -> Result<Option<String>> {
    let sql = format!(
        "SELECT p.job_id {CLAIMABLE} AND p.job_id <> ALL($2) \
         ORDER BY j.priority DESC, j.created_at, j.id, p.kind <> 'audio', p.seq LIMIT 1"
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now.0)
        .bind(tried)
        .fetch_optional(&mut *c)
        .await?)
}

/// Claims the next part of job `id` for `worker`, with the job locked: None when it has none
/// to give (any more).
pub(super) async fn claim_part_of(
    c: &mut PgConnection,
    id: &str,
    worker: &str,
    lease_until: Timestamp,
    now: Timestamp,
) -> Done<Option<ClaimedPart>> {
    let (job, _) = lock_job(c, id).await?;
    let sql = format!(
        "UPDATE job_parts SET status = 'running', attempt = job_parts.attempt + 1, worker = $3, \
         lease_expires_at = $4, started_at = $1, finished_at = NULL, updated_at = $1, \
         progress = NULL, error = NULL \
         WHERE (job_id, seq) = (SELECT p.job_id, p.seq {CLAIMABLE} AND p.job_id = $2 \
                                ORDER BY p.kind <> 'audio', p.seq LIMIT 1) \
         RETURNING {PART_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now.0)
        .bind(id)
        .bind(worker)
        .bind(lease_until.0)
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row.as_ref().map(part_from_row).transpose()? else {
        return Ok((None, Vec::new()));
    };
    let mut plan = stored_plan(&mut *c, id)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    plan.parts = job_parts(&mut *c, id)
        .await?
        .iter()
        .map(PartRow::plan)
        .collect();
    let reason = format!(
        "part {} ({}): attempt {} claimed by {worker}",
        row.part.seq,
        row.part.kind.as_str(),
        row.part.attempt
    );
    note(c, id, Some(&row), job.attempt, &reason).await?;
    let claimed = ClaimedPart {
        part: row.part,
        job,
        plan,
    };
    Ok((Some(claimed), vec![parts_change(id)]))
}

/// A heartbeat with progress: the part's lease and progress, then the job's progress.
pub(super) async fn heartbeat_part(
    c: &mut PgConnection,
    id: &str,
    seq: u32,
    attempt: u32,
    lease_until: Timestamp,
    progress: Option<&Progress>,
    now: Timestamp,
) -> Done<Heartbeat> {
    if progress.is_some() {
        lock_job(c, id).await?;
    }
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE job_parts SET lease_expires_at = $1, progress = COALESCE($2, progress), \
         updated_at = $3 WHERE job_id = $4 AND seq = $5 AND attempt = $6 \
         AND status IN ('running', 'cancelling') RETURNING status",
    )
    .bind(lease_until.0)
    .bind(progress.map(to_json))
    .bind(now.0)
    .bind(id)
    .bind(i64::from(seq))
    .bind(i64::from(attempt))
    .fetch_optional(&mut *c)
    .await?;
    let Some(status) = status else {
        let rows = job_parts(&mut *c, id).await?;
        return Err(parts::fenced(parts::find(&rows, id, seq)?, attempt));
    };
    let mut changes = Vec::new();
    if progress.is_some() {
        let rows = job_parts(&mut *c, id).await?;
        changes.extend(update_progress(c, id, &rows, now).await?);
    }
    let beat = Heartbeat {
        stop_requested: status == Status::Cancelling.as_str(),
        lease_expires_at: lease_until,
    };
    Ok((beat, changes))
}

/// Stores the job's progress aggregated from `rows`, if the job is running split by their
/// attempt.
async fn update_progress(
    c: &mut PgConnection,
    id: &str,
    rows: &[PartRow],
    now: Timestamp,
) -> Result<Option<Change>> {
    let (Some(progress), Some(first)) = (parts::job_progress(rows), rows.first()) else {
        return Ok(None);
    };
    let updated = sqlx::query(
        "UPDATE job_states SET progress = $1, updated_at = $2 WHERE id = $3 AND attempt = $4 \
         AND status IN ('running', 'cancelling') AND lease_expires_at IS NULL",
    )
    .bind(to_json(&progress))
    .bind(now.0)
    .bind(id)
    .bind(i64::from(first.part.job_attempt))
    .execute(&mut *c)
    .await?;
    Ok((updated.rows_affected() > 0).then(|| Change::Progress {
        id: id.to_string(),
        progress,
    }))
}

/// Ends a part's attempt (`lost`: only if its lease expired before `now`, as the reaper
/// asks). Returns the job, whether anything changed, and what to announce.
pub(super) async fn finish_part(
    c: &mut PgConnection,
    id: &str,
    report: Report,
    policy: &RetryPolicy,
    now: Timestamp,
    lost: bool,
) -> Done<(Job, bool)> {
    let (job, cur) = lock_job(c, id).await?;
    let rows = job_parts(&mut *c, id).await?;
    let row = parts::find(&rows, id, report.seq)?.clone();
    let expired = row.part.status.is_active()
        && row.part.attempt == report.attempt
        && row.lease_expires_at.is_some_and(|t| t < now);
    if lost && !expired {
        return Ok(((job, false), Vec::new()));
    }
    let end = parts::end(&job, &cur, &rows, report, now, policy)?;
    let changes = write_end(c, &job, &cur, &row, &end, now).await?;
    let (mut job, _) = current(&mut *c, id).await?;
    job.parts = job_parts(&mut *c, id)
        .await?
        .iter()
        .map(PartRow::info)
        .collect();
    Ok(((job, true), changes))
}

/// Writes a decided end of `row`'s attempt: the part, its siblings, the note, the job.
async fn write_end(
    c: &mut PgConnection,
    job: &Job,
    cur: &Current,
    row: &PartRow,
    end: &PartEnd,
    now: Timestamp,
) -> Result<Vec<Change>> {
    let u = &end.part;
    let written = sqlx::query(
        "UPDATE job_parts SET status = $1, error = $2, result = $3, run_after = $4, \
         retry_base = $5, finished_at = CASE WHEN $6 THEN $7 ELSE NULL END, \
         lease_expires_at = NULL, progress = CASE WHEN $1 = 'queued' THEN NULL \
         ELSE progress END, updated_at = $7 \
         WHERE job_id = $8 AND seq = $9 AND attempt = $10 AND status = $11",
    )
    .bind(u.status.as_str())
    .bind(u.error.as_ref().map(to_json))
    .bind(end.result.as_ref().map(to_json))
    .bind(u.run_after.0)
    .bind(i64::from(u.retry_base))
    .bind(u.finished)
    .bind(now.0)
    .bind(&job.id)
    .bind(i64::from(row.part.seq))
    .bind(i64::from(row.part.attempt))
    .bind(row.part.status.as_str())
    .execute(&mut *c)
    .await?;
    if written.rows_affected() == 0 {
        return Err(parts::fenced(row, row.part.attempt));
    }
    if end.stop_others {
        stop_parts(c, &job.id, row.part.job_attempt, now).await?;
    }
    note(c, &job.id, Some(row), job.attempt, &end.note).await?;
    let mut changes = vec![parts_change(&job.id)];
    match &end.job {
        Some(update) => {
            let ended = apply_update(&mut *c, &job.id, cur, update, now, None)
                .await?
                .ok_or_else(|| moved(&job.id))?;
            changes.push(status_change(&ended));
        }
        None => {
            let rows = job_parts(&mut *c, &job.id).await?;
            changes.extend(update_progress(c, &job.id, &rows, now).await?);
        }
    }
    Ok(changes)
}

/// Unreachable with the job's row locked; reported rather than forced if it ever happens.
fn moved(id: &str) -> StoreError {
    StoreError::IllegalTransition {
        id: id.to_string(),
        reason: "the job changed concurrently; try again".into(),
    }
}

/// The job's queued parts are cancelled, its running ones asked to stop.
async fn stop_parts(
    c: &mut PgConnection,
    id: &str,
    job_attempt: u32,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE job_parts SET status = CASE WHEN status = 'queued' THEN 'cancelled' \
         ELSE 'cancelling' END, finished_at = CASE WHEN status = 'queued' THEN $1 \
         ELSE finished_at END, updated_at = $1 \
         WHERE job_id = $2 AND job_attempt = $3 AND status IN ('queued', 'running')",
    )
    .bind(now.0)
    .bind(id)
    .bind(i64::from(job_attempt))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Cancels a job (split or not) with its row locked.
pub(super) async fn cancel(
    c: &mut PgConnection,
    id: &str,
    reason: &str,
    now: Timestamp,
) -> Done<Job> {
    let (job, cur) = lock_job(c, id).await?;
    let rows = job_parts(&mut *c, id).await?;
    let Some(update) = parts::cancel(id, &cur, &rows, reason)? else {
        return Ok((job, Vec::new()));
    };
    let mut changes = Vec::new();
    if cur.split {
        stop_parts(c, id, cur.attempt, now).await?;
        changes.push(parts_change(id));
    }
    let job = apply_update(&mut *c, id, &cur, &update, now, None)
        .await?
        .ok_or_else(|| moved(id))?;
    changes.insert(0, status_change(&job));
    Ok((job, changes))
}

/// The parts whose leases expired before `now`: (job, seq, attempt).
pub(super) async fn expired_parts(
    c: &mut PgConnection,
    now: Timestamp,
) -> Result<Vec<(String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT job_id, seq, attempt FROM job_parts WHERE status IN ('running', 'cancelling') \
         AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT 500",
    )
    .bind(now.0)
    .fetch_all(&mut *c)
    .await?)
}

/// Forgets an ended job's parts and plan (none of its parts still running).
pub(super) async fn forget_scratch(c: &mut PgConnection, id: &str) -> Done<bool> {
    let (job, _) = lock_job(c, id).await?;
    let rows = job_parts(&mut *c, id).await?;
    let planned = stored_plan(&mut *c, id).await?.is_some();
    if !planned || !job.status.is_terminal() || rows.iter().any(|r| r.part.status.is_active()) {
        return Ok((false, Vec::new()));
    }
    sqlx::query("DELETE FROM job_splits WHERE job_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    note(
        c,
        id,
        None,
        job.attempt,
        "scratch removed: a retry plans afresh",
    )
    .await?;
    Ok((true, vec![parts_change(id)]))
}
