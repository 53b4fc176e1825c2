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
use crate::job::{Job, JobError, OutputObject, Part, SplitPlan};
use crate::progress::Progress;
use crate::sandbox::Limits;

/// Everything a task needs, written by the worker as `task.json` in the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    pub job: Job,
    pub workspace: PathBuf,
    pub data_dir: PathBuf,
    pub buckets: BTreeMap<String, BucketConfig>,
    pub presets_dir: Option<PathBuf>,
    /// The whole job, or one part of a split job.
    #[serde(default)]
    pub work: TaskWork,
    /// How its media work runs.
    #[serde(default)]
    pub engine: EngineSettings,
    /// The job's HLS segment key, when a preset of its encrypts (decision 0082).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_key: Option<crate::job::SegmentKey>,
}

/// How a task runs its engine processes (`crate::engine`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Whether they enter the sandbox (`worker.sandbox`).
    pub sandbox: bool,
    pub limits: Limits,
    /// `worker.stall_seconds` (0: off).
    #[serde(default)]
    pub stall_seconds: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            sandbox: true,
            limits: Limits::default(),
            stall_seconds: 0,
        }
    }
}

/// What a task does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskWork {
    /// The whole job, transcoded in one piece.
    #[default]
    Job,
    /// The whole job: planned and cut into parts when its input is long enough (the task
    /// then reports `Split`), transcoded in one piece otherwise.
    Plan(SplitSettings),
    /// One part of a split job.
    Part(Box<PartTask>),
}

/// One part of a split job, as its task gets it. The assembly also gets the other parts
/// (`others`), whose results name the files it joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartTask {
    pub part: Part,
    pub plan: SplitPlan,
    /// Threads for its encoder: the worker's cores over its slots.
    pub threads: u32,
    #[serde(default)]
    pub others: Vec<Part>,
}

/// How the planning task splits a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSettings {
    pub segment_seconds: u32,
    /// The shortest input it splits (0: any the engine can split).
    pub min_seconds: u32,
    /// The most of the job's parts that run at once (0: no limit).
    pub max_parallel: u32,
    /// The bucket the job's scratch objects go to.
    pub scratch_bucket: String,
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
    /// The input was cut into parts, now in the job's scratch: the worker hands the plan to
    /// the store, and the farm's workers take the parts (the task then exits with code 0).
    Split {
        plan: SplitPlan,
    },
    /// A part is done: what it made (files under its scratch prefix), for the assembly.
    PartDone {
        result: serde_json::Value,
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

/// Environment variable `KEY=FAULT` making the engine of the job with input key KEY commit
/// FAULT once it transcodes: `hang` (it stops making progress: the stall detector's case) or
/// `socket` (it opens a socket: the sandbox's case). Has no effect unless set.
pub const TEST_ENGINE_FAULT_ENV: &str = "FFARM_TEST_ENGINE_FAULT";

/// Environment variable naming an input key whose task waits a second before each upload
/// after the first (a stop still reaches it at once): how the tests stop a task while it is
/// uploading. Has no effect unless set.
pub const TEST_SLOW_UPLOAD_ENV: &str = "FFARM_TEST_SLOW_UPLOAD_KEY";
