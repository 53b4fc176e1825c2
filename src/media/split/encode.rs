//! Encoding a split job's pieces with the pipeline `transcode` runs, on the whole input's plan
//! as written down in the layout: a video part decodes its source, keeps the frames of its
//! range and encodes them per rendition into `video_{output}.nut`; the audio part encodes the
//! whole input's audio once (and copies its subtitles) into `audio_{output}.nut`.

use std::path::{Path, PathBuf};

use super::{Layout, SOURCE_SHIFT_US, Stamp, audio_file, publish, segments, staging, video_file};
use crate::job::LoudnessChecked;
use crate::media::error::MediaError;
use crate::media::input::{self, Input};
use crate::media::output::MuxTarget;
use crate::media::pipeline::{self, Ran};
use crate::media::plan::{Plan, VideoWork};
use crate::preset::Preset;
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;

/// Encodes video part `seq` from its source into out_dir: per output file of the plan, its
/// rendition's bitstream as `video_{output}.nut`, every part starting with a keyframe, plus
/// the stamp the assembly checks.
#[allow(clippy::too_many_arguments)] // the contract's signature: one call per part task
pub fn encode_part(
    src: &Path,
    preset: &Preset,
    layout: &Layout,
    seq: u32,
    out_dir: &Path,
    threads: u32,
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), MediaError> {
    let seq = seq as usize;
    check_preset(layout, preset)?;
    let Some(&(start, end)) = layout.ranges.get(seq) else {
        return Err(MediaError::Part {
            path: src.to_path_buf(),
            reason: format!(
                "part {seq} is not in this layout (it has {})",
                layout.ranges.len()
            ),
        });
    };
    let input = input::open(src, stop)?;
    check_source(&input, &[ffmpeg_next::media::Type::Video])?;
    let mut plan = layout.plan.restore(preset)?;
    plan.audio.clear();
    plan.copies.clear();
    set_video_input(&mut plan, threads);
    plan.keep_us = Some(layout.keep_us(seq));
    plan.start_offset_us = SOURCE_SHIFT_US;
    plan.duration = Some((end - start) as f64 / 1e6);
    plan.duration_trusted = false;
    let ran = if layout.segment_us.is_some() {
        let targets = segments::video_targets(layout, &plan, seq, out_dir);
        let ran = run_segments(input, &plan, &targets, out_dir, stop, progress)?;
        segments::list_video(layout, seq, out_dir, &ran.summaries)?;
        ran
    } else {
        let files: Vec<PathBuf> = (0..plan.outputs.len())
            .map(|o| video_file(out_dir, o))
            .collect();
        run(input, &plan, &files, stop, progress)?
    };
    let frames = ran.meter.frames.load(std::sync::atomic::Ordering::Relaxed);
    Stamp {
        layout: layout.fingerprint(),
        seq: Some(seq),
        frames,
    }
    .write(out_dir)?;
    progress(&ran.meter.snapshot(Phase::Done));
    Ok(())
}

/// Encodes the whole input's audio (from src/rest.nut) once into out_dir, and copies its
/// subtitles, as `audio_{output}.nut` per output file of the plan; normalises its loudness
/// where the preset says (measuring it first), and returns what that did.
pub fn encode_audio(
    rest: &Path,
    preset: &Preset,
    layout: &Layout,
    out_dir: &Path,
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<LoudnessChecked>, MediaError> {
    check_preset(layout, preset)?;
    let input = input::open(rest, stop)?;
    let kinds: Vec<_> = layout
        .rest_streams
        .iter()
        .map(|&i| stream_kind(&layout.input, i))
        .collect();
    check_source(&input, &kinds)?;
    let mut plan = layout.plan.restore(preset)?;
    plan.video = None;
    let position = |index: usize| layout.rest_streams.iter().position(|&i| i == index);
    for a in &mut plan.audio {
        a.input = position(a.input).unwrap_or(usize::MAX);
    }
    for s in &mut plan.copies {
        s.input = position(s.input).unwrap_or(usize::MAX);
    }
    plan.start_offset_us = SOURCE_SHIFT_US;
    plan.first_packet_skip = (0..layout.rest_streams.len())
        .zip(layout.rest_skip_samples.iter().copied())
        .filter(|(_, skip)| *skip > 0)
        .collect();
    let ran = if layout.segment_us.is_some() {
        // HLS: one audio rendition that every variant shares.
        keep_first_output(&mut plan);
        let targets = [segments::audio_target(layout, out_dir)];
        let ran = run_segments(input, &plan, &targets, out_dir, stop, progress)?;
        segments::list_audio(out_dir, &ran.summaries)?;
        ran
    } else {
        let files: Vec<PathBuf> = (0..plan.outputs.len())
            .map(|o| audio_file(out_dir, o))
            .collect();
        run(input, &plan, &files, stop, progress)?
    };
    Stamp {
        layout: layout.fingerprint(),
        seq: None,
        frames: 0,
    }
    .write(out_dir)?;
    progress(&ran.meter.snapshot(Phase::Done));
    Ok(ran.loudness.into_iter().map(|(_, l)| l).collect())
}

/// Runs `plan` into NUT files at `files` (one per output), each staged and moved into place
/// when the run succeeds; a stale stamp goes first, so a piece never looks finished early.
fn run(
    input: Input,
    plan: &Plan,
    files: &[PathBuf],
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Ran, MediaError> {
    if let Some(dir) = files.first().and_then(|f| f.parent()) {
        fresh_piece_dir(dir)?;
    }
    let targets: Vec<MuxTarget> = files
        .iter()
        .map(|f| MuxTarget {
            path: staging(f),
            muxer: "nut",
            // NUT cannot hold a negative timestamp and would shift a file that starts with
            // one (B-frame delay, audio priming) on its own: everything moves later by the
            // source shift instead, which the assembly takes off again.
            options: vec![("output_ts_offset".into(), format!("{}us", SOURCE_SHIFT_US))],
        })
        .collect();
    let ran = pipeline::run_plan(input, plan, &targets, stop, progress);
    if ran.is_err() {
        for t in &targets {
            let _ = std::fs::remove_file(&t.path);
        }
    }
    let ran = ran?;
    for (t, f) in targets.iter().zip(files) {
        publish(&t.path, f)?;
    }
    Ok(ran)
}

/// Runs `plan` into segment muxers writing straight into `dir` (a piece's own folder: its
/// stamp, written last, is what says it finished).
fn run_segments(
    input: Input,
    plan: &Plan,
    targets: &[MuxTarget],
    dir: &Path,
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Ran, MediaError> {
    fresh_piece_dir(dir)?;
    pipeline::run_plan(input, plan, targets, stop, progress)
}

/// Makes a piece's folder, without a stale stamp: a piece never looks finished early.
fn fresh_piece_dir(dir: &Path) -> Result<(), MediaError> {
    std::fs::create_dir_all(dir).map_err(|e| MediaError::io(dir, e))?;
    let _ = std::fs::remove_file(dir.join(super::STAMP));
    Ok(())
}

/// Keeps the plan's first output file alone, with what goes to it.
fn keep_first_output(plan: &mut Plan) {
    use crate::media::plan::AudioWork;
    plan.outputs.truncate(1);
    for a in &mut plan.audio {
        match &mut a.work {
            AudioWork::Encode { groups } => {
                for (_, targets) in groups.iter_mut() {
                    targets.retain(|t| t.output == 0);
                }
                groups.retain(|(_, targets)| !targets.is_empty());
            }
            AudioWork::Copy { targets } => targets.retain(|t| t.output == 0),
        }
    }
    plan.audio.retain(|a| match &a.work {
        AudioWork::Encode { groups } => !groups.is_empty(),
        AudioWork::Copy { targets } => !targets.is_empty(),
    });
    // MPEG-TS segments carry no text subtitles.
    plan.copies.clear();
}

fn check_preset(layout: &Layout, preset: &Preset) -> Result<(), MediaError> {
    if layout.preset == preset.name {
        return Ok(());
    }
    Err(MediaError::Unsupported(format!(
        "this split layout was made for preset {}, not {}",
        layout.preset, preset.name
    )))
}

/// A piece's source must hold exactly the streams the cut wrote to it.
fn check_source(input: &Input, kinds: &[ffmpeg_next::media::Type]) -> Result<(), MediaError> {
    let found: Vec<_> = input
        .ctx
        .streams()
        .map(|s| s.parameters().medium())
        .collect();
    if found == kinds {
        return Ok(());
    }
    Err(MediaError::Part {
        path: input.path.clone(),
        reason: format!("it holds streams {found:?}, not the {kinds:?} this layout cut"),
    })
}

fn stream_kind(probe: &crate::media::ProbeReport, index: usize) -> ffmpeg_next::media::Type {
    use ffmpeg_next::media::Type;
    match probe.streams.get(index).map(|s| s.kind.as_str()) {
        Some("audio") => Type::Audio,
        Some("subtitle") => Type::Subtitle,
        Some("video") => Type::Video,
        _ => Type::Unknown,
    }
}

/// The part's source holds the video alone, as stream 0; its encoders get `threads`.
fn set_video_input(plan: &mut Plan, threads: u32) {
    if let Some(v) = plan.video.as_mut() {
        v.input = 0;
        if let VideoWork::Encode { renditions, .. } = &mut v.work {
            for r in renditions {
                r.spec.threads = threads;
            }
        }
    }
}
