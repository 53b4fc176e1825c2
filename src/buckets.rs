//! Buckets: names mapped to object stores (`object_store`). A name that is not configured is
//! a folder under `DATA_DIR/buckets/NAME` (the embedded default); configured ones may be
//! S3-compatible (AWS, MinIO, Garage, Alibaba OSS), GCS, Azure (`cloud`) or other local
//! folders. Keys are validated before use; transfers stream to and from files, with progress;
//! large uploads go in parts (`multipart`), aborted on any failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod cloud;
mod listing;
mod multipart;

use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

pub use crate::config::BucketConfig;

/// Files above this size upload in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// The size of each part of a multipart upload.
pub const PART_SIZE: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("invalid bucket name '{0}': {rule}", rule = crate::job::BUCKET_NAME_RULE)]
    BadName(String),
    #[error("invalid object key '{key}': {why}")]
    BadKey { key: String, why: &'static str },
    #[error("bucket '{bucket}': {message}")]
    Config { bucket: String, message: String },
    #[error("{bucket}/{key}: no such object")]
    NotFound { bucket: String, key: String },
    /// The key cannot be stored in a folder bucket beside the objects already there.
    #[error("{bucket}/{key}: {why}")]
    KeyConflict {
        bucket: String,
        key: String,
        why: &'static str,
    },
    #[error("{bucket}/{key}: {message}")]
    Transfer {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("transfer stopped")]
    Stopped,
}

impl BucketError {
    pub fn code(&self) -> &'static str {
        match self {
            BucketError::BadName(_) => "bad-bucket",
            BucketError::BadKey { .. } => "bad-key",
            BucketError::Config { .. } => "bucket-config",
            BucketError::NotFound { .. } => "object-not-found",
            BucketError::KeyConflict { .. } => "key-conflict",
            BucketError::Transfer { .. } => "storage-error",
            BucketError::Io { .. } => "io-error",
            BucketError::Stopped => "stopped",
        }
    }

    /// Whether trying again could help (a network or storage hiccup).
    pub fn retryable(&self) -> bool {
        matches!(self, BucketError::Transfer { .. } | BucketError::Io { .. })
    }
}

/// Checks a bucket name.
pub fn validate_bucket(name: &str) -> Result<(), BucketError> {
    if crate::job::is_bucket_name(name) {
        Ok(())
    } else {
        Err(BucketError::BadName(name.to_string()))
    }
}

/// Checks an object key and turns it into a store path. A key is relative, at most 1024
/// bytes, without empty, `.` or `..` segments or control characters: it cannot name anything
/// outside its bucket.
pub fn validate_key(key: &str) -> Result<ObjectPath, BucketError> {
    let bad = |why| BucketError::BadKey {
        key: key.chars().take(200).collect(),
        why,
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.len() > 1024 {
        return Err(bad("longer than 1024 bytes"));
    }
    if key.starts_with('/') {
        return Err(bad("absolute (starts with '/')"));
    }
    if key.chars().any(|c| c.is_control()) {
        return Err(bad("contains a control character"));
    }
    if key.contains('\\') {
        return Err(bad("contains a backslash"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(bad("has an empty segment ('//' or a trailing '/')")),
            "." | ".." => return Err(bad("has a '.' or '..' segment")),
            _ => {}
        }
    }
    ObjectPath::parse(key).map_err(|_| bad("is not a valid object path"))
}

/// How a storage error came about: reading (a key that cannot be there is not found) or
/// writing (it conflicts with what is there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A storage error as a bucket error. A folder bucket is a file system, where some keys that
/// pass [`validate_key`] cannot be files: a key under an existing object (`a.mp4/b`), one
/// that other keys are under (`in` beside `in/a.mp4`), a segment longer than the file system
/// allows. Those are the client's to fix (not found, a conflict, a bad key); anything else is
/// the storage failing.
pub fn storage_error(
    bucket: &str,
    key: &str,
    access: Access,
    e: object_store::Error,
) -> BucketError {
    if let object_store::Error::NotFound { .. } = e {
        return BucketError::NotFound {
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let errno = std::iter::from_fn(|| {
        let c = cause?;
        cause = c.source();
        Some(c)
    })
    .find_map(|c| c.downcast_ref::<std::io::Error>()?.raw_os_error());
    let conflict = |why| BucketError::KeyConflict {
        bucket: bucket.to_string(),
        key: key.to_string(),
        why,
    };
    match (errno, access) {
        (Some(libc::ENAMETOOLONG), _) => BucketError::BadKey {
            key: key.chars().take(200).collect(),
            why: "has a segment too long for a file name in a folder bucket",
        },
        (Some(libc::ENOTDIR | libc::EISDIR), Access::Read) => BucketError::NotFound {
            bucket: bucket.to_string(),
            key: key.to_string(),
        },
        (Some(libc::ENOTDIR), Access::Write) => conflict(
            "part of the key is an object already, and a folder bucket cannot store objects \
             under an object",
        ),
        (Some(libc::EISDIR), Access::Write) => conflict(
            "other objects are stored under this key and '/', and a folder bucket cannot make \
             it an object too",
        ),
        _ => BucketError::Transfer {
            bucket: bucket.to_string(),
            key: key.to_string(),
            message: e.to_string(),
        },
    }
}

/// Checks an output prefix: empty, or a valid key ending in `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), BucketError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let Some(inner) = prefix.strip_suffix('/') else {
        return Err(BucketError::BadKey {
            key: prefix.to_string(),
            why: "an output prefix must end with '/'",
        });
    };
    validate_key(inner).map(|_| ())
}

/// Reports transferred bytes (so far, total if known).
pub type OnBytes<'a> = &'a mut (dyn FnMut(u64, Option<u64>) + Send);

/// The farm's buckets.
pub struct Buckets {
    root: PathBuf,
    configured: BTreeMap<String, BucketConfig>,
    open: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("root", &self.root)
            .field("configured", &self.configured.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Buckets {
    /// Buckets under `data_dir/buckets/`, plus `configured` ones.
    pub fn new(
        data_dir: &Path,
        configured: BTreeMap<String, BucketConfig>,
    ) -> Result<Buckets, BucketError> {
        for name in configured.keys() {
            validate_bucket(name)?;
        }
        Ok(Buckets {
            root: data_dir.join("buckets"),
            configured,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn configured(&self) -> &BTreeMap<String, BucketConfig> {
        &self.configured
    }

    /// The local folder behind a bucket, when it is one (for the watch folder).
    pub fn local_dir(&self, bucket: &str) -> Option<PathBuf> {
        match self.configured.get(bucket) {
            None => validate_bucket(bucket).ok().map(|_| self.root.join(bucket)),
            Some(c) => c
                .url
                .strip_prefix("file://")
                .map(|p| PathBuf::from(p.trim_end_matches('/'))),
        }
    }

    /// The object store for a bucket.
    pub fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, BucketError> {
        validate_bucket(bucket)?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get(bucket) {
            return Ok(s.clone());
        }
        let store = self.connect(bucket)?;
        open.insert(bucket.to_string(), store.clone());
        Ok(store)
    }

    fn connect(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, BucketError> {
        let config_err = |message: String| BucketError::Config {
            bucket: bucket.to_string(),
            message,
        };
        if let Some(dir) = self.local_dir(bucket) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| config_err(format!("creating {}: {e}", dir.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| config_err(e.to_string()))?
                .with_automatic_cleanup(true);
            return Ok(Arc::new(fs));
        }
        let Some(config) = self.configured.get(bucket) else {
            return Err(config_err("not configured".into()));
        };
        let url = url::Url::parse(&config.url)
            .map_err(|e| config_err(format!("bad url '{}': {e}", config.url)))?;
        let (store, prefix) = cloud::store(&url, &config.options).map_err(config_err)?;
        if prefix.as_ref().is_empty() {
            Ok(store)
        } else {
            Ok(Arc::new(PrefixStore::new(store, prefix)))
        }
    }

    /// Checks a bucket name and a key for it: [`validate_key`], and in a folder bucket not a
    /// file name the local store keeps for its partial uploads (the last segment ending in `#`
    /// and digits).
    pub fn key_path(&self, bucket: &str, key: &str) -> Result<ObjectPath, BucketError> {
        validate_bucket(bucket)?;
        let path = validate_key(key)?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let partial = name
            .rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if partial && self.local_dir(bucket).is_some() {
            return Err(BucketError::BadKey {
                key: key.chars().take(200).collect(),
                why: "ends in '#' and digits, which a folder bucket keeps for partial uploads",
            });
        }
        Ok(path)
    }

    /// The store to read `key` from. A folder bucket that does not exist holds nothing: the
    /// answer is "no such object", and no folder is made for a read.
    pub fn reader(&self, bucket: &str, key: &str) -> Result<Arc<dyn ObjectStore>, BucketError> {
        if self.local_dir(bucket).is_some_and(|d| !d.exists()) {
            return Err(BucketError::NotFound {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        self.store(bucket)
    }

    /// The size of an object.
    pub async fn size(&self, bucket: &str, key: &str) -> Result<u64, BucketError> {
        let path = self.key_path(bucket, key)?;
        let store = self.reader(bucket, key)?;
        let meta = store
            .head(&path)
            .await
            .map_err(|e| storage_error(bucket, key, Access::Read, e))?;
        Ok(meta.size)
    }

    /// Streams an object into `dest` (written as `dest.partial`, renamed when complete).
    pub async fn download(
        &self,
        bucket: &str,
        key: &str,
        dest: &Path,
        stop: &crate::stop::StopToken,
        on_bytes: OnBytes<'_>,
    ) -> Result<u64, BucketError> {
        let path = self.key_path(bucket, key)?;
        let store = self.reader(bucket, key)?;
        let got = store
            .get(&path)
            .await
            .map_err(|e| storage_error(bucket, key, Access::Read, e))?;
        let total = got.meta.size;
        let partial = dest.with_extension("partial");
        let io = |e| BucketError::Io {
            path: partial.clone(),
            source: e,
        };
        let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
        let mut stream = got.into_stream();
        let mut done = 0u64;
        on_bytes(0, Some(total));
        while let Some(chunk) = stream.next().await {
            if stop.is_stopped() {
                drop(file);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(BucketError::Stopped);
            }
            let chunk = chunk.map_err(|e| storage_error(bucket, key, Access::Read, e))?;
            file.write_all(&chunk).await.map_err(io)?;
            done += chunk.len() as u64;
            on_bytes(done, Some(total));
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&partial, dest)
            .await
            .map_err(|e| BucketError::Io {
                path: dest.to_path_buf(),
                source: e,
            })?;
        Ok(done)
    }

    /// Uploads a file. Large files go in parts; an object becomes visible under its key only
    /// when complete (object stores publish a put or a completed multipart upload at once).
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        src: &Path,
        stop: &crate::stop::StopToken,
        on_bytes: OnBytes<'_>,
    ) -> Result<u64, BucketError> {
        let path = self.key_path(bucket, key)?;
        let store = self.store(bucket)?;
        let io = |e| BucketError::Io {
            path: src.to_path_buf(),
            source: e,
        };
        let size = tokio::fs::metadata(src).await.map_err(io)?.len();
        on_bytes(0, Some(size));
        if size <= MULTIPART_THRESHOLD {
            let bytes = tokio::fs::read(src).await.map_err(io)?;
            store
                .put(&path, bytes.into())
                .await
                .map_err(|e| storage_error(bucket, key, Access::Write, e))?;
            on_bytes(size, Some(size));
            return Ok(size);
        }
        let mut upload = store
            .put_multipart(&path)
            .await
            .map_err(|e| storage_error(bucket, key, Access::Write, e))?;
        match multipart::send_parts(&mut *upload, bucket, key, src, size, stop, on_bytes).await {
            Ok(sent) => Ok(sent),
            Err(e) => {
                // Whatever went wrong (a read, a part, the completion, a stop), the parts
                // already sent would otherwise stay in the bucket: invisible, but kept and
                // billed until a lifecycle rule removes them.
                if let Err(abort) = upload.abort().await {
                    tracing::warn!("{bucket}/{key}: aborting the multipart upload: {abort}");
                }
                Err(e)
            }
        }
    }

    /// Deletes an object (missing objects are not an error).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), BucketError> {
        let path = self.key_path(bucket, key)?;
        let store = self.store(bucket)?;
        match store.delete(&path).await {
            Ok(()) => Ok(()),
            // Not there, or cannot be (under an object): gone either way.
            Err(e) => match storage_error(bucket, key, Access::Read, e) {
                BucketError::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_their_bucket() {
        for good in ["in/a.mp4", "in/a b&c é.mp4", "x", "deep/er/still/file.mov"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "in/../../x",
            "in//x",
            "in/./x",
            "in/",
            "a\nb",
            "a\\b",
            &"k".repeat(1025),
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("out/a/").is_ok());
        assert!(validate_prefix("out").is_err());
        assert!(validate_prefix("../out/").is_err());
    }

    #[test]
    fn bucket_names() {
        for good in ["media", "my-bucket.2", "a"] {
            assert!(validate_bucket(good).is_ok(), "{good}");
        }
        for bad in ["", "Media", "-x", "a/b", "..", "a..b", &"b".repeat(64)] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }
}
