//! What this process's own claims handed out: each job's state right after its claim, so
//! that the finish of its attempt is decided without reading the row back first. The
//! finish's update is guarded on that state as every transition's is (status and attempt), so
//! a job that moved meanwhile (a stop request, a reaper elsewhere) is simply read and decided
//! again; what is kept here is a shortcut, never the truth.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::transitions::Current;

/// How many claimed jobs are remembered at most. A process runs far fewer at once; entries
/// whose finish never comes here (the job was reaped and finished elsewhere) are dropped
/// together when this fills.
const MAX_REMEMBERED: usize = 65_536;

#[derive(Default)]
pub(super) struct Claimed {
    jobs: Mutex<HashMap<String, Current>>,
}

impl Claimed {
    /// Remembers the state a claim of this process left `id` in.
    pub fn remember(&self, id: &str, state: Current) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= MAX_REMEMBERED {
            jobs.clear();
        }
        jobs.insert(id.to_string(), state);
    }

    /// The state the claim of `attempt` left `id` in, if this process made that claim; it is
    /// forgotten either way (an attempt is finished once).
    pub fn take(&self, id: &str, attempt: u32) -> Option<Current> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.remove(id).filter(|state| state.attempt == attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Status;

    fn running(attempt: u32) -> Current {
        Current {
            status: Status::Running,
            attempt,
            max_attempts: 3,
            retry_base: 0,
            split: false,
        }
    }

    #[test]
    fn a_claim_is_taken_once_and_only_for_its_attempt() {
        let claimed = Claimed::default();
        claimed.remember("a", running(2));
        assert!(claimed.take("a", 1).is_none(), "another attempt's finish");
        assert!(
            claimed.take("a", 2).is_none(),
            "forgotten by the first take"
        );
        claimed.remember("a", running(2));
        assert_eq!(claimed.take("a", 2).map(|c| c.attempt), Some(2));
        assert!(claimed.take("a", 2).is_none());
        assert!(claimed.take("never", 1).is_none());
    }

    #[test]
    fn a_full_memory_starts_again_rather_than_grow() {
        let claimed = Claimed::default();
        for i in 0..MAX_REMEMBERED + 10 {
            claimed.remember(&format!("j{i}"), running(1));
        }
        let jobs = claimed.jobs.lock().unwrap();
        assert_eq!(jobs.len(), 10);
    }
}
