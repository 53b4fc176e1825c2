//! SQLite write operations, each run on the writer's thread inside its batch transaction.
//! Every state change is one guarded UPDATE (`WHERE id = ? AND status = ? AND attempt = ?`);
//! the triggers in the migration record the event and open or close the attempt.

use rusqlite::{Connection, OptionalExtension, params};

use crate::job::{Job, JobSpec, Outcome, RetryPolicy, Status, Timestamp};
use crate::progress::Progress;
use crate::store::rows::{JOB_COLUMNS, job_from_row, retry_base, to_json};
use crate::store::transitions::{self, Current, Update};
use crate::store::{
    AttemptStats, Change, Heartbeat, MAX_LOG_BYTES_PER_ATTEMPT, MAX_LOG_LINES_PER_ATTEMPT, Result,
    StoreError, Submitted, WorkerInfo,
};

pub(super) type Done<T> = Result<(T, Vec<Change>)>;

pub(super) fn status_change(job: &Job) -> Change {
    Change::Status {
        id: job.id.clone(),
        status: job.status,
    }
}

/// Runs a cached statement and reads the job it returns, if any.
fn job_returned(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<Job>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(job_from_row).transpose()
}

pub(super) fn submit(
    conn: &Connection,
    id: String,
    spec: JobSpec,
    now: Timestamp,
) -> Done<Submitted> {
    let sql = format!(
        "INSERT INTO jobs (id, status, input_bucket, input_key, preset, output_bucket, output_prefix, \
         priority, max_attempts, timeout_seconds, on_success, on_failure, trigger, outputs, last_reason, \
         created_at, updated_at, run_after, overwrite, chunking, media) \
         VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, '[]', 'submitted', ?13, ?13, ?13, ?14, ?15, ?16) \
         ON CONFLICT (id) DO NOTHING RETURNING {JOB_COLUMNS}"
    );
    let inserted = job_returned(
        conn,
        &sql,
        params![
            id,
            spec.input.bucket,
            spec.input.key,
            spec.preset,
            spec.output.bucket,
            spec.output.prefix,
            spec.priority,
            i64::from(spec.max_attempts),
            spec.timeout_seconds as i64,
            spec.on_success,
            spec.on_failure,
            spec.trigger.as_ref().map(to_json),
            now.0,
            spec.overwrite,
            to_json(&spec.chunking),
            (!spec.media.is_empty()).then(|| to_json(&spec.media)),
        ],
    )?;
    if let Some(job) = inserted {
        let change = status_change(&job);
        return Ok((Submitted { job, created: true }, vec![change]));
    }
    let (job, _) = current(conn, &id)?;
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
pub(super) fn current(conn: &Connection, id: &str) -> Result<(Job, Current)> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([id])?;
    let row = rows
        .next()?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let job = job_from_row(row)?;
    let cur = Current::of(&job, retry_base(row)?);
    Ok((job, cur))
}

/// Applies a decided update, guarded by the state it was decided from.
pub(super) fn apply(
    conn: &Connection,
    id: &str,
    cur: &Current,
    u: &Update,
    now: Timestamp,
) -> Result<Job> {
    let sql = format!(
        "UPDATE jobs SET status = ?1, last_reason = ?2, error = ?3, outputs = COALESCE(?4, outputs), \
         run_after = ?5, retry_base = ?6, \
         finished_at = CASE WHEN ?7 THEN ?10 ELSE NULL END, \
         lease_expires_at = CASE WHEN ?8 THEN NULL ELSE lease_expires_at END, \
         progress = CASE WHEN ?9 THEN NULL ELSE progress END, \
         updated_at = ?10 \
         WHERE id = ?11 AND status = ?12 AND attempt = ?13 RETURNING {JOB_COLUMNS}"
    );
    let updated = job_returned(
        conn,
        &sql,
        params![
            u.status.as_str(),
            u.reason,
            u.error.as_ref().map(to_json),
            u.outputs.as_ref().map(to_json),
            u.run_after.0,
            i64::from(u.retry_base),
            u.finished,
            u.release,
            u.status == Status::Queued,
            now.0,
            id,
            cur.status.as_str(),
            i64::from(cur.attempt),
        ],
    )?;
    // Unreachable with a single writer; reported rather than forced if it ever happens.
    updated.ok_or_else(|| StoreError::IllegalTransition {
        id: id.to_string(),
        reason: "the job changed concurrently; try again".into(),
    })
}

pub(super) fn claim(
    conn: &Connection,
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
    let claimed = job_returned(conn, &sql, params![worker, lease_until.0, now.0])?;
    let changes = claimed.iter().map(status_change).collect();
    Ok((claimed, changes))
}

pub(super) fn heartbeat(
    conn: &Connection,
    id: String,
    attempt: u32,
    lease_until: Timestamp,
    progress: Option<Progress>,
    now: Timestamp,
) -> Done<Heartbeat> {
    let status: Option<String> = conn
        .prepare_cached(
            "UPDATE jobs SET lease_expires_at = ?, progress = COALESCE(?, progress), updated_at = ? \
             WHERE id = ? AND attempt = ? AND status IN ('running', 'cancelling') \
             AND lease_expires_at IS NOT NULL RETURNING status",
        )?
        .query_row(
            params![
                lease_until.0,
                progress.as_ref().map(to_json),
                now.0,
                id,
                i64::from(attempt),
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(status) = status else {
        let (_, cur) = current(conn, &id)?;
        transitions::check_fence(&id, &cur, attempt)?;
        return Err(StoreError::Backend("heartbeat matched no row".into()));
    };
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

pub(super) fn finish(
    conn: &Connection,
    id: String,
    attempt: u32,
    outcome: Outcome,
    policy: RetryPolicy,
    now: Timestamp,
) -> Done<Job> {
    let (_, cur) = current(conn, &id)?;
    let update = transitions::finish(&id, &cur, attempt, outcome, now, &policy, fastrand::f64())?;
    let job = apply(conn, &id, &cur, &update, now)?;
    let change = status_change(&job);
    Ok((job, vec![change]))
}

pub(super) fn cancel(conn: &Connection, id: String, reason: String, now: Timestamp) -> Done<Job> {
    let (job, cur) = current(conn, &id)?;
    let Some(update) = transitions::cancel(&id, &cur, &reason)? else {
        return Ok((job, Vec::new()));
    };
    let job = apply(conn, &id, &cur, &update, now)?;
    let change = status_change(&job);
    Ok((job, vec![change]))
}

pub(super) fn retry(conn: &Connection, id: String, now: Timestamp) -> Done<Job> {
    let (_, cur) = current(conn, &id)?;
    let update = transitions::retry(&id, &cur, now)?;
    let job = apply(conn, &id, &cur, &update, now)?;
    let change = status_change(&job);
    Ok((job, vec![change]))
}

pub(super) fn reap(conn: &Connection, policy: RetryPolicy, now: Timestamp) -> Done<Vec<Job>> {
    let ids = conn
        .prepare_cached(
            "SELECT id FROM jobs WHERE status IN ('running', 'cancelling') AND lease_expires_at < ? \
             ORDER BY lease_expires_at LIMIT 500",
        )?
        .query_map([now.0], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut jobs = Vec::with_capacity(ids.len());
    let mut changes = Vec::with_capacity(ids.len());
    for id in ids {
        let (_, cur) = current(conn, &id)?;
        let update = transitions::lease_expired(&id, &cur, now, &policy, fastrand::f64())?;
        let job = apply(conn, &id, &cur, &update, now)?;
        changes.push(status_change(&job));
        jobs.push(job);
    }
    Ok((jobs, changes))
}

pub(super) fn note(
    conn: &Connection,
    id: String,
    kind: String,
    reason: String,
    detail: serde_json::Value,
    now: Timestamp,
) -> Done<()> {
    let added = conn
        .prepare_cached(
            "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt, detail) \
             SELECT id, ?, ?, NULL, NULL, ?, worker, attempt, ? FROM jobs WHERE id = ?",
        )?
        .execute(params![now.0, kind, reason, to_json(&detail), id])?;
    if added == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(((), Vec::new()))
}

pub(super) fn append_logs(
    conn: &Connection,
    id: String,
    attempt: u32,
    lines: Vec<String>,
    now: Timestamp,
) -> Done<()> {
    let (_, cur) = current(conn, &id)?;
    if cur.attempt != attempt {
        return Err(StoreError::Fenced {
            id,
            attempt,
            current: cur.attempt,
            status: cur.status,
        });
    }
    let (kept, bytes, dropped_before): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT log_lines, log_bytes, log_dropped FROM job_attempts WHERE job_id = ? AND attempt = ?",
        )?
        .query_row(params![id, i64::from(attempt)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound { id: id.clone() })?;
    let (keep, dropped) =
        transitions::log_budget(&lines, kept as u32, bytes as u64, dropped_before as u32);
    let limit_notice = (dropped > 0 && dropped_before == 0).then(|| {
        format!(
            "[ffarm] log limit reached ({MAX_LOG_LINES_PER_ATTEMPT} lines or {} MiB per attempt): further lines are dropped",
            MAX_LOG_BYTES_PER_ATTEMPT >> 20
        )
    });
    let added_bytes: u64 = keep.iter().map(|l| l.len() as u64).sum();
    let mut insert = conn
        .prepare_cached("INSERT INTO job_logs (job_id, attempt, at, line) VALUES (?, ?, ?, ?)")?;
    for line in keep.iter().copied().chain(limit_notice.as_deref()) {
        insert.execute(params![id, i64::from(attempt), now.0, line])?;
    }
    conn.prepare_cached(
        "UPDATE job_attempts SET log_lines = log_lines + ?, log_bytes = log_bytes + ?, \
         log_dropped = log_dropped + ? WHERE job_id = ? AND attempt = ?",
    )?
    .execute(params![
        keep.len() as i64,
        added_bytes as i64,
        i64::from(dropped),
        id,
        i64::from(attempt),
    ])?;
    Ok(((), Vec::new()))
}

pub(super) fn record_attempt(
    conn: &Connection,
    id: String,
    attempt: u32,
    stats: AttemptStats,
) -> Done<()> {
    let updated = conn
        .prepare_cached("UPDATE job_attempts SET stats = ? WHERE job_id = ? AND attempt = ?")?
        .execute(params![to_json(&stats), id, i64::from(attempt)])?;
    if updated == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(((), Vec::new()))
}

pub(super) fn register_worker(conn: &Connection, w: WorkerInfo, now: Timestamp) -> Done<()> {
    conn.prepare_cached(
        "INSERT INTO workers (id, host, address, slots, version, started_at, last_seen, draining, \
         sandbox) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
         host = excluded.host, address = excluded.address, slots = excluded.slots, \
         version = excluded.version, started_at = excluded.started_at, \
         last_seen = excluded.last_seen, draining = excluded.draining, sandbox = excluded.sandbox",
    )?
    .execute(params![
        w.id,
        w.host,
        w.address,
        i64::from(w.slots),
        w.version,
        w.started_at.0,
        now.0,
        w.draining,
        w.sandbox.as_ref().map(to_json),
    ])?;
    Ok(((), vec![Change::Worker { id: w.id }]))
}

pub(super) fn touch_worker(
    conn: &Connection,
    id: String,
    draining: bool,
    now: Timestamp,
) -> Done<()> {
    let updated = conn
        .prepare_cached("UPDATE workers SET last_seen = ?, draining = ? WHERE id = ?")?
        .execute(params![now.0, draining, id])?;
    if updated == 0 {
        return Err(StoreError::NotFound { id });
    }
    Ok(((), vec![Change::Worker { id }]))
}

pub(super) fn remove_worker(conn: &Connection, id: String) -> Done<()> {
    conn.prepare_cached("DELETE FROM workers WHERE id = ?")?
        .execute([&id])?;
    Ok(((), vec![Change::Worker { id }]))
}
