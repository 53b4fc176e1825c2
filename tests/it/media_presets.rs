//! Every shipped preset, run on real media and checked with `ffprobe` and with our own probe:
//! the right codecs, sizes (aspect kept, never upscaled, even), video within one frame and
//! audio within what audio encoding adds (measured from the packets, whatever the container
//! records), the streams present that should be, and the frame-rate caps. HLS presets are
//! checked further in `media_hls`.

use std::path::{Path, PathBuf};

use ffarm::media::OutputKind;
use ffarm::preset::{AudioOutput, Container, Preset, VideoOutput};
use serde_json::Value;

use crate::helpers::{
    count_frames, ffprobe, ffprobe_streams, num, packet_times, presets, rate, stream_extent,
    tempdir, transcode, valid,
};
use crate::media_hls::check_rendition;

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
        c if c.segmented() => dir.join("out"),
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

/// Our probe reports what ffprobe does: container, and per stream its kind, codec, size,
/// sample rate and channels.
pub(crate) fn assert_probe_agrees(what: &str, path: &Path, theirs: &Value) {
    let ours = ffarm::media::probe(path).unwrap_or_else(|e| panic!("{what}: our probe: {e}"));
    assert_eq!(
        ours.container,
        theirs["format"]["format_name"].as_str().unwrap(),
        "{what}: our probe's container"
    );
    let streams = theirs["streams"].as_array().unwrap();
    assert_eq!(
        ours.streams.len(),
        streams.len(),
        "{what}: our probe's streams"
    );
    for (o, t) in ours.streams.iter().zip(streams) {
        let what = format!("{what}: our probe, stream #{}", o.index);
        assert_eq!(o.kind, t["codec_type"].as_str().unwrap(), "{what}");
        assert_eq!(o.codec, t["codec_name"].as_str().unwrap(), "{what}");
        assert_eq!(o.width.map(u64::from), t["width"].as_u64(), "{what}: width");
        assert_eq!(
            o.height.map(u64::from),
            t["height"].as_u64(),
            "{what}: height"
        );
        assert_eq!(
            o.sample_rate.map(f64::from),
            t["sample_rate"].as_str().map(|r| r.parse::<f64>().unwrap()),
            "{what}: sample rate"
        );
        assert_eq!(
            o.channels.map(u64::from),
            t["channels"].as_u64(),
            "{what}: channels"
        );
    }
}

/// The video of `output` spans the video of `input` to within one output frame.
pub(crate) fn assert_video_duration(what: &str, input: &Path, output: &Path, fps: f64) {
    let (d_out, d_in) = (stream_extent(output, "v:0"), stream_extent(input, "v:0"));
    assert!(
        (d_out - d_in).abs() <= 1.0 / fps + 0.002,
        "{what}: video {d_out} s vs {d_in} s (one frame is {} s)",
        1.0 / fps
    );
}

/// One audio stream of `output` spans its source in `input` to within what audio encoding
/// honestly adds: the encoder's priming (AAC 1024 samples, MP3 1105, Opus 312: never more
/// than one of its frames) and the last frame's padding, so two output frames. Packet
/// extents count the priming whichever way the container records it (negative timestamps,
/// an edit list, a LAME header).
pub(crate) fn assert_audio_duration(what: &str, input: (&Path, &str), output: (&Path, &str)) {
    let frame = packet_times(output.0, output.1)
        .iter()
        .map(|p| p.1)
        .filter(|d| d.is_finite())
        .fold(0.0, f64::max);
    assert!(
        frame > 0.0 && frame < 0.2,
        "{what}: audio frames of {frame} s"
    );
    let (d_out, d_in) = (
        stream_extent(output.0, output.1),
        stream_extent(input.0, input.1),
    );
    assert!(
        (d_out - d_in).abs() <= 2.0 * frame + 0.002,
        "{what}: audio {d_out} s vs {d_in} s (one audio frame is {frame} s)"
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
                assert_video_duration(&what, input, output, rate(&o["avg_frame_rate"]));
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
            for (i, (o, s)) in out_audio.iter().zip(&src_audio).enumerate() {
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
                let selector = format!("a:{i}");
                assert_audio_duration(
                    &format!("{what}, audio track {i}"),
                    (input, &selector),
                    (output, &selector),
                );
            }
        }
    }
    // (A .jpg name makes FFmpeg pick its image-sequence demuxer, which inputs never get.)
    if p.container != Container::Jpg {
        assert_probe_agrees(&what, output, &out);
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

#[test]
fn every_shipped_file_preset_makes_what_it_says() {
    let mut ran = 0;
    // HLS, CMAF and storyboards write several files: media_hls, media_cmaf and
    // media_storyboard check them.
    for p in presets()
        .iter()
        .filter(|p| !p.container.segmented() && p.container != Container::Storyboard)
    {
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
fn default_preset_for_every_dst_format() {
    let input = valid("h264_aac.mp4");
    for format in ffarm::preset::FORMAT_DEFAULTS {
        let p = presets().for_format(format).unwrap();
        assert_eq!(p.container.extension(), format);
        let dir = tempdir();
        let out = dir.path().join(format!("x.{format}"));
        transcode(&input, &out, p).unwrap_or_else(|e| panic!("{format}: {e}"));
        if p.container == Container::Hls {
            // One rendition at the source's size, checked as hls-720p is.
            check_rendition(&out, &input, 6.0, (640, 360));
            continue;
        }
        let probe = ffprobe(&out);
        assert!(
            num(&probe["format"]["duration"]) > 1.9,
            "{format}: full duration"
        );
    }
    assert!(presets().for_format("gif").is_err());
}

#[test]
fn shipped_frame_rate_caps_hold_on_a_60_fps_source() {
    let input = valid("h264_60fps.mp4");
    assert_eq!(count_frames(&input, "v:0"), 120, "2 s at 60 fps");
    let mut checked = Vec::new();
    for p in presets().iter() {
        let Some(VideoOutput::Encode(v)) = &p.video else {
            continue;
        };
        let Some(cap) = v.max_fps else { continue };
        if p.encrypts() {
            // Its segments read only with the job's key; its rate is hls-720p's.
            continue;
        }
        let dir = tempdir();
        let out = output_for(dir.path(), p);
        transcode(&input, &out, p).unwrap_or_else(|e| panic!("preset {}: {e}", p.name));
        let playlists: Vec<PathBuf> = match p.container {
            c if c.segmented() => std::fs::read_dir(&out)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|f| {
                    // Video playlists: not the master, nor CMAF's audio rendition.
                    f.extension().is_some_and(|x| x == "m3u8")
                        && f.file_name().is_some_and(|n| {
                            n != "master.m3u8" && !n.to_string_lossy().contains("_audio")
                        })
                })
                .collect(),
            _ => vec![out.clone()],
        };
        assert!(!playlists.is_empty(), "preset {}", p.name);
        let want_fps = cap.min(60.0);
        for file in playlists {
            let what = format!("preset {} (cap {cap}): {}", p.name, file.display());
            let frames = count_frames(&file, "v:0");
            assert_eq!(frames, (2.0 * want_fps) as u64, "{what}: frames");
            let v = &ffprobe_streams(&ffprobe(&file), "video")[0];
            let fps = rate(&v["avg_frame_rate"]);
            assert!(
                (fps - want_fps).abs() < want_fps * 0.005,
                "{what}: {fps} fps"
            );
            assert_video_duration(&what, &input, &file, want_fps);
        }
        checked.push(p.name.clone());
    }
    assert!(
        checked.len() >= 8,
        "the shipped presets with caps: {checked:?}"
    );
}
