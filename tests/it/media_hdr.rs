//! HDR inputs (decision 0077), judged by ffprobe and by ffmpeg's `signalstats`: the probe says
//! which streams are HDR; an SDR preset turns HDR10 (PQ) and HLG — also HLG only its frames
//! announce — into BT.709-tagged 8-bit video whose picture matches the SDR test card the
//! fixtures were made from, where the same pictures converted without a tone map are washed
//! out; the printed command does what the engine does; `hdr = "keep"` keeps PQ, HLG and the
//! mastering metadata; a ladder tone-maps once, one job can keep HDR in one output and
//! tone-map another, and a split job tone-maps every part; bad `hdr` values are refused by
//! field; SDR inputs get none of the HDR filters.

use std::path::{Path, PathBuf};
use std::process::Command;

use ffarm::media::caps::Ffmpeg;
use ffarm::media::split;
use ffarm::media::{self, HdrTransfer, OutputSpec};
use ffarm::preset::{Preset, PresetError, Presets};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;
use serde_json::Value;

use crate::helpers::{
    count_frames, ffarm_bin, ffprobe, ffprobe_streams, preset, tempdir, transcode, valid,
};

/// The picture every HDR fixture was made from (assets/make-fixtures.sh).
const CARD: &str = "testsrc2=size=320x180:rate=30:duration=2";
/// The HDR fixtures: PQ tagged in the stream, HLG tagged in the stream, and HLG that only an
/// alternative-transfer SEI (so only the decoded frames) announces.
const HDR_FIXTURES: [&str; 3] = ["hdr10_pq.mp4", "hlg.mkv", "hlg_compat.mkv"];

/// A picture's luma (limited range: 16 black, 235 white) and saturation as `signalstats`
/// measures them, averaged over the frames; YLOW and YHIGH are each frame's 10th and 90th
/// luma percentiles, `darkest` and `brightest` their extremes over all frames.
#[derive(Debug, Clone, Copy, Default)]
struct Look {
    yavg: f64,
    satavg: f64,
    ylow: f64,
    yhigh: f64,
    darkest: f64,
    brightest: f64,
}

/// The look of what `input` (ffmpeg input arguments) decodes to, taken to 8-bit 4:2:0.
fn look(input: &[&str]) -> Look {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(input)
        .args(["-vf", "format=yuv420p,signalstats,metadata=print:file=-"])
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let values = |key: &str| -> Vec<f64> {
        let prefix = format!("lavfi.signalstats.{key}=");
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .collect()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ylow, yhigh) = (values("YLOW"), values("YHIGH"));
    assert!(!ylow.is_empty(), "no signalstats from {input:?}");
    Look {
        yavg: mean(&values("YAVG")),
        satavg: mean(&values("SATAVG")),
        ylow: mean(&ylow),
        yhigh: mean(&yhigh),
        darkest: ylow.iter().copied().fold(f64::MAX, f64::min),
        brightest: yhigh.iter().copied().fold(f64::MIN, f64::max),
    }
}

fn look_of(path: &Path) -> Look {
    look(&["-i", path.to_str().unwrap()])
}

fn card() -> Look {
    look(&["-f", "lavfi", "-i", CARD])
}

/// Whether a picture looks like the card: mean luma within 15 % of the card's, and at least
/// 70 % of its saturation and of its contrast (YHIGH − YLOW). The tone map bends the top of
/// the range by design (Möbius takes the card's white, 100 cd/m², to about 66 cd/m²), which
/// costs about 11 % of the mean luma and 20 % of the saturation; the margins leave room for
/// that and the encoder. Pictures converted without a tone map keep a fifth to a third of
/// the card's saturation and are 18–21 % darker on average.
fn like_the_card(l: &Look, card: &Look) -> Result<(), String> {
    let mut faults = Vec::new();
    if (l.yavg - card.yavg).abs() > 0.15 * card.yavg {
        faults.push(format!(
            "mean luma {:.1}, the card's {:.1}",
            l.yavg, card.yavg
        ));
    }
    if l.satavg < 0.7 * card.satavg {
        faults.push(format!(
            "saturation {:.1}, the card's {:.1}",
            l.satavg, card.satavg
        ));
    }
    let (contrast, card_contrast) = (l.yhigh - l.ylow, card.yhigh - card.ylow);
    if contrast < 0.7 * card_contrast {
        faults.push(format!(
            "contrast {contrast:.1}, the card's {card_contrast:.1}"
        ));
    }
    if faults.is_empty() {
        Ok(())
    } else {
        Err(faults.join("; "))
    }
}

/// A tone-mapped picture stays inside SDR's range: no frame's 10th percentile below black,
/// none's 90th above white.
fn assert_in_sdr_range(what: &str, l: &Look) {
    assert!(
        l.darkest >= 16.0 && l.brightest <= 235.0,
        "{what}: luma outside 16–235: {l:?}"
    );
}

/// Checks a tone-mapped output against the card, and that the same HDR pictures converted
/// without a tone map fail the same judgement (so the check would catch its absence).
fn assert_tone_mapped(what: &str, out: &Path, hdr_source: &Path) {
    let card = card();
    let ours = look_of(out);
    let naive = look_of(hdr_source);
    println!("{what}: card {card:?}\n  tone-mapped {ours:?}\n  no tone map {naive:?}");
    assert_in_sdr_range(what, &ours);
    if let Err(e) = like_the_card(&ours, &card) {
        panic!("{what}: tone-mapped output does not look like the card: {e}");
    }
    assert!(
        like_the_card(&naive, &card).is_err(),
        "{what}: without a tone map the pictures already look like the card: {naive:?}"
    );
}

fn video_stream(path: &Path) -> Value {
    ffprobe_streams(&ffprobe(path), "video")
        .into_iter()
        .next()
        .expect("a video stream")
}

/// Asserts the colour tags ffprobe reads from a file's video stream.
fn assert_tags(
    what: &str,
    path: &Path,
    pix_fmt: &str,
    transfer: &str,
    primaries: &str,
    space: &str,
) {
    let v = video_stream(path);
    assert_eq!(v["pix_fmt"], pix_fmt, "{what}: pixel format");
    assert_eq!(v["color_transfer"], transfer, "{what}: transfer");
    assert_eq!(v["color_primaries"], primaries, "{what}: primaries");
    assert_eq!(v["color_space"], space, "{what}: matrix");
}

fn assert_bt709(what: &str, path: &Path) {
    assert_tags(what, path, "yuv420p", "bt709", "bt709", "bt709");
}

/// Presets from TOML texts, loaded as a presets directory would be.
fn load(files: &[(&str, &str)]) -> Result<Presets, PresetError> {
    let dir = tempdir();
    for (name, text) in files {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    Presets::load(Some(dir.path()), &Ffmpeg)
}

const HEVC_KEEP: &str = r#"
description = "10-bit HEVC"
container = "mkv"
[video]
codec = "hevc"
encoder_preset = "ultrafast"
crf = 28
profile = "main10"
pixel_format = "yuv420p10le"
hdr = "keep"
"#;

#[test]
fn the_probe_says_which_streams_are_hdr() {
    let video = |name: &str| media::probe(&valid(name)).unwrap().video().unwrap().clone();
    let pq = video("hdr10_pq.mp4");
    assert_eq!(pq.hdr(), Some(HdrTransfer::Pq));
    assert_eq!(
        (
            pq.color_transfer.as_deref(),
            pq.color_primaries.as_deref(),
            pq.color_space.as_deref(),
            pq.color_range.as_deref()
        ),
        (
            Some("smpte2084"),
            Some("bt2020"),
            Some("bt2020nc"),
            Some("tv")
        )
    );
    assert_eq!(video("hlg.mkv").hdr(), Some(HdrTransfer::Hlg));
    // Broadcast HLG: the headers say BT.2020 SDR; only the frames say HLG.
    let compat = video("hlg_compat.mkv");
    assert_eq!(compat.color_transfer.as_deref(), Some("bt2020-10"));
    assert_eq!(compat.hdr(), None);
    assert_eq!(video("h264_aac.mp4").hdr(), None);

    let out = Command::new(ffarm_bin())
        .arg("probe")
        .arg(valid("hdr10_pq.mp4"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["streams"][0]["color_transfer"], "smpte2084");
    assert_eq!(v["streams"][0]["color_primaries"], "bt2020");
}

#[test]
fn an_sdr_preset_tone_maps_hdr10_and_hlg_to_bt709() {
    for name in HDR_FIXTURES {
        let dir = tempdir();
        let input = valid(name);
        let out = dir.path().join("out.mp4");
        transcode(&input, &out, preset("h264-720p")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_bt709(name, &out);
        assert_eq!(count_frames(&out, "v:0"), 60, "{name}: every frame");
        assert_tone_mapped(name, &out, &input);
    }
}

#[test]
fn the_printed_command_tone_maps_as_the_engine_does() {
    for name in ["hdr10_pq.mp4", "hlg.mkv"] {
        let dir = tempdir();
        let input = valid(name);
        let ours = dir.path().join("ours.mp4");
        let theirs = dir.path().join("theirs.mp4");
        let p = preset("h264-720p");
        let args = media::equivalent_command(&input, &theirs, p, None).unwrap();
        let vf = args
            .iter()
            .find(|a| a.contains("tonemap="))
            .expect("a tone map");
        assert!(vf.starts_with("zscale=tin="), "{name}: {vf}");
        let status = Command::new("ffmpeg")
            .args(["-v", "error"])
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success(), "{name}: {args:?}");
        transcode(&input, &ours, p).unwrap();
        assert_bt709(&format!("{name} by the command line"), &theirs);
        let (a, b) = (look_of(&ours), look_of(&theirs));
        assert!(
            (a.yavg - b.yavg).abs() < 1.5 && (a.satavg - b.satavg).abs() < 1.5,
            "{name}: ffarm {a:?}, the command line {b:?}"
        );
    }
}

#[test]
fn keep_on_10_bit_hevc_keeps_pq_and_its_metadata() {
    let dir = tempdir();
    let input = valid("hdr10_pq.mp4");
    let out = dir.path().join("kept.mp4");
    transcode(&input, &out, preset("hevc-1080p-hdr")).unwrap();
    let what = "hdr10_pq.mp4 kept";
    assert_tags(what, &out, "yuv420p10le", "smpte2084", "bt2020", "bt2020nc");
    // The container's boxes and the first frame's SEI carry the master and the light level.
    let stream_sd = video_stream(&out)["side_data_list"].clone();
    let kinds: Vec<&str> = stream_sd
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|s| s["side_data_type"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        kinds.contains(&"Mastering display metadata"),
        "{what}: {stream_sd}"
    );
    assert!(
        kinds.contains(&"Content light level metadata"),
        "{what}: {stream_sd}"
    );
    let frames = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
        ])
        .args(["-show_frames", "-print_format", "json"])
        .arg(&out)
        .output()
        .unwrap();
    let frames: Value = serde_json::from_slice(&frames.stdout).unwrap();
    let sd = &frames["frames"][0]["side_data_list"];
    let find = |kind: &str| {
        sd.as_array()
            .and_then(|l| l.iter().find(|s| s["side_data_type"] == kind).cloned())
            .unwrap_or_else(|| panic!("{what}: no {kind} on the first frame: {sd}"))
    };
    assert_eq!(
        find("Mastering display metadata")["max_luminance"],
        "10000000/10000"
    );
    assert_eq!(find("Mastering display metadata")["green_x"], "13250/50000");
    assert_eq!(find("Content light level metadata")["max_content"], 1000);
    // Not tone-mapped: still as flat as HDR looks without one.
    assert!(like_the_card(&look_of(&out), &card()).is_err());

    // HLG only the frames announce is kept as HLG, now said in the stream's headers too.
    let hlg = dir.path().join("hlg.mkv");
    let presets = load(&[("hevc-keep", HEVC_KEEP)]).unwrap();
    transcode(
        &valid("hlg_compat.mkv"),
        &hlg,
        presets.get("hevc-keep").unwrap(),
    )
    .unwrap();
    assert_tags(
        "hlg_compat.mkv kept",
        &hlg,
        "yuv420p10le",
        "arib-std-b67",
        "bt2020",
        "bt2020nc",
    );
}

#[test]
fn bad_hdr_values_are_refused_by_field() {
    let rejects = |text: String, problem: &str| {
        let err = load(&[("broken", &text)]).expect_err("a broken preset must not load");
        let msg = err.to_string();
        assert!(msg.contains("broken.toml"), "names the file: {msg}");
        assert!(msg.contains("video.hdr"), "names the field: {msg}");
        assert!(msg.contains(problem), "says '{problem}': {msg}");
    };
    rejects(
        HEVC_KEEP.replace("\"keep\"", "\"hdr10\""),
        "unknown value 'hdr10'; one of: tonemap, keep",
    );
    rejects(
        HEVC_KEEP
            .replace("yuv420p10le", "yuv420p")
            .replace("main10", "main"),
        "needs a pixel_format of 10 bits or more",
    );
    rejects(
        HEVC_KEEP
            .replace("\"hevc\"", "\"h264\"")
            .replace("main10", "high10"),
        "needs a codec that carries HDR (hevc, vp9, av1), not h264",
    );
    // A stream copy takes no encoding setting, this one included.
    let copy =
        "description = \"x\"\ncontainer = \"mkv\"\n[video]\ncodec = \"copy\"\nhdr = \"keep\"\n";
    let msg = load(&[("broken", copy)]).unwrap_err().to_string();
    assert!(msg.contains("takes no encoding settings"), "{msg}");
    // Not a string at all: the parser names the key.
    let msg = load(&[("broken", &HEVC_KEEP.replace("\"keep\"", "1"))])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("hdr"), "{msg}");
    // Both values load where they fit.
    let fine = load(&[("fine", &HEVC_KEEP.replace("\"keep\"", "\"tonemap\""))]).unwrap();
    assert!(fine.get("fine").is_ok());
}

/// The MD5 of the decoded pictures of `path` (what a picture shows, not how it is coded).
fn picture_md5(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sdr_inputs_get_none_of_the_hdr_filters() {
    let dir = tempdir();
    let input = valid("h264_aac.mp4");
    for name in ["h264-720p", "hevc-1080p-hdr", "hls-abr", "poster-jpg"] {
        let args = media::equivalent_command(&input, &dir.path().join("x.mp4"), preset(name), None)
            .unwrap();
        let all = args.join(" ");
        for filter in ["zscale", "tonemap", "setparams"] {
            assert!(
                !all.contains(filter),
                "{name}: {filter} on an SDR input: {all}"
            );
        }
    }
    // Keeping and tone-mapping HDR make the same pictures of an SDR input, tagged as it is.
    let presets = load(&[
        ("keep", HEVC_KEEP),
        ("tonemap", &HEVC_KEEP.replace("\"keep\"", "\"tonemap\"")),
    ])
    .unwrap();
    let kept = dir.path().join("keep.mkv");
    let mapped = dir.path().join("tonemap.mkv");
    transcode(&input, &kept, presets.get("keep").unwrap()).unwrap();
    transcode(&input, &mapped, presets.get("tonemap").unwrap()).unwrap();
    assert_eq!(picture_md5(&kept), picture_md5(&mapped));
    let tags = |v: &Value| {
        ["color_transfer", "color_primaries", "color_space"]
            .map(|k| v[k].as_str().map(String::from))
    };
    assert_eq!(tags(&video_stream(&kept)), tags(&video_stream(&input)));
}

/// An HLS ladder of two rungs small enough for the 320x180 fixtures.
const SMALL_LADDER: &str = r#"
description = "two small rungs"
container = "hls"
[video]
codec = "h264"
encoder_preset = "veryfast"
pixel_format = "yuv420p"
[hls]
segment_seconds = 1
[[hls.renditions]]
name = "180p"
max_width = 320
max_height = 180
bitrate = "400k"
[[hls.renditions]]
name = "90p"
max_width = 160
max_height = 90
bitrate = "150k"
"#;

#[test]
fn a_ladder_tone_maps_once_before_its_scalers() {
    let presets = load(&[("small-ladder", SMALL_LADDER)]).unwrap();
    let p = presets.get("small-ladder").unwrap();
    let input = valid("hdr10_pq.mp4");
    let dir = tempdir();
    let out = dir.path().join("hls");
    let args = media::equivalent_command(&input, &out, p, None).unwrap();
    let graph = args
        .iter()
        .skip_while(|a| *a != "-filter_complex")
        .nth(1)
        .expect("a filter graph splitting the renditions");
    assert_eq!(graph.matches("tonemap=tonemap").count(), 1, "{graph}");
    assert!(
        graph.find("tonemap=tonemap") < graph.find("split=2"),
        "{graph}"
    );
    transcode(&input, &out, p).unwrap();
    for rung in ["180p", "90p"] {
        let segment = out.join(format!("index_{rung}_00000.ts"));
        let v = video_stream(&segment);
        assert_eq!(v["color_transfer"], "bt709", "{rung}: {v}");
        assert_eq!(v["color_primaries"], "bt709", "{rung}: {v}");
    }
    let top = out.join("index_180p.m3u8");
    if let Err(e) = like_the_card(&look_of(&top), &card()) {
        panic!("the 180p rung: {e}");
    }
}

#[test]
fn one_job_keeps_hdr_in_one_output_and_tone_maps_another() {
    let dir = tempdir();
    let input = valid("hdr10_pq.mp4");
    let sdr = dir.path().join("clip.h264-720p.mp4");
    let hdr = dir.path().join("clip.hevc-1080p-hdr.mp4");
    let outputs = [
        OutputSpec {
            path: &sdr,
            preset: preset("h264-720p"),
        },
        OutputSpec {
            path: &hdr,
            preset: preset("hevc-1080p-hdr"),
        },
    ];
    media::transcode_many(&input, &outputs, &StopToken::new(), &mut |_: &Progress| {}).unwrap();
    assert_bt709("the SDR output", &sdr);
    assert_tone_mapped("the SDR output", &sdr, &input);
    assert_tags(
        "the HDR output",
        &hdr,
        "yuv420p10le",
        "smpte2084",
        "bt2020",
        "bt2020nc",
    );
}

/// A split job of `input` in 1-second parts with `p`, assembled into `output`.
fn split_transcode(input: &Path, p: &Preset, work: &Path, output: &Path) -> usize {
    let stop = StopToken::new();
    let mut quiet = |_: &Progress| {};
    let layout = split::layout(input, p, 1)
        .unwrap()
        .expect("two 1-second GOPs split");
    split::cut(input, &layout, work, &stop).unwrap();
    let part_dirs: Vec<PathBuf> = (0..layout.ranges.len())
        .map(|seq| work.join("parts").join(seq.to_string()))
        .collect();
    for (seq, dir) in part_dirs.iter().enumerate() {
        let src = split::source_path(work, seq);
        split::encode_part(&src, p, &layout, seq as u32, dir, 2, &stop, &mut quiet).unwrap();
    }
    let audio_dir = work.join("audio");
    let audio = layout.has_audio.then(|| {
        let rest = split::rest_path(work);
        split::encode_audio(&rest, p, &layout, &audio_dir, &stop, &mut quiet).unwrap();
        audio_dir.as_path()
    });
    split::assemble(&layout, p, &part_dirs, audio, output, &stop, &mut quiet).unwrap();
    layout.ranges.len()
}

#[test]
fn a_split_job_tone_maps_every_part() {
    for name in ["hdr10_pq.mp4", "hlg_compat.mkv"] {
        let dir = tempdir();
        let input = valid(name);
        let out = dir.path().join("out.mp4");
        let parts = split_transcode(&input, preset("h264-720p"), &dir.path().join("work"), &out);
        assert_eq!(parts, 2, "{name}");
        assert_bt709(name, &out);
        assert_eq!(count_frames(&out, "v:0"), 60, "{name}: every frame");
        assert_tone_mapped(name, &out, &input);
        // The second part on its own, as it was encoded.
        let second = look(&["-ss", "1", "-i", out.to_str().unwrap()]);
        if let Err(e) = like_the_card(&second, &card()) {
            panic!("{name}: the second part: {e}");
        }
    }
}
