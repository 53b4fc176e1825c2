//! Which files the watch folder reports, under which key, and the blocking directory walk.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use super::WatchSpec;

const TEMP_SUFFIXES: [&str; 6] = [".part", ".partial", ".tmp", ".crdownload", "~", ".swp"];

/// The watched specs, with absolute roots.
#[derive(Debug)]
pub(super) struct Watched(pub(super) Vec<WatchSpec>);

impl Watched {
    /// The bucket and key a regular file is reported as, if it is reported at all. `loud`
    /// says whether a skipped invalid name deserves a warning (else it is a debug line).
    pub(super) fn classify(&self, path: &Path, loud: bool) -> Option<(String, String)> {
        for spec in &self.0 {
            let Ok(rel) = path.strip_prefix(&spec.root) else {
                continue;
            };
            let Some(key) = key_of(rel) else {
                note(loud, path, "not a valid UTF-8 name");
                return None;
            };
            if !key.starts_with(&spec.prefix) || spec.exclude.iter().any(|e| key.starts_with(e)) {
                continue;
            }
            if skipped(key.get(dir_len(&spec.prefix)..).unwrap_or(&key)) {
                return None;
            }
            if key.contains('\\') {
                note(loud, path, "a backslash makes no valid key");
                return None;
            }
            return Some((spec.bucket.clone(), key));
        }
        None
    }

    /// Whether a directory may hold reported files (so is worth walking).
    pub(super) fn dir_wanted(&self, dir: &Path, loud: bool) -> bool {
        self.0.iter().any(|spec| {
            let Ok(rel) = dir.strip_prefix(&spec.root) else {
                return false;
            };
            let Some(key) = key_of(rel) else {
                note(loud, dir, "not a valid UTF-8 name");
                return false;
            };
            let key = if key.is_empty() { key } else { key + "/" };
            let below = key.get(dir_len(&spec.prefix)..).unwrap_or("");
            !below.split('/').any(|s| s.starts_with('.'))
                && (key.starts_with(&spec.prefix) || spec.prefix.starts_with(&key))
                && !spec.exclude.iter().any(|e| key.starts_with(e))
        })
    }
}

/// The length of the prefix's directory part: "in/" and "in/clip" both have "in/".
pub(super) fn dir_len(prefix: &str) -> usize {
    prefix.rfind('/').map_or(0, |i| i + 1)
}

fn note(loud: bool, path: &Path, why: &str) {
    if loud {
        tracing::warn!(path = %path.display(), "watch folder skips a file: {why}");
    } else {
        tracing::debug!(path = %path.display(), "watch folder skips a file: {why}");
    }
}

/// The key of a path relative to the bucket root: its components joined by `/`.
fn key_of(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Hidden names (below the watched directory), temp names, and object_store's
/// LocalFileSystem staging files: it writes `<key>#<n>`, then renames it to `<key>`.
fn skipped(below: &str) -> bool {
    let name = below.rsplit('/').next().unwrap_or(below);
    let staging = (name.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    below.split('/').any(|s| s.starts_with('.'))
        || staging
        || TEMP_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// What tells one state of a file from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) size: u64,
    pub(super) mtime: SystemTime,
}

impl Meta {
    pub(super) fn of(meta: &std::fs::Metadata) -> Meta {
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Meta {
            size: meta.len(),
            mtime,
        }
    }
}

/// A regular file's size and mtime; `None` for anything else. Symlinks are never followed
/// nor reported: one could point outside the bucket.
pub(super) fn stat_file(path: &Path) -> std::io::Result<Option<Meta>> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(meta.is_file().then(|| Meta::of(&meta)))
}

/// A reportable file seen by a walk.
#[derive(Debug)]
pub(super) struct Seen {
    pub(super) path: PathBuf,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) meta: Meta,
}

/// Walks directories (blocking) for reportable files, never following symlinks.
pub(super) fn scan(rules: &Watched, dirs: Vec<PathBuf>, loud: bool) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut stack = dirs;
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "watch folder cannot list");
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if rules.dir_wanted(&path, loud) {
                    stack.push(path);
                }
                continue;
            }
            // Symlinks, sockets, fifos… are never reported.
            let Some((bucket, key)) = kind
                .is_file()
                .then(|| rules.classify(&path, loud))
                .flatten()
            else {
                continue;
            };
            match stat_file(&path) {
                Ok(Some(meta)) => out.push(Seen {
                    path,
                    bucket,
                    key,
                    meta,
                }),
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "watch folder cannot stat");
                }
            }
        }
    }
    out
}
