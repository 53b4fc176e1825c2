//! Exec: a shell (or one command) inside a job's task — in its workspace, with its
//! environment, as the worker's user — over a websocket. Owns the wire protocol
//! (`protocol`), pseudo-terminals and session processes (`pty`), running a session
//! (`session`), the bridge from API servers to workers (`bridge`), who may open a session
//! (`authorize`), where a job's session can run (`locate`, over the [`Tasks`] a worker
//! holds) and the per-job cap (`Sessions`). The HTTP routes that reach it are the API's.

pub mod bridge;
pub mod protocol;
pub mod pty;
pub mod session;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::config::Config;
use crate::job::{Job, PartInfo, Status};

/// Why a session cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "exec is disabled: set `[exec] enabled = true` in ffarm.toml (FFARM_EXEC__ENABLED=true) \
         on the API servers and workers to allow shells in running tasks"
    )]
    Disabled,
    #[error(
        "exec needs a token, even on loopback, and none is configured: set `[exec] token` \
         (FFARM_EXEC__TOKEN) or the API's `token` (FFARM_TOKEN)"
    )]
    NoTokenConfigured,
    #[error(
        "exec needs a token: send `Authorization: Bearer TOKEN` (the ffarm command reads it \
         from FFARM_EXEC_TOKEN, else FFARM_TOKEN)"
    )]
    MissingToken,
    #[error("the exec token is wrong")]
    WrongToken,
    #[error(
        "that is the API token; exec takes its own token (`[exec] token`): the ffarm command \
         reads it from FFARM_EXEC_TOKEN"
    )]
    ApiTokenRefused,
    #[error("{0}")]
    BadParams(String),
    #[error("job {id} has no task to exec into: {reason}")]
    Unavailable { id: String, reason: String },
    #[error(
        "job {id} already has {max} exec session(s) open, the most allowed \
         (exec.max_sessions_per_job)"
    )]
    TooManySessions { id: String, max: u32 },
    /// The worker refused the session with an answer to pass on (400, 409).
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("worker {worker} at {address}: {message}")]
    Worker {
        worker: String,
        address: String,
        message: String,
    },
}

impl ExecError {
    pub fn code(&self) -> &str {
        match self {
            ExecError::Disabled => "exec-disabled",
            ExecError::NoTokenConfigured => "exec-needs-token",
            ExecError::MissingToken | ExecError::WrongToken => "unauthorized",
            ExecError::ApiTokenRefused => "exec-token-required",
            ExecError::BadParams(_) => "bad-query",
            ExecError::Unavailable { .. } => "exec-unavailable",
            ExecError::TooManySessions { .. } => "too-many-sessions",
            ExecError::Refused { code, .. } => code,
            ExecError::Worker { .. } => "exec-worker-unreachable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ExecError::Disabled | ExecError::NoTokenConfigured | ExecError::ApiTokenRefused => {
                StatusCode::FORBIDDEN
            }
            ExecError::MissingToken | ExecError::WrongToken => StatusCode::UNAUTHORIZED,
            ExecError::BadParams(_) => StatusCode::BAD_REQUEST,
            ExecError::Unavailable { .. } | ExecError::TooManySessions { .. } => {
                StatusCode::CONFLICT
            }
            ExecError::Refused { status, .. } => *status,
            ExecError::Worker { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    fn unavailable(job: &Job, reason: impl Into<String>) -> ExecError {
        ExecError::Unavailable {
            id: job.id.clone(),
            reason: reason.into(),
        }
    }
}

/// Proof that a request passed [`authorize`]: the only way to make one, so a handler that
/// takes it cannot be reached without the exec check.
#[derive(Debug, Clone)]
pub struct ExecGrant {
    _private: (),
}

/// Whether a request presenting `given` may open a session: exec must be enabled, a token
/// configured (the exec token, else the API token — even on loopback) and presented.
pub fn authorize(config: &Config, given: Option<&str>) -> Result<ExecGrant, ExecError> {
    if !config.exec.enabled {
        return Err(ExecError::Disabled);
    }
    let Some(want) = config.exec.credential(config.token.as_deref()) else {
        return Err(ExecError::NoTokenConfigured);
    };
    let same = |a: &str, b: &str| constant_time_eq::constant_time_eq(a.as_bytes(), b.as_bytes());
    match given {
        None => Err(ExecError::MissingToken),
        Some(g) if same(g, want) => Ok(ExecGrant { _private: () }),
        Some(g) if config.token.as_deref().is_some_and(|api| same(g, api)) => {
            Err(ExecError::ApiTokenRefused)
        }
        Some(_) => Err(ExecError::WrongToken),
    }
}

/// Where a session runs and what it sees.
#[derive(Debug, Clone)]
pub struct Target {
    pub workspace: PathBuf,
    pub env: Vec<(String, String)>,
    pub attempt: u32,
    /// Tied to a running task (closed when it ends); otherwise a failed attempt's kept
    /// workspace (closed when it is removed).
    pub tied: bool,
}

/// Why a job in `job`'s state has no task to exec into, if it has none anywhere.
pub fn unavailable(job: &Job) -> Option<ExecError> {
    let reason = match job.status {
        Status::Running | Status::Cancelling | Status::Failed => return None,
        Status::Queued if job.attempt == 0 => "it is queued: no task has started yet",
        Status::Queued => "it is queued for another attempt: the last attempt's task has ended",
        Status::Succeeded => "it has succeeded: its task ended and its workspace was removed",
        Status::Cancelled => "it was cancelled: its task ended and its workspace was removed",
    };
    Some(ExecError::unavailable(job, reason))
}

/// The tasks a worker holds, as exec finds them: the worker implements this, so exec
/// needs nothing else of it.
pub trait Tasks {
    /// The worker's id, as jobs name it.
    fn worker_id(&self) -> &str;
    /// Where the running task of `job`'s current attempt (or of its running part `part`)
    /// is, if this worker runs it.
    fn running(&self, job: &Job, part: Option<&PartInfo>) -> Option<Target>;
    /// The workspace this worker kept of `job`'s failed current attempt, if it still exists.
    fn kept(&self, job: &Job) -> Option<Target>;
}

/// Which running part of a split job a session goes into: the one asked for, or the only
/// one running. None for a job that runs whole.
pub fn choose_part(job: &Job, wanted: Option<u32>) -> Result<Option<PartInfo>, ExecError> {
    if job.parts.is_empty() {
        return match wanted {
            None => Ok(None),
            Some(n) => Err(ExecError::unavailable(
                job,
                format!("it has no part {n}: it is not split into parts"),
            )),
        };
    }
    let running: Vec<&PartInfo> = job
        .parts
        .iter()
        .filter(|p| p.status == Status::Running && p.worker.is_some())
        .collect();
    match (wanted, running.as_slice()) {
        (Some(n), _) => match job.parts.iter().find(|p| p.seq == n) {
            Some(p) if running.iter().any(|r| r.seq == n) => Ok(Some(p.clone())),
            Some(p) => Err(ExecError::unavailable(
                job,
                format!("its part {n} is not running (it is {})", p.status),
            )),
            None => Err(ExecError::unavailable(
                job,
                format!("it has no part {n} (parts 0 to {})", job.parts.len() - 1),
            )),
        },
        (None, [one]) => Ok(Some((*one).clone())),
        (None, []) => Err(ExecError::unavailable(
            job,
            "it is split into parts and none is running now",
        )),
        (None, several) => Err(ExecError::unavailable(
            job,
            format!(
                "{} of its parts are running ({}): choose one with part=N (`ffarm exec --part N`)",
                several.len(),
                several
                    .iter()
                    .map(|p| p.seq.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Where a session into `job` (or its running part `part`) runs on this worker: its running
/// task, or the kept workspace of its failed attempt.
pub fn locate(tasks: &dyn Tasks, job: &Job, part: Option<&PartInfo>) -> Result<Target, ExecError> {
    if let Some(e) = unavailable(job) {
        return Err(e);
    }
    if let Some(target) = tasks.running(job, part) {
        return Ok(target);
    }
    if let Some(p) = part {
        return Err(ExecError::unavailable(
            job,
            format!(
                "its part {} is not running on worker {}",
                p.seq,
                tasks.worker_id()
            ),
        ));
    }
    if job.status != Status::Failed {
        return Err(ExecError::unavailable(
            job,
            format!("its task is not running on worker {}", tasks.worker_id()),
        ));
    }
    tasks.kept(job).ok_or_else(|| {
        ExecError::unavailable(
            job,
            "it failed and the workspace of its last attempt was removed \
             (worker.keep_failed_workspace_seconds)",
        )
    })
}

/// A session's idle limit from the configuration (0: none).
pub fn idle_timeout(seconds: u64) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// Sessions open per job in this process (the cap).
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, u32>>,
}

/// One open session's place under the cap, given back when dropped.
#[derive(Debug)]
pub struct SessionSlot {
    sessions: Arc<Sessions>,
    job: String,
}

impl Sessions {
    /// A place for one more session into `job`, if fewer than `max` are open.
    pub fn acquire(self: &Arc<Self>, job: &str, max: u32) -> Result<SessionSlot, ExecError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(job.to_string()).or_default();
        if *n >= max {
            return Err(ExecError::TooManySessions {
                id: job.to_string(),
                max,
            });
        }
        *n += 1;
        Ok(SessionSlot {
            sessions: self.clone(),
            job: job.to_string(),
        })
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.job) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_open_a_session() {
        let mut c = Config::default();
        assert_eq!(
            authorize(&c, Some("x")).unwrap_err().code(),
            "exec-disabled"
        );
        c.exec.enabled = true;
        assert_eq!(authorize(&c, None).unwrap_err().code(), "exec-needs-token");
        c.token = Some("api-token-0123456789".into());
        assert!(authorize(&c, Some("api-token-0123456789")).is_ok());
        assert_eq!(
            authorize(&c, None).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            authorize(&c, Some("nope")).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        c.exec.token = Some("exec-token-0123456789".into());
        assert!(authorize(&c, Some("exec-token-0123456789")).is_ok());
        let e = authorize(&c, Some("api-token-0123456789")).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::FORBIDDEN, "exec-token-required")
        );
    }

    #[test]
    fn sessions_are_capped_per_job() {
        let s = Arc::new(Sessions::default());
        let a = s.acquire("j", 2).unwrap();
        let _b = s.acquire("j", 2).unwrap();
        assert_eq!(s.acquire("j", 2).unwrap_err().code(), "too-many-sessions");
        let _other = s.acquire("k", 2).unwrap();
        drop(a);
        assert!(s.acquire("j", 2).is_ok());
    }
}
