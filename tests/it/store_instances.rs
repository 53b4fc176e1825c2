//! Several stores over the same data, as separate processes or machines open it: claimers on
//! different instances (and in another process) never share a job, cancel racing finish across
//! instances ends in one terminal state, a transition decided on a row that then moved is
//! decided again, and notifications reach another instance at once.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::job::{Job, JobError, Outcome, Status};
use ffarm::store::{Change, JobStore, StoreError};

use crate::helpers::spec;
use crate::store_harness::{TestStore, submit_together, with_test_store};

const LEASE: Duration = Duration::from_secs(30);

/// Claims and finishes until the queue is empty: (job id, attempt) for every claim, and every
/// finish that was refused. Each job takes a millisecond between its claim and its finish, as
/// a worker's would take its work: without it one process's writer, committing back to back,
/// can hold SQLite's file lock from the other's first claim to the empty queue.
async fn drain(store: Arc<dyn JobStore>, worker: String) -> (Vec<(String, u32)>, Vec<String>) {
    let (mut claimed, mut refused) = (Vec::new(), Vec::new());
    while let Some(job) = store.claim(&worker, LEASE).await.unwrap() {
        claimed.push((job.id.clone(), job.attempt));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let done = Outcome::Succeeded { outputs: vec![] };
        if let Err(e) = store.finish(&job.id, job.attempt, done).await {
            refused.push(format!("{}: {e}", job.id));
        }
    }
    (claimed, refused)
}

/// Three instances with four claimers each, over many rounds: every job is claimed exactly
/// once, at attempt 1, and every finish is accepted. On PostgreSQL the instances' claim
/// statements run at the same time, so FOR UPDATE SKIP LOCKED is what keeps them apart; on
/// SQLite each instance has its own writer and the file lock serializes them.
async fn claimers_on_separate_instances_never_share_a_job(ts: TestStore) {
    let mut stores = vec![ts.store.clone()];
    for _ in 0..2 {
        stores.push(ts.another().await);
    }
    for round in 0..25 {
        let keys = (0..150).map(|i| format!("in/r{round}-{i}.mp4"));
        let ids: HashSet<String> = submit_together(&stores, keys)
            .await
            .into_iter()
            .map(|j| j.id)
            .collect();
        let claimers = stores
            .iter()
            .enumerate()
            .flat_map(|(n, s)| (0..4).map(move |w| drain(s.clone(), format!("host-{n}/{w}"))));
        let mut claimed = Vec::new();
        for (mine, refused) in futures_util::future::join_all(claimers).await {
            assert!(
                refused.is_empty(),
                "round {round}: {} refused, first {:?}",
                refused.len(),
                refused.first()
            );
            claimed.extend(mine);
        }
        let unique: HashSet<String> = claimed.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(
            claimed.len(),
            unique.len(),
            "round {round}: a job was claimed twice"
        );
        assert_eq!(unique, ids, "round {round}: every job claimed once");
        assert!(
            claimed.iter().all(|(_, attempt)| *attempt == 1),
            "round {round}: a second attempt means a second claim"
        );
    }
}

/// The three endings a worker reports while a cancel races it.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Success,
    Retryable,
    Final,
}

impl Ending {
    const ALL: [Ending; 3] = [Ending::Success, Ending::Retryable, Ending::Final];

    fn outcome(self) -> Outcome {
        match self {
            Ending::Success => Outcome::Succeeded { outputs: vec![] },
            Ending::Retryable => Outcome::Failed(JobError::new(
                "storage-timeout",
                "the bucket timed out",
                true,
            )),
            Ending::Final => Outcome::Failed(JobError::new("input-unreadable", "broken", false)),
        }
    }
}

/// What a call answered: the job's status, or the error's code.
type Answer = Result<Status, String>;

fn status_of(r: &Result<Job, StoreError>) -> Answer {
    r.as_ref()
        .map(|j| j.status)
        .map_err(|e| e.code().to_string())
}

/// Checks what a cancel and a finish that raced each other answered and left behind: one
/// terminal state, one terminal event, and answers that agree with the order they landed in.
async fn check_race(s: &dyn JobStore, id: &str, ending: Ending, cancel: Answer, finish: Answer) {
    let end = s.get(id).await.unwrap().status;
    let context = format!("{ending:?}: cancel {cancel:?}, finish {finish:?}, end {end}");
    let terminal_events = s
        .events(id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.to.is_some_and(|t| t.is_terminal()))
        .count();
    assert_eq!(terminal_events, 1, "{context}: one terminal transition");
    let illegal = Err("illegal-transition".to_string());
    match ending {
        // Finished first: the cancel comes too late. Cancelled first: the task completed
        // before the stop landed, so it succeeded all the same.
        Ending::Success => {
            assert_eq!(end, Status::Succeeded, "{context}");
            assert_eq!(finish, Ok(Status::Succeeded), "{context}");
            assert!(
                cancel == Ok(Status::Cancelling) || cancel == illegal,
                "{context}"
            );
        }
        // Finished first: back in the queue, then cancelled at once. Cancelled first: the
        // failure confirms the stop.
        Ending::Retryable => {
            assert_eq!(end, Status::Cancelled, "{context}");
            let finish_first = finish == Ok(Status::Queued) && cancel == Ok(Status::Cancelled);
            let cancel_first = cancel == Ok(Status::Cancelling) && finish == Ok(Status::Cancelled);
            assert!(finish_first || cancel_first, "{context}");
        }
        Ending::Final => {
            let finish_first =
                finish == Ok(Status::Failed) && cancel == illegal && end == Status::Failed;
            let cancel_first = cancel == Ok(Status::Cancelling)
                && finish == Ok(Status::Cancelled)
                && end == Status::Cancelled;
            assert!(finish_first || cancel_first, "{context}");
        }
    }
}

/// A cancel on one instance races the worker's finish on another, for each kind of ending,
/// over many rounds.
async fn cancel_racing_finish_across_instances(ts: TestStore) {
    let (worker, api) = (ts.store.clone(), ts.another().await);
    for round in 0..45 {
        let ending = Ending::ALL[round % 3];
        let id = worker
            .submit(None, spec(&format!("in/race{round}.mp4")))
            .await
            .unwrap()
            .job
            .id;
        let job = worker.claim("w/1", LEASE).await.unwrap().unwrap();
        let (cancel, finish) = tokio::join!(
            api.cancel(&id, "stop"),
            worker.finish(&id, job.attempt, ending.outcome())
        );
        check_race(
            &*worker,
            &id,
            ending,
            status_of(&cancel),
            status_of(&finish),
        )
        .await;
    }
}

/// Waits until `n` sessions of this database wait for a lock.
async fn lock_waiters(conn: &mut sqlx::PgConnection, n: i64) {
    let started = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{waiting} of {n} sessions waiting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// PostgreSQL: a cancel and a finish on two instances both read the job as running and
/// decide from that, while another session holds the row; both updates then wait for it. When
/// it is released, the first to have asked applies and the second finds the row moved: its
/// guarded update matches nothing, and it is decided again from the new state, as the second
/// of the two would have been had they not overlapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_transition_on_a_row_that_moved_is_decided_again() {
    use sqlx::Connection;
    let ts = TestStore::postgres().await;
    let (worker, api) = (ts.store.clone(), ts.another().await);
    let mut holder = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    let mut watcher = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    for cancel_first in [true, false] {
        for ending in Ending::ALL {
            let id = worker
                .submit(
                    None,
                    spec(&format!("in/moved-{cancel_first}-{ending:?}.mp4")),
                )
                .await
                .unwrap()
                .job
                .id;
            let job = worker.claim("w/1", LEASE).await.unwrap().unwrap();
            let mut tx = holder.begin().await.unwrap();
            sqlx::query("SELECT 1 FROM job_states WHERE id = $1 FOR UPDATE")
                .bind(&id)
                .execute(&mut *tx)
                .await
                .unwrap();
            let cancel = {
                let (api, id) = (api.clone(), id.clone());
                async move { api.cancel(&id, "stop").await }
            };
            let finish = {
                let (worker, id) = (worker.clone(), id.clone());
                async move { worker.finish(&id, job.attempt, ending.outcome()).await }
            };
            // The first one spawned queues first for the row.
            let (first, second) = if cancel_first {
                let c = tokio::spawn(cancel);
                lock_waiters(&mut watcher, 1).await;
                let f = tokio::spawn(finish);
                lock_waiters(&mut watcher, 2).await;
                (c, f)
            } else {
                let f = tokio::spawn(finish);
                lock_waiters(&mut watcher, 1).await;
                let c = tokio::spawn(cancel);
                lock_waiters(&mut watcher, 2).await;
                (c, f)
            };
            tx.commit().await.unwrap();
            let (cancel, finish) = (first.await.unwrap(), second.await.unwrap());
            let (cancel, finish) = (status_of(&cancel), status_of(&finish));
            check_race(&*worker, &id, ending, cancel.clone(), finish.clone()).await;
            // The order is known here, so the answers are too.
            let context = format!("cancel first {cancel_first}, {ending:?}");
            let events = worker.events(&id).await.unwrap();
            let last = events.last().map(|e| e.reason.clone()).unwrap_or_default();
            match (cancel_first, ending) {
                (true, Ending::Success) => {
                    assert!(last.contains("before the stop landed"), "{context}: {last}")
                }
                (true, _) => assert_eq!(finish, Ok(Status::Cancelled), "{context}"),
                (false, Ending::Retryable) => {
                    assert_eq!(cancel, Ok(Status::Cancelled), "{context}")
                }
                (false, _) => {
                    assert_eq!(cancel, Err("illegal-transition".to_string()), "{context}")
                }
            }
        }
    }
}

/// The child's side of the cross-process test: claims and finishes until the queue is empty,
/// printing each claim. Only runs when started by that test with FFARM_CLAIMER_URL set.
#[test]
#[ignore = "run by the cross-process claim test as its child process"]
fn child_claimer() {
    let Ok(url) = std::env::var("FFARM_CLAIMER_URL") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = ffarm::store::open(&url).await.unwrap();
        // On a line of its own: the test harness has just printed the test's name.
        println!("\nREADY");
        let claimers = (0..4).map(|w| drain(store.clone(), format!("child/{w}")));
        let mut out = std::io::stdout().lock();
        for (claimed, refused) in futures_util::future::join_all(claimers).await {
            for (id, attempt) in claimed {
                let _ = writeln!(out, "CLAIMED {id} {attempt}");
            }
            for r in refused {
                let _ = writeln!(out, "REFUSED {r}");
            }
        }
        let _ = out.flush();
    });
}

/// A second process claims from the same store while this one does, as `ffarm worker` beside
/// `ffarm serve` would (on SQLite: the same file on the same machine). Every job is claimed
/// once, and both processes get some.
async fn claimers_in_another_process_never_share_a_job(ts: TestStore) {
    let keys = (0..1200).map(|i| format!("in/p{i}.mp4"));
    let ids: HashSet<String> = submit_together(std::slice::from_ref(&ts.store), keys)
        .await
        .into_iter()
        .map(|j| j.id)
        .collect();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store_instances::child_claimer",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FFARM_CLAIMER_URL", &ts.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready =
        tokio::task::block_in_place(|| lines.by_ref().map_while(Result::ok).any(|l| l == "READY"));
    assert!(ready, "the child did not open the store");
    let here = (0..4).map(|w| drain(ts.store.clone(), format!("parent/{w}")));
    let here = futures_util::future::join_all(here).await;
    let theirs: Vec<String> = tokio::task::block_in_place(|| lines.map_while(Result::ok).collect());
    assert!(
        child.wait().unwrap().success(),
        "the child failed: {theirs:?}"
    );
    let mut claimed: Vec<(String, u32)> = Vec::new();
    for (mine, refused) in here {
        assert!(
            refused.is_empty(),
            "{} refused here, first {:?}",
            refused.len(),
            refused.first()
        );
        claimed.extend(mine);
    }
    let ours = claimed.len();
    for line in &theirs {
        assert!(!line.starts_with("REFUSED"), "refused in the child: {line}");
        if let Some(rest) = line.strip_prefix("CLAIMED ") {
            let (id, attempt) = rest.split_once(' ').unwrap();
            claimed.push((id.to_string(), attempt.parse().unwrap()));
        }
    }
    let child_claims = claimed.len() - ours;
    assert!(
        ours > 0 && child_claims > 0,
        "both processes claim ({ours} here, {child_claims} in the child)"
    );
    let unique: HashSet<String> = claimed.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(claimed.len(), unique.len(), "a job was claimed twice");
    assert_eq!(unique, ids, "every job claimed once");
    assert!(claimed.iter().all(|(_, attempt)| *attempt == 1));
}

/// Waits for a change about `id` with this status, and says how long it took from `since`.
async fn arrives(
    rx: &mut tokio::sync::broadcast::Receiver<Change>,
    id: &str,
    status: Status,
    since: Instant,
) -> Duration {
    tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match rx.recv().await {
                Ok(Change::Status { id: got, status: s }) if got == id && s == status => {
                    return since.elapsed();
                }
                Ok(_) => {}
                Err(e) => panic!("notifications ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no '{status}' change for {id} within 2 s"))
}

/// A submit and a cancel are announced to a subscriber well under a second after the call:
/// on PostgreSQL to another instance (another API server or worker) through NOTIFY; SQLite
/// announces on its in-process channel, so the subscriber is the same instance.
async fn submits_and_cancels_reach_subscribers_at_once(ts: TestStore) {
    let listener = if ts.is_postgres() {
        ts.another().await
    } else {
        ts.store.clone()
    };
    let mut rx = listener.subscribe();
    let s = &ts.store;
    let limit = Duration::from_millis(300);
    for round in 0..5 {
        let t = Instant::now();
        let id = s
            .submit(None, spec(&format!("in/n{round}.mp4")))
            .await
            .unwrap()
            .job
            .id;
        let took = arrives(&mut rx, &id, Status::Queued, t).await;
        assert!(took < limit, "submit announced after {took:?}");
        let job = s.claim("w/1", LEASE).await.unwrap().unwrap();
        assert_eq!(job.id, id);
        let t = Instant::now();
        s.cancel(&id, "stop").await.unwrap();
        let took = arrives(&mut rx, &id, Status::Cancelling, t).await;
        assert!(took < limit, "stop request announced after {took:?}");
        s.finish(&id, job.attempt, Outcome::Cancelled)
            .await
            .unwrap();
        // A queued job's cancel is final at once, and announced as such.
        let id = s
            .submit(None, spec(&format!("in/q{round}.mp4")))
            .await
            .unwrap()
            .job
            .id;
        let t = Instant::now();
        s.cancel(&id, "stop").await.unwrap();
        let took = arrives(&mut rx, &id, Status::Cancelled, t).await;
        assert!(took < limit, "cancel announced after {took:?}");
    }
}

with_test_store!(
    claimers_on_separate_instances_never_share_a_job,
    cancel_racing_finish_across_instances,
    claimers_in_another_process_never_share_a_job,
    submits_and_cancels_reach_subscribers_at_once,
);

/// Processes started together on a new SQLite file (`ffarm serve` and `ffarm worker`) all
/// open it: the schema is created once and the others find it, and the openers that lose the
/// race to switch the file to WAL (refused by SQLite with SQLITE_BUSY, not made to wait) try
/// again rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_opened_by_several_at_once_on_a_new_file() {
    for round in 0..5 {
        let dir = crate::helpers::tempdir();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let opens = (0..4).map(|_| ffarm::store::open(&url));
        for (i, opened) in futures_util::future::join_all(opens)
            .await
            .into_iter()
            .enumerate()
        {
            let store = opened.unwrap_or_else(|e| panic!("round {round}: open {i}: {e}"));
            store.get("none").await.unwrap_err();
        }
    }
}
