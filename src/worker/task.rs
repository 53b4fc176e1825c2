//! The task process (`ffarm task SPEC`): one job's attempt, isolated from its worker. It
//! downloads the input into its workspace, probes it, transcodes it with the job's preset,
//! has its worker reserve the final keys (`protocol::ReserveAnswer`) and uploads the outputs
//! (HLS playlists last), printing progress and results as JSON lines on stdout; its stderr is
//! the job's log. SIGTERM stops it at the next packet; it then removes its partial outputs
//! and exits 130. It dies with its worker (parent-death signal).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{ReserveAnswer, TaskMessage, TaskSpec, TaskWork, exit};
use crate::buckets::{BucketError, Buckets};
use crate::job::{Job, JobError, OutputObject, SplitPlan};
use crate::media::{self, ErrorClass, MediaError, OutputKind};
use crate::preset::Presets;
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;

pub(super) fn say(msg: &TaskMessage) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, msg);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// What a task made.
pub(super) enum Done {
    /// The job's outputs, uploaded.
    Outputs(Vec<OutputObject>),
    /// The job was cut into parts instead.
    Split(SplitPlan),
    /// A part's result.
    Part(serde_json::Value),
}

/// Why a task ended without outputs.
pub(super) enum Failure {
    Error(JobError),
    Stopped,
}

impl From<MediaError> for Failure {
    fn from(e: MediaError) -> Self {
        match e.class() {
            ErrorClass::Stopped => Failure::Stopped,
            class => Failure::Error(JobError::new(
                e.code(),
                e.to_string(),
                class == ErrorClass::Transient,
            )),
        }
    }
}

impl From<BucketError> for Failure {
    fn from(e: BucketError) -> Self {
        match e {
            BucketError::Stopped => Failure::Stopped,
            e => Failure::Error(JobError::new(e.code(), e.to_string(), e.retryable())),
        }
    }
}

/// Runs the task described by `spec_path`; returns the process exit code.
pub fn run(spec_path: &Path) -> i32 {
    // Die with the worker: a task must never outlive the process that holds its lease.
    let parent = nix::unistd::getppid();
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid() != parent
    {
        return exit::FAILED;
    }
    let spec: TaskSpec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            say(&TaskMessage::Error(JobError::new(
                "task-spec",
                format!("{}: {e}", spec_path.display()),
                false,
            )));
            return exit::FAILED;
        }
    };
    let stop = StopToken::new();
    {
        let stop = stop.clone();
        let stuck = std::env::var(super::protocol::TEST_IGNORE_STOP_ENV)
            .is_ok_and(|k| k == spec.job.input.key);
        if stuck {
            eprintln!("[task] test switch: stop signals are ignored");
        }
        let handler = move || {
            if !stuck {
                stop.stop();
            }
        };
        if let Err(e) = ctrlc::set_handler(handler) {
            eprintln!("[task] cannot handle stop signals: {e}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&TaskMessage::Error(JobError::new(
                "internal",
                e.to_string(),
                true,
            )));
            return exit::FAILED;
        }
    };
    let mut phases = BTreeMap::new();
    let result = match &spec.work {
        TaskWork::Part(_) => super::part::work(&spec, &stop, &runtime, &mut phases),
        TaskWork::Job | TaskWork::Plan(_) => work(&spec, &stop, &runtime, &mut phases),
    };
    say(&TaskMessage::Stats { phases });
    match result {
        Ok(done) => {
            say(&match done {
                Done::Outputs(outputs) => TaskMessage::Outputs { outputs },
                Done::Split(plan) => TaskMessage::Split { plan },
                Done::Part(result) => TaskMessage::PartDone { result },
            });
            exit::OK
        }
        Err(Failure::Stopped) => {
            let _ = std::fs::remove_dir_all(spec.workspace.join("output"));
            say(&TaskMessage::Stopped);
            exit::STOPPED
        }
        Err(Failure::Error(e)) => {
            eprintln!("[task] failed: {}", e.message);
            say(&TaskMessage::Error(e));
            exit::FAILED
        }
    }
}

/// Reports transfer progress at most twice a second.
pub(super) struct Throttle {
    last: Instant,
}

impl Throttle {
    pub(super) fn new() -> Throttle {
        Throttle {
            last: Instant::now(),
        }
    }

    pub(super) fn due(&mut self) -> bool {
        if self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

pub(super) fn transfer_progress(phase: Phase, done: u64, total: Option<u64>) -> Progress {
    Progress {
        phase,
        percent: total
            .filter(|t| *t > 0)
            .map_or(0.0, |t| (done as f64 / t as f64 * 1000.0).round() / 10.0),
        bytes_done: Some(done),
        bytes_total: total,
        ..Progress::default()
    }
}

fn work(
    spec: &TaskSpec,
    stop: &StopToken,
    runtime: &tokio::runtime::Runtime,
    phases: &mut BTreeMap<String, f64>,
) -> Result<Done, Failure> {
    let job = &spec.job;
    let preset = load_preset(spec)?;
    let io = TaskIo::new(spec, stop, runtime)?;
    let dirs = Dirs::create(&spec.workspace)?;
    let input = dirs.input.join(input_name(job));
    let t = Instant::now();
    io.fetch(&job.input.bucket, &job.input.key, &input)?;
    phases.insert("downloading".into(), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let probe = media::probe(&input)?;
    phases.insert("probing".into(), t.elapsed().as_secs_f64());
    eprintln!("[task] input: {}", describe(&probe));
    if let Ok(key) = std::env::var(super::protocol::TEST_FAULT_ENV)
        && key == job.input.key
    {
        eprintln!("[task] test fault: aborting");
        std::process::abort();
    }
    if let TaskWork::Plan(settings) = &spec.work {
        if let Some(plan) = super::plan::split(&io, settings, &preset, &probe, &input, phases)? {
            return Ok(Done::Split(plan));
        }
    }

    let t = Instant::now();
    let output = dirs.output.join(format!(
        "{}.{}",
        output_stem(job),
        preset.container.extension()
    ));
    eprintln!("[task] transcoding with preset {}", preset.name);
    let report = media::transcode(&input, &output, &preset, stop, &mut progress_reporter())?;
    phases.insert("transcoding".into(), t.elapsed().as_secs_f64());
    eprintln!(
        "[task] transcoded {:.2} s of media in {:.2} s ({} frames)",
        report.out_time_seconds, report.elapsed_seconds, report.frames
    );
    io.publish(&report, &dirs.output, phases).map(Done::Outputs)
}

/// What every step of a task reaches the outside world with.
pub(super) struct TaskIo<'a> {
    pub spec: &'a TaskSpec,
    pub buckets: Buckets,
    pub stop: &'a StopToken,
    pub runtime: &'a tokio::runtime::Runtime,
}

/// The job's preset, from the farm's presets.
pub(super) fn load_preset(spec: &TaskSpec) -> Result<crate::preset::Preset, Failure> {
    let presets = Presets::load(spec.presets_dir.as_deref(), &media::caps::Ffmpeg)
        .map_err(|e| Failure::Error(JobError::new(e.code(), e.to_string(), false)))?;
    let preset = presets
        .get(&spec.job.preset)
        .map_err(|e| Failure::Error(JobError::new(e.code(), e.to_string(), false)))?;
    Ok(preset.clone())
}

/// The workspace's folders: what is downloaded, and what the engine writes.
pub(super) struct Dirs {
    pub input: PathBuf,
    pub output: PathBuf,
}

impl Dirs {
    pub(super) fn create(workspace: &Path) -> Result<Dirs, Failure> {
        let dirs = Dirs {
            input: workspace.join("input"),
            output: workspace.join("output"),
        };
        for d in [&dirs.input, &dirs.output] {
            std::fs::create_dir_all(d).map_err(|e| io_failure(d, e))?;
        }
        Ok(dirs)
    }
}

pub(super) fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::Error(JobError::new(
        "io-error",
        format!("{}: {e}", path.display()),
        true,
    ))
}

/// The input's file name (its key's last segment).
fn input_name(job: &Job) -> String {
    job.input
        .key
        .rsplit('/')
        .next()
        .unwrap_or("input")
        .to_string()
}

/// The outputs' file stem: the input's name without its extension.
pub(super) fn output_stem(job: &Job) -> String {
    Path::new(&input_name(job))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "output".into())
}

/// The input as the log shows it: container, duration, streams.
fn describe(probe: &media::ProbeReport) -> String {
    let streams = probe
        .streams
        .iter()
        .map(|s| match (s.width, s.sample_rate) {
            (Some(w), _) => format!("{} {}x{}", s.codec, w, s.height.unwrap_or(0)),
            (_, Some(r)) => format!("{} {r} Hz", s.codec),
            _ => s.codec.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} {:.2} s, {} stream(s): {streams}",
        probe.container,
        probe.duration_seconds.unwrap_or(0.0),
        probe.streams.len(),
    )
}

/// Passes the engine's progress on, at most about twice a second while transcoding.
pub(super) fn progress_reporter() -> impl FnMut(&Progress) {
    let mut last = Instant::now() - Duration::from_secs(1);
    move |p: &Progress| {
        if last.elapsed() >= Duration::from_millis(450) || p.phase != Phase::Transcoding {
            last = Instant::now();
            say(&TaskMessage::Progress(p.clone()));
        }
    }
}

impl<'a> TaskIo<'a> {
    pub(super) fn new(
        spec: &'a TaskSpec,
        stop: &'a StopToken,
        runtime: &'a tokio::runtime::Runtime,
    ) -> Result<TaskIo<'a>, Failure> {
        let buckets = Buckets::new(&spec.data_dir, spec.buckets.clone())?;
        Ok(TaskIo {
            spec,
            buckets,
            stop,
            runtime,
        })
    }

    /// Downloads an object into `dest`, reporting progress; returns its size.
    pub(super) fn fetch(&self, bucket: &str, key: &str, dest: &Path) -> Result<u64, Failure> {
        eprintln!("[task] downloading {bucket}/{key}");
        let started = Instant::now();
        let mut throttle = Throttle::new();
        let mut report = |done, total| {
            if throttle.due() {
                let p = transfer_progress(Phase::Downloading, done, total);
                say(&TaskMessage::Progress(p));
            }
        };
        let download = self
            .buckets
            .download(bucket, key, dest, self.stop, &mut report);
        let bytes = self.runtime.block_on(download)?;
        eprintln!(
            "[task] downloaded {bytes} bytes in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(bytes)
    }

    /// Uploads a file to `bucket/key` (no progress: scratch objects of a split job).
    pub(super) fn put(&self, bucket: &str, key: &str, src: &Path) -> Result<u64, Failure> {
        let mut quiet = |_, _| {};
        let upload = self.buckets.upload(bucket, key, src, self.stop, &mut quiet);
        Ok(self.runtime.block_on(upload)?)
    }

    /// Downloads `bucket/key` into `dest` (no progress: scratch objects of a split job).
    pub(super) fn get(&self, bucket: &str, key: &str, dest: &Path) -> Result<u64, Failure> {
        let mut quiet = |_, _| {};
        let download = self
            .buckets
            .download(bucket, key, dest, self.stop, &mut quiet);
        Ok(self.runtime.block_on(download)?)
    }

    /// Reserves the final keys of what the engine made and uploads it (playlists last); on a
    /// failure takes back what was uploaded. Returns the outputs, in publication order.
    pub(super) fn publish(
        &self,
        report: &media::TranscodeReport,
        output_dir: &Path,
        phases: &mut BTreeMap<String, f64>,
    ) -> Result<Vec<OutputObject>, Failure> {
        let job = &self.spec.job;
        let keys = report
            .outputs
            .iter()
            .map(|file| output_key(job, output_dir, &file.path))
            .collect();
        reserve(keys, self.stop)?;
        let started = Instant::now();
        let mut uploaded = Vec::with_capacity(report.outputs.len());
        let sent = upload_outputs(self, &report.outputs, output_dir, &mut uploaded);
        let sent = match sent {
            Ok(sent) => sent,
            Err(e) => {
                remove_uploaded(&self.buckets, self.runtime, &uploaded);
                return Err(e);
            }
        };
        phases.insert("uploading".into(), started.elapsed().as_secs_f64());
        say(&TaskMessage::Progress(Progress {
            phase: Phase::Done,
            percent: 100.0,
            bytes_done: Some(sent),
            bytes_total: Some(sent),
            frames: report.frames,
            out_time_seconds: report.out_time_seconds,
            ..Progress::default()
        }));
        Ok(uploaded)
    }
}

/// Uploads the engine's outputs in the order it published them (HLS playlists last),
/// recording each object in `uploaded` as soon as it is in the bucket. Returns the bytes sent.
fn upload_outputs(
    io: &TaskIo,
    outputs: &[media::OutputFile],
    output_dir: &Path,
    uploaded: &mut Vec<OutputObject>,
) -> Result<u64, Failure> {
    let (job, stop) = (&io.spec.job, io.stop);
    let slow =
        std::env::var(super::protocol::TEST_SLOW_UPLOAD_ENV).is_ok_and(|k| k == job.input.key);
    let total: u64 = outputs.iter().map(|o| o.bytes).sum();
    let mut sent = 0u64;
    for (n, file) in outputs.iter().enumerate() {
        if slow && n > 0 {
            eprintln!("[task] test switch: waiting 1 s before the next upload");
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until && !stop.is_stopped() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if stop.is_stopped() {
            return Err(Failure::Stopped);
        }
        let key = output_key(job, output_dir, &file.path);
        let before = sent;
        let mut throttle = Throttle::new();
        let bytes = io.runtime.block_on(io.buckets.upload(
            &job.output.bucket,
            &key,
            &file.path,
            stop,
            &mut |done, _| {
                if throttle.due() {
                    say(&TaskMessage::Progress(transfer_progress(
                        Phase::Uploading,
                        before + done,
                        Some(total),
                    )));
                }
            },
        ))?;
        sent += bytes;
        if !matches!(file.kind, OutputKind::Segment) {
            eprintln!(
                "[task] uploaded {}/{key} ({bytes} bytes)",
                job.output.bucket
            );
        }
        uploaded.push(OutputObject {
            bucket: job.output.bucket.clone(),
            key,
            bytes,
        });
    }
    Ok(sent)
}

/// The final key of an output file: the job's prefix, then the file's path in the output
/// directory.
fn output_key(job: &Job, output_dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(output_dir).unwrap_or(file);
    format!("{}{}", job.output.prefix, rel.to_string_lossy())
}

/// Has the worker reserve the final keys for this attempt (the store knows which input wrote
/// each) and waits for its answer on stdin, before anything is uploaded. A stop ends the
/// wait at once.
fn reserve(keys: Vec<String>, stop: &StopToken) -> Result<(), Failure> {
    let n = keys.len();
    say(&TaskMessage::Reserve { keys });
    let (tx, answer) = std::sync::mpsc::channel();
    // A thread of its own, as a read of stdin cannot be interrupted; if the task is stopped
    // meanwhile, it ends with the process.
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let broken = |why: String| {
        Failure::Error(JobError::new(
            "internal",
            format!("no answer from the worker to the reservation of the outputs: {why}"),
            true,
        ))
    };
    loop {
        if stop.is_stopped() {
            return Err(Failure::Stopped);
        }
        let line = match answer.recv_timeout(Duration::from_millis(20)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(broken(e.to_string())),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(broken("the reader ended".into()));
            }
        };
        return match serde_json::from_str::<ReserveAnswer>(&line) {
            Ok(ReserveAnswer::Reserved) => {
                eprintln!("[task] {n} output key(s) reserved");
                Ok(())
            }
            Ok(ReserveAnswer::Refused(e)) => Err(Failure::Error(e)),
            Err(_) if line.is_empty() => Err(broken("its end of stdin closed".into())),
            Err(e) => Err(broken(format!("{line:?}: {e}"))),
        };
    }
}

/// Deletes what this attempt uploaded before it was stopped or failed, newest first: without
/// the playlist (always last) the segments are no output anyone can use, and a retry writes
/// them again.
fn remove_uploaded(
    buckets: &Buckets,
    runtime: &tokio::runtime::Runtime,
    uploaded: &[OutputObject],
) {
    if uploaded.is_empty() {
        return;
    }
    let mut removed = 0;
    for o in uploaded.iter().rev() {
        match runtime.block_on(buckets.delete(&o.bucket, &o.key)) {
            Ok(()) => removed += 1,
            Err(e) => eprintln!("[task] could not remove {}/{}: {e}", o.bucket, o.key),
        }
    }
    eprintln!(
        "[task] removed {removed} of the {} object(s) this attempt had uploaded",
        uploaded.len()
    );
}

/// The workspace's input file path for a job (for exec's environment).
pub fn input_path(workspace: &Path, key: &str) -> PathBuf {
    workspace
        .join("input")
        .join(key.rsplit('/').next().unwrap_or("input"))
}
