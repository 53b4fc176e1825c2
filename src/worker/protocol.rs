//! What a worker and its task process say to each other: the task description the worker
//! writes into the workspace, the JSON lines the task prints on stdout, and the one line the
//! worker writes on the task's stdin: its answer to a `Reserve` (the task holds no store
//! connection, so the worker asks the store for it). The task's stderr is its log.
//!
//! A task that has transcoded prints `Reserve` with the final keys it is about to upload and
//! waits for a [`ReserveAnswer`] before its first upload (a stop still ends the wait at once):
//! `Reserved`, or `Refused` with the error to fail with (`output-conflict` when another
//! input's job owns a key; a retryable `store-unavailable` when the worker cannot reach the
//! store).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::buckets::BucketConfig;
use crate::job::{Job, JobError, OutputObject};
use crate::progress::Progress;

/// Everything a task needs, written by the worker as `task.json` in the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    pub job: Job,
    pub workspace: PathBuf,
    pub data_dir: PathBuf,
    pub buckets: BTreeMap<String, BucketConfig>,
    pub presets_dir: Option<PathBuf>,
}

/// One line of a task's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskMessage {
    Progress(Progress),
    /// The uploaded outputs, in publication order.
    Outputs {
        outputs: Vec<OutputObject>,
    },
    /// Seconds spent per phase.
    Stats {
        phases: BTreeMap<String, f64>,
    },
    /// Why the task failed (it then exits with code 1).
    Error(JobError),
    /// The task stopped on request and cleaned up (it then exits with code 130).
    Stopped,
    /// The final keys (in the job's output bucket) the task is about to upload; it waits for
    /// a [`ReserveAnswer`] on its stdin before uploading any.
    Reserve {
        keys: Vec<String>,
    },
}

/// The worker's answer to a `Reserve`: one JSON line on the task's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReserveAnswer {
    /// The keys are this attempt's: upload.
    Reserved,
    /// Upload nothing: fail with this error.
    Refused(JobError),
}

/// Exit codes of `ffarm task`.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const STOPPED: i32 = 130;
}

/// Environment variable naming an input key whose task aborts itself (SIGABRT) as it starts
/// transcoding: how the tests make a task crash. Has no effect unless set.
pub const TEST_FAULT_ENV: &str = "FFARM_TEST_ABORT_KEY";

/// Environment variable naming an input key whose task ignores SIGTERM: how the tests check
/// that a stuck task is killed after the grace period. Has no effect unless set.
pub const TEST_IGNORE_STOP_ENV: &str = "FFARM_TEST_IGNORE_STOP_KEY";

/// Environment variable naming an input key whose task waits a second before each upload
/// after the first (a stop still reaches it at once): how the tests stop a task while it is
/// uploading. Has no effect unless set.
pub const TEST_SLOW_UPLOAD_ENV: &str = "FFARM_TEST_SLOW_UPLOAD_KEY";
