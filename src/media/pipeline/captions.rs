//! A transcode's captions as a whole (decision 0080): which tracks each output gets and
//! how — a text stream in its container, WebVTT renditions beside an HLS ladder, side files,
//! burnt into the picture — read once before the run and written around it: burn-in
//! scripts and caption streams into the plans before the run, HLS renditions and side
//! files once the media is written.

use std::path::{Path, PathBuf};

use crate::media::captions::{self, CaptionEdits, Track};
use crate::media::error::MediaError;
use crate::media::hls::{self, SubtitleRendition};
use crate::media::output::{Layout, OutputFile, OutputKind};
use crate::media::plan::Plan;
use crate::media::probe::ProbeReport;
use crate::preset::{Container, Preset, VideoOutput};
use crate::stop::StopToken;

/// The name a single HLS rendition gets when captions make it a ladder of one.
const SINGLE_RENDITION: &str = "main";

/// What one output does with the run's caption tracks.
#[derive(Debug, Default)]
struct OutputUse {
    /// The tracks it gets (indexes into `RunCaptions::tracks`).
    tracks: Vec<usize>,
    /// Encoded into its container's text subtitle streams with this encoder.
    embed: Option<&'static str>,
    /// WebVTT renditions beside its HLS variants.
    hls: bool,
    side_files: bool,
    /// Its first track rendered into the picture.
    burn: bool,
}

/// The run's caption tracks (caption files first, then the input's text streams), what
/// each output does with them, and the scratch files (burn-in scripts) removed at the end.
#[derive(Debug, Default)]
pub(super) struct RunCaptions {
    tracks: Vec<Track>,
    outputs: Vec<OutputUse>,
    scratch: Vec<PathBuf>,
}

impl Drop for RunCaptions {
    fn drop(&mut self) {
        for path in &self.scratch {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `preset` asks for captions at all (then the input's text streams are read).
fn preset_wants(preset: &Preset) -> bool {
    !preset.captions.is_none()
}

impl RunCaptions {
    /// Reads the tracks the outputs' `presets` and `edits` ask for: every caption file, and the input's
    /// text subtitle streams when a preset or the edits want captions. Burn-in asked by the
    /// edits with no track to burn, or caption files no output can use, are errors.
    pub fn gather(
        source: &Path,
        probe: &ProbeReport,
        presets: &[&Preset],
        edits: &CaptionEdits,
        stop: &StopToken,
    ) -> Result<RunCaptions, MediaError> {
        let wants_source =
            edits.side_files || edits.burn_in || presets.iter().any(|p| preset_wants(p));
        if !wants_source && edits.files.is_empty() {
            return Ok(RunCaptions::default());
        }
        let mut tracks = Vec::new();
        for file in &edits.files {
            tracks.push(captions::file_track(file, stop)?);
        }
        let files = tracks.len();
        if wants_source {
            tracks.extend(captions::source_tracks(source, probe, stop)?);
        }
        let uses: Vec<OutputUse> = presets
            .iter()
            .map(|p| output_use(p, edits, files, tracks.len()))
            .collect();
        refuse_unused(&uses, edits, tracks.len())?;
        Ok(RunCaptions {
            tracks,
            outputs: uses,
            scratch: Vec::new(),
        })
    }

    /// HLS outputs of one rendition that get caption renditions become ladders of one, so
    /// they have a master playlist to name them in.
    pub fn shape_plans(&self, plans: &mut [Plan]) {
        for (plan, u) in plans.iter_mut().zip(&self.outputs) {
            if u.hls && !u.tracks.is_empty() {
                plan.as_ladder(SINGLE_RENDITION);
            }
        }
    }

    /// Writes each burning output's first track as an ASS script beside it (on the plan's
    /// timeline) and has its renditions render it.
    pub fn burn_in(&mut self, plans: &mut [Plan], layouts: &[Layout]) -> Result<(), MediaError> {
        for ((plan, u), layout) in plans.iter_mut().zip(&self.outputs).zip(layouts) {
            let Some(&first) = u.tracks.first().filter(|_| u.burn) else {
                continue;
            };
            let track = on_timeline(&self.tracks[first], plan);
            let script = layout.scratch_path("ass");
            self.scratch.push(script.clone());
            captions::write_ass(&track, &script)?;
            plan.burn_in(&script);
        }
        Ok(())
    }

    /// Adds each embedding output's tracks to the merged `plan` as text subtitle streams
    /// (output `i` being the merged plan's file `sizes[..i].sum()`).
    pub fn embed(&self, plan: &mut Plan, sizes: &[usize]) {
        let mut at = 0;
        for (u, n) in self.outputs.iter().zip(sizes) {
            if let Some(encoder) = u.embed {
                for &t in &u.tracks {
                    let track = on_timeline(&self.tracks[t], plan);
                    plan.caption(at, track, encoder);
                }
            }
            at += n;
        }
    }

    /// Writes output `i`'s WebVTT renditions into its HLS staging directory (one WebVTT file
    /// and its playlist each, spanning `duration` seconds) and says what the master names.
    pub fn write_hls(
        &self,
        i: usize,
        layout: &Layout,
        plan: &Plan,
    ) -> Result<Vec<SubtitleRendition>, MediaError> {
        let Some(u) = self.outputs.get(i).filter(|u| u.hls) else {
            return Ok(Vec::new());
        };
        let Some((dir, stem)) = layout.staged_hls() else {
            return Ok(Vec::new());
        };
        let mut renditions = Vec::new();
        for (n, &t) in u.tracks.iter().enumerate() {
            let track = on_timeline(&self.tracks[t], plan);
            let base = format!("{stem}_sub{n}");
            let vtt = format!("{base}.vtt");
            // The segments' MPEG-TS clock starts at the output's zero (no muxing delay).
            captions::write_webvtt(&track, &dir.join(&vtt), Some(TIMESTAMP_MAP))?;
            let end = track.cues.last().map_or(0.0, |c| c.end_us as f64 / 1e6);
            let duration = plan.duration.unwrap_or(0.0).max(end);
            let playlist = dir.join(format!("{base}.m3u8"));
            std::fs::write(&playlist, hls::subtitle_playlist(&vtt, duration))
                .map_err(|e| MediaError::io(&playlist, e))?;
            renditions.push(SubtitleRendition {
                uri: format!("{base}.m3u8"),
                name: track.display_name(n),
                language: track.language.clone(),
            });
        }
        Ok(renditions)
    }

    /// Writes output `i`'s side files beside `top` (its media file or top playlist):
    /// `NAME.LANG.vtt`, moved into place whole.
    pub fn write_side_files(
        &self,
        i: usize,
        top: &Path,
        plan: &Plan,
    ) -> Result<Vec<OutputFile>, MediaError> {
        let Some(u) = self.outputs.get(i).filter(|u| u.side_files) else {
            return Ok(Vec::new());
        };
        let dir = top.parent().unwrap_or(Path::new("."));
        let stem = top
            .file_stem()
            .map_or("output".into(), |s| s.to_string_lossy().into_owned());
        let mut names: Vec<String> = Vec::new();
        let mut files = Vec::new();
        for &t in &u.tracks {
            let track = on_timeline(&self.tracks[t], plan);
            let lang = track.language.as_deref().unwrap_or("und");
            let mut name = format!("{stem}.{lang}.vtt");
            let mut k = 2;
            while names.contains(&name) {
                name = format!("{stem}.{lang}.{k}.vtt");
                k += 1;
            }
            names.push(name.clone());
            let path = dir.join(&name);
            let staged = dir.join(format!(".{name}.{}.partial", std::process::id()));
            let written = captions::write_webvtt(&track, &staged, None).and_then(|()| {
                std::fs::rename(&staged, &path).map_err(|e| MediaError::io(&path, e))
            });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&staged);
                files.iter().for_each(|f: &OutputFile| {
                    let _ = std::fs::remove_file(&f.path);
                });
                return Err(e);
            }
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            files.push(OutputFile {
                path,
                kind: OutputKind::Captions,
                bytes,
            });
        }
        Ok(files)
    }
}

/// `track` on the output's timeline of `plan`: from its zero, cut at its clip's end or the
/// input's duration (a caption past the picture would make the output longer than its
/// input).
fn on_timeline(track: &Track, plan: &Plan) -> Track {
    let length = plan
        .clip_us
        .filter(|us| *us < i64::MAX)
        .or(plan.duration.map(|d| (d * 1e6) as i64));
    track.on_timeline(plan.start_offset_us, length)
}

/// The `X-TIMESTAMP-MAP` of every HLS WebVTT file: cue time 0 is MPEG-TS time 0, where the
/// segments' clock starts (the output's zero; FFmpeg's MPEG-TS muxer adds no delay unless
/// asked).
const TIMESTAMP_MAP: &str = "MPEGTS:0,LOCAL:00:00:00.000";

/// What one output with `preset` does with the tracks (`files` caption files first, then
/// the input's text streams, `total` in all).
fn output_use(preset: &Preset, edits: &CaptionEdits, files: usize, total: usize) -> OutputUse {
    let c = preset.captions;
    let tracks: Vec<usize> = if preset_wants(preset) || edits.side_files || edits.burn_in {
        (0..total).collect()
    } else {
        (0..files).collect()
    };
    let convert = c.convert || files > 0;
    let hls = convert && preset.container == Container::Hls;
    let embed = if convert && !hls {
        captions::text_codec_for(preset.container.muxer())
    } else {
        None
    };
    let moving =
        matches!(preset.video, Some(VideoOutput::Encode(_))) && !preset.container.picture();
    OutputUse {
        tracks,
        embed,
        hls,
        side_files: c.side_files || edits.side_files,
        burn: (c.burn_in || edits.burn_in) && moving && preset.storyboard.is_none(),
    }
}

/// Fails edits that ask for what no output can give: burn-in with nothing to burn or no
/// video to burn into, caption files no output carries.
fn refuse_unused(uses: &[OutputUse], edits: &CaptionEdits, total: usize) -> Result<(), MediaError> {
    if edits.burn_in && total == 0 {
        return Err(MediaError::Unsupported(
            "burn_in: the input has no text subtitle stream and the job attaches no caption \
             file"
                .into(),
        ));
    }
    if edits.burn_in && !uses.iter().any(|u| u.burn) {
        return Err(MediaError::Unsupported(
            "burn_in: no output encodes moving video to render captions into".into(),
        ));
    }
    let carried = |u: &OutputUse| u.embed.is_some() || u.hls || u.side_files || u.burn;
    if !edits.files.is_empty() && !uses.iter().any(carried) {
        return Err(MediaError::Unsupported(
            "captions: no output holds text subtitles (HLS, MP4, MOV, MKV, WebM); ask for side \
             files or burn-in"
                .into(),
        ));
    }
    Ok(())
}
