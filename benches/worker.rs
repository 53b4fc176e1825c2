//! Worker benchmark:
//!
//!     cargo bench --bench worker      (BENCH_CLIPS=40 BENCH_STOPS=100 FFARM_BENCH_PG_URL=…)
//!
//! 1. Per-job overhead: N one-second clips through one worker (one slot, SQLite, local
//!    bucket: claim, task process, copy in, probe, transcode, copy out, finish) against an
//!    `ffarm transcode` loop over the same clips — the same engine in a process per clip, so
//!    the difference is what the worker adds per job. The `ffmpeg` command line in a loop
//!    (`equivalent_command`) is a second reference: it is another engine, so its difference
//!    mixes the worker's costs with the engines' speeds. Target: < 50 ms per job.
//! 2. Stop latency: a 10-second 1080p job is cancelled once transcoding; the time from the
//!    cancel call until the task process is gone, BENCH_STOPS times, on SQLite and on a fresh
//!    PostgreSQL database (FFARM_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/test;
//!    skipped if it cannot be reached). p50, p95, and p99 when there are at least 100 stops
//!    (with fewer, the high end is reported as the max).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::config::Config;
use ffarm::job::{JobSpec, ObjectRef, OutputTarget, Status};
use ffarm::store::JobStore;
use ffarm::worker::{self, Shutdown};
use sqlx::Connection;

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
        overwrite: false,
        chunking: Default::default(),
        media: Default::default(),
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

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A worker with one slot over `store`, in this process, on the data directory `data`.
fn start_worker(
    store: Arc<dyn JobStore>,
    data: &Path,
    url: &str,
) -> tokio::sync::watch::Sender<u8> {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        store: Some(url.to_string()),
        workers: Some(1),
        ..Config::default()
    };
    config.worker.task_program = Some(PathBuf::from(env!("CARGO_BIN_EXE_ffarm")));
    config.worker.keep_failed_workspace_seconds = 0;
    let ctx = worker::context(store, config).expect("worker");
    let (tx, rx) = tokio::sync::watch::channel(0u8);
    tokio::spawn(async move { worker::run(ctx, Shutdown(rx)).await.expect("worker run") });
    tx
}

/// Runs `program args` for each clip, returning the total seconds (after one warm-up run).
fn time_loop(runs: &[Vec<String>], program: &Path) -> f64 {
    let run = |args: &Vec<String>| {
        let ok = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running a reference loop")
            .success();
        assert!(ok, "{} {args:?} failed", program.display());
    };
    run(&runs[0]);
    let started = Instant::now();
    for args in runs {
        run(args);
    }
    started.elapsed().as_secs_f64()
}

/// Cancels `stops` running jobs once they transcode; the milliseconds until each task is gone.
async fn stop_latencies(store: &Arc<dyn JobStore>, stops: usize) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(stops);
    for _ in 0..stops {
        let job = store
            .submit(None, spec("in/long.mp4", "h264-720p"))
            .await
            .expect("submit")
            .job;
        loop {
            let j = store.get(&job.id).await.expect("get");
            if j.status == Status::Running
                && j.progress.as_ref().is_some_and(|p| {
                    p.phase == ffarm::progress::Phase::Transcoding && p.percent > 1.0
                })
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pid = task_pid(store, &job.id).await;
        let asked = Instant::now();
        store.cancel(&job.id, "benchmark").await.expect("cancel");
        while alive(pid) {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
        wait_terminal(store, &job.id).await;
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn report_stops(backend: &str, latencies: &[f64]) {
    let n = latencies.len();
    let max = latencies[n - 1];
    let high = if n >= 100 {
        format!("p99 {:.1} ms, max {max:.1} ms", pct(latencies, 0.99))
    } else {
        format!("max {max:.1} ms (too few stops for a p99)")
    };
    println!(
        "| stop latency, {backend}, {n} stops | p50 {:.1} ms, p95 {:.1} ms, {high} |",
        pct(latencies, 0.5),
        pct(latencies, 0.95)
    );
}

/// A fresh PostgreSQL database for the stop benchmark, or None if the server is not there.
async fn pg_database() -> Option<(String, String)> {
    let admin = std::env::var("FFARM_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
    let db = format!("ffarm_bench_{}", ffarm::job::new_id().to_lowercase());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .ok()?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some((admin.clone(), format!("{base}/{db}")))
}

async fn drop_database(admin: &str, url: &str) {
    let Some((_, db)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
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
    let clips = env_num("BENCH_CLIPS", 40);
    let stops = env_num("BENCH_STOPS", 100);
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
    let ffarm_bin = PathBuf::from(env!("CARGO_BIN_EXE_ffarm"));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("ffarm.db").display());
        let store = ffarm::store::open(&url).await.expect("store");
        let _worker = start_worker(store.clone(), &data, &url);
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Warm-up: one job through the worker.
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

        // The same engine, one process per clip.
        let out = work.path().join("transcode");
        std::fs::create_dir_all(&out).expect("mkdir");
        let transcodes: Vec<Vec<String>> = (0..clips)
            .map(|i| {
                vec![
                    "transcode".into(),
                    inputs.join(format!("clip{i:03}.mp4")).display().to_string(),
                    out.join(format!("clip{i:03}.mp4")).display().to_string(),
                    "--preset".into(),
                    preset_name.into(),
                ]
            })
            .collect();
        let transcode_total = time_loop(&transcodes, &ffarm_bin);

        // Another engine: the ffmpeg command line with the same settings.
        let presets = ffarm::preset::Presets::builtin(&ffarm::media::caps::Ffmpeg).expect("presets");
        let preset = presets.get(preset_name).expect("preset");
        let out = work.path().join("cli");
        std::fs::create_dir_all(&out).expect("mkdir");
        let commands: Vec<Vec<String>> = (0..clips)
            .map(|i| {
                let mut args = vec!["-v".to_string(), "error".to_string()];
                args.extend(
                    ffarm::media::equivalent_command(
                        &inputs.join(format!("clip{i:03}.mp4")),
                        &out.join(format!("clip{i:03}.mp4")),
                        preset,
                        None,
                    )
                    .expect("equivalent command"),
                );
                args
            })
            .collect();
        let cli_total = time_loop(&commands, Path::new("ffmpeg"));

        let per = |total: f64| total / clips as f64 * 1000.0;
        let (farm_ms, transcode_ms, cli_ms) = (per(farm_total), per(transcode_total), per(cli_total));
        println!("## Per-job overhead ({clips} one-second 640x360 clips, preset {preset_name}, one slot)\n");
        println!("| | total (s) | per job (ms) |");
        println!("|---|---:|---:|");
        println!("| ffarm worker (submit → succeeded) | {farm_total:.2} | {farm_ms:.1} |");
        println!("| `ffarm transcode` in a loop (same engine) | {transcode_total:.2} | {transcode_ms:.1} |");
        println!("| `ffmpeg` CLI in a loop (another engine) | {cli_total:.2} | {cli_ms:.1} |");
        println!(
            "\nworker overhead per job (worker − ffarm transcode loop): {:.1} ms (target < 50 ms)",
            farm_ms - transcode_ms
        );
        println!("worker − ffmpeg loop, for reference: {:.1} ms\n", farm_ms - cli_ms);

        println!("## Stop latency (cancel → task process gone)\n");
        println!("| | result |");
        println!("|---|---:|");
        report_stops("SQLite, in-process worker", &stop_latencies(&store, stops).await);

        match pg_database().await {
            Some((admin, pg_url)) => {
                let pg_data = work.path().join("pg-data");
                std::fs::create_dir_all(pg_data.join("buckets/media/in")).expect("mkdir");
                std::fs::copy(media.join("bench_1080p.mp4"), pg_data.join("buckets/media/in/long.mp4")).expect("copy");
                let pg = ffarm::store::open(&pg_url).await.expect("postgres store");
                let stop_worker = start_worker(pg.clone(), &pg_data, &pg_url);
                tokio::time::sleep(Duration::from_millis(300)).await;
                report_stops("PostgreSQL, worker notified by LISTEN/NOTIFY", &stop_latencies(&pg, stops).await);
                let _ = stop_worker.send(2);
                tokio::time::sleep(Duration::from_millis(500)).await;
                drop(pg);
                drop_database(&admin, &pg_url).await;
            }
            None => println!("| stop latency, PostgreSQL | skipped: no server at FFARM_BENCH_PG_URL |"),
        }
    });
}
