//! Stored rows read into jobs and jobs written as rows, shared by both backends: column
//! lists, JSON columns, list cursors.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Result, StoreError};
use crate::job::{
    Job, JobError, ObjectRef, OutputObject, OutputTarget, Status, Timestamp, Trigger,
};
use crate::progress::Progress;

/// The columns every job query selects, in `job_from_row`'s terms.
pub(crate) const JOB_COLUMNS: &str = "id, status, input_bucket, input_key, preset, output_bucket, \
    output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, trigger, \
    outputs, progress, error, attempt, retry_base, worker, created_at, updated_at, started_at, \
    finished_at, run_after, lease_expires_at";

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} unreadable: {e}"))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: Option<String>) -> Result<Option<T>> {
    match s {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s).map(Some).map_err(|e| bad(what, e)),
    }
}

/// A row's columns by name, as each backend's rows give them: sqlx's for reads and for
/// PostgreSQL, rusqlite's for SQLite's writer. NULL reads as `None`.
pub(crate) trait Columns {
    fn text(&self, column: &'static str) -> Result<Option<String>>;
    fn int(&self, column: &'static str) -> Result<Option<i64>>;
    /// A 32-bit integer column (PostgreSQL's `integer`, which sqlx will not read as i64).
    fn int32(&self, column: &'static str) -> Result<Option<i32>>;
}

fn sqlx_get<'r, R, T>(row: &'r R, column: &'static str) -> Result<Option<T>>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    Option<T>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(row.try_get::<Option<T>, _>(column)?)
}

macro_rules! sqlx_columns {
    ($($row:ty),*) => {$(
        impl Columns for $row {
            fn text(&self, column: &'static str) -> Result<Option<String>> {
                sqlx_get(self, column)
            }
            fn int(&self, column: &'static str) -> Result<Option<i64>> {
                sqlx_get(self, column)
            }
            fn int32(&self, column: &'static str) -> Result<Option<i32>> {
                sqlx_get(self, column)
            }
        }
    )*};
}

sqlx_columns!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &'static str) -> Result<Option<String>> {
        Ok(self.get(column)?)
    }
    fn int(&self, column: &'static str) -> Result<Option<i64>> {
        Ok(self.get(column)?)
    }
    fn int32(&self, column: &'static str) -> Result<Option<i32>> {
        Ok(self.get(column)?)
    }
}

fn required<T>(column: &'static str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| bad(column, "NULL"))
}

/// Reads one job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &impl Columns) -> Result<Job> {
    let text = |c: &'static str| required(c, row.text(c)?);
    let int = |c: &'static str| required(c, row.int(c)?);
    let status = text("status")?;
    Ok(Job {
        id: text("id")?,
        status: status.parse::<Status>().map_err(|e| bad("status", e))?,
        input: ObjectRef {
            bucket: text("input_bucket")?,
            key: text("input_key")?,
        },
        preset: text("preset")?,
        output: OutputTarget {
            bucket: text("output_bucket")?,
            prefix: text("output_prefix")?,
        },
        outputs: from_json::<Vec<OutputObject>>("outputs", row.text("outputs")?)?
            .unwrap_or_default(),
        progress: from_json::<Progress>("progress", row.text("progress")?)?,
        attempt: int("attempt")? as u32,
        max_attempts: int("max_attempts")? as u32,
        priority: required("priority", row.int32("priority")?)?,
        timeout_seconds: int("timeout_seconds")?.max(0) as u64,
        worker: row.text("worker")?,
        created_at: Timestamp(int("created_at")?),
        updated_at: Timestamp(int("updated_at")?),
        started_at: row.int("started_at")?.map(Timestamp),
        finished_at: row.int("finished_at")?.map(Timestamp),
        run_after: Some(Timestamp(int("run_after")?)).filter(|t| t.0 > 0),
        lease_expires_at: row.int("lease_expires_at")?.map(Timestamp),
        error: from_json::<JobError>("error", row.text("error")?)?,
        trigger: from_json::<Trigger>("trigger", row.text("trigger")?)?,
        on_success: row.text("on_success")?,
        on_failure: row.text("on_failure")?,
    })
}

/// The hidden `retry_base` column, read beside a job.
pub(crate) fn retry_base(row: &impl Columns) -> Result<u32> {
    Ok(required("retry_base", row.int("retry_base")?)? as u32)
}

/// A list cursor: where the previous page ended, as "created-micros-in-hex.id".
pub fn encode_cursor(created_at: Timestamp, id: &str) -> String {
    format!("{:x}.{id}", created_at.0)
}

pub fn decode_cursor(cursor: &str) -> Result<(Timestamp, String)> {
    let invalid = || {
        StoreError::Invalid(format!(
            "invalid cursor '{cursor}': pass back a next_cursor as given"
        ))
    };
    let (t, id) = cursor.split_once('.').ok_or_else(invalid)?;
    let micros = i64::from_str_radix(t, 16).map_err(|_| invalid())?;
    crate::job::validate_id(id).map_err(|_| invalid())?;
    Ok((Timestamp(micros), id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = encode_cursor(Timestamp(1_763_800_000_123_456), "01JXYZ");
        assert_eq!(
            decode_cursor(&c).unwrap(),
            (Timestamp(1_763_800_000_123_456), "01JXYZ".to_string())
        );
        for junk in ["", "abc", "zz.id", "1.bad id", "1."] {
            assert!(decode_cursor(junk).is_err(), "{junk}");
        }
    }
}
