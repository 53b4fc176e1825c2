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

use super::protocol::{ReserveAnswer, TaskMessage, TaskSpec, exit};
use crate::buckets::{BucketError, Buckets};
use crate::job::{Job, JobError, OutputObject};
use crate::media::{self, ErrorClass, MediaError, OutputKind};
use crate::preset::Presets;
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;

fn say(msg: &TaskMessage) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, msg);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Why a task ended without outputs.
enum Failure {
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
    let result = work(&spec, &stop, &runtime, &mut phases);
    say(&TaskMessage::Stats { phases });
    match result {
        Ok(outputs) => {
            say(&TaskMessage::Outputs { outputs });
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
struct Throttle {
    last: Instant,
}

impl Throttle {
    fn due(&mut self) -> bool {
        if self.last.elapsed() >= Duration::from_millis(500) {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

fn transfer_progress(phase: Phase, done: u64, total: Option<u64>) -> Progress {
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
) -> Result<Vec<OutputObject>, Failure> {
    let job = &spec.job;
    let presets = Presets::load(spec.presets_dir.as_deref(), &media::caps::Ffmpeg)
        .map_err(|e| Failure::Error(JobError::new(e.code(), e.to_string(), false)))?;
    let preset = presets
        .get(&job.preset)
        .map_err(|e| Failure::Error(JobError::new(e.code(), e.to_string(), false)))?
        .clone();
    let buckets = Buckets::new(&spec.data_dir, spec.buckets.clone())?;
    let name = job
        .input
        .key
        .rsplit('/')
        .next()
        .unwrap_or("input")
        .to_string();
    let stem = Path::new(&name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "output".into());
    let input_dir = spec.workspace.join("input");
    let output_dir = spec.workspace.join("output");
    for d in [&input_dir, &output_dir] {
        std::fs::create_dir_all(d).map_err(|e| {
            Failure::Error(JobError::new(
                "io-error",
                format!("{}: {e}", d.display()),
                true,
            ))
        })?;
    }
    let input = input_dir.join(&name);

    eprintln!("[task] downloading {}/{}", job.input.bucket, job.input.key);
    let started = Instant::now();
    let mut throttle = Throttle {
        last: Instant::now(),
    };
    let bytes = runtime.block_on(buckets.download(
        &job.input.bucket,
        &job.input.key,
        &input,
        stop,
        &mut |done, total| {
            if throttle.due() {
                say(&TaskMessage::Progress(transfer_progress(
                    Phase::Downloading,
                    done,
                    total,
                )));
            }
        },
    ))?;
    phases.insert("downloading".into(), started.elapsed().as_secs_f64());
    eprintln!(
        "[task] downloaded {bytes} bytes in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let probe = media::probe(&input)?;
    phases.insert("probing".into(), started.elapsed().as_secs_f64());
    eprintln!(
        "[task] input: {} {:.2} s, {} stream(s): {}",
        probe.container,
        probe.duration_seconds.unwrap_or(0.0),
        probe.streams.len(),
        probe
            .streams
            .iter()
            .map(|s| match (s.width, s.sample_rate) {
                (Some(w), _) => format!("{} {}x{}", s.codec, w, s.height.unwrap_or(0)),
                (_, Some(r)) => format!("{} {r} Hz", s.codec),
                _ => s.codec.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    if let Ok(key) = std::env::var(super::protocol::TEST_FAULT_ENV)
        && key == job.input.key
    {
        eprintln!("[task] test fault: aborting");
        std::process::abort();
    }

    let started = Instant::now();
    let output = output_dir.join(format!("{stem}.{}", preset.container.extension()));
    eprintln!("[task] transcoding with preset {}", preset.name);
    let mut last = Instant::now() - Duration::from_secs(1);
    let report = media::transcode(&input, &output, &preset, stop, &mut |p: &Progress| {
        if last.elapsed() >= Duration::from_millis(450) || p.phase != Phase::Transcoding {
            last = Instant::now();
            say(&TaskMessage::Progress(p.clone()));
        }
    })?;
    phases.insert("transcoding".into(), started.elapsed().as_secs_f64());
    eprintln!(
        "[task] transcoded {:.2} s of media in {:.2} s ({} frames)",
        report.out_time_seconds, report.elapsed_seconds, report.frames
    );

    let keys = report
        .outputs
        .iter()
        .map(|file| output_key(job, &output_dir, &file.path))
        .collect();
    reserve(keys, stop)?;

    let started = Instant::now();
    let mut uploaded = Vec::with_capacity(report.outputs.len());
    let sent = upload_outputs(
        spec,
        &buckets,
        &report.outputs,
        &output_dir,
        stop,
        runtime,
        &mut uploaded,
    );
    let sent = match sent {
        Ok(sent) => sent,
        Err(e) => {
            remove_uploaded(&buckets, runtime, &uploaded);
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

/// Uploads the engine's outputs in the order it published them (HLS playlists last),
/// recording each object in `uploaded` as soon as it is in the bucket. Returns the bytes sent.
fn upload_outputs(
    spec: &TaskSpec,
    buckets: &Buckets,
    outputs: &[media::OutputFile],
    output_dir: &Path,
    stop: &StopToken,
    runtime: &tokio::runtime::Runtime,
    uploaded: &mut Vec<OutputObject>,
) -> Result<u64, Failure> {
    let job = &spec.job;
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
        let mut throttle = Throttle {
            last: Instant::now(),
        };
        let bytes = runtime.block_on(buckets.upload(
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
