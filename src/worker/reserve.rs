//! A task's outputs reserved for it: the task process holds no store connection, so when it
//! prints `Reserve` the supervisor asks the store (`JobStore::reserve_outputs`) and writes
//! the answer on the task's stdin (`protocol::ReserveAnswer`). No output of one input is
//! replaced by another's unless the job says `overwrite`: a conflict fails the attempt for
//! good with `output-conflict`; a store that cannot be reached fails it with a retryable
//! `store-unavailable`.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

use super::protocol::ReserveAnswer;
use crate::job::{Job, JobError};
use crate::store::{JobStore, Reservation, StoreError};

/// What the store said to a task's `Reserve`.
pub(super) enum Asked {
    /// Answer the task with this.
    Answer(ReserveAnswer),
    /// The attempt is no longer the job's current one: stop the task, answer nothing.
    Lost,
}

/// Asks the store to reserve `keys` for the job's attempt, waiting at most `limit`.
pub(super) async fn ask(
    store: &dyn JobStore,
    job: &Job,
    keys: &[String],
    limit: Duration,
) -> Asked {
    // Another attempt may find the store again.
    let unavailable = |code: &str, why: String| {
        let message = format!("reserving the outputs: {why}");
        Asked::Answer(ReserveAnswer::Refused(JobError::new(code, message, true)))
    };
    match tokio::time::timeout(limit, store.reserve_outputs(&job.id, job.attempt, keys)).await {
        Ok(Ok(Reservation::Reserved)) => Asked::Answer(ReserveAnswer::Reserved),
        Ok(Ok(Reservation::Conflict(conflict))) => {
            Asked::Answer(ReserveAnswer::Refused(conflict.job_error()))
        }
        Ok(Err(StoreError::Fenced { .. } | StoreError::NotFound { .. })) => Asked::Lost,
        Ok(Err(e)) => unavailable(e.code(), e.to_string()),
        Err(_) => unavailable(
            "store-unavailable",
            format!("the store did not answer within {} s", limit.as_secs()),
        ),
    }
}

/// Writes `answer` as one line on the task's stdin. A task that is gone meanwhile (stopped)
/// needs no answer, so a failed write is only logged.
pub(super) async fn answer(stdin: &mut ChildStdin, job: &Job, answer: &ReserveAnswer) {
    let mut line = serde_json::to_vec(answer).unwrap_or_default();
    line.push(b'\n');
    let written = async {
        stdin.write_all(&line).await?;
        stdin.flush().await
    };
    if let Err(e) = written.await {
        tracing::debug!("job {}: answering the task's reservation: {e}", job.id);
    }
}
