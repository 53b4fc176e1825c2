//! A write either happens whole or not at all: SQLite's writer commits many operations in one
//! transaction, and one that fails midway must leave none of its writes in it, while the
//! others of the batch commit and are announced.

use std::time::Duration;

use ffarm::store::Change;

use crate::helpers::spec;
use crate::store_harness::TestStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_write_that_fails_midway_leaves_nothing_and_spares_its_batch() {
    let ts = TestStore::sqlite().await;
    let s = &ts.store;
    let id = s.submit(None, spec("in/a.mp4")).await.unwrap().job.id;
    let job = s
        .claim("w/1", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // A failure the store cannot foresee (as a full disk would be), injected as a trigger on
    // the log table: the line "boom" cannot be written.
    ts.execute(
        "CREATE TRIGGER injected_failure BEFORE INSERT ON job_logs WHEN NEW.line = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .await;
    // The store writes lines 200 at a time: the first 200 are in when the failure comes.
    let mut lines: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
    lines[240] = "boom".into();
    let mut changes = s.subscribe();
    let (logged, beside) = tokio::join!(
        s.append_logs(&id, job.attempt, &lines),
        s.submit(Some("beside".into()), spec("in/b.mp4"))
    );
    let err = logged.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(beside.unwrap().created);
    assert_eq!(s.get("beside").await.unwrap().id, "beside");
    assert!(
        s.logs(&id, Some(job.attempt), 0, 1000)
            .await
            .unwrap()
            .is_empty(),
        "none of the failed write's lines were kept"
    );
    assert_eq!(s.attempts(&id).await.unwrap()[0].log_lines, 0);
    let announced = tokio::time::timeout(Duration::from_secs(1), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(announced, Change::Status { id, .. } if id == "beside"));
    // The attempt's log goes on from where it was.
    s.append_logs(&id, job.attempt, &["after".into()])
        .await
        .unwrap();
    let kept = s.logs(&id, Some(job.attempt), 0, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(s.attempts(&id).await.unwrap()[0].log_lines, 1);
}
