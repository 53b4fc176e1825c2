//! Opening untrusted media: local files only, self-contained demuxers only, sane limits.
//!
//! A media file must never make FFmpeg open another file or the network. Three locks keep it
//! so: the input is opened as a `file:` URL with `protocol_whitelist=file`; the demuxer must
//! be on [`ALLOWED_DEMUXERS`] (`format_whitelist`), which leaves out every playlist, manifest
//! and list format (hls, dash, concat, image2 patterns, …); and the demuxer FFmpeg would pick
//! is detected from the file's first bytes before anything is opened, so such files are
//! refused with a message naming the format.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use super::error::{MediaError, with_detail};
use super::ffi;
use super::stop::StopToken;

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
    refuse_unsafe_formats(path)?;

    let mut options = ff::Dictionary::new();
    options.set("protocol_whitelist", "file");
    options.set("format_whitelist", &ALLOWED_DEMUXERS.join(","));
    // Never follow QuickTime external data references (the default, stated for clarity).
    options.set("enable_drefs", "0");
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

fn refuse_unsafe_formats(path: &Path) -> Result<(), MediaError> {
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
        .any(|component| ALLOWED_DEMUXERS.contains(&component));
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
