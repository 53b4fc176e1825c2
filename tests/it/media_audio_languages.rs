//! Audio tracks chosen by language (`[audio] languages`, a job's `audio.languages`,
//! `ffarm transcode --audio-languages`), judged by ffprobe and by the pitch of each kept
//! track (the fixture's English track is a 440 Hz tone, French 880 Hz, the untagged one
//! 660 Hz): several kept tracks go into MP4 in the order asked, and become an HLS master's
//! `AUDIO` group, each its own audio-only rendition beside video-only variants; a language
//! the input lacks fails by name, and a code that names no language is refused.

use std::path::Path;
use std::process::Command;

use ffarm::media::{self, Edits, OutputSpec};
use ffarm::preset::Preset;
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{ffarm_bin, ffprobe, preset, tempdir, valid};

fn with_languages(
    input: &Path,
    output: &Path,
    preset: &Preset,
    languages: &[&str],
) -> Result<media::TranscodeReport, media::MediaError> {
    let edits = Edits {
        audio_languages: Some(languages.iter().map(|l| l.to_string()).collect()),
        ..Edits::default()
    };
    media::transcode_many_then(
        input,
        &[OutputSpec {
            path: output,
            preset,
        }],
        &edits,
        &StopToken::new(),
        &mut |_: &Progress| {},
        &mut |_| {},
    )
}

/// The pitch of audio stream `stream` of `file` (Hz), from its zero crossings (mono, 48 kHz).
pub(crate) fn pitch(file: &Path, stream: usize) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-map", &format!("0:a:{stream}"), "-ac", "1", "-ar", "48000"])
        .args(["-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // Skip the encoder's priming and the fade of the first frames.
    let steady = &samples[samples.len().min(4800)..];
    let crossings = steady
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (steady.len() as f64 / 48_000.0)
}

pub(crate) fn near_hz(hz: f64, want: f64) -> bool {
    (hz - want).abs() < want * 0.03
}

/// `key="value"` (or `key=value`) from an attribute list.
fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[at..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or(""),
        None => rest.split(',').next().unwrap_or(""),
    })
}

#[test]
fn several_languages_become_an_hls_audio_group() {
    let dir = tempdir();
    let out = dir.path().join("ladder");
    let report = with_languages(
        &valid("three_audio.mkv"),
        &out,
        preset("hls-abr"),
        &["eng", "und"],
    )
    .unwrap();
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    let media: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:"))
        .collect();
    assert_eq!(media.len(), 2, "{master}");
    let (english, untagged) = (media[0], media[1]);
    assert_eq!(attr(english, "TYPE"), Some("AUDIO"));
    assert_eq!(attr(english, "GROUP-ID"), Some("audio"));
    assert_eq!(attr(english, "LANGUAGE"), Some("eng"));
    assert_eq!(attr(english, "NAME"), Some("English"));
    assert_eq!(attr(english, "DEFAULT"), Some("YES"));
    assert_eq!(attr(untagged, "LANGUAGE"), None, "und is not a language");
    assert_eq!(attr(untagged, "NAME"), Some("Commentary"), "its title");
    assert_eq!(attr(untagged, "DEFAULT"), Some("NO"));

    let variants: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert!(!variants.is_empty());
    for v in &variants {
        assert_eq!(attr(v, "AUDIO"), Some("audio"), "{v}");
        assert!(attr(v, "CODECS").unwrap().contains("mp4a.40.2"), "{v}");
    }
    // The variants carry no audio of their own; each rendition only its track.
    let variant = out.join(master.lines().last().unwrap());
    let first_segment = |playlist: &Path| {
        let text = std::fs::read_to_string(playlist).unwrap();
        let name = text
            .lines()
            .find(|l| !l.starts_with('#'))
            .unwrap()
            .to_string();
        playlist.parent().unwrap().join(name)
    };
    let kinds = |file: &Path| -> Vec<String> {
        ffprobe(file)["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codec_type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(&first_segment(&variant)), ["video"]);
    for (line, hz) in [(english, 440.0), (untagged, 660.0)] {
        let playlist = out.join(attr(line, "URI").unwrap());
        let segment = first_segment(&playlist);
        assert_eq!(kinds(&segment), ["audio"], "{}", segment.display());
        let got = pitch(&segment, 0);
        assert!(
            near_hz(got, hz),
            "{}: {got:.0} Hz, want {hz}",
            segment.display()
        );
    }
    // The engine's own check read the renditions too.
    assert_eq!(
        report.checks[0].files,
        2 * variants.len() + 4,
        "{:?}",
        report.checks
    );
    let probed = ffprobe(&out.join("master.m3u8"));
    let audio = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .count();
    assert!(audio >= 2, "ffprobe reads both renditions: {probed}");
}

#[test]
fn kept_tracks_go_into_mp4_in_the_order_asked() {
    let dir = tempdir();
    let out = dir.path().join("two.mp4");
    with_languages(
        &valid("three_audio.mkv"),
        &out,
        preset("h264-720p"),
        &["fra", "en"],
    )
    .unwrap();
    let probed = ffprobe(&out);
    let audio: Vec<&serde_json::Value> = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    assert_eq!(audio.len(), 2, "{probed}");
    assert_eq!(audio[0]["tags"]["language"], "fre");
    assert_eq!(audio[0]["disposition"]["default"], 1);
    assert_eq!(audio[1]["tags"]["language"], "eng");
    assert_eq!(audio[1]["disposition"]["default"], 0);
    assert!(near_hz(pitch(&out, 0), 880.0));
    assert!(near_hz(pitch(&out, 1), 440.0));
}

#[test]
fn one_kept_track_stays_in_the_variants() {
    let dir = tempdir();
    let out = dir.path().join("one");
    with_languages(
        &valid("three_audio.mkv"),
        &out,
        preset("hls-abr"),
        &["deu", "eng"],
    )
    .unwrap();
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(!master.contains("#EXT-X-MEDIA"), "{master}");
    let variant = out.join(master.lines().last().unwrap());
    let text = std::fs::read_to_string(&variant).unwrap();
    let segment = out.join(text.lines().find(|l| !l.starts_with('#')).unwrap());
    assert!(near_hz(pitch(&segment, 0), 440.0));
}

#[test]
fn a_language_the_input_lacks_fails_by_name() {
    let dir = tempdir();
    let e = with_languages(
        &valid("three_audio.mkv"),
        &dir.path().join("none.mp4"),
        preset("h264-720p"),
        &["deu", "spa"],
    )
    .unwrap_err();
    assert_eq!(e.code(), "audio-language-missing", "{e}");
    let text = e.to_string();
    assert!(
        text.contains("deu, spa") && text.contains("#1 eng") && text.contains("#2 fra"),
        "{text}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing left behind"
    );
}

#[test]
fn the_command_line_names_a_code_that_is_no_language() {
    let dir = tempdir();
    let out = Command::new(ffarm_bin())
        .args([
            "transcode",
            "--no-sandbox",
            "--audio-languages",
            "eng,klingonish",
        ])
        .arg(valid("three_audio.mkv"))
        .arg(dir.path().join("x.mp4"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--audio-languages[1]: 'klingonish' is not an ISO 639 language code"),
        "{stderr}"
    );

    let out = Command::new(ffarm_bin())
        .args(["transcode", "--no-sandbox", "--audio-languages", "fre"])
        .arg(valid("three_audio.mkv"))
        .arg(dir.path().join("x.m4a"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(near_hz(pitch(&dir.path().join("x.m4a"), 0), 880.0));
}

/// A preset file's `[audio] languages`: kept in its own order; a code that names no
/// language, one named twice or none at all refused, naming the file and the entry; an HLS
/// preset keeping several languages cannot be split into parts.
#[test]
fn preset_files_name_their_languages() {
    use ffarm::media::caps::Ffmpeg;
    use ffarm::preset::Presets;
    let load = |name: &str, container: &str, languages: &str| {
        let dir = tempdir();
        let text = format!(
            "description = \"x\"\ncontainer = \"{container}\"\n[video]\ncodec = \"h264\"\ncrf = 23\n\
             [audio]\ncodec = \"aac\"\nlanguages = {languages}\n"
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
        Presets::load(Some(dir.path()), &Ffmpeg).map(|p| p.get(name).unwrap().clone())
    };
    let kept = load("langs", "mp4", r#"["fre", "en", "und"]"#).unwrap();
    assert_eq!(kept.audio_languages, ["fra", "eng", "und"]);
    assert!(kept.can_split());
    let hls = load("langs", "hls", r#"["eng", "fra"]"#).unwrap();
    assert!(
        hls.why_unsplittable()
            .unwrap()
            .contains("several languages"),
        "{:?}",
        hls.why_unsplittable()
    );
    for (languages, problem) in [
        (r#"["eng", "english"]"#, "audio.languages[1]"),
        (r#"["eng", "en"]"#, "a second time"),
        ("[]", "name at least one language"),
    ] {
        let msg = load("broken", "mp4", languages).unwrap_err().to_string();
        assert!(msg.contains("broken.toml"), "names the file: {msg}");
        assert!(msg.contains(problem), "says '{problem}': {msg}");
    }
}
