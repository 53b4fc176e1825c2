//! SQLite's output owners (`migrations/sqlite/0005_output_owners.sql`): reserving an
//! attempt's keys and releasing them, through the single writer. A reservation reads the
//! owners, decides (`store::outputs`) and writes them in one operation of a batch, so no
//! other write comes between the decision and its rows; a conflict writes nothing.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::ops::current;
use crate::job::{ObjectRef, Status, Timestamp};
use crate::store::outputs::{self, Owner};
use crate::store::transitions::check_attempt;
use crate::store::{Reservation, Result};

impl SqliteStore {
    pub(super) async fn reserve_outputs_now(
        &self,
        id: &str,
        attempt: u32,
        keys: &[String],
    ) -> Result<Reservation> {
        let (id, keys, now) = (id.to_string(), outputs::distinct(keys), Timestamp::now());
        // Durable: the attempt uploads over other objects once this is answered.
        self.writer
            .write(true, move |c| {
                Ok((reserve(c, &id, attempt, &keys, now)?, Vec::new()))
            })
            .await
    }

    pub(super) async fn release_outputs_now(&self, id: &str, attempt: u32) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write_one(false, move |c| {
                c.prepare_cached("DELETE FROM output_owners WHERE job_id = ? AND attempt = ?")?
                    .execute(params![id, i64::from(attempt)])?;
                Ok(((), Vec::new()))
            })
            .await
    }
}

fn reserve(
    conn: &Connection,
    id: &str,
    attempt: u32,
    keys: &[String],
    now: Timestamp,
) -> Result<Reservation> {
    let (job, cur) = current(conn, id)?;
    check_attempt(id, &cur, attempt)?;
    let bucket = &job.output.bucket;
    let mut owners = HashMap::new();
    let mut owner_of = conn.prepare_cached(
        "SELECT o.job_id, o.input_bucket, o.input_key, j.status FROM output_owners o \
         LEFT JOIN jobs j ON j.id = o.job_id WHERE o.bucket = ? AND o.key = ?",
    )?;
    for key in keys {
        let owner = owner_of
            .query_row(params![bucket, key], |r| {
                Ok(Owner {
                    job_id: r.get(0)?,
                    input: ObjectRef {
                        bucket: r.get(1)?,
                        key: r.get(2)?,
                    },
                    job_status: r
                        .get::<_, Option<String>>(3)?
                        .and_then(|s| s.parse::<Status>().ok()),
                })
            })
            .optional()?;
        if let Some(owner) = owner {
            owners.insert(key.clone(), owner);
        }
    }
    if let Err(conflict) = outputs::decide(&job, keys, &owners) {
        return Ok(Reservation::Conflict(conflict));
    }
    let mut own = conn.prepare_cached(
        "INSERT INTO output_owners (bucket, key, job_id, attempt, input_bucket, input_key, \
         reserved_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (bucket, key) DO UPDATE SET job_id = excluded.job_id, \
         attempt = excluded.attempt, input_bucket = excluded.input_bucket, \
         input_key = excluded.input_key, reserved_at = excluded.reserved_at",
    )?;
    for key in keys {
        own.execute(params![
            bucket,
            key,
            id,
            i64::from(attempt),
            job.input.bucket,
            job.input.key,
            now.0,
        ])?;
    }
    Ok(Reservation::Reserved)
}
