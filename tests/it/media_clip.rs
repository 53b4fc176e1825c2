//! Clips (`Edits::clip`, a job's `clip`, `ffarm transcode --start/--end`): the output is the
//! input's part between two times, frame-accurate (its first picture is the source's frame
//! at the start, by PSNR against the frames either side; its frame count the source's
//! frames inside), the audio cut to the same length; beside other outputs of one decode
//! (a poster from inside the clip, HLS segments summing to it); and the clips that cannot
//! be made refused by name.

use std::path::Path;
use std::process::Command;

use ffarm::job::Clip;
use ffarm::media::{self, Edits, OutputSpec};
use ffarm::preset::{Preset, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{
    count_frames, ffarm_bin, ffprobe, ffprobe_streams, num, preset, stream_extent, tempdir, valid,
};

/// H.264 + AAC in MP4 at the source's size: each output frame is one source frame.
fn small_h264(dir: &Path) -> Preset {
    let text = "description = \"test\"\ncontainer = \"mp4\"\n[video]\ncodec = \"h264\"\n\
                crf = 18\nencoder_preset = \"ultrafast\"\n[audio]\ncodec = \"aac\"\n\
                bitrate = \"96k\"\n";
    std::fs::write(dir.join("small.toml"), text).unwrap();
    let presets = Presets::load(Some(dir), &media::caps::Ffmpeg).unwrap();
    presets.get("small").unwrap().clone()
}

fn clipped(
    input: &Path,
    outputs: &[OutputSpec],
    start: f64,
    end: Option<f64>,
) -> Result<media::TranscodeReport, media::MediaError> {
    let edits = Edits {
        clip: Some(Clip { start, end }),
        ..Edits::default()
    };
    media::transcode_many_then(
        input,
        outputs,
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
}

/// The PSNR of `ours`' first picture against the source's first picture at or after `at`
/// seconds (the command line's accurate input seek).
fn first_frame_psnr(ours: &Path, source: &Path, at: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(ours)
        .args(["-ss", &format!("{at:.6}"), "-i"])
        .arg(source)
        .args([
            "-filter_complex",
            "[0:v]trim=end_frame=1,setpts=PTS-STARTPTS[a];\
             [1:v]trim=end_frame=1,setpts=PTS-STARTPTS[b];[a][b]psnr",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let avg = text
        .split("average:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no PSNR in: {text}"));
    if avg == "inf" {
        f64::INFINITY
    } else {
        avg.parse().unwrap()
    }
}

#[test]
fn a_clip_is_frame_accurate_and_its_audio_matches() {
    let dir = tempdir();
    let p = small_h264(dir.path());
    // 2-second open GOPs: the start lies between keyframes, whose leading B-frames reach
    // back across them.
    let source = valid("split_4min.mp4");
    let out = dir.path().join("clip.mp4");
    let (start, end) = (61.31, 63.99);
    let report = clipped(
        &source,
        &[OutputSpec {
            path: &out,
            preset: &p,
        }],
        start,
        Some(end),
    )
    .unwrap();
    let length = end - start;
    let frame = 1.0 / 30.0;
    // The source's frames at 61.3333… (frame 1840) to 63.9667 (1919): 80 of them.
    assert_eq!(count_frames(&out, "v:0"), 80);
    let probe = ffprobe(&out);
    let video = num(&ffprobe_streams(&probe, "video")[0]["duration"]);
    assert!((video - length).abs() <= frame + 1e-3, "video {video}");
    let audio = stream_extent(&out, "a:0");
    assert!(
        (audio - length).abs() <= 1024.0 / 48000.0 + 1e-3,
        "audio {audio}"
    );
    let probed = num(&probe["format"]["duration"]);
    assert!((probed - length).abs() <= frame + 0.03, "{probed}");
    let check = &report.checks[0];
    assert!((check.duration_seconds.unwrap() - length).abs() <= frame + 0.03);
    // The first picture is the source's frame 1840, not one either side of it (each found
    // by seeking between frames: the command line keeps the first at or after the time).
    let frame_at = |k: f64| first_frame_psnr(&out, &source, (k - 0.5) / 30.0);
    let (before, here, after) = (frame_at(1839.0), frame_at(1840.0), frame_at(1841.0));
    assert!(here > 35.0, "the start frame: {here} dB");
    assert!(
        here > before + 3.0 && here > after + 3.0,
        "{before} < {here} > {after}"
    );
}

#[test]
fn a_clip_to_the_end_and_beside_other_outputs_of_one_decode() {
    let dir = tempdir();
    let source = valid("hls_source_1080p.mp4"); // 13 s
    let (mp4, hls, jpg, vtt) = (
        dir.path().join("a.mp4"),
        dir.path().join("hls/index.m3u8"),
        dir.path().join("a.jpg"),
        dir.path().join("sb/a.vtt"),
    );
    let outputs = [
        OutputSpec {
            path: &mp4,
            preset: preset("h264-480p"),
        },
        OutputSpec {
            path: &hls,
            preset: preset("hls-720p"),
        },
        OutputSpec {
            path: &jpg,
            preset: preset("poster-jpg"),
        },
        OutputSpec {
            path: &vtt,
            preset: preset("storyboard"),
        },
    ];
    let report = clipped(&source, &outputs, 4.0, None).unwrap();
    let length = 9.0;
    let mp4_length = num(&ffprobe(&mp4)["format"]["duration"]);
    assert!((mp4_length - length).abs() < 0.1, "{mp4_length}");
    // The HLS segments add up to the clip.
    let playlist = std::fs::read_to_string(&hls).unwrap();
    let total: f64 = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((total - length).abs() < 0.1, "{total}\n{playlist}");
    assert!(ffprobe(&jpg)["streams"][0]["width"].as_u64().is_some());
    // The storyboard's cues cover the clip, not the input (a thumbnail every 5 s: 2).
    let cues = std::fs::read_to_string(&vtt).unwrap();
    assert_eq!(cues.matches(" --> ").count(), 2, "{cues}");
    for check in &report.checks {
        if let Some(d) = check.duration_seconds {
            assert!(d <= length + 0.1, "{check:?}");
        }
    }
}

#[test]
fn clips_that_cannot_be_made_are_refused_by_name() {
    let dir = tempdir();
    let source = valid("h264_aac.mp4"); // 2 s
    let out = dir.path().join("x.mp4");
    let one = |p: &'static Preset| {
        [OutputSpec {
            path: &out,
            preset: p,
        }]
    };
    let cases: [(&str, f64, Option<f64>, &str, &str); 4] = [
        ("h264-480p", 5.0, None, "clip-out-of-range", "clip.start"),
        ("h264-480p", 0.5, Some(9.0), "clip-out-of-range", "clip.end"),
        (
            "h264-480p",
            1.0,
            Some(0.5),
            "clip-out-of-range",
            "after clip.start",
        ),
        (
            "remux-mkv",
            0.5,
            Some(1.0),
            "unsupported",
            "copies the input's video",
        ),
    ];
    for (name, start, end, code, says) in cases {
        let e = clipped(&source, &one(preset(name)), start, end).unwrap_err();
        assert_eq!(e.code(), code, "{name} {start} {end:?}: {e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(!out.exists());
}

#[test]
fn transcode_start_and_end_on_the_command_line() {
    let dir = tempdir();
    let source = valid("long_720p.mp4");
    let out = dir.path().join("cut.mp4");
    let args = |extra: &[&str]| {
        let mut cmd = Command::new(ffarm_bin());
        cmd.arg("transcode")
            .arg(&source)
            .arg(&out)
            .args(["--preset", "h264-480p", "--start", "10", "--end", "12.5"])
            .args(extra);
        cmd.output().unwrap()
    };
    let printed = args(&["--print-ffmpeg"]);
    let line = String::from_utf8_lossy(&printed.stdout).to_string();
    assert!(
        line.contains("-ss 10.000000 -i") && line.contains("-t 2.500000"),
        "{line}"
    );
    let ran = args(&[]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let d = num(&ffprobe(&out)["format"]["duration"]);
    assert!((d - 2.5).abs() < 0.05, "{d}");
    let mut bad = Command::new(ffarm_bin());
    let bad = bad
        .arg("transcode")
        .arg(&source)
        .arg(dir.path().join("bad.mp4"))
        .arg("--start=-3")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("clip.start"), "{said}");
}
