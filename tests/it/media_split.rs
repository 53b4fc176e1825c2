//! Split jobs against the unsplit transcode: a 4-minute input laid out in 30 s parts, cut,
//! each part encoded on its own, the audio once, then assembled; the result checked with
//! ffprobe and ffmpeg against `media::transcode` of the same input and preset — the same
//! frame count, duration and audio start within a frame, strictly increasing timestamps, no
//! decode error, and SSIM against the source as good as the unsplit encode's, at the joins
//! too. Plus the layouts that must not exist and the pieces the assembly must refuse.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ffarm::media::split::{self, Layout};
use ffarm::media::{MediaError, OutputKind, TranscodeReport};
use ffarm::progress::Progress;
use ffarm::stop::StopToken;

use crate::helpers::{count_frames, preset, tempdir, transcode, valid};

const INPUT: &str = "split_4min.mp4";
const SEGMENT_SECONDS: u32 = 30;
const FPS: f64 = 30.0;

fn no_progress() -> impl FnMut(&Progress) {
    |_: &Progress| {}
}

/// A split run's pieces and how long each step took.
struct SplitRun {
    layout: Layout,
    report: TranscodeReport,
    cut: f64,
    parts: f64,
    audio: f64,
    assemble: f64,
}

/// Lays out, cuts, encodes every part (one after the other, two threads each) and the
/// audio, and assembles into `output`.
fn split_transcode(input: &Path, name: &str, work: &Path, output: &Path) -> SplitRun {
    let p = preset(name);
    let stop = StopToken::new();
    let layout = split::layout(input, p, SEGMENT_SECONDS)
        .unwrap()
        .expect("a 4-minute input splits");
    let t = Instant::now();
    let sources = split::cut(input, &layout, work, &stop).unwrap();
    let cut = t.elapsed().as_secs_f64();
    assert_eq!(sources.len(), layout.ranges.len() + 1, "{sources:?}");
    let t = Instant::now();
    let part_dirs: Vec<PathBuf> = (0..layout.ranges.len())
        .map(|seq| work.join("parts").join(seq.to_string()))
        .collect();
    for (seq, dir) in part_dirs.iter().enumerate() {
        let src = split::source_path(work, seq);
        split::encode_part(
            &src,
            p,
            &layout,
            seq as u32,
            dir,
            2,
            &stop,
            &mut no_progress(),
        )
        .unwrap();
    }
    let parts = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let audio_dir = work.join("audio");
    let rest = split::rest_path(work);
    split::encode_audio(&rest, p, &layout, &audio_dir, &stop, &mut no_progress()).unwrap();
    let audio = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = split::assemble(
        &layout,
        p,
        &part_dirs,
        Some(&audio_dir),
        output,
        &stop,
        &mut no_progress(),
    )
    .unwrap();
    let assemble = t.elapsed().as_secs_f64();
    SplitRun {
        layout,
        report,
        cut,
        parts,
        audio,
        assemble,
    }
}

/// The file to read the result from: the playlist to play for HLS, the file otherwise.
fn playable(report: &TranscodeReport) -> PathBuf {
    let top = report
        .outputs
        .iter()
        .rev()
        .find(|o| matches!(o.kind, OutputKind::MasterPlaylist | OutputKind::Media))
        .or(report.outputs.last())
        .expect("outputs");
    top.path.clone()
}

/// (pts, dts) of every video packet, in file order, in seconds.
fn video_packets(path: &Path) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "packet=pts_time,dts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("running ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().trim_end_matches(',').split(',');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// Presentation times of the decoded video frames, in output order.
fn frame_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("running ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

fn start_time(path: &Path, selector: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", selector])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("running ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches(',');
    first
        .parse()
        .unwrap_or_else(|_| panic!("{}: no start time in {text:?}", path.display()))
}

/// What `ffmpeg -v error -i OUT -f null -` prints: nothing for a clean file.
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Per-frame SSIM (All) of `path`'s video against `source`'s, scaled to the source's size.
fn ssim(path: &Path, source: &Path, stats: &Path) -> Vec<f64> {
    let graph = format!(
        "[0:v][1:v]scale2ref=flags=bicubic[a][b];[a][b]ssim=stats_file={}",
        stats.display()
    );
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .arg("-i")
        .arg(source)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(stats)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("All:"))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn assert_strictly_increasing(what: &str, times: &[f64]) {
    for w in times.windows(2) {
        assert!(w[1] > w[0], "{what}: {} then {}", w[0], w[1]);
    }
}

/// The whole check of one preset: split against unsplit.
fn check_preset(name: &str) {
    let input = valid(INPUT);
    let dir = tempdir();
    let ext = match name {
        "vp9-720p" => "webm",
        n if n.starts_with("hls") => "m3u8",
        _ => "mp4",
    };
    let t = Instant::now();
    let whole = transcode(
        &input,
        &dir.path().join(format!("whole/out.{ext}")),
        preset(name),
    )
    .unwrap();
    let unsplit = t.elapsed().as_secs_f64();
    let run = split_transcode(
        &input,
        name,
        &dir.path().join("scratch"),
        &dir.path().join(format!("split/out.{ext}")),
    );
    let (a, b) = (playable(&whole), playable(&run.report));
    let kinds = |r: &TranscodeReport| r.outputs.iter().map(|o| o.kind).collect::<Vec<_>>();
    if name.starts_with("hls") {
        check_hls_files(&whole, &run.report);
    } else {
        assert_eq!(
            kinds(&run.report),
            kinds(&whole),
            "the same files, in the same order"
        );
    }

    let frames = (count_frames(&a, "v:0"), count_frames(&b, "v:0"));
    assert_eq!(frames.0, frames.1, "{name}: video frames, unsplit vs split");
    assert_eq!(
        run.report.frames, frames.1,
        "{name}: the report counts what was written"
    );
    let (pa, pb) = (video_packets(&a), video_packets(&b));
    let video = (start_time(&a, "v:0"), start_time(&b, "v:0"));
    let audio = (start_time(&a, "a:0"), start_time(&b, "a:0"));
    // A split HLS output's timeline starts later (its pieces are written shifted so that
    // none begins negative): what must match is the length and the audio against the video.
    if !name.starts_with("hls") {
        assert!(
            (video.0 - video.1).abs() <= 1.0 / FPS,
            "{name}: video starts {video:?}"
        );
    }
    let end = |p: &[(f64, f64)]| p.iter().map(|x| x.0).fold(f64::MIN, f64::max);
    let length = (end(&pa) - video.0, end(&pb) - video.1);
    assert!(
        (length.0 - length.1).abs() <= 1.0 / FPS + 1e-6,
        "{name}: last frame {} s after the first vs {} s",
        length.0,
        length.1
    );
    let dts: Vec<f64> = pb.iter().map(|p| p.1).collect();
    assert_strictly_increasing(&format!("{name}: packet dts"), &dts);
    assert_strictly_increasing(&format!("{name}: frame pts"), &frame_times(&b));
    assert_eq!(decode_errors(&b), "", "{name}: decoding the split output");
    let sync = (audio.0 - video.0, audio.1 - video.1);
    assert!(
        (sync.0 - sync.1).abs() <= 1.0 / FPS,
        "{name}: audio starts {} s from the video vs {} s",
        sync.0,
        sync.1
    );

    let sa = ssim(&a, &input, &dir.path().join("whole.ssim"));
    let sb = ssim(&b, &input, &dir.path().join("split.ssim"));
    assert_eq!(sa.len(), sb.len(), "{name}: SSIM frame counts");
    let delta = mean(&sb) - mean(&sa);
    assert!(
        delta.abs() <= 0.005,
        "{name}: mean SSIM {} vs {}",
        mean(&sb),
        mean(&sa)
    );
    let mut worst = f64::MAX;
    for &(start, _) in &run.layout.ranges[1..] {
        let at = (start as f64 / 1e6 * FPS).round() as usize;
        for n in at.saturating_sub(2)..=(at + 2).min(sa.len() - 1) {
            let d = sb[n] - sa[n];
            worst = worst.min(d);
            assert!(
                d >= -0.02,
                "{name}: frame {n} at a join: SSIM {} vs {}",
                sb[n],
                sa[n]
            );
        }
    }
    eprintln!(
        "{name}: {} parts, {} frames; mean SSIM split {:.5} unsplit {:.5} (delta {delta:+.5}); \
         worst join delta {worst:+.5}; unsplit {unsplit:.1} s; cut {:.1} s, parts {:.1} s, \
         audio {:.1} s, assembly {:.1} s",
        run.layout.ranges.len(),
        frames.1,
        mean(&sb),
        mean(&sa),
        run.cut,
        run.parts,
        run.audio,
        run.assemble
    );
}

/// A split HLS output is the unsplit one's files with its audio as a rendition of its own:
/// each variant's video segments, one more media playlist (the audio's) with its segments,
/// the master last under the unsplit top playlist's name, naming the audio group.
fn check_hls_files(whole: &TranscodeReport, split: &TranscodeReport) {
    let names = |r: &TranscodeReport, kind: OutputKind| -> Vec<String> {
        r.outputs
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let (ws, ss) = (
        names(whole, OutputKind::Segment),
        names(split, OutputKind::Segment),
    );
    let video: Vec<&String> = ss.iter().filter(|n| !n.contains("_audio_")).collect();
    assert_eq!(video.len(), ws.len(), "video segments: {video:?} vs {ws:?}");
    assert!(ss.len() > ws.len(), "the audio rendition's segments");
    let (wp, sp) = (
        names(whole, OutputKind::Playlist),
        names(split, OutputKind::Playlist),
    );
    assert_eq!(
        sp.iter().filter(|p| p.ends_with("_audio.m3u8")).count(),
        1,
        "one audio rendition: {sp:?}"
    );
    let (top, last) = (whole.outputs.last().unwrap(), split.outputs.last().unwrap());
    assert_eq!(
        last.path.file_name(),
        top.path.file_name(),
        "the same top playlist"
    );
    assert_eq!(
        last.kind,
        OutputKind::MasterPlaylist,
        "the master goes last"
    );
    if top.kind == OutputKind::MasterPlaylist {
        assert_eq!(sp.len(), wp.len() + 1, "{sp:?} vs {wp:?}");
        assert!(wp.iter().all(|p| sp.contains(p)), "{sp:?} vs {wp:?}");
    } else {
        // One rendition: its top playlist becomes a master naming the video and the audio.
        assert_eq!(sp.len(), 2, "{sp:?}");
    }
    let master = std::fs::read_to_string(&last.path).unwrap();
    assert!(
        master.contains("#EXT-X-MEDIA:TYPE=AUDIO") && master.contains("AUDIO=\"audio\""),
        "{master}"
    );
    for p in split
        .outputs
        .iter()
        .filter(|o| o.kind == OutputKind::Playlist)
    {
        let text = std::fs::read_to_string(&p.path).unwrap();
        let durations: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|d| d.trim_end_matches(',').parse().unwrap())
            .collect();
        let target: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            durations.iter().all(|d| d.round() <= target && *d > 0.0),
            "{}: {durations:?} over {target}",
            p.path.display()
        );
    }
}

#[test]
fn h264_split_matches_the_unsplit_encode() {
    check_preset("h264-720p");
}

#[test]
fn vp9_split_matches_the_unsplit_encode() {
    check_preset("vp9-720p");
}

#[test]
fn hls_abr_split_matches_the_unsplit_encode() {
    check_preset("hls-abr");
}

#[test]
fn hls_single_split_matches_the_unsplit_encode() {
    check_preset("hls-720p");
}

#[test]
fn no_layout_for_a_copy_a_still_picture_or_a_short_input() {
    let input = valid(INPUT);
    for name in ["remux-mkv", "poster-jpg", "audio-aac-128k"] {
        let layout = split::layout(&input, preset(name), SEGMENT_SECONDS).unwrap();
        assert!(layout.is_none(), "{name} makes no video to split");
    }
    // 2 seconds: shorter than two segments.
    let short = split::layout(&valid("h264_aac.mp4"), preset("h264-720p"), 1).unwrap();
    assert!(
        short.is_none(),
        "a 2-second input is shorter than two 1-second parts"
    );
    let long = split::layout(&input, preset("h264-720p"), 120).unwrap();
    assert_eq!(
        long.map(|l| l.ranges.len()),
        Some(2),
        "240 s in 120 s parts"
    );
    let none = split::layout(&input, preset("h264-720p"), 121).unwrap();
    assert!(none.is_none(), "240 s is shorter than two 121 s parts");
}

#[test]
fn layouts_cut_on_keyframes_and_hls_on_segment_boundaries() {
    let input = valid(INPUT);
    let plain = split::layout(&input, preset("h264-720p"), 29)
        .unwrap()
        .unwrap();
    let hls = split::layout(&input, preset("hls-720p"), 29)
        .unwrap()
        .unwrap();
    for layout in [&plain, &hls] {
        assert_eq!(layout.ranges.first().map(|r| r.0), Some(0));
        assert_eq!(layout.ranges.last().map(|r| r.1), Some(layout.duration_us));
        for w in layout.ranges.windows(2) {
            assert_eq!(w[0].1, w[1].0, "ranges meet");
            // The fixture has a keyframe every 2 s.
            assert_eq!(w[1].0 % 2_000_000, 0, "a cut on a keyframe: {:?}", w[1]);
        }
        assert!(layout.has_audio);
        let json = serde_json::to_string(layout).unwrap();
        let back: Layout = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, layout, "a layout travels as JSON");
    }
    assert_eq!(hls.segment_us, Some(6_000_000));
    assert!(
        hls.ranges[1..].iter().all(|r| r.0 % 6_000_000 == 0),
        "{:?}",
        hls.ranges
    );
    // 28 s is the keyframe nearest 29 s; HLS takes 30 s, its nearest segment boundary.
    assert_eq!(plain.ranges[0].1, 28_000_000);
    assert_eq!(hls.ranges[0].1, 30_000_000);
}

/// A layout with two parts of 120 s, cut, both parts and the audio encoded with a fast
/// preset; returns the layout and the work directory's parts.
fn two_parts(work: &Path) -> (Layout, Vec<PathBuf>) {
    let p = preset("h264-480p");
    let stop = StopToken::new();
    let input = valid(INPUT);
    let layout = split::layout(&input, p, 120).unwrap().unwrap();
    split::cut(&input, &layout, work, &stop).unwrap();
    let dirs: Vec<PathBuf> = (0..2).map(|s| work.join(format!("parts/{s}"))).collect();
    for (seq, dir) in dirs.iter().enumerate() {
        let src = split::source_path(work, seq);
        split::encode_part(
            &src,
            p,
            &layout,
            seq as u32,
            dir,
            2,
            &stop,
            &mut no_progress(),
        )
        .unwrap();
    }
    (layout, dirs)
}

fn assemble_err(layout: &Layout, dirs: &[PathBuf], audio: Option<&Path>, out: &Path) -> MediaError {
    split::assemble(
        layout,
        preset("h264-480p"),
        dirs,
        audio,
        out,
        &StopToken::new(),
        &mut no_progress(),
    )
    .unwrap_err()
}

#[test]
fn the_assembly_refuses_missing_or_foreign_pieces() {
    let dir = tempdir();
    let work = dir.path().join("scratch");
    let (layout, dirs) = two_parts(&work);
    let out = dir.path().join("out/result.mp4");
    let audio = work.join("audio");
    // The audio has not run.
    let e = assemble_err(&layout, &dirs, Some(&audio), &out);
    assert_eq!(e.code(), "split-part-unusable", "{e}");
    assert!(e.to_string().contains("audio"), "{e}");
    let stop = StopToken::new();
    let rest = split::rest_path(&work);
    split::encode_audio(
        &rest,
        preset("h264-480p"),
        &layout,
        &audio,
        &stop,
        &mut no_progress(),
    )
    .unwrap();
    // A part's video file gone.
    let video = dirs[1].join("video_0.nut");
    let kept = dirs[1].join("kept.nut");
    std::fs::rename(&video, &kept).unwrap();
    let e = assemble_err(&layout, &dirs, Some(&audio), &out);
    assert!(e.to_string().contains("video_0.nut"), "{e}");
    std::fs::rename(&kept, &video).unwrap();
    // Parts swapped: each is stamped with its own seq.
    let swapped = vec![dirs[1].clone(), dirs[0].clone()];
    let e = assemble_err(&layout, &swapped, Some(&audio), &out);
    assert!(e.to_string().contains("not part 0"), "{e}");
    // A part of another layout of the same input.
    let mut other = layout.clone();
    other.ranges[0].1 -= 2_000_000;
    other.ranges[1].0 -= 2_000_000;
    let e = assemble_err(&other, &dirs, Some(&audio), &out);
    assert!(e.to_string().contains("another layout"), "{e}");
    // A part encoded from another part's source.
    let src1 = split::source_path(&work, 1);
    let p = preset("h264-480p");
    let e = split::encode_part(&src1, p, &layout, 5, &dirs[0], 2, &stop, &mut no_progress())
        .unwrap_err();
    assert!(
        e.to_string().contains("part 5 is not in this layout"),
        "{e}"
    );
    let e = split::encode_part(&rest, p, &layout, 0, &dirs[0], 2, &stop, &mut no_progress())
        .unwrap_err();
    assert!(e.to_string().contains("rest.nut"), "{e}");
    // Nothing was published by the failed assemblies; the good one publishes one file.
    assert!(!out.exists());
    let report = split::assemble(
        &layout,
        p,
        &dirs,
        Some(&audio),
        &out,
        &stop,
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(report.outputs.len(), 1);
    assert_eq!(count_frames(&out, "v:0"), 7200);
    assert_eq!(decode_errors(&out), "");
}

#[test]
fn a_stopped_cut_leaves_no_partial_source() {
    let dir = tempdir();
    let input = valid(INPUT);
    let layout = split::layout(&input, preset("h264-720p"), SEGMENT_SECONDS)
        .unwrap()
        .unwrap();
    let stop = StopToken::new();
    stop.stop();
    let e = split::cut(&input, &layout, dir.path(), &stop).unwrap_err();
    assert_eq!(e.code(), "stopped", "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("src")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
