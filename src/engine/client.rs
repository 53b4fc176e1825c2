//! The task's side of an engine process: start it with a cleared environment and its
//! request, pass its progress on, copy its log into the task's, stop it when the task is
//! stopped, and turn how it ended into a result or a named failure.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;

use super::{Fault, Message, Request, Work, verdict};
use crate::job::JobError;
use crate::process::{self, Exit};
use crate::progress::{Phase, Progress};
use crate::sandbox::{self, Level, Limits};
use crate::stop::StopToken;

/// Lines of an engine's log kept to explain how it ended.
const TAIL_LINES: usize = 40;

/// How to start engine processes for one task.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The `ffarm` executable.
    pub program: PathBuf,
    pub presets_dir: Option<PathBuf>,
    /// The job's preset.
    pub preset: Option<String>,
    /// The sandbox's limits; None: the sandbox is off.
    pub sandbox: Option<Limits>,
    /// A step that is measuring loudness or transcoding and has not advanced its media
    /// time for this long is killed (`stalled`); None: never.
    pub stall: Option<Duration>,
    /// The test switch: a fault the engine makes once it transcodes.
    pub test_fault: Option<Fault>,
}

/// Why an engine step gave no result.
#[derive(Debug)]
pub enum EngineError {
    /// It was stopped on request.
    Stopped,
    Failed(JobError),
}

/// The files a step may touch.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub read: Vec<PathBuf>,
    /// Made before the engine starts.
    pub write: Vec<PathBuf>,
}

impl Access {
    /// Reading `path` (and writing nothing).
    pub fn read(path: &Path) -> Access {
        Access {
            read: vec![path.to_path_buf()],
            write: Vec::new(),
        }
    }

    /// Reading `path` too.
    pub fn reading(mut self, path: &Path) -> Access {
        self.read.push(path.to_path_buf());
        self
    }

    /// Writing in `dir` too.
    pub fn writing(mut self, dir: &Path) -> Access {
        self.write.push(dir.to_path_buf());
        self
    }
}

/// What an engine process said and how it ended.
struct Outcome {
    level: Option<(Level, f64)>,
    /// The media time it was killed at for not moving on.
    stalled: Option<f64>,
    result: Option<serde_json::Value>,
    failed: Option<Message>,
    exit: Exit,
    tail: Vec<String>,
}

impl Engine {
    /// Runs one step in a new engine process and returns its result.
    pub fn run<T: DeserializeOwned>(
        &self,
        work: Work,
        access: Access,
        stop: &StopToken,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<T, EngineError> {
        for dir in &access.write {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed("io-error", format!("{}: {e}", dir.display()), true))?;
        }
        let request = Request {
            work,
            preset: self.preset.clone(),
            presets_dir: self.presets_dir.clone(),
            sandbox: self.sandbox.clone(),
            read: access.read,
            write: access.write,
            test_fault: self.test_fault,
        };
        let outcome = self.start(&request, stop, self.stall, progress)?;
        if let Some((level, secs)) = &outcome.level
            && level.enabled
            && !level.missing.is_empty()
        {
            eprintln!(
                "[engine] sandbox set up in {:.1} ms without: {}",
                secs * 1e3,
                level.missing.join("; ")
            );
        }
        match outcome {
            Outcome {
                stalled: Some(at), ..
            } => Err(failed(
                "stalled",
                format!(
                    "the engine's media time stayed at {at:.2} s for {} s (worker.stall_seconds); \
                     it was killed",
                    self.stall.unwrap_or_default().as_secs()
                ),
                true,
            )),
            Outcome {
                result: Some(value),
                ..
            } => serde_json::from_value(value)
                .map_err(|e| failed("internal", format!("the engine's result: {e}"), false)),
            Outcome {
                failed:
                    Some(Message::Failed {
                        code,
                        message,
                        retryable,
                        stopped,
                    }),
                ..
            } => Err(if stopped {
                EngineError::Stopped
            } else {
                EngineError::Failed(JobError::new(&code, message, retryable))
            }),
            Outcome { exit, .. } if stop.is_stopped() && ended_by_stop(&exit) => {
                Err(EngineError::Stopped)
            }
            Outcome { exit, tail, .. } => Err(EngineError::Failed(verdict::of(
                &exit,
                &tail,
                self.sandbox.as_ref(),
            ))),
        }
    }

    /// What the sandbox holds on this machine, as an engine process finds it.
    pub fn level(&self) -> Result<(Level, f64), EngineError> {
        let stop = StopToken::new();
        let outcome = self.start(
            &Request {
                work: Work::Level,
                preset: None,
                presets_dir: None,
                sandbox: self.sandbox.clone(),
                read: vec![],
                write: Vec::new(),
                test_fault: None,
            },
            &stop,
            None,
            &mut |_| {},
        )?;
        match outcome.level {
            Some(level) if outcome.result.is_some() => Ok(level),
            _ => Err(EngineError::Failed(match outcome.failed {
                Some(Message::Failed { code, message, .. }) => JobError::new(&code, message, true),
                _ => verdict::of(&outcome.exit, &outcome.tail, self.sandbox.as_ref()),
            })),
        }
    }

    /// Starts the process, feeds it the request and follows it to its end.
    fn start(
        &self,
        request: &Request,
        stop: &StopToken,
        stall: Option<Duration>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Outcome, EngineError> {
        let mut env = sandbox::engine_env(std::env::vars());
        // Each malloc arena reserves 64 MiB of address space: a few keep the limit for
        // what the decoders ask.
        env.push(("MALLOC_ARENA_MAX".into(), "4".into()));
        let mut child = process::spawn_engine(&self.program, &env).map_err(|e| {
            failed(
                "engine-spawn",
                format!("starting {} engine: {e}", self.program.display()),
                true,
            )
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // Reaped below with wait4, for its resource use.
        drop(child);
        let (Some(mut stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            let _ = kill(pid, Signal::SIGKILL);
            process::reap(pid);
            return Err(failed("engine-spawn", "engine pipes missing".into(), true));
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let log = copy_log(stderr, tail.clone());
        let watch = Arc::new(Watch {
            pid,
            stop: stop.clone(),
            stall,
            ended: AtomicBool::new(false),
            advanced: Mutex::new(None),
            stalled: Mutex::new(None),
        });
        let watcher = watch.clone().start();
        let written = serde_json::to_writer(&mut stdin, request)
            .map_err(std::io::Error::from)
            .and_then(|()| stdin.flush());
        drop(stdin);
        let mut outcome = read_messages(stdout, &watch, progress);
        if let Err(e) = written {
            eprintln!("[task] writing the engine's request: {e}");
        }
        // Its stdout is closed: it is ending, and no stop needs passing on any more (until
        // it is reaped its pid stays its own).
        watch.ended.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        outcome.stalled = *watch.stalled.lock().unwrap_or_else(|p| p.into_inner());
        let exit = process::reap(pid);
        let _ = log.join();
        outcome.exit = exit;
        outcome.tail = tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        Ok(outcome)
    }
}

fn failed(code: &str, message: String, retryable: bool) -> EngineError {
    EngineError::Failed(JobError::new(code, message, retryable))
}

/// Whether the process ended the way a stop ends it.
fn ended_by_stop(exit: &Exit) -> bool {
    exit.code == Some(super::exit::STOPPED)
        || matches!(exit.signal, Some(Signal::SIGTERM | Signal::SIGKILL))
}

/// Reads the engine's messages until its stdout closes.
fn read_messages(
    stdout: std::process::ChildStdout,
    watch: &Watch,
    progress: &mut dyn FnMut(&Progress),
) -> Outcome {
    let mut outcome = Outcome {
        level: None,
        stalled: None,
        result: None,
        failed: None,
        exit: Exit {
            code: None,
            signal: None,
            cpu_seconds: 0.0,
            peak_memory_bytes: 0,
        },
        tail: Vec::new(),
    };
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Sandbox {
                level,
                setup_seconds,
            }) => outcome.level = Some((level, setup_seconds)),
            Ok(Message::Progress(p)) => {
                watch.moved_to(&p);
                progress(&p)
            }
            Ok(Message::Done { result }) => outcome.result = Some(result),
            Ok(msg @ Message::Failed { .. }) => outcome.failed = Some(msg),
            Err(_) => eprintln!("[engine] {line}"),
        }
    }
    outcome
}

/// Copies the engine's log into the task's, keeping its last lines.
fn copy_log(
    stderr: std::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
}

/// What watches a running engine: a stop of the task is passed on (SIGTERM; the worker
/// kills the whole group if it does not end in time), and an engine whose media time has
/// not moved for the stall limit is killed.
struct Watch {
    pid: Pid,
    stop: StopToken,
    stall: Option<Duration>,
    ended: AtomicBool,
    /// When the media time (or the frame count) last moved on, to where, and in which
    /// phase; None until the step measures or transcodes (a probe or a cut reports no media
    /// time, and is bounded by the job's time limit instead). A loudness measure's media
    /// time and the transcode's after it are watched each from its own start.
    advanced: Mutex<Option<(Instant, f64, u64, Phase)>>,
    stalled: Mutex<Option<f64>>,
}

impl Watch {
    fn moved_to(&self, p: &Progress) {
        let mut advanced = self.advanced.lock().unwrap_or_else(|p| p.into_inner());
        let moved = match *advanced {
            None => matches!(p.phase, Phase::Measuring | Phase::Transcoding),
            Some((_, _, _, Phase::Measuring)) if p.phase == Phase::Transcoding => true,
            Some((_, at, frames, _)) => p.out_time_seconds > at || p.frames > frames,
        };
        if moved {
            *advanced = Some((Instant::now(), p.out_time_seconds, p.frames, p.phase));
        }
    }

    fn start(self: Arc<Self>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut stopping = false;
            while !self.ended.load(Ordering::Relaxed) {
                if self.stop.is_stopped() && !stopping {
                    stopping = true;
                    let _ = kill(self.pid, Signal::SIGTERM);
                }
                let advanced = *self.advanced.lock().unwrap_or_else(|p| p.into_inner());
                if let (Some(limit), Some((since, at, ..))) = (self.stall, advanced)
                    && since.elapsed() >= limit
                {
                    *self.stalled.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
                    let _ = kill(self.pid, Signal::SIGKILL);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }
}
