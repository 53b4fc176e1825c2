//! One attempt, seen from the worker: start the task process in its workspace, relay its
//! progress to the store every second (renewing the lease), collect its log, reserve its
//! outputs when it asks (`reserve`), stop it on request (cancel, timeout, drain, lost lease:
//! SIGTERM to its group, SIGKILL after the grace period; at once for a lost lease), and end
//! the attempt in the store with what happened (giving its outputs back if it did not
//! succeed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use super::protocol::{EngineSettings, TaskMessage, TaskSpec, exit};
use super::reserve::{self, Asked};
use super::stopper::{StopReason, Stopper, time_limit};
use super::unit::{Ending, Unit};
use super::workspace;
use super::{RunningTask, WorkerCtx};
use crate::job::{Job, JobError, Outcome, OutputObject, SplitPlan};
use crate::process::{self, Exit};
use crate::progress::Progress;
use crate::sandbox::Limits;
use crate::store::{AttemptStats, StoreError};

/// How long the supervise loop waits on one store call (a heartbeat, a log append): a stop
/// request is acted on only once the call in progress ends.
const STORE_CALL_LIMIT: Duration = Duration::from_secs(5);

/// What the task reported on stdout.
#[derive(Default)]
struct Reported {
    progress: Option<Progress>,
    progress_dirty: bool,
    outputs: Option<Vec<OutputObject>>,
    phases: std::collections::BTreeMap<String, f64>,
    error: Option<JobError>,
    /// The last encode rate reported while transcoding (the final "done" report has none).
    fps: Option<f64>,
    /// What the task process has used so far (CPU seconds, peak memory), read each second.
    usage: Option<(f64, u64)>,
    /// The store was asked to reserve the task's outputs (whatever it answered).
    reserve_asked: bool,
    /// The job was cut into parts (a planning task's result).
    split: Option<SplitPlan>,
    /// What a part made.
    part_result: Option<serde_json::Value>,
}

impl Reported {
    fn take(&mut self, msg: TaskMessage) {
        match msg {
            TaskMessage::Progress(mut p) => {
                self.fps = p.fps.or(self.fps);
                if let Some(usage) = self.usage {
                    stamp(&mut p, usage);
                }
                self.progress = Some(p);
                self.progress_dirty = true;
            }
            TaskMessage::Outputs { outputs } => self.outputs = Some(outputs),
            TaskMessage::Stats { phases } => self.phases = phases,
            TaskMessage::Error(e) => self.error = Some(e),
            TaskMessage::Split { plan } => self.split = Some(plan),
            TaskMessage::PartDone { result } => self.part_result = Some(result),
            // Answered as it comes (`supervise`); one left in the pipe has no one waiting.
            TaskMessage::Stopped | TaskMessage::Reserve { .. } => {}
        }
    }

    /// Adds the task's usage so far to its progress, so a running job shows what it costs
    /// (the attempt's totals come from `wait4` when it ends).
    fn note_usage(&mut self, usage: Option<(f64, u64)>) {
        let Some((cpu, memory)) = usage else { return };
        let usage = ((cpu * 10.0).round() / 10.0, memory);
        if self.usage == Some(usage) {
            return;
        }
        self.usage = Some(usage);
        if let Some(p) = &mut self.progress {
            stamp(p, usage);
            self.progress_dirty = true;
        }
    }
}

/// Writes the task's usage so far (CPU seconds, peak memory) into its progress.
fn stamp(p: &mut Progress, (cpu, memory): (f64, u64)) {
    (p.cpu_seconds, p.peak_memory_bytes) = (Some(cpu), Some(memory));
}

/// A stream of lines from a pipe, ending at EOF.
fn lines<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: R,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs one claimed job or part to the end of its attempt.
pub(crate) async fn run(ctx: Arc<WorkerCtx>, unit: Unit) {
    let job = unit.job().clone();
    let id = job.id.clone();
    let attempt = job.attempt;
    let mut log: Vec<String> = Vec::new();
    let started = Instant::now();
    let (pid, stdin, stdout, stderr, stop_rx, dir) = match start(&ctx, &unit, &mut log).await {
        Ok(started) => started,
        Err(e) => {
            store_log(&ctx, &unit, &mut log).await;
            conclude(&ctx, &unit, Ending::Done(Outcome::Failed(e), None)).await;
            return;
        }
    };
    let exit_handle = tokio::spawn(process::wait(pid));
    let (exit, reported, reason) = supervise(
        &ctx,
        &unit,
        pid,
        stdin,
        stdout,
        stderr,
        stop_rx,
        exit_handle,
        &mut log,
    )
    .await;
    ctx.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&unit.key());
    log.push(format!(
        "[worker] task {}: {} after {:.1} s (CPU {:.1} s, peak memory {} MiB)",
        pid,
        exit.describe(),
        started.elapsed().as_secs_f64(),
        exit.cpu_seconds,
        exit.peak_memory_bytes >> 20
    ));
    if reason == Some(StopReason::Lost) {
        tracing::warn!(
            "{}: lease lost; another worker holds it now",
            unit.describe()
        );
        workspace::remove(&dir);
        return;
    }
    store_log(&ctx, &unit, &mut log).await;
    // The task's last word on progress (its final "done") reaches the store too.
    if let Some(p) = reported
        .progress
        .as_ref()
        .filter(|_| reported.progress_dirty)
    {
        let lease = Duration::from_secs(ctx.config.worker.lease_seconds);
        let _ = unit.heartbeat(&*ctx.store, lease, Some(p)).await;
    }
    record_stats(&ctx, &unit, &exit, &reported).await;
    let (fps, reserve_asked) = (reported.fps, reported.reserve_asked);
    let ending = ending(&job, &exit, reported, reason, &ctx);
    let succeeded = matches!(&ending, Ending::Done(Outcome::Succeeded { .. }, _));
    // An attempt that did not succeed took back what it uploaded: its keys are free again.
    if reserve_asked
        && !succeeded
        && let Err(e) = ctx.store.release_outputs(&id, attempt).await
    {
        tracing::warn!("job {id}: giving back attempt {attempt}'s outputs: {e}");
    }
    if let (None, Ending::Done(outcome, _)) = (unit.part(), &ending) {
        crate::metrics::attempt_finished(&job.preset, outcome, started.elapsed(), fps);
    }
    let failed = matches!(&ending, Ending::Done(Outcome::Failed(_), _));
    conclude(&ctx, &unit, ending).await;
    if failed && ctx.config.worker.keep_failed_workspace_seconds > 0 {
        workspace::remove_later(
            dir,
            Duration::from_secs(ctx.config.worker.keep_failed_workspace_seconds),
        );
    } else {
        workspace::remove(&dir);
    }
}

/// Adds the task's log lines to the job's log (a part's prefixed with its number).
async fn store_log(ctx: &WorkerCtx, unit: &Unit, log: &mut Vec<String>) {
    if log.is_empty() {
        return;
    }
    let mut lines = std::mem::take(log);
    if let Some(prefix) = unit.log_prefix() {
        for line in &mut lines {
            line.insert_str(0, &prefix);
        }
    }
    let job = unit.job();
    let stored = tokio::time::timeout(
        STORE_CALL_LIMIT,
        ctx.store.append_logs(&job.id, job.attempt, &lines),
    )
    .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("{}: storing log lines: {e}", unit.describe()),
        Err(_) => tracing::warn!("{}: storing log lines timed out", unit.describe()),
    }
}

/// Records a job attempt's phase timings and resource use (a part's are in its log).
async fn record_stats(ctx: &WorkerCtx, unit: &Unit, exit: &Exit, reported: &Reported) {
    let Unit::Job(job) = unit else { return };
    let stats = AttemptStats {
        phases: reported.phases.clone(),
        cpu_seconds: Some(exit.cpu_seconds),
        peak_memory_bytes: Some(exit.peak_memory_bytes),
    };
    if let Err(e) = ctx.store.record_attempt(&job.id, job.attempt, &stats).await {
        tracing::warn!("job {}: recording attempt stats: {e}", job.id);
    }
}

type Started = (
    Pid,
    ChildStdin,
    mpsc::UnboundedReceiver<String>,
    mpsc::UnboundedReceiver<String>,
    mpsc::UnboundedReceiver<StopReason>,
    std::path::PathBuf,
);

async fn start(
    ctx: &Arc<WorkerCtx>,
    unit: &Unit,
    log: &mut Vec<String>,
) -> Result<Started, JobError> {
    let job = unit.job();
    let io =
        |what: &str, e: std::io::Error| JobError::new("io-error", format!("{what}: {e}"), true);
    let dir = workspace::create(&ctx.config.data_dir, &unit.workspace_name(), unit.attempt())
        .map_err(|e| io("creating the workspace", e))?;
    let spec = TaskSpec {
        job: job.clone(),
        workspace: dir.clone(),
        data_dir: ctx.config.data_dir.clone(),
        buckets: ctx.config.buckets.clone(),
        presets_dir: ctx.config.presets_dir.clone(),
        work: super::unit::task_work(ctx, unit).await?,
        engine: engine_settings(&ctx.config.worker, job),
        segment_key: super::keys::for_unit(ctx, unit).await?,
    };
    let spec_path = dir.join("task.json");
    let json = serde_json::to_vec_pretty(&spec)
        .map_err(|e| JobError::new("internal", e.to_string(), true))?;
    // Bucket credentials may be in it: readable by this user only.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&spec_path)
            .map_err(|e| io("writing task.json", e))?;
        f.write_all(&json).map_err(|e| io("writing task.json", e))?;
    }
    let env = workspace::task_env(&dir, job);
    let task = process::spawn(&ctx.task_program, &spec_path, &env).map_err(|e| {
        JobError::new(
            "task-spawn",
            format!("starting {}: {e}", ctx.task_program.display()),
            true,
        )
    })?;
    log.push(format!(
        "[worker] attempt {} on {}: task pid {} in {}",
        unit.attempt(),
        ctx.id,
        task.pid,
        dir.display()
    ));
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    ctx.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            unit.key(),
            RunningTask {
                stop: stop_tx.clone(),
                attempt: unit.attempt(),
                pid: task.pid,
                workspace: dir.clone(),
                env,
            },
        );
    // A stop of every task may have been sent while this one was being claimed.
    if let Some(why) = ctx.halted() {
        let _ = stop_tx.send(why);
    }
    Ok((
        task.pid,
        task.stdin,
        lines(task.stdout),
        lines(task.stderr),
        stop_rx,
        dir,
    ))
}

/// How the task's engines run: sandboxed unless the worker says not, under the worker's
/// limits, with CPU time for the job's time limit on every core.
fn engine_settings(settings: &crate::config::WorkerSettings, job: &Job) -> EngineSettings {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let seconds = time_limit(job.timeout_seconds, settings.job_timeout_seconds).0;
    EngineSettings {
        sandbox: settings.sandbox,
        limits: Limits {
            memory_bytes: settings.memory_limit_bytes,
            file_bytes: settings.output_limit_bytes,
            cpu_seconds: Some(seconds.saturating_mul(cores).max(1)),
            ..Limits::default()
        },
        stall_seconds: settings.stall_seconds,
    }
}

#[allow(clippy::too_many_arguments)] // the pieces of one running task, taken apart for select!
async fn supervise(
    ctx: &Arc<WorkerCtx>,
    unit: &Unit,
    pid: Pid,
    mut stdin: ChildStdin,
    mut stdout: mpsc::UnboundedReceiver<String>,
    mut stderr: mpsc::UnboundedReceiver<String>,
    mut stop_rx: mpsc::UnboundedReceiver<StopReason>,
    mut exit_handle: tokio::task::JoinHandle<Exit>,
    log: &mut Vec<String>,
) -> (Exit, Reported, Option<StopReason>) {
    let job = unit.job();
    let settings = &ctx.config.worker;
    let lease = Duration::from_secs(settings.lease_seconds);
    let grace = Duration::from_secs(settings.stop_grace_seconds);
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(time_limit(job.timeout_seconds, settings.job_timeout_seconds).0);
    let mut reported = Reported::default();
    let mut stopper = Stopper {
        pid,
        grace,
        reason: None,
        kill_at: None,
        killed: false,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let exit = loop {
        tokio::select! {
            Some(line) = stdout.recv() => match serde_json::from_str::<TaskMessage>(&line) {
                Ok(TaskMessage::Reserve { keys }) => {
                    reported.reserve_asked = true;
                    match reserve::ask(&*ctx.store, job, &keys, STORE_CALL_LIMIT).await {
                        Asked::Answer(answer) => reserve::answer(&mut stdin, job, &answer).await,
                        Asked::Lost => stopper.request(StopReason::Lost, log),
                    }
                }
                Ok(msg) => reported.take(msg),
                Err(_) => log.push(line),
            },
            Some(line) = stderr.recv() => log.push(line),
            Some(why) = stop_rx.recv() => stopper.request(why, log),
            _ = tick.tick() => {
                reported.note_usage(process::usage_so_far(pid));
                let progress = reported.progress.clone().filter(|_| reported.progress_dirty);
                reported.progress_dirty = false;
                let beat = tokio::time::timeout(
                    STORE_CALL_LIMIT,
                    unit.heartbeat(&*ctx.store, lease, progress.as_ref()),
                )
                .await;
                match beat {
                    Ok(Ok(hb)) if hb.stop_requested => stopper.request(StopReason::Cancel, log),
                    Ok(Ok(_)) => {}
                    Ok(Err(StoreError::Fenced { .. } | StoreError::NotFound { .. })) => {
                        stopper.request(StopReason::Lost, log)
                    }
                    Ok(Err(e)) => tracing::warn!("{}: heartbeat failed: {e}", unit.describe()),
                    Err(_) => tracing::warn!("{}: heartbeat timed out", unit.describe()),
                }
                store_log(ctx, unit, log).await;
            },
            _ = tokio::time::sleep_until(deadline), if stopper.reason.is_none() => {
                stopper.request(StopReason::Timeout, log);
            }
            // SIGKILL lands when the grace period ends, not at the next heartbeat.
            _ = tokio::time::sleep_until(stopper.kill_at.unwrap_or(deadline)), if stopper.kill_pending() => {
                stopper.kill(log);
            }
            exit = &mut exit_handle => break exit.unwrap_or(Exit { code: None, signal: None, cpu_seconds: 0.0, peak_memory_bytes: 0 }),
        }
    };
    // The task is gone: take what is left in its pipes.
    let drain = async {
        while let Some(line) = stdout.recv().await {
            match serde_json::from_str::<TaskMessage>(&line) {
                Ok(msg) => reported.take(msg),
                Err(_) => log.push(line),
            }
        }
        while let Some(line) = stderr.recv().await {
            log.push(line);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    (exit, reported, stopper.reason)
}

/// How the attempt ended: what the task made if it ended well, else why it did not.
fn ending(
    job: &Job,
    exit: &Exit,
    mut reported: Reported,
    reason: Option<StopReason>,
    ctx: &WorkerCtx,
) -> Ending {
    if exit.code == Some(exit::OK) {
        // Whatever was asked meanwhile, the work is done and uploaded.
        if let Some(plan) = reported.split.take() {
            return Ending::Split(plan);
        }
        if reported.outputs.is_some() || reported.part_result.is_some() {
            let outputs = reported.outputs.take().unwrap_or_default();
            let succeeded = Outcome::Succeeded { outputs };
            return Ending::Done(succeeded, reported.part_result.take());
        }
    }
    Ending::Done(failure(job, exit, reported, reason, ctx), None)
}

fn failure(
    job: &Job,
    exit: &Exit,
    reported: Reported,
    reason: Option<StopReason>,
    ctx: &WorkerCtx,
) -> Outcome {
    match reason {
        Some(StopReason::Cancel) => Outcome::Cancelled,
        Some(StopReason::Drain) => Outcome::Released,
        Some(StopReason::Timeout) => {
            let (limit, capped) =
                time_limit(job.timeout_seconds, ctx.config.worker.job_timeout_seconds);
            let whose = if capped {
                " (the worker's worker.job_timeout_seconds)"
            } else {
                ""
            };
            Outcome::Failed(JobError::new(
                "timeout",
                format!("stopped after running past its time limit of {limit} s{whose}"),
                true,
            ))
        }
        Some(StopReason::Lost) | None => match (exit.signal, reported.error) {
            (Some(signal), _) => Outcome::Failed(JobError::new(
                "task-crashed",
                format!("the task process was killed by {signal}"),
                true,
            )),
            (None, Some(e)) => Outcome::Failed(e),
            (None, None) => Outcome::Failed(JobError::new(
                "task-crashed",
                format!(
                    "the task process ended without a result ({})",
                    exit.describe()
                ),
                true,
            )),
        },
    }
}

/// Ends the attempt in the store. An ending is written into the delivery outbox by the
/// same transaction, and the worker's courier delivers it from there. A job whose task cut
/// it into parts is split instead; if the store cannot take the plan, the attempt fails
/// (retryably) so that another plans it again.
async fn conclude(ctx: &Arc<WorkerCtx>, unit: &Unit, ending: Ending) {
    let (what, attempt) = (unit.describe(), unit.attempt());
    let splitting = matches!(ending, Ending::Split(_));
    match unit.finish(&*ctx.store, ending).await {
        Ok(done) if splitting => {
            tracing::info!(
                "{what} attempt {attempt}: split into {} part(s)",
                done.parts.len()
            );
        }
        Ok(done) => tracing::info!("{what} attempt {attempt}: job {}", done.status),
        Err(StoreError::Fenced { .. }) => {
            tracing::warn!("{what}: attempt {attempt} was taken over; its result is discarded")
        }
        Err(e) if splitting => {
            tracing::error!("{what}: splitting attempt {attempt}: {e}");
            let why = JobError::new("store-unavailable", format!("splitting the job: {e}"), true);
            let failed = Ending::Done(Outcome::Failed(why), None);
            if let Err(e) = unit.finish(&*ctx.store, failed).await {
                tracing::error!("{what}: ending attempt {attempt}: {e}");
            }
        }
        Err(e) => tracing::error!("{what}: ending attempt {attempt}: {e}"),
    }
}
