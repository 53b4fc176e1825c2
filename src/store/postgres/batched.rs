//! The batched statements: submits, claims, heartbeats and transitions of many jobs, each
//! kind as one statement (`gather.rs` gathers the calls into batches).

use std::collections::{HashMap, HashSet};

use sqlx::{PgPool, Row};

use super::claimed::Claimed;
use super::ops::{current, transition};
use super::tables::returned_columns;
use crate::job::{Job, JobSpec, Status, Timestamp};
use crate::progress::Progress;
use crate::store::rows::{JOB_COLUMNS, job_from_row, retry_base, to_json};
use crate::store::transitions::{Current, Update, check_fence};
use crate::store::{Heartbeat, Result, StoreError, Submitted};

/// Answers every request of a batch with the same backend failure.
pub(super) fn all_failed<T>(n: usize, e: &sqlx::Error) -> Vec<Result<T>> {
    let msg = e.to_string();
    (0..n)
        .map(|_| Err(StoreError::Backend(msg.clone())))
        .collect()
}

/// How a queued transition decides its update from the job's state: its row when it was
/// read (None when decided from what this process's claim left, `TransitionReq::claimed`).
pub(super) type Decide =
    Box<dyn Fn(Option<&Job>, &Current, Timestamp) -> Result<Option<Update>> + Send + Sync>;

/// A transition waiting in a batch: the job, how to decide its update, (reaping) the lease it
/// must still have, and (a finish) the state this process's claim left it in.
pub(super) struct TransitionReq {
    pub id: String,
    pub lease_before: Option<Timestamp>,
    pub decide: Decide,
    pub claimed: Option<Current>,
}

/// Many transitions in at most two statements: read the rows of those not decided from their
/// claim, decide each, apply all the guarded updates at once. Anything that moved in between
/// is decided again on its own, from its row.
pub(super) async fn transitions(
    pool: &PgPool,
    reqs: Vec<TransitionReq>,
) -> Vec<Result<(Job, bool)>> {
    let now = Timestamp::now();
    let mut results: Vec<Option<Result<(Job, bool)>>> = reqs.iter().map(|_| None).collect();
    let mut planned: Vec<(usize, Update, Current)> = Vec::new();
    let mut unread = Vec::new();
    let mut seen = HashSet::new();
    for (i, req) in reqs.iter().enumerate() {
        if !seen.insert(req.id.as_str()) {
            // The same job twice in one batch: the later call goes on its own, after.
            continue;
        }
        // Finishing an attempt this process claimed: decided from what the claim left, with
        // no read; the update's guard catches a job that moved since.
        if let Some(cur) = req.claimed
            && let Ok(Some(u)) = (req.decide)(None, &cur, now)
        {
            planned.push((i, u, cur));
            continue;
        }
        unread.push(i);
    }
    if !unread.is_empty() {
        let ids: Vec<&str> = unread.iter().map(|&i| reqs[i].id.as_str()).collect();
        match read(pool, &ids).await {
            Err(e) => {
                for &i in &unread {
                    results[i] = Some(Err(StoreError::Backend(e.to_string())));
                }
            }
            Ok(mut found) => {
                for &i in &unread {
                    let req = &reqs[i];
                    let (job, cur) = match found.remove(&req.id) {
                        None => {
                            results[i] = Some(Err(StoreError::NotFound { id: req.id.clone() }));
                            continue;
                        }
                        Some(Err(e)) => {
                            results[i] = Some(Err(e));
                            continue;
                        }
                        Some(Ok(read)) => read,
                    };
                    match (req.decide)(Some(&job), &cur, now) {
                        Err(e) => results[i] = Some(Err(e)),
                        Ok(None) => results[i] = Some(Ok((job, false))),
                        Ok(Some(u)) => planned.push((i, u, cur)),
                    }
                }
            }
        }
    }
    if !planned.is_empty() {
        let updated = apply_updates(pool, &reqs, &planned, now).await;
        match updated {
            Ok(jobs) => {
                let index: HashMap<&str, usize> = planned
                    .iter()
                    .map(|p| (reqs[p.0].id.as_str(), p.0))
                    .collect();
                for job in jobs {
                    if let Some(&i) = index.get(job.id.as_str()) {
                        results[i] = Some(Ok((job, true)));
                    }
                }
            }
            Err(e) => {
                for (i, _, _) in &planned {
                    results[*i] = Some(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
    // What is left moved underneath (or repeated a job): decide it again, on its own.
    let mut out = Vec::with_capacity(reqs.len());
    for (req, result) in reqs.iter().zip(results) {
        out.push(match result {
            Some(r) => r,
            None => {
                transition(pool, &req.id, req.lease_before, |j, c, n| {
                    (req.decide)(Some(j), c, n)
                })
                .await
            }
        });
    }
    out
}

/// The rows of `ids` by id, each with the state its transition is decided from, or why the
/// stored row could not be read (reported as that, not as a missing job).
async fn read(
    pool: &PgPool,
    ids: &[&str],
) -> std::result::Result<HashMap<String, Result<(Job, Current)>>, sqlx::Error> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1)");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let mut found = HashMap::new();
    for row in &rows {
        let id: String = row.try_get("id")?;
        let read = job_from_row(row).and_then(|job| {
            let cur = Current::of(&job, retry_base(row)?);
            Ok((job, cur))
        });
        found.insert(id, read);
    }
    Ok(found)
}

async fn apply_updates(
    pool: &PgPool,
    reqs: &[TransitionReq],
    planned: &[(usize, Update, Current)],
    now: Timestamp,
) -> std::result::Result<Vec<Job>, sqlx::Error> {
    let ids: Vec<String> = planned
        .iter()
        .map(|(i, _, _)| reqs[*i].id.clone())
        .collect();
    let statuses: Vec<String> = planned
        .iter()
        .map(|p| p.1.status.as_str().to_string())
        .collect();
    let reasons: Vec<String> = planned.iter().map(|p| p.1.reason.clone()).collect();
    let errors: Vec<Option<String>> = planned
        .iter()
        .map(|p| p.1.error.as_ref().map(to_json))
        .collect();
    let outputs: Vec<Option<String>> = planned
        .iter()
        .map(|p| p.1.outputs.as_ref().map(to_json))
        .collect();
    let run_after: Vec<i64> = planned.iter().map(|p| p.1.run_after.0).collect();
    let bases: Vec<i64> = planned.iter().map(|p| i64::from(p.1.retry_base)).collect();
    let finished: Vec<bool> = planned.iter().map(|p| p.1.finished).collect();
    let release: Vec<bool> = planned.iter().map(|p| p.1.release).collect();
    let reset: Vec<bool> = planned
        .iter()
        .map(|p| p.1.status == Status::Queued)
        .collect();
    let exp_status: Vec<String> = planned
        .iter()
        .map(|p| p.2.status.as_str().to_string())
        .collect();
    let exp_attempt: Vec<i64> = planned.iter().map(|p| i64::from(p.2.attempt)).collect();
    let lease_before: Vec<Option<i64>> = planned
        .iter()
        .map(|p| reqs[p.0].lease_before.map(|t| t.0))
        .collect();
    let exp_split: Vec<bool> = planned.iter().map(|p| p.2.split).collect();
    let sql = format!(
        "UPDATE job_states SET status = u.status, last_reason = u.reason, error = u.error, \
         outputs = COALESCE(u.outputs, job_states.outputs), run_after = u.run_after, retry_base = u.retry_base, \
         finished_at = CASE WHEN u.finished THEN $1 ELSE NULL END, \
         lease_expires_at = CASE WHEN u.release THEN NULL ELSE job_states.lease_expires_at END, \
         progress = CASE WHEN u.reset THEN NULL ELSE job_states.progress END, updated_at = $1 \
         FROM job_specs s, UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], \
                     $8::BIGINT[], $9::BOOL[], $10::BOOL[], $11::BOOL[], $12::TEXT[], $13::BIGINT[], \
                     $14::BIGINT[], $15::BOOL[]) \
              AS u(id, status, reason, error, outputs, run_after, retry_base, finished, release, reset, \
                   exp_status, exp_attempt, lease_before, exp_split) \
         WHERE job_states.id = u.id AND s.id = u.id AND job_states.status = u.exp_status \
         AND job_states.attempt = u.exp_attempt \
         AND (u.lease_before IS NULL OR job_states.lease_expires_at < u.lease_before) \
         AND (job_states.status IN ('running', 'cancelling') \
              AND job_states.lease_expires_at IS NULL) = u.exp_split \
         RETURNING {}",
        returned_columns("job_states")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now.0)
        .bind(&ids)
        .bind(&statuses)
        .bind(&reasons)
        .bind(&errors)
        .bind(&outputs)
        .bind(&run_after)
        .bind(&bases)
        .bind(&finished)
        .bind(&release)
        .bind(&reset)
        .bind(&exp_status)
        .bind(&exp_attempt)
        .bind(&lease_before)
        .bind(&exp_split)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().filter_map(|r| job_from_row(r).ok()).collect())
}

/// Claims for several workers in one statement: up to one queued job each, remembered in
/// `claimed` for the finish.
pub(super) async fn claims(
    pool: &PgPool,
    claimed: &Claimed,
    reqs: Vec<(String, Timestamp)>,
) -> Vec<Result<Option<Job>>> {
    let now = Timestamp::now();
    let workers: Vec<String> = reqs.iter().map(|r| r.0.clone()).collect();
    let leases: Vec<i64> = reqs.iter().map(|r| r.1.0).collect();
    let sql = format!(
        "WITH picked AS (SELECT id FROM job_states WHERE status = 'queued' AND run_after <= $1 \
                         ORDER BY priority DESC, created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
              numbered AS (SELECT id, row_number() OVER () AS rn FROM picked), \
              w AS (SELECT worker, lease, rn \
                    FROM UNNEST($3::TEXT[], $4::BIGINT[]) WITH ORDINALITY AS t(worker, lease, rn)) \
         UPDATE job_states SET status = 'running', attempt = job_states.attempt + 1, worker = w.worker, \
                lease_expires_at = w.lease, started_at = $1, finished_at = NULL, updated_at = $1, \
                progress = NULL, last_reason = 'claimed by ' || w.worker \
         FROM numbered JOIN w ON w.rn = numbered.rn, job_specs s \
         WHERE job_states.id = numbered.id AND s.id = numbered.id \
         RETURNING w.rn, {}",
        returned_columns("job_states")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now.0)
        .bind(reqs.len() as i64)
        .bind(&workers)
        .bind(&leases)
        .fetch_all(pool)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return all_failed(reqs.len(), &e),
    };
    let mut out: Vec<Result<Option<Job>>> = reqs.iter().map(|_| Ok(None)).collect();
    for row in rows {
        let Ok(rn) = row.try_get::<i64, _>("rn") else {
            continue;
        };
        if let Some(slot) = out.get_mut((rn - 1) as usize) {
            *slot = job_from_row(&row).map(Some);
            if let (Ok(Some(job)), Ok(base)) = (&*slot, retry_base(&row)) {
                claimed.remember(&job.id, Current::of(job, base));
            }
        }
    }
    out
}

/// A heartbeat waiting in a batch.
pub(super) struct HeartbeatReq {
    pub id: String,
    pub attempt: u32,
    pub lease_until: Timestamp,
    pub progress: Option<Progress>,
}

/// Renews many leases (recording their progress) in one statement.
pub(super) async fn heartbeats(pool: &PgPool, reqs: Vec<HeartbeatReq>) -> Vec<Result<Heartbeat>> {
    let now = Timestamp::now();
    let ids: Vec<String> = reqs.iter().map(|r| r.id.clone()).collect();
    let attempts: Vec<i64> = reqs.iter().map(|r| i64::from(r.attempt)).collect();
    let leases: Vec<i64> = reqs.iter().map(|r| r.lease_until.0).collect();
    let progress: Vec<Option<String>> = reqs
        .iter()
        .map(|r| r.progress.as_ref().map(to_json))
        .collect();
    let rows = sqlx::query(
        "UPDATE job_states SET lease_expires_at = h.lease, \
                progress = COALESCE(h.progress, job_states.progress), updated_at = $1 \
         FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[]) \
              AS h(id, attempt, lease, progress) \
         WHERE job_states.id = h.id AND job_states.attempt = h.attempt \
           AND job_states.status IN ('running', 'cancelling') \
           AND job_states.lease_expires_at IS NOT NULL \
         RETURNING job_states.id, job_states.status",
    )
    .bind(now.0)
    .bind(&ids)
    .bind(&attempts)
    .bind(&leases)
    .bind(&progress)
    .fetch_all(pool)
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return all_failed(reqs.len(), &e),
    };
    let mut status = HashMap::new();
    for row in &rows {
        if let (Ok(id), Ok(st)) = (
            row.try_get::<String, _>("id"),
            row.try_get::<String, _>("status"),
        ) {
            status.insert(id, st);
        }
    }
    let mut out = Vec::with_capacity(reqs.len());
    for r in &reqs {
        out.push(match status.get(&r.id) {
            Some(st) => Ok(Heartbeat {
                stop_requested: st == Status::Cancelling.as_str(),
                lease_expires_at: r.lease_until,
            }),
            // Not renewed: say why (fenced, or gone).
            None => match current(pool, &r.id).await {
                Ok((_, cur)) => check_fence(&r.id, &cur, r.attempt)
                    .and(Err(StoreError::Backend("heartbeat matched no row".into()))),
                Err(e) => Err(e),
            },
        });
    }
    out
}

/// A submit waiting in a batch.
pub(super) struct SubmitReq {
    pub id: String,
    pub spec: JobSpec,
}

/// Inserts many jobs in one statement; ids that already exist are compared with what is
/// stored (the same work: that job; different: a conflict).
pub(super) async fn submits(pool: &PgPool, reqs: Vec<SubmitReq>) -> Vec<Result<Submitted>> {
    let now = Timestamp::now();
    let text = |f: &dyn Fn(&SubmitReq) -> String| -> Vec<String> { reqs.iter().map(f).collect() };
    let opt = |f: &dyn Fn(&SubmitReq) -> Option<String>| -> Vec<Option<String>> {
        reqs.iter().map(f).collect()
    };
    let sql = format!(
        "WITH s AS (INSERT INTO job_specs (id, input_bucket, input_key, preset, output_bucket, \
                    output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, \
                    trigger, created_at, overwrite, chunking, media) \
              SELECT t.id, t.ib, t.ik, t.preset, t.ob, t.op, t.priority, t.max_attempts, t.timeout, \
                     t.on_success, t.on_failure, t.trigger, $1, t.overwrite, t.chunking, t.media \
              FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], \
                          $8::INT[], $9::BIGINT[], $10::BIGINT[], $11::TEXT[], $12::TEXT[], $13::TEXT[], \
                          $14::BOOL[], $15::TEXT[], $16::TEXT[]) \
                   AS t(id, ib, ik, preset, ob, op, priority, max_attempts, timeout, on_success, \
                        on_failure, trigger, overwrite, chunking, media) \
              ON CONFLICT (id) DO NOTHING RETURNING *), \
              st AS (INSERT INTO job_states (id, status, priority, created_at, on_success, \
                    on_failure, outputs, last_reason, updated_at, run_after) \
              SELECT id, 'queued', priority, created_at, on_success, on_failure, '[]', 'submitted', \
                     $1, $1 FROM s RETURNING *) \
         SELECT {} FROM s JOIN st ON st.id = s.id",
        returned_columns("st")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now.0)
        .bind(text(&|r| r.id.clone()))
        .bind(text(&|r| r.spec.input.bucket.clone()))
        .bind(text(&|r| r.spec.input.key.clone()))
        .bind(text(&|r| r.spec.preset.clone()))
        .bind(text(&|r| r.spec.output.bucket.clone()))
        .bind(text(&|r| r.spec.output.prefix.clone()))
        .bind(reqs.iter().map(|r| r.spec.priority).collect::<Vec<i32>>())
        .bind(
            reqs.iter()
                .map(|r| i64::from(r.spec.max_attempts))
                .collect::<Vec<i64>>(),
        )
        .bind(
            reqs.iter()
                .map(|r| r.spec.timeout_seconds as i64)
                .collect::<Vec<i64>>(),
        )
        .bind(opt(&|r| r.spec.on_success.clone()))
        .bind(opt(&|r| r.spec.on_failure.clone()))
        .bind(opt(&|r| r.spec.trigger.as_ref().map(to_json)))
        .bind(reqs.iter().map(|r| r.spec.overwrite).collect::<Vec<bool>>())
        .bind(text(&|r| to_json(&r.spec.chunking)))
        .bind(opt(&|r| {
            (!r.spec.media.is_empty()).then(|| to_json(&r.spec.media))
        }))
        .fetch_all(pool)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return all_failed(reqs.len(), &e),
    };
    let mut created = HashMap::new();
    for row in &rows {
        if let Ok(job) = job_from_row(row) {
            created.insert(job.id.clone(), job);
        }
    }
    let mut out = Vec::with_capacity(reqs.len());
    for r in &reqs {
        // The first request for a new id created it; any other gets the stored job.
        if let Some(job) = created.remove(&r.id) {
            out.push(Ok(Submitted { job, created: true }));
            continue;
        }
        out.push(match current(pool, &r.id).await {
            Ok((job, _)) if job.spec().same_work(&r.spec) => Ok(Submitted {
                job,
                created: false,
            }),
            Ok(_) => Err(StoreError::IdConflict { id: r.id.clone() }),
            Err(e) => Err(e),
        });
    }
    out
}
