//! Preset files are validated at load: every mistake names the file, the field and the
//! problem, and the shipped set covers what users rely on.

use ffarm::job::Chunking;
use ffarm::media::caps::Ffmpeg;
use ffarm::preset::{PresetError, Presets};

use crate::helpers::tempdir;

const GOOD: &str = r#"
description = "ok"
container = "mp4"
[video]
codec = "h264"
crf = 23
[audio]
codec = "aac"
bitrate = "128k"
"#;

fn load_one(name: &str, text: &str) -> Result<Presets, PresetError> {
    let dir = tempdir();
    std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    let r = Presets::load(Some(dir.path()), &Ffmpeg);
    drop(dir);
    r
}

/// Loads a broken preset and checks the message names the file, the field and the problem.
fn rejects(text: &str, field: &str, problem: &str) {
    let err = load_one("broken", text).expect_err("a broken preset must not load");
    let msg = err.to_string();
    assert!(msg.contains("broken.toml"), "names the file: {msg}");
    assert!(msg.contains(field), "names the field '{field}': {msg}");
    assert!(msg.contains(problem), "says '{problem}': {msg}");
}

#[test]
fn a_good_extra_preset_loads_beside_the_shipped_ones() {
    let presets = load_one("my-web", GOOD).unwrap();
    assert_eq!(presets.get("my-web").unwrap().description, "ok");
    assert!(presets.get("h264-720p").is_ok());
}

#[test]
fn mistakes_are_named_precisely() {
    rejects(
        &GOOD.replace("h264", "h265"),
        "video.codec",
        "unknown video codec 'h265'",
    );
    rejects(
        &GOOD.replace("\"mp4\"", "\"webm\""),
        "video.codec",
        "container webm cannot hold h264",
    );
    rejects(
        &GOOD
            .replace("\"aac\"", "\"opus\"")
            .replace("\"mp4\"", "\"flv\""),
        "audio.codec",
        "cannot hold opus",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 99"),
        "video.crf",
        "between 0 and 51 (got 99)",
    );
    rejects(
        &GOOD.replace("crf = 23", "crff = 23"),
        "unknown field `crff`",
        "expected one of",
    );
    rejects(
        &GOOD.replace("\"128k\"", "\"fast\""),
        "audio.bitrate",
        "not a bit rate",
    );
    rejects(
        &GOOD.replace("\"mp4\"", "\"mp5\""),
        "container",
        "unknown container 'mp5'",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 23\npixel_format = \"bogus\""),
        "video.pixel_format",
        "unknown pixel format 'bogus'",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 23\npixel_format = \"rgb48le\""),
        "video.pixel_format",
        "libx264 does not take rgb48le",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 23\nencoder_preset = \"ludicrous\""),
        "video.encoder_preset",
        "unknown preset 'ludicrous'",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 23\nmax_width = -5"),
        "video.max_width",
        "between 16 and 16384",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 23\n[video.options]\nturbo = 1"),
        "video.options.turbo",
        "libx264 has no option 'turbo'",
    );
    rejects(
        &GOOD
            .replace(
                "bitrate = \"128k\"",
                "bitrate = \"128k\"\nsample_rate = 44100",
            )
            .replace("\"aac\"", "\"opus\"")
            .replace("\"mp4\"", "\"mkv\""),
        "audio.sample_rate",
        "libopus does not take 44100 Hz",
    );
    rejects(
        &GOOD.replace("crf = 23", "crf = 23\nbitrate = \"2M\""),
        "video",
        "set crf or bitrate, not both",
    );
    rejects(
        "description = \"x\"\ncontainer = \"mp3\"\n[video]\ncodec = \"h264\"\ncrf = 20\n",
        "video",
        "container mp3 holds no video",
    );
    rejects(
        "description = \"x\"\ncontainer = \"mp4\"\n",
        "(file)",
        "needs a [video] or an [audio] section",
    );
    rejects(
        "description = \"x\"\ncontainer = \"mp4\"\n[video]\ncodec = \"mpeg4\"\ncrf = 20\n",
        "video.crf",
        "mpeg4 has no crf",
    );
    rejects("this is = not toml [", "", "TOML parse error");
}

#[test]
fn a_default_preset_must_write_its_format() {
    let err = load_one("mp4", &GOOD.replace("\"mp4\"", "\"mkv\"")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("mp4.toml") && msg.contains("container") && msg.contains("must write mp4"),
        "{msg}"
    );
}

#[test]
fn unknown_names_list_what_exists() {
    let presets = Presets::builtin(&Ffmpeg).unwrap();
    let err = presets.get("h264-72p").unwrap_err();
    assert_eq!(err.code(), "unknown-preset");
    assert!(err.to_string().contains("h264-720p"), "{err}");
    let err = presets.for_format("gif").unwrap_err();
    assert_eq!(err.code(), "unknown-format");
}

#[test]
fn the_shipped_set_is_complete() {
    let presets = Presets::builtin(&Ffmpeg).unwrap();
    for name in [
        "h264-1080p",
        "h264-720p",
        "h264-480p",
        "hevc-1080p",
        "hevc-1080p-hdr",
        "vp9-720p",
        "av1-720p",
        "hls-720p",
        "hls-abr",
        "hls-abr-captions",
        "audio-aac-128k",
        "audio-mp3-192k",
        "podcast-mp3",
        "remux-mkv",
        "remux-mov",
        "poster-jpg",
        "mp4",
        "mov",
        "mkv",
        "webm",
        "flv",
        "avi",
        "m3u8",
        "mp3",
        "m4a",
    ] {
        let p = presets.get(name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.description.is_empty(), "{name}");
    }
    let out = std::process::Command::new(crate::helpers::ffarm_bin())
        .arg("presets")
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    for p in presets.iter() {
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!("{} ", p.name)))
            .unwrap_or_else(|| panic!("{} listed", p.name));
        assert!(line.contains(&p.description), "{line}");
    }
}

/// `GOOD` with `chunking = …` as its first line (a top-level key goes before the tables).
fn with_chunking(text: &str, chunking: &str) -> String {
    format!("chunking = {chunking}\n{text}")
}

#[test]
fn a_preset_may_say_whether_its_jobs_split() {
    for (value, expected) in [
        ("\"off\"", Chunking::Off),
        ("\"auto\"", Chunking::Auto),
        (
            "{ segment_seconds = 30 }",
            Chunking::Segments {
                segment_seconds: 30,
            },
        ),
    ] {
        let presets = load_one("mine", &with_chunking(GOOD, value)).unwrap();
        let preset = presets.get("mine").unwrap();
        assert_eq!(preset.chunking, Some(expected), "{value}");
        assert!(preset.can_split());
    }
    let presets = load_one("mine", GOOD).unwrap();
    assert_eq!(presets.get("mine").unwrap().chunking, None);
}

#[test]
fn a_bad_chunking_is_named() {
    let choices = "write \"auto\", \"off\" or { segment_seconds = N }";
    rejects(
        &with_chunking(GOOD, "\"sometimes\""),
        "chunking",
        &format!("\"sometimes\" is not a choice; {choices}"),
    );
    rejects(
        &with_chunking(GOOD, "{ segment_seconds = 1 }"),
        "chunking.segment_seconds",
        "must be at least 2 (got 1)",
    );
    rejects(
        &with_chunking(GOOD, "{ segment_seconds = \"45\" }"),
        "chunking.segment_seconds",
        "must be a whole number of seconds",
    );
    rejects(
        &with_chunking(GOOD, "{ seconds = 30 }"),
        "chunking",
        &format!("unknown key 'seconds'; {choices}"),
    );
    rejects(
        &with_chunking(GOOD, "30"),
        "chunking",
        &format!("{choices} (got integer)"),
    );
}

const REMUX: &str = r#"
description = "copy"
container = "mkv"
[video]
codec = "copy"
"#;

const STILL: &str = r#"
description = "a picture"
container = "jpg"
[video]
codec = "mjpeg"
quality = 3
"#;

const AUDIO: &str = r#"
description = "sound"
container = "m4a"
[audio]
codec = "aac"
"#;

#[test]
fn a_preset_that_cannot_split_may_not_name_a_part_length() {
    let seconds = "{ segment_seconds = 30 }";
    rejects(
        &with_chunking(REMUX, seconds),
        "chunking",
        "copies the video stream, so its jobs cannot be split",
    );
    rejects(
        &with_chunking(STILL, seconds),
        "chunking",
        "makes a still picture, so its jobs cannot be split",
    );
    rejects(
        &with_chunking(AUDIO, seconds),
        "chunking",
        "has no video, so its jobs cannot be split",
    );
    for text in [REMUX, STILL, AUDIO] {
        let presets = load_one("mine", &with_chunking(text, "\"off\"")).unwrap();
        let preset = presets.get("mine").unwrap();
        assert_eq!(preset.chunking, Some(Chunking::Off));
        assert!(!preset.can_split(), "{text}");
    }
}

#[test]
fn a_jobs_own_chunking_wins_over_its_presets() {
    let presets = load_one("mine", &with_chunking(GOOD, "\"off\"")).unwrap();
    let preset = presets.get("mine").unwrap();
    let seconds = Chunking::Segments {
        segment_seconds: 20,
    };
    assert_eq!(preset.resolve_chunking(None), Chunking::Off);
    assert_eq!(preset.resolve_chunking(Some(seconds)), seconds);
    assert_eq!(
        preset.resolve_chunking(Some(Chunking::Auto)),
        Chunking::Auto
    );
    let plain = presets.get("h264-720p").unwrap();
    assert_eq!(plain.resolve_chunking(None), Chunking::Auto);
}

#[test]
fn a_preset_may_carry_a_watermark_and_its_mistakes_are_named() {
    let marked = format!(
        "{GOOD}[watermark]\nbucket = \"brand\"\nkey = \"logos/acme.png\"\n\
         position = \"top-right\"\nopacity = 0.6\n"
    );
    let presets = load_one("branded", &marked).unwrap();
    let p = presets.get("branded").unwrap();
    let w = p.watermark.as_ref().unwrap();
    assert_eq!(
        (w.bucket.as_deref(), w.key.as_str()),
        (Some("brand"), "logos/acme.png")
    );
    assert_eq!((w.opacity, w.height_ratio, w.margin), (0.6, 0.1, 0.03));
    assert!(p.why_unsplittable().unwrap().contains("watermark"));
    rejects(
        &marked.replace("bucket = \"brand\"\n", ""),
        "watermark.bucket",
        "name the bucket",
    );
    rejects(
        &marked.replace("0.6", "1.5"),
        "watermark.opacity",
        "not 0 to 1",
    );
    rejects(
        &marked.replace("top-right", "top"),
        "position",
        "unknown variant `top`",
    );
    rejects(
        &marked.replace("opacity", "alpha"),
        "alpha",
        "unknown field `alpha`",
    );
    rejects(
        &format!("{}chunking = {{ segment_seconds = 10 }}\n{marked}", ""),
        "chunking",
        "quality figures runs whole",
    );
    let poster = "description = \"p\"\ncontainer = \"jpg\"\n[video]\ncodec = \"mjpeg\"\n\
                  quality = 3\n[watermark]\nbucket = \"b\"\nkey = \"k.png\"\n";
    rejects(poster, "watermark", "moving video");
}

#[test]
fn a_preset_may_convert_write_or_burn_captions_and_its_mistakes_are_named() {
    let captioned =
        format!("{GOOD}[subtitles]\ncodec = \"text\"\nside_files = true\nburn_in = true\n");
    let presets = load_one("captioned", &captioned).unwrap();
    let c = presets.get("captioned").unwrap().captions;
    assert!(c.convert && c.side_files && c.burn_in);
    assert!(
        presets
            .get("captioned")
            .unwrap()
            .why_unsplittable()
            .unwrap()
            .contains("captions")
    );
    let shipped = Presets::builtin(&Ffmpeg).unwrap();
    let abr = shipped.get("hls-abr-captions").unwrap();
    assert!(abr.captions.convert && !abr.captions.burn_in);
    rejects(
        &captioned.replace("\"text\"", "\"srt\""),
        "subtitles.codec",
        "\"copy\" or \"text\" (got 'srt')",
    );
    rejects(
        &format!("{GOOD}[subtitles]\n"),
        "subtitles",
        "say what to do",
    );
    let hls = "description = \"h\"\ncontainer = \"hls\"\n[video]\ncodec = \"h264\"\ncrf = 23\n";
    rejects(
        &format!("{hls}[subtitles]\ncodec = \"copy\"\n"),
        "subtitles.codec",
        "\"text\" makes WebVTT renditions",
    );
    let ts = GOOD.replace("\"mp4\"", "\"ts\"");
    rejects(
        &format!("{ts}[subtitles]\ncodec = \"text\"\n"),
        "subtitles.codec",
        "holds no text subtitles",
    );
    let copying = GOOD.replace("codec = \"h264\"\ncrf = 23", "codec = \"copy\"");
    rejects(
        &format!("{copying}[subtitles]\nburn_in = true\n"),
        "subtitles.burn_in",
        "needs the video encoded",
    );
    rejects(
        &format!("chunking = {{ segment_seconds = 10 }}\n{captioned}"),
        "chunking",
        "captions, a watermark or quality figures runs whole",
    );
}
