//! A split job's planning step, in its task process: when the input is long enough and the
//! preset encodes video, choose the parts (`media::split::layout`), cut the input into one
//! source per video part and one for the other streams (`media::split::cut`), put them in the
//! job's scratch and describe the parts for the store (`SplitPlan`). Otherwise the task goes
//! on to transcode the job in one piece.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::protocol::SplitSettings;
use super::taskio::{Failure, TaskIo};
use crate::engine::{Access, Work};
use crate::job::{JobError, PartKind, PartPlan, Scratch, SplitPlan};
use crate::media::{self, split::Layout};
use crate::preset::Preset;

/// Plans and cuts the job, or says why it runs whole (None).
pub(super) fn split(
    io: &TaskIo,
    settings: &SplitSettings,
    preset: &Preset,
    probe: &media::ProbeReport,
    input: &Path,
    phases: &mut BTreeMap<String, f64>,
) -> Result<Option<SplitPlan>, Failure> {
    let seconds = probe.duration_seconds.unwrap_or(0.0);
    if settings.min_seconds > 0 && seconds < f64::from(settings.min_seconds) {
        eprintln!(
            "[task] not split: the input lasts {seconds:.1} s, under chunking.min_seconds ({})",
            settings.min_seconds
        );
        return Ok(None);
    }
    let started = Instant::now();
    let layout: Option<Layout> = io.media(
        Work::Layout {
            input: input.to_path_buf(),
            segment_seconds: settings.segment_seconds,
        },
        Access::read(input),
        &mut |_| {},
    )?;
    let Some(layout) = layout else {
        eprintln!(
            "[task] not split: preset {} does not encode video, or the input is shorter than \
             two parts of {} s",
            preset.name, settings.segment_seconds
        );
        return Ok(None);
    };
    let job = &io.spec.job;
    let version = io
        .runtime
        .block_on(io.buckets.version(&job.input.bucket, &job.input.key))?;
    let cut_dir = io.spec.workspace.join("split");
    let files: Vec<PathBuf> = io.media(
        Work::Cut {
            input: input.to_path_buf(),
            layout: Box::new(layout.clone()),
            dir: cut_dir.clone(),
        },
        Access::read(input).writing(&cut_dir),
        &mut |_| {},
    )?;
    phases.insert("splitting".into(), started.elapsed().as_secs_f64());
    let scratch = Scratch::of(&settings.scratch_bucket, &job.id);
    let started = Instant::now();
    upload_sources(io, &scratch, &cut_dir, &files)?;
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
    Ok(Some(plan))
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
