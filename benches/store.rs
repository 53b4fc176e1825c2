//! Job store benchmark, for SQLite and PostgreSQL:
//!
//!     cargo bench --bench store
//!     BENCH_STORE=sqlite BENCH_JOBS=20000 cargo bench --bench store
//!
//! - submit throughput (16 concurrent submitters, durable submits);
//! - claim+finish throughput and claim latency with 1, 4, 16 and 32 concurrent claimers (a
//!   farm's busy slots; a claimer that finds nothing waits for the store's notification);
//! - end to end: 8, 16 and 32 submitters with 32 claimers at once, jobs/s from submit to
//!   succeeded (a closed loop: more submitters offer more load, until the store is the limit);
//! - list-page and count latency with 100,000 jobs in the store: every filter the API offers
//!   (status, time windows on created/started/finished, bucket, key prefix broad and narrow,
//!   preset) and counts as the web page asks for them (unfiltered, and over a window).
//!
//! BENCH_PHASES picks phases (default `queue,e2e,list`): `queue` is the submit and
//! claim+finish rows, `e2e` end to end, `list` the list and count rows.
//!
//! PostgreSQL: a fresh database on FFARM_BENCH_PG_URL's server (default
//! postgres://postgres@127.0.0.1:5432/test; its parameters, such as `?sslmode=disable`, are
//! kept, and a Unix socket is `postgres://postgres@%2Fvar%2Frun%2Fpostgresql/test`), dropped
//! afterwards unless BENCH_KEEP_DB is set (its URL is printed, to look at plans with EXPLAIN;
//! drop it by hand). BENCH_PG_SQL holds statements (`;`-separated) run on that database after
//! its migrations and before the phases, to measure a change to the schema or the settings
//! side by side with the unchanged one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::job::{JobSpec, ObjectRef, Outcome, OutputTarget, Status, Timestamp};
use ffarm::store::{JobStore, ListFilter, TimeField};
use sqlx::Connection;

const LEASE: Duration = Duration::from_secs(600);

fn spec(i: usize) -> JobSpec {
    JobSpec {
        input: ObjectRef {
            bucket: "media".into(),
            key: format!("in/{i:07}.mp4"),
        },
        preset: if i % 7 == 0 { "hls-abr" } else { "h264-720p" }.into(),
        output: OutputTarget {
            bucket: "media".into(),
            prefix: "out/".into(),
        },
        priority: 0,
        max_attempts: 3,
        timeout_seconds: 3600,
        on_success: None,
        on_failure: None,
        trigger: None,
        overwrite: false,
        chunking: Default::default(),
        media: Default::default(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn submit_many(store: &Arc<dyn JobStore>, from: usize, n: usize, tasks: usize) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut i = from + t;
                while i < from + n {
                    store.submit(None, spec(i)).await.expect("submit");
                    i += tasks;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("submitter");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Claims and finishes exactly `n` jobs; returns (jobs/s, claim latencies).
async fn drain(store: &Arc<dyn JobStore>, claimers: usize, n: usize) -> (f64, Vec<Duration>) {
    // Each claimer reserves a job's worth before claiming, so exactly `n` are taken.
    let reserved = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // One subscription for the whole farm, as a worker process has: it wakes the claimers.
    let wake = Arc::new(tokio::sync::Notify::new());
    let listener = {
        let (mut changes, wake) = (store.subscribe(), wake.clone());
        tokio::spawn(async move {
            while let Ok(change) = changes.recv().await {
                if matches!(
                    change,
                    ffarm::store::Change::Status {
                        status: Status::Queued,
                        ..
                    }
                ) {
                    wake.notify_one();
                }
            }
        })
    };
    let started = Instant::now();
    let handles: Vec<_> = (0..claimers)
        .map(|c| {
            let (store, reserved, wake) = (store.clone(), reserved.clone(), wake.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let worker = format!("bench/{c}");
                while reserved.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    loop {
                        let t = Instant::now();
                        let claimed = store.claim(&worker, LEASE).await.expect("claim");
                        latencies.push(t.elapsed());
                        if let Some(job) = claimed {
                            store
                                .finish(
                                    &job.id,
                                    job.attempt,
                                    Outcome::Succeeded { outputs: vec![] },
                                )
                                .await
                                .expect("finish");
                            break;
                        }
                        // Nothing queued yet (end to end: the submitters are behind): wait to
                        // be told, as a worker does.
                        let _ =
                            tokio::time::timeout(Duration::from_millis(50), wake.notified()).await;
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("claimer"));
    }
    listener.abort();
    all.sort();
    (n as f64 / started.elapsed().as_secs_f64(), all)
}

async fn bench(name: &str, store: Arc<dyn JobStore>, jobs: usize) {
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "queue,e2e,list".into());
    println!("\n## {name}\n");
    println!("| measure | result |");
    println!("|---|---:|");
    let mut offset = 0;
    if phases.contains("queue") {
        queue(&store, jobs).await;
        offset += jobs;
    }
    if phases.contains("e2e") {
        offset = end_to_end(&store, offset, jobs).await;
    }
    if phases.contains("list") {
        list(&store, offset).await;
    }
}

/// Submits, then claim+finish at each number of claimers.
async fn queue(store: &Arc<dyn JobStore>, jobs: usize) {
    let rate = submit_many(store, 0, jobs, 16).await;
    println!("| submit, 16 concurrent (durable) | {rate:.0} jobs/s |");
    let mut total_left = jobs;
    for claimers in [1, 4, 16, 32] {
        // Each level drains its share of what was submitted.
        let n = if claimers == 32 { total_left } else { jobs / 4 };
        total_left -= n;
        let (rate, lat) = drain(store, claimers, n).await;
        println!(
            "| claim+finish, {claimers} claimer(s) | {rate:.0} jobs/s; claim p50 {:.2} ms, p99 {:.2} ms |",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
}

/// Submitting and working at once, at three offered loads; returns the next unused input
/// number.
async fn end_to_end(store: &Arc<dyn JobStore>, mut offset: usize, jobs: usize) -> usize {
    // End to end: submit and work at the same time, at three offered loads. A closed loop of
    // few submitters measures their round trips rather than the store; the store's capacity
    // is where more submitters stop adding throughput.
    for submitters in [8, 16, 32] {
        let started = Instant::now();
        let submitting = {
            let store = store.clone();
            tokio::spawn(async move { submit_many(&store, offset, jobs, submitters).await })
        };
        let (_, lat) = drain(store, 32, jobs).await;
        submitting.await.expect("submitters");
        let e2e = jobs as f64 / started.elapsed().as_secs_f64();
        offset += jobs;
        // Claims that found the queue empty (the claimers are ahead of the submitters) are
        // statements too: how many there were per job says how much of the claim lane they took.
        println!(
            "| end to end ({submitters} submitters + 32 claimers) | {e2e:.0} jobs/s; claim p99 {:.2} ms; {:.2} claims per job |",
            pct(&lat, 0.99),
            lat.len() as f64 / jobs as f64
        );
    }
    offset
}

/// List pages and counts with 100,000 jobs stored (submitting what is missing).
async fn list(store: &Arc<dyn JobStore>, offset: usize) {
    let have = store
        .counts(&ListFilter::default())
        .await
        .expect("counts")
        .values()
        .sum::<u64>() as usize;
    if have < 100_000 {
        submit_many(store, offset, 100_000 - have, 16).await;
    }
    let mut cursor_deep = None;
    let mut page = store
        .list(&ListFilter::default(), 50, None)
        .await
        .expect("list");
    for _ in 0..200 {
        cursor_deep = page.next_cursor.clone();
        page = store
            .list(&ListFilter::default(), 50, cursor_deep.as_deref())
            .await
            .expect("list");
    }
    let hour_ago = Timestamp::now().minus(Duration::from_secs(3600));
    let window = |field, since, until| ListFilter {
        time_field: field,
        since: Some(since),
        until,
        ..ListFilter::default()
    };
    // A narrow window around one job's end: the stats page asks for one minute at a time.
    let succeeded = ListFilter {
        statuses: vec![Status::Succeeded],
        ..ListFilter::default()
    };
    let ended = store
        .list(&succeeded, 1, None)
        .await
        .expect("list")
        .jobs
        .first()
        .and_then(|j| j.finished_at)
        .unwrap_or(hour_ago);
    let one_minute = window(
        TimeField::Finished,
        ended.minus(Duration::from_secs(30)),
        Some(ended.plus(Duration::from_secs(30))),
    );
    let filters: Vec<(&str, ListFilter, Option<String>)> = vec![
        ("first page", ListFilter::default(), None),
        (
            "page 200 (cursor)",
            ListFilter::default(),
            cursor_deep.clone(),
        ),
        ("status = succeeded", succeeded.clone(), None),
        (
            "status = running,cancelling",
            ListFilter {
                statuses: vec![Status::Running, Status::Cancelling],
                ..ListFilter::default()
            },
            None,
        ),
        (
            "status = queued, created in the last hour",
            ListFilter {
                statuses: vec![Status::Queued],
                ..window(TimeField::Created, hour_ago, None)
            },
            None,
        ),
        (
            "created in the last hour",
            window(TimeField::Created, hour_ago, None),
            None,
        ),
        (
            "started in the last hour",
            window(TimeField::Started, hour_ago, None),
            None,
        ),
        (
            "finished in the last hour",
            window(TimeField::Finished, hour_ago, None),
            None,
        ),
        ("finished in one minute", one_minute.clone(), None),
        (
            "bucket = media",
            ListFilter {
                bucket: Some("media".into()),
                ..ListFilter::default()
            },
            None,
        ),
        (
            "preset = hls-abr",
            ListFilter {
                preset: Some("hls-abr".into()),
                ..ListFilter::default()
            },
            None,
        ),
        // A status with a bucket or a preset: the succeeded jobs sit behind the queued ones
        // the list phase submits last.
        (
            "status = succeeded, bucket = media",
            ListFilter {
                bucket: Some("media".into()),
                ..succeeded.clone()
            },
            None,
        ),
        (
            "status = succeeded, preset = hls-abr",
            ListFilter {
                preset: Some("hls-abr".into()),
                ..succeeded.clone()
            },
            None,
        ),
        (
            "key prefix in/ (every job)",
            ListFilter {
                key_prefix: Some("in/".into()),
                ..ListFilter::default()
            },
            None,
        ),
        (
            "key prefix in/00500 (100 jobs)",
            ListFilter {
                key_prefix: Some("in/00500".into()),
                ..ListFilter::default()
            },
            None,
        ),
    ];
    for (label, f, cursor) in &filters {
        let mut lat = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            store.list(f, 50, cursor.as_deref()).await.expect("list");
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "| list 50 at 100k jobs, {label} | p50 {:.2} ms, p99 {:.2} ms |",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    let counted: Vec<(&str, ListFilter)> = vec![
        ("unfiltered (tabs, metrics)", ListFilter::default()),
        (
            "created in the last hour",
            window(TimeField::Created, hour_ago, None),
        ),
        ("finished in one minute (stats)", one_minute),
    ];
    for (label, f) in &counted {
        let mut lat = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            store.counts(f).await.expect("counts");
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "| counts by status at 100k jobs, {label} | p50 {:.2} ms, p99 {:.2} ms |",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let which = std::env::var("BENCH_STORE").unwrap_or_else(|_| "sqlite,postgres".into());
        let jobs: usize = std::env::var("BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        println!("{jobs} jobs per phase; 2-core machine; medians of nothing — one pass each, percentiles over every call");
        if which.contains("sqlite") {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let store = ffarm::store::open(&url).await.expect("open sqlite");
            bench("SQLite (WAL, synchronous=FULL for submits)", store, jobs).await;
        }
        if which.contains("postgres") {
            let admin = std::env::var("FFARM_BENCH_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let db = format!("ffarm_bench_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}"))).execute(&mut conn).await.expect("drop");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut conn).await.expect("create");
            // The same server, user and parameters (`?sslmode=…`), the benchmark's database.
            let (base, params) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
            let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
            let url = if params.is_empty() { format!("{base}/{db}") } else { format!("{base}/{db}?{params}") };
            let store = ffarm::store::open(&url).await.expect("open postgres");
            if let Ok(sql) = std::env::var("BENCH_PG_SQL") {
                let mut db_conn = sqlx::PgConnection::connect(&url).await.expect("bench database");
                for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.to_owned())).execute(&mut db_conn).await.expect(stmt);
                    println!("ran on the bench database: {stmt}");
                }
            }
            bench("PostgreSQL 15 (synchronous_commit=on for submits and finishes)", store, jobs).await;
            if std::env::var_os("BENCH_KEEP_DB").is_some() {
                println!("kept for inspection: {url}");
                return;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
                .execute(&mut conn)
                .await
                .expect("drop");
        }
    });
}
