//! Worker benchmark:
//!
//!     cargo bench --bench worker            (BENCH_CLIPS=40 BENCH_STOPS=20)
//!
//! 1. Per-job overhead: N one-second clips through one worker (one slot, SQLite, local
//!    bucket: claim, task process, copy in, probe, transcode, copy out, finish) against the
//!    `ffmpeg` command line run in a shell loop on the same clips with the same settings
//!    (`equivalent_command`). Overhead = ffarm's time per job minus the loop's. Target: < 50 ms.
//! 2. Stop latency: a 10-second 1080p job is cancelled once transcoding; the time from the
//!    cancel call until the task process is gone, over BENCH_STOPS stops. p50 and p99.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::config::Config;
use ffarm::job::{JobSpec, ObjectRef, OutputTarget, Status};
use ffarm::store::JobStore;
use ffarm::worker::{self, Shutdown};

fn spec(key: &str, preset: &str) -> JobSpec {
    JobSpec {
        input: ObjectRef {
            bucket: "media".into(),
            key: key.into(),
        },
        preset: preset.into(),
        output: OutputTarget {
            bucket: "media".into(),
            prefix: "out/".into(),
        },
        priority: 0,
        max_attempts: 1,
        timeout_seconds: 3600,
        on_success: None,
        on_failure: None,
        trigger: None,
    }
}

async fn wait_terminal(store: &Arc<dyn JobStore>, id: &str) {
    loop {
        if store.get(id).await.expect("get").status.is_terminal() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(false)
}

async fn task_pid(store: &Arc<dyn JobStore>, id: &str) -> i32 {
    loop {
        let logs = store.logs(id, None, 0, 100).await.expect("logs");
        if let Some(pid) = logs.iter().find_map(|l| {
            l.line
                .split("task pid ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        }) {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let media = root.join("target/bench-media");
    let ok = Command::new(root.join("assets/make-fixtures.sh"))
        .arg("--bench")
        .arg(&media)
        .status()
        .expect("fixture script")
        .success();
    assert!(ok);
    let clips: usize = std::env::var("BENCH_CLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let stops: usize = std::env::var("BENCH_STOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("data");
    let inputs = data.join("buckets/media/in");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    for i in 0..clips {
        std::fs::copy(
            media.join("clip_1s.mp4"),
            inputs.join(format!("clip{i:03}.mp4")),
        )
        .expect("copy");
    }
    std::fs::copy(media.join("bench_1080p.mp4"), inputs.join("long.mp4")).expect("copy");
    let preset_name = "h264-480p";

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut config = Config {
            data_dir: data.clone(),
            workers: Some(1),
            ..Config::default()
        };
        config.worker.task_program = Some(PathBuf::from(env!("CARGO_BIN_EXE_ffarm")));
        config.worker.keep_failed_workspace_seconds = 0;
        let store = config.open_store().await.expect("store");
        let ctx = worker::context(store.clone(), config).expect("worker");
        let (_tx, rx) = tokio::sync::watch::channel(0u8);
        tokio::spawn(async move { worker::run(ctx, Shutdown(rx)).await.expect("worker run") });
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Warm-up: one job through the worker, one command-line run.
        let warm = store.submit(None, spec("in/clip000.mp4", preset_name)).await.expect("submit").job;
        wait_terminal(&store, &warm.id).await;

        let started = Instant::now();
        let mut ids = Vec::new();
        for i in 0..clips {
            ids.push(store.submit(None, spec(&format!("in/clip{i:03}.mp4"), preset_name)).await.expect("submit").job.id);
        }
        for id in &ids {
            wait_terminal(&store, id).await;
        }
        let farm_total = started.elapsed().as_secs_f64();
        for id in &ids {
            let j = store.get(id).await.expect("get");
            assert_eq!(j.status, Status::Succeeded, "{id}: {:?}", j.error);
        }

        let presets = ffarm::preset::Presets::builtin().expect("presets");
        let preset = presets.get(preset_name).expect("preset");
        let out = work.path().join("cli");
        std::fs::create_dir_all(&out).expect("mkdir");
        let commands: Vec<Vec<String>> = (0..clips)
            .map(|i| {
                ffarm::media::equivalent_command(
                    &inputs.join(format!("clip{i:03}.mp4")),
                    &out.join(format!("clip{i:03}.mp4")),
                    preset,
                )
                .expect("equivalent command")
            })
            .collect();
        let run = |args: &Vec<String>| {
            let ok = Command::new("ffmpeg").args(["-v", "error"]).args(args).status().expect("ffmpeg").success();
            assert!(ok);
        };
        run(&commands[0]);
        let started = Instant::now();
        for c in &commands {
            run(c);
        }
        let cli_total = started.elapsed().as_secs_f64();
        let (per_farm, per_cli) = (farm_total / clips as f64, cli_total / clips as f64);
        println!("## Per-job overhead ({clips} one-second 640x360 clips, preset {preset_name}, one slot)\n");
        println!("| | total (s) | per job (ms) |");
        println!("|---|---:|---:|");
        println!("| ffarm worker (submit → succeeded) | {farm_total:.2} | {:.1} |", per_farm * 1000.0);
        println!("| ffmpeg CLI in a shell loop | {cli_total:.2} | {:.1} |", per_cli * 1000.0);
        println!("\noverhead per job beyond encoding: {:.1} ms (target < 50 ms)\n", (per_farm - per_cli) * 1000.0);

        let mut latencies = Vec::new();
        for _ in 0..stops {
            let job = store.submit(None, spec("in/long.mp4", "h264-720p")).await.expect("submit").job;
            loop {
                let j = store.get(&job.id).await.expect("get");
                if j.status == Status::Running
                    && j.progress.as_ref().is_some_and(|p| p.phase == ffarm::media::Phase::Transcoding && p.percent > 1.0)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let pid = task_pid(&store, &job.id).await;
            let asked = Instant::now();
            store.cancel(&job.id, "benchmark").await.expect("cancel");
            while alive(pid) {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
            wait_terminal(&store, &job.id).await;
        }
        latencies.sort_by(f64::total_cmp);
        println!("## Stop latency (cancel → task process gone), {stops} stops\n");
        println!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target < 1000 ms)", pct(&latencies, 0.5), pct(&latencies, 0.99), latencies[latencies.len() - 1]);
    });
}
