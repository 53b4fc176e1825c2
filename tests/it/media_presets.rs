//! Every shipped preset, run on real media and checked with `ffprobe`: the right codecs,
//! sizes (aspect kept, never upscaled, even), durations within a frame, the streams present
//! that should be, and well-formed HLS.

use std::path::{Path, PathBuf};

use ffarm::media::OutputKind;
use ffarm::preset::{AudioOutput, Container, Preset, VideoOutput};
use serde_json::Value;

use crate::helpers::{
    count_frames, ffprobe, ffprobe_streams, num, preset, presets, rate, stream_duration,
    stream_extent, tempdir, transcode, valid,
};

/// The input each kind of preset is tried on.
fn input_for(p: &Preset) -> PathBuf {
    match (p.container, p.name.as_str()) {
        (Container::Hls, _) => valid("hls_source_1080p.mp4"),
        (_, "remux-mkv") => valid("subtitled.mkv"),
        (_, "remux-mov") => valid("h264_aac.mp4"),
        _ if p.container.audio_only() => valid("two_audio.mkv"),
        _ => valid("h264_aac_1080p.mp4"),
    }
}

fn output_for(dir: &Path, p: &Preset) -> PathBuf {
    match p.container {
        Container::Hls => dir.join("out"),
        c => dir.join(format!("out.{}", c.extension())),
    }
}

/// ffprobe's codec name for what a preset asks for.
fn video_codec_name(p: &Preset) -> Option<&'static str> {
    match &p.video {
        Some(VideoOutput::Encode(v)) => Some(v.codec.name()),
        _ => None,
    }
}

fn audio_codec_name(p: &Preset) -> Option<&'static str> {
    match &p.audio {
        Some(AudioOutput::Encode(a)) => Some(a.codec.name()),
        _ => None,
    }
}

/// Checks a picture's size against its source under `max`: even, within the box and the
/// source, aspect kept, and filling the box on at least one side.
fn check_size(what: &str, out: (f64, f64), src: (f64, f64), max: (Option<u32>, Option<u32>)) {
    let (w, h) = out;
    let bound_w = max.0.map_or(src.0, |m| src.0.min(f64::from(m)));
    let bound_h = max.1.map_or(src.1, |m| src.1.min(f64::from(m)));
    assert!(
        w % 2.0 == 0.0 && h % 2.0 == 0.0,
        "{what}: {w}x{h} is not even"
    );
    assert!(
        w <= bound_w && h <= bound_h,
        "{what}: {w}x{h} exceeds {bound_w}x{bound_h}"
    );
    let (aspect, src_aspect) = (w / h, src.0 / src.1);
    assert!(
        ((aspect - src_aspect) / src_aspect).abs() < 0.01,
        "{what}: aspect {aspect} vs {src_aspect}"
    );
    assert!(
        bound_w - w < 2.5 || bound_h - h < 2.5,
        "{what}: {w}x{h} needlessly smaller than {bound_w}x{bound_h}"
    );
}

fn check_single_file(p: &Preset, input: &Path, output: &Path) {
    let what = format!("preset {}", p.name);
    let src = ffprobe(input);
    let out = ffprobe(output);
    let src_video = ffprobe_streams(&src, "video");
    let out_video = ffprobe_streams(&out, "video");
    let src_audio = ffprobe_streams(&src, "audio");
    let out_audio = ffprobe_streams(&out, "audio");

    // Video present exactly when the preset makes it.
    match &p.video {
        None => assert!(out_video.is_empty(), "{what}: unexpected video"),
        Some(VideoOutput::Copy) => {
            assert_eq!(out_video.len(), 1, "{what}");
            assert_eq!(
                out_video[0]["codec_name"], src_video[0]["codec_name"],
                "{what}: copied codec"
            );
            assert_eq!(out_video[0]["width"], src_video[0]["width"], "{what}");
            assert_eq!(
                count_frames(output, "v:0"),
                count_frames(input, "v:0"),
                "{what}: copied frames"
            );
        }
        Some(VideoOutput::Encode(v)) => {
            assert_eq!(out_video.len(), 1, "{what}: one video stream");
            let (o, s) = (&out_video[0], &src_video[0]);
            assert_eq!(
                o["codec_name"].as_str(),
                video_codec_name(p),
                "{what}: video codec"
            );
            if p.container != Container::Jpg {
                let ours = ffarm::media::probe(output).unwrap();
                assert_eq!(
                    ours.video().unwrap().codec,
                    o["codec_name"].as_str().unwrap(),
                    "{what}: our probe"
                );
            }
            assert_eq!(
                o["pix_fmt"].as_str(),
                Some(v.pixel_format.as_str()),
                "{what}: pixel format"
            );
            check_size(
                &what,
                (num(&o["width"]), num(&o["height"])),
                (num(&s["width"]), num(&s["height"])),
                (v.max_width, v.max_height),
            );
            if p.container == Container::Jpg {
                assert_eq!(count_frames(output, "v:0"), 1, "{what}: one picture");
            } else {
                let fps = rate(&s["avg_frame_rate"]);
                let (d_out, d_in) = (stream_duration(o), stream_duration(s));
                if d_out.is_finite() && d_in.is_finite() {
                    assert!(
                        (d_out - d_in).abs() <= 1.0 / fps + 0.002,
                        "{what}: video {d_out} s vs {d_in} s"
                    );
                }
                assert_eq!(
                    count_frames(output, "v:0"),
                    count_frames(input, "v:0"),
                    "{what}: every frame"
                );
            }
            if v.profile.as_deref() == Some("high") {
                assert_eq!(o["profile"], "High", "{what}: profile");
            }
            if v.codec.name() == "hevc" && matches!(p.container, Container::Mp4 | Container::Mov) {
                assert_eq!(
                    o["codec_tag_string"], "hvc1",
                    "{what}: Apple-playable HEVC tag"
                );
            }
        }
    }

    // Audio: every source track where the container takes several, else one.
    match &p.audio {
        None => assert!(out_audio.is_empty(), "{what}: unexpected audio"),
        Some(a) => {
            let expected_tracks = src_audio.len().min(p.container.max_audio_tracks());
            assert_eq!(out_audio.len(), expected_tracks, "{what}: audio tracks");
            for (o, s) in out_audio.iter().zip(&src_audio) {
                match a {
                    AudioOutput::Copy => assert_eq!(o["codec_name"], s["codec_name"], "{what}"),
                    AudioOutput::Encode(enc) => {
                        assert_eq!(
                            o["codec_name"].as_str(),
                            audio_codec_name(p),
                            "{what}: audio codec"
                        );
                        let channels = o["channels"].as_u64().unwrap() as u32;
                        let want = enc
                            .channels
                            .unwrap_or(s["channels"].as_u64().unwrap() as u32);
                        assert_eq!(
                            channels,
                            want.min(enc.codec.max_channels()),
                            "{what}: channels"
                        );
                        if let Some(r) = enc.sample_rate {
                            assert_eq!(num(&o["sample_rate"]) as u32, r, "{what}: sample rate");
                        }
                    }
                }
                let (d_out, d_in) = (stream_duration(o), stream_duration(s));
                let d_out = if d_out.is_finite() {
                    d_out
                } else {
                    num(&out["format"]["duration"])
                };
                let d_in = if d_in.is_finite() {
                    d_in
                } else {
                    num(&src["format"]["duration"])
                };
                assert!(
                    (d_out - d_in).abs() < 0.1,
                    "{what}: audio {d_out} s vs {d_in} s"
                );
            }
        }
    }

    if matches!(
        p.container,
        Container::Mp4 | Container::Mov | Container::M4a
    ) {
        let bytes = std::fs::read(output).unwrap();
        let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
        let (moov, mdat) = (find(b"moov").unwrap(), find(b"mdat").unwrap());
        assert!(
            moov < mdat,
            "{what}: faststart puts the index before the media"
        );
    }
    if p.copy_subtitles {
        let subs = ffprobe_streams(&out, "subtitle");
        assert_eq!(
            subs.len(),
            ffprobe_streams(&src, "subtitle").len(),
            "{what}: subtitles carried"
        );
        assert_eq!(subs[0]["tags"]["language"], "eng");
    }
}

/// A media playlist's (duration, uri) entries, checking the lines a player needs.
fn media_playlist(path: &Path, segment_seconds: f64) -> Vec<(f64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "{}", path.display());
    assert!(
        text.contains("#EXT-X-PLAYLIST-TYPE:VOD"),
        "{}",
        path.display()
    );
    assert!(
        text.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{}",
        path.display()
    );
    let target: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a target duration");
    let mut segments = Vec::new();
    let mut pending = None;
    for l in &lines {
        if let Some(rest) = l.strip_prefix("#EXTINF:") {
            pending = rest.split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if !l.starts_with('#') && !l.is_empty() {
            segments.push((
                pending.take().expect("EXTINF before each segment"),
                l.to_string(),
            ));
        }
    }
    assert!(!segments.is_empty());
    let dir = path.parent().unwrap();
    for (i, (d, uri)) in segments.iter().enumerate() {
        assert!(
            d.round() <= target,
            "{uri}: {d} s exceeds the target duration {target}"
        );
        if i + 1 < segments.len() {
            assert!(
                (d - segment_seconds).abs() <= 0.5,
                "{uri}: {d} s, wanted about {segment_seconds} s"
            );
        }
        let seg = dir.join(uri);
        let probe = ffprobe(&seg);
        assert_eq!(probe["format"]["format_name"], "mpegts", "{uri}");
        if let Some(v) = ffprobe_streams(&probe, "video").first() {
            assert_eq!(v["codec_name"], "h264", "{uri}");
        }
        assert_eq!(
            ffprobe_streams(&probe, "audio")[0]["codec_name"],
            "aac",
            "{uri}"
        );
    }
    segments
}

#[test]
fn every_shipped_file_preset_makes_what_it_says() {
    let mut ran = 0;
    for p in presets().iter().filter(|p| p.container != Container::Hls) {
        let dir = tempdir();
        let input = input_for(p);
        let output = output_for(dir.path(), p);
        let report =
            transcode(&input, &output, p).unwrap_or_else(|e| panic!("preset {}: {e}", p.name));
        assert_eq!(report.outputs.len(), 1, "preset {}", p.name);
        assert_eq!(report.outputs[0].path, output);
        let kind = if p.container == Container::Jpg {
            OutputKind::Picture
        } else {
            OutputKind::Media
        };
        assert_eq!(report.outputs[0].kind, kind);
        assert_eq!(
            report.outputs[0].bytes,
            std::fs::metadata(&output).unwrap().len()
        );
        check_single_file(p, &input, &output);
        // Nothing else is left in the directory (no staging files).
        assert_eq!(
            crate::helpers::files_under(dir.path()).len(),
            1,
            "preset {}",
            p.name
        );
        ran += 1;
    }
    assert!(ran >= 20, "ran {ran} presets");
}

#[test]
fn hls_single_rendition_playlist_and_segments() {
    let dir = tempdir();
    let input = valid("hls_source_1080p.mp4");
    let p = preset("hls-720p");
    let report = transcode(&input, &dir.path().join("video.m3u8"), p).unwrap();
    let kinds: Vec<_> = report.outputs.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds.last(),
        Some(&OutputKind::Playlist),
        "playlist published last"
    );
    assert!(
        kinds[..kinds.len() - 1]
            .iter()
            .all(|k| *k == OutputKind::Segment)
    );
    let segments = media_playlist(&dir.path().join("video.m3u8"), 6.0);
    assert_eq!(segments.len(), 3, "13 s in 6 s segments: {segments:?}");
    let total: f64 = segments.iter().map(|s| s.0).sum();
    assert!((total - 13.0).abs() < 0.1, "segments add up to {total} s");
    let first = ffprobe(&dir.path().join(&segments[0].1));
    let v = &ffprobe_streams(&first, "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720))
    );
}

fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    }
    rest.split(',').next()
}

#[test]
fn hls_abr_ladder_with_master_playlist() {
    let dir = tempdir();
    let input = valid("hls_source_1080p.mp4");
    let p = preset("hls-abr");
    let report = transcode(&input, dir.path(), p).unwrap();
    // Publication order: segments, then variant playlists, then the master.
    let kinds: Vec<_> = report.outputs.iter().map(|o| o.kind).collect();
    assert_eq!(kinds.last(), Some(&OutputKind::MasterPlaylist));
    let first_playlist = kinds
        .iter()
        .position(|k| *k != OutputKind::Segment)
        .unwrap();
    assert!(
        kinds[first_playlist..kinds.len() - 1]
            .iter()
            .all(|k| *k == OutputKind::Playlist)
    );

    assert_eq!(
        report.outputs.last().unwrap().path,
        dir.path().join("master.m3u8")
    );
    let master = std::fs::read_to_string(dir.path().join("master.m3u8")).unwrap();
    assert!(master.starts_with("#EXTM3U\n"));
    let lines: Vec<&str> = master.lines().collect();
    let mut variants: Vec<(Value, String)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("#EXT-X-STREAM-INF:") {
            let uri = lines[i + 1].to_string();
            let bandwidth: u64 = attribute(l, "BANDWIDTH").unwrap().parse().unwrap();
            let resolution = attribute(l, "RESOLUTION").unwrap().to_string();
            let codecs = attribute(l, "CODECS").unwrap().to_string();
            assert!(
                codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
                "{codecs}"
            );
            variants.push((
                serde_json::json!({"bandwidth": bandwidth, "resolution": resolution}),
                uri,
            ));
        }
    }
    let uris: Vec<&str> = variants.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(
        uris,
        ["index_1080p.m3u8", "index_720p.m3u8", "index_480p.m3u8"],
        "every rendition, highest first"
    );
    let mut boundaries = None;
    for ((meta, uri), expect) in variants.iter().zip(["1920x1080", "1280x720", "854x480"]) {
        assert_eq!(meta["resolution"], expect, "{uri}");
        let segments = media_playlist(&dir.path().join(uri), 6.0);
        let first = ffprobe(&dir.path().join(&segments[0].1));
        let v = &ffprobe_streams(&first, "video")[0];
        assert_eq!(
            format!("{}x{}", v["width"], v["height"]),
            expect,
            "{uri}: the size the master claims"
        );
        // The measured peak bandwidth is at least the average of any segment.
        let bytes: u64 = segments
            .iter()
            .map(|(_, s)| std::fs::metadata(dir.path().join(s)).unwrap().len())
            .sum();
        let seconds: f64 = segments.iter().map(|s| s.0).sum();
        assert!(
            meta["bandwidth"].as_f64().unwrap() >= bytes as f64 * 8.0 / seconds * 0.99,
            "{uri}"
        );
        // Renditions switch cleanly only if their segments line up.
        let durations: Vec<f64> = segments.iter().map(|s| s.0).collect();
        match &boundaries {
            None => boundaries = Some(durations),
            Some(b) => {
                for (x, y) in b.iter().zip(&durations) {
                    assert!(
                        (x - y).abs() < 0.05,
                        "{uri}: segments not aligned: {b:?} vs {durations:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn hls_ladder_skips_renditions_a_small_source_cannot_fill() {
    let dir = tempdir();
    let report = transcode(
        &valid("h264_aac.mp4"),
        &dir.path().join("s.m3u8"),
        preset("hls-abr"),
    )
    .unwrap();
    let master = std::fs::read_to_string(dir.path().join("master.m3u8")).unwrap();
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 1, "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(
        master.contains("\ns_480p.m3u8\n"),
        "the rung meant for the smallest box is kept: {master}"
    );
    assert!(
        !dir.path().join("s.m3u8").exists(),
        "the master is master.m3u8"
    );
    assert_eq!(
        report.outputs.last().unwrap().kind,
        OutputKind::MasterPlaylist
    );
}

#[test]
fn hls_ladder_for_audio_only_input_is_one_audio_rendition() {
    let dir = tempdir();
    let input = valid("audio_only.m4a");
    let report = transcode(&input, dir.path(), preset("hls-abr")).unwrap();
    let master = std::fs::read_to_string(dir.path().join("master.m3u8")).unwrap();
    let variants: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(
        variants.len(),
        1,
        "one rendition, not three alike: {master}"
    );
    assert!(!variants[0].contains("RESOLUTION"), "{master}");
    assert!(!variants[0].contains("FRAME-RATE"), "{master}");
    assert_eq!(
        attribute(variants[0], "CODECS"),
        Some("mp4a.40.2"),
        "{master}"
    );
    assert!(master.contains("\nindex_audio.m3u8\n"), "{master}");
    let segments = media_playlist(&dir.path().join("index_audio.m3u8"), 6.0);
    for (_, uri) in &segments {
        let probe = ffprobe(&dir.path().join(uri));
        assert!(ffprobe_streams(&probe, "video").is_empty(), "{uri}");
    }
    let (ours, theirs) = (
        stream_extent(&dir.path().join("index_audio.m3u8"), "a:0"),
        stream_extent(&input, "a:0"),
    );
    assert!((ours - theirs).abs() < 0.05, "audio {ours} s vs {theirs} s");
    assert_eq!(
        report.outputs.last().unwrap().kind,
        OutputKind::MasterPlaylist
    );
}

#[test]
fn default_preset_for_every_dst_format() {
    for format in ffarm::preset::FORMAT_DEFAULTS {
        let p = presets().for_format(format).unwrap();
        assert_eq!(p.container.extension(), format);
        let dir = tempdir();
        let out = dir.path().join(format!("x.{format}"));
        transcode(&valid("h264_aac.mp4"), &out, p).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(out.exists(), "{format}: {}", out.display());
        let probe = ffprobe(&out);
        assert!(
            num(&probe["format"]["duration"]) > 1.9,
            "{format}: full duration"
        );
    }
    assert!(presets().for_format("gif").is_err());
}
