//! The steps a task process takes with the outside world, shared by a whole job's task
//! (`task`), a split job's planning (`plan`) and its parts (`part`): what it says on stdout
//! (`say`), how it ends (`Done`, `Failure`), its workspace's folders, transfers with progress
//! (`TaskIo::fetch`, `put`, `get`), and publishing outputs (`TaskIo::publish`: the worker
//! reserves the final keys, uploads go in order with playlists last, and a failure takes back
//! what was uploaded).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{ReserveAnswer, TaskMessage, TaskSpec};
use crate::buckets::{BucketError, Buckets};
use crate::engine::{Access, Engine, EngineError, Fault, Work};
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

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Stopped => Failure::Stopped,
            EngineError::Failed(e) => Failure::Error(e),
        }
    }
}

/// What every step of a task reaches the outside world with, and the engine processes its
/// media work runs in.
pub(super) struct TaskIo<'a> {
    pub spec: &'a TaskSpec,
    pub buckets: Buckets,
    pub stop: &'a StopToken,
    pub runtime: &'a tokio::runtime::Runtime,
    pub engine: Engine,
}

/// How this task starts its engine processes: this executable, the job's preset, and the
/// sandbox unless the worker turned it off (said in the job's log every time).
fn engine_for(spec: &TaskSpec) -> Result<Engine, Failure> {
    let program = std::env::current_exe().map_err(|e| {
        Failure::Error(JobError::new(
            "internal",
            format!("this executable: {e}"),
            true,
        ))
    })?;
    if !spec.engine.sandbox {
        eprintln!(
            "[task] warning: the sandbox is off (worker.sandbox = false): this job's media is \
             parsed with the worker's rights"
        );
    }
    // FFARM_TEST_ENGINE_FAULT=KEY=FAULT: the engine of that input's job commits FAULT.
    let test_fault = std::env::var(super::protocol::TEST_ENGINE_FAULT_ENV)
        .ok()
        .and_then(|v| {
            let (key, fault) = v.rsplit_once('=')?;
            (key == spec.job.input.key).then(|| Fault::named(fault))?
        });
    Ok(Engine {
        program,
        presets_dir: spec.presets_dir.clone(),
        preset: Some(spec.job.preset.clone()),
        sandbox: spec.engine.sandbox.then(|| spec.engine.limits.clone()),
        stall: (spec.engine.stall_seconds > 0)
            .then(|| Duration::from_secs(spec.engine.stall_seconds)),
        test_fault,
    })
}

/// The job's preset (the first, for a job with several), from the farm's presets.
pub(super) fn load_preset(spec: &TaskSpec) -> Result<crate::preset::Preset, Failure> {
    let mut presets = load_presets(spec)?;
    Ok(presets.remove(0))
}

/// The job's presets, one per output, from the farm's presets.
pub(super) fn load_presets(spec: &TaskSpec) -> Result<Vec<crate::preset::Preset>, Failure> {
    let failure = |e: crate::preset::PresetError| {
        Failure::Error(JobError::new(e.code(), e.to_string(), false))
    };
    let presets =
        Presets::load(spec.presets_dir.as_deref(), &media::caps::Ffmpeg).map_err(failure)?;
    crate::job::presets_of(&spec.job.preset)
        .iter()
        .map(|name| presets.get(name).cloned().map_err(failure))
        .collect()
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
pub(super) fn input_name(job: &Job) -> String {
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
            engine: engine_for(spec)?,
        })
    }

    /// Runs one step of media work in an engine process.
    pub(super) fn media<T: serde::de::DeserializeOwned>(
        &self,
        work: Work,
        access: Access,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<T, Failure> {
        Ok(self.engine.run(work, access, self.stop, progress)?)
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
        let outputs = report
            .outputs
            .iter()
            .map(|file| Publication {
                name: relative_name(output_dir, &file.path),
                from: Source::File(file.path.clone()),
                kind: file.kind,
                bytes: file.bytes,
            })
            .collect();
        let mut published = self.publish_all(outputs, report, phases)?;
        let prefix = &self.spec.job.output.prefix;
        super::checks::attach(&mut published, report, |path| {
            format!("{prefix}{}", relative_name(output_dir, path))
        });
        Ok(published)
    }

    /// [`TaskIo::publish`] for outputs that are files here or objects to copy (a split HLS
    /// job's segments, which its parts wrote to the scratch).
    pub(super) fn publish_all(
        &self,
        outputs: Vec<Publication>,
        report: &media::TranscodeReport,
        phases: &mut BTreeMap<String, f64>,
    ) -> Result<Vec<OutputObject>, Failure> {
        let job = &self.spec.job;
        let keys = outputs
            .iter()
            .map(|o| format!("{}{}", job.output.prefix, o.name))
            .collect();
        reserve(keys, self.stop)?;
        let started = Instant::now();
        let mut uploaded = Vec::with_capacity(outputs.len());
        let sent = match upload_outputs(self, &outputs, &mut uploaded) {
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

/// One output to publish: its name under the job's output prefix, where its bytes are, what
/// it is and its size.
pub(super) struct Publication {
    pub name: String,
    pub from: Source,
    pub kind: OutputKind,
    pub bytes: u64,
}

pub(super) enum Source {
    /// A file here, uploaded.
    File(PathBuf),
    /// An object, copied (on the server when it is in the output bucket).
    Object { bucket: String, key: String },
}

/// How many copies run at once: a long ladder has thousands of segments.
const COPIES_AT_ONCE: usize = 16;

/// Publishes the outputs in order (HLS playlists last): copies first, several at once (they
/// are segments), then uploads one by one, recording each object in `uploaded` as soon as it
/// is in the bucket. Returns the bytes published.
fn upload_outputs(
    io: &TaskIo,
    outputs: &[Publication],
    uploaded: &mut Vec<OutputObject>,
) -> Result<u64, Failure> {
    let copies: Vec<&Publication> = outputs
        .iter()
        .filter(|o| matches!(o.from, Source::Object { .. }))
        .collect();
    let mut sent = copy_outputs(io, &copies, uploaded)?;
    let files: Vec<&Publication> = outputs
        .iter()
        .filter(|o| matches!(o.from, Source::File(_)))
        .collect();
    let total: u64 = outputs.iter().map(|o| o.bytes).sum();
    let (job, stop) = (&io.spec.job, io.stop);
    let slow =
        std::env::var(super::protocol::TEST_SLOW_UPLOAD_ENV).is_ok_and(|k| k == job.input.key);
    for (n, file) in files.into_iter().enumerate() {
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
        let Source::File(path) = &file.from else {
            continue;
        };
        let key = format!("{}{}", job.output.prefix, file.name);
        let before = sent;
        let mut throttle = Throttle::new();
        let bytes = io.runtime.block_on(io.buckets.upload(
            &job.output.bucket,
            &key,
            path,
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
            check: None,
        });
    }
    Ok(sent)
}

/// Copies the outputs that are objects, COPIES_AT_ONCE at a time, each recorded in
/// `uploaded` once in place. Returns their bytes.
fn copy_outputs(
    io: &TaskIo,
    copies: &[&Publication],
    uploaded: &mut Vec<OutputObject>,
) -> Result<u64, Failure> {
    use futures_util::StreamExt;
    if copies.is_empty() {
        return Ok(0);
    }
    let job = &io.spec.job;
    let started = Instant::now();
    let to_bucket = job.output.bucket.as_str();
    let each = copies.iter().map(|o| async move {
        let Source::Object { bucket, key } = &o.from else {
            unreachable!("only copies are given");
        };
        let to_key = format!("{}{}", job.output.prefix, o.name);
        let copied = io.buckets.copy((bucket, key), (to_bucket, &to_key)).await;
        (copied, to_key, o.bytes)
    });
    let results: Vec<_> = io.runtime.block_on(
        futures_util::stream::iter(each)
            .buffered(COPIES_AT_ONCE)
            .collect(),
    );
    let mut sent = 0;
    let mut failed = None;
    for (copied, key, bytes) in results {
        match copied {
            Ok(()) => {
                sent += bytes;
                uploaded.push(OutputObject {
                    bucket: to_bucket.to_string(),
                    key,
                    bytes,
                    check: None,
                });
            }
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    eprintln!(
        "[task] copied {} object(s) ({sent} bytes) into {to_bucket}/{} in {:.2} s",
        copies.len(),
        job.output.prefix,
        started.elapsed().as_secs_f64()
    );
    if io.stop.is_stopped() {
        return Err(Failure::Stopped);
    }
    Ok(sent)
}

/// An output file's name under the job's output prefix: its path in the output directory.
pub(super) fn relative_name(output_dir: &Path, file: &Path) -> String {
    file.strip_prefix(output_dir)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
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
