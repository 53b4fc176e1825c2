//! Engine benchmark: `ffarm transcode` against the `ffmpeg` command line with equivalent
//! settings, side by side on the same generated 1080p input.
//!
//!     cargo bench --bench engine
//!     BENCH_RUNS=5 BENCH_PRESETS=h264-720p,hls-abr cargo bench --bench engine
//!
//! The command line's arguments come from `ffarm::media::equivalent_command` (what
//! `ffarm transcode --print-ffmpeg` prints), so both sides use the same filters, encoder
//! options and muxer options. Runs alternate between the two tools; each tool gets a warm-up
//! run first. Every run's output is checked against the other tool's — the same files, and
//! in each the same frame count, picture size and audio streams — so a run that is faster
//! because it did less fails the benchmark instead of flattering it. Reported: median wall
//! time per tool, their ratio (ffarm / ffmpeg, below 1 is faster), and the geometric mean of
//! the ratios.
//!
//! Not like for like: an ABR ladder's renditions share one audio encoding in ffarm, while the
//! command line encodes the audio once per rendition (see BENCHMARKS.md).

use std::collections::BTreeMap;
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
    let presets = Presets::builtin(&ffarm::media::caps::Ffmpeg).expect("presets");
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
    sandbox_setup(&ffarm, work.path());
    println!(
        "| preset | ffarm (s) | ffarm --no-sandbox (s) | ffmpeg CLI (s) | ratio | ratio without \
         sandbox | sandbox on / off |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
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
        let ffarm_run = |i: usize, sandbox: bool| {
            let d = run_dir(if sandbox { "ffarm" } else { "ffarm-open" }, i);
            let secs = timed(
                Command::new(&ffarm)
                    .args(["transcode", "--preset", name])
                    .args((!sandbox).then_some("--no-sandbox"))
                    .arg(&input)
                    .arg(d.join(&out_name)),
            );
            (secs, d.join(&out_name))
        };
        let ffmpeg_run = |i: usize| {
            let d = run_dir("ffmpeg", i);
            let args = ffarm::media::equivalent_command(&input, &d.join(&out_name), preset, None)
                .expect("equivalent command");
            let secs = timed(Command::new("ffmpeg").args(["-v", "error"]).args(&args));
            (secs, d.join(&out_name))
        };
        let agree = |i: usize, ours: &Path, theirs: &Path| {
            let (a, b) = (outputs(ours), outputs(theirs));
            assert!(
                !a.is_empty(),
                "{name}: ffarm made no video output in {}",
                ours.display()
            );
            assert_eq!(
                a, b,
                "{name}, run {i}: ffarm's output (left) and ffmpeg's (right) differ"
            );
        };
        let (warm_ours, warm_theirs) = (ffarm_run(1000, true), ffmpeg_run(1000));
        agree(1000, &warm_ours.1, &warm_theirs.1);
        let (mut ours, mut open, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            // The three in a different order each run.
            let mut slots: [Option<(f64, PathBuf)>; 3] = [None, None, None];
            for k in 0..3 {
                let which = (i + k) % 3;
                slots[which] = Some(match which {
                    0 => ffarm_run(i, true),
                    1 => ffarm_run(i, false),
                    _ => ffmpeg_run(i),
                });
            }
            let [Some(a), Some(o), Some(b)] = slots else {
                unreachable!()
            };
            agree(i, &a.1, &b.1);
            agree(i, &o.1, &b.1);
            ours.push(a.0);
            open.push(o.0);
            theirs.push(b.0);
        }
        let (a, o, b) = (median(&mut ours), median(&mut open), median(&mut theirs));
        let ratio = a / b;
        ratios.push(ratio);
        println!(
            "| {name} | {a:.2} | {o:.2} | {b:.2} | {ratio:.3} | {:.3} | {:.3} |",
            o / b,
            a / o
        );
    }
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    let worst = ratios.iter().cloned().fold(0.0, f64::max);
    println!();
    println!(
        "geometric mean ratio: {geomean:.3} (target <= 1.00); worst: {worst:.3} (target <= 1.05)"
    );
}

/// The sandbox's set-up cost per engine process: `ffarm engine` asked only to enter it (the
/// set-up time it reports, and the whole process's wall time), against the same process
/// without the sandbox, alternated.
fn sandbox_setup(ffarm: &Path, work: &Path) {
    use std::io::Write;
    let runs: usize = std::env::var("BENCH_SETUP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let limits = ffarm::sandbox::Limits::default();
    let request = |sandbox: bool| {
        serde_json::json!({
            "work": {"kind": "level"},
            "sandbox": sandbox.then_some(&limits),
            "read": [work],
            "write": work,
        })
        .to_string()
    };
    let engine = |body: &str| -> (f64, f64) {
        let started = Instant::now();
        let mut child = Command::new(ffarm)
            .arg("engine")
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ffarm engine");
        child
            .stdin
            .take()
            .expect("the engine's stdin")
            .write_all(body.as_bytes())
            .expect("writing the request");
        let out = child.wait_with_output().expect("ffarm engine");
        let wall = started.elapsed().as_secs_f64();
        let line = out.stdout.split(|b| *b == b'\n').next().unwrap_or_default();
        let first: serde_json::Value = serde_json::from_slice(line).expect("a JSON line");
        (
            first["setup_seconds"].as_f64().expect("a sandbox line"),
            wall,
        )
    };
    let (on, off) = (request(true), request(false));
    let (mut setup, mut wall_on, mut wall_off) = (vec![], vec![], vec![]);
    for i in 0..runs {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for sandbox in order {
            let (s, w) = engine(if sandbox { &on } else { &off });
            if sandbox {
                setup.push(s * 1e3);
                wall_on.push(w * 1e3);
            } else {
                wall_off.push(w * 1e3);
            }
        }
    }
    let (s, a, b) = (
        median(&mut setup),
        median(&mut wall_on),
        median(&mut wall_off),
    );
    println!(
        "sandbox set-up per engine process ({runs} runs each, medians): {s:.2} ms inside the \
         engine (target < 5 ms); a whole `ffarm engine` that only enters it {a:.1} ms, without \
         the sandbox {b:.1} ms (difference {:.1} ms)",
        a - b
    );
    println!();
}

/// What one output holds, per media file (for HLS, per variant playlist, read through its
/// segments): the first video stream's frame count and size, and the audio streams' codecs.
#[derive(Debug, PartialEq, Eq)]
struct Media {
    frames: u64,
    width: u64,
    height: u64,
    audio: Vec<String>,
}

fn outputs(path: &Path) -> BTreeMap<String, Media> {
    let files: Vec<PathBuf> = if path.is_dir() {
        // A ladder's variant playlists; the master is ffarm's own (the command line has none).
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("reading an output directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "m3u8")
                    && p.file_name().is_some_and(|n| n != "master.m3u8")
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, media(f))
        })
        .collect()
}

fn media(path: &Path) -> Media {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-of",
            "json",
            "-show_entries",
        ])
        .arg("stream=codec_type,codec_name,width,height,nb_read_frames")
        .arg(path)
        .output()
        .expect("running ffprobe");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let streams = report["streams"].as_array().cloned().unwrap_or_default();
    let of = |kind: &'static str| streams.iter().filter(move |s| s["codec_type"] == kind);
    let number = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    let video = of("video").next();
    Media {
        frames: video.map_or(0, |v| number(&v["nb_read_frames"])),
        width: video.map_or(0, |v| number(&v["width"])),
        height: video.map_or(0, |v| number(&v["height"])),
        audio: of("audio")
            .map(|a| a["codec_name"].as_str().unwrap_or("").to_string())
            .collect(),
    }
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
