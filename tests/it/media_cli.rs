//! `ffarm transcode` as a user runs it: exit codes, the default preset from the output name,
//! and Ctrl-C (SIGINT) leaving no partial file.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::{ffarm_bin, ffprobe, ffprobe_streams, files_under, tempdir, valid};

#[test]
fn transcode_picks_the_preset_from_the_output_extension() {
    let dir = tempdir();
    let out = dir.path().join("clip.webm");
    let status = Command::new(ffarm_bin())
        .arg("transcode")
        .arg(valid("h264_aac.mp4"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let p = ffprobe(&out);
    assert_eq!(ffprobe_streams(&p, "video")[0]["codec_name"], "vp9");
    assert_eq!(ffprobe_streams(&p, "audio")[0]["codec_name"], "opus");
}

#[test]
fn transcode_json_report_lists_the_outputs() {
    let dir = tempdir();
    let out = Command::new(ffarm_bin())
        .args(["transcode", "--json", "--preset", "hls-720p"])
        .arg(valid("h264_aac.mp4"))
        .arg(dir.path().join("v.m3u8"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.last().unwrap()["kind"], "playlist");
    assert!(outputs.iter().all(|o| o["bytes"].as_u64().unwrap() > 0));
    assert_eq!(report["input"]["streams"][0]["codec"], "h264");
}

#[test]
fn usage_errors_and_unknown_presets() {
    let out = Command::new(ffarm_bin())
        .args(["transcode"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let dir = tempdir();
    let out = Command::new(ffarm_bin())
        .args(["transcode", "--preset", "h264-9000p"])
        .arg(valid("h264_aac.mp4"))
        .arg(dir.path().join("o.mp4"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown preset 'h264-9000p'") && stderr.contains("h264-720p"),
        "{stderr}"
    );
    let out = Command::new(ffarm_bin())
        .arg("transcode")
        .arg(valid("h264_aac.mp4"))
        .arg(dir.path().join("o.xyz"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no default preset for .xyz"));
}

#[test]
fn ctrl_c_stops_and_removes_the_partial_file() {
    let dir = tempdir();
    let mut child = Command::new(ffarm_bin())
        .args(["transcode", "--preset", "h264-720p"])
        .arg(valid("long_720p.mp4"))
        .arg(dir.path().join("long.mp4"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the staging file to appear: the transcode is under way.
    let started = Instant::now();
    while files_under(dir.path()).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        asked.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    assert!(
        files_under(dir.path()).is_empty(),
        "left: {:?}",
        files_under(dir.path())
    );
}

#[test]
fn transcode_with_an_encrypting_preset_writes_the_key_beside_the_playlists() {
    let dir = tempdir();
    let playlist = dir.path().join("v.m3u8");
    let out = Command::new(ffarm_bin())
        .args(["transcode", "--preset", "hls-720p-aes"])
        .arg(valid("hls_source_1080p.mp4"))
        .arg(&playlist)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: [u8; 16] = std::fs::read(dir.path().join("v.key"))
        .unwrap()
        .try_into()
        .expect("a 16-byte key");
    crate::media_cmaf::assert_decrypts(&playlist, &key, "v.key");
    // ffprobe reads the playlist, fetching the key it names beside it (FFmpeg's HLS reader
    // opens a `.key` file only when told to); without the key, it cannot.
    let streams = || {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-allowed_extensions", "ALL", "-show_streams"])
            .arg(&playlist)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(streams().contains("codec_name=h264"));
    std::fs::remove_file(dir.path().join("v.key")).unwrap();
    assert!(!streams().contains("codec_name=h264"));
    let printed = Command::new(ffarm_bin())
        .args(["transcode", "--print-ffmpeg", "--preset", "hls-720p-aes"])
        .arg(valid("h264_aac.mp4"))
        .arg(&playlist)
        .output()
        .unwrap();
    assert!(!printed.status.success());
    assert!(String::from_utf8_lossy(&printed.stderr).contains("segment key"));
}
