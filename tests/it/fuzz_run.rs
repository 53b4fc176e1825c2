//! A fuzz corpus through a farm, shared by the suite's `fuzz_media` and `cargo bench --bench
//! fuzz`: the mutants go into the bucket, one job each (one attempt, a time limit, presets
//! and chunking taken in turn), and every ending is sorted into a class — succeeded, a named
//! failure (the media codes, the sandbox's, `stalled`, `engine-crashed`) or a problem: a
//! failure with a code outside those, a job past its time limit (a hang the stall detector
//! did not end), a job that never ended, a worker that died.

#![allow(dead_code)] // the bench uses a part of it, the suite another

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::job::{Chunking, Job, JobSpec, ObjectRef, OutputTarget, Status};
use ffarm::store::JobStore;

use crate::fuzz_mutate::{Kind, Mutant};

/// `MediaError::code()` for every failure a damaged input may cause (not `internal`).
pub const MEDIA_CODES: &[&str] = &[
    "input-not-found",
    "input-empty",
    "input-refused",
    "input-unreadable",
    "input-limits",
    "input-overrun",
    "input-no-streams",
    "decode-failed",
    "demux-failed",
    "encode-failed",
    "filter-failed",
    "mux-failed",
    "unsupported",
    "io-error",
    "split-part-unusable",
    // An output shorter than the input says it is (the input cut short past the engine's
    // own 2 % allowance): found by reading the output back.
    "output-invalid",
];

/// What the sandbox's limits and filter end an engine with.
pub const SANDBOX_CODES: &[&str] = &[
    "sandbox-violation",
    "memory-limit",
    "output-too-large",
    "cpu-limit",
];

pub const ENGINE_CRASHED: &str = "engine-crashed";
pub const STALLED: &str = "stalled";
/// A job stopped at its time limit: a hang the stall detector did not end.
pub const TIMEOUT: &str = "timeout";

/// How a run's jobs are made and watched.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Each job's time limit.
    pub job_timeout_seconds: u64,
    /// How long the whole run may take before the jobs not ended count as stuck.
    pub deadline: Duration,
}

/// Presets in turn: mostly an MP4 encode, some HLS and some posters (other paths through
/// the engine: the segment muxer, a single picture).
pub fn preset_for(index: usize) -> &'static str {
    match index % 10 {
        3 | 8 => "hls-720p",
        5 => "poster-jpg",
        _ => "h264-480p",
    }
}

/// Some jobs may be split into two-second parts (the shortest chunking takes): the engine
/// then lays the input out, and one whose damage makes it look long enough is cut, encoded
/// in parts and assembled. The rest run whole, so the queue's length decides nothing.
pub fn chunking_for(index: usize) -> Chunking {
    if index % 8 == 7 && preset_for(index) == "h264-480p" {
        Chunking::Segments { segment_seconds: 2 }
    } else {
        Chunking::Off
    }
}

/// How one mutant's job ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub name: String,
    pub kind: Kind,
    pub preset: &'static str,
    pub status: Status,
    pub code: Option<String>,
    pub message: String,
    /// From its claim to its end.
    pub seconds: f64,
}

impl Ended {
    /// `succeeded`, or the failure's code (`cancelled`, `failed` without a code).
    pub fn class(&self) -> String {
        match (&self.status, &self.code) {
            (Status::Succeeded, _) => "succeeded".into(),
            (_, Some(code)) if !code.is_empty() => code.clone(),
            (status, _) => format!("{status} (no code)"),
        }
    }

    /// Whether it ended in a way the farm names: success, or a failure with a known code.
    pub fn named(&self) -> bool {
        let class = self.class();
        self.status == Status::Succeeded
            || (self.status == Status::Failed
                && (MEDIA_CODES.contains(&class.as_str())
                    || SANDBOX_CODES.contains(&class.as_str())
                    || class == ENGINE_CRASHED
                    || class == STALLED))
    }
}

/// A whole run.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub files: usize,
    pub ended: Vec<Ended>,
    /// Jobs not ended by the deadline, and their status.
    pub stuck: Vec<(String, Status)>,
    /// Set when the worker was found dead.
    pub worker_died: Option<String>,
    pub wall: Duration,
}

impl Report {
    pub fn count(&self, class: &str) -> usize {
        self.ended.iter().filter(|e| e.class() == class).count()
    }

    pub fn failed(&self) -> usize {
        self.ended
            .iter()
            .filter(|e| e.status != Status::Succeeded)
            .count()
    }

    /// Endings that are not named: unknown codes, `internal`, `task-crashed`, time limits.
    pub fn unnamed(&self) -> Vec<&Ended> {
        self.ended.iter().filter(|e| !e.named()).collect()
    }

    /// Endings of one class.
    pub fn of(&self, class: &str) -> Vec<&Ended> {
        self.ended.iter().filter(|e| e.class() == class).collect()
    }

    /// The counts by class (rows) and mutation kind (columns) as a Markdown table, then the
    /// totals and every ending that is not simply a success or a media failure.
    pub fn table(&self) -> String {
        let mut rows: BTreeMap<String, BTreeMap<Kind, usize>> = BTreeMap::new();
        for e in &self.ended {
            *rows
                .entry(e.class())
                .or_default()
                .entry(e.kind)
                .or_default() += 1;
        }
        let mut s = String::new();
        let _ = write!(s, "| outcome |");
        for k in Kind::ALL {
            let _ = write!(s, " {} |", k.name());
        }
        let _ = writeln!(s, " total |");
        let _ = write!(s, "|---|");
        for _ in Kind::ALL {
            let _ = write!(s, "---:|");
        }
        let _ = writeln!(s, "---:|");
        // Successes first, then failures by how often they came.
        let mut order: Vec<(&String, &BTreeMap<Kind, usize>)> = rows.iter().collect();
        order.sort_by_key(|(class, by)| {
            (
                *class != "succeeded",
                usize::MAX - by.values().sum::<usize>(),
                (*class).clone(),
            )
        });
        for (class, by) in order {
            let _ = write!(s, "| {class} |");
            for k in Kind::ALL {
                let _ = write!(s, " {} |", by.get(&k).copied().unwrap_or(0));
            }
            let _ = writeln!(s, " {} |", by.values().sum::<usize>());
        }
        let _ = write!(s, "| **files** |");
        for k in Kind::ALL {
            let n = self.ended.iter().filter(|e| e.kind == k).count();
            let _ = write!(s, " {n} |");
        }
        let _ = writeln!(s, " {} |", self.ended.len());
        let slowest = self
            .ended
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let _ = writeln!(
            s,
            "\nseed {}: {} files, {} succeeded, {} failed (engine crashes {}, stalls {}, \
             time limits {}, unnamed {}), {} not ended, worker crashes {}; wall time {:.1} s; \
             slowest job {:.1} s ({})",
            self.seed,
            self.files,
            self.count("succeeded"),
            self.failed(),
            self.count(ENGINE_CRASHED),
            self.count(STALLED),
            self.count(TIMEOUT),
            self.unnamed().len(),
            self.stuck.len(),
            usize::from(self.worker_died.is_some()),
            self.wall.as_secs_f64(),
            slowest.map_or(0.0, |e| e.seconds),
            slowest.map_or("-", |e| e.name.as_str()),
        );
        let notable = self.ended.iter().filter(|e| {
            !e.named()
                || SANDBOX_CODES.contains(&e.class().as_str())
                || [ENGINE_CRASHED, STALLED].contains(&e.class().as_str())
        });
        for e in notable {
            let message: String = e.message.chars().take(300).collect();
            let _ = writeln!(
                s,
                "  {} [{}, {:.1} s] {}: {message}",
                e.name,
                e.preset,
                e.seconds,
                e.class()
            );
        }
        for (name, status) in &self.stuck {
            let _ = writeln!(s, "  {name}: still {status}");
        }
        if let Some(why) = &self.worker_died {
            let _ = writeln!(s, "  the worker died: {why}");
        }
        s
    }
}

impl Report {
    /// Every failure, one line each: file, preset, time, code and message.
    pub fn failures(&self) -> String {
        let mut s = String::new();
        for e in self.ended.iter().filter(|e| e.status != Status::Succeeded) {
            let message: String = e.message.chars().take(300).collect();
            let _ = writeln!(
                s,
                "{} [{}, {:.1} s] {}: {message}",
                e.name,
                e.preset,
                e.seconds,
                e.class()
            );
        }
        s
    }
}

fn spec(key: &str, index: usize, settings: &Settings) -> JobSpec {
    JobSpec {
        input: ObjectRef {
            bucket: "media".into(),
            key: key.into(),
        },
        preset: preset_for(index).into(),
        output: OutputTarget {
            bucket: "media".into(),
            prefix: format!("out/{index:04}/"),
        },
        priority: 0,
        max_attempts: 1,
        timeout_seconds: settings.job_timeout_seconds,
        on_success: None,
        on_failure: None,
        trigger: None,
        overwrite: false,
        chunking: chunking_for(index),
        media: Default::default(),
    }
}

fn seconds(job: &Job) -> f64 {
    match (job.started_at, job.finished_at) {
        (Some(from), Some(to)) => (to.0 - from.0) as f64 / 1e6,
        _ => 0.0,
    }
}

/// Puts every mutant in the bucket folder `bucket` (under `in/`), submits a job for each
/// and follows them until all have ended, the deadline passes or `worker_alive` says no.
pub async fn run(
    store: &Arc<dyn JobStore>,
    bucket: &Path,
    seed: u64,
    mutants: &[Mutant],
    settings: &Settings,
    worker_alive: &mut dyn FnMut() -> Result<(), String>,
) -> Report {
    let started = Instant::now();
    std::fs::create_dir_all(bucket.join("in")).expect("the bucket's folder");
    let mut waiting = Vec::with_capacity(mutants.len());
    for m in mutants {
        let key = format!("in/{}", m.name);
        std::fs::write(bucket.join(&key), &m.bytes).expect("writing a mutant");
        let job = store
            .submit(None, spec(&key, m.index, settings))
            .await
            .expect("submitting a job")
            .job;
        waiting.push((job.id, m));
    }
    let mut ended = Vec::with_capacity(mutants.len());
    let mut worker_died = None;
    while !waiting.is_empty() && started.elapsed() < settings.deadline {
        if let Err(why) = worker_alive() {
            worker_died = Some(why);
            break;
        }
        let mut still = Vec::with_capacity(waiting.len());
        for (id, m) in waiting {
            let job = store.get(&id).await.expect("reading a job");
            if job.status.is_terminal() {
                ended.push(Ended {
                    name: m.name.clone(),
                    kind: m.kind,
                    preset: preset_for(m.index),
                    status: job.status,
                    code: job.error.as_ref().map(|e| e.code.clone()),
                    message: job
                        .error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                    seconds: seconds(&job),
                });
            } else {
                still.push((id, m));
            }
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut stuck = Vec::new();
    for (id, m) in waiting {
        let status = store.get(&id).await.map_or(Status::Queued, |j| j.status);
        stuck.push((m.name.clone(), status));
    }
    ended.sort_by(|a, b| a.name.cmp(&b.name));
    Report {
        seed,
        files: mutants.len(),
        ended,
        stuck,
        worker_died,
        wall: started.elapsed(),
    }
}
