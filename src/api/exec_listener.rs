//! A worker's exec listener: with exec enabled and an advertised address, the worker takes
//! sessions into the tasks it holds (and its failed attempts' kept workspaces) at
//! `GET /v1/exec/{job}/{attempt}` — a websocket, from API servers bridging their clients.
//! Every request needs the exec token (or the API token when exec has none); nothing else is
//! served here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, extract::ws::rejection::WebSocketUpgradeRejection};

use super::error::{ApiError, Path};
use super::exec::websocket_required;
use crate::exec::protocol::Params;
use crate::exec::session::{self, Session};
use crate::exec::{ExecError, ExecGrant, idle_timeout};
use crate::worker::WorkerCtx;

/// Starts listening on the worker's advertised address, if exec is enabled and has a token.
pub async fn start(ctx: Arc<WorkerCtx>) -> Option<tokio::task::JoinHandle<()>> {
    let config = &ctx.config;
    let addr = config.worker.advertise.clone()?;
    if !config.exec.enabled {
        return None;
    }
    if config.exec.credential(config.token.as_deref()).is_none() {
        tracing::warn!(
            "exec is enabled but no token is configured: not taking exec sessions on {addr} \
             (set [exec] token or token)"
        );
        return None;
    }
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                "exec: cannot listen on the advertised address {addr}: {e}; this worker takes \
                 no exec sessions"
            );
            return None;
        }
    };
    tracing::info!("exec: taking sessions on {addr}");
    let router = Router::new()
        .route("/v1/exec/{job}/{attempt}", get(open))
        .fallback(super::error::no_route)
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            require_exec_token,
        ))
        .with_state(ctx);
    Some(tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::warn!("exec listener: {e}");
        }
    }))
}

/// Every request here opens a shell: every one needs the exec credential.
async fn require_exec_token(
    State(ctx): State<Arc<WorkerCtx>>,
    mut req: Request,
    next: Next,
) -> Response {
    let given = super::auth::presented(&req);
    match crate::exec::authorize(&ctx.config, given.as_deref()) {
        Ok(grant) => {
            req.extensions_mut().insert(grant);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn open(
    State(ctx): State<Arc<WorkerCtx>>,
    Path((job_id, attempt)): Path<(String, u32)>,
    grant: Option<Extension<ExecGrant>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if grant.is_none() {
        return Err(ExecError::MissingToken.into());
    }
    let mut params = Params::from_query(uri.query().unwrap_or("")).map_err(ExecError::BadParams)?;
    // An API server says whom it bridges; otherwise the caller is the client.
    if params.peer.is_none() {
        params.peer = peer.map(|Extension(ConnectInfo(a))| a.to_string());
    }
    let job = ctx.store.get(&job_id).await?;
    if job.attempt != attempt {
        return Err(ExecError::Unavailable {
            id: job.id,
            reason: format!(
                "attempt {attempt} is over (the job is at attempt {})",
                job.attempt
            ),
        }
        .into());
    }
    let part = crate::exec::choose_part(&job, params.part)?;
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
        store: ctx.store.clone(),
        idle_timeout: idle_timeout(ctx.config.exec.idle_timeout_seconds),
        slot,
    };
    Ok(upgrade.on_upgrade(move |socket| session::run(socket, session)))
}
