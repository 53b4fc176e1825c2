//! Storyboards (`container = "storyboard"`): JPEG sprite sheets of a thumbnail every N
//! seconds and a WebVTT file whose cues point into them — every cue parsed, its sheet
//! present, its `#xywh` inside the sheet as ffprobe measures it, the cues back to back from
//! 0 to the video's end; alone and beside other outputs of one decode; and the preset's bad
//! settings refused with the field named.

use std::path::Path;

use ffarm::media::{self, OutputKind, OutputSpec};
use ffarm::preset::{Preset, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, num, preset, tempdir, valid};

/// A storyboard preset with a thumbnail every `interval` s, 3 × 2 to a sheet, 96 px wide.
fn grid_preset(dir: &Path, interval: f64) -> Preset {
    let text = format!(
        "description = \"test\"\ncontainer = \"storyboard\"\n[video]\ncodec = \"mjpeg\"\n\
         quality = 5\n[storyboard]\ninterval_seconds = {interval}\ntile_width = 96\n\
         columns = 3\nrows = 2\n"
    );
    std::fs::write(dir.join("grid.toml"), text).unwrap();
    let presets = Presets::load(Some(dir), &media::caps::Ffmpeg).unwrap();
    presets.get("grid").unwrap().clone()
}

/// One cue: start, end, sheet file, x, y, w, h.
type Cue = (f64, f64, String, u32, u32, u32, u32);

fn seconds(t: &str) -> f64 {
    let parts: Vec<f64> = t.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

fn parse_cues(text: &str) -> Vec<Cue> {
    assert!(text.starts_with("WEBVTT\n"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let mut cues = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((start, end)) = line.split_once(" --> ") else {
            continue;
        };
        let (file, xywh) = lines[i + 1].split_once("#xywh=").expect("a #xywh target");
        let n: Vec<u32> = xywh.split(',').map(|v| v.parse().unwrap()).collect();
        cues.push((
            seconds(start),
            seconds(end),
            file.to_string(),
            n[0],
            n[1],
            n[2],
            n[3],
        ));
    }
    cues
}

/// Checks the storyboard at `vtt` against a video of `duration` seconds.
fn check_storyboard(vtt: &Path, duration: f64, interval: f64, tile_width: u32) -> Vec<Cue> {
    let cues = parse_cues(&std::fs::read_to_string(vtt).unwrap());
    let want = (duration / interval - 1e-6).ceil() as usize;
    assert_eq!(cues.len(), want, "a thumbnail per interval of {duration} s");
    let dir = vtt.parent().unwrap();
    let mut expected_start = 0.0;
    for (start, end, file, x, y, w, h) in &cues {
        assert!(
            (start - expected_start).abs() < 1e-3,
            "{start} after {expected_start}"
        );
        assert!(end > start && *end <= duration + 1e-3, "{start} --> {end}");
        expected_start = *end;
        let sheet = ffprobe(&dir.join(file));
        let v = &ffprobe_streams(&sheet, "video")[0];
        assert_eq!(v["codec_name"], "mjpeg", "{file}");
        let (sw, sh) = (num(&v["width"]) as u32, num(&v["height"]) as u32);
        assert!(
            x + w <= sw && y + h <= sh,
            "{file}#xywh={x},{y},{w},{h} in {sw}x{sh}"
        );
        assert_eq!(*w, tile_width);
    }
    assert!(
        (expected_start - duration).abs() < 0.05,
        "the last cue ends the video"
    );
    cues
}

#[test]
fn cues_point_inside_their_sheets() {
    let dir = tempdir();
    let presets = tempdir();
    let grid = grid_preset(presets.path(), 3.0);
    let out = dir.path().join("board.vtt");
    let report = media::transcode(
        &valid("long_720p.mp4"),
        &out,
        &grid,
        &StopToken::new(),
        &mut |_: &Progress| {},
    )
    .unwrap();
    // 40 s every 3 s: 14 thumbnails on three sheets of six.
    let cues = check_storyboard(&out, 40.0, 3.0, 96);
    let sheets: Vec<&str> = cues.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(sheets.first(), Some(&"board_001.jpg"));
    assert_eq!(sheets.last(), Some(&"board_003.jpg"));
    assert_eq!(
        (cues[7].3, cues[7].4),
        (96, 0),
        "the 8th is the second on sheet 2"
    );
    let h = cues[0].6;
    assert_eq!(h, 54, "96 px wide keeps 16:9");
    let kinds: Vec<_> = report.outputs.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds.last(),
        Some(&OutputKind::Cues),
        "the cues are published last"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == OutputKind::Picture).count(),
        3
    );
    // Thumbnails differ from one another: the moving test card is not frozen.
    let first = crop_md5(&dir.path().join("board_001.jpg"), &cues[0]);
    let second = crop_md5(&dir.path().join("board_001.jpg"), &cues[1]);
    assert_ne!(first, second);
}

/// The MD5 of one cue's region of its sheet.
fn crop_md5(sheet: &Path, cue: &Cue) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(sheet)
        .args([
            "-vf",
            &format!("crop={}:{}:{}:{}", cue.5, cue.6, cue.3, cue.4),
            "-f",
            "md5",
            "-",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_storyboard_beside_other_outputs_of_one_decode() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    let (mp4, vtt) = (dir.path().join("c.mp4"), dir.path().join("c.vtt"));
    let board = {
        let p = tempdir();
        grid_preset(p.path(), 0.5)
    };
    let outputs = [
        OutputSpec {
            path: &mp4,
            preset: preset("h264-720p"),
        },
        OutputSpec {
            path: &vtt,
            preset: &board,
        },
    ];
    let report =
        media::transcode_many(&input, &outputs, &StopToken::new(), &mut |_: &Progress| {}).unwrap();
    assert!(
        (report.out_time_seconds - 2.0).abs() < 0.1,
        "{}",
        report.out_time_seconds
    );
    check_storyboard(&vtt, 2.0, 0.5, 96);
    assert!(mp4.exists());
}

#[test]
fn the_shipped_storyboard_and_its_bad_settings() {
    let shipped = preset("storyboard");
    let grid = shipped.storyboard.unwrap();
    assert_eq!((grid.tile_width, grid.columns, grid.rows), (160, 10, 10));
    let dir = tempdir();
    for (section, words) in [
        ("tile_width = 161", "storyboard.tile_width: must be even"),
        (
            "interval_seconds = 0",
            "storyboard.interval_seconds: must be between",
        ),
        (
            "columns = 60",
            "storyboard.columns: must be between 1 and 50",
        ),
        ("tile_width = 1000\ncolumns = 10", "at most 8192"),
    ] {
        let text = format!(
            "description = \"x\"\ncontainer = \"storyboard\"\n[video]\ncodec = \"mjpeg\"\n\
             quality = 5\n[storyboard]\n{section}\n"
        );
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        let e = Presets::load(Some(dir.path()), &media::caps::Ffmpeg).unwrap_err();
        assert!(e.to_string().contains(words), "{section}: {e}");
    }
    let text = "description = \"x\"\ncontainer = \"mp4\"\n[video]\ncodec = \"h264\"\n\
                crf = 23\n[storyboard]\ncolumns = 2\n";
    std::fs::write(dir.path().join("bad.toml"), text).unwrap();
    let e = Presets::load(Some(dir.path()), &media::caps::Ffmpeg).unwrap_err();
    assert!(
        e.to_string()
            .contains("only a storyboard container takes [storyboard]"),
        "{e}"
    );
}
