//! SQLite's delivery outbox (`migrations/sqlite/0003_deliveries.sql`): taking due deliveries
//! under a hold and recording each try, both through the single writer. The rows themselves
//! are written by the trigger on every job ending.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::job::Timestamp;
use crate::store::rows::{JOB_COLUMNS, job_from_row, to_json};
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
                Ok((claim(c, holder, now.plus(hold), limit, now)?, Vec::new()))
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
                record(c, delivery, holder, next_try, note, now)?;
                Ok(((), Vec::new()))
            })
            .await
    }
}

fn claim(
    conn: &Connection,
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
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![
        holder,
        held_until.0,
        now.0,
        i64::from(limit.clamp(1, 1000))
    ])?;
    let mut taken = Vec::new();
    while let Some(r) = rows.next()? {
        taken.push(Delivery {
            id: r.get("delivery_id")?,
            tries: r.get::<_, i64>("tries")? as u32,
            job: job_from_row(r)?,
        });
    }
    taken.sort_by_key(|d| d.id);
    Ok(taken)
}

fn record(
    conn: &Connection,
    delivery: i64,
    holder: String,
    next_try: Option<Timestamp>,
    note: Option<(String, serde_json::Value)>,
    now: Timestamp,
) -> Result<()> {
    let held: Option<(String, i64)> = conn
        .prepare_cached("SELECT id, attempt FROM deliveries WHERE delivery_id = ? AND held_by = ?")?
        .query_row(params![delivery, holder], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((job_id, attempt)) = held else {
        return Err(StoreError::IllegalTransition {
            id: format!("delivery {delivery}"),
            reason: format!(
                "not held by {holder} (its hold expired and another process took it, or it is done)"
            ),
        });
    };
    if let Some((reason, detail)) = note {
        conn.prepare_cached(
            "INSERT INTO job_events (job_id, at, kind, from_status, to_status, reason, worker, attempt, detail) \
             VALUES (?, ?, 'delivery', NULL, NULL, ?, ?, ?, ?)",
        )?
        .execute(params![job_id, now.0, reason, holder, attempt, to_json(&detail)])?;
    }
    match next_try {
        None => {
            conn.prepare_cached("DELETE FROM deliveries WHERE delivery_id = ?")?
                .execute([delivery])?;
        }
        Some(at) => {
            conn.prepare_cached(
                "UPDATE deliveries SET tries = tries + 1, next_try_at = ?, held_by = NULL, \
                 held_until = NULL WHERE delivery_id = ?",
            )?
            .execute(params![at.0, delivery])?;
        }
    }
    Ok(())
}
