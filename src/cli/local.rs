//! The commands that work on local files without a server: `probe`, `presets`, `transcode`.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::exit;
use crate::job::{Clip, Watermark};
use crate::media::{self, MediaError};
use crate::preset::Presets;
use crate::progress::{Phase, Progress};
use crate::sandbox;
use crate::stop::StopToken;

/// `ffarm probe FILE`: the file's container and streams as JSON on stdout.
pub fn probe(file: &Path) -> anyhow::Result<u8> {
    let report = media::probe(file)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(exit::OK)
}

/// `ffarm presets`: one line per preset with its description.
pub fn presets(presets_dir: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let presets = Presets::load(presets_dir, &media::caps::Ffmpeg)?;
    if json {
        let all: Vec<_> = presets.iter().collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(exit::OK);
    }
    let width = presets.names().map(str::len).max().unwrap_or(0);
    for p in presets.iter() {
        println!(
            "{:<width$}  {:<5}  {}",
            p.name,
            p.container.name(),
            p.description
        );
    }
    Ok(exit::OK)
}

/// How `ffarm transcode` runs.
pub struct TranscodeOptions {
    /// Print the report as JSON.
    pub json: bool,
    /// Print the equivalent command line instead.
    pub print_ffmpeg: bool,
    /// Enter the engine's sandbox first.
    pub sandbox: bool,
    /// Only this part of the input.
    pub clip: Option<Clip>,
    /// An image composited on the video, where the preset's watermark would go (or at the
    /// default place).
    pub watermark: Option<std::path::PathBuf>,
    /// Keep the audio tracks in these languages (as given: checked here).
    pub audio_languages: Option<Vec<String>>,
    /// Measure SSIM and PSNR of the video against the input.
    pub quality: bool,
    /// Caption files, side files and burn-in.
    pub captions: media::CaptionEdits,
}

/// `ffarm transcode IN OUT [--preset NAME]`: the workers' engine, run once in this process
/// (inside the same sandbox as theirs unless `--no-sandbox`).
pub fn transcode(
    input: &Path,
    output: &Path,
    preset: Option<&str>,
    presets_dir: Option<&Path>,
    options: TranscodeOptions,
) -> anyhow::Result<u8> {
    let TranscodeOptions {
        json,
        print_ffmpeg,
        sandbox,
        clip,
        watermark,
        quality,
        audio_languages,
        captions,
    } = options;
    if let Some(problem) = clip.as_ref().and_then(Clip::problem) {
        anyhow::bail!("{problem}");
    }
    let presets = Presets::load(presets_dir, &media::caps::Ffmpeg)?;
    let name = match preset {
        Some(p) => p.to_string(),
        None => default_preset_for(output)?,
    };
    let mut preset = presets.get(&name)?.clone();
    if let Some(codes) = &audio_languages {
        preset.audio_languages =
            crate::job::language::choice("--audio-languages", codes).map_err(anyhow::Error::msg)?;
    }
    let preset = &preset;
    if print_ffmpeg {
        let extra = watermark.is_some() || !captions.is_empty();
        return print_command(input, output, preset, clip.as_ref(), extra);
    }
    if sandbox {
        let files = captions.files.iter().map(|f| f.path.as_path());
        enter_sandbox(input, watermark.as_deref().into_iter().chain(files), output)?;
    }
    let stop = StopToken::new();
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.stop())?;
    }
    let bar = progress_bar(&name);
    let outputs = [media::OutputSpec {
        path: output,
        preset,
    }];
    let overlay = watermark.map(|image| media::Overlay {
        placement: preset
            .watermark
            .clone()
            .unwrap_or_else(|| Watermark::at_defaults(&image.to_string_lossy())),
        image,
    });
    let segment_key = local_key(output, preset)?;
    let edits = media::Edits {
        clip,
        overlays: vec![overlay],
        quality,
        audio_languages: None,
        captions,
        segment_key: segment_key.clone(),
    };
    let mut on_progress = |p: &Progress| {
        if let Some(bar) = &bar {
            show(bar, p);
        }
    };
    let result = media::transcode_many_then(
        input,
        &outputs,
        &edits,
        &stop,
        &mut on_progress,
        &mut |_| {},
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            if let Some(key) = &segment_key {
                let path = media::local_key_file(output);
                std::fs::write(&path, key.key)
                    .with_context(|| format!("writing the key {}", path.display()))?;
                eprintln!("segments encrypted; key written to {}", path.display());
            }
            say_done(&report, json)?;
            Ok(exit::OK)
        }
        Err(MediaError::Stopped) => {
            eprintln!("stopped; partial output removed");
            Ok(exit::STOPPED)
        }
        Err(e) => Err(e.into()),
    }
}

/// A `--captions FILE[:LANG]` argument: the file, and its language when it ends in `:` and
/// three lowercase letters (else `und`).
pub fn caption_file(arg: &str) -> media::CaptionFile {
    let (path, language) = match arg.rsplit_once(':') {
        Some((path, lang)) if crate::job::is_language_code(lang) && !path.is_empty() => {
            (path, lang)
        }
        _ => (arg, "und"),
    };
    media::CaptionFile {
        path: path.into(),
        language: language.to_string(),
        name: None,
    }
}

/// For a preset that encrypts its segments: a new key, named in the playlists by its file
/// name (`NAME.key`, written beside them once the run succeeds).
fn local_key(
    output: &Path,
    preset: &crate::preset::Preset,
) -> anyhow::Result<Option<crate::job::SegmentKey>> {
    if !preset.encrypts() {
        return Ok(None);
    }
    let path = media::local_key_file(output);
    let uri = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key = crate::job::SegmentKey::generate().context("making a segment key")?;
    Ok(Some(crate::job::SegmentKey { key, uri }))
}

/// `--print-ffmpeg`: the equivalent command line, one shell-quoted line.
fn print_command(
    input: &Path,
    output: &Path,
    preset: &crate::preset::Preset,
    clip: Option<&Clip>,
    edited: bool,
) -> anyhow::Result<u8> {
    if edited || !preset.captions.is_none() {
        anyhow::bail!(
            "--print-ffmpeg does not spell a watermark's overlay or captions; leave out \
             --watermark and --captions (or use a preset without them) to see the rest of \
             the command"
        );
    }
    if preset.encrypts() {
        anyhow::bail!(
            "--print-ffmpeg does not spell preset {}'s segment key (a key info file of the \
             run's own); use a preset that does not encrypt",
            preset.name
        );
    }
    let args = media::equivalent_command(input, output, preset, clip)?;
    let words: Vec<String> = std::iter::once("ffmpeg".to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect();
    println!("{}", words.join(" "));
    Ok(exit::OK)
}

/// What a finished transcode made: the report as JSON, or the files on stdout and the
/// quality figures and speed on stderr.
fn say_done(report: &media::TranscodeReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    for out in &report.outputs {
        println!("{}", out.path.display());
    }
    for q in report.checks.iter().flat_map(|c| &c.quality) {
        let name = q
            .rendition
            .as_deref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        eprintln!(
            "quality{name}: SSIM {:.4}, PSNR {:.2} dB over {} frames",
            q.ssim, q.psnr_db, q.frames
        );
    }
    eprintln!(
        "done: {} file(s), {:.1} s of media in {:.1} s ({:.2}x)",
        report.outputs.len(),
        report.out_time_seconds,
        report.elapsed_seconds,
        report.out_time_seconds / report.elapsed_seconds.max(1e-3)
    );
    Ok(())
}

/// Enters the engine's sandbox (before any thread starts): read the input, write in the
/// output's folder, where its staging files go; says on stderr what a kernel lacks.
fn enter_sandbox<'a>(
    input: &'a Path,
    extra: impl Iterator<Item = &'a Path>,
    output: &Path,
) -> anyhow::Result<()> {
    let folder = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let policy = sandbox::Policy {
        read: std::iter::once(input)
            .chain(extra)
            .map(Path::to_path_buf)
            .collect(),
        write: vec![folder],
        limits: sandbox::Limits::default(),
    };
    let level = sandbox::enter(&policy)?;
    if !level.missing.is_empty() {
        eprintln!("warning: sandbox without {}", level.missing.join("; "));
    }
    Ok(())
}

fn default_preset_for(output: &Path) -> anyhow::Result<String> {
    let ext = output.extension().and_then(|e| e.to_str()).ok_or_else(|| {
        anyhow::anyhow!("give --preset, or an output name whose extension names a format")
    })?;
    media::preset_for_extension(ext)
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no default preset for .{ext} files; give --preset (see `ffarm presets`)"
            )
        })
}

/// A progress bar on stderr when it is a terminal (none otherwise), labelled `label`.
pub(super) fn progress_bar(label: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{prefix:.bold} {bar:40.cyan/blue} {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn show(bar: &ProgressBar, p: &Progress) {
    bar.set_position((p.percent * 10.0) as u64);
    let mut msg = p.phase.as_str().to_string();
    if p.phase == Phase::Transcoding {
        if let Some(fps) = p.fps {
            msg.push_str(&format!("  {fps:.0} fps"));
        }
        if let Some(speed) = p.speed {
            msg.push_str(&format!("  {speed:.2}x"));
        }
        if let Some(eta) = p.eta_seconds {
            msg.push_str(&format!("  ETA {}", format_duration(eta)));
        }
    }
    bar.set_message(msg);
}

/// "1:02:03", "4:05", "0:07".
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=+,@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
