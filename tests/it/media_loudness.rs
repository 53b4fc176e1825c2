//! Loudness normalisation (`[audio] loudness`, EBU R128 in two passes), judged by the
//! `ffmpeg` command line's own `ebur128` filter: a quiet and a loud input each brought to two
//! targets within 1 LU, true peak under the limit; the measures the engine records agree with
//! the command line's; one gain where the peak and range allow it, dynamic where they do not;
//! one preset normalising beside one that does not, from one decode; video kept in step; the
//! measure obeying a stop; a split job's audio part normalised; the `--print-ffmpeg` command
//! doing what the engine does; and bad settings refused with the field named.

use std::path::{Path, PathBuf};
use std::process::Command;

use ffarm::job::{LoudnessChecked, LoudnessMode};
use ffarm::media::caps::Ffmpeg;
use ffarm::media::split;
use ffarm::media::{self, MediaError, OutputSpec, TranscodeReport};
use ffarm::preset::{Preset, PresetError, Presets};
use ffarm::progress::{Phase, Progress};
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, files_under, packet_times, tempdir, valid};
use crate::media_presets::{assert_audio_duration, assert_video_duration};

const QUIET: &str = "loudness_quiet.m4a";
const LOUD: &str = "loudness_loud.mp4";

/// How far the command line's reading of true peak may sit above the limit: `loudnorm`
/// limits peaks at 192 kHz before the encoder, and lossy coding moves them a little.
const PEAK_TOLERANCE: f64 = 0.5;

/// What the `ffmpeg` command line's `ebur128` filter says of a file's first audio stream.
#[derive(Debug, Clone, Copy)]
struct R128 {
    integrated: f64,
    range: f64,
    true_peak: f64,
}

/// Runs `ffmpeg -af ebur128=peak=true` over the first audio stream of `path` and reads its
/// summary (the integrated loudness, the range and the true peak, to a tenth).
fn ebur128(path: &Path) -> R128 {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("running ffmpeg");
    assert!(out.status.success(), "ffmpeg ebur128 on {}", path.display());
    let log = String::from_utf8_lossy(&out.stderr);
    let summary = log
        .split("Summary:")
        .nth(1)
        .unwrap_or_else(|| panic!("no ebur128 summary for {}: {log}", path.display()));
    let value = |label: &str| -> f64 {
        summary
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no '{label}' in the summary: {summary}"))
    };
    R128 {
        integrated: value("I:"),
        range: value("LRA:"),
        true_peak: value("Peak:"),
    }
}

/// Presets written for these tests, loaded (and checked) as any presets directory is.
fn presets(files: &[(&str, &str)]) -> Presets {
    let dir = tempdir();
    for (name, text) in files {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    Presets::load(Some(dir.path()), &Ffmpeg).unwrap()
}

/// An AAC-in-M4A preset, normalising with `loudness` (a TOML inline table) when given.
fn audio_preset(loudness: Option<&str>) -> String {
    let loudness = loudness.map_or(String::new(), |l| format!("loudness = {l}\n"));
    format!(
        "description = \"test\"\ncontainer = \"m4a\"\n[audio]\ncodec = \"aac\"\n\
         bitrate = \"128k\"\n{loudness}"
    )
}

/// Transcodes, noting every progress report.
fn run(input: &Path, output: &Path, preset: &Preset) -> (TranscodeReport, Vec<Progress>) {
    let mut seen = Vec::new();
    let report = media::transcode(input, output, preset, &StopToken::new(), &mut |p| {
        seen.push(p.clone())
    })
    .unwrap();
    (report, seen)
}

/// The one loudness record of the report's one output.
fn record(report: &TranscodeReport) -> LoudnessChecked {
    let check = &report.checks[0];
    assert_eq!(check.loudness.len(), 1, "{check:?}");
    check.loudness[0].clone()
}

/// `output` is at `target` LUFS within 1 LU with its true peak under `limit`, by the
/// command line's measure, and the engine's record of input and output agrees with the
/// command line's measure of `input` and `output`.
fn assert_normalised(
    what: &str,
    input: &Path,
    output: &Path,
    target: f64,
    limit: f64,
    rec: &LoudnessChecked,
) {
    let (before, after) = (ebur128(input), ebur128(output));
    assert!(
        (after.integrated - target).abs() <= 1.0,
        "{what}: {} LUFS, wanted {target}",
        after.integrated
    );
    assert!(
        after.true_peak <= limit + PEAK_TOLERANCE,
        "{what}: true peak {} dBTP over {limit}",
        after.true_peak
    );
    // The engine measures the input's stream and its own encoder's packets decoded again:
    // what the command line reads from the files, to its tenth (its true peak comes from
    // its own oversampler, ours from the audio at 192 kHz).
    for (side, ours, theirs) in [
        ("input", &rec.input, before),
        ("output", &rec.output, after),
    ] {
        let agree = (ours.integrated_lufs - theirs.integrated).abs() <= 0.15
            && (ours.true_peak_dbtp - theirs.true_peak).abs() <= 0.3
            && (ours.range_lu - theirs.range).abs() <= 0.3;
        assert!(agree, "{what}: recorded {side} {ours:?}, ffmpeg {theirs:?}");
    }
}

#[test]
fn quiet_and_loud_inputs_reach_either_target() {
    let set = presets(&[
        ("to-16", &audio_preset(Some("{}"))),
        (
            "to-23",
            &audio_preset(Some("{ target = -23, true_peak = -2.0, range = 15 }")),
        ),
    ]);
    let dir = tempdir();
    for (input, stream) in [(QUIET, 0), (LOUD, 1)] {
        let input = valid(input);
        for (name, target, limit) in [("to-16", -16.0, -1.5), ("to-23", -23.0, -2.0)] {
            let what = format!("{} {name}", input.display());
            let output = dir.path().join(format!("{stream}-{name}.m4a"));
            let (report, seen) = run(&input, &output, set.get(name).unwrap());
            let rec = record(&report);
            assert_eq!(rec.stream, stream, "{what}");
            // Both inputs' peaks and ranges allow one gain to either target.
            assert_eq!(rec.mode, LoudnessMode::Linear, "{what}: {rec:?}");
            assert_normalised(&what, &input, &output, target, limit, &rec);
            assert_audio_duration(&what, (&input, "a:0"), (&output, "a:0"));
            // The measure is a phase of its own, before the transcode, counted to 100 %.
            let first = |phase| seen.iter().position(|p| p.phase == phase);
            let (measuring, transcoding) = (first(Phase::Measuring), first(Phase::Transcoding));
            assert!(
                measuring.is_some() && measuring < transcoding,
                "{what}: {seen:?}"
            );
            let measured = seen
                .iter()
                .filter(|p| p.phase == Phase::Measuring)
                .map(|p| p.percent)
                .fold(0.0, f64::max);
            assert!(measured > 90.0, "{what}: the measure reached {measured} %");
        }
    }
}

#[test]
fn the_podcast_preset_normalises_into_mp3_at_44_1_khz() {
    let dir = tempdir();
    let input = valid(QUIET);
    let output = dir.path().join("episode.mp3");
    let (report, _) = run(&input, &output, crate::helpers::preset("podcast-mp3"));
    assert_normalised("podcast", &input, &output, -16.0, -1.5, &record(&report));
    let audio = &ffprobe_streams(&ffprobe(&output), "audio")[0];
    assert_eq!(audio["codec_name"], "mp3");
    assert_eq!(audio["sample_rate"], "44100");
    assert_audio_duration("podcast", (&input, "a:0"), (&output, "a:0"));
}

#[test]
fn a_range_wider_than_allowed_takes_the_dynamic_mode() {
    // The quiet input's range is about 1.6 LU: more than the 1 LU this preset allows.
    let set = presets(&[(
        "narrow",
        &audio_preset(Some("{ target = -16, true_peak = -1.5, range = 1 }")),
    )]);
    let dir = tempdir();
    let input = valid(QUIET);
    let output = dir.path().join("narrow.m4a");
    let (report, _) = run(&input, &output, set.get("narrow").unwrap());
    let rec = record(&report);
    assert_eq!(rec.mode, LoudnessMode::Dynamic, "{rec:?}");
    assert_normalised("dynamic", &input, &output, -16.0, -1.5, &rec);
    // loudnorm works at 192 kHz and holds 3 s back: the output is as long as the input.
    assert_audio_duration("dynamic", (&input, "a:0"), (&output, "a:0"));
}

#[test]
fn one_preset_normalises_beside_one_that_does_not() {
    let set = presets(&[
        ("normal", &audio_preset(Some("{ target = -20 }"))),
        ("plain", &audio_preset(None)),
    ]);
    let dir = tempdir();
    let input = valid(LOUD);
    let (normal, plain) = (
        dir.path().join("a.normal.m4a"),
        dir.path().join("a.plain.m4a"),
    );
    let outputs = [
        OutputSpec {
            path: &normal,
            preset: set.get("normal").unwrap(),
        },
        OutputSpec {
            path: &plain,
            preset: set.get("plain").unwrap(),
        },
    ];
    let report =
        media::transcode_many(&input, &outputs, &StopToken::new(), &mut |_: &Progress| {}).unwrap();
    assert_eq!(report.checks.len(), 2);
    assert_eq!(report.checks[0].loudness.len(), 1, "{:?}", report.checks[0]);
    assert!(
        report.checks[1].loudness.is_empty(),
        "{:?}",
        report.checks[1]
    );
    let rec = &report.checks[0].loudness[0];
    assert_normalised("normalised", &input, &normal, -20.0, -1.5, rec);
    // The same codec and bit rate, but not one shared encoder: the plain output keeps the
    // input's level.
    let (source, kept) = (ebur128(&input), ebur128(&plain));
    assert!(
        (kept.integrated - source.integrated).abs() <= 0.3,
        "plain: {kept:?} from {source:?}"
    );
    for out in [&normal, &plain] {
        assert_audio_duration("many", (&input, "a:0"), (out, "a:0"));
    }
}

/// The first packet's time of a stream.
fn start(path: &Path, selector: &str) -> f64 {
    packet_times(path, selector)
        .first()
        .map_or(f64::NAN, |p| p.0)
}

#[test]
fn video_and_normalised_audio_stay_in_step() {
    let set = presets(&[(
        "av",
        "description = \"test\"\ncontainer = \"mp4\"\n[video]\ncodec = \"h264\"\n\
         encoder_preset = \"ultrafast\"\ncrf = 30\n[audio]\ncodec = \"aac\"\nbitrate = \"128k\"\n\
         loudness = { target = -16 }\n",
    )]);
    let dir = tempdir();
    let input = valid(LOUD);
    let output = dir.path().join("av.mp4");
    let (report, _) = run(&input, &output, set.get("av").unwrap());
    assert_normalised("av", &input, &output, -16.0, -1.5, &record(&report));
    assert_video_duration("av", &input, &output, 25.0);
    assert_audio_duration("av", (&input, "a:0"), (&output, "a:0"));
    // Audio starts where it started against the video, within an AAC frame.
    let lead = |p: &Path| start(p, "a:0") - start(p, "v:0");
    assert!(
        (lead(&output) - lead(&input)).abs() <= 1024.0 / 48_000.0 + 0.002,
        "audio leads video by {} s, was {} s",
        lead(&output),
        lead(&input)
    );
}

#[test]
fn a_stop_during_the_measure_ends_the_run_and_writes_nothing() {
    let set = presets(&[("to-16", &audio_preset(Some("{}")))]);
    let dir = tempdir();
    let stop = StopToken::new();
    let mut phases = Vec::new();
    let err = media::transcode(
        &valid(LOUD),
        &dir.path().join("stopped.m4a"),
        set.get("to-16").unwrap(),
        &stop,
        &mut |p: &Progress| {
            phases.push(p.phase);
            if p.phase == Phase::Measuring {
                stop.stop();
            }
        },
    )
    .unwrap_err();
    assert!(matches!(err, MediaError::Stopped), "{err}");
    assert!(!phases.contains(&Phase::Transcoding), "{phases:?}");
    assert!(
        files_under(dir.path()).is_empty(),
        "{:?}",
        files_under(dir.path())
    );
}

#[test]
fn the_printed_command_normalises_as_the_engine_does() {
    let set = presets(&[("to-16", &audio_preset(Some("{}")))]);
    let dir = tempdir();
    let input = valid(QUIET);
    let output = dir.path().join("cli.m4a");
    let args = media::equivalent_command(&input, &output, set.get("to-16").unwrap(), None).unwrap();
    let filter = args
        .iter()
        .skip_while(|a| *a != "-af")
        .nth(1)
        .unwrap_or_else(|| panic!("no -af in {args:?}"));
    assert!(
        filter.contains("loudnorm=I=-16.00:TP=-1.50:LRA=11.00:measured_I=-3")
            && filter.contains("linear=true"),
        "{filter}"
    );
    let status = Command::new("ffmpeg").args(&args).status().unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
    let ours = dir.path().join("ours.m4a");
    run(&input, &ours, set.get("to-16").unwrap());
    let (theirs, ours) = (ebur128(&output), ebur128(&ours));
    assert!((theirs.integrated + 16.0).abs() <= 1.0, "{theirs:?}");
    assert!(
        (theirs.integrated - ours.integrated).abs() <= 0.2,
        "the command line: {theirs:?}; ffarm: {ours:?}"
    );
}

#[test]
fn a_split_jobs_audio_part_is_normalised() {
    let set = presets(&[(
        "split-loud",
        "description = \"test\"\ncontainer = \"mp4\"\n[video]\ncodec = \"h264\"\n\
         encoder_preset = \"ultrafast\"\ncrf = 30\n[audio]\ncodec = \"aac\"\nbitrate = \"96k\"\n\
         loudness = { target = -30 }\n",
    )]);
    let preset = set.get("split-loud").unwrap();
    let input = valid("split_4min.mp4");
    let work = tempdir();
    let stop = StopToken::new();
    let layout = split::layout(&input, preset, 30)
        .unwrap()
        .expect("a 4-minute input splits");
    split::cut(&input, &layout, work.path(), &stop).unwrap();
    let audio_dir: PathBuf = work.path().join("audio");
    let rest = split::rest_path(work.path());
    let done = split::encode_audio(&rest, preset, &layout, &audio_dir, &stop, &mut |_| {}).unwrap();
    let audio = audio_dir.join("audio_0.nut");
    let (source, normalised) = (ebur128(&input), ebur128(&audio));
    assert!(
        (normalised.integrated + 30.0).abs() <= 1.0 && (source.integrated + 30.0).abs() > 3.0,
        "the audio part: {normalised:?} from {source:?}"
    );
    // What it did comes back for the job's log: a steady tone (no range) takes one gain.
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].mode, LoudnessMode::Linear, "{done:?}");
    assert!(
        (done[0].output.integrated_lufs - normalised.integrated).abs() <= 0.3,
        "{done:?}"
    );
}

/// Loads a preset whose `[audio]` has `loudness` as given and checks the message names the
/// field and the problem.
fn rejects(audio: &str, field: &str, problem: &str) {
    let dir = tempdir();
    let text = format!("description = \"x\"\ncontainer = \"m4a\"\n[audio]\n{audio}\n");
    std::fs::write(dir.path().join("broken.toml"), text).unwrap();
    let err: PresetError = Presets::load(Some(dir.path()), &Ffmpeg).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("broken.toml"), "names the file: {msg}");
    assert!(msg.contains(field), "names the field '{field}': {msg}");
    assert!(msg.contains(problem), "says '{problem}': {msg}");
}

#[test]
fn bad_loudness_settings_are_named() {
    let aac = "codec = \"aac\"";
    let cases = [
        (
            "loudness = { target = -80 }",
            "audio.loudness.target",
            "between -70 and -5",
        ),
        (
            "loudness = { target = 0 }",
            "audio.loudness.target",
            "between -70 and -5",
        ),
        (
            "loudness = { true_peak = 1.0 }",
            "audio.loudness.true_peak",
            "between -9 and 0",
        ),
        (
            "loudness = { range = 0.5 }",
            "audio.loudness.range",
            "between 1 and 50",
        ),
        (
            "loudness = { target = \"loud\" }",
            "audio.loudness.target",
            "must be a number",
        ),
        (
            "loudness = { peak = -1 }",
            "audio.loudness.peak",
            "unknown key",
        ),
        ("loudness = -16", "audio.loudness", "write { target"),
    ];
    for (loudness, field, problem) in cases {
        rejects(&format!("{aac}\n{loudness}"), field, problem);
    }
    rejects(
        "codec = \"copy\"\nloudness = { target = -16 }",
        "audio.loudness",
        "needs it encoded",
    );
}

#[test]
fn a_jobs_output_carries_the_loudness_and_show_prints_it() {
    let s = crate::cli_client::Server::start(1, None);
    let out = s.run(&[
        "submit",
        "media/src/clip.mp4",
        "--preset",
        "podcast-mp3",
        "--id",
        "episode",
        "--wait",
    ]);
    out.expect(0);
    let job = s.run(&["show", "episode", "--json"]).expect(0).json();
    assert_eq!(job["status"], "succeeded", "{job}");
    let rec = &job["outputs"][0]["check"]["loudness"][0];
    assert_eq!(rec["stream"], 1, "{job}");
    assert_eq!(rec["mode"], "linear", "{job}");
    let output = rec["output"]["integrated_lufs"].as_f64().unwrap();
    assert!((output + 16.0).abs() <= 1.0, "{rec}");
    let text = s.run(&["show", "episode"]).expect(0).stdout.clone();
    assert!(
        text.contains("loudness of stream #1: ") && text.contains(" LU (linear)"),
        "{text}"
    );
    let logs = s.run(&["logs", "episode"]).expect(0).stdout.clone();
    assert!(logs.contains(": loudness of stream #1: "), "{logs}");
}

#[test]
fn a_clip_is_measured_and_normalised_alone() {
    let set = presets(&[("to-16", &audio_preset(Some("{ target = -16.0 }")))]);
    let dir = tempdir();
    let input = valid("loudness_steps.m4a");
    let output = dir.path().join("quiet-part.m4a");
    let edits = media::Edits {
        clip: Some(ffarm::job::Clip {
            start: 1.0,
            end: Some(4.0),
        }),
        ..media::Edits::default()
    };
    let report = media::transcode_many_then(
        &input,
        &[media::OutputSpec {
            path: &output,
            preset: set.get("to-16").unwrap(),
        }],
        &edits,
        &StopToken::new(),
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap();
    // Measured over the whole file, the quiet part would have been given the loud part's
    // gain and come out some 30 LU under the target.
    let after = ebur128(&output);
    assert!(
        (after.integrated + 16.0).abs() <= 1.0,
        "{} LUFS, wanted -16",
        after.integrated
    );
    let rec = record(&report);
    assert!(
        rec.input.integrated_lufs < -30.0,
        "the clip's own loudness: {rec:?}"
    );
}
