//! HLS as players read it: media playlists (VOD, target duration, segments near the target)
//! whose segments add up to the source within a frame and hold every frame; segments checked
//! with ffprobe and our probe; a ladder's `master.m3u8` naming every rendition, highest
//! bandwidth first, with the sizes the segments really have, aligned segments, rungs a small
//! source cannot fill left out, and one audio rendition for an input without video.

use std::path::Path;

use ffarm::media::OutputKind;
use serde_json::Value;

use crate::helpers::{
    count_frames, ffprobe, ffprobe_streams, preset, rate, stream_extent, tempdir, transcode, valid,
};
use crate::media_presets::{assert_audio_duration, assert_probe_agrees, assert_video_duration};

/// A media playlist's (duration, uri) entries, checking the lines a player needs, and each
/// segment with ffprobe and our own probe.
pub(crate) fn media_playlist(path: &Path, segment_seconds: f64) -> Vec<(f64, String)> {
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
        let video = ffprobe_streams(&probe, "video");
        if let Some(v) = video.first() {
            assert_eq!(v["codec_name"], "h264", "{uri}");
        }
        assert_eq!(
            ffprobe_streams(&probe, "audio")[0]["codec_name"],
            "aac",
            "{uri}"
        );
        assert_probe_agrees(uri, &seg, &probe);
    }
    segments
}

/// One HLS rendition against its source: a well-formed media playlist whose segments add up
/// to the source's video to within a frame, every frame there, audio as close as audio
/// encoding allows (read through the playlist, across segments), and the picture size `size`.
pub(crate) fn check_rendition(
    playlist: &Path,
    input: &Path,
    segment_seconds: f64,
    size: (u64, u64),
) -> Vec<(f64, String)> {
    let what = playlist.display().to_string();
    let segments = media_playlist(playlist, segment_seconds);
    let fps = rate(&ffprobe_streams(&ffprobe(input), "video")[0]["avg_frame_rate"]);
    let total: f64 = segments.iter().map(|s| s.0).sum();
    let source = stream_extent(input, "v:0");
    assert!(
        (total - source).abs() <= 1.0 / fps + 0.002,
        "{what}: segments add up to {total} s, the source's video is {source} s"
    );
    assert_video_duration(&what, input, playlist, fps);
    assert_eq!(
        count_frames(playlist, "v:0"),
        count_frames(input, "v:0"),
        "{what}: every frame"
    );
    assert_audio_duration(&what, (input, "a:0"), (playlist, "a:0"));
    let first = ffprobe(&playlist.parent().unwrap().join(&segments[0].1));
    let v = &ffprobe_streams(&first, "video")[0];
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(size.0), Some(size.1))
    );
    segments
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
    let segments = check_rendition(&dir.path().join("video.m3u8"), &input, 6.0, (1280, 720));
    assert_eq!(segments.len(), 3, "13 s in 6 s segments: {segments:?}");
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
    for ((meta, uri), expect) in variants.iter().zip([(1920, 1080), (1280, 720), (854, 480)]) {
        assert_eq!(
            meta["resolution"],
            format!("{}x{}", expect.0, expect.1),
            "{uri}: the size the master claims is the segments' size"
        );
        let segments = check_rendition(&dir.path().join(uri), &input, 6.0, expect);
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
    let input = valid("h264_aac.mp4");
    let report = transcode(&input, &dir.path().join("s.m3u8"), preset("hls-abr")).unwrap();
    // Given a playlist path, the master is that file, not master.m3u8.
    let master = std::fs::read_to_string(dir.path().join("s.m3u8")).unwrap();
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 1, "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(
        master.contains("\ns_480p.m3u8\n"),
        "the rung meant for the smallest box is kept: {master}"
    );
    assert!(
        !dir.path().join("master.m3u8").exists(),
        "the master is the playlist asked for"
    );
    check_rendition(&dir.path().join("s_480p.m3u8"), &input, 6.0, (640, 360));
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
    assert_audio_duration(
        "audio-only ladder",
        (&input, "a:0"),
        (&dir.path().join("index_audio.m3u8"), "a:0"),
    );
    let names: Vec<String> = report
        .outputs
        .iter()
        .map(|o| o.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("master.m3u8"));
}
