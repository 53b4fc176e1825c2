//! The watch folder: finds complete files dropped under a rule's prefix in a local bucket (a
//! plain directory) and reports each once it has stopped changing. This module owns the
//! inotify watches (through `notify`), the start-up scan, the settle timer and the memory of
//! what was reported; turning a [`Found`] into a job is the caller's business.
//!
//! Events only start the clock: any create / write / close / rename makes a file a
//! candidate, and a periodic tick reports it once its (size, mtime) has stayed the same for
//! [`WatchOptions::settle`] — or for a short grace after a rename into place, re-checked all
//! the same (a close after writing is not trusted: copies that resume reopen the file). A lost event therefore costs latency, not a file: a queue
//! overflow or notify's rescan flag walks the tree again, and so does a slow periodic rescan.
//!
//! Never reported: hidden names, temp names (`*.part`, `*.tmp`, `*~`, …), object_store's
//! staging files (`<key>#<n>`), symlinks, empty files, excluded prefixes, invalid keys.
//!
//! Here: the public interface and the set-up; `scan` decides which paths are reported under
//! which key and walks directories; `state` is the running task.

mod scan;
mod state;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use scan::Watched;
use state::{Events, Root, State};

/// Events buffered between notify's thread and the task; when full, the tree is rescanned.
const EVENT_QUEUE: usize = 4096;

/// One watched place: the files under `prefix` (a key prefix like "in/" — possibly "" for the
/// whole bucket) of the local bucket `bucket` whose root directory is `root`.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub bucket: String,
    pub root: PathBuf,
    pub prefix: String,
    /// Key prefixes never reported (outputs written into the same bucket, e.g. "out/").
    pub exclude: Vec<String>,
}

/// A file that is complete and ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub bucket: String,
    pub key: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long a file must stay unchanged (size + mtime) before it counts as complete.
    pub settle: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            settle: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("bucket {bucket}: bad watch prefix {prefix:?} (a relative key prefix like \"in/\")")]
    Prefix { bucket: String, prefix: String },
    #[error("cannot create \"{}\": {source}", dir.display())]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch \"{}\": {source}", dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("cannot start the file watcher: {0}")]
    Init(#[source] notify::Error),
}

/// Starts watching; creates missing prefix directories; returns once the inotify watches are
/// in place and the start-up scan has been queued (so a file created right after `start`
/// returns is never missed). Reports go to `tx`. Stops when `stop` is cancelled or `tx` is
/// closed; the returned handle's task ends then.
pub async fn start(
    specs: Vec<WatchSpec>,
    options: WatchOptions,
    tx: mpsc::Sender<Found>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    // Creating directories and adding a watch per subdirectory is blocking work.
    let setup = tokio::task::spawn_blocking(move || setup(specs));
    let (rules, watching, events) = setup
        .await
        .map_err(|e| WatchError::Init(notify::Error::generic(&e.to_string())))??;
    let state = State::new(rules, options.settle, watching, tx, stop);
    Ok(tokio::spawn(state.run(events)))
}

type Setup = (
    Watched,
    (RecommendedWatcher, Vec<Root>, Arc<AtomicBool>),
    Events,
);

fn setup(specs: Vec<WatchSpec>) -> Result<Setup, WatchError> {
    let mut rules = Vec::new();
    let mut dirs = Vec::new();
    for spec in specs {
        // A relative key prefix: no `.`/`..` segments, no empty segment but a trailing one.
        let segments: Vec<&str> = spec.prefix.split('/').collect();
        let parent = segments.split_last().map_or(&[][..], |(_, parent)| parent);
        let bad = |s: &&str| *s == "." || *s == ".." || s.is_empty() || s.contains('\\');
        if parent.iter().any(bad) || segments.last().is_some_and(|s| s.contains('\\')) {
            return Err(WatchError::Prefix {
                bucket: spec.bucket,
                prefix: spec.prefix,
            });
        }
        let root = std::path::absolute(&spec.root).map_err(|source| WatchError::Create {
            dir: spec.root.clone(),
            source,
        })?;
        // The directory holding every key of the prefix: "in/" and "in/clip" both mean "in".
        let mut dir = root.clone();
        dir.extend(parent);
        std::fs::create_dir_all(&dir).map_err(|source| WatchError::Create {
            dir: dir.clone(),
            source,
        })?;
        dirs.push(dir);
        rules.push(WatchSpec { root, ..spec });
    }
    sort_outermost(&mut dirs);

    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&overflow);
    let handler = move |event| {
        if let Err(mpsc::error::TrySendError::Full(_)) = events_tx.try_send(event) {
            flag.store(true, Ordering::Relaxed);
        }
    };
    // Symlinked directories are not followed: they could lead outside the bucket.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = RecommendedWatcher::new(handler, config).map_err(WatchError::Init)?;
    let mut roots = Vec::new();
    for dir in dirs {
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch {
                dir: dir.clone(),
                source,
            })?;
        let ident = identity(&dir);
        roots.push(Root { path: dir, ident });
    }
    Ok((Watched(rules), (watcher, roots, overflow), events))
}

/// Sorts and drops every directory that lies under another one of the list.
fn sort_outermost(dirs: &mut Vec<PathBuf>) {
    // Path order is by component, so a directory's descendants follow it directly.
    dirs.sort();
    dirs.dedup_by(|later, kept| later.starts_with(kept));
}

/// A directory's (device, inode), to tell it from one deleted and made again.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(dir).ok().filter(|m| m.is_dir())?;
    Some((meta.dev(), meta.ino()))
}
