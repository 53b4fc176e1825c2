//! What the filters do to awkward sources: rotation honoured (compared pixel by pixel with
//! the `ffmpeg` command line's autorotate), interlacing removed, anamorphic and odd sizes,
//! variable frame rate kept, several and surround audio tracks, missing audio or video.

use std::path::Path;
use std::process::Command;

use crate::helpers::{
    count_frames, ffprobe, ffprobe_streams, num, preset, tempdir, transcode, valid,
};

/// Average PSNR (dB) between two videos of the same size, per FFmpeg's `psnr` filter.
fn psnr(a: &Path, b: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("average:").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| {
            if v == "inf" {
                100.0
            } else {
                v.parse().unwrap_or(0.0)
            }
        })
        .unwrap_or_else(|| panic!("no PSNR in: {text}"))
}

#[test]
fn rotation_is_applied_like_the_command_line_does() {
    let dir = tempdir();
    let input = valid("rotated90.mp4");
    let ours = dir.path().join("ours.mp4");
    transcode(&input, &ours, preset("h264-720p")).unwrap();
    let v = &ffprobe_streams(&ffprobe(&ours), "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(360), Some(640)),
        "upright"
    );
    assert!(
        v["side_data_list"].is_null(),
        "the rotation is baked in, not left as metadata"
    );
    // The reference: the command line's autorotate, lossless.
    let reference = dir.path().join("ref.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&input)
        .args(["-an", "-c:v", "ffv1"])
        .arg(&reference)
        .status()
        .unwrap();
    assert!(status.success());
    let matched = psnr(&ours, &reference);
    assert!(
        matched > 30.0,
        "our upright picture matches ffmpeg's: {matched} dB"
    );
    // And it would not match the picture turned the other way.
    let wrong = dir.path().join("wrong.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-noautorotate", "-i"])
        .arg(&input)
        .args(["-vf", "transpose=clock", "-an", "-c:v", "ffv1"])
        .arg(&wrong)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        psnr(&ours, &wrong) < matched - 10.0,
        "the check tells the two rotations apart"
    );
}

/// FFmpeg's `idet` verdict over a file: (interlaced frames, progressive frames).
fn idet(path: &Path) -> (u64, u64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(path)
        .args(["-vf", "idet", "-an", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Multi frame detection"))
        .unwrap_or_else(|| panic!("no idet summary: {text}"));
    let field = |name: &str| -> u64 {
        line.split(&format!("{name}:"))
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("TFF") + field("BFF"), field("Progressive"))
}

#[test]
fn interlaced_sources_are_deinterlaced() {
    let dir = tempdir();
    let input = valid("mpeg2_interlaced.ts");
    let (src_interlaced, _) = idet(&input);
    assert!(
        src_interlaced > 20,
        "the fixture is interlaced ({src_interlaced} frames)"
    );
    let out = dir.path().join("p.mp4");
    transcode(&input, &out, preset("h264-720p")).unwrap();
    let (interlaced, progressive) = idet(&out);
    assert!(
        progressive > interlaced * 4,
        "output progressive: {progressive} vs {interlaced} interlaced"
    );
    let v = &ffprobe_streams(&ffprobe(&out), "video")[0];
    assert_eq!(v["field_order"], "progressive");
    // One frame per frame: 2 s at 25 fps.
    assert_eq!(count_frames(&out, "v:0"), 50);
    assert!(
        (num(&v["duration"]) - 2.0).abs() < 0.05,
        "duration {}",
        v["duration"]
    );
}

#[test]
fn anamorphic_and_odd_sizes_become_square_even_pictures() {
    let dir = tempdir();
    let out = dir.path().join("a.mp4");
    transcode(&valid("anamorphic.mkv"), &out, preset("mp4")).unwrap();
    let v = &ffprobe_streams(&ffprobe(&out), "video")[0];
    // 720x480 displayed 16:9 → 720 wide, about 405 high, square pixels.
    assert_eq!(v["width"], 720);
    assert!(
        (num(&v["height"]) - 405.0).abs() <= 1.0,
        "height {}",
        v["height"]
    );
    assert_eq!(v["sample_aspect_ratio"], "1:1");

    let out = dir.path().join("o.mp4");
    transcode(&valid("odd_641x361.mkv"), &out, preset("mp4")).unwrap();
    let v = &ffprobe_streams(&ffprobe(&out), "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(v["pix_fmt"], "yuv420p");
}

/// The presentation times of a file's video frames, in display order.
fn frame_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

#[test]
fn variable_frame_rate_is_kept() {
    let dir = tempdir();
    let input = valid("vfr.mp4");
    let out = dir.path().join("v.mp4");
    transcode(&input, &out, preset("mp4")).unwrap();
    let (src, ours) = (frame_times(&input), frame_times(&out));
    assert_eq!(
        src.len(),
        40,
        "the fixture drops two frames in three during its first second"
    );
    assert_eq!(ours.len(), src.len(), "no frames duplicated or dropped");
    for (a, b) in src.iter().zip(&ours) {
        assert!((a - b).abs() < 0.002, "frame at {a} s moved to {b} s");
    }
    // The gaps really are uneven: 0.1 s early on, 1/30 s later.
    assert!(
        (src[1] - src[0] - 0.1).abs() < 0.002 && (src[39] - src[38] - 1.0 / 30.0).abs() < 0.002
    );
}

#[test]
fn frame_rate_cap_resamples_to_the_cap() {
    let preset_text = r#"
        description = "test: cap at 15 fps"
        container = "mp4"
        [video]
        codec = "h264"
        encoder_preset = "ultrafast"
        crf = 30
        max_fps = 15
    "#;
    let p = ffarm::preset::Presets::parse("cap15", "test", preset_text).unwrap();
    let dir = tempdir();
    let out = dir.path().join("c.mp4");
    transcode(&valid("video_only.mp4"), &out, &p).unwrap();
    let v = &ffprobe_streams(&ffprobe(&out), "video")[0];
    assert_eq!(v["avg_frame_rate"], "15/1");
    assert_eq!(count_frames(&out, "v:0"), 30, "2 s at 15 fps");
}

#[test]
fn audio_tracks_surround_and_missing_streams() {
    let dir = tempdir();
    // Two tracks stay two, with their languages.
    let out = dir.path().join("two.mkv");
    transcode(&valid("two_audio.mkv"), &out, preset("mkv")).unwrap();
    let audio = ffprobe_streams(&ffprobe(&out), "audio");
    assert_eq!(audio.len(), 2);
    assert_eq!(audio[0]["tags"]["language"], "eng");
    assert_eq!(audio[1]["tags"]["language"], "fra");
    assert_eq!(audio[0]["disposition"]["default"], 1);
    assert_eq!(audio[1]["disposition"]["default"], 0);

    // 5.1 is downmixed for a stereo preset, kept for one that does not say.
    let out = dir.path().join("st.mp4");
    transcode(&valid("surround51.mkv"), &out, preset("h264-720p")).unwrap();
    assert_eq!(ffprobe_streams(&ffprobe(&out), "audio")[0]["channels"], 2);
    let out = dir.path().join("six.mkv");
    transcode(&valid("surround51.mkv"), &out, preset("mkv")).unwrap();
    let a = &ffprobe_streams(&ffprobe(&out), "audio")[0];
    assert_eq!(a["channels"], 6);
    assert_eq!(a["channel_layout"], "5.1");

    // No audio in: video only out. No video in: audio only out.
    let out = dir.path().join("vo.mp4");
    transcode(&valid("video_only.mp4"), &out, preset("h264-720p")).unwrap();
    let p = ffprobe(&out);
    assert_eq!(ffprobe_streams(&p, "video").len(), 1);
    assert!(ffprobe_streams(&p, "audio").is_empty());
    let out = dir.path().join("ao.mp4");
    transcode(&valid("audio_only.m4a"), &out, preset("h264-720p")).unwrap();
    let p = ffprobe(&out);
    assert!(ffprobe_streams(&p, "video").is_empty());
    assert_eq!(ffprobe_streams(&p, "audio").len(), 1);

    // Cover art in an MP3 is not mistaken for video.
    let out = dir.path().join("cover.mp4");
    transcode(&valid("audio_cover.mp3"), &out, preset("mp4")).unwrap();
    let p = ffprobe(&out);
    assert!(ffprobe_streams(&p, "video").is_empty());
    assert!((num(&p["format"]["duration"]) - 2.0).abs() < 0.1);
}

#[test]
fn ten_bit_and_other_codecs_in_decode_to_the_preset_format() {
    for name in [
        "h264_10bit.mkv",
        "hevc_aac.mkv",
        "vp9_opus.webm",
        "av1_opus.mkv",
        "mpeg4_mp3.avi",
        "h264_aac.flv",
        "h264_pcm.mov",
        "mpeg2_interlaced.ts",
    ] {
        let dir = tempdir();
        let out = dir.path().join("o.mp4");
        transcode(&valid(name), &out, preset("h264-480p"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = ffprobe(&out);
        let v = &ffprobe_streams(&p, "video")[0];
        assert_eq!(v["codec_name"], "h264", "{name}");
        assert_eq!(v["pix_fmt"], "yuv420p", "{name}");
        assert_eq!(v["profile"], "Main", "{name}");
        assert_eq!(
            ffprobe_streams(&p, "audio")[0]["codec_name"],
            "aac",
            "{name}"
        );
    }
}
