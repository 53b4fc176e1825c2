//! Media fuzzing, the long run:
//!
//!     cargo bench --bench fuzz      (FUZZ_FILES=500 FUZZ_SEED=20261207 FUZZ_WORKERS=2
//!                                    FUZZ_STALL_SECONDS=20 FUZZ_VERBOSE=1 lists every failure,
//!                                    FUZZ_KEEP=1 keeps the farm's folder,
//!                                    FUZZ_WRITE=DIR only writes the files there)
//!
//! FUZZ_FILES damaged copies of the test fixtures (`tests/it/fuzz_mutate.rs`: bit flips, byte
//! runs, truncations, MP4 box and Matroska element size edits, splices; the seed and the
//! count name the corpus) as jobs on one `ffarm worker` process with FUZZ_WORKERS slots, the
//! sandbox on, a SQLite store and a folder bucket, exactly as the suite's `fuzz_media` runs
//! its 120 (`tests/it/fuzz_run.rs`). Prints the counts by outcome and mutation, the totals
//! (files, succeeded, failed by code, engine crashes, stalls, jobs at their time limit,
//! worker crashes, wall time) and every ending that is not a plain success or media failure,
//! and exits non-zero when the worker died or a job ended unnamed or not at all.

#[path = "../tests/it/fuzz_mutate.rs"]
mod fuzz_mutate;
#[path = "../tests/it/fuzz_run.rs"]
mod fuzz_run;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("target/fixtures");
    let ok = Command::new(root.join("assets/make-fixtures.sh"))
        .arg(&fixtures)
        .status()
        .expect("fixture script")
        .success();
    assert!(ok, "assets/make-fixtures.sh failed");
    let files = env_num("FUZZ_FILES", 500) as usize;
    let seed = env_num("FUZZ_SEED", fuzz_mutate::DEFAULT_SEED);
    let slots = env_num("FUZZ_WORKERS", 2);
    let stall = env_num("FUZZ_STALL_SECONDS", 20);

    let seeds = fuzz_mutate::seeds(&fixtures.join("valid"));
    let mutants = fuzz_mutate::corpus(&seeds, seed, files);
    if let Some(dir) = std::env::var_os("FUZZ_WRITE") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).expect("FUZZ_WRITE's folder");
        for m in &mutants {
            std::fs::write(dir.join(&m.name), &m.bytes).expect("writing a mutant");
        }
        println!("{files} files (seed {seed}) written to {}", dir.display());
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("ffarm-fuzz-")
        .tempdir()
        .expect("temp dir");
    let data = work.path().join("data");
    let bucket = data.join("buckets/media");
    std::fs::create_dir_all(&bucket).expect("bucket");
    let url = format!("sqlite://{}", data.join("ffarm.db").display());
    println!(
        "## Media fuzzing: {files} files from {} fixtures, seed {seed}, {slots} slots, \
         stall limit {stall} s\n",
        seeds.len()
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt.block_on(async {
        let store = ffarm::store::open(&url).await.expect("store");
        let mut worker = Command::new(env!("CARGO_BIN_EXE_ffarm"))
            .arg("worker")
            .args(["--workers", &slots.to_string(), "--worker-id", "fuzz/1"])
            .arg("--store")
            .arg(&url)
            .arg("--data-dir")
            .arg(&data)
            .env("FFARM_WORKER__POLL_SECONDS", "1")
            .env("FFARM_WORKER__KEEP_FAILED_WORKSPACE_SECONDS", "0")
            .env("FFARM_WORKER__STALL_SECONDS", stall.to_string())
            .env("FFARM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffarm worker");
        let settings = fuzz_run::Settings {
            job_timeout_seconds: 90,
            deadline: Duration::from_secs(files as u64 * 20 + 600),
        };
        let mut worker_alive = || match worker.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the worker process ended: {status}")),
            Err(e) => Err(format!("the worker process: {e}")),
        };
        let report = fuzz_run::run(
            &store,
            &bucket,
            seed,
            &mutants,
            &settings,
            &mut worker_alive,
        )
        .await;
        let mut report = report;
        if report.worker_died.is_none() {
            if let Err(why) = worker_alive() {
                report.worker_died = Some(why);
            }
        }
        let _ = worker.kill();
        let _ = worker.wait();
        report
    });
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        println!("{}", report.failures());
    }
    println!("{}", report.table());
    if std::env::var_os("FUZZ_KEEP").is_some() {
        println!(
            "the farm's folder (bucket, store) is kept: {}",
            work.keep().display()
        );
    }
    let sound =
        report.worker_died.is_none() && report.stuck.is_empty() && report.unnamed().is_empty();
    if !sound {
        eprintln!("fuzz: the worker died, or jobs ended unnamed or not at all (above)");
        std::process::exit(1);
    }
}
