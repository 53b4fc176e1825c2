//! What a worker runs in a task process: a whole job, or one part of a split job. Each
//! reports to the store in its own terms (`heartbeat` or `heartbeat_part`, `finish` or
//! `finish_part`, fenced by the job's attempt or the part's); the supervisor sees one
//! interface. Also what the task is told to do (`TaskWork`): for a job that may be split,
//! whether the farm has room for its parts now.

use std::time::Duration;

use super::WorkerCtx;
use super::protocol::{PartTask, SplitSettings, TaskWork};
use crate::job::{Chunking, Job, JobError, Outcome, Part, PartKind, PartOutcome, SplitPlan};
use crate::progress::Progress;
use crate::store::{ClaimedPart, Heartbeat, JobStore, Result};

/// A job or a part, as claimed.
pub enum Unit {
    Job(Box<Job>),
    Part(Box<ClaimedPart>),
}

impl Unit {
    /// The job (for a part, its job as it was when the part was claimed).
    pub fn job(&self) -> &Job {
        match self {
            Unit::Job(job) => job,
            Unit::Part(claimed) => &claimed.job,
        }
    }

    pub fn part(&self) -> Option<&Part> {
        match self {
            Unit::Job(_) => None,
            Unit::Part(claimed) => Some(&claimed.part),
        }
    }

    /// The name the worker's running tasks go by: the job's id, or `JOB#SEQ` for a part.
    pub fn key(&self) -> String {
        match self.part() {
            None => self.job().id.clone(),
            Some(part) => part_key(&part.job_id, part.seq),
        }
    }

    /// The fencing token of its reports: the job's attempt, or the part's own.
    pub fn attempt(&self) -> u32 {
        self.part().map_or(self.job().attempt, |p| p.attempt)
    }

    /// "job ID" or "job ID part N", for the worker's log.
    pub fn describe(&self) -> String {
        match self.part() {
            None => format!("job {}", self.job().id),
            Some(p) => format!("job {} part {}", p.job_id, p.seq),
        }
    }

    /// What a line of its task's log is prefixed with in the job's log.
    pub fn log_prefix(&self) -> Option<String> {
        self.part().map(|p| format!("[part {}] ", p.seq))
    }

    /// The workspace folder's name (before its attempt).
    pub fn workspace_name(&self) -> String {
        match self.part() {
            None => self.job().id.clone(),
            Some(p) => format!("{}-p{}", p.job_id, p.seq),
        }
    }

    pub async fn heartbeat(
        &self,
        store: &dyn JobStore,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        match self.part() {
            None => {
                let job = self.job();
                store.heartbeat(&job.id, job.attempt, lease, progress).await
            }
            Some(p) => {
                store
                    .heartbeat_part(&p.job_id, p.seq, p.attempt, lease, progress)
                    .await
            }
        }
    }

    /// Ends the attempt: a job's with `finish`, or, when its task cut it into parts, with
    /// `split`; a part's with `finish_part` (its result, for the assembly the job's outputs).
    pub async fn finish(&self, store: &dyn JobStore, ending: Ending) -> Result<Job> {
        let job = self.job();
        match (self.part(), ending) {
            (None, Ending::Split(plan)) => store.split(&job.id, job.attempt, &plan).await,
            (None, Ending::Done(outcome, _)) => store.finish(&job.id, job.attempt, outcome).await,
            (Some(p), ending) => {
                let outcome = part_outcome(ending);
                store
                    .finish_part(&p.job_id, p.seq, p.attempt, outcome)
                    .await
            }
        }
    }
}

/// How an attempt ended, as the supervisor saw it.
pub enum Ending {
    /// The job was cut into parts (its planning task's result).
    Split(SplitPlan),
    /// Any other ending, with a part's result when it made one.
    Done(Outcome, Option<serde_json::Value>),
}

fn part_outcome(ending: Ending) -> PartOutcome {
    match ending {
        Ending::Done(Outcome::Succeeded { outputs }, result) => PartOutcome::Succeeded {
            result: result.unwrap_or(serde_json::Value::Null),
            outputs,
        },
        Ending::Done(Outcome::Failed(e), _) => PartOutcome::Failed(e),
        Ending::Done(Outcome::Cancelled, _) => PartOutcome::Cancelled,
        Ending::Done(Outcome::Released, _) => PartOutcome::Released,
        Ending::Split(_) => PartOutcome::Failed(JobError::new(
            "internal",
            "a part's task asked to split it",
            false,
        )),
    }
}

/// The running-task key of part `seq` of job `job_id`.
pub fn part_key(job_id: &str, seq: u32) -> String {
    format!("{job_id}#{seq}")
}

/// What the unit's task is to do. The assembly is given the other parts (their results);
/// when the store cannot list them, the attempt fails retryably rather than assembling
/// from nothing.
pub async fn task_work(ctx: &WorkerCtx, unit: &Unit) -> std::result::Result<TaskWork, JobError> {
    let claimed = match unit {
        Unit::Job(job) => {
            return Ok(match split_settings(ctx, job).await {
                Some(settings) => TaskWork::Plan(settings),
                None => TaskWork::Job,
            });
        }
        Unit::Part(claimed) => claimed,
    };
    let others = if claimed.part.kind == PartKind::Assemble {
        ctx.store
            .parts(&claimed.job.id)
            .await
            .map_err(|e| {
                JobError::new(
                    "store-unavailable",
                    format!("listing the job's parts for the assembly: {e}"),
                    true,
                )
            })?
            .into_iter()
            .filter(|p| p.seq != claimed.part.seq)
            .collect()
    } else {
        Vec::new()
    };
    Ok(TaskWork::Part(Box::new(PartTask {
        part: claimed.part.clone(),
        plan: claimed.plan.clone(),
        threads: part_threads(ctx.config.slots()),
        others,
    })))
}

/// Threads for one part's encoder: the cores this process may use over its slots.
pub fn part_threads(slots: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    (cores / slots.max(1)).max(1)
}

/// How the job may be split, if at all: as it says, or for `auto` only when the farm has free
/// slots to take its parts and no more jobs waiting than those slots (splitting then gains
/// nothing and costs the assembly).
async fn split_settings(ctx: &WorkerCtx, job: &Job) -> Option<SplitSettings> {
    let chunking = &ctx.config.chunking;
    let (segment_seconds, min_seconds) = match job.chunking {
        Chunking::Off => return None,
        Chunking::Segments { segment_seconds } => (segment_seconds, 0),
        Chunking::Auto => (chunking.segment_seconds, chunking.min_seconds),
    };
    if job.chunking.is_auto() && !room_for_parts(ctx, job).await {
        return None;
    }
    Some(SplitSettings {
        segment_seconds,
        min_seconds,
        max_parallel: chunking.max_parallel,
        scratch_bucket: chunking.scratch_bucket(&job.output.bucket).to_string(),
    })
}

async fn room_for_parts(ctx: &WorkerCtx, job: &Job) -> bool {
    let capacity = match ctx.store.capacity().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "job {}: not split, the farm's capacity is unknown: {e}",
                job.id
            );
            return false;
        }
    };
    let free = capacity.slots.saturating_sub(capacity.busy);
    let room = free > 0 && capacity.queued_jobs <= free;
    if !room {
        tracing::info!(
            "job {}: not split: {free} free slot(s), {} job(s) waiting",
            job.id,
            capacity.queued_jobs
        );
    }
    room
}
