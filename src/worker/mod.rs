//! Workers: claim jobs while slots are free (woken by the store's notifications, with a slow
//! poll as fallback), run each as a task process (`supervisor`), relay cancels, reap expired
//! leases and forget long-lost workers, keep the registry entry fresh, deliver endings from
//! the store's outbox (`destinations::Courier`), show exec where its tasks are
//! (`exec::Tasks`), and drain on SIGTERM/SIGINT. `ffarm worker` runs this alone; `ffarm
//! serve` runs it beside the API.

mod checks;
mod keys;
mod part;
mod plan;
pub mod protocol;
mod reserve;
mod sandbox;
mod scratch;
mod stopper;
mod supervisor;
pub mod task;
mod taskio;
mod unit;
pub mod workspace;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::unistd::Pid;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::destinations::Courier;
use crate::job::{Status, Timestamp};
use crate::store::{Change, JobStore, StoreError, WorkerInfo};
pub use stopper::StopReason;

/// How often a worker marks itself seen in the registry.
pub const REGISTRY_INTERVAL: Duration = Duration::from_secs(5);
/// A worker not seen for this long is shown as lost.
pub const LOST_AFTER: Duration = Duration::from_secs(20);

/// A worker's state as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Seen within [`LOST_AFTER`] and taking jobs.
    Active,
    /// Seen, finishing its tasks before it stops; it takes no new jobs.
    Draining,
    /// Not seen for [`LOST_AFTER`]: stopped without saying so, or cut off.
    Lost,
}

impl WorkerState {
    /// The state of the registry entry `w` at `now`.
    pub fn of(w: &WorkerInfo, now: Timestamp) -> WorkerState {
        if w.last_seen < now.minus(LOST_AFTER) {
            WorkerState::Lost
        } else if w.draining {
            WorkerState::Draining
        } else {
            WorkerState::Active
        }
    }
}

/// A task this worker is running.
pub struct RunningTask {
    pub stop: mpsc::UnboundedSender<StopReason>,
    pub attempt: u32,
    pub pid: Pid,
    pub workspace: PathBuf,
    /// The task's environment (exec sessions get the same).
    pub env: Vec<(String, String)>,
}

/// What the supervisors of one worker share.
pub struct WorkerCtx {
    pub store: Arc<dyn JobStore>,
    pub config: Config,
    pub id: String,
    pub http: reqwest::Client,
    pub task_program: PathBuf,
    pub running: Mutex<HashMap<String, RunningTask>>,
    /// Exec sessions open into this worker's tasks (capped per job).
    pub exec_sessions: Arc<crate::exec::Sessions>,
    /// Set when every task is to stop (a drain's end): a task starting later stops at once.
    halted: Mutex<Option<StopReason>>,
}

impl WorkerCtx {
    /// Stops the job's task, or every task running one of its parts.
    fn stop(&self, job_id: &str, why: StopReason) {
        let parts = format!("{job_id}#");
        for (key, t) in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if key == job_id || key.starts_with(&parts) {
                let _ = t.stop.send(why);
            }
        }
    }

    /// The stop every task gets, once the worker stops them all.
    fn halted(&self) -> Option<StopReason> {
        *self.halted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops every task, including any that starts after this (a claim already on its way).
    fn stop_all(&self, why: StopReason) {
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        for t in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            let _ = t.stop.send(why);
        }
    }
}

impl crate::exec::Tasks for WorkerCtx {
    fn worker_id(&self) -> &str {
        &self.id
    }

    fn running(
        &self,
        job: &crate::job::Job,
        part: Option<&crate::job::PartInfo>,
    ) -> Option<crate::exec::Target> {
        let (key, attempt) = match part {
            Some(p) => (unit::part_key(&job.id, p.seq), p.attempt),
            None => (job.id.clone(), job.attempt),
        };
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let t = running.get(&key).filter(|t| t.attempt == attempt)?;
        Some(crate::exec::Target {
            workspace: t.workspace.clone(),
            env: t.env.clone(),
            attempt: t.attempt,
            tied: true,
        })
    }

    fn kept(&self, job: &crate::job::Job) -> Option<crate::exec::Target> {
        let dir = workspace::dir(&self.config.data_dir, &job.id, job.attempt);
        if job.worker.as_deref() != Some(self.id.as_str()) || !dir.is_dir() {
            return None;
        }
        Some(crate::exec::Target {
            env: workspace::task_env(&dir, job),
            workspace: dir,
            attempt: job.attempt,
            tied: false,
        })
    }
}

/// Shutdown requests: 0 = run, 1 = drain, 2 or more = stop now.
#[derive(Clone)]
pub struct Shutdown(pub watch::Receiver<u8>);

impl Shutdown {
    /// Counts SIGTERM and SIGINT: the first drains, the second stops at once.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = watch::channel(0u8);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tx.send_modify(|n| *n = n.saturating_add(1));
                tracing::info!(
                    "{}",
                    if *tx.borrow() == 1 {
                        "shutting down: draining (signal again to stop now)"
                    } else {
                        "stopping now"
                    }
                );
            }
        });
        Ok(Shutdown(rx))
    }

    pub fn level(&self) -> u8 {
        *self.0.borrow()
    }
}

/// The worker's context, ready to run.
pub fn context(store: Arc<dyn JobStore>, config: Config) -> std::io::Result<Arc<WorkerCtx>> {
    let task_program = match &config.worker.task_program {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    Ok(Arc::new(WorkerCtx {
        id: config.worker_id(),
        store,
        http: reqwest::Client::builder()
            .user_agent(concat!("ffarm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(std::io::Error::other)?,
        task_program,
        config,
        running: Mutex::new(HashMap::new()),
        exec_sessions: Arc::default(),
        halted: Mutex::new(None),
    }))
}

/// Ends expired leases every few seconds (any process may do this; it is idempotent) and
/// removes registry entries of workers lost long ago. The endings it makes reach their
/// destinations through the delivery outbox like any other.
async fn reap_loop(store: Arc<dyn JobStore>, config: Config) {
    let every = Duration::from_secs((config.worker.lease_seconds / 3).clamp(1, 10));
    loop {
        tokio::time::sleep(every).await;
        match store.reap().await {
            Ok(jobs) => {
                for job in jobs {
                    tracing::warn!("job {}: its worker was lost; now {}", job.id, job.status);
                }
            }
            Err(e) => tracing::warn!("reaping expired leases: {e}"),
        }
        prune_lost(&*store, &config).await;
        scratch::sweep(&*store, &config).await;
    }
}

/// Removes the registry entries of workers that have been lost for
/// `worker.forget_lost_after_seconds` (0: never): until then a worker that died shows as lost.
async fn prune_lost(store: &dyn JobStore, config: &Config) {
    let keep = config.worker.forget_lost_after_seconds;
    if keep == 0 {
        return;
    }
    let Ok(workers) = store.workers().await else {
        return;
    };
    let now = Timestamp::now();
    let forget_before = LOST_AFTER + Duration::from_secs(keep);
    for w in workers {
        if w.last_seen < now.minus(forget_before) {
            tracing::info!(
                "forgetting worker {}: lost since {}",
                w.id,
                w.last_seen.to_rfc3339()
            );
            if let Err(e) = store.remove_worker(&w.id).await {
                tracing::warn!("forgetting worker {}: {e}", w.id);
            }
        }
    }
}

/// What a process without workers of its own (an API-only `serve`) still does for the farm:
/// ends expired leases, forgets long-lost workers, and delivers endings from the outbox.
pub async fn reap_forever(store: Arc<dyn JobStore>, config: Config, http: reqwest::Client) {
    // Delivers for as long as the process runs: `reap_loop` never returns.
    let _courier = Courier::new(
        store.clone(),
        http,
        config.destinations.clone(),
        config.worker_id(),
    )
    .start();
    reap_loop(store, config).await;
}

/// Runs a worker until shut down: registers, claims and runs jobs, delivers endings, drains,
/// deregisters.
pub async fn run(ctx: Arc<WorkerCtx>, mut shutdown: Shutdown) -> Result<(), StoreError> {
    let store = ctx.store.clone();
    let settings = ctx.config.worker.clone();
    let slots = ctx.config.slots().max(1);
    sweep_workspaces(&ctx).await;
    let sandbox = sandbox::check(&ctx).await;
    let info = WorkerInfo {
        id: ctx.id.clone(),
        host: crate::config::hostname(),
        address: settings.advertise.clone(),
        slots,
        version: env!("CARGO_PKG_VERSION").into(),
        started_at: Timestamp::now(),
        last_seen: Timestamp::now(),
        draining: false,
        running: vec![],
        sandbox: Some(sandbox),
    };
    store.register_worker(&info).await?;
    tracing::info!(
        "worker {} up: {slots} slot(s), store {}",
        ctx.id,
        store.backend()
    );
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = tokio::spawn(keep_registered(store.clone(), info, draining.clone()));
    let reaper = tokio::spawn(reap_loop(store.clone(), ctx.config.clone()));
    let courier = Courier::new(
        store.clone(),
        ctx.http.clone(),
        ctx.config.destinations.clone(),
        ctx.id.clone(),
    )
    .start();

    let lease = Duration::from_secs(settings.lease_seconds);
    let permits = Arc::new(Semaphore::new(slots as usize));
    let freed = Arc::new(Notify::new());
    let mut changes = store.subscribe();
    let mut tasks = JoinSet::new();
    // Whether a further shutdown request can still come (the sender may be gone).
    let mut signals = true;
    'claiming: while shutdown.level() == 0 {
        // Claim while slots are free, and not once a shutdown has begun.
        while shutdown.level() == 0
            && let Ok(permit) = permits.clone().try_acquire_owned()
        {
            match claim(&*store, &ctx.id, lease).await {
                Ok(Some(unit)) => {
                    let (ctx, freed) = (ctx.clone(), freed.clone());
                    tasks.spawn(async move {
                        supervisor::run(ctx, unit).await;
                        drop(permit);
                        freed.notify_one();
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("claiming: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
        // Wait for a reason to claim again, relaying cancels meanwhile.
        let poll = tokio::time::sleep(Duration::from_secs(settings.poll_seconds));
        tokio::pin!(poll);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change::Status { status: Status::Queued, .. }) => break,
                    // A part became claimable (a split, a part done that others waited on).
                    Ok(Change::Parts { .. }) => break,
                    Ok(Change::Status { id, status: Status::Cancelling }) => ctx.stop(&id, StopReason::Cancel),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        changes = store.subscribe();
                    }
                },
                _ = freed.notified() => break,
                _ = &mut poll => break,
                changed = shutdown.0.changed(), if signals => {
                    signals = changed.is_ok();
                    continue 'claiming;
                }
                Some(_) = tasks.join_next() => {}
            }
        }
    }

    draining.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = store.touch_worker(&ctx.id, true).await;
    let running = tasks.len();
    if running > 0 {
        tracing::info!(
            "draining: waiting up to {} s for {running} task(s)",
            settings.drain_timeout_seconds
        );
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(settings.drain_timeout_seconds);
    // Both signals may have been counted before the loop above saw the first (or a stop may
    // come as level 2 at once): then no change is left to wait for, so look now.
    let mut stopping = shutdown.level() >= 2;
    if stopping {
        ctx.stop_all(StopReason::Drain);
    }
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            change = changes.recv() => match change {
                Ok(Change::Status { id, status: Status::Cancelling }) => {
                    ctx.stop(&id, StopReason::Cancel);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    changes = store.subscribe();
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline), if !stopping => {
                stopping = true;
                tracing::info!("drain timeout: handing {} task(s) back to the queue", tasks.len());
                ctx.stop_all(StopReason::Drain);
            }
            changed = shutdown.0.changed(), if signals && !stopping => {
                signals = changed.is_ok();
                if shutdown.level() >= 2 {
                    stopping = true;
                    ctx.stop_all(StopReason::Drain);
                }
            }
        }
    }
    // The endings of the tasks that just finished are in the outbox: deliver what is due
    // and wait for the tries in flight, within the drain timeout (not after a second signal).
    if stopping || shutdown.level() >= 2 {
        courier.abort();
    } else {
        courier.finish(deadline).await;
    }
    registry.abort();
    reaper.abort();
    store.remove_worker(&ctx.id).await?;
    tracing::info!("worker {} stopped", ctx.id);
    Ok(())
}

/// Takes the next unit of work: a part of a split job first (its job has started and waits
/// for it), else a job.
async fn claim(
    store: &dyn JobStore,
    worker: &str,
    lease: Duration,
) -> Result<Option<unit::Unit>, StoreError> {
    if let Some(part) = store.claim_part(worker, lease).await? {
        return Ok(Some(unit::Unit::Part(Box::new(part))));
    }
    let job = store.claim(worker, lease).await?;
    Ok(job.map(|job| unit::Unit::Job(Box::new(job))))
}

async fn keep_registered(
    store: Arc<dyn JobStore>,
    info: WorkerInfo,
    draining: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        tokio::time::sleep(REGISTRY_INTERVAL).await;
        let d = draining.load(std::sync::atomic::Ordering::SeqCst);
        match store.touch_worker(&info.id, d).await {
            Ok(()) => {}
            // Removed meanwhile (or the store was reset): register again.
            Err(StoreError::NotFound { .. }) => {
                let _ = store
                    .register_worker(&WorkerInfo {
                        draining: d,
                        ..info.clone()
                    })
                    .await;
            }
            Err(e) => tracing::warn!("worker registry: {e}"),
        }
    }
}

/// Removes workspaces left by earlier runs, unless their job is still held at that attempt.
async fn sweep_workspaces(ctx: &WorkerCtx) {
    let root = workspace::root(&ctx.config.data_dir);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    let keep = Duration::from_secs(ctx.config.worker.keep_failed_workspace_seconds);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((job_id, attempt)) = name.rsplit_once("-a") else {
            continue;
        };
        let live = match ctx.store.get(job_id).await {
            Ok(job) => job.status.is_active() && job.attempt.to_string() == attempt,
            Err(_) => false,
        };
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if !live && age >= keep {
            workspace::remove(&e.path());
        }
    }
}
