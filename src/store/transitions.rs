//! The transitions: what finish, cancel, retry and lease expiry change, decided from the job's
//! current state through `Status::apply` (and how much of a log an attempt keeps). Both
//! backends call these and only execute the resulting guarded update, so the rules live once.

use crate::job::{
    Job, JobError, Outcome, OutputObject, RetryPolicy, Status, Timestamp, Transition,
};

use super::{MAX_LOG_BYTES_PER_ATTEMPT, MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_ATTEMPT, StoreError};

/// The parts of a job's row a transition depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    pub status: Status,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The attempt count when the job was last explicitly retried (or handed back): automatic
    /// retries count from here.
    pub retry_base: u32,
    /// The job is split into parts (running with no lease): its attempt's own reports are
    /// refused, its parts report instead.
    pub split: bool,
}

impl Current {
    /// The state of `job`, whose row holds `retry_base`.
    pub fn of(job: &Job, retry_base: u32) -> Current {
        Current {
            status: job.status,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            retry_base,
            split: job.status.is_active() && job.lease_expires_at.is_none(),
        }
    }
}

/// The fields a transition writes.
#[derive(Debug, Clone)]
pub(crate) struct Update {
    pub status: Status,
    pub reason: String,
    /// The error to store (None clears it).
    pub error: Option<JobError>,
    /// New outputs (None keeps them).
    pub outputs: Option<Vec<OutputObject>>,
    pub run_after: Timestamp,
    pub retry_base: u32,
    /// Sets `finished_at` (terminal states) or clears it.
    pub finished: bool,
    /// Releases the lease (the job leaves its worker).
    pub release: bool,
}

fn illegal(id: &str, e: crate::job::IllegalTransition) -> StoreError {
    StoreError::IllegalTransition {
        id: id.to_string(),
        reason: e.to_string(),
    }
}

/// A worker reporting on an attempt must hold the job's current one (a split job's attempt
/// no longer holds it: its parts do).
pub(crate) fn check_fence(id: &str, cur: &Current, attempt: u32) -> Result<(), StoreError> {
    if cur.split {
        return Err(fenced(id, cur, attempt));
    }
    check_attempt(id, cur, attempt)
}

/// The attempt is the job's current one and the job is running, split or not (a split
/// job's assembly reserves its outputs with the job's attempt).
pub(crate) fn check_attempt(id: &str, cur: &Current, attempt: u32) -> Result<(), StoreError> {
    if cur.attempt != attempt || !cur.status.is_active() {
        return Err(fenced(id, cur, attempt));
    }
    Ok(())
}

fn fenced(id: &str, cur: &Current, attempt: u32) -> StoreError {
    StoreError::Fenced {
        id: id.to_string(),
        attempt,
        current: cur.attempt,
        status: cur.status,
    }
}

/// A worker ends its attempt.
pub(crate) fn finish(
    id: &str,
    cur: &Current,
    attempt: u32,
    outcome: Outcome,
    now: Timestamp,
    policy: &RetryPolicy,
    jitter: f64,
) -> Result<Update, StoreError> {
    check_fence(id, cur, attempt)?;
    let base = Update {
        status: cur.status,
        reason: String::new(),
        error: None,
        outputs: None,
        run_after: now,
        retry_base: cur.retry_base,
        finished: true,
        release: true,
    };
    let next = |t: Transition| cur.status.apply(t).map_err(|e| illegal(id, e));
    let update = match outcome {
        Outcome::Succeeded { outputs } => {
            let reason = if cur.status == Status::Cancelling {
                "succeeded (the task completed before the stop landed)".to_string()
            } else {
                "succeeded".to_string()
            };
            Update {
                status: next(Transition::Succeed)?,
                reason,
                outputs: Some(outputs),
                ..base
            }
        }
        Outcome::Failed(error) => {
            let attempts_left = attempt.saturating_sub(cur.retry_base) < cur.max_attempts;
            if cur.status == Status::Cancelling {
                Update {
                    status: next(Transition::ConfirmCancel)?,
                    reason: format!("stopped on request ({})", error.message),
                    error: Some(error),
                    ..base
                }
            } else if error.retryable && attempts_left {
                let delay = policy.delay(attempt.saturating_sub(cur.retry_base), jitter);
                Update {
                    status: next(Transition::Requeue)?,
                    reason: format!(
                        "attempt {attempt} failed, retrying in {:.0} s: {}",
                        delay.as_secs_f64(),
                        error.message
                    ),
                    error: Some(error),
                    run_after: now.plus(delay),
                    finished: false,
                    ..base
                }
            } else {
                let why = if error.retryable {
                    format!(
                        "failed after {} attempts: {}",
                        cur.max_attempts, error.message
                    )
                } else {
                    format!("failed: {}", error.message)
                };
                Update {
                    status: next(Transition::Fail)?,
                    reason: why,
                    error: Some(error),
                    ..base
                }
            }
        }
        Outcome::Cancelled => Update {
            status: next(Transition::ConfirmCancel)?,
            reason: "stopped on request".into(),
            error: None,
            ..base
        },
        Outcome::Released => {
            if cur.status == Status::Cancelling {
                Update {
                    status: next(Transition::ConfirmCancel)?,
                    reason: "stopped on request (worker shutting down)".into(),
                    ..base
                }
            } else {
                // Handed back by a draining worker: the attempt does not count.
                Update {
                    status: next(Transition::Requeue)?,
                    reason: "handed back by a draining worker".into(),
                    retry_base: cur.retry_base + 1,
                    finished: false,
                    ..base
                }
            }
        }
    };
    Ok(update)
}

/// The lease expired: the worker is presumed lost. A failed, retryable attempt.
pub(crate) fn lease_expired(
    id: &str,
    cur: &Current,
    now: Timestamp,
    policy: &RetryPolicy,
    jitter: f64,
) -> Result<Update, StoreError> {
    let error = JobError::new(
        "worker-lost",
        "the worker stopped renewing its lease (it crashed, was killed, or lost the store)",
        true,
    );
    finish(
        id,
        cur,
        cur.attempt,
        Outcome::Failed(error),
        now,
        policy,
        jitter,
    )
}

/// A user asks to cancel. None: nothing to change (already cancelling or cancelled).
pub(crate) fn cancel(id: &str, cur: &Current, reason: &str) -> Result<Option<Update>, StoreError> {
    let next = cur
        .status
        .apply(Transition::RequestCancel)
        .map_err(|e| illegal(id, e))?;
    if next == cur.status {
        return Ok(None);
    }
    let reason = if reason.is_empty() {
        "cancel requested"
    } else {
        reason
    };
    Ok(Some(Update {
        status: next,
        reason: reason.to_string(),
        error: None,
        outputs: None,
        run_after: Timestamp(0),
        retry_base: cur.retry_base,
        finished: next.is_terminal(),
        // A running job keeps its lease until its worker confirms the stop.
        release: next.is_terminal(),
    }))
}

/// A user asks to run a failed or cancelled job again: a fresh set of attempts.
pub(crate) fn retry(id: &str, cur: &Current, now: Timestamp) -> Result<Update, StoreError> {
    let next = cur
        .status
        .apply(Transition::Retry)
        .map_err(|e| illegal(id, e))?;
    Ok(Update {
        status: next,
        reason: "retry requested".into(),
        error: None,
        outputs: Some(Vec::new()),
        run_after: now,
        retry_base: cur.attempt,
        finished: false,
        release: true,
    })
}

/// Cuts a line to at most MAX_LOG_LINE_BYTES on a character boundary.
pub(crate) fn clip(line: &str) -> &str {
    if line.len() <= MAX_LOG_LINE_BYTES {
        return line;
    }
    let mut end = MAX_LOG_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Which of `lines` fit an attempt's budget: (lines to keep, how many are dropped). Once a
/// line has been dropped, every later one is too, even a short one that would fit the bytes
/// left: the log ends where its notice says it does.
pub(crate) fn log_budget(
    lines: &[String],
    kept_lines: u32,
    kept_bytes: u64,
    dropped_before: u32,
) -> (Vec<&str>, u32) {
    if dropped_before > 0 {
        return (Vec::new(), lines.len() as u32);
    }
    let (mut n, mut bytes) = (kept_lines, kept_bytes);
    let mut keep = Vec::new();
    for line in lines {
        let l = clip(line);
        if n >= MAX_LOG_LINES_PER_ATTEMPT || bytes + l.len() as u64 > MAX_LOG_BYTES_PER_ATTEMPT {
            break;
        }
        n += 1;
        bytes += l.len() as u64;
        keep.push(l);
    }
    let dropped = (lines.len() - keep.len()) as u32;
    (keep, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(status: Status, attempt: u32) -> Current {
        Current {
            status,
            attempt,
            max_attempts: 3,
            retry_base: 0,
            split: false,
        }
    }

    const NOW: Timestamp = Timestamp(1_000_000_000);

    #[test]
    fn retryable_failures_back_off_until_attempts_run_out() {
        let p = RetryPolicy::default();
        let err = || Outcome::Failed(JobError::new("storage-timeout", "slow", true));
        let u = finish("j", &cur(Status::Running, 1), 1, err(), NOW, &p, 1.0).unwrap();
        assert_eq!(u.status, Status::Queued);
        assert_eq!(u.run_after, NOW.plus(std::time::Duration::from_secs(5)));
        assert!(!u.finished);
        let u = finish("j", &cur(Status::Running, 3), 3, err(), NOW, &p, 1.0).unwrap();
        assert_eq!(u.status, Status::Failed);
        assert!(u.reason.contains("after 3 attempts"));
        let final_err = Outcome::Failed(JobError::new("input-unreadable", "bad", false));
        let u = finish("j", &cur(Status::Running, 1), 1, final_err, NOW, &p, 1.0).unwrap();
        assert_eq!(u.status, Status::Failed);
    }

    #[test]
    fn stale_attempts_are_fenced() {
        let p = RetryPolicy::default();
        let e = finish(
            "j",
            &cur(Status::Running, 2),
            1,
            Outcome::Cancelled,
            NOW,
            &p,
            0.0,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            StoreError::Fenced {
                attempt: 1,
                current: 2,
                ..
            }
        ));
        let e = finish(
            "j",
            &cur(Status::Queued, 1),
            1,
            Outcome::Cancelled,
            NOW,
            &p,
            0.0,
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::Fenced { .. }));
    }

    #[test]
    fn a_drained_attempt_does_not_count() {
        let u = finish(
            "j",
            &cur(Status::Running, 3),
            3,
            Outcome::Released,
            NOW,
            &RetryPolicy::default(),
            0.0,
        )
        .unwrap();
        assert_eq!(u.status, Status::Queued);
        assert_eq!(u.retry_base, 1);
        assert_eq!(u.run_after, NOW);
    }

    #[test]
    fn a_log_ends_at_its_first_dropped_line() {
        let long = "x".repeat(MAX_LOG_LINE_BYTES);
        let lines = vec![long.clone(), "short".to_string()];
        let near_full = MAX_LOG_BYTES_PER_ATTEMPT - 10;
        let (keep, dropped) = log_budget(&lines, 5, near_full, 0);
        assert_eq!(
            (keep.len(), dropped),
            (0, 2),
            "stops at the first that does not fit"
        );
        let short = vec!["short".to_string()];
        let (keep, dropped) = log_budget(&short, 5, near_full, 2);
        assert_eq!((keep.len(), dropped), (0, 1), "and stays stopped");
        let (keep, dropped) = log_budget(&short, 5, near_full, 0);
        assert_eq!((keep, dropped), (vec!["short"], 0));
    }

    #[test]
    fn cancel_in_every_state() {
        for (status, expect) in [
            (Status::Queued, Ok(Some(Status::Cancelled))),
            (Status::Running, Ok(Some(Status::Cancelling))),
            (Status::Cancelling, Ok(None)),
            (Status::Cancelled, Ok(None)),
            (Status::Succeeded, Err(())),
            (Status::Failed, Err(())),
        ] {
            let got = cancel("j", &cur(status, 1), "")
                .map(|u| u.map(|u| u.status))
                .map_err(|_| ());
            assert_eq!(got, expect, "{status}");
        }
    }
}
