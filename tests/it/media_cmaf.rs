//! CMAF and encrypted HLS as players read them. `cmaf-abr`: the DASH MPD parsed as XML (a
//! video AdaptationSet and the audio's own), every init and media segment it names there,
//! each Representation's init + segments joined and read by ffprobe with one track of the
//! expected codec, size and length; FFmpeg's DASH reader reads the MPD; the HLS master at
//! version 7 with the audio as its group, `#EXT-X-MAP` in every media playlist, read by
//! ffprobe. `hls-720p-aes`: every media
//! playlist names the key with `METHOD=AES-128`, every segment decrypts with the key
//! (`openssl enc -d`) into MPEG-TS ffprobe reads, and no segment reads without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use ffarm::job::SegmentKey;
use ffarm::media::{self, Edits, OutputKind, OutputSpec};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, preset, stream_extent, tempdir, valid};

/// A Representation as the MPD gives it: its AdaptationSet's content type, its attributes
/// and its files (init first).
#[derive(Debug, Default)]
struct Rep {
    kind: String,
    id: String,
    codecs: String,
    width: u32,
    height: u32,
    bandwidth: u64,
    files: Vec<String>,
    timeline_ms: u64,
}

/// Parses the MPD with an XML parser (not the code that wrote it).
fn read_mpd(path: &Path) -> (String, Vec<Rep>) {
    use quick_xml::events::Event;
    let text = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let (mut reps, mut duration): (Vec<Rep>, String) = (Vec::new(), String::new());
    let mut kind = String::new();
    loop {
        let event = reader.read_event().expect("the MPD is well-formed XML");
        let e = match &event {
            Event::Start(e) | Event::Empty(e) => e.clone(),
            Event::Eof => break,
            _ => continue,
        };
        let attr = |name: &str| -> String {
            e.attributes()
                .map(|a| a.unwrap())
                .find(|a| a.key.as_ref() == name.as_bytes())
                .map(|a| String::from_utf8(a.value.to_vec()).unwrap())
                .unwrap_or_default()
        };
        match e.name().as_ref() {
            b"MPD" => {
                assert_eq!(attr("xmlns"), "urn:mpeg:dash:schema:mpd:2011");
                assert_eq!(attr("type"), "static");
                duration = attr("mediaPresentationDuration");
            }
            b"AdaptationSet" => kind = attr("contentType"),
            b"Representation" => reps.push(Rep {
                kind: kind.clone(),
                id: attr("id"),
                codecs: attr("codecs"),
                width: attr("width").parse().unwrap_or(0),
                height: attr("height").parse().unwrap_or(0),
                bandwidth: attr("bandwidth").parse().unwrap(),
                ..Rep::default()
            }),
            b"Initialization" => reps.last_mut().unwrap().files.push(attr("sourceURL")),
            b"SegmentURL" => reps.last_mut().unwrap().files.push(attr("media")),
            b"S" => {
                let d: u64 = attr("d").parse().unwrap();
                let r: u64 = attr("r").parse().unwrap_or(0);
                reps.last_mut().unwrap().timeline_ms += d * (r + 1);
            }
            _ => {}
        }
    }
    (duration, reps)
}

/// Joins files into one (init + media segments: one fragmented MP4).
fn join(dir: &Path, files: &[String], to: &Path) {
    let mut all = Vec::new();
    for f in files {
        all.extend(std::fs::read(dir.join(f)).unwrap());
    }
    std::fs::write(to, all).unwrap();
}

#[test]
fn cmaf_abr_writes_a_dash_mpd_and_an_hls_master_over_the_same_segments() {
    let dir = tempdir();
    let input = valid("hls_source_1080p.mp4");
    let report = media::transcode(
        &input,
        dir.path(),
        preset("cmaf-abr"),
        &StopToken::new(),
        &mut |_: &Progress| {},
    )
    .unwrap();
    // Segments first, then playlists, the master, the MPD last.
    let kinds: Vec<OutputKind> = report.outputs.iter().map(|o| o.kind).collect();
    assert_eq!(kinds.last(), Some(&OutputKind::Manifest));
    assert_eq!(kinds[kinds.len() - 2], OutputKind::MasterPlaylist);
    assert!(report.checks[0].files > 3, "{:?}", report.checks[0]);

    let (duration, reps) = read_mpd(&dir.path().join("manifest.mpd"));
    let seconds: f64 = duration
        .strip_prefix("PT")
        .and_then(|d| d.strip_suffix('S'))
        .and_then(|d| d.parse().ok())
        .expect("PTn.nnnS");
    assert!(
        (seconds - 13.0).abs() < 0.1,
        "the MPD's length is the source's: {duration}"
    );
    let sizes: Vec<(&str, u32, u32)> = reps
        .iter()
        .map(|r| (r.kind.as_str(), r.width, r.height))
        .collect();
    assert_eq!(
        sizes,
        [
            ("video", 854, 480),
            ("video", 1280, 720),
            ("video", 1920, 1080),
            ("audio", 0, 0)
        ],
        "video renditions, then the audio as its own"
    );
    for rep in &reps {
        assert!(rep.files[0].ends_with("_init.mp4"), "{rep:?}");
        assert!(rep.files.len() >= 4, "init and 3 segments of 6 s: {rep:?}");
        for f in &rep.files {
            assert!(
                dir.path().join(f).is_file(),
                "{f} named by the MPD is there"
            );
        }
        assert!((rep.timeline_ms as f64 - 13_000.0).abs() <= 50.0, "{rep:?}");
        let joined = dir.path().join(format!("{}.joined.mp4", rep.id));
        join(dir.path(), &rep.files, &joined);
        let probe = ffprobe(&joined);
        let (video, audio) = (
            ffprobe_streams(&probe, "video"),
            ffprobe_streams(&probe, "audio"),
        );
        if rep.kind == "audio" {
            assert_eq!(rep.codecs, "mp4a.40.2");
            assert!(video.is_empty(), "one track per file");
            assert_eq!(audio[0]["codec_name"], "aac");
            let length = stream_extent(&joined, "a:0");
            assert!((length - 13.0).abs() < 0.1, "{}: {length} s", rep.id);
        } else {
            assert!(rep.codecs.starts_with("avc1.") && !rep.codecs.contains(','));
            assert!(audio.is_empty(), "one track per file");
            assert_eq!(video[0]["codec_name"], "h264");
            assert_eq!(
                (video[0]["width"].as_u64(), video[0]["height"].as_u64()),
                (Some(u64::from(rep.width)), Some(u64::from(rep.height)))
            );
            let length = stream_extent(&joined, "v:0");
            assert!((length - 13.0).abs() < 0.1, "{}: {length} s", rep.id);
        }
        // Bandwidth: the peak of its segments, at least the average of the whole.
        let bytes: u64 = rep.files[1..]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
            .sum();
        assert!(rep.bandwidth as f64 >= bytes as f64 * 8.0 / 13.0, "{rep:?}");
    }
    // FFmpeg's own DASH reader plays it (given an absolute path: it resolves a relative
    // one against itself twice).
    let mpd = std::fs::canonicalize(dir.path().join("manifest.mpd")).unwrap();
    let probe = ffprobe(&mpd);
    assert_eq!(ffprobe_streams(&probe, "video").len(), 3, "{probe}");
    assert_eq!(ffprobe_streams(&probe, "audio").len(), 1, "{probe}");

    let master = std::fs::read_to_string(dir.path().join("master.m3u8")).unwrap();
    assert!(
        master.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"),
        "{master}"
    );
    assert!(
        master.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\"")
            && master.contains("URI=\"index_audio.m3u8\""),
        "{master}"
    );
    let variants: Vec<&str> = master.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants.len(), 3);
    for v in variants.into_iter().chain(["index_audio.m3u8"]) {
        let text = std::fs::read_to_string(dir.path().join(v)).unwrap();
        let map = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .expect("EXT-X-MAP in an fMP4 playlist");
        assert!(dir.path().join(map.trim_end_matches('"')).is_file());
        assert!(text.lines().any(|l| l.ends_with(".m4s")), "{text}");
    }
    let probe = ffprobe(&dir.path().join("master.m3u8"));
    assert_eq!(
        ffprobe_streams(&probe, "video").len(),
        3,
        "ffprobe reads the master"
    );
}

#[test]
fn cmaf_refuses_encryption_and_splitting() {
    let p = preset("cmaf-abr");
    assert_eq!(
        p.why_unsplittable(),
        Some("writes CMAF (such jobs run whole)")
    );
    let dir = tempdir();
    std::fs::write(
        dir.path().join("cmaf-aes.toml"),
        "description = \"x\"\ncontainer = \"cmaf\"\n[video]\ncodec = \"h264\"\ncrf = 23\n[audio]\ncodec = \"aac\"\n\
         [hls]\nencryption = \"aes-128\"\n",
    )
    .unwrap();
    let err = ffarm::preset::Presets::load(Some(dir.path()), &media::caps::Ffmpeg).unwrap_err();
    assert!(err.to_string().contains("hls.encryption"), "{err}");
    let av = "[video]\ncodec = \"h264\"\ncrf = 23\n[audio]\ncodec = \"aac\"\n";
    for (head, hls, field) in [
        (
            "hls",
            "[hls]\nencryption = \"sample-aes\"\n",
            "hls.encryption",
        ),
        (
            "cmaf",
            "[[hls.renditions]]\nname = \"audio\"\ncrf = 23\n",
            "hls.renditions[0].name",
        ),
    ] {
        let text = format!("description = \"x\"\ncontainer = \"{head}\"\n{av}{hls}");
        std::fs::write(dir.path().join("cmaf-aes.toml"), text).unwrap();
        let err = ffarm::preset::Presets::load(Some(dir.path()), &media::caps::Ffmpeg).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}

/// A segment's IV when the playlist gives none: its media sequence number.
fn iv(sequence: usize) -> String {
    format!("{sequence:032x}")
}

/// Transcodes with `hls-720p-aes` and `key`, returning the media playlist.
pub(crate) fn encrypted_hls(dir: &Path, key: &SegmentKey) -> PathBuf {
    let output = dir.join("video.m3u8");
    let edits = Edits {
        segment_key: Some(key.clone()),
        ..Edits::default()
    };
    media::transcode_many_then(
        &valid("hls_source_1080p.mp4"),
        &[OutputSpec {
            path: &output,
            preset: preset("hls-720p-aes"),
        }],
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
    .unwrap();
    output
}

/// Every segment of an AES-128 media playlist decrypts with `key` into MPEG-TS that
/// ffprobe reads, and none reads as it is; returns how many there were.
pub(crate) fn assert_decrypts(playlist: &Path, key: &[u8; 16], uri: &str) -> usize {
    let text = std::fs::read_to_string(playlist).unwrap();
    assert!(
        text.contains(&format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{uri}\"")),
        "{text}"
    );
    let dir = playlist.parent().unwrap();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let segments: Vec<&str> = text.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= 3, "{text}");
    for (i, s) in segments.iter().enumerate() {
        let plain = dir.join(format!("{s}.plain.ts"));
        let status = Command::new("openssl")
            .args([
                "enc",
                "-aes-128-cbc",
                "-d",
                "-K",
                &hex,
                "-iv",
                &iv(i),
                "-in",
            ])
            .arg(dir.join(s))
            .arg("-out")
            .arg(&plain)
            .status()
            .unwrap();
        assert!(status.success(), "{s} decrypts with the key");
        let probe = ffprobe(&plain);
        assert_eq!(ffprobe_streams(&probe, "video")[0]["codec_name"], "h264");
        let raw = Command::new("ffprobe")
            .args(["-v", "error", "-show_streams", "-f", "mpegts"])
            .arg(dir.join(s))
            .output()
            .unwrap();
        let read = String::from_utf8_lossy(&raw.stdout);
        assert!(
            !read.contains("codec_name=h264"),
            "{s} read without the key: {read}"
        );
        std::fs::remove_file(plain).unwrap();
    }
    segments.len()
}

#[test]
fn aes_128_hls_decrypts_with_the_key_and_not_without() {
    let dir = tempdir();
    let key = SegmentKey {
        key: SegmentKey::generate().unwrap(),
        uri: "https://farm.example.com/v1/jobs/j1/key".into(),
    };
    let playlist = encrypted_hls(dir.path(), &key);
    assert_decrypts(&playlist, &key.key, &key.uri);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".key") || n.ends_with(".keyinfo") || n.starts_with('.'))
        .collect();
    assert!(
        left.is_empty(),
        "no key file is left beside the output: {left:?}"
    );
    // With the wrong key nothing decrypts into a stream.
    let wrong = [0x5a; 16];
    let text = std::fs::read_to_string(&playlist).unwrap();
    let first = text.lines().find(|l| l.ends_with(".ts")).unwrap();
    let hex: String = wrong.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("openssl")
        .args([
            "enc",
            "-aes-128-cbc",
            "-d",
            "-K",
            &hex,
            "-iv",
            &iv(0),
            "-in",
        ])
        .arg(dir.path().join(first))
        .arg("-out")
        .arg(dir.path().join("wrong.ts"))
        .status()
        .unwrap();
    assert!(!out.success(), "the wrong key fails the padding check");
}

#[test]
fn an_encrypting_preset_needs_a_key() {
    let dir = tempdir();
    let err = media::transcode(
        &valid("h264_aac.mp4"),
        &dir.path().join("v.m3u8"),
        preset("hls-720p-aes"),
        &StopToken::new(),
        &mut |_: &Progress| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("no key was given"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn cmaf_named_output_with_quality_figures() {
    // A small source keeps one rung; a named playlist gets its MPD beside it by name.
    let dir = tempdir();
    let output = dir.path().join("show.m3u8");
    let report = media::transcode_many_then(
        &valid("h264_aac.mp4"),
        &[OutputSpec {
            path: &output,
            preset: preset("cmaf-abr"),
        }],
        &Edits {
            quality: true,
            ..Edits::default()
        },
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
    .unwrap();
    let (_, reps) = read_mpd(&dir.path().join("show.mpd"));
    assert!(!reps.is_empty());
    let quality = &report.checks[0].quality;
    let video = reps.iter().filter(|r| r.kind == "video").count();
    assert_eq!((video, reps.len()), (1, 2), "{reps:?}");
    assert_eq!(quality.len(), video, "{quality:?}");
    assert!(quality[0].ssim > 0.9, "{quality:?}");
    let hidden: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}
