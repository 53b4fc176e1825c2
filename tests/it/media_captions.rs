//! Captions (decision 0080): the input's text subtitles (SRT and ASS) and attached caption
//! files become WebVTT renditions in a `SUBTITLES` group of the HLS master, mov_text streams
//! in MP4 and WebVTT side files — each read back with FFmpeg's own tools and its cues
//! compared with the source's text and times — or are burnt into the picture (pixels in the
//! caption area differ from an encode without, the top of the picture does not); a caption
//! file that is not text fails `captions-invalid`, naming it.

use std::path::{Path, PathBuf};
use std::process::Command;

use ffarm::media::{self, CaptionEdits, CaptionFile, Edits, OutputSpec};
use ffarm::preset::{Preset, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, fixtures, num, preset, tempdir, valid};
use crate::media_watermark::picture;

/// A cue: start and end in seconds, and its text.
type Cue = (f64, f64, String);

fn run(
    input: &Path,
    out: &Path,
    preset: &Preset,
    captions: CaptionEdits,
) -> Result<media::TranscodeReport, media::MediaError> {
    let edits = Edits {
        captions,
        ..Edits::default()
    };
    media::transcode_many_then(
        input,
        &[OutputSpec { path: out, preset }],
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
}

/// A preset from TOML text, checked like any preset file.
fn preset_from(dir: &Path, name: &str, text: &str) -> Preset {
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    Presets::load(Some(dir), &media::caps::Ffmpeg)
        .unwrap()
        .get(name)
        .unwrap()
        .clone()
}

const VIDEO: &str = "[video]\ncodec = \"h264\"\ncrf = 30\nencoder_preset = \"ultrafast\"\n\
                     pixel_format = \"yuv420p\"\n[audio]\ncodec = \"aac\"\n";

fn caption_file(name: &str) -> PathBuf {
    fixtures().join("captions").join(name)
}

/// The cues of subtitle stream `selector` of `path`, as ffprobe reads its packets (empty
/// ones left out), with the text FFmpeg converts them to (WebVTT, the cue text alone).
fn cues(path: &Path, selector: &str) -> Vec<Cue> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", selector, "-show_entries"])
        .args(["packet=pts_time,duration_time,size", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let times: Vec<(f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',').map(|v| v.trim().parse::<f64>());
            let (start, duration, size) = (it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?);
            // MP4 fills the gaps between cues with empty samples (a 2-byte length of 0).
            (size > 2.0).then_some((start, duration))
        })
        .collect();
    let vtt = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:{selector}"), "-f", "webvtt", "-"])
        .output()
        .unwrap();
    let texts = vtt_texts(&String::from_utf8_lossy(&vtt.stdout));
    assert_eq!(
        times.len(),
        texts.len(),
        "{}: {times:?} {texts:?}",
        path.display()
    );
    times
        .into_iter()
        .zip(texts)
        .map(|((s, d), t)| (s, s + d, t))
        .collect()
}

/// The text of each cue of a WebVTT document.
fn vtt_texts(text: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("-->") {
            let cue: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.trim().is_empty())
                .collect();
            texts.push(cue.join("\n"));
        }
    }
    texts
}

fn assert_same_cues(what: &str, got: &[Cue], want: &[Cue]) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.2, w.2, "{what}: text");
        assert!(
            (g.0 - w.0).abs() < 0.002 && (g.1 - w.1).abs() < 0.002,
            "{what}: {g:?} vs {w:?}"
        );
    }
}

fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(',').next(),
    }
}

/// Reads an HLS master's subtitle renditions and checks every variant names their group:
/// (NAME, LANGUAGE, URI) each.
fn subtitle_renditions(master: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(master).unwrap();
    let variants: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert!(!variants.is_empty(), "{text}");
    for v in &variants {
        assert_eq!(attribute(v, "SUBTITLES"), Some("subs"), "{v}");
    }
    text.lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:") && l.contains("TYPE=SUBTITLES"))
        .map(|l| {
            assert_eq!(attribute(l, "GROUP-ID"), Some("subs"), "{l}");
            let get = |n: &str| attribute(l, n).unwrap_or_default().to_string();
            (get("NAME"), get("LANGUAGE"), get("URI"))
        })
        .collect()
}

/// A subtitle rendition's one WebVTT file (checked to read as WebVTT, tied to the MPEG-TS
/// clock at `ts_start` seconds) and its cues.
fn rendition_cues(dir: &Path, uri: &str, ts_start: f64) -> Vec<Cue> {
    let segments = media_playlist(&dir.join(uri));
    assert_eq!(segments.len(), 1, "{uri}: one WebVTT file spans it");
    let vtt = dir.join(&segments[0].1);
    assert_eq!(ffprobe(&vtt)["format"]["format_name"], "webvtt");
    let text = std::fs::read_to_string(&vtt).unwrap();
    let map = text
        .lines()
        .find_map(|l| l.strip_prefix("X-TIMESTAMP-MAP="))
        .unwrap_or_else(|| panic!("{uri}: no X-TIMESTAMP-MAP:\n{text}"));
    let mpegts: f64 = map
        .split(',')
        .find_map(|p| p.strip_prefix("MPEGTS:"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(map.contains("LOCAL:00:00:00.000"), "{map}");
    assert!(
        (mpegts / 90_000.0 - ts_start).abs() < 0.1,
        "{uri}: cue 0 at MPEG-TS {mpegts}, the segments start at {ts_start} s"
    );
    cues(&vtt, "s:0")
}

/// A media playlist's (duration, uri) entries, checking what a player needs: a VOD list
/// that ends, segments within the target duration.
fn media_playlist(path: &Path) -> Vec<(f64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
    let target: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a target duration");
    let mut segments = Vec::new();
    let mut pending = None;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("#EXTINF:") {
            pending = rest.split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if !l.starts_with('#') && !l.is_empty() {
            let d = pending.take().expect("EXTINF before each segment");
            assert!(d.round() <= target, "{l}: {d} s over the target {target}");
            segments.push((d, l.to_string()));
        }
    }
    segments
}

/// Where the first segment of a variant playlist starts on the MPEG-TS clock (seconds).
fn first_segment_start(dir: &Path, variant: &str) -> f64 {
    let segments = media_playlist(&dir.join(variant));
    let probe = ffprobe(&dir.join(&segments[0].1));
    ffprobe_streams(&probe, "audio")
        .iter()
        .chain(&ffprobe_streams(&probe, "video"))
        .map(|s| num(&s["start_time"]))
        .fold(f64::MAX, f64::min)
}

#[test]
fn hls_ladder_gets_webvtt_renditions_in_a_subtitles_group() {
    let dir = tempdir();
    let input = valid("captions.mkv");
    let out = dir.path().join("out");
    run(
        &input,
        &out,
        preset("hls-abr-captions"),
        CaptionEdits::default(),
    )
    .unwrap();
    let master = out.join("master.m3u8");
    let renditions = subtitle_renditions(&master);
    let names: Vec<(&str, &str)> = renditions
        .iter()
        .map(|(n, l, _)| (n.as_str(), l.as_str()))
        .collect();
    assert_eq!(names, [("eng", "eng"), ("Français", "fra")]);
    let text = std::fs::read_to_string(&master).unwrap();
    let variant = text
        .lines()
        .find(|l| l.ends_with(".m3u8") && !l.starts_with('#'))
        .unwrap();
    let ts_start = first_segment_start(&out, variant);
    for (i, (_, _, uri)) in renditions.iter().enumerate() {
        let got = rendition_cues(&out, uri, ts_start);
        assert_same_cues(uri, &got, &cues(&input, &format!("s:{i}")));
    }
}

#[test]
fn a_single_hls_rendition_gets_a_master_to_name_its_captions() {
    let dir = tempdir();
    let p = preset_from(
        dir.path(),
        "hls-one",
        &format!(
            "description = \"one rendition\"\ncontainer = \"hls\"\n{VIDEO}\
             [hls]\nsegment_seconds = 2\n[subtitles]\ncodec = \"text\"\n"
        ),
    );
    let out = dir.path().join("one.m3u8");
    // An attached caption file comes first, before the input's own streams.
    let attached = CaptionFile {
        path: caption_file("attached.srt"),
        language: "deu".into(),
        name: Some("Deutsch".into()),
    };
    let edits = CaptionEdits {
        files: vec![attached],
        ..CaptionEdits::default()
    };
    let report = run(&valid("captions.mkv"), &out, &p, edits).unwrap();
    let renditions = subtitle_renditions(&out);
    let names: Vec<&str> = renditions.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["Deutsch", "eng", "Français"]);
    let ts_start = first_segment_start(dir.path(), "one_main.m3u8");
    let got = rendition_cues(dir.path(), &renditions[0].2, ts_start);
    assert_same_cues(
        "attached",
        &got,
        &[
            (0.5, 2.0, "attached line".into()),
            (2.5, 3.5, "second".into()),
        ],
    );
    // Published: the WebVTT files as segments, before the playlists.
    let kinds: Vec<_> = report
        .outputs
        .iter()
        .filter(|f| f.path.extension().is_some_and(|e| e == "vtt"))
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, [media::OutputKind::Segment; 3]);
}

#[test]
fn mp4_carries_mov_text_with_languages_and_side_files_beside_it() {
    let dir = tempdir();
    let p = preset_from(
        dir.path(),
        "mp4-text",
        &format!(
            "description = \"mov_text\"\ncontainer = \"mp4\"\n{VIDEO}\
             [subtitles]\ncodec = \"text\"\nside_files = true\n"
        ),
    );
    let input = valid("captions.mkv");
    let out = dir.path().join("movie.mp4");
    let report = run(&input, &out, &p, CaptionEdits::default()).unwrap();
    let subs = ffprobe_streams(&ffprobe(&out), "subtitle");
    let found: Vec<(&str, &str)> = subs
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap(),
                s["tags"]["language"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [("mov_text", "eng"), ("mov_text", "fra")]);
    for (i, lang) in ["eng", "fra"].iter().enumerate() {
        let want = cues(&input, &format!("s:{i}"));
        assert_same_cues(lang, &cues(&out, &format!("s:{i}")), &want);
        let side = dir.path().join(format!("movie.{lang}.vtt"));
        assert_eq!(ffprobe(&side)["format"]["format_name"], "webvtt");
        assert_same_cues(&format!("{lang}.vtt"), &cues(&side, "s:0"), &want);
        assert!(
            report
                .outputs
                .iter()
                .any(|f| f.path == side && f.kind == media::OutputKind::Captions),
            "{:?}",
            report.outputs
        );
    }
}

/// How many pixels of rows `rows` differ clearly (by more than 60 levels in a channel)
/// between two RGB pictures: drawn text, not encoding noise.
fn changed(a: &(u32, u32, Vec<u8>), b: &(u32, u32, Vec<u8>), rows: std::ops::Range<u32>) -> usize {
    let w = a.0 as usize;
    let (from, to) = (rows.start as usize * w * 3, rows.end as usize * w * 3);
    a.2[from..to]
        .chunks(3)
        .zip(b.2[from..to].chunks(3))
        .filter(|(x, y)| x.iter().zip(*y).any(|(p, q)| p.abs_diff(*q) > 60))
        .count()
}

#[test]
fn burnt_in_captions_change_the_caption_area_and_nothing_above() {
    let dir = tempdir();
    let input = valid("captions.mkv"); // 320x240 at 25 fps; "hello" from 0.521 s to 1.521 s
    let plain = dir.path().join("plain.mp4");
    let burnt = dir.path().join("burnt.mp4");
    run(&input, &plain, preset("h264-480p"), CaptionEdits::default()).unwrap();
    let burn = CaptionEdits {
        burn_in: true,
        ..CaptionEdits::default()
    };
    run(&input, &burnt, preset("h264-480p"), burn).unwrap();
    // Frame 25 (1.0 s) shows "hello"; frame 5 (0.2 s) shows nothing yet.
    let (with, without) = (picture(&burnt, 25), picture(&plain, 25));
    let h = with.1;
    let bottom = changed(&with, &without, h * 3 / 4..h);
    let top = changed(&with, &without, 0..h / 2);
    assert!(bottom > 100, "the caption area differs: {bottom} pixels");
    assert!(
        top < 5,
        "the top of the picture matches: {top} pixels differ"
    );
    let before = changed(&picture(&burnt, 5), &picture(&plain, 5), h * 3 / 4..h);
    assert!(
        before < 5,
        "no caption before its time: {before} pixels differ"
    );
    eprintln!("burn-in: {bottom} pixels changed below, {top} above, {before} before the cue");
    // The picture's streams are as without: no subtitle stream added by burning.
    assert!(ffprobe_streams(&ffprobe(&burnt), "subtitle").is_empty());
}

#[test]
fn caption_files_that_are_not_text_fail_by_name() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    for (name, says) in [
        // Noise: refused as some other format, or as no format at all.
        ("random.srt", "unusable captions"),
        ("picture.srt", "png_pipe"),
        ("missing.srt", "no such file"),
    ] {
        let out = dir.path().join(format!("{name}.mp4"));
        let edits = CaptionEdits {
            files: vec![CaptionFile {
                path: caption_file(name),
                language: "eng".into(),
                name: None,
            }],
            ..CaptionEdits::default()
        };
        let err = run(&input, &out, preset("h264-480p"), edits).unwrap_err();
        assert_eq!(err.code(), "captions-invalid", "{name}: {err}");
        assert_eq!(err.class(), media::ErrorClass::InvalidInput);
        let text = err.to_string();
        assert!(text.contains(name) && text.contains(says), "{text}");
        assert!(!out.exists());
    }
    // Burn-in asked with nothing to burn is an error, not a silent no-op.
    let out = dir.path().join("none.mp4");
    let burn = CaptionEdits {
        burn_in: true,
        ..CaptionEdits::default()
    };
    let err = run(&input, &out, preset("h264-480p"), burn).unwrap_err();
    assert_eq!(err.code(), "unsupported");
    assert!(err.to_string().contains("burn_in"), "{err}");
}

#[test]
fn transcode_takes_caption_files_with_their_language() {
    let dir = tempdir();
    let out = dir.path().join("film.mp4");
    let ran = Command::new(crate::helpers::ffarm_bin())
        .arg("transcode")
        .arg(valid("h264_aac.mp4"))
        .arg(&out)
        .args([
            "--preset",
            "h264-480p",
            "--caption-side-files",
            "--captions",
        ])
        .arg(format!("{}:deu", caption_file("attached.srt").display()))
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let subs = ffprobe_streams(&ffprobe(&out), "subtitle");
    assert_eq!(subs.len(), 1);
    assert_eq!(
        (&subs[0]["codec_name"], &subs[0]["tags"]["language"]),
        (&"mov_text".into(), &"deu".into())
    );
    let want = [(0.5, 2.0, "attached line".to_string())];
    assert_same_cues("mov_text", &cues(&out, "s:0"), &want);
    assert_same_cues(
        "side file",
        &cues(&dir.path().join("film.deu.vtt"), "s:0"),
        &want,
    );
}

#[test]
fn a_clip_moves_the_captions_to_its_start_and_cuts_them_at_its_end() {
    let dir = tempdir();
    let p = preset_from(
        dir.path(),
        "mp4-text",
        &format!(
            "description = \"mov_text\"\ncontainer = \"mp4\"\n{VIDEO}[subtitles]\ncodec = \"text\"\n"
        ),
    );
    let input = valid("captions.mkv");
    let out = dir.path().join("clip.mp4");
    let edits = Edits {
        clip: Some(ffarm::job::Clip {
            start: 1.0,
            end: Some(3.0),
        }),
        ..Edits::default()
    };
    media::transcode_many_then(
        &input,
        &[OutputSpec {
            path: &out,
            preset: &p,
        }],
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
    .unwrap();
    // The source's cues, one second earlier, inside [0, 2].
    let want: Vec<Cue> = cues(&input, "s:0")
        .into_iter()
        .map(|(s, e, t)| ((s - 1.0).max(0.0), (e - 1.0).min(2.0), t))
        .collect();
    assert_same_cues("clip", &cues(&out, "s:0"), &want);
}

#[test]
fn mkv_webm_and_mov_carry_an_attached_file_in_their_own_text_format() {
    let dir = tempdir();
    let attached = CaptionFile {
        path: caption_file("attached.srt"),
        language: "deu".into(),
        name: None,
    };
    // QuickTime stores Macintosh language codes, which FFmpeg names by the bibliographic
    // form: German is `ger` there.
    for (name, ext, codec, language) in [
        ("mkv", "mkv", "webvtt", "deu"),
        ("webm", "webm", "webvtt", "deu"),
        ("mov", "mov", "mov_text", "ger"),
    ] {
        let out = dir.path().join(format!("film.{ext}"));
        let edits = CaptionEdits {
            files: vec![attached.clone()],
            ..CaptionEdits::default()
        };
        run(&valid("h264_aac.mp4"), &out, preset(name), edits).unwrap();
        let probe = ffprobe(&out);
        let subs = ffprobe_streams(&probe, "subtitle");
        assert_eq!(subs.len(), 1, "{name}");
        assert_eq!(subs[0]["codec_name"], codec, "{name}");
        assert_eq!(subs[0]["tags"]["language"], language, "{name}");
        // Matroska has no edit list: the audio's priming moves every stream later alike,
        // the first picture with them.
        let shift = num(&ffprobe_streams(&probe, "video")[0]["start_time"]);
        let want = [(0.5 + shift, 2.0 + shift, "attached line".to_string())];
        assert_same_cues(name, &cues(&out, "s:0"), &want);
    }
}
