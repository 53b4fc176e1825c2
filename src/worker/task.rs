//! The task process (`ffarm task SPEC`): one job's attempt, isolated from its worker. It
//! downloads the input into its workspace, probes it, transcodes it with the job's preset,
//! has its worker reserve the final keys (`protocol::ReserveAnswer`) and uploads the outputs
//! (HLS playlists last), printing progress and results as JSON lines on stdout; its stderr is
//! the job's log. A job that may split is planned and cut instead (`plan`); a part of a split
//! job runs `part`. SIGTERM stops it at the next packet; it then removes its partial outputs
//! and exits 130. It dies with its worker (parent-death signal). The steps shared with the
//! other flows are in `taskio`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::protocol::{TaskMessage, TaskSpec, TaskWork, exit};
use super::taskio::{
    Dirs, Done, Failure, TaskIo, input_name, load_presets, output_stem, progress_reporter, say,
};
use crate::engine::{Access, JobDone, Made, SplitAsked, Work};
use crate::job::JobError;
use crate::stop::StopToken;

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
    let (stop, ignored) = stop_token(&spec);
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
    if ignored.load(Ordering::Relaxed) {
        // Its engine heard the stop and ended; the task itself stays, as a stuck one would.
        eprintln!("[task] test switch: staying after the stop");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
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

/// The task's stop token, set by SIGTERM/SIGINT; with the test switch on, the signals are
/// only noted (the flag), not obeyed.
fn stop_token(spec: &TaskSpec) -> (StopToken, Arc<AtomicBool>) {
    let stop = StopToken::new();
    let ignored = Arc::new(AtomicBool::new(false));
    let stuck =
        std::env::var(super::protocol::TEST_IGNORE_STOP_ENV).is_ok_and(|k| k == spec.job.input.key);
    if stuck {
        eprintln!("[task] test switch: stop signals are ignored");
    }
    let (token, flag) = (stop.clone(), ignored.clone());
    let handler = move || {
        if stuck {
            flag.store(true, Ordering::Relaxed);
        } else {
            token.stop();
        }
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("[task] cannot handle stop signals: {e}");
    }
    (stop, ignored)
}

fn work(
    spec: &TaskSpec,
    stop: &StopToken,
    runtime: &tokio::runtime::Runtime,
    phases: &mut BTreeMap<String, f64>,
) -> Result<Done, Failure> {
    let job = &spec.job;
    let presets = load_presets(spec)?;
    let io = TaskIo::new(spec, stop, runtime)?;
    let dirs = Dirs::create(&spec.workspace)?;
    let input = dirs.input.join(input_name(job));
    let t = Instant::now();
    io.fetch(&job.input.bucket, &job.input.key, &input)?;
    phases.insert("downloading".into(), t.elapsed().as_secs_f64());
    if let Ok(key) = std::env::var(super::protocol::TEST_FAULT_ENV)
        && key == job.input.key
    {
        eprintln!("[task] test fault: aborting");
        std::process::abort();
    }
    let outputs = output_names(job, &presets)
        .into_iter()
        .map(|name| dirs.output.join(name))
        .collect();
    let split = match &spec.work {
        TaskWork::Plan(settings) => Some(SplitAsked {
            segment_seconds: settings.segment_seconds,
            min_seconds: settings.min_seconds,
            dir: spec.workspace.join("split"),
        }),
        _ => None,
    };
    let mut access = Access::read(&input).writing(&dirs.output);
    if let Some(asked) = &split {
        access = access.writing(&asked.dir);
    }
    let overlays = fetch_watermarks(&io, job, &presets, &dirs.input)?;
    for image in overlays.iter().flatten().map(|o| &o.image) {
        access = access.reading(image);
    }
    let caption_files = fetch_captions(&io, job, &dirs.input)?;
    for file in &caption_files {
        access = access.reading(&file.path);
    }
    let work = Work::Job {
        input,
        outputs,
        split,
        edits: crate::media::Edits {
            clip: job.media.clip,
            overlays,
            quality: job.media.quality,
            audio_languages: job.media.audio_languages(),
            captions: crate::media::CaptionEdits {
                files: caption_files,
                side_files: job.media.subtitles.is_some_and(|s| s.side_files),
                burn_in: job.media.subtitles.is_some_and(|s| s.burn_in),
            },
            segment_key: spec.segment_key.clone(),
        },
    };
    let done: JobDone = io.media(work, access, &mut progress_reporter())?;
    phases.extend(done.phases);
    match (done.made, &spec.work) {
        (Made::Split { layout, files }, TaskWork::Plan(settings)) => {
            super::plan::split(&io, settings, *layout, &files, phases).map(Done::Split)
        }
        (Made::Transcoded(report), _) => {
            io.publish(&report, &dirs.output, phases).map(Done::Outputs)
        }
        (Made::Split { .. }, _) => Err(Failure::Error(JobError::new(
            "internal",
            "the engine split a job it was not asked to split",
            false,
        ))),
    }
}

/// Each output's watermark (the job's, else its preset's), its image fetched into `dir`
/// once per object.
fn fetch_watermarks(
    io: &TaskIo,
    job: &crate::job::Job,
    presets: &[crate::preset::Preset],
    dir: &std::path::Path,
) -> Result<Vec<Option<crate::media::Overlay>>, Failure> {
    let mut fetched: Vec<(String, String, std::path::PathBuf)> = Vec::new();
    let mut overlays = Vec::new();
    for preset in presets {
        let Some(w) = job.media.watermark.as_ref().or(preset.watermark.as_ref()) else {
            overlays.push(None);
            continue;
        };
        let bucket = w.bucket.clone().unwrap_or_else(|| job.input.bucket.clone());
        let known = fetched.iter().find(|(b, k, _)| *b == bucket && *k == w.key);
        let image = match known {
            Some((_, _, path)) => path.clone(),
            None => {
                let path = dir.join(format!("watermark-{}", fetched.len()));
                io.get(&bucket, &w.key, &path)
                    .map_err(|f| fetch_failure(f, "watermark", &bucket, &w.key))?;
                fetched.push((bucket, w.key.clone(), path.clone()));
                path
            }
        };
        overlays.push(Some(crate::media::Overlay {
            image,
            placement: w.clone(),
        }));
    }
    Ok(overlays)
}

/// The job's caption files, fetched into `dir` (`captions-N`); a missing object fails
/// `captions-not-found`.
fn fetch_captions(
    io: &TaskIo,
    job: &crate::job::Job,
    dir: &std::path::Path,
) -> Result<Vec<crate::media::CaptionFile>, Failure> {
    let mut files = Vec::new();
    for (i, c) in job.media.captions.iter().enumerate() {
        let bucket = c.bucket.clone().unwrap_or_else(|| job.input.bucket.clone());
        // Named for the object (its extension helps FFmpeg tell the format; its name shows in
        // the job's error).
        let name: String = c
            .key
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
            .take(100)
            .collect();
        let path = dir.join(format!("captions-{i}-{name}"));
        io.get(&bucket, &c.key, &path)
            .map_err(|f| fetch_failure(f, "captions", &bucket, &c.key))?;
        files.push(crate::media::CaptionFile {
            path,
            language: c.language.clone(),
            name: c.name.clone(),
        });
    }
    Ok(files)
}

/// A download failure of the job's `what` (`watermark`, `captions`), saying so: a missing
/// object is `WHAT-not-found`, not to be taken for a missing input.
fn fetch_failure(failure: Failure, what: &str, bucket: &str, key: &str) -> Failure {
    match failure {
        Failure::Error(e) => {
            let code = if e.code == "object-not-found" {
                format!("{what}-not-found")
            } else {
                e.code.clone()
            };
            let message = format!("{what} {bucket}/{key}: {}", e.message);
            Failure::Error(JobError::new(&code, message, e.retryable))
        }
        stopped => stopped,
    }
}

/// The file name of each of the job's outputs: `STEM.EXT` for one preset, `STEM.PRESET.EXT`
/// for each of several (decision 0073).
fn output_names(job: &crate::job::Job, presets: &[crate::preset::Preset]) -> Vec<String> {
    let stem = output_stem(job);
    presets
        .iter()
        .map(|p| match presets.len() {
            1 => format!("{stem}.{}", p.container.extension()),
            _ => format!("{stem}.{}.{}", p.name, p.container.extension()),
        })
        .collect()
}

/// The workspace's input file path for a job (for exec's environment).
pub fn input_path(workspace: &Path, key: &str) -> PathBuf {
    workspace
        .join("input")
        .join(key.rsplit('/').next().unwrap_or("input"))
}
