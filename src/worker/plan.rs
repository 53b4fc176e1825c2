//! A split job's planning step, in its task process: once its engine has laid the input out
//! in parts and cut one source per video part and one for the other streams (`Work::Job`
//! with a split asked for), put the sources in the job's scratch and describe the parts for
//! the store (`SplitPlan`). An input the engine did not split it transcoded whole instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::protocol::SplitSettings;
use super::taskio::{Failure, TaskIo};
use crate::job::{JobError, PartKind, PartPlan, Scratch, SplitPlan};
use crate::media::split::Layout;

/// The plan of a job its engine cut into parts: the sources go up to the job's scratch, and
/// the parts are described for the store.
pub(super) fn split(
    io: &TaskIo,
    settings: &SplitSettings,
    layout: Layout,
    files: &[PathBuf],
    phases: &mut BTreeMap<String, f64>,
) -> Result<SplitPlan, Failure> {
    let job = &io.spec.job;
    let version = io
        .runtime
        .block_on(io.buckets.version(&job.input.bucket, &job.input.key))?;
    let cut_dir = io.spec.workspace.join("split");
    let scratch = Scratch::of(&settings.scratch_bucket, &job.id);
    let started = Instant::now();
    upload_sources(io, &scratch, &cut_dir, files)?;
    phases.insert("uploading".into(), started.elapsed().as_secs_f64());
    let plan = SplitPlan {
        parts: parts(&layout),
        scratch,
        input_version: version,
        max_parallel: settings.max_parallel,
        detail: serde_json::to_value(&layout)
            .map_err(|e| Failure::Error(JobError::new("internal", e.to_string(), false)))?,
    };
    eprintln!(
        "[task] split into {} video part(s) of about {} s; sources in {}/{}",
        layout.ranges.len(),
        settings.segment_seconds,
        plan.scratch.bucket,
        plan.scratch.prefix
    );
    Ok(plan)
}

/// The parts of a layout: one per video range, the audio (when there is any), then the
/// assembly, which waits for all of them.
pub(super) fn parts(layout: &Layout) -> Vec<PartPlan> {
    let mut parts: Vec<PartPlan> = layout
        .ranges
        .iter()
        .enumerate()
        .map(|(seq, &(start_us, end_us))| PartPlan {
            seq: seq as u32,
            kind: PartKind::Video,
            start_us,
            end_us,
            after: vec![],
        })
        .collect();
    if layout.has_audio {
        parts.push(PartPlan {
            seq: parts.len() as u32,
            kind: PartKind::Audio,
            start_us: 0,
            end_us: layout.duration_us,
            after: vec![],
        });
    }
    parts.push(PartPlan {
        seq: parts.len() as u32,
        kind: PartKind::Assemble,
        start_us: 0,
        end_us: layout.duration_us,
        after: (0..parts.len() as u32).collect(),
    });
    parts
}

/// Uploads the cut sources under the scratch prefix, keeping their paths below `dir`.
fn upload_sources(
    io: &TaskIo,
    scratch: &Scratch,
    dir: &Path,
    files: &[PathBuf],
) -> Result<(), Failure> {
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(file).to_string_lossy();
        let object = scratch.key(&rel);
        io.put(&object.bucket, &object.key, file)?;
    }
    Ok(())
}
