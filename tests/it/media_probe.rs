//! `ffarm probe` agrees with FFmpeg's own `ffprobe` on every fixture, colour tags included.

use serde_json::Value;

use crate::helpers::{ffprobe, num, valid_dir};

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

#[test]
fn probe_matches_ffprobe_on_every_valid_fixture() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(valid_dir()).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let ours = ffarm::media::probe(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let theirs = ffprobe(&path);
        let f = &theirs["format"];
        let file = path.display();
        assert_eq!(
            ours.container,
            f["format_name"].as_str().unwrap(),
            "{file}: container"
        );
        assert_eq!(
            ours.container_long_name,
            f["format_long_name"].as_str().unwrap(),
            "{file}"
        );
        let d = num(&f["duration"]);
        assert!(
            (ours.duration_seconds.unwrap() - d).abs() < 1e-5,
            "{file}: duration {ours:?} vs {d}"
        );
        assert_eq!(
            ours.bit_rate,
            f["bit_rate"].as_str().and_then(|b| b.parse().ok()),
            "{file}: bit rate"
        );
        assert_eq!(ours.size_bytes, num(&f["size"]) as u64, "{file}: size");
        let streams = theirs["streams"].as_array().unwrap();
        assert_eq!(ours.streams.len(), streams.len(), "{file}: stream count");
        for (o, t) in ours.streams.iter().zip(streams) {
            let what = format!("{file} stream #{}", o.index);
            assert_eq!(o.index as u64, t["index"].as_u64().unwrap(), "{what}");
            assert_eq!(o.kind, t["codec_type"].as_str().unwrap(), "{what}: kind");
            assert_eq!(o.codec, t["codec_name"].as_str().unwrap(), "{what}: codec");
            assert_eq!(o.profile, opt_str(&t["profile"]), "{what}: profile");
            assert_eq!(
                o.language,
                opt_str(&t["tags"]["language"]),
                "{what}: language"
            );
            match o.kind.as_str() {
                "video" => {
                    assert_eq!(
                        o.width,
                        t["width"].as_u64().map(|v| v as u32),
                        "{what}: width"
                    );
                    assert_eq!(
                        o.height,
                        t["height"].as_u64().map(|v| v as u32),
                        "{what}: height"
                    );
                    assert_eq!(
                        o.pixel_format,
                        opt_str(&t["pix_fmt"]),
                        "{what}: pixel format"
                    );
                    assert_eq!(
                        o.avg_frame_rate.clone().unwrap_or("0/0".into()),
                        t["avg_frame_rate"].as_str().unwrap(),
                        "{what}: avg rate"
                    );
                    assert_eq!(
                        o.r_frame_rate.clone().unwrap_or("0/0".into()),
                        t["r_frame_rate"].as_str().unwrap(),
                        "{what}: r rate"
                    );
                    assert_eq!(
                        o.field_order,
                        opt_str(&t["field_order"]),
                        "{what}: field order"
                    );
                    for (value, key) in [
                        (&o.color_range, "color_range"),
                        (&o.color_space, "color_space"),
                        (&o.color_transfer, "color_transfer"),
                        (&o.color_primaries, "color_primaries"),
                    ] {
                        assert_eq!(*value, opt_str(&t[key]), "{what}: {key}");
                    }
                    let rotation = t["side_data_list"]
                        .as_array()
                        .and_then(|l| l.iter().find_map(|sd| sd["rotation"].as_i64()))
                        .filter(|r| *r != 0);
                    assert_eq!(o.rotation.map(i64::from), rotation, "{what}: rotation");
                    assert_eq!(
                        o.attached_picture,
                        t["disposition"]["attached_pic"] == 1,
                        "{what}"
                    );
                }
                "audio" => {
                    assert_eq!(
                        o.sample_rate,
                        Some(num(&t["sample_rate"]) as u32),
                        "{what}: rate"
                    );
                    assert_eq!(
                        o.channels,
                        t["channels"].as_u64().map(|v| v as u32),
                        "{what}: channels"
                    );
                    assert_eq!(
                        o.channel_layout,
                        opt_str(&t["channel_layout"]),
                        "{what}: layout"
                    );
                    assert_eq!(
                        o.sample_format,
                        opt_str(&t["sample_fmt"]),
                        "{what}: sample format"
                    );
                }
                _ => {}
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "expected the full fixture set, checked {checked}"
    );
}

#[test]
fn probe_reports_the_shapes_the_fixtures_were_made_with() {
    let p = |n: &str| ffarm::media::probe(&crate::helpers::valid(n)).unwrap();
    assert_eq!(p("rotated90.mp4").video().unwrap().rotation, Some(90));
    assert_eq!(
        p("mpeg2_interlaced.ts")
            .video()
            .unwrap()
            .field_order
            .as_deref(),
        Some("tt")
    );
    assert_eq!(
        p("h264_10bit.mkv").video().unwrap().pixel_format.as_deref(),
        Some("yuv420p10le")
    );
    assert_eq!(
        p("surround51.mkv").audio().next().unwrap().channels,
        Some(6)
    );
    assert_eq!(p("two_audio.mkv").audio().count(), 2);
    assert!(p("video_only.mp4").audio().next().is_none());
    assert!(p("audio_only.m4a").video().is_none());
    // Cover art is a picture, not the video.
    let cover = p("audio_cover.mp3");
    assert!(cover.video().is_none());
    assert!(cover.streams.iter().any(|s| s.attached_picture));
    let vfr = p("vfr.mp4").video().unwrap().clone();
    assert_ne!(
        vfr.avg_frame_rate, vfr.r_frame_rate,
        "VFR fixture has distinct average and base rates"
    );
    let odd = p("odd_641x361.mkv").video().unwrap().clone();
    assert_eq!((odd.width, odd.height), (Some(641), Some(361)));
}

#[test]
fn probe_json_from_the_command_line() {
    let out = std::process::Command::new(crate::helpers::ffarm_bin())
        .arg("probe")
        .arg(crate::helpers::valid("two_audio.mkv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["container"], "matroska,webm");
    assert_eq!(v["streams"][1]["language"], "eng");
    assert_eq!(v["streams"][2]["language"], "fra");
    assert_eq!(v["streams"][0]["width"], 640);
    assert_eq!(v["streams"][1]["channels"], 2);
}
