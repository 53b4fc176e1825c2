//! What split jobs ask of a bucket beyond single objects: an object's version (a retry
//! reuses finished parts only when the input is unchanged), the keys under a prefix,
//! removing everything under one (a job's scratch), and copying an object (a part's HLS
//! segment published from the scratch).

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::{Access, BucketError, Buckets, storage_error, validate_prefix};

impl Buckets {
    /// An object's version: its eTag (or, where the store has none, its modification time)
    /// and its size. Two reads give the same version only for the same content.
    pub async fn version(&self, bucket: &str, key: &str) -> Result<String, BucketError> {
        let path = self.key_path(bucket, key)?;
        let store = self.reader(bucket, key)?;
        let meta = store
            .head(&path)
            .await
            .map_err(|e| storage_error(bucket, key, Access::Read, e))?;
        let tag = meta
            .e_tag
            .unwrap_or_else(|| meta.last_modified.timestamp_micros().to_string());
        Ok(format!("{tag}/{}", meta.size))
    }

    /// Every key under `prefix` (which ends with `/`), in no particular order.
    pub async fn keys_under(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, BucketError> {
        validate_prefix(prefix)?;
        if self.local_dir(bucket).is_some_and(|d| !d.exists()) {
            return Ok(Vec::new());
        }
        let store = self.store(bucket)?;
        let folder = ObjectPath::from(prefix.trim_end_matches('/'));
        let mut listed = store.list(Some(&folder));
        let mut keys = Vec::new();
        while let Some(meta) = listed.next().await {
            match meta {
                Ok(meta) => keys.push(meta.location.to_string()),
                Err(e) => match storage_error(bucket, prefix, Access::Read, e) {
                    BucketError::NotFound { .. } => break,
                    e => return Err(e),
                },
            }
        }
        Ok(keys)
    }

    /// Deletes every object under `prefix`; returns how many there were.
    pub async fn delete_under(&self, bucket: &str, prefix: &str) -> Result<usize, BucketError> {
        let keys = self.keys_under(bucket, prefix).await?;
        for key in &keys {
            self.delete(bucket, key).await?;
        }
        Ok(keys.len())
    }

    /// Copies an object: within one bucket on the server (no bytes pass through this host,
    /// and a folder bucket links the file), across buckets through this host's memory (for
    /// objects the size of a media segment).
    pub async fn copy(
        &self,
        (from_bucket, from_key): (&str, &str),
        (to_bucket, to_key): (&str, &str),
    ) -> Result<(), BucketError> {
        let from = self.key_path(from_bucket, from_key)?;
        let to = self.key_path(to_bucket, to_key)?;
        let read_error = |e| storage_error(from_bucket, from_key, Access::Read, e);
        let error = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => read_error(e),
            e => storage_error(to_bucket, to_key, Access::Write, e),
        };
        if from_bucket == to_bucket {
            return self.store(to_bucket)?.copy(&from, &to).await.map_err(error);
        }
        let got = self
            .reader(from_bucket, from_key)?
            .get(&from)
            .await
            .map_err(read_error)?;
        let bytes = got.bytes().await.map_err(read_error)?;
        self.store(to_bucket)?
            .put(&to, bytes.into())
            .await
            .map(|_| ())
            .map_err(error)
    }
}
