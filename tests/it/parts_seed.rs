//! Split jobs made through the store's own API, for the tests of what an operator sees of
//! them (`ffarm show`, the web page): a job claimed and split into video parts of given
//! lengths plus its audio and assembly, and parts taken, advanced and ended by named
//! workers, exactly as workers would.

use std::time::Duration;

use ffarm::job::{
    Chunking, Job, JobError, Part, PartKind, PartOutcome, PartPlan, Scratch, SplitPlan,
};
use ffarm::progress::{Phase, Progress};
use ffarm::store::JobStore;

use crate::helpers::spec;

/// Long enough that no lease runs out while a test looks at its parts.
const LEASE: Duration = Duration::from_secs(900);

/// The plan of job `id`: video parts of `lengths` seconds one after another, then the audio
/// over the whole input, then the assembly waiting on all of them.
pub fn plan(id: &str, lengths: &[f64]) -> SplitPlan {
    let us = |s: f64| (s * 1e6).round() as i64;
    let mut parts = Vec::new();
    let mut start = 0.0;
    for (seq, length) in (0u32..).zip(lengths) {
        parts.push(PartPlan {
            seq,
            kind: PartKind::Video,
            start_us: us(start),
            end_us: us(start + length),
            after: vec![],
        });
        start += length;
    }
    let video = lengths.len() as u32;
    let whole = |seq, kind, after| PartPlan {
        seq,
        kind,
        start_us: 0,
        end_us: us(start),
        after,
    };
    parts.push(whole(video, PartKind::Audio, vec![]));
    parts.push(whole(video + 1, PartKind::Assemble, (0..=video).collect()));
    SplitPlan {
        parts,
        scratch: Scratch::of("media", id),
        input_version: "etag-1".into(),
        max_parallel: 0,
        detail: serde_json::Value::Null,
    }
}

/// Submits job `id` (at `priority`), claims it as worker `planner/1` and splits it by
/// [`plan`]. The claim must get this job: give it the highest priority of the queued ones.
pub async fn split(store: &dyn JobStore, id: &str, priority: i32, lengths: &[f64]) -> Job {
    let spec = ffarm::job::JobSpec {
        priority,
        chunking: Chunking::Segments {
            segment_seconds: 30,
        },
        ..spec(&format!("in/{id}.mp4"))
    };
    store.submit(Some(id.into()), spec).await.unwrap();
    let job = store.claim("planner/1", LEASE).await.unwrap().unwrap();
    assert_eq!(job.id, id, "the claim took another job");
    store
        .split(id, job.attempt, &plan(id, lengths))
        .await
        .unwrap()
}

/// Worker `worker` takes the next part, which must be part `seq` of job `id`.
pub async fn take(store: &dyn JobStore, worker: &str, id: &str, seq: u32) -> Part {
    let claimed = store.claim_part(worker, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (claimed.part.job_id.as_str(), claimed.part.seq),
        (id, seq),
        "the claim took another part"
    );
    claimed.part
}

/// The part reports that it is `percent` through its encode.
pub async fn advance(store: &dyn JobStore, part: &Part, percent: f64) {
    let progress = Progress {
        phase: Phase::Transcoding,
        percent,
        fps: Some(50.0),
        speed: Some(2.0),
        ..Progress::default()
    };
    store
        .heartbeat_part(&part.job_id, part.seq, part.attempt, LEASE, Some(&progress))
        .await
        .unwrap();
}

/// The part ends well.
pub async fn succeed(store: &dyn JobStore, part: &Part) -> Job {
    let outcome = PartOutcome::Succeeded {
        result: serde_json::json!({"files": [format!("parts/{}/v.h264", part.seq)]}),
        outputs: vec![],
    };
    store
        .finish_part(&part.job_id, part.seq, part.attempt, outcome)
        .await
        .unwrap()
}

/// The part fails for good with `code`, which fails its job.
pub async fn fail(store: &dyn JobStore, part: &Part, code: &str) -> Job {
    let error = JobError::new(code, "the encoder refused the frame", false);
    store
        .finish_part(
            &part.job_id,
            part.seq,
            part.attempt,
            PartOutcome::Failed(error),
        )
        .await
        .unwrap()
}

/// The two jobs the page and `ffarm show` are tested on:
/// - `split-bad` (3 video parts of 30 s): part 0 succeeded on `w-a/1`, part 1 failed on
///   `w-b/1` with `encode-failed`, which failed the job and cancelled the rest;
/// - `split-run` (video parts of 30, 30, 30, 30, 30 and 15 s): parts 0 and 1 succeeded (on
///   `w-a/1` and `w-b/1`), part 2 running at 40 % on `w-c/1`, part 3 at 75 % on `w-a/1`,
///   parts 4 and 5, the audio and the assembly queued.
///
/// Returns `split-run`'s parts 2 and 3, for a test to move on.
pub async fn seed(store: &dyn JobStore) -> (Part, Part) {
    split(store, "split-bad", 5, &[30.0, 30.0, 30.0]).await;
    // The audio is claimed first; a worker holds it while the video parts are dealt out,
    // then hands it back (queued again, the attempt not counted).
    let audio = take(store, "w-d/1", "split-bad", 3).await;
    let first = take(store, "w-a/1", "split-bad", 0).await;
    succeed(store, &first).await;
    let second = take(store, "w-b/1", "split-bad", 1).await;
    release(store, &audio).await;
    let failed = fail(store, &second, "encode-failed").await;
    assert_eq!(failed.status, ffarm::job::Status::Failed);

    split(store, "split-run", 0, &[30.0, 30.0, 30.0, 30.0, 30.0, 15.0]).await;
    let audio = take(store, "w-d/1", "split-run", 6).await;
    for (seq, worker) in [(0, "w-a/1"), (1, "w-b/1")] {
        let part = take(store, worker, "split-run", seq).await;
        succeed(store, &part).await;
    }
    let running = take(store, "w-c/1", "split-run", 2).await;
    advance(store, &running, 40.0).await;
    let later = take(store, "w-a/1", "split-run", 3).await;
    advance(store, &later, 75.0).await;
    release(store, &audio).await;
    (running, later)
}

/// The worker hands the part back unfinished (as a draining worker does).
async fn release(store: &dyn JobStore, part: &Part) {
    store
        .finish_part(&part.job_id, part.seq, part.attempt, PartOutcome::Released)
        .await
        .unwrap();
}
