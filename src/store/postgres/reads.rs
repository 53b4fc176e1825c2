//! PostgreSQL reads: jobs, pages, counts, history, logs, attempts, workers.

use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::job::{Job, Status, Timestamp};
use crate::store::filters::Dialect;
use crate::store::query;
use crate::store::rows::{
    ATTEMPT_COLUMNS, EVENT_COLUMNS, JOB_COLUMNS, LOG_COLUMNS, WORKER_COLUMNS, attempt_from_row,
    encode_cursor, event_from_row, job_from_row, log_from_row, workers_from_rows,
};
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
    let sql = format!("SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = $1 ORDER BY seq");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn logs(
    pool: &PgPool,
    id: &str,
    attempt: Option<u32>,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LogLine>> {
    get(pool, id).await?;
    let sql = format!(
        "SELECT {LOG_COLUMNS} FROM job_logs WHERE job_id = $1 \
         AND ($2::BIGINT IS NULL OR attempt = $2) AND seq > $3 ORDER BY seq LIMIT $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(attempt.map(i64::from))
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(pool)
        .await?;
    rows.iter().map(log_from_row).collect()
}

pub(super) async fn attempts(pool: &PgPool, id: &str) -> Result<Vec<AttemptInfo>> {
    get(pool, id).await?;
    let sql =
        format!("SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = $1 ORDER BY attempt");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// The registered workers with the jobs they hold, and the parts `held_parts` says they hold
/// (pairs of worker and "JOB#SEQ").
pub(super) async fn workers(
    pool: &PgPool,
    held_parts: Vec<(String, String)>,
) -> Result<Vec<WorkerInfo>> {
    let sql = format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    let mut held: Vec<(String, String)> = sqlx::query_as(
        "SELECT worker, id FROM job_states WHERE status IN ('running', 'cancelling') AND worker IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    held.extend(held_parts);
    workers_from_rows(&rows, &held)
}
