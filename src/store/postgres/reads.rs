//! PostgreSQL reads: jobs, pages, counts, history, logs, attempts, workers.

use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::job::{Job, Status, Timestamp};
use crate::store::filters::Dialect;
use crate::store::query;
use crate::store::rows::{JOB_COLUMNS, encode_cursor, job_from_row};
use crate::store::{
    AttemptInfo, Counts, JobEvent, ListFilter, LogLine, Page, Result, StoreError, WorkerInfo,
    page_limit,
};

pub(super) async fn get(pool: &PgPool, id: &str) -> Result<Job> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    job_from_row(&row)
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &ListFilter,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page> {
    let limit = page_limit(limit);
    let plan = query::plan(
        Dialect::Postgres,
        filter,
        |mut qb: QueryBuilder<Postgres>| async move {
            Ok(qb.build_query_scalar().fetch_one(pool).await?)
        },
    )
    .await?;
    let mut qb = query::list::<sqlx::Postgres>(Dialect::Postgres, filter, plan, limit, cursor)?;
    let rows = qb.build().fetch_all(pool).await?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
    let next_cursor = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| encode_cursor(j.created_at, &j.id))
    } else {
        None
    };
    Ok(Page { jobs, next_cursor })
}

pub(super) async fn counts(pool: &PgPool, filter: &ListFilter) -> Result<Counts> {
    let mut qb = query::counts::<sqlx::Postgres>(Dialect::Postgres, filter);
    let rows = qb.build().fetch_all(pool).await?;
    let mut counts: Counts = Status::ALL.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        if let Ok(s) = status.parse::<Status>() {
            counts.insert(s, n as u64);
        }
    }
    Ok(counts)
}

pub(super) async fn expired_leases(pool: &PgPool, now: Timestamp) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM job_states WHERE status IN ('running', 'cancelling') AND lease_expires_at < $1 \
         ORDER BY lease_expires_at LIMIT 500",
    )
    .bind(now.0)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn events(pool: &PgPool, id: &str) -> Result<Vec<JobEvent>> {
    get(pool, id).await?;
    let rows = sqlx::query(
        "SELECT seq, at, kind, from_status, to_status, reason, worker, attempt, detail \
         FROM job_events WHERE job_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let parse = |c: &str| -> Result<Option<Status>> {
                Ok(r.try_get::<Option<String>, _>(c)?
                    .and_then(|s| s.parse().ok()))
            };
            Ok(JobEvent {
                seq: r.try_get("seq")?,
                at: Timestamp(r.try_get("at")?),
                kind: r.try_get("kind")?,
                from: parse("from_status")?,
                to: parse("to_status")?,
                reason: r.try_get("reason")?,
                worker: r.try_get("worker")?,
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                detail: r
                    .try_get::<Option<String>, _>("detail")?
                    .and_then(|d| serde_json::from_str(&d).ok()),
            })
        })
        .collect()
}

pub(super) async fn logs(
    pool: &PgPool,
    id: &str,
    attempt: Option<u32>,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LogLine>> {
    get(pool, id).await?;
    let rows = sqlx::query(
        "SELECT seq, attempt, at, line FROM job_logs WHERE job_id = $1 \
         AND ($2::BIGINT IS NULL OR attempt = $2) AND seq > $3 ORDER BY seq LIMIT $4",
    )
    .bind(id)
    .bind(attempt.map(i64::from))
    .bind(after_seq)
    .bind(i64::from(limit.clamp(1, 10_000)))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LogLine {
                seq: r.try_get("seq")?,
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                at: Timestamp(r.try_get("at")?),
                line: r.try_get("line")?,
            })
        })
        .collect()
}

pub(super) async fn attempts(pool: &PgPool, id: &str) -> Result<Vec<AttemptInfo>> {
    get(pool, id).await?;
    let rows = sqlx::query(
        "SELECT attempt, worker, started_at, finished_at, outcome, error, stats, log_lines, \
         log_bytes, log_dropped FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AttemptInfo {
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                worker: r.try_get("worker")?,
                started_at: Timestamp(r.try_get("started_at")?),
                finished_at: r.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
                outcome: r.try_get("outcome")?,
                error: r
                    .try_get::<Option<String>, _>("error")?
                    .and_then(|e| serde_json::from_str(&e).ok()),
                stats: r
                    .try_get::<Option<String>, _>("stats")?
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default(),
                log_lines: r.try_get::<i64, _>("log_lines")? as u32,
                log_bytes: r.try_get::<i64, _>("log_bytes")? as u64,
                log_dropped: r.try_get::<i64, _>("log_dropped")? as u32,
            })
        })
        .collect()
}

pub(super) async fn workers(pool: &PgPool) -> Result<Vec<WorkerInfo>> {
    let rows = sqlx::query(
        "SELECT id, host, address, slots, version, started_at, last_seen, draining FROM workers ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT worker, id FROM job_states WHERE status IN ('running', 'cancelling') AND worker IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            Ok(WorkerInfo {
                running: held
                    .iter()
                    .filter(|(w, _)| *w == id)
                    .map(|(_, j)| j.clone())
                    .collect(),
                host: r.try_get("host")?,
                address: r.try_get("address")?,
                slots: r.try_get::<i64, _>("slots")? as u32,
                version: r.try_get("version")?,
                started_at: Timestamp(r.try_get("started_at")?),
                last_seen: Timestamp(r.try_get("last_seen")?),
                draining: r.try_get("draining")?,
                id,
            })
        })
        .collect()
}
