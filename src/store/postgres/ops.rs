//! PostgreSQL writes. Each is one statement where it can be; transitions read the row, decide
//! through `store::transitions`, and apply a guarded UPDATE, deciding again if another process moved
//! the job in between.

use sqlx::{PgPool, Row};

use super::tables::returned_columns;
use crate::job::{Job, Status, Timestamp};
use crate::store::rows::{JOB_COLUMNS, job_from_row, retry_base, to_json};
use crate::store::transitions::{self, Current, Update};
use crate::store::{
    AttemptStats, MAX_LOG_BYTES_PER_ATTEMPT, MAX_LOG_LINES_PER_ATTEMPT, Result, StoreError,
    WorkerInfo,
};

pub(super) async fn current<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    id: &str,
) -> Result<(Job, Current)> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(exec)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let job = job_from_row(&row)?;
    let cur = Current::of(&job, retry_base(&row)?);
    Ok((job, cur))
}

/// Reads the job, lets `decide` choose an update (None: nothing to change), and applies it
/// guarded by the status and attempt it was decided from (and, for reaping, by the lease
/// having expired before `lease_before`). Returns the job and whether it changed.
pub(super) async fn transition<F>(
    pool: &PgPool,
    id: &str,
    lease_before: Option<Timestamp>,
    decide: F,
) -> Result<(Job, bool)>
where
    F: Fn(&Job, &Current, Timestamp) -> Result<Option<Update>>,
{
    for _ in 0..5 {
        let (job, cur) = current(pool, id).await?;
        let now = Timestamp::now();
        let Some(u) = decide(&job, &cur, now)? else {
            return Ok((job, false));
        };
        if let Some(job) = apply_update(pool, id, &cur, &u, now, lease_before).await? {
            return Ok((job, true));
        }
        // The row moved between reading and writing: decide again from its new state.
    }
    Err(StoreError::Backend(format!(
        "job '{id}' kept changing; gave up after 5 tries"
    )))
}

/// Applies a decided update guarded by the state it was decided from (status, attempt,
/// whether the job is split) and, for reaping, by the lease having expired before
/// `lease_before`: the job, or None when the row moved meanwhile.
pub(super) async fn apply_update<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    id: &str,
    cur: &Current,
    u: &Update,
    now: Timestamp,
    lease_before: Option<Timestamp>,
) -> Result<Option<Job>> {
    let sql = format!(
        "UPDATE job_states SET status = $1, last_reason = $2, error = $3, \
         outputs = COALESCE($4, job_states.outputs), run_after = $5, retry_base = $6, \
         finished_at = CASE WHEN $7 THEN $8 ELSE NULL END, \
         lease_expires_at = CASE WHEN $9 THEN NULL ELSE job_states.lease_expires_at END, \
         progress = CASE WHEN $10 THEN NULL ELSE job_states.progress END, \
         updated_at = $8 \
         FROM job_specs s \
         WHERE job_states.id = $11 AND s.id = $11 AND job_states.status = $12 \
         AND job_states.attempt = $13 \
         AND ($14::BIGINT IS NULL OR job_states.lease_expires_at < $14) \
         AND (job_states.status IN ('running', 'cancelling') \
              AND job_states.lease_expires_at IS NULL) = $15 \
         RETURNING {}",
        returned_columns("job_states")
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(u.status.as_str())
        .bind(&u.reason)
        .bind(u.error.as_ref().map(to_json))
        .bind(u.outputs.as_ref().map(to_json))
        .bind(u.run_after.0)
        .bind(i64::from(u.retry_base))
        .bind(u.finished)
        .bind(now.0)
        .bind(u.release)
        .bind(u.status == Status::Queued)
        .bind(id)
        .bind(cur.status.as_str())
        .bind(i64::from(cur.attempt))
        .bind(lease_before.map(|t| t.0))
        .bind(cur.split)
        .fetch_optional(exec)
        .await?;
    row.as_ref().map(job_from_row).transpose()
}

pub(super) async fn note(
    pool: &PgPool,
    id: &str,
    kind: &str,
    reason: &str,
    detail: &serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    let done = sqlx::query(
        "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt, detail) \
         SELECT id, $1, $2, NULL, NULL, $3, worker, attempt, $4 FROM job_states WHERE id = $5",
    )
    .bind(now.0)
    .bind(kind)
    .bind(reason)
    .bind(to_json(detail))
    .bind(id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { id: id.to_string() });
    }
    Ok(())
}

pub(super) async fn append_logs(
    pool: &PgPool,
    id: &str,
    attempt: u32,
    lines: &[String],
    now: Timestamp,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query("SELECT attempt, status FROM job_states WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let current: i64 = row.try_get("attempt")?;
    if current != i64::from(attempt) {
        let status: String = row.try_get("status")?;
        return Err(StoreError::Fenced {
            id: id.to_string(),
            attempt,
            current: current as u32,
            status: status.parse().unwrap_or(Status::Queued),
        });
    }
    // Lock the attempt's counters so concurrent appends stay within the budget.
    let counters = sqlx::query(
        "SELECT log_lines, log_bytes, log_dropped FROM job_attempts WHERE job_id = $1 AND attempt = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(i64::from(attempt))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let (kept, bytes, dropped_before): (i64, i64, i64) = (
        counters.try_get(0)?,
        counters.try_get(1)?,
        counters.try_get(2)?,
    );
    let (keep, dropped) =
        transitions::log_budget(lines, kept as u32, bytes as u64, dropped_before as u32);
    let mut to_insert: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    if dropped > 0 && dropped_before == 0 {
        to_insert.push(format!(
            "[ffarm] log limit reached ({MAX_LOG_LINES_PER_ATTEMPT} lines or {} MiB per attempt): further lines are dropped",
            MAX_LOG_BYTES_PER_ATTEMPT >> 20
        ));
    }
    let added_bytes: i64 = keep.iter().map(|l| l.len() as i64).sum();
    if !to_insert.is_empty() {
        sqlx::query(
            "INSERT INTO job_logs (job_id, attempt, at, line) SELECT $1, $2, $3, line FROM UNNEST($4::TEXT[]) AS line",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(now.0)
        .bind(&to_insert)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE job_attempts SET log_lines = log_lines + $1, log_bytes = log_bytes + $2, \
         log_dropped = log_dropped + $3 WHERE job_id = $4 AND attempt = $5",
    )
    .bind(keep.len() as i64)
    .bind(added_bytes)
    .bind(i64::from(dropped))
    .bind(id)
    .bind(i64::from(attempt))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn record_attempt(
    pool: &PgPool,
    id: &str,
    attempt: u32,
    stats: &AttemptStats,
) -> Result<()> {
    let done = sqlx::query("UPDATE job_attempts SET stats = $1 WHERE job_id = $2 AND attempt = $3")
        .bind(to_json(stats))
        .bind(id)
        .bind(i64::from(attempt))
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { id: id.to_string() });
    }
    Ok(())
}

pub(super) async fn register_worker(pool: &PgPool, w: &WorkerInfo, now: Timestamp) -> Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, host, address, slots, version, started_at, last_seen, draining, \
         sandbox) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO UPDATE SET \
         host = excluded.host, address = excluded.address, slots = excluded.slots, \
         version = excluded.version, started_at = excluded.started_at, \
         last_seen = excluded.last_seen, draining = excluded.draining, sandbox = excluded.sandbox",
    )
    .bind(&w.id)
    .bind(&w.host)
    .bind(&w.address)
    .bind(i64::from(w.slots))
    .bind(&w.version)
    .bind(w.started_at.0)
    .bind(now.0)
    .bind(w.draining)
    .bind(w.sandbox.as_ref().map(to_json))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn touch_worker(
    pool: &PgPool,
    id: &str,
    draining: bool,
    now: Timestamp,
) -> Result<()> {
    let done = sqlx::query("UPDATE workers SET last_seen = $1, draining = $2 WHERE id = $3")
        .bind(now.0)
        .bind(draining)
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { id: id.to_string() });
    }
    Ok(())
}

/// Removes a worker from the registry; false if it was not there.
pub(super) async fn remove_worker(pool: &PgPool, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM workers WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
