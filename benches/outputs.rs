//! Several outputs from one decode against one transcode per output: the engine's side of a
//! job with several presets, in this process.
//!
//!     cargo bench --bench outputs
//!     BENCH_RUNS=5 BENCH_PRESETS=hls-abr,h264-720p,poster-jpg,storyboard cargo bench --bench outputs
//!
//! On the generated 1080p input (`assets/make-fixtures.sh --bench`), alternating: the presets
//! as one `media::transcode_many` (one read, one decode), and as one `media::transcode` each
//! (what separate jobs' engines do). Measured: wall time and CPU seconds (user + system of
//! this process, every thread, from `getrusage`), medians; the target is the CPU ratio
//! one / separate ≤ 0.70. Every run's outputs are checked by the engine itself before it
//! returns (`media::verify`), so a run that did less fails rather than flatters.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ffarm::media::{self, OutputSpec};
use ffarm::preset::{Preset, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;
use nix::sys::resource::{UsageWho, getrusage};

const DEFAULT_PRESETS: &str = "hls-abr,h264-720p,poster-jpg,storyboard";

/// CPU seconds this process has used so far, every thread.
fn cpu_seconds() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}

/// Wall and CPU seconds of `work`.
fn measured(work: impl FnOnce()) -> (f64, f64) {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    work();
    (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

fn output_name(dir: &Path, p: &Preset) -> std::path::PathBuf {
    dir.join(format!("bench.{}.{}", p.name, p.container.extension()))
}

fn one_decode(input: &Path, dir: &Path, presets: &[&Preset]) {
    let paths: Vec<_> = presets.iter().map(|p| output_name(dir, p)).collect();
    let outputs: Vec<OutputSpec> = presets
        .iter()
        .zip(&paths)
        .map(|(p, path)| OutputSpec { path, preset: p })
        .collect();
    media::transcode_many(input, &outputs, &StopToken::new(), &mut |_: &Progress| {})
        .expect("one decode");
}

fn separately(input: &Path, dir: &Path, presets: &[&Preset]) {
    for p in presets {
        let out = output_name(dir, p);
        media::transcode(input, &out, p, &StopToken::new(), &mut |_: &Progress| {})
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let media_dir = root.join("target/bench-media");
    let status = Command::new(root.join("assets/make-fixtures.sh"))
        .arg("--bench")
        .arg(&media_dir)
        .status()
        .expect("running assets/make-fixtures.sh --bench");
    assert!(status.success());
    let input = media_dir.join("bench_1080p.mp4");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let names = std::env::var("BENCH_PRESETS").unwrap_or_else(|_| DEFAULT_PRESETS.into());
    let all = Presets::builtin(&media::caps::Ffmpeg).expect("presets");
    let presets: Vec<&Preset> = names
        .split(',')
        .map(|n| all.get(n).expect("a shipped preset"))
        .collect();
    println!(
        "input: {} (1920x1080 30 fps, 10 s, H.264 + AAC); presets {names}; {runs} alternated \
         runs each, medians",
        input.display()
    );
    let (mut one, mut apart) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = measured(|| one_decode(&input, dir.path(), &presets));
        let dir = tempfile::tempdir().expect("temp dir");
        let b = measured(|| separately(&input, dir.path(), &presets));
        if run == 0 {
            continue; // warm-up
        }
        println!(
            "run {run}: one decode {:.2} s wall, {:.2} s CPU; separately {:.2} s wall, {:.2} s CPU",
            a.0, a.1, b.0, b.1
        );
        one.push(a);
        apart.push(b);
    }
    let (one_wall, one_cpu) = (
        median(one.iter().map(|r| r.0).collect()),
        median(one.iter().map(|r| r.1).collect()),
    );
    let (apart_wall, apart_cpu) = (
        median(apart.iter().map(|r| r.0).collect()),
        median(apart.iter().map(|r| r.1).collect()),
    );
    println!();
    println!("| | one job, one decode | one transcode per preset | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| CPU seconds | {one_cpu:.2} | {apart_cpu:.2} | **{:.2}** (target ≤ 0.70) |",
        one_cpu / apart_cpu
    );
    println!(
        "| wall seconds | {one_wall:.2} | {apart_wall:.2} | {:.2} |",
        one_wall / apart_wall
    );
}
