//! Engine benchmark: `ffarm transcode` against the `ffmpeg` command line with equivalent
//! settings, side by side on the same generated 1080p input.
//!
//!     cargo bench --bench engine
//!     BENCH_RUNS=5 BENCH_PRESETS=h264-720p,hls-abr cargo bench --bench engine
//!
//! The command line's arguments come from `ffarm::media::equivalent_command` (what
//! `ffarm transcode --print-ffmpeg` prints), so both sides use the same filters, encoder
//! options and muxer options. Runs alternate between the two tools; each tool gets a warm-up
//! run first. Reported: median wall time per tool, their ratio (ffarm / ffmpeg, below 1 is
//! faster), and the geometric mean of the ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ffarm::preset::{Container, Presets};

const DEFAULT_PRESETS: &str = "h264-720p,hevc-1080p,vp9-720p,hls-abr";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let media = root.join("target/bench-media");
    let status = Command::new(root.join("assets/make-fixtures.sh"))
        .arg("--bench")
        .arg(&media)
        .status()
        .expect("running assets/make-fixtures.sh --bench");
    assert!(status.success());
    let input = media.join("bench_1080p.mp4");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let names = std::env::var("BENCH_PRESETS").unwrap_or_else(|_| DEFAULT_PRESETS.into());
    let presets = Presets::builtin().expect("presets");
    let ffarm = PathBuf::from(env!("CARGO_BIN_EXE_ffarm"));
    let work = tempfile::tempdir().expect("temp dir");

    println!(
        "input: {} (1920x1080 30 fps, 10 s, H.264 + AAC); {runs} runs per tool, medians",
        input.display()
    );
    println!(
        "ffmpeg: {}",
        first_line(Command::new("ffmpeg").arg("-version"))
    );
    println!();
    println!("| preset | ffarm (s) | ffmpeg CLI (s) | ratio |");
    println!("|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let preset = presets.get(name).expect("known preset");
        let out_name = match preset.container {
            Container::Hls => "out/".to_string(),
            c => format!("out.{}", c.extension()),
        };
        let run_dir = |tool: &str, i: usize| {
            let d = work.path().join(format!("{name}-{tool}-{i}"));
            std::fs::create_dir_all(d.join("out")).expect("creating a run directory");
            d
        };
        let ffarm_run = |i: usize| {
            let d = run_dir("ffarm", i);
            timed(
                Command::new(&ffarm)
                    .args(["transcode", "--preset", name])
                    .arg(&input)
                    .arg(d.join(&out_name)),
            )
        };
        let ffmpeg_run = |i: usize| {
            let d = run_dir("ffmpeg", i);
            let args = ffarm::media::equivalent_command(&input, &d.join(&out_name), preset)
                .expect("equivalent command");
            timed(Command::new("ffmpeg").args(["-v", "error"]).args(&args))
        };
        ffarm_run(1000);
        ffmpeg_run(1000);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..runs {
            if i % 2 == 0 {
                ours.push(ffarm_run(i));
                theirs.push(ffmpeg_run(i));
            } else {
                theirs.push(ffmpeg_run(i));
                ours.push(ffarm_run(i));
            }
        }
        let (a, b) = (median(&mut ours), median(&mut theirs));
        let ratio = a / b;
        ratios.push(ratio);
        println!("| {name} | {a:.2} | {b:.2} | {ratio:.3} |");
    }
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    let worst = ratios.iter().cloned().fold(0.0, f64::max);
    println!();
    println!(
        "geometric mean ratio: {geomean:.3} (target <= 1.00); worst: {worst:.3} (target <= 1.05)"
    );
}

fn timed(cmd: &mut Command) -> f64 {
    let started = Instant::now();
    let out = cmd.output().expect("running a benchmark command");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}
