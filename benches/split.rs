//! Split-job benchmark:
//!
//!     cargo bench --bench split     (BENCH_SPLIT_PRESETS=h264-720p,hls-abr BENCH_SPLIT_ROUNDS=1
//!                                    BENCH_SPLIT_RESUME=0 skips the kill runs,
//!                                    BENCH_SPLIT_BATCH=0 the 8-job batches)
//!
//! Real `ffarm worker` processes, each pinned to a core of its own with `taskset` and one
//! slot, on a SQLite store and a folder bucket; the input is the four-minute 1080p clip that
//! `assets/make-fixtures.sh --bench` makes. Runs alternate whole and split within a round.
//!
//! 1. Speed-up: the job split into 30-second parts on two workers ÷ the same job whole on one.
//!    Target ≤ 0.58.
//! 2. Overheads, from the split runs: the planning task (download, probe, cut, upload of the
//!    sources), the audio part and the assembly, as fractions of the video parts' encode time
//!    (their summed durations), and the speed-up they allow at n workers:
//!    `whole ÷ (plan + max((encode + audio) ÷ n, audio, longest part) + assembly)` — the
//!    parts and the audio spread over n slots, but no faster than the longest of them (the
//!    audio is one piece); the planning and the assembly do not spread. Target ≥ 25 at n = 32.
//!    Printed for this input (8 parts) and for a long one, whose parts outnumber the workers.
//! 3. Resume: the worker holding a part killed (SIGKILL) at about 70 % and started again at
//!    once, as a supervisor would: wall time ÷ an uninterrupted split run. Target ≤ 1.15.
//!    Side by side, the same kill on the whole job (which starts over).
//! 4. No penalty: 8 jobs on the 240p four-minute clip through 2 slots with `auto` (parts of
//!    30 s from 60 s of input) ÷ with `off`. Target ≤ 1.03: with the queue full, auto does not
//!    split.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::job::{Chunking, Job, JobSpec, ObjectRef, OutputTarget, PartKind, Status};
use ffarm::store::JobStore;

const PARTS: Chunking = Chunking::Segments {
    segment_seconds: 30,
};

/// A farm of `ffarm worker` processes over one SQLite store and a folder bucket.
struct Farm {
    data: tempfile::TempDir,
    url: String,
    store: Arc<dyn JobStore>,
    workers: Vec<(usize, Child)>,
}

impl Farm {
    async fn new(input: &Path, also: Option<&Path>) -> Farm {
        let data = tempfile::tempdir().expect("tempdir");
        let bucket = data.path().join("buckets/media/in");
        std::fs::create_dir_all(&bucket).expect("bucket");
        std::fs::copy(input, bucket.join("long.mp4")).expect("input");
        if let Some(small) = also {
            std::fs::copy(small, bucket.join("small.mp4")).expect("input");
        }
        let url = format!("sqlite://{}", data.path().join("ffarm.db").display());
        let store = ffarm::store::open(&url).await.expect("store");
        Farm {
            data,
            url,
            store,
            workers: Vec::new(),
        }
    }

    /// Starts a one-slot worker pinned to `core`.
    fn start(&mut self, core: usize, env: &[(&str, &str)]) {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c")
            .arg(core.to_string())
            .arg(env!("CARGO_BIN_EXE_ffarm"))
            .args(["worker", "--workers", "1", "--lease-seconds", "3"])
            .arg("--store")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--worker-id")
            .arg(format!("core{core}"))
            .env("FFARM_WORKER__POLL_SECONDS", "1")
            .env("FFARM_WORKER__KEEP_FAILED_WORKSPACE_SECONDS", "0")
            .env("FFARM_RETRY__BASE_SECONDS", "0.2")
            .env("FFARM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("taskset ffarm worker");
        self.workers.push((core, child));
    }

    /// Kills the worker pinned to `core` (SIGKILL) and starts it again.
    fn kill_and_restart(&mut self, core: usize, env: &[(&str, &str)]) {
        let at = self
            .workers
            .iter()
            .position(|(c, _)| *c == core)
            .expect("worker");
        let (_, mut child) = self.workers.remove(at);
        child.kill().expect("kill");
        child.wait().expect("wait");
        self.start(core, env);
    }

    async fn submit(&self, key: &str, preset: &str, chunking: Chunking) -> Job {
        let spec = JobSpec {
            input: ObjectRef {
                bucket: "media".into(),
                key: key.into(),
            },
            preset: preset.into(),
            output: OutputTarget {
                bucket: "media".into(),
                prefix: format!("out/{}/", ffarm::job::new_id()),
            },
            priority: 0,
            max_attempts: 3,
            timeout_seconds: 3600,
            on_success: None,
            on_failure: None,
            trigger: None,
            overwrite: false,
            chunking,
            media: Default::default(),
        };
        self.store.submit(None, spec).await.expect("submit").job
    }

    async fn wait(&self, id: &str, done: impl Fn(&Job) -> bool) -> Job {
        loop {
            let job = self.store.get(id).await.expect("get");
            if done(&job) {
                return job;
            }
            assert!(
                !job.status.is_terminal() || job.status == Status::Succeeded,
                "job {id} {}: {:?}",
                job.status,
                job.error
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finished(&self, id: &str) -> Job {
        self.wait(id, |j| j.status == Status::Succeeded).await
    }

    fn stop(mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.workers.clear();
    }
}

/// Seconds between two store timestamps.
fn span(from: ffarm::job::Timestamp, to: Option<ffarm::job::Timestamp>) -> f64 {
    to.map_or(0.0, |t| (t.0 - from.0) as f64 / 1e6)
}

/// One job run on a fresh farm: its wall time in seconds and the job as it ended.
async fn run(input: &Path, preset: &str, chunking: Chunking, cores: &[usize]) -> (f64, Job) {
    let mut farm = Farm::new(input, None).await;
    for &c in cores {
        farm.start(c, &[]);
    }
    let started = Instant::now();
    let job = farm.submit("in/long.mp4", preset, chunking).await;
    let done = farm.finished(&job.id).await;
    let wall = started.elapsed().as_secs_f64();
    farm.stop();
    (wall, done)
}

/// The same, killing the worker that holds a running part (or the job) once the job is
/// about 70 % done and starting it again at once.
async fn run_killed(input: &Path, preset: &str, chunking: Chunking, cores: &[usize]) -> f64 {
    let mut farm = Farm::new(input, None).await;
    for &c in cores {
        farm.start(c, &[]);
    }
    let started = Instant::now();
    let job = farm.submit("in/long.mp4", preset, chunking).await;
    let at70 = farm
        .wait(&job.id, |j| {
            j.progress.as_ref().is_some_and(|p| p.percent >= 70.0)
        })
        .await;
    let holder = at70
        .parts
        .iter()
        .find(|p| p.status == Status::Running && p.kind == PartKind::Video)
        .and_then(|p| p.worker.clone())
        .or(at70.worker.clone())
        .expect("a worker holds it");
    let core: usize = holder.trim_start_matches("core").parse().expect("core id");
    farm.kill_and_restart(core, &[]);
    farm.finished(&job.id).await;
    let wall = started.elapsed().as_secs_f64();
    farm.stop();
    wall
}

/// Overheads of a split job as fractions of its video parts' summed encode time.
struct Overheads {
    plan: f64,
    encode: f64,
    longest_part: f64,
    audio: f64,
    assemble: f64,
}

impl Overheads {
    /// The wall time the model gives on `n` workers.
    fn at(&self, n: f64) -> f64 {
        let spread = ((self.encode + self.audio) / n)
            .max(self.audio)
            .max(self.longest_part);
        self.plan + spread + self.assemble
    }

    /// The speed-up on `n` workers of an input long enough that its parts far outnumber the
    /// workers: the same fractions of the encode (the whole job's time too, `whole`), no
    /// part longer than a slot's share, the audio still one piece.
    fn long_input(&self, whole: f64, n: f64) -> f64 {
        let (s, a, m) = (
            self.plan / self.encode,
            self.audio / self.encode,
            self.assemble / self.encode,
        );
        (whole / self.encode) / (s + ((1.0 + a) / n).max(a) + m)
    }
}

fn overheads(job: &Job) -> Overheads {
    let of = |kind: PartKind| -> f64 {
        job.parts
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.started_at.map_or(0.0, |s| span(s, p.finished_at)))
            .sum()
    };
    let longest_part = job
        .parts
        .iter()
        .filter(|p| p.kind == PartKind::Video)
        .map(|p| p.started_at.map_or(0.0, |s| span(s, p.finished_at)))
        .fold(0.0, f64::max);
    let first_part = job.parts.iter().filter_map(|p| p.started_at).min();
    let plan = job
        .started_at
        .zip(first_part)
        .map_or(0.0, |(s, f)| span(s, Some(f)));
    Overheads {
        plan,
        encode: of(PartKind::Video),
        longest_part,
        audio: of(PartKind::Audio),
        assemble: of(PartKind::Assemble),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn speed_up(input: &Path, preset: &str, rounds: usize) {
    let (mut whole, mut split, mut killed_whole, mut killed_split) =
        (vec![], vec![], vec![], vec![]);
    let mut last = None;
    for round in 0..rounds {
        // Alternate which goes first, so drift on a shared machine falls on both.
        let order: [bool; 2] = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for chunked in order {
            if chunked {
                let (wall, job) = run(input, preset, PARTS, &[0, 1]).await;
                split.push(wall);
                last = Some(job);
            } else {
                whole.push(run(input, preset, Chunking::Off, &[0]).await.0);
            }
        }
        if env_or("BENCH_SPLIT_RESUME", "1") == "1" {
            killed_split.push(run_killed(input, preset, PARTS, &[0, 1]).await);
            killed_whole.push(run_killed(input, preset, Chunking::Off, &[0]).await);
        }
    }
    let (w, s) = (median(whole.clone()), median(split.clone()));
    println!("| {preset}: whole on 1 worker | {w:.1} s | runs {whole:.1?} |");
    println!("| {preset}: split on 2 workers | {s:.1} s | runs {split:.1?} |");
    println!(
        "| {preset}: split ÷ whole (target ≤ 0.58) | {:.3} | |",
        s / w
    );
    let o = overheads(last.as_ref().expect("a split run"));
    println!(
        "| {preset}: planning, audio, assembly ÷ encode ({:.1} s) | {:.4}, {:.4}, {:.4} | |",
        o.encode,
        o.plan / o.encode,
        o.audio / o.encode,
        o.assemble / o.encode
    );
    for n in [2.0, 8.0, 32.0] {
        let projected = w / o.at(n);
        let long = o.long_input(w, n);
        println!(
            "| {preset}: projected speed-up at {n} workers, this input / a long one \
             (target ≥ 25 at 32) | {projected:.1}× / {long:.1}× | |"
        );
    }
    if killed_split.is_empty() {
        return;
    }
    let (ks, kw) = (median(killed_split), median(killed_whole));
    println!(
        "| {preset}: split, worker killed at 70 % ÷ uninterrupted (target ≤ 1.15) | {:.3} | |",
        ks / s
    );
    println!(
        "| {preset}: whole, worker killed at 70 % ÷ uninterrupted | {:.3} | |",
        kw / w
    );
}

/// 8 jobs through two one-slot workers: wall seconds.
async fn batch(small: &Path, big: &Path, chunking: Chunking) -> f64 {
    let mut farm = Farm::new(big, Some(small)).await;
    let env = [
        ("FFARM_CHUNKING__MIN_SECONDS", "60"),
        ("FFARM_CHUNKING__SEGMENT_SECONDS", "30"),
    ];
    farm.start(0, &env);
    farm.start(1, &env);
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(farm.submit("in/small.mp4", "h264-720p", chunking).await.id);
    }
    let mut split = 0;
    for id in &ids {
        split += usize::from(!farm.finished(id).await.parts.is_empty());
    }
    let wall = started.elapsed().as_secs_f64();
    farm.stop();
    if split > 0 {
        println!("| note: {split} of 8 jobs split with {chunking} |");
    }
    wall
}

async fn no_penalty(small: &Path, big: &Path, rounds: usize) {
    let (mut auto, mut off) = (vec![], vec![]);
    for round in 0..rounds {
        if round % 2 == 0 {
            auto.push(batch(small, big, Chunking::Auto).await);
            off.push(batch(small, big, Chunking::Off).await);
        } else {
            off.push(batch(small, big, Chunking::Off).await);
            auto.push(batch(small, big, Chunking::Auto).await);
        }
    }
    let (a, o) = (median(auto.clone()), median(off.clone()));
    println!(
        "| 8 jobs, 2 slots: auto {a:.1} s ({auto:.1?}), off {o:.1} s ({off:.1?}) | auto ÷ off {:.3} (target ≤ 1.03) |",
        a / o
    );
}

fn media(name: &str, dir: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(name);
    assert!(
        path.exists(),
        "{} is missing: run assets/make-fixtures.sh{}",
        path.display(),
        if dir.contains("bench") {
            " --bench"
        } else {
            ""
        }
    );
    path
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let big = media("split_1080p_4min.mp4", "target/bench-media");
    let small = media("split_4min.mp4", "target/fixtures/valid");
    let rounds: usize = env_or("BENCH_SPLIT_ROUNDS", "1").parse().unwrap_or(1);
    println!("| split jobs ({rounds} round(s), workers pinned with taskset) | | |");
    println!("|---|---|---|");
    for preset in env_or("BENCH_SPLIT_PRESETS", "h264-720p,hls-abr").split(',') {
        speed_up(&big, preset.trim(), rounds).await;
    }
    if env_or("BENCH_SPLIT_BATCH", "1") == "1" {
        no_penalty(&small, &big, rounds).await;
    }
}
