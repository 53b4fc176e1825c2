//! `ffarm worker` (claim and run jobs from a shared store) and `ffarm task` (one attempt, run
//! by a worker as a child process).

use std::path::{Path, PathBuf};

use super::exit;
use super::options::FarmArgs;
use crate::worker::{self, Shutdown};

/// `ffarm worker`: runs until SIGTERM/SIGINT (drain) or a second signal (stop now).
/// `metrics`: an address to serve this worker's Prometheus metrics on (`/metrics`).
pub fn worker(
    args: &FarmArgs,
    metrics: Option<&str>,
    presets_dir: Option<&PathBuf>,
) -> anyhow::Result<u8> {
    let config = args.load(presets_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        if let Some(addr) = metrics {
            serve_metrics(addr, config.token.clone()).await?;
        }
        let store = crate::store::open_with(&config.store_url(), config.retry.policy()).await?;
        let ctx = worker::context(store, config)?;
        let shutdown = Shutdown::on_signals()?;
        let exec = crate::api::exec_listener::start(ctx.clone()).await;
        let ran = worker::run(ctx, shutdown).await;
        if let Some(listener) = exec {
            listener.abort();
        }
        ran?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}

/// `ffarm task SPEC`: the task process; its exit code is the protocol's.
pub fn task(spec: &Path) -> u8 {
    worker::task::run(spec) as u8
}

/// `ffarm engine`: one step of a task's media work, in the sandbox (started by a task).
pub fn engine() -> u8 {
    crate::engine::inside::main() as u8
}

/// Serves `/metrics` (attempt durations and encode fps of this worker's tasks) on `addr`,
/// under the same rule as the API: beyond loopback only with the token, which is then
/// required as a bearer token.
async fn serve_metrics(addr: &str, token: Option<String>) -> anyhow::Result<()> {
    use axum::http::{HeaderMap, StatusCode, header};
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?
        .collect();
    crate::api::auth::check_exposure(addr, &addrs, token.as_deref())?;
    let first = addrs
        .first()
        .ok_or_else(|| anyhow::anyhow!("--metrics {addr}: resolves to nothing"))?;
    let listener = tokio::net::TcpListener::bind(first).await?;
    crate::metrics::install();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: HeaderMap| {
            let token = token.clone();
            async move {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                match token {
                    Some(t)
                        if given.is_none_or(|g| {
                            !constant_time_eq::constant_time_eq(g.as_bytes(), t.as_bytes())
                        }) =>
                    {
                        (
                            StatusCode::UNAUTHORIZED,
                            String::from("bearer token required\n"),
                        )
                    }
                    _ => (StatusCode::OK, crate::metrics::render()),
                }
            }
        }),
    );
    tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("metrics listener: {e}");
        }
    });
    Ok(())
}
