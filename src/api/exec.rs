//! `GET /v1/jobs/{id}/exec`: a shell (or one command) inside a job's task, as a websocket.
//! Authorized by `auth` with exec's own rule before it gets here; this picks where the
//! session runs — this process's worker (`serve`), or the job's worker over the bridge — and
//! answers refusals (404, 409, 502) before upgrading.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use super::AppState;
use super::error::{ApiError, ErrorBody, Path};
use crate::exec::bridge::{self, Worker};
use crate::exec::protocol::Params;
use crate::exec::session::{self, Session};
use crate::exec::{ExecError, ExecGrant, idle_timeout};

/// Whether `path` is this route (`/v1/jobs/{id}/exec`), which `auth` checks by exec's rule.
pub fn is_exec_path(path: &str) -> bool {
    let mut segments = path.split('/');
    matches!(
        (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next()
        ),
        (Some(""), Some("v1"), Some("jobs"), Some(id), Some("exec"), None) if !id.is_empty()
    )
}

#[utoipa::path(get, path = "/v1/jobs/{id}/exec", tag = "jobs",
    description = "A websocket into the job's running task (or its failed attempt's kept \
        workspace): binary frames are terminal bytes both ways, text frames JSON control \
        messages (`resize`, `eof` from the client; `exit`, `notice`, `error`, `stderr` from the \
        server). Off unless `[exec] enabled`; needs the exec token (`[exec] token`), else the \
        API token, even on loopback.",
    params(
        ("id" = String, Path, description = "job id"),
        ("command" = Option<Vec<String>>, Query, description = "the command's argv, one \
            parameter per argument; without it, an interactive shell"),
        ("tty" = Option<bool>, Query, description = "a pseudo-terminal (default: only for the shell)"),
        ("cols" = Option<u16>, Query, description = "terminal columns (default 80)"),
        ("rows" = Option<u16>, Query, description = "terminal rows (default 24)"),
        ("user" = Option<String>, Query, description = "who is connecting, for the job's history"),
        ("part" = Option<u32>, Query, description = "for a job split into parts, which running \
            part to enter (needed when several run)"),
    ),
    responses(
        (status = 101, description = "switching to the websocket"),
        (status = 400, description = "bad parameters", body = ErrorBody),
        (status = 401, description = "no token, or a wrong one", body = ErrorBody),
        (status = 403, description = "exec disabled, no token configured, or the API token \
            where exec has its own", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "no task to exec into (queued, finished, workspace \
            removed), or too many sessions", body = ErrorBody),
        (status = 426, description = "not a websocket request", body = ErrorBody),
        (status = 502, description = "the job's worker cannot be reached", body = ErrorBody),
    ))]
pub async fn exec(
    State(app): State<AppState>,
    Path(id): Path<String>,
    grant: Option<Extension<ExecGrant>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // `auth` grants every request to this path; without the grant, nothing runs.
    if grant.is_none() {
        return Err(ExecError::MissingToken.into());
    }
    let mut params = Params::from_query(uri.query().unwrap_or("")).map_err(ExecError::BadParams)?;
    params.peer = peer.map(|Extension(ConnectInfo(a))| a.to_string());
    let job = app.store.get(&id).await?;
    if let Some(e) = crate::exec::unavailable(&job) {
        return Err(e.into());
    }
    let part = crate::exec::choose_part(&job, params.part)?;
    // A split job's session goes to the worker running the part.
    let worker_id = match &part {
        Some(p) => p.worker.clone(),
        None => job.worker.clone(),
    }
    .unwrap_or_default();
    params.part = part.as_ref().map(|p| p.seq);

    if let Some(ctx) = app.local_worker.get().filter(|c| c.id == worker_id) {
        let target = crate::exec::locate(ctx.as_ref(), &job, part.as_ref())?;
        let upgrade = upgrade.map_err(websocket_required)?;
        let slot = ctx
            .exec_sessions
            .acquire(&job.id, ctx.config.exec.max_sessions_per_job)?;
        let session = Session {
            job_id: job.id,
            target,
            params,
            worker: ctx.id.clone(),
            store: app.store.clone(),
            idle_timeout: idle_timeout(ctx.config.exec.idle_timeout_seconds),
            slot,
        };
        return Ok(upgrade.on_upgrade(move |socket| session::run(socket, session)));
    }

    let unavailable = |reason: String| ExecError::Unavailable {
        id: job.id.clone(),
        reason,
    };
    let workers = app.store.workers().await?;
    let Some(worker) = workers.iter().find(|w| w.id == worker_id) else {
        return Err(unavailable(format!("its worker {worker_id} is gone")).into());
    };
    let Some(address) = worker.address.as_deref() else {
        return Err(unavailable(format!(
            "its worker {worker_id} takes no exec sessions (start it with --advertise \
             HOST:PORT and [exec] enabled = true)"
        ))
        .into());
    };
    let upgrade = upgrade.map_err(websocket_required)?;
    // `authorize` passed, so a credential is configured.
    let token = app
        .config
        .exec
        .credential(app.config.token.as_deref())
        .unwrap_or_default();
    let upstream = bridge::connect(
        Worker {
            id: &worker.id,
            address,
        },
        &job.id,
        job.attempt,
        &params,
        token,
    )
    .await?;
    Ok(upgrade.on_upgrade(move |socket| bridge::pump(socket, upstream)))
}

/// The answer to a plain request where a websocket was expected.
pub fn websocket_required(r: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        "websocket-required",
        format!("exec sessions are websockets ({r}): connect with `ffarm exec JOB`"),
    )
}

#[cfg(test)]
mod tests {
    use super::is_exec_path;

    #[test]
    fn the_exec_path_and_nothing_else() {
        assert!(is_exec_path("/v1/jobs/abc/exec"));
        for p in [
            "/v1/jobs/abc/exec/",
            "/v1/jobs//exec",
            "/v1/jobs/abc/logs",
            "/v1/jobs/a/b/exec",
            "/v1/jobs/exec",
            "v1/jobs/abc/exec",
            "/v2/jobs/abc/exec",
        ] {
            assert!(!is_exec_path(p), "{p}");
        }
    }
}
