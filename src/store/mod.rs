//! The job store: the farm's single source of truth. One `JobStore` trait, two backends —
//! SQLite (embedded default) and PostgreSQL (scale-out) — passing one conformance suite.

mod filters;
mod keys;
mod outputs;
mod parts;
pub mod postgres;
mod query;
mod rows;
pub mod sqlite;
mod transitions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::job::{
    Job, JobSpec, KEY_BYTES, Outcome, Part, PartOutcome, Scratch, SplitPlan, Status, Timestamp,
};
use crate::progress::Progress;

pub use outputs::{OutputConflict, Reservation};
pub use rows::{decode_cursor, encode_cursor};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job '{id}' not found")]
    NotFound { id: String },
    /// The same id was submitted with a different spec.
    #[error("job '{id}' already exists with a different spec")]
    IdConflict { id: String },
    /// The job's state does not allow this.
    #[error("job '{id}': {reason}")]
    IllegalTransition { id: String, reason: String },
    /// A worker reported on an attempt that is no longer the job's current one (its lease
    /// expired and the job moved on): its writes are refused.
    #[error(
        "job '{id}': attempt {attempt} is no longer current (the job is at attempt {current}, {status})"
    )]
    Fenced {
        id: String,
        attempt: u32,
        current: u32,
        status: Status,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "job-not-found",
            StoreError::IdConflict { .. } => "id-conflict",
            StoreError::IllegalTransition { .. } => "illegal-transition",
            StoreError::Fenced { .. } => "stale-attempt",
            StoreError::Invalid(_) => "invalid",
            StoreError::Backend(_) => "store-unavailable",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Backend(format!("migration failed: {e}"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The answer to a submit.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: Job,
    /// False when a job with this id and the same spec already existed.
    pub created: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// A cancel was requested: the worker should stop the task.
    pub stop_requested: bool,
    pub lease_expires_at: Timestamp,
}

/// Which time a list window applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeField {
    #[default]
    Created,
    Started,
    Finished,
}

/// What to list. Every field narrows; an empty filter lists everything.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub statuses: Vec<Status>,
    pub time_field: TimeField,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub bucket: Option<String>,
    pub key_prefix: Option<String>,
    pub preset: Option<String>,
    /// A substring of the id or the input key.
    pub search: Option<String>,
}

impl ListFilter {
    /// Whether the filter has a time window (on `time_field`).
    pub(crate) fn windowed(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }
}

/// One page of jobs, newest first; `next_cursor` fetches the following page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<String>,
}

/// An entry in a job's history: a status change, or a note (a destination delivery, an exec
/// session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    pub seq: i64,
    pub at: Timestamp,
    /// "status" for transitions; otherwise the note's kind ("delivery", "exec", …).
    pub kind: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    pub reason: String,
    pub worker: Option<String>,
    pub attempt: u32,
    pub detail: Option<serde_json::Value>,
}

/// A line of a task's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub seq: i64,
    pub attempt: u32,
    pub at: Timestamp,
    pub line: String,
}

/// Lines kept per attempt; later lines are dropped (and counted).
pub const MAX_LOG_LINES_PER_ATTEMPT: u32 = 20_000;
/// Bytes kept per attempt.
pub const MAX_LOG_BYTES_PER_ATTEMPT: u64 = 4 << 20;
/// Longest single line kept (longer ones are cut).
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// Measurements of one attempt, recorded by its worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptStats {
    /// Seconds spent per phase ("downloading", "probing", "transcoding", "uploading").
    pub phases: BTreeMap<String, f64>,
    pub cpu_seconds: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub worker: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The status the attempt ended in ("succeeded", "queued" for a retry, …).
    pub outcome: Option<String>,
    pub error: Option<crate::job::JobError>,
    pub stats: AttemptStats,
    pub log_lines: u32,
    pub log_bytes: u64,
    pub log_dropped: u32,
}

/// A worker process, as it registered itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    /// Where the API can reach the worker (for exec), if it listens.
    pub address: Option<String>,
    pub slots: u32,
    pub version: String,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
    pub draining: bool,
    /// Jobs it holds now (filled in when listing).
    #[serde(default)]
    pub running: Vec<String>,
    /// What the sandbox of its engine processes holds; None when it reported none.
    #[serde(default)]
    pub sandbox: Option<crate::sandbox::Level>,
}

/// Counts of jobs by status.
pub type Counts = BTreeMap<Status, u64>;

/// A change other parts of the farm react to without polling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A job was created or changed status.
    Status { id: String, status: Status },
    /// A running job reported progress.
    Progress { id: String, progress: Progress },
    /// A worker registered, changed or left.
    Worker { id: String },
    /// A part of split job `id` changed status (or the job was split).
    Parts { id: String },
}

/// A part a worker took (`JobStore::claim_part`): the part (its `attempt` fences every
/// later report), its job, and the plan the job was split by.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedPart {
    pub part: Part,
    pub job: Job,
    pub plan: SplitPlan,
}

/// Free room in the farm (`JobStore::capacity`), for `auto` chunking and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// The slots of the registered workers that are not draining.
    pub slots: u64,
    /// Jobs holding a lease, and parts running.
    pub busy: u64,
    /// Jobs a claim could take now (queued, run_after passed).
    pub queued_jobs: u64,
    /// Parts a claim could take now (queued, run_after passed, not waiting on another part,
    /// their job running at the attempt that planned them; `max_parallel` not applied).
    pub queued_parts: u64,
    /// Parts running or stopping.
    pub running_parts: u64,
}

/// A job's ending waiting in the delivery outbox for its destination. The store writes one
/// in the same transaction as every ending (succeeded, failed, cancelled).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The outbox row's number, never reused.
    pub id: i64,
    /// The job as it was when it ended.
    pub job: Job,
    /// Tries made so far.
    pub tries: u32,
}

/// The job store. Every state change is one guarded statement: a change that finds the job
/// in another state than expected affects nothing and is reported, never forced.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    /// Creates a job, idempotently by id: the same id with the same work returns the existing
    /// job (`created: false`); with different work, `IdConflict`. Durable once it returns.
    async fn submit(&self, id: Option<String>, spec: JobSpec) -> Result<Submitted>;

    async fn get(&self, id: &str) -> Result<Job>;

    /// Jobs newest first, `limit` per page (1 to 1000).
    async fn list(&self, filter: &ListFilter, limit: u32, cursor: Option<&str>) -> Result<Page>;

    /// Counts by status of the jobs matching `filter` (its `statuses` are ignored).
    async fn counts(&self, filter: &ListFilter) -> Result<Counts>;

    /// Takes the next runnable job (highest priority, then oldest; not before its
    /// `run_after`) for `worker` under a lease of `lease`. The returned job's `attempt` is the
    /// fencing token for every later report.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>>;

    /// Renews the lease and records progress; says whether a stop was requested. A stale
    /// attempt gets `Fenced`.
    async fn heartbeat(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat>;

    /// Ends an attempt. Retryable failures go back to the queue with backoff while attempts
    /// remain. A stale attempt gets `Fenced`.
    async fn finish(&self, id: &str, attempt: u32, outcome: Outcome) -> Result<Job>;

    /// Cancels: a queued job at once, a running one by asking its worker (`cancelling`).
    async fn cancel(&self, id: &str, reason: &str) -> Result<Job>;

    /// Runs a failed or cancelled job again, as a new attempt.
    async fn retry(&self, id: &str) -> Result<Job>;

    /// Ends the attempts whose leases expired ("worker lost"): back to the queue or failed.
    async fn reap(&self) -> Result<Vec<Job>>;

    /// The job's history, oldest first.
    async fn events(&self, id: &str) -> Result<Vec<JobEvent>>;

    /// Adds a note to the job's history (a destination delivery, an exec session…).
    async fn note(
        &self,
        id: &str,
        kind: &str,
        reason: &str,
        detail: serde_json::Value,
    ) -> Result<()>;

    /// Appends log lines to an attempt (bounded per attempt; excess lines are counted and
    /// dropped). A stale attempt gets `Fenced`.
    async fn append_logs(&self, id: &str, attempt: u32, lines: &[String]) -> Result<()>;

    /// Log lines after `after_seq`, for one attempt or all.
    async fn logs(
        &self,
        id: &str,
        attempt: Option<u32>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>>;

    /// Records an attempt's phase timings and resource use.
    async fn record_attempt(&self, id: &str, attempt: u32, stats: &AttemptStats) -> Result<()>;

    async fn attempts(&self, id: &str) -> Result<Vec<AttemptInfo>>;

    /// Registers (or re-registers) a worker and marks it seen now.
    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()>;

    /// Marks a worker seen now, with its draining flag.
    async fn touch_worker(&self, id: &str, draining: bool) -> Result<()>;

    /// Removes a worker that shut down cleanly.
    async fn remove_worker(&self, id: &str) -> Result<()>;

    /// Every registered worker with the jobs it holds.
    async fn workers(&self) -> Result<Vec<WorkerInfo>>;

    /// Reserves for an attempt the final keys it is about to upload (in its job's output
    /// bucket), before it uploads any. A key may be free, already its input's (another attempt
    /// of the job, or an earlier job on the same input: a new version of it), left by a job
    /// that failed or was cancelled, or anything when the job says `overwrite`; a key that
    /// belongs to another input is a `Conflict` naming the first such key, its job and input,
    /// and then nothing is reserved. A stale attempt gets `Fenced`.
    async fn reserve_outputs(&self, id: &str, attempt: u32, keys: &[String])
    -> Result<Reservation>;

    /// Gives back the keys an attempt reserved: it failed, was stopped or was handed back,
    /// and took back what it had uploaded.
    async fn release_outputs(&self, id: &str, attempt: u32) -> Result<()>;

    /// The job's HLS segment key: the one stored, else `new`, stored now; so every attempt
    /// of a job encrypts with the same key (decision 0082). `NotFound` for no such job.
    async fn segment_key(&self, id: &str, new: [u8; KEY_BYTES]) -> Result<[u8; KEY_BYTES]>;

    /// The job's segment key, if one was made (None: the job encrypts nothing, or has not
    /// run yet). `NotFound` for no such job.
    async fn stored_segment_key(&self, id: &str) -> Result<Option<[u8; KEY_BYTES]>>;

    /// Splits the job `attempt` holds (running, current attempt, not split yet) into `plan`'s
    /// parts: the job stays running but gives up its worker and lease, its parts are queued.
    /// After a retry, a plan with the same input version and video ranges keeps the parts
    /// that had succeeded (their attempts unchanged); otherwise every part is queued afresh.
    /// A stale attempt gets `Fenced`, a plan that cannot run `Invalid`. Returns the job with
    /// its parts.
    async fn split(&self, id: &str, attempt: u32, plan: &SplitPlan) -> Result<Job>;

    /// Takes the next runnable part for `worker` under a lease of `lease`: queued, run_after
    /// passed, every `after` part succeeded, its job running at the attempt that planned it,
    /// fewer than the plan's max_parallel (0: no limit) of the job's parts running. Highest
    /// job priority, then oldest job, then lowest seq.
    async fn claim_part(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedPart>>;

    /// Renews a part's lease and records its progress (and its job's, aggregated); says
    /// whether the part should stop. A stale part attempt gets `Fenced`.
    async fn heartbeat_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat>;

    /// Ends a part's attempt: retried with backoff, or failing the job (its other parts
    /// stopped); the assembly's success ends the job succeeded with its outputs. A stale
    /// attempt gets `Fenced`. Returns the job.
    async fn finish_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        outcome: PartOutcome,
    ) -> Result<Job>;

    /// The job's parts with their results, by seq (empty for a job never split).
    async fn parts(&self, id: &str) -> Result<Vec<Part>>;

    /// The plan `split` stored, if the job is split.
    async fn split_plan(&self, id: &str) -> Result<Option<SplitPlan>>;

    /// Free room in the farm.
    async fn capacity(&self) -> Result<Capacity>;

    /// Ended split jobs whose scratch is due for removal (succeeded and cancelled ones at
    /// once, failed ones `keep_failed` after they ended), up to `limit`.
    async fn scratch_due(
        &self,
        keep_failed: Duration,
        limit: u32,
    ) -> Result<Vec<(String, Scratch)>>;

    /// Forgets a job's plan and scratch if the job is still ended and none of its parts is
    /// still running; true when it did (the caller then deletes the scratch objects). The parts
    /// stay as the job's history; a retry plans afresh and keeps none of them.
    async fn forget_scratch(&self, id: &str) -> Result<bool>;

    /// Changes as they happen (jobs queued, status changes, stop requests, progress).
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// Takes up to `limit` due deliveries from the outbox (their next try has come and no
    /// live hold is on them), oldest first, holding them for `holder` until `hold` passes.
    async fn claim_deliveries(
        &self,
        holder: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>>;

    /// Ends a try of a delivery `holder` holds: adds `note` (reason, detail) to the job's
    /// history as a "delivery" entry by `holder`, then removes the delivery (`next_try:
    /// None`: delivered, given up, or nowhere to go) or releases it until `next_try`. A
    /// delivery no longer held by `holder` is refused (`IllegalTransition`), recording nothing.
    async fn record_delivery(
        &self,
        delivery: i64,
        holder: &str,
        next_try: Option<Timestamp>,
        note: Option<(String, serde_json::Value)>,
    ) -> Result<()>;
}

/// Opens the store a URL names: `sqlite://PATH` (created if missing) or `postgres://…`.
/// Migrations are applied before it returns.
pub async fn open(url: &str) -> Result<Arc<dyn JobStore>> {
    open_with(url, crate::job::RetryPolicy::default()).await
}

/// [`open`] with a retry policy other than the default.
pub async fn open_with(url: &str, policy: crate::job::RetryPolicy) -> Result<Arc<dyn JobStore>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open_with(url, policy).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PostgresStore::open_with(url, policy).await?,
        ))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported store URL '{url}': use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}

/// Clamps a page size to 1..=1000 (default 50).
pub fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => 50,
        n => n.min(1000),
    }
}
