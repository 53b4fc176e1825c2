//! PostgreSQL's delivery outbox (`migrations/postgres/0004_deliveries.sql`): taking due
//! deliveries under a hold (`FOR UPDATE SKIP LOCKED`, so workers never take the same one)
//! and recording each try, each one statement on the synchronous pool. The rows themselves
//! are written by the trigger on every job ending.

use std::time::Duration;

use sqlx::{PgPool, Row};

use crate::job::Timestamp;
use crate::store::rows::{JOB_COLUMNS, job_from_row, to_json};
use crate::store::{Delivery, Result, StoreError};

pub(super) async fn claim(
    pool: &PgPool,
    holder: &str,
    hold: Duration,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let now = Timestamp::now();
    let sql = format!(
        "UPDATE deliveries SET held_by = $1, held_until = $2 \
         WHERE delivery_id IN (SELECT delivery_id FROM deliveries \
                               WHERE next_try_at <= $3 AND (held_until IS NULL OR held_until < $3) \
                               ORDER BY next_try_at, delivery_id LIMIT $4 \
                               FOR UPDATE SKIP LOCKED) \
         RETURNING delivery_id, tries, {JOB_COLUMNS}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(holder)
        .bind(now.plus(hold).0)
        .bind(now.0)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(pool)
        .await?;
    let mut taken = rows
        .iter()
        .map(|r| {
            Ok(Delivery {
                id: r.try_get("delivery_id")?,
                tries: r.try_get::<i64, _>("tries")? as u32,
                job: job_from_row(r)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    taken.sort_by_key(|d| d.id);
    Ok(taken)
}

pub(super) async fn record(
    pool: &PgPool,
    delivery: i64,
    holder: &str,
    next_try: Option<Timestamp>,
    note: Option<(String, serde_json::Value)>,
) -> Result<()> {
    // One statement: the delivery moves only if `holder` still holds it, and the note is
    // written only for a delivery that moved.
    let (reason, detail) = match &note {
        Some((reason, detail)) => (Some(reason.as_str()), Some(to_json(detail))),
        None => (None, None),
    };
    let changed = "WITH moved AS ({MOVE} RETURNING id, attempt), \
         noted AS (INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt, detail) \
                   SELECT id, $3, 'delivery', NULL, NULL, $4, $2, attempt, $5 FROM moved WHERE $4::TEXT IS NOT NULL) \
         SELECT count(*) AS n FROM moved";
    let step = match next_try {
        None => "DELETE FROM deliveries WHERE delivery_id = $1 AND held_by = $2",
        Some(_) => {
            "UPDATE deliveries SET tries = tries + 1, next_try_at = $6, held_by = NULL, \
             held_until = NULL WHERE delivery_id = $1 AND held_by = $2"
        }
    };
    let sql = changed.replace("{MOVE}", step);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(delivery)
        .bind(holder)
        .bind(Timestamp::now().0)
        .bind(reason)
        .bind(detail);
    if let Some(at) = next_try {
        query = query.bind(at.0);
    }
    let n: i64 = query.fetch_one(pool).await?.try_get("n")?;
    if n == 0 {
        return Err(StoreError::IllegalTransition {
            id: format!("delivery {delivery}"),
            reason: format!(
                "not held by {holder} (its hold expired and another process took it, or it is done)"
            ),
        });
    }
    Ok(())
}
