//! Output owners over both backends: an attempt reserves the keys it will upload; another
//! input's keys are refused (all or nothing) unless the job says overwrite; the same input
//! (a retry, a new version) takes its keys over; reservations are fenced by the attempt;
//! a released or failed attempt frees its keys; concurrent reservations of one key by two
//! inputs let exactly one through; outputs written before the table existed are owned.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ffarm::job::{Job, JobError, ObjectRef, Outcome, OutputObject, Status};
use ffarm::store::{JobStore, OutputConflict, Reservation, StoreError};
use sqlx::Connection;

use crate::helpers::spec;
use crate::store_harness::{conformance, empty_postgres};

const LEASE: Duration = Duration::from_secs(30);

/// A running job on `input_key` writing under `out/`.
async fn running(s: &dyn JobStore, input_key: &str, overwrite: bool) -> Job {
    let mut sp = spec(input_key);
    sp.overwrite = overwrite;
    // Ahead of any job waiting out a retry's backoff.
    sp.priority = 10;
    let id = s.submit(None, sp).await.unwrap().job.id;
    claim(s, &id).await
}

/// Claims until `id` is claimed (its backoff may still run).
async fn claim(s: &dyn JobStore, id: &str) -> Job {
    for _ in 0..200 {
        if let Some(job) = s.claim("w/1", LEASE).await.unwrap() {
            assert_eq!(job.id, id, "the job under test is claimed first");
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} was never claimable");
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("out/{n}")).collect()
}

async fn reserve(s: &dyn JobStore, job: &Job, names: &[&str]) -> Reservation {
    s.reserve_outputs(&job.id, job.attempt, &keys(names))
        .await
        .unwrap()
}

/// The conflict a reservation answered.
#[track_caller]
fn conflict(r: Reservation) -> OutputConflict {
    match r {
        Reservation::Conflict(c) => c,
        Reservation::Reserved => panic!("reserved, expected a conflict"),
    }
}

async fn succeed(s: &dyn JobStore, job: &Job, names: &[&str]) {
    let outputs = keys(names)
        .into_iter()
        .map(|key| OutputObject {
            bucket: "media".into(),
            key,
            bytes: 1,
            check: None,
        })
        .collect();
    s.finish(&job.id, job.attempt, Outcome::Succeeded { outputs })
        .await
        .unwrap();
}

async fn another_inputs_keys_are_refused_naming_its_job_and_input(s: &dyn JobStore) {
    let first = running(s, "in/x/clip.mp4", false).await;
    assert_eq!(
        reserve(s, &first, &["clip.m3u8", "clip_00000.ts"]).await,
        Reservation::Reserved
    );
    succeed(s, &first, &["clip.m3u8", "clip_00000.ts"]).await;

    // The first key (in the order asked) another input owns is named, and nothing is taken.
    let second = running(s, "in/y/clip.mp4", false).await;
    let c = conflict(reserve(s, &second, &["free.mp4", "clip_00000.ts", "clip.m3u8"]).await);
    let want = OutputConflict {
        bucket: "media".into(),
        key: "out/clip_00000.ts".into(),
        job_id: first.id.clone(),
        input: ObjectRef {
            bucket: "media".into(),
            key: "in/x/clip.mp4".into(),
        },
    };
    assert_eq!(c, want);
    let e = c.job_error();
    assert_eq!((e.code.as_str(), e.retryable), ("output-conflict", false));
    for part in ["media/out/clip_00000.ts", &first.id, "media/in/x/clip.mp4"] {
        assert!(e.message.contains(part), "{part} in {}", e.message);
    }
    s.finish(&second.id, second.attempt, Outcome::Failed(e))
        .await
        .unwrap();
    let third = running(s, "in/z/other.mp4", false).await;
    assert_eq!(
        reserve(s, &third, &["free.mp4"]).await,
        Reservation::Reserved,
        "a refused reservation reserved nothing"
    );
}

async fn the_same_input_takes_its_keys_over(s: &dyn JobStore) {
    let first = running(s, "in/x/clip.mp4", false).await;
    assert_eq!(
        reserve(s, &first, &["clip.mp4"]).await,
        Reservation::Reserved
    );
    succeed(s, &first, &["clip.mp4"]).await;
    // A new version of the same object: another job on the same input.
    let newer = running(s, "in/x/clip.mp4", false).await;
    assert_eq!(
        reserve(s, &newer, &["clip.mp4", "clip.mp4"]).await,
        Reservation::Reserved
    );
    succeed(s, &newer, &["clip.mp4"]).await;
    let other = running(s, "in/y/clip.mp4", false).await;
    let c = conflict(reserve(s, &other, &["clip.mp4"]).await);
    assert_eq!(c.job_id, newer.id, "the latest owner is named");
}

async fn a_retry_takes_over_its_own_keys(s: &dyn JobStore) {
    let job = running(s, "in/x/clip.mp4", false).await;
    assert_eq!(reserve(s, &job, &["clip.mp4"]).await, Reservation::Reserved);
    let e = JobError::new("storage-error", "the bucket timed out", true);
    s.finish(&job.id, 1, Outcome::Failed(e)).await.unwrap();
    // Waiting to run again, the job still holds its key: another input is refused.
    let other = running(s, "in/y/clip.mp4", false).await;
    assert_eq!(
        conflict(reserve(s, &other, &["clip.mp4"]).await).job_id,
        job.id
    );
    s.cancel(&other.id, "test").await.unwrap();
    s.finish(&other.id, other.attempt, Outcome::Cancelled)
        .await
        .unwrap();
    let again = claim(s, &job.id).await;
    assert_eq!(again.attempt, 2);
    assert_eq!(
        reserve(s, &again, &["clip.mp4"]).await,
        Reservation::Reserved
    );
    // Releasing the first attempt gives back nothing the second holds.
    s.release_outputs(&job.id, 1).await.unwrap();
    let late = running(s, "in/z/clip.mp4", false).await;
    assert_eq!(
        conflict(reserve(s, &late, &["clip.mp4"]).await).job_id,
        job.id
    );
}

async fn overwrite_takes_another_inputs_keys(s: &dyn JobStore) {
    let first = running(s, "in/x/clip.mp4", false).await;
    assert_eq!(
        reserve(s, &first, &["clip.mp4"]).await,
        Reservation::Reserved
    );
    succeed(s, &first, &["clip.mp4"]).await;
    let replacing = running(s, "in/y/clip.mp4", true).await;
    assert_eq!(
        reserve(s, &replacing, &["clip.mp4"]).await,
        Reservation::Reserved
    );
    succeed(s, &replacing, &["clip.mp4"]).await;
    // The key is the replacing input's now: the first input is the one refused.
    let back = running(s, "in/x/clip.mp4", false).await;
    let c = conflict(reserve(s, &back, &["clip.mp4"]).await);
    assert_eq!(
        (c.job_id.as_str(), c.input.key.as_str()),
        (replacing.id.as_str(), "in/y/clip.mp4")
    );
}

async fn reservations_are_fenced_by_the_attempt(s: &dyn JobStore) {
    let queued = s.submit(None, spec("in/q.mp4")).await.unwrap().job;
    let err = s
        .reserve_outputs(&queued.id, 0, &keys(&["q.mp4"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    let job = claim(s, &queued.id).await;
    let err = s
        .reserve_outputs(&job.id, job.attempt + 1, &keys(&["q.mp4"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(err.code(), "stale-attempt");
    succeed(s, &job, &[]).await;
    let err = s
        .reserve_outputs(&job.id, job.attempt, &keys(&["q.mp4"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    let err = s
        .reserve_outputs("nope", 1, &keys(&["q.mp4"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    // None of the refused reservations took the key.
    let other = running(s, "in/other/q.mp4", false).await;
    assert_eq!(reserve(s, &other, &["q.mp4"]).await, Reservation::Reserved);
}

async fn released_and_failed_attempts_free_their_keys(s: &dyn JobStore) {
    // Released (the task took its uploads back).
    let a = running(s, "in/a/clip.mp4", false).await;
    assert_eq!(reserve(s, &a, &["a.mp4"]).await, Reservation::Reserved);
    s.release_outputs(&a.id, a.attempt).await.unwrap();
    let e = JobError::new("encode-failed", "broken", false);
    s.finish(&a.id, a.attempt, Outcome::Failed(e.clone()))
        .await
        .unwrap();
    let b = running(s, "in/b/clip.mp4", false).await;
    assert_eq!(reserve(s, &b, &["a.mp4"]).await, Reservation::Reserved);
    succeed(s, &b, &["a.mp4"]).await;
    // Failed for good without a release (its worker could not reach the store then).
    let c = running(s, "in/c/clip.mp4", false).await;
    assert_eq!(reserve(s, &c, &["c.mp4"]).await, Reservation::Reserved);
    s.finish(&c.id, c.attempt, Outcome::Failed(e))
        .await
        .unwrap();
    // Cancelled without a release.
    let d = running(s, "in/d/clip.mp4", false).await;
    assert_eq!(reserve(s, &d, &["d.mp4"]).await, Reservation::Reserved);
    s.cancel(&d.id, "test").await.unwrap();
    s.finish(&d.id, d.attempt, Outcome::Cancelled)
        .await
        .unwrap();
    let f = running(s, "in/f/clip.mp4", false).await;
    assert_eq!(
        reserve(s, &f, &["c.mp4", "d.mp4"]).await,
        Reservation::Reserved
    );
    // A release of one attempt leaves other jobs' keys alone.
    s.release_outputs(&a.id, a.attempt).await.unwrap();
    s.release_outputs("nope", 1).await.unwrap();
    let g = running(s, "in/g/clip.mp4", false).await;
    assert_eq!(conflict(reserve(s, &g, &["a.mp4"]).await).job_id, b.id);
    assert_eq!(conflict(reserve(s, &g, &["d.mp4"]).await).job_id, f.id);
    assert_eq!(s.get(&g.id).await.unwrap().status, Status::Running);
}

async fn concurrent_reservations_of_one_key_let_one_input_through(s: &dyn JobStore) {
    const N: usize = 8;
    for round in 0..3 {
        let mut jobs = Vec::new();
        for i in 0..N {
            let id = s
                .submit(None, spec(&format!("in/{round}-{i}/clip.mp4")))
                .await
                .unwrap()
                .job
                .id;
            jobs.push(claim(s, &id).await);
        }
        let names = [format!("r{round}.m3u8"), format!("r{round}_00000.ts")];
        let answers = futures_util::future::join_all(jobs.iter().map(|job| {
            let keys: Vec<String> = names.iter().map(|n| format!("out/{n}")).collect();
            async move { s.reserve_outputs(&job.id, job.attempt, &keys).await }
        }))
        .await;
        let won: Vec<&Job> = jobs
            .iter()
            .zip(&answers)
            .filter(|(_, a)| matches!(a, Ok(Reservation::Reserved)))
            .map(|(j, _)| j)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {answers:?}");
        for answer in &answers {
            match answer {
                Ok(Reservation::Reserved) => {}
                Ok(Reservation::Conflict(c)) => assert_eq!(c.job_id, won[0].id),
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        for job in &jobs {
            succeed(s, job, &[]).await;
        }
    }
}

conformance!(
    another_inputs_keys_are_refused_naming_its_job_and_input,
    the_same_input_takes_its_keys_over,
    a_retry_takes_over_its_own_keys,
    overwrite_takes_another_inputs_keys,
    reservations_are_fenced_by_the_attempt,
    released_and_failed_attempts_free_their_keys,
    concurrent_reservations_of_one_key_let_one_input_through,
);

/// The migrations of `backend` before `first_new`, in a directory of their own.
fn migrations_before(backend: &str, first_new: &str) -> tempfile::TempDir {
    let dir = crate::helpers::tempdir();
    let all = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < first_new {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

/// A succeeded job as a SQLite store from before the owners table left it.
const SUCCEEDED_BEFORE: &str = "INSERT INTO jobs (id, status, input_bucket, input_key, \
    preset, output_bucket, output_prefix, max_attempts, timeout_seconds, outputs, attempt, \
    created_at, updated_at, finished_at) VALUES ('old', 'succeeded', 'media', 'in/x/clip.mp4', \
    'h264-720p', 'media', 'out/', 3, 60, \
    '[{\"bucket\":\"media\",\"key\":\"out/clip.mp4\",\"bytes\":5}]', 1, 1, 2, 2)";

/// Outputs written before the owners table existed belong to their job after the upgrade.
async fn outputs_from_before_are_owned_after_the_upgrade(store: Arc<dyn JobStore>) {
    let s = &*store;
    let job = running(s, "in/y/clip.mp4", false).await;
    let c = conflict(reserve(s, &job, &["clip.mp4"]).await);
    assert_eq!(
        (c.job_id.as_str(), c.input.key.as_str()),
        ("old", "in/x/clip.mp4")
    );
    assert_eq!(
        reserve(s, &job, &["other.mp4"]).await,
        Reservation::Reserved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_outputs_from_before_are_owned_after_the_upgrade() {
    let dir = crate::helpers::tempdir();
    let url = format!("sqlite://{}", dir.path().join("ffarm.db").display());
    let migrations = migrations_before("sqlite", "0005");
    let options = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap();
    let mut conn = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(migrations.path())
        .await
        .unwrap();
    migrator.run(&mut conn).await.unwrap();
    sqlx::raw_sql(SUCCEEDED_BEFORE)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    outputs_from_before_are_owned_after_the_upgrade(ffarm::store::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outputs_from_before_are_owned_after_the_upgrade() {
    let (url, _dropped) = empty_postgres().await;
    let migrations = migrations_before("postgres", "0009");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let migrator = sqlx::migrate::Migrator::new(migrations.path())
        .await
        .unwrap();
    migrator.run(&mut conn).await.unwrap();
    let spec = "INSERT INTO job_specs (id, input_bucket, input_key, preset, output_bucket, \
        output_prefix, priority, max_attempts, timeout_seconds, created_at) VALUES ('old', \
        'media', 'in/x/clip.mp4', 'h264-720p', 'media', 'out/', 0, 3, 60, 1)";
    let state = "INSERT INTO job_states (id, status, priority, created_at, outputs, attempt, \
        updated_at, finished_at) VALUES ('old', 'succeeded', 0, 1, \
        '[{\"bucket\":\"media\",\"key\":\"out/clip.mp4\",\"bytes\":5}]', 1, 2, 2)";
    for sql in [spec, state] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    outputs_from_before_are_owned_after_the_upgrade(ffarm::store::open(&url).await.unwrap()).await;
}
