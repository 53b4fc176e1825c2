//! A transcode's outputs as a whole: one or several presets' outputs planned, merged into
//! one run (`plan::merge`), staged and moved into place together, then each read back and
//! checked (`verify`) before the run counts as done; any failure takes every output away.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::captions::RunCaptions;
use super::{Ran, TranscodeReport, finalise_outputs, run_plan};
use crate::job::{Clip, SegmentKey};
use crate::media::captions::CaptionEdits;
use crate::media::error::MediaError;
use crate::media::input;
use crate::media::output::{Layout, MuxTarget, OutputFile};
use crate::media::plan::{self, Plan};
use crate::media::probe::{self, ProbeReport};
use crate::media::quality;
use crate::media::verify::{self, Expect, OutputCheck};
use crate::media::watermark::{self, Logo, Overlay};
use crate::preset::{Container, Preset};
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One output a transcode writes: where, with which preset.
pub struct OutputSpec<'a> {
    pub path: &'a Path,
    pub preset: &'a Preset,
}

/// What a transcode does to its media beyond its presets, for every output alike.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Edits {
    /// Only this part of the input (`plan::clip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<Clip>,
    /// Per output (in the order of the outputs asked for), the watermark composited on its
    /// video, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<Option<Overlay>>,
    /// Measure every video output's SSIM and PSNR (besides those whose preset asks).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quality: bool,
    /// The audio tracks to keep, by language (canonical ISO 639 codes), over every preset's
    /// own `[audio] languages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_languages: Option<Vec<String>>,
    /// Caption files, side files and burn-in asked beyond the presets.
    #[serde(default, skip_serializing_if = "CaptionEdits::is_empty")]
    pub captions: CaptionEdits,
    /// The job's key, for the outputs whose preset encrypts its HLS segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_key: Option<SegmentKey>,
}

/// Transcodes `input` to `output` with `preset`. `on_progress` is called on this thread at
/// least once a second; `stop` ends the run within a fraction of a second, removing partial
/// output, with [`MediaError::Stopped`].
pub fn transcode(
    input: &Path,
    output: &Path,
    preset: &Preset,
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TranscodeReport, MediaError> {
    transcode_many(
        input,
        &[OutputSpec {
            path: output,
            preset,
        }],
        stop,
        on_progress,
    )
}

/// Transcodes `input` to every output in `outputs` from one read and one decode of each
/// stream it uses (see `plan::merge`); every output is written, or none. Progress and stop
/// as for [`transcode`].
pub fn transcode_many(
    input: &Path,
    outputs: &[OutputSpec],
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TranscodeReport, MediaError> {
    transcode_many_then(
        input,
        outputs,
        &Edits::default(),
        stop,
        on_progress,
        &mut |_: &[OutputFile]| {},
    )
}

/// [`transcode_many`] with `edits`, calling `before_check` once the outputs are in place and
/// before they are read back (where a test fault damages one).
pub fn transcode_many_then(
    input: &Path,
    outputs: &[OutputSpec],
    edits: &Edits,
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
    before_check: &mut dyn FnMut(&[OutputFile]),
) -> Result<TranscodeReport, MediaError> {
    let started = Instant::now();
    on_progress(&Progress {
        phase: Phase::Probing,
        ..Progress::default()
    });
    let source = input;
    let input = input::open(input, stop)?;
    let probe = probe::report(&input);
    let logos = load_logos(edits, stop)?;
    let presets: Vec<&Preset> = outputs.iter().map(|o| o.preset).collect();
    let mut captions = RunCaptions::gather(source, &probe, &presets, &edits.captions, stop)?;
    let mut plans = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| edited_plan(&input, &probe, o.preset, edits, logos.get(i)))
        .collect::<Result<Vec<_>, _>>()?;
    no_quality_on_encrypted(outputs, edits)?;
    captions.shape_plans(&mut plans);
    let layouts = layouts(outputs, &plans, edits.segment_key.as_ref())?;
    if let Err(e) = captions.burn_in(&mut plans, &layouts) {
        layouts.into_iter().for_each(Layout::discard);
        return Err(e);
    }
    let renditions: Vec<Vec<Option<String>>> = plans.iter().map(Plan::renditions).collect();
    let mut plan = plan::merge(plans)?;
    let sizes: Vec<usize> = layouts.iter().map(|l| l.targets.len()).collect();
    captions.embed(&mut plan, &sizes);
    let mut expected = expectations(&layouts, outputs, &plan, &probe);
    for ((_, _, expect), o) in expected.iter_mut().zip(outputs) {
        if o.preset.encrypts() {
            expect.key = edits.segment_key.as_ref().map(|k| k.key);
        }
    }
    let targets: Vec<MuxTarget> = layouts
        .iter()
        .flat_map(|l| l.targets.iter().cloned())
        .collect();
    let ran = match run_plan(input, &plan, &targets, stop, on_progress) {
        Ok(ran) => ran,
        Err(e) => {
            layouts.into_iter().for_each(Layout::discard);
            return Err(e);
        }
    };
    on_progress(&ran.meter.snapshot(Phase::Finalizing));
    let files = finalise_all(layouts, &ran, outputs, &plan, &captions)?;
    before_check(&files);
    let measured = check_all(&expected).and_then(|checks| {
        let checks = with_loudness(checks, &sizes, &ran);
        let wanted = |i: usize| edits.quality || outputs[i].preset.quality;
        let asked = Asked {
            plan: &plan,
            source,
            expected: &expected,
            renditions: &renditions,
        };
        with_quality(checks, &asked, &wanted, &ran, stop, on_progress)
    });
    let checks = match measured {
        Ok(checks) => checks,
        Err(e) => {
            remove_files(&files);
            return Err(e);
        }
    };
    let done = ran.meter.snapshot(Phase::Done);
    on_progress(&done);
    let input_damage = ran.meter.damaged.load(std::sync::atomic::Ordering::Relaxed);
    Ok(TranscodeReport {
        outputs: files,
        checks,
        input_damage,
        input: probe,
        frames: done.frames,
        out_time_seconds: done.out_time_seconds,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the quality figures of a run's outputs are measured from.
struct Asked<'a> {
    plan: &'a Plan,
    source: &'a Path,
    expected: &'a [(PathBuf, Container, Expect)],
    renditions: &'a [Vec<Option<String>>],
}

/// Puts on each output's check its SSIM and PSNR, for the outputs `wanted` says.
fn with_quality(
    mut checks: Vec<OutputCheck>,
    asked: &Asked,
    wanted: &dyn Fn(usize) -> bool,
    ran: &Ran,
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<OutputCheck>, MediaError> {
    let Some(reference) = quality::Reference::of(asked.plan, asked.source) else {
        return Ok(checks);
    };
    for (i, (check, (top, container, _))) in checks.iter_mut().zip(asked.expected).enumerate() {
        if wanted(i) {
            // Frames compared count as progress: a long comparison is not a stall.
            let base = ran.meter.snapshot(Phase::Finalizing);
            let mut compared = |n: u64| {
                on_progress(&Progress {
                    frames: base.frames + n,
                    ..base.clone()
                })
            };
            let (r, c) = (&asked.renditions[i], *container);
            check.quality = quality::measure_output(&reference, top, c, r, stop, &mut compared)?;
        }
    }
    Ok(checks)
}

/// Quality figures are not measured on encrypted segments: asking for both is an error.
fn no_quality_on_encrypted(outputs: &[OutputSpec], edits: &Edits) -> Result<(), MediaError> {
    match outputs
        .iter()
        .find(|o| o.preset.encrypts() && (edits.quality || o.preset.quality))
    {
        Some(o) => Err(MediaError::Unsupported(format!(
            "preset {} encrypts its segments; quality figures are not measured on them",
            o.preset.name
        ))),
        None => Ok(()),
    }
}

/// Each output's watermark, decoded (one decode per image: outputs often share one).
fn load_logos(edits: &Edits, stop: &StopToken) -> Result<Vec<Option<Arc<Logo>>>, MediaError> {
    let mut loaded: Vec<(&Path, Arc<Logo>)> = Vec::new();
    let mut logos = Vec::new();
    for overlay in &edits.overlays {
        let Some(o) = overlay else {
            logos.push(None);
            continue;
        };
        let logo = match loaded
            .iter()
            .find(|(p, l)| *p == o.image && l.placement == o.placement)
        {
            Some((_, l)) => l.clone(),
            None => {
                let l = watermark::load(o, stop)?;
                loaded.push((&o.image, l.clone()));
                l
            }
        };
        logos.push(Some(logo));
    }
    Ok(logos)
}

/// The plan for one output's preset, with the edits applied.
fn edited_plan(
    input: &input::Input,
    probe: &ProbeReport,
    preset: &Preset,
    edits: &Edits,
    logo: Option<&Option<Arc<Logo>>>,
) -> Result<Plan, MediaError> {
    let mut plan = match &edits.audio_languages {
        Some(languages) => {
            let mut chosen = preset.clone();
            chosen.audio_languages = languages.clone();
            plan::plan(input, probe, &chosen)?
        }
        None => plan::plan(input, probe, preset)?,
    };
    if let Some(clip) = &edits.clip {
        plan::clip(&mut plan, clip, preset, &input.path)?;
    }
    if let Some(Some(logo)) = logo {
        plan.watermark(logo);
    }
    Ok(plan)
}

/// Each output's top file, container and what it must hold, from the merged plan (an
/// output's first file stands for it: an HLS ladder's variants all carry the same streams;
/// a clip's length is the one to match).
fn expectations(
    layouts: &[Layout],
    outputs: &[OutputSpec],
    plan: &Plan,
    probe: &ProbeReport,
) -> Vec<(PathBuf, Container, Expect)> {
    let mut at = 0;
    let mut expected = Vec::new();
    for (layout, o) in layouts.iter().zip(outputs) {
        // What the output carries in any of its files: a ladder's variants carry the same
        // streams, or the video while audio renditions of their own carry the audio.
        let (video, audio) = (at..at + layout.targets.len())
            .map(|o| plan.carries(o, probe))
            .fold((false, false), |(v, a), (ov, oa)| (v || ov, a || oa));
        let mut expect = Expect::of(probe, video, audio, plan.duration_trusted);
        if plan.clip_us.is_some() {
            expect.duration = plan.duration.filter(|_| plan.duration_trusted);
        }
        expected.push((layout.top_path(), o.preset.container, expect));
        at += layout.targets.len();
    }
    expected
}

/// Checks every output; the first that is not whole is the error.
fn check_all(expected: &[(PathBuf, Container, Expect)]) -> Result<Vec<OutputCheck>, MediaError> {
    expected
        .iter()
        .map(|(path, container, expect)| verify::check(*container, path, expect))
        .collect()
}

/// Puts on each output's check what loudness normalisation did to the audio it carries
/// (output `i` being the run's files `sizes[..i].sum()..` on, `sizes[i]` of them), once per
/// input stream: an HLS ladder's variants each have their encoder, measured alike.
fn with_loudness(mut checks: Vec<OutputCheck>, sizes: &[usize], ran: &Ran) -> Vec<OutputCheck> {
    let mut at = 0;
    for (check, n) in checks.iter_mut().zip(sizes) {
        let files = at..at + n;
        for (outputs, checked) in &ran.loudness {
            let here = outputs.iter().any(|o| files.contains(o));
            if here && !check.loudness.iter().any(|c| c.stream == checked.stream) {
                check.loudness.push(checked.clone());
            }
        }
        at += n;
    }
    checks
}

/// The staging layout of each output (made before the plans merge, from each one's
/// renditions), its segments encrypted with `key` where its preset asks (a preset that
/// encrypts without a key is refused); on a failure, the ones already made are taken away
/// again.
fn layouts(
    outputs: &[OutputSpec],
    plans: &[Plan],
    key: Option<&SegmentKey>,
) -> Result<Vec<Layout>, MediaError> {
    if let Some(o) = outputs
        .iter()
        .find(|o| o.preset.encrypts() && key.is_none())
    {
        return Err(MediaError::Unsupported(format!(
            "preset {} encrypts its segments and no key was given",
            o.preset.name
        )));
    }
    let mut layouts = Vec::new();
    for (o, p) in outputs.iter().zip(plans) {
        match Layout::new(o.path, o.preset, &p.renditions()) {
            Ok(mut l) => {
                let encrypted = match key.filter(|_| o.preset.encrypts()) {
                    Some(key) => l.encrypt(key),
                    None => Ok(()),
                };
                layouts.push(l);
                if let Err(e) = encrypted {
                    layouts.into_iter().for_each(Layout::discard);
                    return Err(e);
                }
            }
            Err(e) => {
                layouts.into_iter().for_each(Layout::discard);
                return Err(e);
            }
        }
    }
    Ok(layouts)
}

/// Finishes every output's files (each with its own muxers' summaries), in order; the
/// first failure takes every output away.
fn finalise_all(
    layouts: Vec<Layout>,
    ran: &Ran,
    outputs: &[OutputSpec],
    plan: &Plan,
    captions: &RunCaptions,
) -> Result<Vec<OutputFile>, MediaError> {
    let summaries = &ran.summaries;
    let members = plan.audio_members();
    let mut files = Vec::new();
    let mut at = 0;
    let mut layouts = layouts.into_iter();
    for (i, o) in outputs.iter().enumerate() {
        let Some(layout) = layouts.next() else { break };
        let n = layout.targets.len();
        let top = layout.top_path();
        // A layout dropped unsettled (the cues failed) takes its staged files with it.
        let cues = write_storyboard_cues(&layout, ran, at, o.preset, plan.duration);
        let finished = cues
            .and_then(|()| captions.write_hls(i, &layout, plan))
            .and_then(|subs| {
                finalise_outputs(
                    layout,
                    &summaries[at..at + n],
                    o.preset,
                    &members[at..at + n],
                    &subs,
                )
            })
            .and_then(|mut made| match captions.write_side_files(i, &top, plan) {
                Ok(mut side) => {
                    made.append(&mut side);
                    Ok(made)
                }
                Err(e) => {
                    remove_files(&made);
                    Err(e)
                }
            });
        match finished {
            Ok(mut made) => files.append(&mut made),
            Err(e) => {
                layouts.for_each(Layout::discard);
                remove_files(&files);
                return Err(e);
            }
        }
        at += n;
    }
    Ok(files)
}

/// A storyboard's WebVTT file, from what its rendition tiled (output `at` of the run).
fn write_storyboard_cues(
    layout: &Layout,
    ran: &Ran,
    at: usize,
    preset: &Preset,
    duration: Option<f64>,
) -> Result<(), MediaError> {
    let (Some((path, stem)), Some(grid)) = (layout.staged_cues(), preset.storyboard) else {
        return Ok(());
    };
    let streams = ran.summaries.get(at).cloned().flatten().unwrap_or_default();
    let sheet = streams
        .iter()
        .find(|s| s.width > 0)
        .map_or((0, 0), |s| (s.width, s.height));
    let sheets = crate::media::storyboard::Sheets {
        stem: &stem,
        count: ran.meter.pictures(at),
        sheet,
        grid,
        duration,
    };
    crate::media::storyboard::write_cues(&path, &sheets)
}

/// Removes files an earlier output of the same run had moved into place.
fn remove_files(files: &[OutputFile]) {
    for f in files {
        let _ = std::fs::remove_file(&f.path);
    }
}
