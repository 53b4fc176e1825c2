//! Turning rows into jobs and back, shared by both backends: column lists, JSON columns,
//! list cursors.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Result, StoreError};
use crate::job::{
    Job, JobError, ObjectRef, OutputObject, OutputTarget, Status, Timestamp, Trigger,
};
use crate::media::Progress;

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

/// Reads one job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row<'r, R>(row: &'r R) -> Result<Job>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    let int = |c: &'static str| -> Result<i64> { Ok(row.try_get::<i64, _>(c)?) };
    let opt_int =
        |c: &'static str| -> Result<Option<i64>> { Ok(row.try_get::<Option<i64>, _>(c)?) };
    let opt_str =
        |c: &'static str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(c)?) };
    Ok(Job {
        id: row.try_get("id")?,
        status: status.parse::<Status>().map_err(|e| bad("status", e))?,
        input: ObjectRef {
            bucket: row.try_get("input_bucket")?,
            key: row.try_get("input_key")?,
        },
        preset: row.try_get("preset")?,
        output: OutputTarget {
            bucket: row.try_get("output_bucket")?,
            prefix: row.try_get("output_prefix")?,
        },
        outputs: from_json::<Vec<OutputObject>>("outputs", opt_str("outputs")?)?
            .unwrap_or_default(),
        progress: from_json::<Progress>("progress", opt_str("progress")?)?,
        attempt: int("attempt")? as u32,
        max_attempts: int("max_attempts")? as u32,
        priority: row.try_get::<i32, _>("priority")?,
        timeout_seconds: int("timeout_seconds")?.max(0) as u64,
        worker: opt_str("worker")?,
        created_at: Timestamp(int("created_at")?),
        updated_at: Timestamp(int("updated_at")?),
        started_at: opt_int("started_at")?.map(Timestamp),
        finished_at: opt_int("finished_at")?.map(Timestamp),
        run_after: Some(Timestamp(int("run_after")?)).filter(|t| t.0 > 0),
        lease_expires_at: opt_int("lease_expires_at")?.map(Timestamp),
        error: from_json::<JobError>("error", opt_str("error")?)?,
        trigger: from_json::<Trigger>("trigger", opt_str("trigger")?)?,
        on_success: opt_str("on_success")?,
        on_failure: opt_str("on_failure")?,
    })
}

/// The hidden `retry_base` column, read beside a job.
pub(crate) fn retry_base<'r, R>(row: &'r R) -> Result<u32>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(row.try_get::<i64, _>("retry_base")? as u32)
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
