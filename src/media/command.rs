//! The `ffmpeg` command line equivalent to a planned transcode: the same filters, encoder
//! options and muxer options, spelled as the command line takes them. Shown by
//! `ffarm transcode --print-ffmpeg` and used by the engine benchmark, so "equivalent
//! settings" are derived from one place rather than written twice.
//!
//! Loudness normalisation is two passes: the first, measuring, is run here too, so the
//! command's `loudnorm` carries the values ffarm measured (and runs as ffarm's second pass).
//!
//! What the command line cannot say exactly: a rate grid is spelled as the `fps` filter,
//! which picks the same frames but also repeats frames to fill the ticks a variable-rate
//! source leaves empty (ffarm leaves them empty); a source that changes picture size
//! mid-stream is stretched by the command line, letterboxed by ffarm; `loudnorm` starts its
//! output's timestamps at zero, which ffarm puts back where the audio began; HDR is decided
//! here from the stream's tags, while ffarm also tone-maps pictures only the frames call HDR
//! (HLG signalled in an SEI); and the mastering-display and light-level metadata ffarm passes
//! on from kept HDR frames (into x265's SEI and the container) is not spelled out.

use std::path::Path;

use super::encode::AudioEncoderSpec;
use super::error::MediaError;
use super::ffi::{self, StreamFacts};
use super::geometry::{self, DEINTERLACE, Rotation};
use super::hdr::{self, HdrColour};
use super::input::{self, Input};
use super::loudness;
use super::output::{Layout, MuxTarget};
use super::pipeline::measure::{self, GroupMeasure, Measures};
use super::plan::{self, AudioWork, Plan, RenditionPlan, VideoWork};
use super::probe;
use crate::job::Clip;
use crate::preset::{Container, Preset, VideoCodec};
use crate::stop::StopToken;

/// The arguments after `ffmpeg` that make what `transcode(input, output, preset)` makes,
/// of `clip` when one is given (an input seek, `-ss`, and an output length, `-t`).
pub fn equivalent_command(
    input_path: &Path,
    output: &Path,
    preset: &Preset,
    clip: Option<&Clip>,
) -> Result<Vec<String>, MediaError> {
    let input = input::open(input_path, &StopToken::new())?;
    let report = probe::report(&input);
    let mut plan = plan::plan(&input, &report, preset)?;
    if let Some(clip) = clip {
        plan::clip(&mut plan, clip, preset, input_path)?;
    }
    let measures = measure::measure(input_path, &plan, &StopToken::new(), &mut |_| {})?;
    // The layout is only used for names: nothing is written.
    let layout = Layout::describe(output, preset, &plan.renditions())?;
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-y"]
        .map(String::from)
        .to_vec();
    if let Some(clip) = clip {
        args.extend(["-ss".into(), format!("{:.6}", clip.start)]);
    }
    args.extend(["-i".into(), input_path.display().to_string()]);
    let mut per_output: Vec<Vec<String>> = vec![Vec::new(); plan.outputs.len()];
    let graph = map_video(&input, &plan, &mut per_output);
    map_audio(&plan, &measures, &mut per_output);
    map_subtitles(&plan, &mut per_output);
    if !graph.is_empty() {
        args.extend(["-filter_complex".into(), graph.join(";")]);
    }
    for (i, target) in layout.targets.iter().enumerate() {
        args.append(&mut per_output[i]);
        args.extend(output_args(&plan, preset, &layout, target));
    }
    Ok(args)
}

/// Maps the video into its outputs, copied or encoded; returns the `-filter_complex` graph
/// a ladder's renditions are split in (empty for one rendition, filtered with `-vf`).
fn map_video(input: &Input, plan: &Plan, per_output: &mut [Vec<String>]) -> Vec<String> {
    let Some(v) = &plan.video else {
        return Vec::new();
    };
    match &v.work {
        VideoWork::Copy { targets } => {
            for t in targets {
                per_output[t.output].extend(strings(&[
                    "-map",
                    &format!("0:{}", v.input),
                    "-c:v",
                    "copy",
                ]));
            }
            Vec::new()
        }
        VideoWork::Encode {
            deinterlace,
            rotation,
            frame_rate,
            hdr,
            renditions,
        } => {
            let facts = input
                .ctx
                .stream(v.input)
                .map(|s| ffi::stream_facts(&s))
                .unwrap_or_default();
            let picture = upright_picture(&facts, *rotation);
            let mut pre = pre_filters(*deinterlace, *rotation);
            // Tone-mapped once before the renditions when all of them tone-map.
            let once = hdr::tonemap_once(renditions.iter().map(|r| r.hdr));
            let own_hdr = match hdr {
                Some(c) if once => {
                    pre.push(c.tonemap_chain());
                    None
                }
                _ => hdr.as_ref(),
            };
            let fps = frame_rate.map_or(25.0, f64::from);
            let p = (picture, own_hdr);
            if renditions.len() == 1 {
                map_rendition(v.input, &renditions[0], &pre, p, fps, per_output);
                Vec::new()
            } else {
                map_ladder(v.input, renditions, &pre, p, fps, per_output)
            }
        }
    }
}

/// The source picture as the renditions are fitted to it.
#[derive(Debug, Clone, Copy)]
struct Picture {
    width: u32,
    height: u32,
    sar: (i32, i32),
}

/// The source's size and sample aspect ratio, turned when the rotation turns the picture.
fn upright_picture(facts: &StreamFacts, rotation: Rotation) -> Picture {
    let (mut w, mut h) = (facts.width, facts.height);
    let mut sar = facts.sample_aspect_ratio.unwrap_or((1, 1));
    if rotation
        .filters()
        .first()
        .is_some_and(|x| x.starts_with("transpose"))
    {
        std::mem::swap(&mut w, &mut h);
        sar = (sar.1, sar.0);
    }
    Picture {
        width: w,
        height: h,
        sar,
    }
}

/// The filters every rendition shares, before any scaling: deinterlacing and rotation.
fn pre_filters(deinterlace: bool, rotation: Rotation) -> Vec<String> {
    let mut pre: Vec<String> = Vec::new();
    if deinterlace {
        pre.push(DEINTERLACE.into());
    }
    pre.extend(rotation.filters().iter().map(|s| s.to_string()));
    pre
}

/// The source picture, and its HDR colour when the renditions deal with it themselves.
type Source<'a> = (Picture, Option<&'a HdrColour>);

/// A rendition's own filters: tone map or HDR tag, scaling, pixel format and the rate grid.
fn rendition_chain(r: &RenditionPlan, (p, hdr): Source) -> String {
    let size = geometry::fit(p.width, p.height, p.sar, r.max_width, r.max_height);
    let picture = geometry::picture_chain(
        size,
        size,
        &r.spec.pixel_format,
        r.grid.map(|g| (g.numerator(), g.denominator())),
    );
    match hdr::planned_filters(r.hdr, hdr) {
        Some(hdr) => format!("{hdr},{picture}"),
        None => picture,
    }
}

/// One rendition: its filters as `-vf`, then its encoder.
fn map_rendition(
    input_index: usize,
    r: &RenditionPlan,
    pre: &[String],
    picture: Source,
    fps: f64,
    per_output: &mut [Vec<String>],
) {
    let mut filters = pre.to_vec();
    if let Some(t) = r.tiles {
        // A thumbnail per interval, as the storyboard's picking does.
        filters.push(format!("fps=1/{}:round=down", t.interval_seconds));
    }
    filters.push(rendition_chain(r, picture));
    if let Some(t) = r.tiles {
        filters.push(format!("tile={}x{}", t.columns, t.rows));
    }
    let o = &mut per_output[r.target.output];
    o.extend(strings(&[
        "-map",
        &format!("0:{input_index}"),
        "-vf",
        &filters.join(","),
    ]));
    o.extend(video_encoder_args(r, fps));
}

/// A ladder: the shared filters once, split into a branch per rendition; returns that graph.
fn map_ladder(
    input_index: usize,
    renditions: &[RenditionPlan],
    pre: &[String],
    picture: Source,
    fps: f64,
    per_output: &mut [Vec<String>],
) -> Vec<String> {
    let mut graph: Vec<String> = Vec::new();
    let head = if pre.is_empty() {
        String::new()
    } else {
        format!("{},", pre.join(","))
    };
    graph.push(format!(
        "[0:{input_index}]{head}split={}{}",
        renditions.len(),
        (0..renditions.len())
            .map(|i| format!("[s{i}]"))
            .collect::<String>()
    ));
    for (i, r) in renditions.iter().enumerate() {
        graph.push(format!("[s{i}]{}[v{i}]", rendition_chain(r, picture)));
        let o = &mut per_output[r.target.output];
        o.extend(strings(&["-map", &format!("[v{i}]")]));
        o.extend(video_encoder_args(r, fps));
    }
    graph
}

/// Maps each audio stream into its outputs, copied or encoded (and normalised as the first
/// pass's `measures` say).
fn map_audio(plan: &Plan, measures: &Measures, per_output: &mut [Vec<String>]) {
    for (i, a) in plan.audio.iter().enumerate() {
        match &a.work {
            AudioWork::Copy { targets } => {
                for t in targets {
                    per_output[t.output].extend(strings(&[
                        "-map",
                        &format!("0:{}", a.input),
                        "-c:a",
                        "copy",
                    ]));
                }
            }
            AudioWork::Encode { groups } => {
                for (g, (spec, targets)) in groups.iter().enumerate() {
                    let measured = measures.get(i).and_then(|m| m.get(g)).copied().flatten();
                    let filter = measured.and_then(|m| normalise_filter(spec, &m));
                    for t in targets {
                        let o = &mut per_output[t.output];
                        o.extend(strings(&["-map", &format!("0:{}", a.input)]));
                        if let Some(f) = &filter {
                            o.extend(["-af".to_string(), f.clone()]);
                        }
                        o.extend(audio_encoder_args(spec));
                    }
                }
            }
        }
    }
}

/// ffarm's second pass as one filter chain: into the encoder's format (as the first pass
/// measured it), `loudnorm`, and back into that format; None when there is nothing to
/// normalise.
fn normalise_filter(spec: &AudioEncoderSpec, m: &GroupMeasure) -> Option<String> {
    let (loudnorm, _) = loudness::normalisation(spec.loudness.as_ref()?, &m.measured)?;
    let convert = m.format.conversion();
    Some(format!("{convert},{loudnorm},{convert}"))
}

/// Maps each copied subtitle stream into its output.
fn map_subtitles(plan: &Plan, per_output: &mut [Vec<String>]) {
    for s in &plan.copies {
        for t in &s.targets {
            per_output[t.output].extend(strings(&[
                "-map",
                &format!("0:{}", s.input),
                "-c:s",
                "copy",
            ]));
        }
    }
}

/// What follows an output's streams: the HEVC tag, a poster's time, then the muxer, its
/// options and the file name.
fn output_args(plan: &Plan, preset: &Preset, layout: &Layout, target: &MuxTarget) -> Vec<String> {
    let mut args = Vec::new();
    if matches!(preset.container, Container::Mp4 | Container::Mov)
        && plan.video.as_ref().is_some_and(|v| matches!(&v.work, VideoWork::Encode { renditions, .. } if renditions[0].spec.codec == VideoCodec::Hevc))
    {
        args.extend(strings(&["-tag:v", "hvc1"]));
    }
    if let Some(length) = plan.clip_us.filter(|l| *l < i64::MAX) {
        args.extend(["-t".into(), format!("{:.6}", length as f64 / 1e6)]);
    }
    if plan.poster_at.is_some() {
        args.extend(strings(&[
            "-ss",
            &format!("{:.3}", plan.poster_at.unwrap_or(0.0)),
            "-frames:v",
            "1",
        ]));
    }
    args.extend(["-f".into(), target.muxer.to_string()]);
    for (k, v) in &target.options {
        let v = if k == "hls_segment_filename" {
            layout.published_path(Path::new(v)).display().to_string()
        } else {
            v.clone()
        };
        args.extend([format!("-{k}"), v]);
    }
    args.push(layout.published_path(&target.path).display().to_string());
    args
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn audio_encoder_args(spec: &AudioEncoderSpec) -> Vec<String> {
    let mut o = strings(&["-c:a", spec.codec.encoder()]);
    for (k, v) in &spec.options {
        o.extend([format!("-{k}:a"), v.clone()]);
    }
    if let Some(ch) = spec.channels {
        o.extend(["-ac".into(), ch.min(spec.codec.max_channels()).to_string()]);
    }
    if let Some(sr) = spec.sample_rate {
        o.extend(["-ar".into(), sr.to_string()]);
    }
    o
}

fn video_encoder_args(r: &RenditionPlan, fps: f64) -> Vec<String> {
    let mut o = strings(&["-c:v", r.spec.codec.encoder()]);
    for (k, v) in &r.spec.options {
        o.extend([format!("-{k}:v"), v.clone()]);
    }
    if let Some(q) = r.spec.fixed_quality {
        o.extend(["-q:v".into(), q.to_string()]);
    }
    let rate = r.grid.map_or(fps, f64::from);
    o.extend([
        "-g".into(),
        ((r.spec.keyframe_seconds * rate).round().max(1.0) as u32).to_string(),
    ]);
    if let Some(step) = r.spec.force_keyframes_every {
        o.extend([
            "-force_key_frames".into(),
            format!("expr:gte(t,n_forced*{step})"),
        ]);
    }
    // ffarm keeps the source's timestamps unless it resamples the rate in the filter.
    o.extend(strings(&["-fps_mode", "passthrough"]));
    o
}
