//! SQLite's delivery outbox (`migrations/sqlite/0003_deliveries.sql`): taking due deliveries
//! under a hold and recording each try, both through the single writer. The rows themselves
//! are written by the trigger on every job ending.

use std::time::Duration;

use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use crate::job::Timestamp;
use crate::store::codec::{JOB_COLUMNS, job_from_row, to_json};
use crate::store::{Delivery, Result, StoreError};

impl SqliteStore {
    pub(super) async fn claim_deliveries_now(
        &self,
        holder: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let (holder, now) = (holder.to_string(), Timestamp::now());
        self.writer
            .write(false, move |c| {
                Box::pin(async move {
                    Ok((
                        claim(c, holder, now.plus(hold), limit, now).await?,
                        Vec::new(),
                    ))
                })
            })
            .await
    }

    pub(super) async fn record_delivery_now(
        &self,
        delivery: i64,
        holder: &str,
        next_try: Option<Timestamp>,
        note: Option<(String, serde_json::Value)>,
    ) -> Result<()> {
        let (holder, now) = (holder.to_string(), Timestamp::now());
        self.writer
            .write(true, move |c| {
                Box::pin(async move {
                    record(c, delivery, holder, next_try, note, now).await?;
                    Ok(((), Vec::new()))
                })
            })
            .await
    }
}

async fn claim(
    conn: &mut SqliteConnection,
    holder: String,
    held_until: Timestamp,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<Delivery>> {
    let sql = format!(
        "UPDATE deliveries SET held_by = ?1, held_until = ?2 \
         WHERE delivery_id IN (SELECT delivery_id FROM deliveries \
                               WHERE next_try_at <= ?3 AND (held_until IS NULL OR held_until < ?3) \
                               ORDER BY next_try_at, delivery_id LIMIT ?4) \
         RETURNING delivery_id, tries, {JOB_COLUMNS}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&holder)
        .bind(held_until.0)
        .bind(now.0)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&mut *conn)
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

async fn record(
    conn: &mut SqliteConnection,
    delivery: i64,
    holder: String,
    next_try: Option<Timestamp>,
    note: Option<(String, serde_json::Value)>,
    now: Timestamp,
) -> Result<()> {
    let held =
        sqlx::query("SELECT id, attempt FROM deliveries WHERE delivery_id = ? AND held_by = ?")
            .bind(delivery)
            .bind(&holder)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(held) = held else {
        return Err(StoreError::IllegalTransition {
            id: format!("delivery {delivery}"),
            reason: format!(
                "not held by {holder} (its hold expired and another process took it, or it is done)"
            ),
        });
    };
    let (job_id, attempt): (String, i64) = (held.try_get("id")?, held.try_get("attempt")?);
    if let Some((reason, detail)) = note {
        sqlx::query(
            "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt, detail) \
             VALUES (?, ?, 'delivery', NULL, NULL, ?, ?, ?, ?)",
        )
        .bind(&job_id)
        .bind(now.0)
        .bind(&reason)
        .bind(&holder)
        .bind(attempt)
        .bind(to_json(&detail))
        .execute(&mut *conn)
        .await?;
    }
    match next_try {
        None => {
            sqlx::query("DELETE FROM deliveries WHERE delivery_id = ?")
                .bind(delivery)
                .execute(&mut *conn)
                .await?;
        }
        Some(at) => {
            sqlx::query(
                "UPDATE deliveries SET tries = tries + 1, next_try_at = ?, held_by = NULL, \
                 held_until = NULL WHERE delivery_id = ?",
            )
            .bind(at.0)
            .bind(delivery)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
