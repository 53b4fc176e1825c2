//! The watch task: turns notify events, walks and a periodic tick into reports of settled
//! files, and keeps the top watches alive across their directories being deleted.

use std::collections::{BTreeMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::scan::{Meta, Seen, Watched, scan, stat_file};
use super::{Found, identity, sort_outermost};

/// The wait after a rename into place (capped by `settle`): a file moved in is whole. A close
/// after writing is no such promise (resumed and chunked copies reopen the file to append),
/// so it waits the full `settle`.
const GRACE: Duration = Duration::from_millis(200);
/// How often the watched directories are checked for having been deleted or replaced.
const ROOT_CHECK_EVERY: Duration = Duration::from_secs(1);
/// A safety net for lost events; it also forgets files deleted unseen.
const FULL_RESCAN_EVERY: Duration = Duration::from_secs(60);
/// A new directory is walked at once and again after this: notify adds its watch only after
/// handing the event over, so a file written in between could otherwise be missed.
const NEW_DIR_RESCAN_AFTER: Duration = Duration::from_millis(500);

pub(super) type Events = mpsc::Receiver<notify::Result<notify::Event>>;

/// How an event says a file came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Created or written to.
    Changed,
    /// Closed after writing: possibly complete, possibly reopened to append.
    Closed,
    /// Renamed into place: complete.
    MovedIn,
}

/// A file waiting to settle.
#[derive(Debug)]
struct Pending {
    bucket: String,
    key: String,
    meta: Meta,
    /// When `meta` was first seen.
    since: Instant,
    /// How long `meta` must hold: `settle`, or the grace after a rename into place.
    wait: Duration,
}

/// A watched top directory and the (device, inode) it had when its watch was added.
#[derive(Debug)]
pub(super) struct Root {
    pub(super) path: PathBuf,
    pub(super) ident: Option<(u64, u64)>,
}

pub(super) struct State {
    rules: Arc<Watched>,
    settle: Duration,
    grace: Duration,
    /// Kept alive here: dropping it ends the watches.
    watcher: RecommendedWatcher,
    roots: Vec<Root>,
    pending: BTreeMap<PathBuf, Pending>,
    /// What was reported and is still there, so an unchanged file is not reported twice.
    reported: BTreeMap<PathBuf, Meta>,
    /// Directories to walk: when, and whether skipped names are worth a warning.
    scans: Vec<(Instant, PathBuf, bool)>,
    full_rescan: bool,
    /// Set by notify's thread when the event queue was full (events were dropped).
    overflow: Arc<AtomicBool>,
    next_full: Instant,
    next_root_check: Instant,
    tx: mpsc::Sender<Found>,
    stop: CancellationToken,
}

impl State {
    pub(super) fn new(
        rules: Watched,
        settle: Duration,
        (watcher, roots, overflow): (RecommendedWatcher, Vec<Root>, Arc<AtomicBool>),
        tx: mpsc::Sender<Found>,
        stop: CancellationToken,
    ) -> State {
        let now = Instant::now();
        State {
            rules: Arc::new(rules),
            settle,
            grace: settle.min(GRACE),
            watcher,
            roots,
            pending: BTreeMap::new(),
            reported: BTreeMap::new(),
            scans: Vec::new(),
            full_rescan: true, // the start-up scan, on the first tick
            overflow,
            next_full: now + FULL_RESCAN_EVERY,
            next_root_check: now + ROOT_CHECK_EVERY,
            tx,
            stop,
        }
    }

    pub(super) async fn run(mut self, mut events: Events) {
        let (stop, tx) = (self.stop.clone(), self.tx.clone());
        let period = (self.settle / 4).clamp(Duration::from_millis(25), Duration::from_millis(250));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = tx.closed() => break,
                // Before events, so a stream of them cannot hold reports back.
                _ = tick.tick() => if !self.on_tick().await { break },
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
            }
        }
        tracing::debug!("watch folder stopped");
    }

    fn on_event(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                return tracing::warn!(
                    "inotify watch limit reached (raise fs.inotify.max_user_watches): new \
                     directories are found by the periodic rescan only"
                );
            }
            Err(e) => return tracing::warn!(error = %e, "watch folder event error"),
        };
        if event.need_rescan() {
            self.full_rescan = true;
        }
        let now = Instant::now();
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in event.paths {
                    self.touch(path, Arrival::Closed, now);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                for path in event.paths {
                    self.touch(path, Arrival::MovedIn, now);
                }
            }
            // Reads (ours and the transcoder's), and renames already seen as From + To.
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {}
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                for path in &event.paths {
                    self.forget(path);
                    if let Some(root) = self.roots.iter_mut().find(|r| r.path == *path) {
                        root.ident = None; // its watch is gone: add it again once it is back
                        self.next_root_check = now;
                    }
                }
            }
            _ => {
                for path in event.paths {
                    self.touch(path, Arrival::Changed, now);
                }
            }
        }
    }

    /// A path an event named: a directory is walked, a file becomes a candidate.
    fn touch(&mut self, path: PathBuf, arrival: Arrival, now: Instant) {
        // The once-per-file events: the ones whose skipped invalid names are worth a warning.
        let closed = arrival != Arrival::Changed;
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return self.forget(&path),
            Err(e) => {
                return tracing::warn!(path = %path.display(), error = %e, "watch folder cannot stat");
            }
        };
        if meta.is_dir() {
            if self.rules.dir_wanted(&path, closed) {
                self.scans.push((now, path.clone(), true));
                self.scans.push((now + NEW_DIR_RESCAN_AFTER, path, false));
            }
        } else if meta.is_file()
            && let Some((bucket, key)) = self.rules.classify(&path, closed)
        {
            self.candidate(path, bucket, key, Meta::of(&meta), arrival, now);
        }
    }

    fn candidate(
        &mut self,
        path: PathBuf,
        bucket: String,
        key: String,
        meta: Meta,
        arrival: Arrival,
        now: Instant,
    ) {
        let moved_in = arrival == Arrival::MovedIn;
        if let Some(p) = self.pending.get_mut(&path) {
            if p.meta != meta {
                (p.meta, p.since, p.wait) = (meta, now, self.settle);
            }
            if moved_in {
                p.wait = self.grace;
            }
        } else if self.reported.get(&path) != Some(&meta) {
            let wait = if moved_in { self.grace } else { self.settle };
            let since = now;
            let p = Pending {
                bucket,
                key,
                meta,
                since,
                wait,
            };
            self.pending.insert(path, p);
        }
    }

    /// Forgets a path and everything under it (deleted or moved away).
    fn forget(&mut self, path: &Path) {
        fn under<V>(map: &mut BTreeMap<PathBuf, V>, path: &Path) {
            // Path order is by component, so a directory's descendants follow it directly.
            let doomed: Vec<PathBuf> = (map.range(path.to_path_buf()..))
                .take_while(|(p, _)| p.starts_with(path))
                .map(|(p, _)| p.clone())
                .collect();
            for p in doomed {
                map.remove(&p);
            }
        }
        under(&mut self.pending, path);
        under(&mut self.reported, path);
    }

    /// Periodic work; false once the task must end.
    async fn on_tick(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.next_root_check {
            self.next_root_check = now + ROOT_CHECK_EVERY;
            self.check_roots(now);
        }
        let periodic = now >= self.next_full;
        let flagged =
            std::mem::take(&mut self.full_rescan) | self.overflow.swap(false, Ordering::Relaxed);
        if periodic || flagged {
            self.next_full = now + FULL_RESCAN_EVERY;
            let dirs = self.roots.iter().map(|r| r.path.clone()).collect();
            let Some(seen) = self.scan(dirs, flagged).await else {
                return false;
            };
            // Whatever the walk did not see is gone (or unreadable): forget it.
            let paths: HashSet<&PathBuf> = seen.iter().map(|s| &s.path).collect();
            self.reported.retain(|p, _| paths.contains(p));
            self.merge(seen, now);
        }
        let (mut dirs, mut loud) = (Vec::new(), false);
        self.scans.retain(|(at, dir, warn)| {
            let due = *at <= now;
            if due {
                dirs.push(dir.clone());
                loud |= *warn;
            }
            !due
        });
        if !dirs.is_empty() {
            sort_outermost(&mut dirs);
            let Some(seen) = self.scan(dirs, loud).await else {
                return false;
            };
            self.merge(seen, now);
        }
        self.check_pending(Instant::now()).await
    }

    /// Walks directories on the blocking pool; `None` when stopped meanwhile.
    async fn scan(&self, dirs: Vec<PathBuf>, loud: bool) -> Option<Vec<Seen>> {
        let rules = Arc::clone(&self.rules);
        let job = tokio::task::spawn_blocking(move || scan(&rules, dirs, loud));
        tokio::select! {
            () = self.stop.cancelled() => None,
            seen = job => Some(seen.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "watch folder walk failed");
                Vec::new()
            })),
        }
    }

    fn merge(&mut self, seen: Vec<Seen>, now: Instant) {
        for s in seen {
            self.candidate(s.path, s.bucket, s.key, s.meta, Arrival::Changed, now);
        }
    }

    /// Adds again the watch of a top directory that was deleted (or replaced) and is back.
    fn check_roots(&mut self, now: Instant) {
        for root in &mut self.roots {
            let current = identity(&root.path);
            if current == root.ident {
                continue;
            }
            let dir = root.path.display();
            if let Err(e) = self.watcher.unwatch(&root.path) {
                tracing::debug!(dir = %dir, error = %e, "dropping a dead watch");
            }
            let was = root.ident.take();
            if current.is_none() {
                if was.is_some() {
                    tracing::warn!(dir = %dir, "watched directory is gone; waiting for it");
                }
                continue;
            }
            match self.watcher.watch(&root.path, RecursiveMode::Recursive) {
                Ok(()) => {
                    tracing::info!(dir = %dir, "watching again");
                    root.ident = current;
                    self.scans.push((now, root.path.clone(), true));
                    let later = now + NEW_DIR_RESCAN_AFTER;
                    self.scans.push((later, root.path.clone(), false));
                }
                Err(e) => tracing::warn!(dir = %dir, error = %e, "cannot watch again"),
            }
        }
    }

    /// Reports the candidates whose size and mtime held long enough; false once stopped.
    async fn check_pending(&mut self, now: Instant) -> bool {
        let due: Vec<PathBuf> = (self.pending.iter())
            .filter(|(_, p)| p.since.checked_add(p.wait).is_some_and(|at| at <= now))
            .map(|(path, _)| path.clone())
            .collect();
        for path in due {
            let meta = match stat_file(&path) {
                Ok(Some(meta)) => meta,
                Ok(None) => {
                    self.pending.remove(&path);
                    continue;
                }
                Err(e) => {
                    if e.kind() != ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "watch folder cannot stat");
                    }
                    self.forget(&path);
                    continue;
                }
            };
            let Some(p) = self.pending.get_mut(&path) else {
                continue;
            };
            if p.meta != meta {
                (p.meta, p.since, p.wait) = (meta, now, self.settle);
                continue;
            }
            let Some(p) = self.pending.remove(&path) else {
                continue;
            };
            // cp and friends create the file empty first: an empty file is no video, and
            // once bytes arrive, their events make it a candidate again.
            if meta.size == 0 || self.reported.get(&path) == Some(&meta) {
                continue;
            }
            tracing::debug!(bucket = %p.bucket, key = %p.key, size = meta.size, "watch folder found a file");
            self.reported.insert(path, meta);
            let found = Found {
                bucket: p.bucket,
                key: p.key,
                size: meta.size,
            };
            tokio::select! {
                () = self.stop.cancelled() => return false,
                sent = self.tx.send(found) => if sent.is_err() { return false },
            }
        }
        true
    }
}
