//! The janitor of split jobs' scratch: once a split job has ended (at once when it
//! succeeded or was cancelled, after `worker.keep_failed_workspace_seconds` when it failed,
//! like a failed task's workspace), its parts are forgotten and the objects under its scratch
//! prefix deleted. Any worker may do it; the store hands each job's scratch to one of them.

use std::time::Duration;

use crate::buckets::Buckets;
use crate::config::Config;
use crate::store::JobStore;

/// Removes the scratch of ended split jobs that is due (a batch per call).
pub async fn sweep(store: &dyn JobStore, config: &Config) {
    let keep = Duration::from_secs(config.worker.keep_failed_workspace_seconds);
    let due = match store.scratch_due(keep, 20).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!("finding split jobs' scratch to remove: {e}");
            return;
        }
    };
    if due.is_empty() {
        return;
    }
    let buckets = match Buckets::new(&config.data_dir, config.buckets.clone()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("removing split jobs' scratch: {e}");
            return;
        }
    };
    for (job, scratch) in due {
        match store.forget_scratch(&job).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("job {job}: forgetting its parts: {e}");
                continue;
            }
        }
        match buckets.delete_under(&scratch.bucket, &scratch.prefix).await {
            Ok(n) => tracing::info!(
                "job {job}: removed its scratch ({n} object(s) under {}/{})",
                scratch.bucket,
                scratch.prefix
            ),
            Err(e) => tracing::warn!(
                "job {job}: removing its scratch {}/{}: {e}",
                scratch.bucket,
                scratch.prefix
            ),
        }
    }
}
