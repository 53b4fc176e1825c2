//! The embedded default: one SQLite file in WAL mode. Reads run on a pool of read-only
//! connections; every write goes through one group-committing writer. Submits commit with
//! `synchronous = FULL` (fsync before the answer); other writes with `NORMAL`, which in WAL
//! mode still survives a crash of the process. Changes are announced on an in-process
//! channel, so this backend notifies only within its own process.

mod deliveries;
mod keys;
mod ops;
mod outputs;
mod parts;
mod split;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::broadcast;

use super::filters::Dialect;
use super::query;
use super::rows::{
    ATTEMPT_COLUMNS, EVENT_COLUMNS, JOB_COLUMNS, LOG_COLUMNS, WORKER_COLUMNS, attempt_from_row,
    encode_cursor, event_from_row, job_from_row, log_from_row, workers_from_rows,
};
use super::{
    AttemptInfo, AttemptStats, Capacity, Change, ClaimedPart, Counts, Delivery, Heartbeat,
    JobEvent, JobStore, ListFilter, LogLine, Page, Reservation, Result, StoreError, Submitted,
    WorkerInfo, page_limit,
};
use crate::job::{
    self, Job, JobSpec, KEY_BYTES, Outcome, Part, PartOutcome, RetryPolicy, Scratch, SplitPlan,
    Status, Timestamp,
};
use crate::progress::Progress;
use writer::Writer;

/// How long a write waits for another connection's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the writer's connection, which switches a new file to WAL. Processes opening a new
/// file at once race for that switch, and SQLite refuses the losers with SQLITE_BUSY at once
/// rather than waiting (the switch needs the file to itself, so its busy handler is not
/// asked): a refused open tries again, for as long as a write would wait.
async fn connect_writer(options: SqliteConnectOptions) -> Result<sqlx::SqliteConnection> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match options.connect().await {
            Err(sqlx::Error::Database(e))
                if is_busy(e.code().as_deref()) && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10 + fastrand::u64(..40))).await;
            }
            opened => return Ok(opened?),
        }
    }
}

/// SQLITE_BUSY, or one of its extended codes (the primary code is the low byte).
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

pub struct SqliteStore {
    read: SqlitePool,
    writer: Writer,
    changes: broadcast::Sender<Change>,
    policy: RetryPolicy,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and migrates it.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        Self::open_with(url, RetryPolicy::default()).await
    }

    pub async fn open_with(url: &str, policy: RetryPolicy) -> Result<SqliteStore> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", parent.display())))?;
        }
        let base = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(false)
            .log_statements(tracing::log::LevelFilter::Trace);
        let mut conn = connect_writer(base.clone().synchronous(SqliteSynchronous::Full)).await?;
        // Processes opening a new file at once (`ffarm serve` and `ffarm worker`) would race to
        // create the schema: sqlx applies each migration in a deferred transaction, which takes
        // the write lock only at its first write, after deciding what to apply. Inside one
        // IMMEDIATE transaction the others wait for the first, then find nothing left to do.
        let mut migrating = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::migrate!("migrations/sqlite")
            .run(&mut *migrating)
            .await?;
        migrating.commit().await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true).synchronous(SqliteSynchronous::Normal))
            .await?;
        let (changes, _) = broadcast::channel(4096);
        Ok(SqliteStore {
            read,
            writer: Writer::start(conn, changes.clone()).await?,
            changes,
            policy,
        })
    }
}

impl SqliteStore {
    /// The `synchronous` level (1 NORMAL, 2 FULL) a write commits with, as the writer's
    /// connection reports it inside a batch: `durable` for the kind submits, finishes, cancels
    /// and retries are.
    pub async fn synchronous_level(&self, durable: bool) -> Result<i64> {
        self.writer
            .write(durable, |c| {
                let level: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                Ok((level, Vec::new()))
            })
            .await
    }
}

fn check_id(id: &str) -> Result<()> {
    job::validate_id(id).map_err(StoreError::Invalid)
}

#[async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn submit(&self, id: Option<String>, spec: JobSpec) -> Result<Submitted> {
        let id = match id {
            Some(id) => {
                check_id(&id)?;
                id
            }
            None => job::new_id(),
        };
        let now = Timestamp::now();
        self.writer
            .write_one(true, move |c| ops::submit(c, id, spec, now))
            .await
    }

    async fn get(&self, id: &str) -> Result<Job> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
        let mut job = job_from_row(&row)?;
        job.parts = self.part_infos(id).await?;
        Ok(job)
    }

    async fn list(&self, filter: &ListFilter, limit: u32, cursor: Option<&str>) -> Result<Page> {
        let limit = page_limit(limit);
        let plan = query::plan(
            Dialect::Sqlite,
            filter,
            |mut qb: QueryBuilder<Sqlite>| async move {
                Ok(qb.build_query_scalar().fetch_one(&self.read).await?)
            },
        )
        .await?;
        let mut qb = query::list::<sqlx::Sqlite>(Dialect::Sqlite, filter, plan, limit, cursor)?;
        let rows = qb.build().fetch_all(&self.read).await?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?;
        let next_cursor = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| encode_cursor(j.created_at, &j.id))
        } else {
            None
        };
        Ok(Page { jobs, next_cursor })
    }

    async fn counts(&self, filter: &ListFilter) -> Result<Counts> {
        let mut qb = query::counts::<sqlx::Sqlite>(Dialect::Sqlite, filter);
        let rows = qb.build().fetch_all(&self.read).await?;
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

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let now = Timestamp::now();
        let worker = worker.to_string();
        self.writer
            .write_one(false, move |c| ops::claim(c, worker, now.plus(lease), now))
            .await
    }

    async fn heartbeat(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        let now = Timestamp::now();
        let (id, progress) = (id.to_string(), progress.cloned());
        self.writer
            .write_one(false, move |c| {
                ops::heartbeat(c, id, attempt, now.plus(lease), progress, now)
            })
            .await
    }

    async fn finish(&self, id: &str, attempt: u32, outcome: Outcome) -> Result<Job> {
        let (id, policy, now) = (id.to_string(), self.policy, Timestamp::now());
        self.writer
            .write_one(true, move |c| {
                ops::finish(c, id, attempt, outcome, policy, now)
            })
            .await
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<Job> {
        let (id, reason, now) = (id.to_string(), reason.to_string(), Timestamp::now());
        self.writer
            .write(true, move |c| {
                // A split job's parts stop with it.
                let (job, cur) = ops::current(c, &id)?;
                if cur.split {
                    return parts::cancel_split(c, job, &cur, &reason, now);
                }
                ops::cancel(c, id, reason, now)
            })
            .await
    }

    async fn retry(&self, id: &str) -> Result<Job> {
        let (id, now) = (id.to_string(), Timestamp::now());
        self.writer
            .write_one(true, move |c| ops::retry(c, id, now))
            .await
    }

    async fn reap(&self) -> Result<Vec<Job>> {
        let (policy, now) = (self.policy, Timestamp::now());
        self.writer
            .write(false, move |c| {
                let (mut jobs, mut changes) = ops::reap(c, policy, now)?;
                let (more, more_changes) = parts::reap_parts(c, policy, now)?;
                jobs.extend(more);
                changes.extend(more_changes);
                Ok((jobs, changes))
            })
            .await
    }

    async fn events(&self, id: &str) -> Result<Vec<JobEvent>> {
        self.get(id).await?;
        let sql = format!("SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = ? ORDER BY seq");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn note(
        &self,
        id: &str,
        kind: &str,
        reason: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let (id, kind, reason, now) = (
            id.to_string(),
            kind.to_string(),
            reason.to_string(),
            Timestamp::now(),
        );
        self.writer
            .write(false, move |c| ops::note(c, id, kind, reason, detail, now))
            .await
    }

    async fn append_logs(&self, id: &str, attempt: u32, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let (id, lines, now) = (id.to_string(), lines.to_vec(), Timestamp::now());
        self.writer
            .write(false, move |c| ops::append_logs(c, id, attempt, lines, now))
            .await
    }

    async fn logs(
        &self,
        id: &str,
        attempt: Option<u32>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>> {
        self.get(id).await?;
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM job_logs WHERE job_id = ? \
             AND (? IS NULL OR attempt = ?) AND seq > ? ORDER BY seq LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(attempt.map(i64::from))
            .bind(attempt.map(i64::from))
            .bind(after_seq)
            .bind(i64::from(limit.clamp(1, 10_000)))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(log_from_row).collect()
    }

    async fn record_attempt(&self, id: &str, attempt: u32, stats: &AttemptStats) -> Result<()> {
        let (id, stats) = (id.to_string(), stats.clone());
        self.writer
            .write(false, move |c| ops::record_attempt(c, id, attempt, stats))
            .await
    }

    async fn attempts(&self, id: &str) -> Result<Vec<AttemptInfo>> {
        self.get(id).await?;
        let sql =
            format!("SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = ? ORDER BY attempt");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        let (w, now) = (worker.clone(), Timestamp::now());
        self.writer
            .write(false, move |c| ops::register_worker(c, w, now))
            .await
    }

    async fn touch_worker(&self, id: &str, draining: bool) -> Result<()> {
        let (id, now) = (id.to_string(), Timestamp::now());
        self.writer
            .write(false, move |c| ops::touch_worker(c, id, draining, now))
            .await
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(false, move |c| ops::remove_worker(c, id))
            .await
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let sql = format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?;
        let mut held: Vec<(String, String)> = sqlx::query_as(
            "SELECT worker, id FROM jobs WHERE status IN ('running', 'cancelling') AND worker IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.read)
        .await?;
        held.extend(self.held_parts().await?);
        workers_from_rows(&rows, &held)
    }

    async fn reserve_outputs(
        &self,
        id: &str,
        attempt: u32,
        keys: &[String],
    ) -> Result<Reservation> {
        self.reserve_outputs_now(id, attempt, keys).await
    }

    async fn release_outputs(&self, id: &str, attempt: u32) -> Result<()> {
        self.release_outputs_now(id, attempt).await
    }

    async fn split(&self, id: &str, attempt: u32, plan: &SplitPlan) -> Result<Job> {
        self.split_now(id, attempt, plan).await
    }

    async fn claim_part(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedPart>> {
        self.claim_part_now(worker, lease).await
    }

    async fn heartbeat_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        self.heartbeat_part_now(id, seq, attempt, lease, progress)
            .await
    }

    async fn finish_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        outcome: PartOutcome,
    ) -> Result<Job> {
        self.finish_part_now(id, seq, attempt, outcome).await
    }

    async fn parts(&self, id: &str) -> Result<Vec<Part>> {
        self.parts_now(id).await
    }

    async fn segment_key(&self, id: &str, new: [u8; KEY_BYTES]) -> Result<[u8; KEY_BYTES]> {
        self.segment_key_now(id, new).await
    }

    async fn stored_segment_key(&self, id: &str) -> Result<Option<[u8; KEY_BYTES]>> {
        self.stored_segment_key_now(id).await
    }

    async fn split_plan(&self, id: &str) -> Result<Option<SplitPlan>> {
        self.split_plan_now(id).await
    }

    async fn capacity(&self) -> Result<Capacity> {
        self.capacity_now().await
    }

    async fn scratch_due(
        &self,
        keep_failed: Duration,
        limit: u32,
    ) -> Result<Vec<(String, Scratch)>> {
        self.scratch_due_now(keep_failed, limit).await
    }

    async fn forget_scratch(&self, id: &str) -> Result<bool> {
        self.forget_scratch_now(id).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn claim_deliveries(
        &self,
        holder: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        self.claim_deliveries_now(holder, hold, limit).await
    }

    async fn record_delivery(
        &self,
        delivery: i64,
        holder: &str,
        next_try: Option<Timestamp>,
        note: Option<(String, serde_json::Value)>,
    ) -> Result<()> {
        self.record_delivery_now(delivery, holder, next_try, note)
            .await
    }
}
