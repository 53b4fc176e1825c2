//! Every output checked before a transcode may succeed (`output-invalid` otherwise): it opens
//! under the input rules and holds the streams its plan put in it; a media file lasts as long
//! as the input streams it carries, within one video frame plus one audio frame; every
//! segment an HLS playlist names and every sheet a storyboard's cues name is there, and each
//! playlist adds up to the input's length; a poster is one picture.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dash;
use super::error::MediaError;
use super::ffi;
use super::hls;
use super::input;
use super::output::mpd_name;
use super::probe::{self, ProbeReport, StreamReport};
use crate::job::LoudnessChecked;
use crate::preset::Container;
use crate::stop::StopToken;

/// What the check found of one output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputCheck {
    /// The file that stands for the output: the media file, the picture, the top playlist
    /// or the storyboard's cues.
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Its streams: `h264 1280x720`, `aac 48000 Hz 2ch` (an HLS output's first segment's).
    pub streams: Vec<String>,
    /// The files its playlists or cues name, every one present.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files: usize,
    /// SSIM and PSNR per video rendition, when asked (`quality`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<crate::job::Quality>,
    /// What loudness normalisation did to each audio stream it carries (measured in the
    /// run, not read back from the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loudness: Vec<LoudnessChecked>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What one output must hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub video: bool,
    pub audio: bool,
    /// How long the input streams it carries last, when the input's timing is trusted.
    pub duration: Option<f64>,
    /// The input's video and audio frames, in seconds: the input's own lengths are only
    /// as exact as those (a decoder may trim or keep a last frame's padding).
    pub input_frames: (f64, f64),
    /// The key HLS segments are encrypted with (`METHOD=AES-128`), to read them back.
    pub key: Option<[u8; 16]>,
}

impl Expect {
    /// The expectation for an output carrying video and/or audio of `input`.
    pub fn of(input: &ProbeReport, video: bool, audio: bool, trusted: bool) -> Expect {
        let length = |s: Option<&StreamReport>| {
            s.and_then(|s| s.duration_seconds)
                .or(input.duration_seconds)
        };
        let mut carried = Vec::new();
        if video {
            carried.push(length(input.video()));
        }
        if audio {
            carried.push(length(input.audio().next()));
        }
        let duration = carried
            .into_iter()
            .flatten()
            .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
        let video_frame = input
            .video()
            .and_then(|v| v.frame_rate)
            .filter(|r| *r > 0.0)
            .map_or(0.0, |r| 1.0 / r);
        let audio_frame = input.audio().next().map_or(0.0, audio_frame_seconds);
        Expect {
            video,
            audio,
            duration: duration.filter(|_| trusted),
            input_frames: (
                if video { video_frame } else { 0.0 },
                if audio { audio_frame } else { 0.0 },
            ),
            key: None,
        }
    }
}

/// A CMAF output: its HLS side as [`check_hls`] checks it (each variant's init segment
/// named by `#EXT-X-MAP` and there), then the DASH MPD beside it: well-formed, one
/// Representation per variant, every file it names there.
fn check_cmaf(top: &Path, expect: &Expect) -> Result<OutputCheck, MediaError> {
    // The HLS check reads the audio renditions too (the master's `AUDIO` group).
    let mut check = check_hls(top, expect)?;
    let audio = hls_audio_renditions(top)?;
    let dir = top.parent().unwrap_or(Path::new("."));
    let mpd = mpd_beside(top);
    let text = read(&mpd)?;
    let named = dash::named_files(&text).map_err(|why| invalid(&mpd, why))?;
    let renditions = hls_variants(top)?.len() + audio.len();
    if named.len() != renditions {
        return Err(invalid(
            &mpd,
            format!(
                "it has {} Representations for {renditions} HLS renditions",
                named.len()
            ),
        ));
    }
    for representation in &named {
        if representation.files.len() < 2 {
            return Err(invalid(
                &mpd,
                format!("Representation {} names no segment", representation.id),
            ));
        }
        if let Some(missing) = representation.files.iter().find(|f| !dir.join(f).is_file()) {
            return Err(invalid(&mpd, format!("its segment {missing} is missing")));
        }
    }
    check.files += 1;
    Ok(check)
}

/// A CMAF output's MPD, beside its top playlist (`output::mpd_name`).
fn mpd_beside(top: &Path) -> PathBuf {
    let name = top.file_name().unwrap_or_default().to_string_lossy();
    top.with_file_name(mpd_name(&name))
}

/// Checks the output of `container` at `path` (its top file).
pub(crate) fn check(
    container: Container,
    path: &Path,
    expect: &Expect,
) -> Result<OutputCheck, MediaError> {
    match container {
        Container::Hls => check_hls(path, expect),
        Container::Cmaf => check_cmaf(path, expect),
        Container::Storyboard => check_storyboard(path),
        Container::Jpg => check_picture(path),
        _ => check_file(path, expect),
    }
}

fn invalid(path: &Path, what: impl Into<String>) -> MediaError {
    MediaError::OutputInvalid {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Probes an output under the input rules; any failure is the output's.
fn open(path: &Path) -> Result<ProbeReport, MediaError> {
    probe::probe(path).map_err(|e| invalid(path, format!("it cannot be read back: {e}")))
}

/// A media file: its streams, and its length as its packets (read to the end) measure it —
/// a header can promise more than the file holds.
fn check_file(path: &Path, expect: &Expect) -> Result<OutputCheck, MediaError> {
    let report = open(path)?;
    has_streams(path, &report, expect)?;
    let duration = Some(packet_extent(path)?);
    if let (Some(want), Some(got)) = (expect.duration, duration) {
        within_a_frame(path, &report, expect, want, got)?;
    }
    Ok(OutputCheck {
        path: path.to_path_buf(),
        duration_seconds: duration,
        streams: describe(&report),
        files: 0,
        quality: Vec::new(),
        loudness: Vec::new(),
    })
}

/// How far the file's packets reach, in seconds from its start: every packet read, the
/// first read error (a file cut short) an error of the output's.
fn packet_extent(path: &Path) -> Result<f64, MediaError> {
    use ffmpeg_next as ff;
    let mut input = input::open(path, &StopToken::new())
        .map_err(|e| invalid(path, format!("it cannot be read back: {e}")))?;
    let bases: Vec<(f64, f64)> = input
        .ctx
        .streams()
        .map(|s| {
            let tb = f64::from(s.time_base());
            (tb, s.start_time() as f64 * tb)
        })
        .collect();
    let mut packet = ff::Packet::empty();
    let mut end: f64 = 0.0;
    loop {
        match packet.read(&mut input.ctx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(e) => {
                return Err(invalid(path, format!("reading it back failed: {e}")));
            }
        }
        let Some(&(tb, start)) = bases.get(packet.stream()) else {
            continue;
        };
        if let Some(pts) = packet.pts() {
            let at = pts as f64 * tb - start.max(0.0);
            end = end.max(at + packet.duration().max(0) as f64 * tb);
        }
    }
    Ok(end)
}

/// The streams the plan put in it are there.
fn has_streams(path: &Path, report: &ProbeReport, expect: &Expect) -> Result<(), MediaError> {
    if expect.video && report.video().is_none() {
        return Err(invalid(path, "it has no video stream"));
    }
    if expect.audio && report.audio().next().is_none() {
        return Err(invalid(path, "it has no audio stream"));
    }
    Ok(())
}

/// `got` seconds is within one video frame plus one audio frame of `want` (the larger of the
/// input's and the output's frames).
fn within_a_frame(
    path: &Path,
    report: &ProbeReport,
    expect: &Expect,
    want: f64,
    got: f64,
) -> Result<(), MediaError> {
    let video_frame = report
        .video()
        .and_then(|v| v.frame_rate)
        .filter(|r| *r > 0.0)
        .map_or(0.0, |r| 1.0 / r)
        .max(expect.input_frames.0);
    // Two audio frames: the last one's padding, and the encoder's priming where the container
    // has no edit list to hide it (MPEG-TS, so HLS).
    let audio_frame = report
        .audio()
        .next()
        .map_or(0.0, audio_frame_seconds)
        .max(expect.input_frames.1);
    let tolerance = video_frame + 2.0 * audio_frame + 0.002;
    if (got - want).abs() <= tolerance {
        return Ok(());
    }
    Err(invalid(
        path,
        format!(
            "it lasts {got:.3} s where the input lasts {want:.3} s (more than one frame, \
             {tolerance:.3} s, apart)"
        ),
    ))
}

/// One frame of an audio codec, in seconds (the largest a codec writes).
fn audio_frame_seconds(a: &StreamReport) -> f64 {
    let samples = match a.codec.as_str() {
        "aac" => 1024.0,
        "mp3" | "mp2" => 1152.0,
        "opus" => 960.0,
        "ac3" | "eac3" => 1536.0,
        "vorbis" => 2048.0,
        "flac" => 4608.0,
        _ => 1.0,
    };
    samples / f64::from(a.sample_rate.unwrap_or(48_000).max(1))
}

/// A poster: one whole JPEG picture.
fn check_picture(path: &Path) -> Result<OutputCheck, MediaError> {
    let size = whole_jpeg(path)?;
    Ok(OutputCheck {
        path: path.to_path_buf(),
        duration_seconds: None,
        streams: vec![format!("mjpeg {}x{}", size.0, size.1)],
        files: 0,
        quality: Vec::new(),
        loudness: Vec::new(),
    })
}

/// A JPEG file from its start-of-image marker to its end-of-image marker, and its size
/// from its frame header. (The input rules refuse a file named `.jpg` as an image
/// sequence, so pictures are read here rather than through a demuxer.)
fn whole_jpeg(path: &Path) -> Result<(u32, u32), MediaError> {
    let bytes =
        std::fs::read(path).map_err(|e| invalid(path, format!("it cannot be read: {e}")))?;
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(invalid(path, "it is not a JPEG picture"));
    }
    if !bytes.ends_with(&[0xFF, 0xD9]) {
        return Err(invalid(
            path,
            "the JPEG picture is cut short (no end marker)",
        ));
    }
    jpeg_size(&bytes).ok_or_else(|| invalid(path, "the JPEG picture has no frame header"))
}

/// Width and height from a JPEG's first start-of-frame segment.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 9 < bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([bytes[at + 5], bytes[at + 6]]);
            let w = u16::from_be_bytes([bytes[at + 7], bytes[at + 8]]);
            return Some((u32::from(w), u32::from(h)));
        }
        at += 2 + length;
    }
    None
}

/// An HLS output: the top playlist (a master naming variants, or one media playlist); each
/// media playlist's segments there and adding up to the input's length.
/// An HLS output's media playlists: the master's variants, or the top playlist itself.
pub(crate) fn hls_variants(top: &Path) -> Result<Vec<PathBuf>, MediaError> {
    let dir = top.parent().unwrap_or(Path::new("."));
    let text = read(top)?;
    Ok(if text.contains("#EXT-X-STREAM-INF") {
        hls::uris(&text).map(|u| dir.join(u)).collect()
    } else {
        vec![top.to_path_buf()]
    })
}

/// The segments a media playlist names, in order, and its text.
pub(crate) fn hls_segments(variant: &Path) -> Result<(Vec<PathBuf>, String), MediaError> {
    let dir = variant.parent().unwrap_or(Path::new("."));
    let text = read(variant)?;
    Ok((hls::uris(&text).map(|u| dir.join(u)).collect(), text))
}

fn check_hls(top: &Path, expect: &Expect) -> Result<OutputCheck, MediaError> {
    check_hls_placed(
        top,
        expect,
        &|segment: &Path| Some(segment.to_path_buf()),
        true,
    )
}

/// An HLS output whose segments may lie elsewhere than beside its playlists (a split job's
/// pieces): `locate` says where the file a playlist names (as a path beside it) is, if
/// anywhere. Checked as [`check`] checks one written in place; segments that are not files
/// here (objects a worker's parts left in the scratch bucket, copied when published) only
/// need to be known to `locate`, and the first one's streams are read when it is here.
pub(crate) fn check_hls_placed(
    top: &Path,
    expect: &Expect,
    locate: &dyn Fn(&Path) -> Option<PathBuf>,
    local: bool,
) -> Result<OutputCheck, MediaError> {
    let variants = hls_variants(top)?;
    if variants.is_empty() {
        return Err(invalid(top, "the master playlist names no variant"));
    }
    // Alternate audio renditions carry the audio; the variants then carry none of it.
    let audio = hls_audio_renditions(top)?;
    let variant_expect = Expect {
        audio: expect.audio && audio.is_empty(),
        ..*expect
    };
    let audio_expect = Expect {
        video: false,
        audio: true,
        ..*expect
    };
    let (mut files, mut shortest, mut streams) = (0, None, Vec::new());
    let several = variants.len() + audio.len() > 1;
    let playlists = variants
        .iter()
        .map(|v| (v, &variant_expect))
        .chain(audio.iter().map(|a| (a, &audio_expect)));
    for (playlist, want) in playlists {
        let (count, length, report) = check_playlist(playlist, want, locate, local)?;
        shortest = Some(shortest.map_or(length, |s: f64| s.min(length)));
        // The first variant's streams, and each audio rendition's.
        if streams.is_empty() || !want.video {
            streams.extend(describe(&report));
        }
        files += count + usize::from(several);
    }
    Ok(OutputCheck {
        path: top.to_path_buf(),
        duration_seconds: shortest,
        streams,
        files,
        quality: Vec::new(),
        loudness: Vec::new(),
    })
}

/// One media playlist: every segment it names found, the first holding the streams
/// expected, its length within a frame of the input's. Its segment count, its length and
/// what the first segment holds (nothing, when the segments are not here).
fn check_playlist(
    playlist: &Path,
    expect: &Expect,
    locate: &dyn Fn(&Path) -> Option<PathBuf>,
    local: bool,
) -> Result<(usize, f64, ProbeReport), MediaError> {
    let (named, text) = hls_segments(playlist)?;
    let mut segments = Vec::with_capacity(named.len());
    for s in &named {
        let found = locate(s).filter(|p| !local || p.is_file());
        let Some(path) = found else {
            return Err(invalid(
                playlist,
                format!("its segment {} is missing", s.display()),
            ));
        };
        segments.push(path);
    }
    let Some(first) = segments.first() else {
        return Err(invalid(playlist, "the playlist names no segment"));
    };
    let (report, init) = first_streams(playlist, &text, first, expect)?;
    let length = hls::playlist_length(&text);
    if let Some(want) = expect.duration {
        within_a_frame(playlist, &report, expect, want, length)?;
    }
    Ok((segments.len() + usize::from(init), length, report))
}

/// The media playlists of a master's alternate audio renditions (`#EXT-X-MEDIA` of type
/// `AUDIO` with a `URI`).
pub(crate) fn hls_audio_renditions(top: &Path) -> Result<Vec<PathBuf>, MediaError> {
    let dir = top.parent().unwrap_or(Path::new("."));
    let text = read(top)?;
    Ok(hls::media_uris(&text, "AUDIO")
        .into_iter()
        .map(|uri| dir.join(uri))
        .collect())
}

/// The streams of a variant's first segment, when it is here: read through its init
/// segment (`#EXT-X-MAP`, which must be there) for fMP4, decrypted with the expected key
/// for `METHOD=AES-128`; and whether an init segment was counted.
fn first_streams(
    variant: &Path,
    text: &str,
    first: &Path,
    expect: &Expect,
) -> Result<(ProbeReport, bool), MediaError> {
    if let Some(init) = hls::init_segment(text) {
        let path = variant.parent().unwrap_or(Path::new(".")).join(&init);
        if !path.is_file() {
            return Err(invalid(
                variant,
                format!("its init segment {init} is missing"),
            ));
        }
        let report = open(&path)?;
        has_streams(&path, &report, expect)?;
        return Ok((report, true));
    }
    if !first.is_file() {
        return Ok((ProbeReport::default(), false));
    }
    let report = if text.contains("#EXT-X-KEY:METHOD=AES-128") {
        open_decrypted(variant, text, first, expect.key)?
    } else {
        open(first)?
    };
    has_streams(first, &report, expect)?;
    Ok((report, false))
}

/// Probes the first segment of an AES-128 playlist decrypted with `key` (the IV its
/// `#EXT-X-KEY` gives, else its media sequence number, as HLS says), from a hidden copy
/// beside it that goes again at once.
fn open_decrypted(
    variant: &Path,
    text: &str,
    first: &Path,
    key: Option<[u8; 16]>,
) -> Result<ProbeReport, MediaError> {
    let Some(key) = key else {
        return Err(invalid(
            variant,
            "its segments are encrypted and no key was given",
        ));
    };
    let bytes =
        std::fs::read(first).map_err(|e| invalid(first, format!("it cannot be read: {e}")))?;
    let plain = ffi::aes128_cbc_decrypt(&key, &hls::segment_iv(text), &bytes)
        .ok_or_else(|| invalid(first, "it does not decrypt with the job's key"))?;
    let name = first.file_name().unwrap_or_default().to_string_lossy();
    let copy = first.with_file_name(format!(".{name}.{}.check.ts", std::process::id()));
    std::fs::write(&copy, plain).map_err(|e| MediaError::io(&copy, e))?;
    let report = open(&copy);
    let _ = std::fs::remove_file(&copy);
    report.map_err(|_| invalid(first, "it does not read back once decrypted"))
}

/// A storyboard: every sheet its cues name is there; the cues' end is its length.
fn check_storyboard(cues: &Path) -> Result<OutputCheck, MediaError> {
    let dir = cues.parent().unwrap_or(Path::new("."));
    let text = read(cues)?;
    if !text.starts_with("WEBVTT") {
        return Err(invalid(cues, "it is not a WebVTT file"));
    }
    let mut sheets: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("#xywh=").map(|(file, _)| file))
        .collect();
    sheets.dedup();
    let Some(first) = sheets.first() else {
        return Err(invalid(cues, "it has no cue"));
    };
    if let Some(missing) = sheets.iter().find(|s| !dir.join(s).is_file()) {
        return Err(invalid(cues, format!("its sheet {missing} is missing")));
    }
    let size = whole_jpeg(&dir.join(first))?;
    let end = text
        .lines()
        .filter_map(|l| l.split_once(" --> ").map(|(_, end)| end))
        .next_back()
        .and_then(parse_timestamp);
    Ok(OutputCheck {
        path: cues.to_path_buf(),
        duration_seconds: end,
        streams: vec![format!("mjpeg {}x{}", size.0, size.1)],
        files: sheets.len(),
        quality: Vec::new(),
        loudness: Vec::new(),
    })
}

fn read(path: &Path) -> Result<String, MediaError> {
    std::fs::read_to_string(path).map_err(|e| invalid(path, format!("it cannot be read: {e}")))
}

/// `HH:MM:SS.mmm` in seconds.
fn parse_timestamp(t: &str) -> Option<f64> {
    let mut seconds = 0.0;
    for part in t.trim().split(':') {
        seconds = seconds * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(seconds)
}

/// A report's streams in a few words each.
fn describe(report: &ProbeReport) -> Vec<String> {
    report
        .streams
        .iter()
        .map(|s| match (s.width, s.sample_rate) {
            (Some(w), _) => format!("{} {w}x{}", s.codec, s.height.unwrap_or(0)),
            (_, Some(r)) => format!("{} {r} Hz {}ch", s.codec, s.channels.unwrap_or(0)),
            _ => s.codec.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("01:02:05.250"), Some(3725.25));
        assert_eq!(parse_timestamp("x"), None);
    }
}
