//! Stored rows read into records — jobs, history events, log lines, attempts, workers — and
//! jobs written as rows, shared by both backends: column lists, JSON columns, list cursors.
//! One reading per record, whichever crate's row it comes from (`Columns`); a value it cannot
//! read is an error naming its column, never a value silently dropped.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::parts::PartRow;
use super::{AttemptInfo, AttemptStats, JobEvent, LogLine, Result, StoreError, WorkerInfo};
use crate::job::{
    Chunking, Job, JobError, MediaOptions, ObjectRef, OutputObject, OutputTarget, Part, PartKind,
    Scratch, SplitPlan, Status, Timestamp, Trigger,
};
use crate::progress::Progress;
use crate::sandbox::Level;

/// The columns every job query selects, in `job_from_row`'s terms.
pub(crate) const JOB_COLUMNS: &str = "id, status, input_bucket, input_key, preset, output_bucket, \
    output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, trigger, \
    outputs, progress, error, attempt, retry_base, worker, created_at, updated_at, started_at, \
    finished_at, run_after, lease_expires_at, overwrite, chunking, media";

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} unreadable: {e}"))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A row's columns by name, as each backend's rows give them: sqlx's for reads and for
/// PostgreSQL, rusqlite's for SQLite's writer. NULL reads as `None`.
pub(crate) trait Columns {
    fn text(&self, column: &'static str) -> Result<Option<String>>;
    fn int(&self, column: &'static str) -> Result<Option<i64>>;
    /// A 32-bit integer column (PostgreSQL's `integer`, which sqlx will not read as i64).
    fn int32(&self, column: &'static str) -> Result<Option<i32>>;
    /// A boolean column (PostgreSQL's `boolean`, SQLite's 0 or 1).
    fn flag(&self, column: &'static str) -> Result<Option<bool>>;
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
            fn flag(&self, column: &'static str) -> Result<Option<bool>> {
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
    fn flag(&self, column: &'static str) -> Result<Option<bool>> {
        Ok(self.get(column)?)
    }
}

/// One row read as a record of `table` (None: a job, whose columns are named alone). Every
/// value it cannot read is reported as `stored TABLE.COLUMN unreadable`, naming the column:
/// never dropped, never read as something else.
struct Fields<'r, R> {
    table: Option<&'static str>,
    row: &'r R,
}

impl<'r, R: Columns> Fields<'r, R> {
    fn job(row: &'r R) -> Self {
        Fields { table: None, row }
    }

    fn of(table: &'static str, row: &'r R) -> Self {
        Fields {
            table: Some(table),
            row,
        }
    }

    fn bad(&self, column: &str, e: impl std::fmt::Display) -> StoreError {
        match self.table {
            Some(table) => bad(&format!("{table}.{column}"), e),
            None => bad(column, e),
        }
    }

    fn required<T>(&self, column: &'static str, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| self.bad(column, "NULL"))
    }

    fn text(&self, column: &'static str) -> Result<Option<String>> {
        self.row.text(column)
    }

    fn string(&self, column: &'static str) -> Result<String> {
        self.required(column, self.row.text(column)?)
    }

    fn int(&self, column: &'static str) -> Result<i64> {
        self.required(column, self.row.int(column)?)
    }

    fn int32(&self, column: &'static str) -> Result<i32> {
        self.required(column, self.row.int32(column)?)
    }

    /// A count or number that cannot be negative: one out of `T`'s range is unreadable.
    fn count<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T> {
        let n = self.int(column)?;
        T::try_from(n).map_err(|_| self.bad(column, format!("{n} is out of range")))
    }

    fn time(&self, column: &'static str) -> Result<Timestamp> {
        Ok(Timestamp(self.int(column)?))
    }

    fn maybe_time(&self, column: &'static str) -> Result<Option<Timestamp>> {
        Ok(self.row.int(column)?.map(Timestamp))
    }

    fn flag(&self, column: &'static str) -> Result<bool> {
        self.required(column, self.row.flag(column)?)
    }

    fn status(&self, column: &'static str) -> Result<Option<Status>> {
        self.text(column)?
            .map(|s| s.parse::<Status>().map_err(|e| self.bad(column, e)))
            .transpose()
    }

    fn json<T: serde::de::DeserializeOwned>(&self, column: &'static str) -> Result<Option<T>> {
        self.text(column)?
            .map(|s| serde_json::from_str(&s).map_err(|e| self.bad(column, e)))
            .transpose()
    }
}

/// Reads one job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &impl Columns) -> Result<Job> {
    let f = Fields::job(row);
    let preset = f.string("preset")?;
    Ok(Job {
        presets: crate::job::presets_of(&preset),
        id: f.string("id")?,
        status: f.required("status", f.status("status")?)?,
        input: ObjectRef {
            bucket: f.string("input_bucket")?,
            key: f.string("input_key")?,
        },
        preset,
        output: OutputTarget {
            bucket: f.string("output_bucket")?,
            prefix: f.string("output_prefix")?,
        },
        outputs: f.json::<Vec<OutputObject>>("outputs")?.unwrap_or_default(),
        progress: f.json::<Progress>("progress")?,
        attempt: f.count("attempt")?,
        max_attempts: f.count("max_attempts")?,
        priority: f.int32("priority")?,
        timeout_seconds: f.int("timeout_seconds")?.max(0) as u64,
        worker: f.text("worker")?,
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
        started_at: f.maybe_time("started_at")?,
        finished_at: f.maybe_time("finished_at")?,
        run_after: Some(f.time("run_after")?).filter(|t| t.0 > 0),
        lease_expires_at: f.maybe_time("lease_expires_at")?,
        error: f.json::<JobError>("error")?,
        trigger: f.json::<Trigger>("trigger")?,
        on_success: f.text("on_success")?,
        on_failure: f.text("on_failure")?,
        overwrite: f.flag("overwrite")?,
        chunking: f.json::<Chunking>("chunking")?.unwrap_or_default(),
        media: f.json::<MediaOptions>("media")?.unwrap_or_default(),
        parts: Vec::new(),
    })
}

/// The hidden `retry_base` column, read beside a job.
pub(crate) fn retry_base(row: &impl Columns) -> Result<u32> {
    Fields::job(row).count("retry_base")
}

/// The columns a part query selects from `job_parts`, in `part_from_row`'s terms.
pub(crate) const PART_COLUMNS: &str = "job_id, seq, kind, start_us, end_us, after, status, \
    attempt, max_attempts, retry_base, job_attempt, worker, lease_expires_at, run_after, \
    progress, result, error, started_at, finished_at";

/// Reads one part from a row selected with [`PART_COLUMNS`].
pub(crate) fn part_from_row(row: &impl Columns) -> Result<PartRow> {
    let f = Fields::of("job_parts", row);
    let kind = f.string("kind")?;
    Ok(PartRow {
        part: Part {
            job_id: f.string("job_id")?,
            seq: f.count("seq")?,
            kind: PartKind::parse(&kind).ok_or_else(|| f.bad("kind", &kind))?,
            start_us: f.int("start_us")?,
            end_us: f.int("end_us")?,
            status: f.required("status", f.status("status")?)?,
            attempt: f.count("attempt")?,
            max_attempts: f.count("max_attempts")?,
            job_attempt: f.count("job_attempt")?,
            worker: f.text("worker")?,
            result: f.json("result")?,
        },
        after: f.json::<Vec<u32>>("after")?.unwrap_or_default(),
        retry_base: f.count("retry_base")?,
        lease_expires_at: f.maybe_time("lease_expires_at")?,
        progress: f.json::<Progress>("progress")?,
        error: f.json::<JobError>("error")?,
        started_at: f.maybe_time("started_at")?,
        finished_at: f.maybe_time("finished_at")?,
    })
}

/// The columns a plan query selects from `job_splits`, in `split_from_row`'s terms.
pub(crate) const SPLIT_COLUMNS: &str =
    "job_id, scratch_bucket, scratch_prefix, input_version, max_parallel, detail, job_attempt";

/// Reads a stored plan (without its parts, which `job_parts` holds) from a row selected with
/// [`SPLIT_COLUMNS`], with the job attempt that made it.
pub(crate) fn split_from_row(row: &impl Columns) -> Result<(SplitPlan, u32)> {
    let f = Fields::of("job_splits", row);
    let plan = SplitPlan {
        parts: Vec::new(),
        scratch: Scratch {
            bucket: f.string("scratch_bucket")?,
            prefix: f.string("scratch_prefix")?,
        },
        input_version: f.string("input_version")?,
        max_parallel: f.count("max_parallel")?,
        detail: f.json("detail")?.unwrap_or_default(),
    };
    Ok((plan, f.count("job_attempt")?))
}

/// The columns a history query selects from `job_events`, in `event_from_row`'s terms.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, at, kind, from_status, to_status, reason, worker, attempt, detail";

/// Reads one entry of a job's history from a row selected with [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &impl Columns) -> Result<JobEvent> {
    let f = Fields::of("job_events", row);
    Ok(JobEvent {
        seq: f.int("seq")?,
        at: f.time("at")?,
        kind: f.string("kind")?,
        from: f.status("from_status")?,
        to: f.status("to_status")?,
        reason: f.string("reason")?,
        worker: f.text("worker")?,
        attempt: f.count("attempt")?,
        detail: f.json("detail")?,
    })
}

/// The columns a log query selects from `job_logs`, in `log_from_row`'s terms.
pub(crate) const LOG_COLUMNS: &str = "seq, attempt, at, line";

/// Reads one log line from a row selected with [`LOG_COLUMNS`].
pub(crate) fn log_from_row(row: &impl Columns) -> Result<LogLine> {
    let f = Fields::of("job_logs", row);
    Ok(LogLine {
        seq: f.int("seq")?,
        attempt: f.count("attempt")?,
        at: f.time("at")?,
        line: f.string("line")?,
    })
}

/// The columns an attempts query selects from `job_attempts`, in `attempt_from_row`'s terms.
pub(crate) const ATTEMPT_COLUMNS: &str = "attempt, worker, started_at, finished_at, outcome, \
    error, stats, log_lines, log_bytes, log_dropped";

/// Reads one attempt from a row selected with [`ATTEMPT_COLUMNS`].
pub(crate) fn attempt_from_row(row: &impl Columns) -> Result<AttemptInfo> {
    let f = Fields::of("job_attempts", row);
    Ok(AttemptInfo {
        attempt: f.count("attempt")?,
        worker: f.text("worker")?,
        started_at: f.time("started_at")?,
        finished_at: f.maybe_time("finished_at")?,
        outcome: f.text("outcome")?,
        error: f.json::<JobError>("error")?,
        stats: f.json::<AttemptStats>("stats")?.unwrap_or_default(),
        log_lines: f.count("log_lines")?,
        log_bytes: f.count("log_bytes")?,
        log_dropped: f.count("log_dropped")?,
    })
}

/// The columns a workers query selects from `workers`, in `workers_from_rows`' terms.
pub(crate) const WORKER_COLUMNS: &str =
    "id, host, address, slots, version, started_at, last_seen, draining, sandbox";

/// Reads the workers from rows selected with [`WORKER_COLUMNS`], each with the jobs `held`
/// says it holds (pairs of worker and job id).
pub(crate) fn workers_from_rows<R: Columns>(
    rows: &[R],
    held: &[(String, String)],
) -> Result<Vec<WorkerInfo>> {
    rows.iter()
        .map(|row| {
            let mut worker = worker_from_row(row)?;
            worker.running = held
                .iter()
                .filter(|(w, _)| *w == worker.id)
                .map(|(_, job)| job.clone())
                .collect();
            Ok(worker)
        })
        .collect()
}

fn worker_from_row(row: &impl Columns) -> Result<WorkerInfo> {
    let f = Fields::of("workers", row);
    Ok(WorkerInfo {
        id: f.string("id")?,
        host: f.string("host")?,
        address: f.text("address")?,
        slots: f.count("slots")?,
        version: f.string("version")?,
        started_at: f.time("started_at")?,
        last_seen: f.time("last_seen")?,
        draining: f.flag("draining")?,
        running: Vec::new(),
        sandbox: f.json::<Level>("sandbox")?,
    })
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
