//! SQLite writes of split jobs (`migrations/sqlite/0007_job_parts.sql`), each run on the
//! writer's thread inside its batch transaction and its own savepoint: a split, a part's
//! claim, heartbeat and end, a split job's cancel, the reaping of lost parts, forgetting a
//! finished job's scratch. The single writer makes each decision and its writes one step no
//! other write comes between; the decisions themselves are `store::parts`'.

use rusqlite::{Connection, OptionalExtension, params};

use super::ops::{Done, apply, current, status_change};
use crate::job::{Job, RetryPolicy, SplitPlan, Status, Timestamp};
use crate::progress::Progress;
use crate::store::parts::{self, PartEnd, PartRow, Report, worker_lost};
use crate::store::rows::{
    JOB_COLUMNS, PART_COLUMNS, SPLIT_COLUMNS, job_from_row, part_from_row, split_from_row, to_json,
};
use crate::store::transitions::Current;
use crate::store::{Change, Heartbeat, Result, StoreError};

/// The job's parts, by seq.
pub(super) fn job_parts(conn: &Connection, id: &str) -> Result<Vec<PartRow>> {
    let sql = format!("SELECT {PART_COLUMNS} FROM job_parts WHERE job_id = ? ORDER BY seq");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(part_from_row(row)?);
    }
    Ok(out)
}

/// The plan the job was split by (its parts filled in), and the attempt that made it.
pub(super) fn stored_plan(conn: &Connection, id: &str) -> Result<Option<(SplitPlan, u32)>> {
    let sql = format!("SELECT {SPLIT_COLUMNS} FROM job_splits WHERE job_id = ?");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([id])?;
    let Some((mut plan, attempt)) = rows.next()?.map(split_from_row).transpose()? else {
        return Ok(None);
    };
    plan.parts = job_parts(conn, id)?.iter().map(PartRow::plan).collect();
    Ok(Some((plan, attempt)))
}

/// Adds a "part" note to the job's history.
fn note(
    conn: &Connection,
    id: &str,
    row: Option<&PartRow>,
    attempt: u32,
    reason: &str,
) -> Result<()> {
    let detail = row.map(
        |r| serde_json::json!({"seq": r.part.seq, "kind": r.part.kind, "attempt": r.part.attempt}),
    );
    conn.prepare_cached(
        "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, \
         attempt, detail) VALUES (?, ?, 'part', NULL, NULL, ?, ?, ?, ?)",
    )?
    .execute(params![
        id,
        Timestamp::now().0,
        reason,
        row.and_then(|r| r.part.worker.clone()),
        i64::from(attempt),
        detail.as_ref().map(to_json),
    ])?;
    Ok(())
}

fn parts_change(id: &str) -> Change {
    Change::Parts { id: id.to_string() }
}

pub(super) fn split(
    conn: &Connection,
    id: String,
    attempt: u32,
    plan: SplitPlan,
    now: Timestamp,
) -> Done<Job> {
    let (_, cur) = current(conn, &id)?;
    parts::check_split(&id, &cur, attempt, &plan)?;
    let old = job_parts(conn, &id)?;
    let old_plan = stored_plan(conn, &id)?.map(|(p, _)| p);
    let re = parts::replan(old_plan.as_ref(), &old, &plan);
    write_parts(conn, &id, &plan, &re, &cur, now)?;
    save_plan(conn, &id, &plan, attempt, now)?;
    let rows = job_parts(conn, &id)?;
    let mut job = release_job(conn, &id, attempt, parts::job_progress(&rows), now)?;
    note(conn, &id, None, attempt, &parts::split_note(&plan, &re))?;
    job.parts = rows.iter().map(PartRow::info).collect();
    Ok((job, vec![parts_change(&id)]))
}

/// Writes the plan's parts over the job's old ones: kept parts join the new attempt, the
/// others are queued afresh, parts the plan no longer has are removed.
fn write_parts(
    conn: &Connection,
    id: &str,
    plan: &SplitPlan,
    re: &parts::Replan,
    cur: &Current,
    now: Timestamp,
) -> Result<()> {
    for seq in &re.drop {
        conn.prepare_cached("DELETE FROM job_parts WHERE job_id = ? AND seq = ?")?
            .execute(params![id, i64::from(*seq)])?;
    }
    let (job_attempt, max) = (i64::from(cur.attempt), i64::from(cur.max_attempts));
    for p in &plan.parts {
        let after = to_json(&p.after);
        if re.keep.contains(&p.seq) {
            conn.prepare_cached(
                "UPDATE job_parts SET job_attempt = ?, after = ?, updated_at = ? \
                 WHERE job_id = ? AND seq = ?",
            )?
            .execute(params![job_attempt, after, now.0, id, i64::from(p.seq)])?;
            continue;
        }
        let base = i64::from(re.base.get(&p.seq).copied().unwrap_or(0));
        conn.prepare_cached(
            "INSERT INTO job_parts (job_id, seq, kind, start_us, end_us, after, status, attempt, \
             max_attempts, retry_base, job_attempt, run_after, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?7, ?9, ?10, ?10) \
             ON CONFLICT (job_id, seq) DO UPDATE SET kind = excluded.kind, \
             start_us = excluded.start_us, end_us = excluded.end_us, after = excluded.after, \
             status = 'queued', attempt = excluded.attempt, max_attempts = excluded.max_attempts, \
             retry_base = excluded.retry_base, job_attempt = excluded.job_attempt, worker = NULL, \
             lease_expires_at = NULL, run_after = excluded.run_after, progress = NULL, \
             result = NULL, error = NULL, started_at = NULL, finished_at = NULL, \
             updated_at = excluded.updated_at",
        )?
        .execute(params![
            id,
            i64::from(p.seq),
            p.kind.as_str(),
            p.start_us,
            p.end_us,
            after,
            base,
            max,
            job_attempt,
            now.0,
        ])?;
    }
    Ok(())
}

/// Stores the plan (without its parts) as made by `attempt`.
fn save_plan(
    conn: &Connection,
    id: &str,
    plan: &SplitPlan,
    attempt: u32,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO job_splits (job_id, scratch_bucket, scratch_prefix, \
         input_version, max_parallel, detail, job_attempt, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        id,
        plan.scratch.bucket,
        plan.scratch.prefix,
        plan.input_version,
        i64::from(plan.max_parallel),
        to_json(&plan.detail),
        i64::from(attempt),
        now.0,
    ])?;
    Ok(())
}

/// The job gives up its worker and lease (it is split from now on), guarded by its attempt
/// still holding it.
fn release_job(
    conn: &Connection,
    id: &str,
    attempt: u32,
    progress: Option<Progress>,
    now: Timestamp,
) -> Result<Job> {
    let sql = format!(
        "UPDATE jobs SET worker = NULL, lease_expires_at = NULL, progress = ?, updated_at = ? \
         WHERE id = ? AND status = 'running' AND attempt = ? AND lease_expires_at IS NOT NULL \
         RETURNING {JOB_COLUMNS}"
    );
    conn.prepare_cached(&sql)?
        .query_row(
            params![
                progress.as_ref().map(to_json),
                now.0,
                id,
                i64::from(attempt)
            ],
            |r| Ok(job_from_row(r)),
        )
        .optional()?
        .ok_or_else(|| StoreError::IllegalTransition {
            id: id.to_string(),
            reason: "the job changed while it was being split".into(),
        })?
}

pub(super) fn claim_part(
    conn: &Connection,
    worker: String,
    lease_until: Timestamp,
    now: Timestamp,
) -> Done<Option<crate::store::ClaimedPart>> {
    let sql = format!(
        "UPDATE job_parts SET status = 'running', attempt = attempt + 1, worker = ?1, \
         lease_expires_at = ?2, started_at = ?3, finished_at = NULL, updated_at = ?3, \
         progress = NULL, error = NULL \
         WHERE (job_id, seq) = ( \
           SELECT p.job_id, p.seq FROM job_parts p INDEXED BY job_parts_queued \
             JOIN jobs j ON j.id = p.job_id JOIN job_splits sp ON sp.job_id = p.job_id \
            WHERE p.status = 'queued' AND p.run_after <= ?3 AND j.status = 'running' \
              AND j.attempt = p.job_attempt AND j.lease_expires_at IS NULL \
              AND sp.job_attempt = p.job_attempt \
              AND NOT EXISTS (SELECT 1 FROM json_each(p.after) a JOIN job_parts d \
                              ON d.job_id = p.job_id AND d.seq = a.value \
                              WHERE d.status <> 'succeeded') \
              AND (sp.max_parallel = 0 OR sp.max_parallel > \
                   (SELECT count(*) FROM job_parts r WHERE r.job_id = p.job_id \
                    AND r.status IN ('running', 'cancelling'))) \
            ORDER BY j.priority DESC, j.created_at, j.id, p.kind <> 'audio', p.seq LIMIT 1) \
         RETURNING {PART_COLUMNS}"
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params![worker, lease_until.0, now.0], |r| {
            Ok(part_from_row(r))
        })
        .optional()?
        .transpose()?;
    let Some(row) = row else {
        return Ok((None, Vec::new()));
    };
    let id = row.part.job_id.clone();
    let (job, _) = current(conn, &id)?;
    let (plan, _) =
        stored_plan(conn, &id)?.ok_or_else(|| StoreError::NotFound { id: id.clone() })?;
    let reason = format!(
        "part {} ({}): attempt {} claimed by {worker}",
        row.part.seq,
        row.part.kind.as_str(),
        row.part.attempt
    );
    note(conn, &id, Some(&row), job.attempt, &reason)?;
    let claimed = crate::store::ClaimedPart {
        part: row.part,
        job,
        plan,
    };
    Ok((Some(claimed), vec![parts_change(&id)]))
}

pub(super) fn heartbeat_part(
    conn: &Connection,
    id: String,
    seq: u32,
    attempt: u32,
    lease_until: Timestamp,
    progress: Option<Progress>,
    now: Timestamp,
) -> Done<Heartbeat> {
    let status: Option<String> = conn
        .prepare_cached(
            "UPDATE job_parts SET lease_expires_at = ?, progress = COALESCE(?, progress), \
             updated_at = ? WHERE job_id = ? AND seq = ? AND attempt = ? \
             AND status IN ('running', 'cancelling') RETURNING status",
        )?
        .query_row(
            params![
                lease_until.0,
                progress.as_ref().map(to_json),
                now.0,
                id,
                i64::from(seq),
                i64::from(attempt),
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(status) = status else {
        let rows = job_parts(conn, &id)?;
        return Err(parts::fenced(parts::find(&rows, &id, seq)?, attempt));
    };
    let mut changes = Vec::new();
    if progress.is_some() {
        let rows = job_parts(conn, &id)?;
        changes.extend(update_progress(conn, &id, &rows, now)?);
    }
    let beat = Heartbeat {
        stop_requested: status == Status::Cancelling.as_str(),
        lease_expires_at: lease_until,
    };
    Ok((beat, changes))
}

/// Stores the job's progress aggregated from `rows`, if the job is running split by their
/// attempt.
fn update_progress(
    conn: &Connection,
    id: &str,
    rows: &[PartRow],
    now: Timestamp,
) -> Result<Option<Change>> {
    let Some(progress) = parts::job_progress(rows) else {
        return Ok(None);
    };
    let Some(job_attempt) = rows.first().map(|r| i64::from(r.part.job_attempt)) else {
        return Ok(None);
    };
    let updated = conn
        .prepare_cached(
            "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND attempt = ? \
             AND status IN ('running', 'cancelling') AND lease_expires_at IS NULL",
        )?
        .execute(params![to_json(&progress), now.0, id, job_attempt])?;
    Ok((updated > 0).then(|| Change::Progress {
        id: id.to_string(),
        progress,
    }))
}

pub(super) fn finish_part(
    conn: &Connection,
    id: String,
    report: Report,
    policy: RetryPolicy,
    now: Timestamp,
) -> Done<Job> {
    let (job, cur) = current(conn, &id)?;
    let rows = job_parts(conn, &id)?;
    let row = parts::find(&rows, &id, report.seq)?.clone();
    let end = parts::end(&job, &cur, &rows, report, now, &policy)?;
    let changes = write_end(conn, &job, &cur, &row, &end, now)?;
    let (mut job, _) = current(conn, &id)?;
    job.parts = job_parts(conn, &id)?.iter().map(PartRow::info).collect();
    Ok((job, changes))
}

/// Writes a decided end of `row`'s attempt: the part, its siblings, the note, the job.
fn write_end(
    conn: &Connection,
    job: &Job,
    cur: &Current,
    row: &PartRow,
    end: &PartEnd,
    now: Timestamp,
) -> Result<Vec<Change>> {
    let u = &end.part;
    let written = conn
        .prepare_cached(
            "UPDATE job_parts SET status = ?1, error = ?2, result = ?3, run_after = ?4, \
             retry_base = ?5, finished_at = CASE WHEN ?6 THEN ?7 ELSE NULL END, \
             lease_expires_at = NULL, progress = CASE WHEN ?1 = 'queued' THEN NULL \
             ELSE progress END, updated_at = ?7 \
             WHERE job_id = ?8 AND seq = ?9 AND attempt = ?10 AND status = ?11",
        )?
        .execute(params![
            u.status.as_str(),
            u.error.as_ref().map(to_json),
            end.result.as_ref().map(to_json),
            u.run_after.0,
            i64::from(u.retry_base),
            u.finished,
            now.0,
            job.id,
            i64::from(row.part.seq),
            i64::from(row.part.attempt),
            row.part.status.as_str(),
        ])?;
    if written == 0 {
        return Err(parts::fenced(row, row.part.attempt));
    }
    if end.stop_others {
        stop_parts(conn, &job.id, row.part.job_attempt, now)?;
    }
    note(conn, &job.id, Some(row), job.attempt, &end.note)?;
    let mut changes = vec![parts_change(&job.id)];
    match &end.job {
        Some(update) => changes.push(status_change(&apply(conn, &job.id, cur, update, now)?)),
        None => {
            let rows = job_parts(conn, &job.id)?;
            changes.extend(update_progress(conn, &job.id, &rows, now)?);
        }
    }
    Ok(changes)
}

/// The job's queued parts are cancelled, its running ones asked to stop.
fn stop_parts(conn: &Connection, id: &str, job_attempt: u32, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE job_parts SET status = CASE WHEN status = 'queued' THEN 'cancelled' \
         ELSE 'cancelling' END, finished_at = CASE WHEN status = 'queued' THEN ?1 \
         ELSE finished_at END, updated_at = ?1 \
         WHERE job_id = ?2 AND job_attempt = ?3 AND status IN ('queued', 'running')",
    )?
    .execute(params![now.0, id, i64::from(job_attempt)])?;
    Ok(())
}

/// Cancels a split job (`cur.split`): None when there is nothing to change.
pub(super) fn cancel_split(
    conn: &Connection,
    job: Job,
    cur: &Current,
    reason: &str,
    now: Timestamp,
) -> Done<Job> {
    let rows = job_parts(conn, &job.id)?;
    let Some(update) = parts::cancel(&job.id, cur, &rows, reason)? else {
        return Ok((job, Vec::new()));
    };
    stop_parts(conn, &job.id, cur.attempt, now)?;
    let job = apply(conn, &job.id, cur, &update, now)?;
    let changes = vec![status_change(&job), parts_change(&job.id)];
    Ok((job, changes))
}

/// Ends the part attempts whose leases expired: the jobs that changed status.
pub(super) fn reap_parts(conn: &Connection, policy: RetryPolicy, now: Timestamp) -> Done<Vec<Job>> {
    let lost = conn
        .prepare_cached(
            "SELECT job_id, seq, attempt FROM job_parts \
             WHERE status IN ('running', 'cancelling') AND lease_expires_at < ? \
             ORDER BY lease_expires_at LIMIT 500",
        )?
        .query_map([now.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut jobs, mut changes) = (Vec::new(), Vec::new());
    for (id, seq, attempt) in lost {
        let (job, cur) = current(conn, &id)?;
        let rows = job_parts(conn, &id)?;
        let row = parts::find(&rows, &id, seq)?.clone();
        // A part whose end cannot be decided is left for an operator, not in the way of the
        // others (nothing of it is written before the decision).
        let end = match parts::end(&job, &cur, &rows, worker_lost(seq, attempt), now, &policy) {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!("reaping part {id}#{seq}: {e}");
                continue;
            }
        };
        changes.extend(write_end(conn, &job, &cur, &row, &end, now)?);
        if end.job.is_some() {
            jobs.push(current(conn, &id)?.0);
        }
    }
    Ok((jobs, changes))
}

/// Forgets an ended job's plan and scratch (none of its parts still running). Its parts stay,
/// as its history; a retry then plans afresh and keeps none of them.
pub(super) fn forget_scratch(conn: &Connection, id: String) -> Done<bool> {
    let (job, _) = current(conn, &id)?;
    let rows = job_parts(conn, &id)?;
    let planned = stored_plan(conn, &id)?.is_some();
    if !planned || !job.status.is_terminal() || rows.iter().any(|r| r.part.status.is_active()) {
        return Ok((false, Vec::new()));
    }
    conn.prepare_cached("DELETE FROM job_splits WHERE job_id = ?")?
        .execute([&id])?;
    note(
        conn,
        &id,
        None,
        job.attempt,
        "scratch removed: a retry plans afresh",
    )?;
    Ok((true, vec![parts_change(&id)]))
}
