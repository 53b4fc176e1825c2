//! The state machine: `Status`, `Transition`, and `Status::apply` — the one place that
//! decides which transitions are legal (unit-tested for every pair of states).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    /// A stop was requested for a running job; its worker has not yet confirmed it.
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Cancelling,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Cancelling => "cancelling",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed and cancelled never change again except through an explicit retry.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }

    /// Held by a worker (under a lease).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Cancelling)
    }

    /// The status after `t`, or why `t` is not allowed from here.
    pub fn apply(self, t: Transition) -> Result<Status, IllegalTransition> {
        use Status::*;
        use Transition::*;
        let next = match (self, t) {
            (Queued, Claim) => Running,
            (Running | Cancelling, Succeed) => Succeeded,
            (Running, Requeue) => Queued,
            (Running, Fail) => Failed,
            // A run that fails or is handed back after a stop was requested ends cancelled:
            // the stop, not the failure, is what the user asked for.
            (Cancelling, Requeue | Fail | ConfirmCancel) => Cancelled,
            (Queued, RequestCancel) => Cancelled,
            (Running, RequestCancel) => Cancelling,
            (Cancelling, RequestCancel) => Cancelling,
            (Cancelled, RequestCancel) => Cancelled,
            (Failed | Cancelled, Retry) => Queued,
            (from, t) => {
                return Err(IllegalTransition {
                    from,
                    transition: t,
                });
            }
        };
        Ok(next)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status '{s}'; one of: {}", known.join(", "))
            })
    }
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// A worker takes the job under a lease.
    Claim,
    /// The task finished with outputs.
    Succeed,
    /// Back to the queue: a retryable failure with attempts left, a lost worker, or a
    /// drained worker handing the job back.
    Requeue,
    /// A final failure, or retries exhausted.
    Fail,
    /// A user asks to stop the job.
    RequestCancel,
    /// The worker confirms the task stopped.
    ConfirmCancel,
    /// A user asks to run a failed or cancelled job again.
    Retry,
}

impl Transition {
    pub const ALL: [Transition; 7] = [
        Transition::Claim,
        Transition::Succeed,
        Transition::Requeue,
        Transition::Fail,
        Transition::RequestCancel,
        Transition::ConfirmCancel,
        Transition::Retry,
    ];
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} job cannot {}", describe(*.transition))]
pub struct IllegalTransition {
    pub from: Status,
    pub transition: Transition,
}

fn describe(t: Transition) -> &'static str {
    match t {
        Transition::Claim => "be claimed",
        Transition::Succeed => "succeed",
        Transition::Requeue => "go back to the queue",
        Transition::Fail => "fail",
        Transition::RequestCancel => "be cancelled",
        Transition::ConfirmCancel => "confirm a stop",
        Transition::Retry => "be retried (only failed or cancelled jobs can)",
    }
}

/// Whether any transition leads from `from` to `to` (for the exhaustive pair test).
pub fn reachable(from: Status, to: Status) -> bool {
    Transition::ALL.into_iter().any(|t| from.apply(t) == Ok(to))
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn every_pair_of_states() {
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Running, Succeeded),
            (Running, Queued),
            (Running, Failed),
            (Running, Cancelling),
            (Cancelling, Succeeded),
            (Cancelling, Cancelled),
            (Cancelling, Cancelling),
            (Cancelled, Cancelled),
            (Failed, Queued),
            (Cancelled, Queued),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    reachable(from, to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_change_only_by_retry() {
        for from in [Succeeded, Failed, Cancelled] {
            for t in Transition::ALL {
                match from.apply(t) {
                    Ok(to) if to != from => assert_eq!(t, Transition::Retry, "{from} via {t:?}"),
                    _ => {}
                }
            }
        }
        assert!(Succeeded.apply(Transition::Retry).is_err());
    }

    #[test]
    fn cancel_racing_finish_ends_in_one_terminal_state() {
        let cancelling = Running.apply(Transition::RequestCancel).unwrap();
        assert_eq!(cancelling, Cancelling);
        assert_eq!(cancelling.apply(Transition::Succeed), Ok(Succeeded));
        assert_eq!(cancelling.apply(Transition::Fail), Ok(Cancelled));
        assert_eq!(cancelling.apply(Transition::Requeue), Ok(Cancelled));
        // Once terminal, the other report is refused.
        assert!(Succeeded.apply(Transition::ConfirmCancel).is_err());
        assert!(Cancelled.apply(Transition::Succeed).is_err());
    }

    #[test]
    fn illegal_transitions_say_why() {
        let e = Succeeded.apply(Transition::RequestCancel).unwrap_err();
        assert_eq!(e.to_string(), "a succeeded job cannot be cancelled");
        let e = Running.apply(Transition::Retry).unwrap_err();
        assert!(e.to_string().contains("only failed or cancelled"));
    }

    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("done".parse::<Status>().unwrap_err().contains("queued"));
    }
}
