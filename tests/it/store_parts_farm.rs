//! Split jobs and the farm, over both backends: the room `capacity` reports, scratch due for
//! removal and forgotten once (never for a job that runs again), and claims from many tasks
//! over two stores that never hand out a part twice nor run more of a job's parts than its
//! max_parallel.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ffarm::job::{Outcome, Scratch};
use ffarm::store::JobStore;

use crate::helpers::spec;
use crate::store_harness::{TestStore, conformance, with_test_store};
use crate::store_parts::{LEASE, claim, fail_at, register, running, split_job, tens};

async fn capacity_counts_slots_jobs_and_parts(s: &dyn JobStore) {
    register(s, "w1", 2, false).await;
    register(s, "w2", 3, false).await;
    register(s, "w3", 4, true).await;
    let job = split_job(s, "cap.mp4", &tens(3), 0).await;
    s.submit(None, spec("waiting.mp4")).await.unwrap();
    claim(s, "w1").await;
    let c = s.capacity().await.unwrap();
    assert_eq!((c.slots, c.busy, c.queued_jobs), (5, 1, 1), "{c:?}");
    assert_eq!((c.queued_parts, c.running_parts), (2, 1), "{c:?}");
    s.claim("w2", LEASE).await.unwrap().unwrap();
    let c = s.capacity().await.unwrap();
    assert_eq!((c.busy, c.queued_jobs), (2, 0), "{c:?} of {}", job.id);
}

async fn scratch_is_due_when_the_job_ends_and_forgotten_once(s: &dyn JobStore) {
    let job = running(s, "s.mp4", |_| {}).await;
    fail_at(s, &job, "v1", 2, 1).await;
    let hour = Duration::from_secs(3600);
    assert!(
        s.scratch_due(hour, 10).await.unwrap().is_empty(),
        "failed: kept"
    );
    let due = s.scratch_due(Duration::ZERO, 10).await.unwrap();
    assert_eq!(due, [(job.id.clone(), Scratch::of("media", &job.id))]);
    s.retry(&job.id).await.unwrap();
    assert!(
        !s.forget_scratch(&job.id).await.unwrap(),
        "a retried job keeps its parts"
    );
    assert!(s.scratch_due(Duration::ZERO, 10).await.unwrap().is_empty());
    let job = s.claim("planner", LEASE).await.unwrap().unwrap();
    assert!(
        !s.forget_scratch(&job.id).await.unwrap(),
        "nor a running one"
    );
    s.finish(&job.id, job.attempt, Outcome::Succeeded { outputs: vec![] })
        .await
        .unwrap();
    assert_eq!(
        s.scratch_due(hour, 10).await.unwrap().len(),
        1,
        "succeeded: at once"
    );
    assert!(s.forget_scratch(&job.id).await.unwrap());
    assert!(!s.forget_scratch(&job.id).await.unwrap(), "once");
    assert!(
        !s.parts(&job.id).await.unwrap().is_empty(),
        "the parts stay, as the job's history"
    );
    assert_eq!(s.split_plan(&job.id).await.unwrap(), None);
    assert!(s.scratch_due(Duration::ZERO, 10).await.unwrap().is_empty());
}

conformance!(
    capacity_counts_slots_jobs_and_parts,
    scratch_is_due_when_the_job_ends_and_forgotten_once,
);

mod concurrent {
    use super::*;

    /// Many tasks on two stores over the same data claim at once: every part goes out once,
    /// and a job's max_parallel holds.
    async fn concurrent_claims_never_hand_out_a_part_twice(t: TestStore) {
        let stores: Vec<Arc<dyn JobStore>> = vec![t.store.clone(), t.another().await];
        let wide = split_job(&*t.store, "wide.mp4", &tens(40), 0).await;
        let narrow = split_job(&*t.store, "narrow.mp4", &tens(20), 5).await;
        let claims = (0..24).map(|i| {
            let s = stores[i % 2].clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(c) = s.claim_part(&format!("w{i}"), LEASE).await.unwrap() {
                    got.push((c.job.id, c.part.seq));
                }
                got
            })
        });
        let mut all = Vec::new();
        for c in futures_util::future::join_all(claims).await {
            all.extend(c.unwrap());
        }
        let distinct: BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!(distinct.len(), all.len(), "a part handed out twice");
        let count = |id: &str| all.iter().filter(|(j, _)| j == id).count();
        assert_eq!((count(&wide.id), count(&narrow.id)), (40, 5));
    }

    with_test_store!(concurrent_claims_never_hand_out_a_part_twice);
}
