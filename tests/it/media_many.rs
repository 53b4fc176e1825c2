//! Several outputs from one read and one decode (`media::transcode_many`), judged by
//! ffprobe and ffmpeg: every output whole and as its preset alone would make it — an HLS
//! ladder, an MP4, a poster picture identical to the one the poster preset makes by itself,
//! a stream copy beside an encode of the same stream, audio from a shared encoder.

use std::path::Path;
use std::process::Command;

use ffarm::media::{self, OutputKind, OutputSpec};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{ffprobe, ffprobe_streams, num, preset, tempdir, transcode, valid};

/// The MD5 of the decoded pictures of `path` (what a picture shows, not how it is coded).
fn picture_md5(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "md5", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn duration(path: &Path) -> f64 {
    num(&ffprobe(path)["format"]["duration"])
}

#[test]
fn one_decode_makes_every_presets_output() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    let out = |name: &str| dir.path().join(name);
    let names = [
        ("hls-abr", "clip.hls-abr.m3u8"),
        ("h264-720p", "clip.h264-720p.mp4"),
        ("poster-jpg", "clip.poster-jpg.jpg"),
        ("remux-mkv", "clip.remux-mkv.mkv"),
        ("audio-aac-128k", "clip.audio-aac-128k.m4a"),
    ];
    let paths: Vec<_> = names.iter().map(|(_, n)| out(n)).collect();
    let outputs: Vec<OutputSpec> = names
        .iter()
        .zip(&paths)
        .map(|((p, _), path)| OutputSpec {
            path,
            preset: preset(p),
        })
        .collect();
    let mut last = None;
    let report = media::transcode_many(&input, &outputs, &StopToken::new(), &mut |p: &Progress| {
        last = Some(p.clone())
    })
    .unwrap();
    let input_seconds = duration(&input);
    assert!(last.is_some_and(|p| p.percent == 100.0));
    assert!(
        (report.out_time_seconds - input_seconds).abs() < 0.1,
        "progress follows the timed outputs, not the poster: {} against {input_seconds}",
        report.out_time_seconds
    );

    // The MP4, the copy and the audio: whole, with their presets' streams.
    for name in [
        "clip.h264-720p.mp4",
        "clip.remux-mkv.mkv",
        "clip.audio-aac-128k.m4a",
    ] {
        let d = duration(&out(name));
        assert!(
            (d - input_seconds).abs() < 0.1,
            "{name}: {d} s of {input_seconds}"
        );
    }
    let mp4 = ffprobe(&out("clip.h264-720p.mp4"));
    assert_eq!(ffprobe_streams(&mp4, "video")[0]["codec_name"], "h264");
    assert_eq!(ffprobe_streams(&mp4, "audio")[0]["codec_name"], "aac");
    let source = ffprobe(&input);
    let mkv = ffprobe(&out("clip.remux-mkv.mkv"));
    // A copy beside an encode of the same stream: the same coded stream.
    assert_eq!(
        ffprobe_streams(&mkv, "video")[0]["codec_name"],
        ffprobe_streams(&source, "video")[0]["codec_name"]
    );
    assert_eq!(picture_md5(&out("clip.remux-mkv.mkv")), picture_md5(&input));
    let m4a = ffprobe(&out("clip.audio-aac-128k.m4a"));
    assert!(ffprobe_streams(&m4a, "video").is_empty());
    assert_eq!(ffprobe_streams(&m4a, "audio")[0]["codec_name"], "aac");

    // The ladder: its master playlist names variant playlists that exist, and they their
    // segments.
    let master = std::fs::read_to_string(out("clip.hls-abr.m3u8")).unwrap();
    assert!(master.contains("#EXT-X-STREAM-INF"), "{master}");
    for variant in master.lines().filter(|l| l.ends_with(".m3u8")) {
        let playlist = std::fs::read_to_string(out(variant)).unwrap();
        for segment in playlist.lines().filter(|l| !l.starts_with('#')) {
            assert!(out(segment).exists(), "{segment} of {variant}");
        }
    }
    assert!(
        report
            .outputs
            .iter()
            .any(|o| o.kind == OutputKind::MasterPlaylist)
    );

    // The poster is the picture the poster preset makes alone (which seeks to it).
    let alone = dir.path().join("alone.jpg");
    transcode(&input, &alone, preset("poster-jpg")).unwrap();
    assert_eq!(
        picture_md5(&out("clip.poster-jpg.jpg")),
        picture_md5(&alone)
    );
    let files: Vec<_> = report.outputs.iter().map(|o| o.path.clone()).collect();
    for p in &paths {
        assert!(files.contains(p), "{} in {files:?}", p.display());
    }
}

#[test]
fn outputs_sharing_an_audio_encoder_each_get_the_audio() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
    let outputs = [
        OutputSpec {
            path: &a,
            preset: preset("h264-720p"),
        },
        OutputSpec {
            path: &b,
            preset: preset("h264-480p"),
        },
    ];
    media::transcode_many(&input, &outputs, &StopToken::new(), &mut |_: &Progress| {}).unwrap();
    for f in [&a, &b] {
        let p = ffprobe(f);
        let audio = ffprobe_streams(&p, "audio");
        assert_eq!(audio.len(), 1, "{}", f.display());
        let d = num(&audio[0]["duration"]);
        assert!((d - duration(&input)).abs() < 0.1, "{}: {d}", f.display());
    }
    let h = |f: &Path| num(&ffprobe_streams(&ffprobe(f), "video")[0]["height"]);
    assert!(h(&b) < h(&a) || h(&a) <= 480.0);
}

#[test]
fn a_failing_output_leaves_none_behind() {
    // A directory where a one-file preset's output should be: the layout refuses it, and
    // the outputs before it are taken away again.
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    let good = dir.path().join("hls").join("x.m3u8");
    let bad = dir.path().join("taken");
    std::fs::create_dir_all(&bad).unwrap();
    let outputs = [
        OutputSpec {
            path: &good,
            preset: preset("hls-720p"),
        },
        OutputSpec {
            path: &bad,
            preset: preset("h264-720p"),
        },
    ];
    let e = media::transcode_many(&input, &outputs, &StopToken::new(), &mut |_: &Progress| {})
        .unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert!(
        !dir.path().join("hls").exists(),
        "the first output's folder is gone"
    );
}

/// A way to damage a run's outputs once written.
type Damage = fn(&[media::OutputFile]);

#[test]
fn outputs_are_read_back_and_a_damaged_one_takes_every_output_away() {
    let input = valid("h264_aac.mp4");
    let damages: [(&str, Damage, &str); 3] = [
        (
            "cut in half",
            |files| {
                let f = files.iter().find(|f| f.kind == OutputKind::Media).unwrap();
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&f.path)
                    .unwrap();
                file.set_len(f.bytes / 2).unwrap();
            },
            "",
        ),
        (
            "a segment gone",
            |files| {
                let f = files
                    .iter()
                    .find(|f| f.kind == OutputKind::Segment)
                    .unwrap();
                std::fs::remove_file(&f.path).unwrap();
            },
            "is missing",
        ),
        (
            "the audio track gone",
            |files| {
                let f = files.iter().find(|f| f.kind == OutputKind::Media).unwrap();
                let tmp = f.path.with_extension("tmp.mp4");
                let ok = Command::new("ffmpeg")
                    .args(["-v", "error", "-y", "-i"])
                    .arg(&f.path)
                    .args(["-map", "0:v", "-c", "copy"])
                    .arg(&tmp)
                    .status()
                    .unwrap();
                assert!(ok.success());
                std::fs::rename(&tmp, &f.path).unwrap();
            },
            "no audio stream",
        ),
    ];
    for (what, damage, words) in damages {
        let dir = tempdir();
        let (mp4, hls) = (
            dir.path().join("a.mp4"),
            dir.path().join("h").join("a.m3u8"),
        );
        let outputs = [
            OutputSpec {
                path: &mp4,
                preset: preset("h264-720p"),
            },
            OutputSpec {
                path: &hls,
                preset: preset("hls-720p"),
            },
        ];
        let e = media::transcode_many_then(
            &input,
            &outputs,
            &media::Edits::default(),
            &StopToken::new(),
            &mut |_: &Progress| {},
            &mut |files: &[media::OutputFile]| damage(files),
        )
        .unwrap_err();
        assert_eq!(e.code(), "output-invalid", "{what}: {e}");
        assert!(e.to_string().contains(words), "{what}: {e}");
        let left = crate::helpers::files_under(dir.path());
        assert!(left.is_empty(), "{what}: {left:?}");
    }
    // Undamaged, both pass and say what they hold.
    let dir = tempdir();
    let mp4 = dir.path().join("a.mp4");
    let report = crate::helpers::transcode(&input, &mp4, preset("h264-720p")).unwrap();
    let check = &report.checks[0];
    assert_eq!(check.path, mp4);
    assert!((check.duration_seconds.unwrap() - duration(&input)).abs() < 0.05);
}

/// A copy of `source` with 8 bytes inverted at 45, 55 and 65 % of its length: damage in the
/// coded pictures that H.264's decoder conceals.
pub fn concealable_copy(source: &Path, to: &Path) {
    let mut data = std::fs::read(source).unwrap();
    let n = data.len();
    for share in [0.45, 0.55, 0.65] {
        let at = (n as f64 * share) as usize;
        for b in &mut data[at..at + 8] {
            *b ^= 0xFF;
        }
    }
    std::fs::write(to, data).unwrap();
}

#[test]
fn damage_the_decoder_concealed_is_counted_not_hidden() {
    let dir = tempdir();
    let damaged = dir.path().join("damaged.mp4");
    concealable_copy(&valid("h264_aac.mp4"), &damaged);
    let report =
        crate::helpers::transcode(&damaged, &dir.path().join("a.mp4"), preset("h264-480p"))
            .unwrap();
    assert!(report.input_damage > 0, "{}", report.input_damage);
    let clean = crate::helpers::transcode(
        &valid("h264_aac.mp4"),
        &dir.path().join("b.mp4"),
        preset("h264-480p"),
    )
    .unwrap();
    assert_eq!(clean.input_damage, 0);
}
