//! A job's HLS segment key on its way to the task (decision 0082): made and stored the
//! first time an attempt of a job whose presets encrypt starts, the same stored key for
//! every later attempt, with the URI `[api] key_uri` gives players.

use super::WorkerCtx;
use super::unit::Unit;
use crate::job::{JobError, SegmentKey, key_uri, presets_of};
use crate::media;
use crate::preset::Presets;

/// The key the unit's task encrypts with: a whole job whose presets encrypt; None for
/// anything else (a split job's parts never encrypt: such presets run whole).
pub(super) async fn for_unit(ctx: &WorkerCtx, unit: &Unit) -> Result<Option<SegmentKey>, JobError> {
    let Unit::Job(job) = unit else {
        return Ok(None);
    };
    let dir = ctx.config.presets_dir.clone();
    let names = presets_of(&job.preset);
    let encrypts = tokio::task::spawn_blocking(move || {
        // A preset that does not load fails the task with its own error; here it encrypts
        // nothing.
        let presets = Presets::load(dir.as_deref(), &media::caps::Ffmpeg).ok()?;
        Some(
            names
                .iter()
                .any(|n| presets.get(n).is_ok_and(|p| p.encrypts())),
        )
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false);
    if !encrypts {
        return Ok(None);
    }
    let new = SegmentKey::generate()
        .map_err(|e| JobError::new("internal", format!("making a segment key: {e}"), true))?;
    let key = ctx.store.segment_key(&job.id, new).await.map_err(|e| {
        JobError::new(
            "store-unavailable",
            format!("storing the job's segment key: {e}"),
            true,
        )
    })?;
    Ok(Some(SegmentKey {
        key,
        uri: key_uri(&ctx.config.api.key_uri, &job.id),
    }))
}
