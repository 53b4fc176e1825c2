//! Stopping a task: why (`StopReason`), and how (`Stopper`: SIGTERM to its process group,
//! SIGKILL after the grace period, at once when the lease is lost), and the time limit an
//! attempt runs under.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::process;

/// Why a worker stops a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled the job.
    Cancel,
    /// The job ran past its time limit.
    Timeout,
    /// The worker is shutting down and hands the job back.
    Drain,
    /// The lease is gone (another worker may hold the job): stop without reporting.
    Lost,
}

impl StopReason {
    fn describe(self) -> &'static str {
        match self {
            StopReason::Cancel => "cancel requested",
            StopReason::Timeout => "time limit reached",
            StopReason::Drain => "worker draining",
            StopReason::Lost => "lease lost",
        }
    }
}

/// Stops a task once: SIGTERM to its group now, SIGKILL if it outlives the grace period. A
/// task whose lease is lost is killed at once: another worker may hold the job and be writing
/// the same objects, so this attempt must not upload or delete anything more.
pub(super) struct Stopper {
    pub pid: Pid,
    pub grace: Duration,
    pub reason: Option<StopReason>,
    pub kill_at: Option<tokio::time::Instant>,
    pub killed: bool,
}

impl Stopper {
    pub(super) fn request(&mut self, why: StopReason, log: &mut Vec<String>) {
        if why == StopReason::Lost {
            if self.reason != Some(StopReason::Lost) {
                self.reason = Some(why);
                log.push(format!("[worker] stopping the task: {}", why.describe()));
                self.kill(log);
            }
            return;
        }
        if self.reason.is_some() {
            return;
        }
        self.reason = Some(why);
        log.push(format!(
            "[worker] stopping the task: {} (SIGTERM)",
            why.describe()
        ));
        process::signal(self.pid, Signal::SIGTERM);
        self.kill_at = Some(tokio::time::Instant::now() + self.grace);
    }

    /// A SIGTERM was sent and SIGKILL is still to come.
    pub(super) fn kill_pending(&self) -> bool {
        self.kill_at.is_some() && !self.killed
    }

    pub(super) fn kill(&mut self, log: &mut Vec<String>) {
        if self.killed {
            return;
        }
        self.killed = true;
        log.push(if self.reason == Some(StopReason::Lost) {
            "[worker] the lease is gone: SIGKILL".into()
        } else {
            "[worker] the task did not stop in time: SIGKILL".into()
        });
        process::signal(self.pid, Signal::SIGKILL);
    }
}

/// The time limit of an attempt, in seconds, and whether it is the worker's own cap: the
/// job's `timeout_seconds`, but never more than `worker.job_timeout_seconds` (a job without a
/// limit of its own, 0, gets the worker's).
pub(super) fn time_limit(job_seconds: u64, cap: u64) -> (u64, bool) {
    match job_seconds {
        0 => (cap, true),
        t if t > cap => (cap, true),
        t => (t, false),
    }
}

#[cfg(test)]
mod tests {
    use super::time_limit;

    #[test]
    fn the_worker_caps_every_jobs_time_limit() {
        assert_eq!(
            time_limit(60, 86_400),
            (60, false),
            "a shorter job limit applies"
        );
        assert_eq!(
            time_limit(86_400, 3_600),
            (3_600, true),
            "the worker's cap applies"
        );
        assert_eq!(time_limit(3_600, 3_600), (3_600, false));
        assert_eq!(
            time_limit(0, 3_600),
            (3_600, true),
            "no job limit: the worker's"
        );
    }
}
