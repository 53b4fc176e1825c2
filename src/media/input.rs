//! Opening untrusted media: local files only, self-contained demuxers only, sane limits.
//!
//! A media file must never make FFmpeg open another file or the network. Three locks keep it
//! so: the input is opened as a `file:` URL with `protocol_whitelist=file`; the demuxer must
//! be on [`ALLOWED_DEMUXERS`] (`format_whitelist`), which leaves out every playlist, manifest
//! and list format (hls, dash, concat, image2 patterns, …); and the demuxer FFmpeg would pick
//! is detected from the file's first bytes before anything is opened, so such files are
//! refused with a message naming the format.
//!
//! The limits are checked twice: what the container declares when it is opened, and what
//! the streams really hold while they are read ([`OutputLimit`]), since a header can lie.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use super::error::{MediaError, with_detail};
use super::ffi::{self, DurationSource};
use crate::stop::StopToken;

/// Demuxers that read only the file they are given. Names as FFmpeg spells them; FFmpeg
/// matches each against the components of a demuxer's name ("mov" matches
/// "mov,mp4,m4a,3gp,3g2,mj2").
pub const ALLOWED_DEMUXERS: &[&str] = &[
    "mov",
    "matroska",
    "avi",
    "flv",
    "mpegts",
    "mpeg",
    "mpegvideo",
    "m4v",
    "h264",
    "hevc",
    "obu",
    "ivf",
    "asf",
    "mxf",
    "dv",
    "nut",
    "gif",
    "yuv4mpegpipe",
    "mp3",
    "aac",
    "ac3",
    "eac3",
    "dts",
    "flac",
    "ogg",
    "wav",
    "w64",
    "aiff",
    "caf",
    "amr",
    "wv",
    "ape",
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
];

/// Demuxers for caption files (decision 0080): text formats that read only the file they
/// are given. Accepted only where a caption file is expected, never for media.
pub const CAPTION_DEMUXERS: &[&str] = &["srt", "ass", "webvtt"];

/// The largest width or height accepted.
pub const MAX_DIMENSION: u32 = 16_384;
/// The most pixels per frame accepted (8192²; 8K UHD is 33 Mpx).
pub const MAX_PIXELS: u64 = 8_192 * 8_192;
/// The longest input accepted: two days.
pub const MAX_DURATION_SECONDS: f64 = 48.0 * 3600.0;
/// The most streams accepted in one input.
pub const MAX_STREAMS: usize = 64;

/// How many leading bytes are used to detect the format before opening.
const DETECT_BYTES: usize = 1 << 20;

/// An opened input file.
pub struct Input {
    pub(crate) ctx: ff::format::context::Input,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
}

/// Opens `path` for reading under the rules above; `stop` aborts a blocking open or read.
pub fn open(path: &Path, stop: &StopToken) -> Result<Input, MediaError> {
    open_with(path, stop, ALLOWED_DEMUXERS)
}

/// Opens a caption file under the same rules as media, with [`CAPTION_DEMUXERS`] as the
/// demuxer allow-list.
pub(crate) fn open_captions(path: &Path, stop: &StopToken) -> Result<Input, MediaError> {
    open_with(path, stop, CAPTION_DEMUXERS)
}

fn open_with(path: &Path, stop: &StopToken, demuxers: &[&str]) -> Result<Input, MediaError> {
    super::init();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MediaError::NotFound { path: path.into() });
        }
        Err(e) => return Err(MediaError::io(path, e)),
    };
    if !meta.is_file() {
        return Err(MediaError::Open {
            path: path.into(),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() == 0 {
        return Err(MediaError::Empty { path: path.into() });
    }
    super::utf8_path(path)?;
    refuse_unsafe_formats(path, demuxers)?;

    let mut options = ff::Dictionary::new();
    options.set("protocol_whitelist", "file");
    options.set("format_whitelist", &demuxers.join(","));
    // Never follow QuickTime external data references (the default, stated for clarity).
    options.set("enable_drefs", "0");
    // Read every program table of a transport stream, as ffmpeg and ffprobe do: without it
    // the demuxer settles on the streams (and a duration) from the first tables it sees.
    options.set("scan_all_pmts", "1");
    let url = file_url(path);
    let mark = ffi::log_mark();
    let stop = stop.clone();
    let ctx =
        ff::format::input_with_interrupt_and_dictionary(&url, move || stop.is_stopped(), options)
            .map_err(|e| match e {
            ff::Error::Exit => MediaError::Stopped,
            e => MediaError::Open {
                path: path.into(),
                reason: with_detail(&e, ffi::errors_since(mark)),
            },
        })?;
    let input = Input {
        ctx,
        path: path.into(),
        size: meta.len(),
    };
    check_limits(&input)?;
    Ok(input)
}

/// The URL FFmpeg is given: always the `file:` protocol, so a name like `http:x.mp4` or
/// `concat:a|b` is just a file name.
fn file_url(path: &Path) -> PathBuf {
    let mut url = std::ffi::OsString::from("file:");
    url.push(path.as_os_str());
    PathBuf::from(url)
}

fn refuse_unsafe_formats(path: &Path, demuxers: &[&str]) -> Result<(), MediaError> {
    let mut head = Vec::with_capacity(64 * 1024);
    File::open(path)
        .and_then(|f| f.take(DETECT_BYTES as u64).read_to_end(&mut head))
        .map_err(|e| MediaError::io(path, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some((format, long_name)) = ffi::detect_demuxer(name, &head) else {
        return Ok(());
    };
    let allowed = format
        .split(',')
        .any(|component| demuxers.contains(&component));
    if allowed {
        Ok(())
    } else {
        Err(MediaError::Refused {
            path: path.into(),
            format,
            long_name,
        })
    }
}

fn check_limits(input: &Input) -> Result<(), MediaError> {
    let limit = |what: String| MediaError::Limits {
        path: input.path.clone(),
        what,
    };
    let streams = input.ctx.nb_streams() as usize;
    if streams > MAX_STREAMS {
        return Err(limit(format!(
            "{streams} streams; at most {MAX_STREAMS} are accepted"
        )));
    }
    let duration = input.ctx.duration();
    if duration > 0 {
        let seconds = duration as f64 / f64::from(ff::ffi::AV_TIME_BASE);
        if seconds > MAX_DURATION_SECONDS {
            return Err(limit(format!(
                "duration {seconds:.0} s exceeds the limit of {MAX_DURATION_SECONDS:.0} s"
            )));
        }
    }
    for stream in input.ctx.streams() {
        let facts = ffi::stream_facts(&stream);
        if facts.medium != Some("video") {
            continue;
        }
        let (w, h) = (facts.width, facts.height);
        if w > MAX_DIMENSION || h > MAX_DIMENSION || u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(limit(format!(
                "video stream #{} is {w}x{h}; the limit is {MAX_DIMENSION} per side and \
                 {MAX_PIXELS} pixels per frame",
                stream.index()
            )));
        }
    }
    Ok(())
}

/// How much media time a run may produce before it fails as an overrun ([`MediaError::Overrun`]).
///
/// A header-declared duration is trusted with a generous margin — twice the duration plus a
/// minute — because real files end within a frame or two of what their header says, while a
/// file whose timestamps jump far past it (a patched or damaged header) would otherwise make
/// the engine run on, and constant-rate outputs fill every gap. Durations FFmpeg only
/// estimates (from a transport stream's first and last timestamps, or from the bit rate) are
/// not trusted this way: concatenated and broadcast captures restart or jump their clocks, so
/// their estimate can be far from what they hold. Every run stops at
/// [`MAX_DURATION_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutputLimit {
    pub seconds: f64,
    /// The declared duration the limit derives from, when it does.
    pub declared: Option<f64>,
}

impl OutputLimit {
    pub fn new(duration: Option<f64>, source: DurationSource) -> OutputLimit {
        match duration.filter(|d| *d > 0.0 && source == DurationSource::Header) {
            Some(d) => OutputLimit {
                seconds: (2.0 * d + 60.0).min(MAX_DURATION_SECONDS),
                declared: Some(d),
            },
            None => OutputLimit {
                seconds: MAX_DURATION_SECONDS,
                declared: None,
            },
        }
    }

    /// Fails when output reaching `at` seconds of media time is past the limit.
    pub fn check(&self, path: &Path, at: f64) -> Result<(), MediaError> {
        if at <= self.seconds {
            return Ok(());
        }
        let what = match self.declared {
            Some(d) => format!(
                "the streams run past the declared duration: the output reached {at:.1} s \
                 where the container declares {d:.2} s (timestamps jump; a damaged or hostile \
                 file)"
            ),
            None => format!(
                "the streams run past {MAX_DURATION_SECONDS:.0} s, the longest input accepted \
                 (the output reached {at:.1} s)"
            ),
        };
        Err(MediaError::Overrun {
            path: path.into(),
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_duration_bounds_the_output_generously() {
        let limit = OutputLimit::new(Some(2.0), DurationSource::Header);
        assert_eq!(limit.seconds, 64.0);
        let path = Path::new("x.mkv");
        assert!(limit.check(path, 2.05).is_ok());
        assert!(limit.check(path, 64.0).is_ok());
        let err = limit.check(path, 100_001.0).unwrap_err();
        assert_eq!(err.code(), "input-overrun");
        assert!(err.to_string().contains("declares 2.00 s"), "{err}");
        // Never beyond the longest input accepted.
        let long = OutputLimit::new(Some(40.0 * 3600.0), DurationSource::Header);
        assert_eq!(long.seconds, MAX_DURATION_SECONDS);
    }

    #[test]
    fn estimated_or_unknown_durations_only_get_the_absolute_limit() {
        for limit in [
            OutputLimit::new(Some(2.0), DurationSource::Timestamps),
            OutputLimit::new(Some(2.0), DurationSource::BitRate),
            OutputLimit::new(None, DurationSource::Header),
        ] {
            assert_eq!(limit.seconds, MAX_DURATION_SECONDS);
            assert!(limit.check(Path::new("x.ts"), 100_001.0).is_ok());
            let err = limit
                .check(Path::new("x.ts"), MAX_DURATION_SECONDS + 1.0)
                .unwrap_err();
            assert!(err.to_string().contains("longest input"), "{err}");
        }
    }
}
