//! `ffarm serve`: the whole farm in one process — the API (and page), the watch folder, and
//! in-process workers — over one store. Shuts down cleanly on SIGTERM/SIGINT: stops taking
//! files and requests, ends event streams, and drains its workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{self, App, AppState};
use crate::config::Config;
use crate::store::JobStore;
use crate::triggers::Source;
use crate::triggers::watch::{self, Found, WatchOptions, WatchSpec};
use crate::worker::{self, Shutdown};

/// Runs the farm until `shutdown` asks it to stop; `ready` gets the bound address.
pub async fn run(
    config: Config,
    shutdown: Shutdown,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "creating the data directory {}: {e}",
            config.data_dir.display()
        )
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
) -> anyhow::Result<()> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listen address '{}': {e}", config.listen))?
        .collect();
    api::auth::check_exposure(&config.listen, &addrs, config.token.as_deref())
        .map_err(anyhow::Error::msg)?;
    let app = App::new(store.clone(), config.clone())?;
    crate::metrics::install();
    tokio::spawn(api::stats::sample_forever(app.clone()));
    let listener = bind(&addrs).await?;
    let addr = listener.local_addr()?;

    let stop = CancellationToken::new();
    let watching = start_watch(&app, stop.clone()).await?;
    let workers = match config.slots() {
        0 => None,
        _ => {
            let ctx = worker::context(store.clone(), config.clone())?;
            let _ = app.local_worker.set(ctx.clone());
            let exec = api::exec_listener::start(ctx.clone()).await;
            let shutdown = shutdown.clone();
            Some(tokio::spawn(async move {
                let ran = worker::run(ctx, shutdown).await;
                if let Some(listener) = exec {
                    listener.abort();
                }
                ran
            }))
        }
    };
    if workers.is_none() {
        // An API-only node still ends jobs whose workers vanished.
        tokio::spawn(worker::reap_forever(
            store.clone(),
            config.clone(),
            app.http.clone(),
        ));
    }
    ready(addr);

    let mut signal = shutdown.clone();
    let (app_stop, watch_stop) = (app.shutdown.clone(), stop.clone());
    // Peer addresses: exec records who connected.
    let service = api::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        while signal.level() == 0 {
            if signal.0.changed().await.is_err() {
                break;
            }
        }
        tracing::info!("shutting down: no new requests; event streams closed");
        watch_stop.cancel();
        app_stop.cancel();
    });
    let served = server.await;
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
    served?;
    Ok(())
}

async fn bind(addrs: &[SocketAddr]) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in addrs {
        match tokio::net::TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(format!("{a}: {e}")),
        }
    }
    Err(anyhow::anyhow!(
        "cannot listen: {}",
        last.unwrap_or_else(|| "the address resolved to nothing".into())
    ))
}

/// Watches the local buckets the trigger rules name; files that settle fire the rules.
async fn start_watch(
    app: &AppState,
    stop: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
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
