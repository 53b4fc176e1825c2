//! `ffarm serve`: the whole farm in one process — the API (and page), the watch folder, and
//! in-process workers — over one store. Shuts down cleanly on SIGTERM/SIGINT: stops taking
//! files and requests, ends event streams, and drains its workers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::auth::ExposureError;
use crate::api::{self, App, AppError, AppState};
use crate::config::Config;
use crate::store::{JobStore, StoreError};
use crate::triggers::Source;
use crate::triggers::watch::{self, Found, WatchError, WatchOptions, WatchSpec};
use crate::worker::{self, Shutdown};

/// Why the farm did not start, or stopped serving.
///
/// Where a variant adds context to an error, the message already holds that error's: it is
/// not also given as `source()`, so a printed chain does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("creating the data directory {}: {error}", path.display())]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address does not resolve.
    #[error("listen address '{listen}': {error}")]
    Resolve {
        listen: String,
        error: std::io::Error,
    },
    /// The listen address reaches beyond loopback and no token is configured.
    #[error(transparent)]
    Exposure(#[from] ExposureError),
    /// The API's state cannot be built from the configuration.
    #[error(transparent)]
    App(#[from] AppError),
    /// No address the listen address resolved to could be bound; the last one tried.
    #[error("cannot listen: {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot listen: the address resolved to nothing")]
    NoAddress { listen: String },
    /// The bound listener failed (reading its address, or accepting).
    #[error(transparent)]
    Listener(std::io::Error),
    /// The in-process workers cannot find the program their tasks run.
    #[error(transparent)]
    TaskProgram(std::io::Error),
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// Runs the farm until `shutdown` asks it to stop; `ready` gets the bound address.
pub async fn run(
    config: Config,
    shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|error| ServeError::DataDir {
        path: config.data_dir.clone(),
        error,
    })?;
    let store = crate::store::open_with(&config.store_url(), config.retry.policy()).await?;
    run_on(store, config, shutdown, ready).await
}

/// [`run`] over a store already open.
pub async fn run_on(
    store: Arc<dyn JobStore>,
    config: Config,
    shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let addrs = resolve(&config).await?;
    let app = App::new(store.clone(), config.clone())?;
    crate::metrics::install();
    tokio::spawn(api::stats::sample_forever(app.clone()));
    let listener = bind(&config.listen, &addrs).await?;
    let addr = listener.local_addr().map_err(ServeError::Listener)?;

    let stop = CancellationToken::new();
    let watching = start_watch(&app, stop.clone()).await?;
    let workers = start_workers(&app, &shutdown).await?;
    ready(addr);

    let served = serve_until(listener, &app, shutdown, stop.clone()).await;
    stop.cancel();
    if let Some(w) = watching {
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    if let Some(w) = workers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("workers: {e}"),
            Err(e) => tracing::warn!("workers: {e}"),
        }
    }
    served.map_err(ServeError::Listener)
}

/// The addresses the listen address names, refused when they reach beyond loopback without a
/// token.
async fn resolve(config: &Config) -> Result<Vec<SocketAddr>, ServeError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&config.listen)
        .await
        .map_err(|error| ServeError::Resolve {
            listen: config.listen.clone(),
            error,
        })?
        .collect();
    api::auth::check_exposure(&config.listen, &addrs, config.token.as_deref())?;
    Ok(addrs)
}

async fn bind(listen: &str, addrs: &[SocketAddr]) -> Result<TcpListener, ServeError> {
    let mut last = None;
    for &addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(error) => last = Some(ServeError::Bind { addr, error }),
        }
    }
    Err(last.unwrap_or_else(|| ServeError::NoAddress {
        listen: listen.to_owned(),
    }))
}

/// This process's workers, when the configuration gives it slots; otherwise the reaper an
/// API-only node still runs, so jobs whose workers vanished end.
async fn start_workers(
    app: &AppState,
    shutdown: &Shutdown,
) -> Result<Option<JoinHandle<Result<(), StoreError>>>, ServeError> {
    let (store, config) = (app.store.clone(), app.config.clone());
    if config.slots() == 0 {
        tokio::spawn(worker::reap_forever(store, config, app.http.clone()));
        return Ok(None);
    }
    let ctx = worker::context(store, config).map_err(ServeError::TaskProgram)?;
    let _ = app.local_worker.set(ctx.clone());
    let exec = api::exec_listener::start(ctx.clone()).await;
    let shutdown = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        let ran = worker::run(ctx, shutdown).await;
        if let Some(listener) = exec {
            listener.abort();
        }
        ran
    })))
}

/// Serves the API until `shutdown` asks to stop; then no new requests, and event streams and
/// the watch folder (`stop`) end.
async fn serve_until(
    listener: TcpListener,
    app: &AppState,
    mut signal: Shutdown,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app_stop = app.shutdown.clone();
    // Peer addresses: exec records who connected.
    let service = api::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            while signal.level() == 0 {
                if signal.0.changed().await.is_err() {
                    break;
                }
            }
            tracing::info!("shutting down: no new requests; event streams closed");
            stop.cancel();
            app_stop.cancel();
        })
        .await
}

/// Watches the local buckets the trigger rules name; files that settle fire the rules.
async fn start_watch(
    app: &AppState,
    stop: CancellationToken,
) -> Result<Option<JoinHandle<()>>, WatchError> {
    if !app.config.watch.enabled {
        return Ok(None);
    }
    let rules = app.triggers.rules();
    let mut specs = vec![];
    for rule in rules {
        let Some(root) = app.buckets.local_dir(&rule.bucket) else {
            continue;
        };
        let exclude = rules
            .iter()
            .filter(|r| r.output_bucket() == rule.bucket && !r.output_root().is_empty())
            .map(|r| r.output_root().to_string())
            .collect();
        specs.push(WatchSpec {
            bucket: rule.bucket.clone(),
            root,
            prefix: rule.prefix.clone(),
            exclude,
        });
    }
    if specs.is_empty() {
        return Ok(None);
    }
    for s in &specs {
        tracing::info!(
            "watching {} (bucket {}, prefix '{}')",
            s.root.join(&s.prefix).display(),
            s.bucket,
            s.prefix
        );
        if app.config.slots() == 0 {
            // An API-only node: whatever runs these jobs runs elsewhere.
            tracing::warn!(
                "bucket {} is a folder on this machine and this node runs no workers: jobs \
                 made from {} need workers that can read that folder (a shared mount); \
                 otherwise give the bucket an s3:// URL or set `triggers = []`",
                s.bucket,
                s.root.join(&s.prefix).display()
            );
        }
    }
    let (tx, rx) = mpsc::channel(1024);
    let options = WatchOptions {
        settle: Duration::from_secs_f64(app.config.watch.settle_seconds),
    };
    let watcher = watch::start(specs, options, tx, stop).await?;
    let firing = tokio::spawn(fire_found(app.clone(), rx));
    Ok(Some(tokio::spawn(async move {
        let _ = watcher.await;
        let _ = firing.await;
    })))
}

async fn fire_found(app: AppState, mut rx: mpsc::Receiver<Found>) {
    while let Some(found) = rx.recv().await {
        // The store may be briefly unavailable: a file must not be dropped for that.
        let mut delay = Duration::from_millis(500);
        loop {
            match app
                .triggers
                .fire_local(Source::Watch, &found.bucket, &found.key)
                .await
            {
                Ok(fired) => {
                    log_fired(&found, &fired);
                    break;
                }
                Err(crate::triggers::FireError::Store(e)) => {
                    tracing::warn!("{}/{}: {e}; trying again", found.bucket, found.key);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::warn!("{}/{}: {e}", found.bucket, found.key);
                    break;
                }
            }
        }
    }
}

fn log_fired(found: &Found, fired: &crate::triggers::Fired) {
    for j in &fired.jobs {
        if j.created {
            tracing::info!(
                "{}/{} → job {} ({} → {}/{})",
                found.bucket,
                found.key,
                j.id,
                j.preset,
                j.output.bucket,
                j.output.prefix
            );
        }
    }
    for i in &fired.ignored {
        tracing::info!("{}/{} ignored: {}", found.bucket, found.key, i.reason);
    }
}
