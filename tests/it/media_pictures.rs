//! What the filters do to awkward sources: rotation honoured (compared pixel by pixel with
//! the `ffmpeg` command line's autorotate), interlacing removed, anamorphic and odd sizes,
//! variable frame rate kept and never padded by a cap, pictures and sound that change format
//! mid-stream, several and surround audio tracks, missing audio or video.

use std::path::Path;
use std::process::Command;

use crate::helpers::{
    count_frames, ffprobe, ffprobe_streams, num, packet_times, preset, rate, stream_extent,
    tempdir, transcode, valid,
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
    let p =
        ffarm::preset::Presets::parse("cap15", "test", preset_text, &ffarm::media::caps::Ffmpeg)
            .unwrap();
    let dir = tempdir();
    let out = dir.path().join("c.mp4");
    transcode(&valid("video_only.mp4"), &out, &p).unwrap();
    let v = &ffprobe_streams(&ffprobe(&out), "video")[0];
    assert_eq!(v["avg_frame_rate"], "15/1");
    assert_eq!(count_frames(&out, "v:0"), 30, "2 s at 15 fps");
}

#[test]
fn a_frame_rate_cap_never_adds_frames() {
    // 135 frames on a 120 fps base (r_frame_rate 120/1) but 45 fps on average.
    let input = valid("vfr_base120.mp4");
    let src = ffprobe_streams(&ffprobe(&input), "video")[0].clone();
    assert_eq!(src["r_frame_rate"], "120/1");
    assert!((rate(&src["avg_frame_rate"]) - 45.0).abs() < 0.5);
    assert_eq!(count_frames(&input, "v:0"), 135);
    let dir = tempdir();
    // A 60 fps cap is above the real rate: nothing changes, timestamps included.
    let out = dir.path().join("60.mp4");
    transcode(&input, &out, preset("h264-720p")).unwrap();
    assert_eq!(
        count_frames(&out, "v:0"),
        135,
        "no frame added under a 60 fps cap"
    );
    let (src_times, ours) = (frame_times(&input), frame_times(&out));
    for (a, b) in src_times.iter().zip(&ours) {
        assert!((a - b).abs() < 0.002, "frame at {a} s moved to {b} s");
    }
    // A 30 fps cap is below it: frames are dropped onto the 30 fps grid, never repeated.
    let out = dir.path().join("30.mp4");
    transcode(&input, &out, preset("h264-480p")).unwrap();
    assert_eq!(count_frames(&out, "v:0"), 90, "3 s at 30 fps");
    let times = frame_times(&out);
    assert!(
        times
            .windows(2)
            .all(|w| (w[1] - w[0] - 1.0 / 30.0).abs() < 0.002),
        "evenly spaced at 30 fps"
    );
    let video = stream_extent(&out, "v:0");
    assert!(
        (video - stream_extent(&input, "v:0")).abs() <= 1.0 / 30.0 + 0.002,
        "{video} s"
    );
}

/// FFmpeg's `cropdetect` verdict (width, height) on the picture at `at` seconds: the part of
/// the frame that is not black bars.
fn visible_area(path: &Path, at: f64) -> (u32, u32) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-ss", &format!("{at}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "5",
            "-vf",
            "cropdetect=limit=16:round=2:reset=1",
        ])
        .args(["-an", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let crop = text
        .lines()
        .filter_map(|l| l.split("crop=").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no cropdetect output: {text}"));
    let mut sides = crop.split(':').map(|v| v.trim().parse::<u32>().unwrap());
    (sides.next().unwrap(), sides.next().unwrap())
}

#[test]
fn pictures_and_sound_that_change_format_mid_stream() {
    // 2 s of 320x240 with stereo 48 kHz, then 2 s of 640x360 with mono 44.1 kHz, in one
    // transport stream.
    let input = valid("format_change.ts");
    let dir = tempdir();
    for name in ["mp4", "h264-480p"] {
        let out = dir.path().join(format!("{name}.mp4"));
        transcode(&input, &out, preset(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let probe = ffprobe(&out);
        let v = &ffprobe_streams(&probe, "video")[0];
        // The size chosen from the first pictures holds for the whole output.
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(320), Some(240)),
            "{name}"
        );
        assert_eq!(
            count_frames(&out, "v:0"),
            count_frames(&input, "v:0"),
            "{name}"
        );
        let video = stream_extent(&out, "v:0");
        assert!(
            (video - stream_extent(&input, "v:0")).abs() <= 1.0 / 25.0 + 0.002,
            "{name}: video {video} s"
        );
        // The 16:9 pictures are letterboxed into 4:3, not stretched.
        assert_eq!(
            visible_area(&out, 0.5),
            (320, 240),
            "{name}: first part fills the frame"
        );
        assert_eq!(
            visible_area(&out, 3.0),
            (320, 180),
            "{name}: second part keeps 16:9"
        );
        // The sound goes on in the first part's format, for the whole duration: within the
        // encoder's priming frame plus the part of a frame either side of the splice.
        let a = &ffprobe_streams(&probe, "audio")[0];
        assert_eq!(a["channels"], 2, "{name}");
        assert_eq!(a["sample_rate"], "48000", "{name}");
        let frame = packet_times(&out, "a:0")[0].1;
        let audio = stream_extent(&out, "a:0");
        assert!(
            (audio - stream_extent(&input, "a:0")).abs() <= 2.0 * frame + 0.002,
            "{name}: audio {audio} s vs {} s",
            stream_extent(&input, "a:0")
        );
    }
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
