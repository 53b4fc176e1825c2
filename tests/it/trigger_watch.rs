//! The watch folder against real files in a temp dir: what is reported (once, complete, with
//! the right key), what is skipped, start-up pickup, renames, new and moved-in directories,
//! rewrites, the watched directory coming back, and stopping.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ffarm::triggers::watch::{Found, WatchError, WatchOptions, WatchSpec, start};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::tempdir;

const SETTLE: Duration = Duration::from_millis(300);
/// Long enough for any report that is coming (settle + ticks + a loaded machine).
const WITHIN: Duration = Duration::from_secs(3);
/// How long to listen for a report that must not come.
const QUIET: Duration = Duration::from_secs(1);

struct Watch {
    rx: mpsc::Receiver<Found>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Watch {
    async fn start(root: &Path, prefix: &str, exclude: &[&str]) -> Watch {
        Watch::start_settling(root, prefix, exclude, SETTLE).await
    }

    async fn start_settling(
        root: &Path,
        prefix: &str,
        exclude: &[&str],
        settle: Duration,
    ) -> Watch {
        let spec = WatchSpec {
            bucket: "media".into(),
            root: root.to_path_buf(),
            prefix: prefix.into(),
            exclude: exclude.iter().map(|e| e.to_string()).collect(),
        };
        let (tx, rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let options = WatchOptions { settle };
        let task = start(vec![spec], options, tx, stop.clone()).await.unwrap();
        Watch { rx, stop, task }
    }

    /// The next `n` reports (failing after `WITHIN`), then checks nothing more comes for
    /// `QUIET`; sorted by key.
    async fn expect(&mut self, n: usize) -> Vec<(String, u64)> {
        let mut got = Vec::new();
        while got.len() < n {
            match tokio::time::timeout(WITHIN, self.rx.recv()).await {
                Ok(Some(found)) => got.push(found),
                _ => panic!("expected {n} reports, got {got:?}"),
            }
        }
        self.quiet().await;
        assert!(got.iter().all(|f| f.bucket == "media"), "{got:?}");
        let mut got: Vec<(String, u64)> = got.into_iter().map(|f| (f.key, f.size)).collect();
        got.sort();
        got
    }

    async fn quiet(&mut self) {
        if let Ok(found) = tokio::time::timeout(QUIET, self.rx.recv()).await {
            panic!("unexpected report: {found:?}");
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .expect("the watch task ends within 1 s of stop")
            .unwrap();
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(k, s)| (k.to_string(), *s)).collect()
}

#[tokio::test]
async fn trigger_watch_reports_a_written_file_once_and_skips_excluded_and_outside() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "in/", &["in/out/"]).await;
    assert!(
        root.join("in").is_dir(),
        "start creates the prefix directory"
    );
    write(&root.join("in/clip.mp4"), &[1; 1000]);
    write(&root.join("in/out/result.mp4"), &[1; 10]);
    write(&root.join("other/clip.mp4"), &[1; 10]);
    write(&root.join("top.mp4"), &[1; 10]);
    assert_eq!(w.expect(1).await, pairs(&[("in/clip.mp4", 1000)]));
    // Metadata changes and reads of the unchanged file report nothing more.
    let clip = root.join("in/clip.mp4");
    let mut perms = std::fs::metadata(&clip).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&clip, perms).unwrap();
    assert_eq!(std::fs::read(&clip).unwrap().len(), 1000);
    w.quiet().await;
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_whole_bucket_minus_excluded() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "", &["out/"]).await;
    write(&root.join("a.mp4"), &[1; 5]);
    write(&root.join("sub/b.mp4"), &[1; 6]);
    write(&root.join("out/c.mp4"), &[1; 7]);
    write(&root.join("out/deep/d.mp4"), &[1; 8]);
    assert_eq!(w.expect(2).await, pairs(&[("a.mp4", 5), ("sub/b.mp4", 6)]));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_watch_waits_for_a_growing_file() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "in/", &[]).await;
    let path = root.join("in/growing.mp4");
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(&path).unwrap();
            for _ in 0..10 {
                f.write_all(&[7; 64 * 1024]).unwrap();
                std::thread::sleep(Duration::from_millis(150));
            }
            drop(f);
            done.store(true, Ordering::SeqCst);
        })
    };
    let found = tokio::time::timeout(Duration::from_secs(5), w.rx.recv())
        .await
        .expect("reported after the writer stops")
        .unwrap();
    assert!(
        done.load(Ordering::SeqCst),
        "reported while still growing: {found:?}"
    );
    assert_eq!(found.key, "in/growing.mp4");
    assert_eq!(found.size, 10 * 64 * 1024);
    writer.join().unwrap();
    w.quiet().await;
    w.stop().await;
}

/// A copy that closes and reopens its file to append (resumed and chunked transfers) is
/// reported once, whole: a close after writing does not cut the settle period short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_watch_waits_for_a_file_reopened_to_append() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start_settling(&root, "in/", &[], Duration::from_secs(2)).await;
    let path = root.join("in/resumed.mp4");
    write(&path, &[1; 4096]);
    // Well past any short grace after the close, well inside the settle period.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[2; 4096]).unwrap();
    drop(f);
    assert_eq!(w.expect(1).await, pairs(&[("in/resumed.mp4", 8192)]));
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_picks_up_files_present_at_start() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    write(&root.join("in/one.mp4"), &[1; 11]);
    write(&root.join("in/a/b/clip.mp4"), &[1; 12]);
    write(&root.join("in/.hidden/skip.mp4"), &[1; 13]);
    write(&root.join("in/two.mp4.part"), &[1; 14]);
    write(&root.join("out/three.mp4"), &[1; 15]);
    let mut w = Watch::start(&root, "in/", &[]).await;
    assert_eq!(
        w.expect(2).await,
        pairs(&[("in/a/b/clip.mp4", 12), ("in/one.mp4", 11)])
    );
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_reports_renamed_in_files_under_their_final_name() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "in/", &[]).await;
    let part = root.join("in/x.mp4.part");
    write(&part, &[1; 100]);
    std::fs::rename(&part, root.join("in/x.mp4")).unwrap();
    // object_store's LocalFileSystem stages `<key>#<n>`, then renames it into place.
    let staged = root.join("in/y.mp4#3");
    write(&staged, &[1; 200]);
    for name in [
        "z.mp4.tmp",
        "z.mp4.partial",
        "z.mp4.crdownload",
        "z.mp4~",
        "z.mp4.swp",
    ] {
        write(&root.join("in").join(name), &[1; 3]);
    }
    assert_eq!(w.expect(1).await, pairs(&[("in/x.mp4", 100)]));
    std::fs::rename(&staged, root.join("in/y.mp4")).unwrap();
    assert_eq!(w.expect(1).await, pairs(&[("in/y.mp4", 200)]));
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_follows_new_and_moved_in_directories() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "in/", &[]).await;
    // Written straight after the directories are made: before notify watches them, maybe.
    write(&root.join("in/new/deeper/clip.mp4"), &[1; 21]);
    assert_eq!(w.expect(1).await, pairs(&[("in/new/deeper/clip.mp4", 21)]));

    let outside = tmp.path().join("staging/batch");
    write(&outside.join("one.mp4"), &[1; 22]);
    write(&outside.join("sub/two.mp4"), &[1; 23]);
    std::fs::rename(&outside, root.join("in/batch")).unwrap();
    assert_eq!(
        w.expect(2).await,
        pairs(&[("in/batch/one.mp4", 22), ("in/batch/sub/two.mp4", 23)])
    );
    // The moved-in directory is watched too.
    write(&root.join("in/batch/sub/three.mp4"), &[1; 24]);
    assert_eq!(w.expect(1).await, pairs(&[("in/batch/sub/three.mp4", 24)]));
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_reports_a_rewritten_file_again() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "in/", &[]).await;
    let path = root.join("in/r.mp4");
    write(&path, b"first");
    assert_eq!(w.expect(1).await, pairs(&[("in/r.mp4", 5)]));
    write(&path, b"second version");
    assert_eq!(w.expect(1).await, pairs(&[("in/r.mp4", 14)]));
    // Deleted and written again with the very same bytes: a new file, reported again.
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(&path, b"second version");
    assert_eq!(w.expect(1).await, pairs(&[("in/r.mp4", 14)]));
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_skips_hidden_files_symlinks_and_empty_files() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let outside = tmp.path().join("elsewhere");
    write(&outside.join("secret.mp4"), &[1; 31]);
    write(&outside.join("dir/inner.mp4"), &[1; 32]);
    let mut w = Watch::start(&root, "in/", &[]).await;
    write(&root.join("in/.hidden.mp4"), &[1; 33]);
    write(&root.join("in/.cache/clip.mp4"), &[1; 34]);
    std::os::unix::fs::symlink(outside.join("secret.mp4"), root.join("in/link.mp4")).unwrap();
    std::os::unix::fs::symlink(outside.join("dir"), root.join("in/linkdir")).unwrap();
    write(&root.join("in/empty.mp4"), b"");
    write(&root.join("in/real.mp4"), &[1; 35]);
    assert_eq!(w.expect(1).await, pairs(&[("in/real.mp4", 35)]));
    // Files appearing behind the symlinked directory stay unseen too.
    write(&outside.join("dir/later.mp4"), &[1; 36]);
    w.quiet().await;
    // The empty file counts once it has bytes.
    write(&root.join("in/empty.mp4"), &[1; 37]);
    assert_eq!(w.expect(1).await, pairs(&[("in/empty.mp4", 37)]));
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_survives_the_directory_being_deleted_and_recreated() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let mut w = Watch::start(&root, "in/", &[]).await;
    write(&root.join("in/before.mp4"), &[1; 41]);
    assert_eq!(w.expect(1).await, pairs(&[("in/before.mp4", 41)]));
    std::fs::remove_dir_all(root.join("in")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    write(&root.join("in/after.mp4"), &[1; 42]);
    write(&root.join("in/before.mp4"), &[1; 41]);
    assert_eq!(
        w.expect(2).await,
        pairs(&[("in/after.mp4", 42), ("in/before.mp4", 41)])
    );
    write(&root.join("in/later.mp4"), &[1; 43]);
    assert_eq!(w.expect(1).await, pairs(&[("in/later.mp4", 43)]));
    w.stop().await;
}

#[tokio::test]
async fn trigger_watch_stops_on_cancel_and_on_a_closed_channel() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    let w = Watch::start(&root, "in/", &[]).await;
    w.stop().await;

    let w = Watch::start(&root, "in/", &[]).await;
    drop(w.rx);
    tokio::time::timeout(Duration::from_secs(1), w.task)
        .await
        .expect("the watch task ends within 1 s of the channel closing")
        .unwrap();
}

#[tokio::test]
async fn trigger_watch_start_errors_name_the_directory() {
    let tmp = tempdir();
    let root = tmp.path().join("media");
    write(
        &root.join("in"),
        b"a file where the prefix directory should be",
    );
    let spec = |prefix: &str| WatchSpec {
        bucket: "media".into(),
        root: root.clone(),
        prefix: prefix.into(),
        exclude: vec![],
    };
    let (tx, _rx) = mpsc::channel(1);
    let options = WatchOptions { settle: SETTLE };
    let stop = CancellationToken::new();
    let err = start(vec![spec("in/")], options.clone(), tx.clone(), stop.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::Create { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("cannot create \""), "{message}");
    assert!(
        message.contains(&root.join("in").display().to_string()),
        "{message}"
    );

    for bad in ["../up/", "/abs/", "a/../b/"] {
        let err = start(vec![spec(bad)], options.clone(), tx.clone(), stop.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, WatchError::Prefix { .. }), "{bad}: {err:?}");
    }
}
