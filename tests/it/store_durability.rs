//! Nothing acknowledged is lost. A child process submits jobs as fast as it can and prints
//! each id the store acknowledged; it is killed with SIGKILL mid-stream, and every printed id
//! must be in the store when it is opened again.
//!
//! What that proves is that an answer goes out only after its commit: a killed process loses
//! nothing it acknowledged. It does not prove the commit reached the disk, because the
//! operating system outlives the process and writes its cache out anyway; only cutting the
//! power would tell, and no test here does. That part rests on the settings the commits run
//! with, which `durable_writes_commit_with_synchronous_settings` asserts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::spec;
use crate::store_harness::TestStore;

/// The child's side: submit from 8 tasks, print every acknowledged id. Only runs when the
/// parent test starts this binary with FFARM_DURABILITY_URL set.
#[test]
#[ignore = "run by the durability tests as their child process"]
fn child_submitter() {
    let Ok(url) = std::env::var("FFARM_DURABILITY_URL") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = ffarm::store::open(&url).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let id = format!("d{t}x{i}");
                        store
                            .submit(Some(id.clone()), spec("in/d.mp4"))
                            .await
                            .unwrap();
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "ACK {id}");
                        let _ = out.flush();
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
}

async fn killed_submitter_loses_nothing(ts: TestStore) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store_durability::child_submitter",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FFARM_DURABILITY_URL", &ts.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let started = Instant::now();
    for line in reader.lines() {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_string());
        }
        if acked.len() >= 400 {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child submits too slowly"
        );
    }
    let _ = child.wait();
    assert!(
        acked.len() >= 400,
        "the child acknowledged only {}",
        acked.len()
    );
    // Open the data afresh, as a restarted farm would.
    let store = ffarm::store::open(&ts.url).await.unwrap();
    for id in &acked {
        store
            .get(id)
            .await
            .unwrap_or_else(|e| panic!("{id} was acknowledged but is gone: {e}"));
    }
    drop(store);
    ts.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_submits_survive_sigkill() {
    killed_submitter_loses_nothing(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_submits_survive_sigkill() {
    killed_submitter_loses_nothing(TestStore::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_versioned_and_reapplying_is_harmless() {
    let ts = TestStore::sqlite().await;
    ts.store
        .submit(Some("kept".into()), spec("in/a.mp4"))
        .await
        .unwrap();
    let again = ffarm::store::open(&ts.url).await.unwrap();
    assert_eq!(again.get("kept").await.unwrap().id, "kept");
    let path = ts.url.trim_start_matches("sqlite://");
    let mut conn =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{path}"))
            .await
            .unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, shipped("sqlite"));
    let pg = TestStore::postgres().await;
    let again = ffarm::store::open(&pg.url).await.unwrap();
    drop(again);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url)
        .await
        .unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, shipped("postgres"));
    drop(conn);
    pg.cleanup().await;
    assert!(ffarm::store::open("mysql://x").await.is_err());
}

/// The settings that make an acknowledged write survive a machine crash, not only a killed
/// process: SQLite in WAL mode with `synchronous = FULL` for durable writes (an fsync at every
/// commit; NORMAL, for leases and logs, syncs only at checkpoints), PostgreSQL with
/// `synchronous_commit` on for the durable pool and off for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_commit_with_synchronous_settings() {
    let ts = TestStore::sqlite().await;
    let store = ffarm::store::sqlite::SqliteStore::open(&ts.url)
        .await
        .unwrap();
    // Alternating, so that each level is set by the switch between kinds of batch, not only
    // by how the connection was opened.
    for _ in 0..2 {
        assert_eq!(store.synchronous_level(false).await.unwrap(), 1, "NORMAL");
        assert_eq!(store.synchronous_level(true).await.unwrap(), 2, "FULL");
    }
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&ts.url)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let pg = TestStore::postgres().await;
    let store = ffarm::store::postgres::PostgresStore::open(&pg.url)
        .await
        .unwrap();
    let commits = store.setting("synchronous_commit").await.unwrap();
    assert_eq!(
        (
            commits.durable.as_str(),
            commits.fast.as_str(),
            commits.lanes.as_str()
        ),
        ("on", "off", "on"),
        "submits, claims and finishes (the lanes) wait for the flush; renewals do not"
    );
    // The writes by key keep one plan per statement; reads keep the server's choice.
    let plans = store.setting("plan_cache_mode").await.unwrap();
    assert_eq!(
        (
            plans.durable.as_str(),
            plans.fast.as_str(),
            plans.lanes.as_str()
        ),
        ("auto", "force_generic_plan", "force_generic_plan")
    );
}

/// The versions of the migrations shipped for a backend (`migrations/BACKEND/NNNN_*.sql`), in
/// order: a store opened by this build has applied exactly these.
fn shipped(backend: &str) -> Vec<i64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut versions: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort();
    assert!(versions.len() >= 2, "{versions:?} in {}", dir.display());
    versions
}
