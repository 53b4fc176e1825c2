//! SQLite write operations, each run inside the writer's batch transaction. Every state change
//! is one guarded UPDATE (`WHERE id = ? AND status = ? AND attempt = ?`); the triggers in the
//! migration record the event and open or close the attempt.

use sqlx::{Row, SqliteConnection};

use crate::job::{Job, JobSpec, Outcome, RetryPolicy, Status, Timestamp};
use crate::media::Progress;
use crate::store::codec::{JOB_COLUMNS, job_from_row, retry_base, to_json};
use crate::store::rules::{self, Current, Update};
use crate::store::{
    AttemptStats, Change, Heartbeat, MAX_LOG_BYTES_PER_ATTEMPT, MAX_LOG_LINES_PER_ATTEMPT, Result,
    StoreError, Submitted, WorkerInfo,
};

type Done<T> = Result<(T, Vec<Change>)>;

fn status_change(job: &Job) -> Change {
    Change::Status {
        id: job.id.clone(),
        status: job.status,
    }
}

pub(super) async fn submit(
    conn: &mut SqliteConnection,
    id: String,
    spec: JobSpec,
    now: Timestamp,
) -> Done<Submitted> {
    let sql = format!(
        "INSERT INTO jobs (id, status, input_bucket, input_key, preset, output_bucket, output_prefix, \
         priority, max_attempts, timeout_seconds, on_success, on_failure, trigger, outputs, last_reason, \
         created_at, updated_at, run_after) \
         VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', 'submitted', ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&id)
        .bind(&spec.input.bucket)
        .bind(&spec.input.key)
        .bind(&spec.preset)
        .bind(&spec.output.bucket)
        .bind(&spec.output.prefix)
        .bind(spec.priority)
        .bind(i64::from(spec.max_attempts))
        .bind(spec.timeout_seconds as i64)
        .bind(&spec.on_success)
        .bind(&spec.on_failure)
        .bind(spec.trigger.as_ref().map(to_json))
        .bind(now.0)
        .bind(now.0)
        .bind(now.0)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = row {
        let job = job_from_row(&row)?;
        let change = status_change(&job);
        return Ok((Submitted { job, created: true }, vec![change]));
    }
    let (job, _) = current(conn, &id).await?;
    if job.spec().same_work(&spec) {
        Ok((
            Submitted {
                job,
                created: false,
            },
            Vec::new(),
        ))
    } else {
        Err(StoreError::IdConflict { id })
    }
}

/// The job and the parts of its row transitions depend on.
pub(super) async fn current(conn: &mut SqliteConnection, id: &str) -> Result<(Job, Current)> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let job = job_from_row(&row)?;
    let cur = Current {
        status: job.status,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        retry_base: retry_base(&row)?,
    };
    Ok((job, cur))
}

/// Applies a decided update, guarded by the state it was decided from.
async fn apply(
    conn: &mut SqliteConnection,
    id: &str,
    cur: &Current,
    u: &Update,
    now: Timestamp,
) -> Result<Job> {
    let sql = format!(
        "UPDATE jobs SET status = ?, last_reason = ?, error = ?, outputs = COALESCE(?, outputs), \
         run_after = ?, retry_base = ?, \
         finished_at = CASE WHEN ? THEN ? ELSE NULL END, \
         lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END, \
         progress = CASE WHEN ? THEN NULL ELSE progress END, \
         updated_at = ? \
         WHERE id = ? AND status = ? AND attempt = ? RETURNING {JOB_COLUMNS}"
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
        .bind(now.0)
        .bind(id)
        .bind(cur.status.as_str())
        .bind(i64::from(cur.attempt))
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => job_from_row(&row),
        // Unreachable with a single writer; reported rather than forced if it ever happens.
        None => Err(StoreError::IllegalTransition {
            id: id.to_string(),
            reason: "the job changed concurrently; try again".into(),
        }),
    }
}

pub(super) async fn claim(
    conn: &mut SqliteConnection,
    worker: String,
    lease_until: Timestamp,
    now: Timestamp,
) -> Done<Option<Job>> {
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempt = attempt + 1, worker = ?1, \
         lease_expires_at = ?2, started_at = ?3, finished_at = NULL, updated_at = ?3, \
         progress = NULL, last_reason = 'claimed by ' || ?1 \
         WHERE id = (SELECT id FROM jobs INDEXED BY jobs_queue \
                     WHERE status = 'queued' AND run_after <= ?3 \
                     ORDER BY priority DESC, created_at, id LIMIT 1) \
         RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&worker)
        .bind(lease_until.0)
        .bind(now.0)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => {
            let job = job_from_row(&row)?;
            let change = status_change(&job);
            Ok((Some(job), vec![change]))
        }
        None => Ok((None, Vec::new())),
    }
}

pub(super) async fn heartbeat(
    conn: &mut SqliteConnection,
    id: String,
    attempt: u32,
    lease_until: Timestamp,
    progress: Option<Progress>,
    now: Timestamp,
) -> Done<Heartbeat> {
    let row = sqlx::query(
        "UPDATE jobs SET lease_expires_at = ?, progress = COALESCE(?, progress), updated_at = ? \
         WHERE id = ? AND attempt = ? AND status IN ('running', 'cancelling') RETURNING status",
    )
    .bind(lease_until.0)
    .bind(progress.as_ref().map(to_json))
    .bind(now.0)
    .bind(&id)
    .bind(i64::from(attempt))
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let (_, cur) = current(conn, &id).await?;
        rules::check_fence(&id, &cur, attempt)?;
        return Err(StoreError::Backend("heartbeat matched no row".into()));
    };
    let status: String = row.try_get("status")?;
    let changes = progress
        .map(|p| {
            vec![Change::Progress {
                id: id.clone(),
                progress: p,
            }]
        })
        .unwrap_or_default();
    Ok((
        Heartbeat {
            stop_requested: status == Status::Cancelling.as_str(),
            lease_expires_at: lease_until,
        },
        changes,
    ))
}

pub(super) async fn finish(
    conn: &mut SqliteConnection,
    id: String,
    attempt: u32,
    outcome: Outcome,
    policy: RetryPolicy,
    now: Timestamp,
) -> Done<Job> {
    let (_, cur) = current(conn, &id).await?;
    let update = rules::finish(&id, &cur, attempt, outcome, now, &policy, fastrand::f64())?;
    let job = apply(conn, &id, &cur, &update, now).await?;
    let change = status_change(&job);
    Ok((job, vec![change]))
}

pub(super) async fn cancel(
    conn: &mut SqliteConnection,
    id: String,
    reason: String,
    now: Timestamp,
) -> Done<Job> {
    let (job, cur) = current(conn, &id).await?;
    let Some(update) = rules::cancel(&id, &cur, &reason)? else {
        return Ok((job, Vec::new()));
    };
    let job = apply(conn, &id, &cur, &update, now).await?;
    let change = status_change(&job);
    Ok((job, vec![change]))
}

pub(super) async fn retry(conn: &mut SqliteConnection, id: String, now: Timestamp) -> Done<Job> {
    let (_, cur) = current(conn, &id).await?;
    let update = rules::retry(&id, &cur, now)?;
    let job = apply(conn, &id, &cur, &update, now).await?;
    let change = status_change(&job);
    Ok((job, vec![change]))
}

pub(super) async fn reap(
    conn: &mut SqliteConnection,
    policy: RetryPolicy,
    now: Timestamp,
) -> Done<Vec<Job>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE status IN ('running', 'cancelling') AND lease_expires_at < ? \
         ORDER BY lease_expires_at LIMIT 500",
    )
    .bind(now.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut jobs = Vec::with_capacity(ids.len());
    let mut changes = Vec::with_capacity(ids.len());
    for id in ids {
        let (_, cur) = current(conn, &id).await?;
        let update = rules::lease_expired(&id, &cur, now, &policy, fastrand::f64())?;
        let job = apply(conn, &id, &cur, &update, now).await?;
        changes.push(status_change(&job));
        jobs.push(job);
    }
    Ok((jobs, changes))
}

pub(super) async fn note(
    conn: &mut SqliteConnection,
    id: String,
    kind: String,
    reason: String,
    detail: serde_json::Value,
    now: Timestamp,
) -> Done<()> {
    let done = sqlx::query(
        "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt, detail) \
         SELECT id, ?, ?, NULL, NULL, ?, worker, attempt, ? FROM jobs WHERE id = ?",
    )
    .bind(now.0)
    .bind(&kind)
    .bind(&reason)
    .bind(to_json(&detail))
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(((), Vec::new()))
}

pub(super) async fn append_logs(
    conn: &mut SqliteConnection,
    id: String,
    attempt: u32,
    lines: Vec<String>,
    now: Timestamp,
) -> Done<()> {
    let (_, cur) = current(conn, &id).await?;
    if cur.attempt != attempt {
        return Err(StoreError::Fenced {
            id,
            attempt,
            current: cur.attempt,
            status: cur.status,
        });
    }
    let counters = sqlx::query("SELECT log_lines, log_bytes, log_dropped FROM job_attempts WHERE job_id = ? AND attempt = ?")
        .bind(&id)
        .bind(i64::from(attempt))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.clone() })?;
    let (kept, bytes, dropped_before): (i64, i64, i64) = (
        counters.try_get(0)?,
        counters.try_get(1)?,
        counters.try_get(2)?,
    );
    let (keep, dropped) =
        rules::log_budget(&lines, kept as u32, bytes as u64, dropped_before as u32);
    let mut to_insert: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    if dropped > 0 && dropped_before == 0 {
        to_insert.push(format!(
            "[ffarm] log limit reached ({MAX_LOG_LINES_PER_ATTEMPT} lines or {} MiB per attempt): further lines are dropped",
            MAX_LOG_BYTES_PER_ATTEMPT >> 20
        ));
    }
    let added_bytes: u64 = keep.iter().map(|l| l.len() as u64).sum();
    for chunk in to_insert.chunks(200) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO job_logs (job_id, attempt, at, line) ",
        );
        qb.push_values(chunk, |mut b, line| {
            b.push_bind(id.clone())
                .push_bind(i64::from(attempt))
                .push_bind(now.0)
                .push_bind(line.clone());
        });
        qb.build().execute(&mut *conn).await?;
    }
    sqlx::query(
        "UPDATE job_attempts SET log_lines = log_lines + ?, log_bytes = log_bytes + ?, \
         log_dropped = log_dropped + ? WHERE job_id = ? AND attempt = ?",
    )
    .bind(keep.len() as i64)
    .bind(added_bytes as i64)
    .bind(i64::from(dropped))
    .bind(&id)
    .bind(i64::from(attempt))
    .execute(&mut *conn)
    .await?;
    Ok(((), Vec::new()))
}

pub(super) async fn record_attempt(
    conn: &mut SqliteConnection,
    id: String,
    attempt: u32,
    stats: AttemptStats,
) -> Done<()> {
    let done = sqlx::query("UPDATE job_attempts SET stats = ? WHERE job_id = ? AND attempt = ?")
        .bind(to_json(&stats))
        .bind(&id)
        .bind(i64::from(attempt))
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(((), Vec::new()))
}

pub(super) async fn register_worker(
    conn: &mut SqliteConnection,
    w: WorkerInfo,
    now: Timestamp,
) -> Done<()> {
    sqlx::query(
        "INSERT INTO workers (id, host, address, slots, version, started_at, last_seen, draining) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET host = excluded.host, \
         address = excluded.address, slots = excluded.slots, version = excluded.version, \
         started_at = excluded.started_at, last_seen = excluded.last_seen, draining = excluded.draining",
    )
    .bind(&w.id)
    .bind(&w.host)
    .bind(&w.address)
    .bind(i64::from(w.slots))
    .bind(&w.version)
    .bind(w.started_at.0)
    .bind(now.0)
    .bind(w.draining)
    .execute(&mut *conn)
    .await?;
    Ok(((), vec![Change::Worker { id: w.id }]))
}

pub(super) async fn touch_worker(
    conn: &mut SqliteConnection,
    id: String,
    draining: bool,
    now: Timestamp,
) -> Done<()> {
    let done = sqlx::query("UPDATE workers SET last_seen = ?, draining = ? WHERE id = ?")
        .bind(now.0)
        .bind(draining)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(((), vec![Change::Worker { id }]))
}

pub(super) async fn remove_worker(conn: &mut SqliteConnection, id: String) -> Done<()> {
    sqlx::query("DELETE FROM workers WHERE id = ?")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    Ok(((), vec![Change::Worker { id }]))
}
