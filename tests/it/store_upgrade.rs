//! PostgreSQL: a farm's database from before a job's state had a table of its own (migrations
//! up to 0006) keeps every job whole through the upgrade, and its jobs go on from where they
//! were: a running job's worker keeps its attempt, the queue keeps its order.

use std::time::Duration;

use ffarm::job::{Job, JobError, ObjectRef, Outcome, OutputObject, Status, Trigger};
use ffarm::progress::Progress;
use ffarm::store::{JobStore, ListFilter};
use sqlx::Connection;

use crate::helpers::spec;
use crate::store_harness::{TestStore, empty_postgres};

const LEASE: Duration = Duration::from_secs(30);

/// Jobs in every kind of state, with every optional field set somewhere, as the current store
/// leaves them.
async fn jobs_of_every_kind(s: &dyn JobStore) -> Vec<Job> {
    let mut rich = spec("in/rich.mp4");
    rich.priority = 5;
    rich.on_success = Some("https://hooks.example/ok".into());
    rich.on_failure = Some("https://hooks.example/failed".into());
    rich.trigger = Some(Trigger {
        source: "s3".into(),
        payload: serde_json::json!({"Records": [{"s3": {"object": {"key": "in/rich.mp4"}}}]}),
    });
    let submitted = [
        ("j-succeeded", rich.clone()),
        ("j-failed", spec("in/failed.mp4")),
        ("j-running", rich),
        ("j-queued", spec("in/queued.mp4")),
    ];
    let mut ids = Vec::new();
    for (id, spec) in submitted {
        ids.push(s.submit(Some(id.into()), spec).await.unwrap().job.id);
    }
    let claim = || s.claim("w/old", LEASE);
    let a = claim().await.unwrap().unwrap();
    let b = claim().await.unwrap().unwrap();
    let c = claim().await.unwrap().unwrap();
    let outputs = vec![OutputObject {
        bucket: "media".into(),
        key: "out/rich.mp4".into(),
        bytes: 1234,
        check: None,
    }];
    for job in [&a, &b, &c] {
        match job.id.as_str() {
            "j-succeeded" => {
                let outputs = outputs.clone();
                s.finish(&job.id, job.attempt, Outcome::Succeeded { outputs })
                    .await
                    .unwrap();
            }
            "j-failed" => {
                let e = JobError::new("input-unreadable", "moov atom not found", false);
                s.finish(&job.id, job.attempt, Outcome::Failed(e))
                    .await
                    .unwrap();
            }
            _ => {
                let progress = Progress {
                    percent: 42.5,
                    fps: Some(88.0),
                    ..Progress::default()
                };
                s.heartbeat(&job.id, job.attempt, LEASE, Some(&progress))
                    .await
                    .unwrap();
            }
        }
    }
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(s.get(&id).await.unwrap());
    }
    jobs
}

/// Writes `jobs` into a database on the schema of migrations 0001–0006, row by row.
async fn old_database_with(url: &str, jobs: &[Job]) {
    let dir = crate::helpers::tempdir();
    let migrations = format!("{}/migrations/postgres", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0007" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    for j in jobs {
        sqlx::query(
            "INSERT INTO jobs (id, status, input_bucket, input_key, preset, output_bucket, \
             output_prefix, priority, max_attempts, timeout_seconds, on_success, on_failure, \
             trigger, outputs, progress, error, attempt, retry_base, worker, last_reason, \
             created_at, updated_at, started_at, finished_at, run_after, lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, 0, $18, 'as it was', $19, $20, $21, $22, $23, $24)",
        )
        .bind(&j.id)
        .bind(j.status.as_str())
        .bind(&j.input.bucket)
        .bind(&j.input.key)
        .bind(&j.preset)
        .bind(&j.output.bucket)
        .bind(&j.output.prefix)
        .bind(j.priority)
        .bind(i64::from(j.max_attempts))
        .bind(j.timeout_seconds as i64)
        .bind(&j.on_success)
        .bind(&j.on_failure)
        .bind(j.trigger.as_ref().map(json))
        .bind(json(&j.outputs))
        .bind(j.progress.as_ref().map(json))
        .bind(j.error.as_ref().map(json))
        .bind(i64::from(j.attempt))
        .bind(&j.worker)
        .bind(j.created_at.0)
        .bind(j.updated_at.0)
        .bind(j.started_at.map(|t| t.0))
        .bind(j.finished_at.map(|t| t.0))
        .bind(j.run_after.map_or(0, |t| t.0))
        .bind(j.lease_expires_at.map(|t| t.0))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// A JSON column as the store writes it.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_stored_before_the_state_had_its_own_table_come_through_whole() {
    let current = TestStore::postgres().await;
    let before = jobs_of_every_kind(&*current.store).await;
    current.cleanup().await;

    let (url, _dropped) = empty_postgres().await;
    old_database_with(&url, &before).await;
    let store = ffarm::store::open(&url).await.unwrap();
    for job in &before {
        assert_eq!(&store.get(&job.id).await.unwrap(), job, "job {}", job.id);
    }
    let page = store.list(&ListFilter::default(), 10, None).await.unwrap();
    let mut ids: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["j-failed", "j-queued", "j-running", "j-succeeded"]);
    let succeeded = ListFilter {
        statuses: vec![Status::Succeeded],
        ..ListFilter::default()
    };
    let page = store.list(&succeeded, 10, None).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].id, "j-succeeded");

    // The running job's worker goes on with its attempt; anyone else's is refused.
    let running = before.iter().find(|j| j.id == "j-running").unwrap();
    let beat = store
        .heartbeat(&running.id, running.attempt, LEASE, None)
        .await
        .unwrap();
    assert!(!beat.stop_requested);
    assert!(
        store
            .heartbeat(&running.id, running.attempt + 1, LEASE, None)
            .await
            .is_err()
    );
    let done = store
        .finish(
            &running.id,
            running.attempt,
            Outcome::Succeeded { outputs: vec![] },
        )
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    // The queue still holds the queued job, and its history carries on.
    let next = store.claim("w/new", LEASE).await.unwrap().unwrap();
    assert_eq!(next.id, "j-queued");
    assert_eq!(
        next.input,
        ObjectRef {
            bucket: "media".into(),
            key: "in/queued.mp4".into(),
        }
    );
    let events = store.events(&next.id).await.unwrap();
    assert_eq!(events.last().map(|e| e.to), Some(Some(Status::Running)));
    let counts = store.counts(&ListFilter::default()).await.unwrap();
    assert_eq!(counts[&Status::Succeeded], 2);
    assert_eq!(counts[&Status::Running], 1);
}
