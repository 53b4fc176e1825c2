//! PostgreSQL's output owners (`migrations/postgres/0009_output_owners.sql`): reserving an
//! attempt's keys and releasing them, on the synchronous pool. A reservation is one
//! transaction: it holds the job's state row (`FOR SHARE`, so no transition moves the attempt
//! meanwhile), locks the keys' owner rows, decides (`store::outputs`), and writes every key in
//! one statement whose guard takes over only the rows it decided on. A key another process
//! created in between is not taken: the transaction is undone and decided again.

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::job::{Job, ObjectRef, Status, Timestamp};
use crate::store::outputs::{self, Owner};
use crate::store::rows::{JOB_COLUMNS, job_from_row, retry_base};
use crate::store::transitions::{Current, check_attempt};
use crate::store::{Reservation, Result, StoreError};

/// Times a reservation is decided again after losing a race, before it gives up.
const TRIES: usize = 5;

pub(super) async fn reserve(
    pool: &PgPool,
    id: &str,
    attempt: u32,
    keys: &[String],
) -> Result<Reservation> {
    let keys = outputs::distinct(keys);
    for _ in 0..TRIES {
        let mut tx = pool.begin().await?;
        match try_reserve(&mut tx, id, attempt, &keys).await {
            Ok(Some(Reservation::Reserved)) => {
                tx.commit().await?;
                return Ok(Reservation::Reserved);
            }
            // A conflict reserves nothing: the transaction is dropped, undone.
            Ok(Some(conflict)) => return Ok(conflict),
            Ok(None) => continue,
            Err(StoreError::Backend(e)) if raced(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Backend(format!(
        "job '{id}': reserving its outputs kept racing other reservations; try again"
    )))
}

/// A deadlock between two reservations of overlapping keys: the server undid one, which may
/// decide again.
fn raced(message: &str) -> bool {
    message.contains("deadlock detected")
}

/// One try: the reservation, or None when a key appeared meanwhile (decide again).
async fn try_reserve(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    attempt: u32,
    keys: &[String],
) -> Result<Option<Reservation>> {
    let held = sqlx::query(
        "SELECT 1 FROM job_states WHERE id = $1 AND attempt = $2 \
         AND status IN ('running', 'cancelling') FOR SHARE",
    )
    .bind(id)
    .bind(i64::from(attempt))
    .fetch_optional(&mut **tx)
    .await?;
    let (job, cur) = job_in(tx, id).await?;
    check_attempt(id, &cur, attempt)?;
    if held.is_none() {
        // It became current only after the first read: decide again.
        return Ok(None);
    }
    let bucket = &job.output.bucket;
    let rows = sqlx::query(
        "SELECT o.key, o.job_id, o.input_bucket, o.input_key, t.status FROM output_owners o \
         LEFT JOIN job_states t ON t.id = o.job_id \
         WHERE o.bucket = $1 AND o.key = ANY($2) ORDER BY o.key FOR UPDATE OF o",
    )
    .bind(bucket)
    .bind(keys)
    .fetch_all(&mut **tx)
    .await?;
    let mut owners = HashMap::new();
    for r in &rows {
        let owner = Owner {
            job_id: r.try_get("job_id")?,
            input: ObjectRef {
                bucket: r.try_get("input_bucket")?,
                key: r.try_get("input_key")?,
            },
            job_status: r
                .try_get::<Option<String>, _>("status")?
                .and_then(|s| s.parse::<Status>().ok()),
        };
        owners.insert(r.try_get::<String, _>("key")?, owner);
    }
    if let Err(conflict) = outputs::decide(&job, keys, &owners) {
        return Ok(Some(Reservation::Conflict(conflict)));
    }
    let taken: Vec<String> = owners.into_keys().collect();
    let written = sqlx::query(
        "INSERT INTO output_owners (bucket, key, job_id, attempt, input_bucket, input_key, \
         reserved_at) \
         SELECT $1, k, $2, $3, $4, $5, $6 FROM UNNEST($7::TEXT[]) AS k \
         ON CONFLICT (bucket, key) DO UPDATE SET job_id = EXCLUDED.job_id, \
         attempt = EXCLUDED.attempt, input_bucket = EXCLUDED.input_bucket, \
         input_key = EXCLUDED.input_key, reserved_at = EXCLUDED.reserved_at \
         WHERE output_owners.key = ANY($8::TEXT[]) \
         RETURNING key",
    )
    .bind(bucket)
    .bind(id)
    .bind(i64::from(attempt))
    .bind(&job.input.bucket)
    .bind(&job.input.key)
    .bind(Timestamp::now().0)
    .bind(keys)
    .bind(taken)
    .fetch_all(&mut **tx)
    .await?;
    if written.len() < keys.len() {
        return Ok(None);
    }
    Ok(Some(Reservation::Reserved))
}

/// The job as the transaction sees it, with the state its fence is checked against.
async fn job_in(tx: &mut Transaction<'_, Postgres>, id: &str) -> Result<(Job, Current)> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let job = job_from_row(&row)?;
    let cur = Current::of(&job, retry_base(&row)?);
    Ok((job, cur))
}

pub(super) async fn release(pool: &PgPool, id: &str, attempt: u32) -> Result<()> {
    sqlx::query("DELETE FROM output_owners WHERE job_id = $1 AND attempt = $2")
        .bind(id)
        .bind(i64::from(attempt))
        .execute(pool)
        .await?;
    Ok(())
}
