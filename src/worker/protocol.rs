//! What a worker and its task process say to each other: the task description the worker
//! writes into the workspace, and the JSON lines the task prints on stdout. The task's stderr
//! is its log.

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
