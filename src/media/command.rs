//! The `ffmpeg` command line equivalent to a planned transcode: the same filters, encoder
//! options and muxer options, spelled as the command line takes them. Shown by
//! `ffarm transcode --print-ffmpeg` and used by the engine benchmark, so "equivalent
//! settings" are derived from one place rather than written twice.
//!
//! Two things the command line cannot say exactly: a rate grid is spelled as the `fps`
//! filter, which picks the same frames but also repeats frames to fill the ticks a
//! variable-rate source leaves empty (ffarm leaves them empty); and a source that changes
//! picture size mid-stream is stretched by the command line, letterboxed by ffarm.

use std::path::Path;

use super::error::MediaError;
use super::geometry::{self, DEINTERLACE};
use super::input;
use super::output::Layout;
use super::plan::{self, AudioWork, RenditionPlan, VideoWork};
use super::probe;
use crate::preset::{Container, Preset, VideoCodec};
use crate::stop::StopToken;

/// The arguments after `ffmpeg` that make what `transcode(input, output, preset)` makes.
pub fn equivalent_command(
    input_path: &Path,
    output: &Path,
    preset: &Preset,
) -> Result<Vec<String>, MediaError> {
    let input = input::open(input_path, &StopToken::new())?;
    let report = probe::report(&input);
    let plan = plan::plan(&input, &report, preset)?;
    // The layout is only used for names: nothing is written.
    let layout = Layout::describe(output, preset, &plan.renditions())?;
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-y", "-i"]
        .map(String::from)
        .to_vec();
    args.push(input_path.display().to_string());

    let facts = plan.video.as_ref().and_then(|v| {
        input
            .ctx
            .stream(v.input)
            .map(|s| super::ffi::stream_facts(&s))
    });
    let mut per_output: Vec<Vec<String>> = vec![Vec::new(); plan.outputs.len()];
    let mut graph: Vec<String> = Vec::new();

    if let Some(v) = &plan.video {
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
            }
            VideoWork::Encode {
                deinterlace,
                rotation,
                frame_rate,
                renditions,
            } => {
                let f = facts.clone().unwrap_or_default();
                let (mut w, mut h) = (f.width, f.height);
                let mut sar = f.sample_aspect_ratio.unwrap_or((1, 1));
                if rotation
                    .filters()
                    .first()
                    .is_some_and(|x| x.starts_with("transpose"))
                {
                    std::mem::swap(&mut w, &mut h);
                    sar = (sar.1, sar.0);
                }
                let mut pre: Vec<String> = Vec::new();
                if *deinterlace {
                    pre.push(DEINTERLACE.into());
                }
                pre.extend(rotation.filters().iter().map(|s| s.to_string()));
                let fps = frame_rate.map_or(25.0, f64::from);
                let chain = |r: &RenditionPlan| {
                    let size = geometry::fit(w, h, sar, r.max_width, r.max_height);
                    geometry::picture_chain(
                        size,
                        size,
                        &r.spec.pixel_format,
                        r.grid.map(|g| (g.numerator(), g.denominator())),
                    )
                };
                if renditions.len() == 1 {
                    let r = &renditions[0];
                    let mut filters = pre.clone();
                    filters.push(chain(r));
                    let o = &mut per_output[r.target.output];
                    o.extend(strings(&[
                        "-map",
                        &format!("0:{}", v.input),
                        "-vf",
                        &filters.join(","),
                    ]));
                    o.extend(video_encoder_args(r, fps));
                } else {
                    let head = if pre.is_empty() {
                        String::new()
                    } else {
                        format!("{},", pre.join(","))
                    };
                    graph.push(format!(
                        "[0:{}]{head}split={}{}",
                        v.input,
                        renditions.len(),
                        (0..renditions.len())
                            .map(|i| format!("[s{i}]"))
                            .collect::<String>()
                    ));
                    for (i, r) in renditions.iter().enumerate() {
                        graph.push(format!("[s{i}]{}[v{i}]", chain(r)));
                        let o = &mut per_output[r.target.output];
                        o.extend(strings(&["-map", &format!("[v{i}]")]));
                        o.extend(video_encoder_args(r, fps));
                    }
                }
            }
        }
    }
    for a in &plan.audio {
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
                for (spec, targets) in groups {
                    for t in targets {
                        let o = &mut per_output[t.output];
                        o.extend(strings(&[
                            "-map",
                            &format!("0:{}", a.input),
                            "-c:a",
                            spec.codec.encoder(),
                        ]));
                        for (k, v) in &spec.options {
                            o.extend([format!("-{k}:a"), v.clone()]);
                        }
                        if let Some(ch) = spec.channels {
                            o.extend(["-ac".into(), ch.min(spec.codec.max_channels()).to_string()]);
                        }
                        if let Some(sr) = spec.sample_rate {
                            o.extend(["-ar".into(), sr.to_string()]);
                        }
                    }
                }
            }
        }
    }
    for s in &plan.subtitles {
        for t in &s.targets {
            per_output[t.output].extend(strings(&[
                "-map",
                &format!("0:{}", s.input),
                "-c:s",
                "copy",
            ]));
        }
    }
    if !graph.is_empty() {
        args.extend(["-filter_complex".into(), graph.join(";")]);
    }
    for (i, target) in layout.targets.iter().enumerate() {
        args.append(&mut per_output[i]);
        if matches!(preset.container, Container::Mp4 | Container::Mov)
            && plan.video.as_ref().is_some_and(|v| matches!(&v.work, VideoWork::Encode { renditions, .. } if renditions[0].spec.codec == VideoCodec::Hevc))
        {
            args.extend(strings(&["-tag:v", "hvc1"]));
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
    }
    Ok(args)
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
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
