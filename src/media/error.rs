//! The engine's error type: what went wrong, with the file, stream or codec it concerns, and
//! whether trying again could help.

use std::path::PathBuf;

/// How a failure should be treated by whoever runs the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input itself is unusable (malformed, refused, absurd): retrying cannot help.
    InvalidInput,
    /// The request cannot be met with this input and preset (e.g. copying a codec the
    /// container cannot hold): retrying cannot help.
    Unsupported,
    /// Something in the environment failed (disk full, I/O error): a retry may succeed.
    Transient,
    /// The run was stopped on request; not a failure.
    Stopped,
}

/// An engine failure. Every variant names what it concerns and carries FFmpeg's own reason
/// where FFmpeg gave one.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },
    #[error("{path}: the file is empty (0 bytes)")]
    Empty { path: PathBuf },
    #[error(
        "{path}: refused: FFmpeg detects this file as '{format}' ({long_name}), a \
         playlist/manifest/list format that can make FFmpeg open other files or the network; \
         only self-contained media files are accepted"
    )]
    Refused {
        path: PathBuf,
        format: String,
        long_name: String,
    },
    #[error("{path}: not a media file FFmpeg can read: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path}: {what}")]
    Limits { path: PathBuf, what: String },
    /// The streams run on past what the input may hold: timestamps that jump far beyond the
    /// declared duration (a damaged or hostile file), or past the longest input accepted.
    #[error("{path}: {what}")]
    Overrun { path: PathBuf, what: String },
    #[error("{path}: nothing to transcode: {why}")]
    NoStreams { path: PathBuf, why: String },
    #[error("{path}: decoding input stream #{stream} ({codec}) failed: {reason}")]
    Decode {
        path: PathBuf,
        stream: usize,
        codec: String,
        reason: String,
    },
    #[error("{path}: reading the input failed: {reason}")]
    Demux { path: PathBuf, reason: String },
    #[error("encoder {codec}: {reason}")]
    Encode { codec: String, reason: String },
    #[error("filter graph '{graph}': {reason}")]
    Filter { graph: String, reason: String },
    #[error("{path}: writing the output failed: {reason}")]
    Mux { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A split job's piece (a part's source or result, the audio, the layout) is missing or
    /// does not belong to the layout being assembled.
    #[error("{path}: not a usable piece of this split job: {reason}")]
    Part { path: PathBuf, reason: String },
    /// A job's clip does not fit inside the input.
    #[error("{path}: the clip does not fit the input: {what}")]
    Clip { path: PathBuf, what: String },
    /// A watermark's image cannot be used (not there, not a picture, too big).
    #[error("{path}: unusable watermark: {what}")]
    Watermark { path: PathBuf, what: String },
    /// The input has no audio track in any language the job or preset asks for.
    #[error("{path}: no audio track in the languages asked for: {what}")]
    AudioLanguage { path: PathBuf, what: String },
    /// A caption file cannot be used (not there, not text subtitles).
    #[error("{path}: unusable captions: {what}")]
    Captions { path: PathBuf, what: String },
    #[error("{path}: the output is not whole: {what}")]
    OutputInvalid { path: PathBuf, what: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("stopped on request")]
    Stopped,
}

impl MediaError {
    /// A stable, machine-readable code for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::NotFound { .. } => "input-not-found",
            MediaError::Empty { .. } => "input-empty",
            MediaError::Refused { .. } => "input-refused",
            MediaError::Open { .. } => "input-unreadable",
            MediaError::Limits { .. } => "input-limits",
            MediaError::Overrun { .. } => "input-overrun",
            MediaError::NoStreams { .. } => "input-no-streams",
            MediaError::Decode { .. } => "decode-failed",
            MediaError::Demux { .. } => "demux-failed",
            MediaError::Encode { .. } => "encode-failed",
            MediaError::Filter { .. } => "filter-failed",
            MediaError::Mux { .. } => "mux-failed",
            MediaError::Unsupported(_) => "unsupported",
            MediaError::Clip { .. } => "clip-out-of-range",
            MediaError::Watermark { .. } => "watermark-invalid",
            MediaError::AudioLanguage { .. } => "audio-language-missing",
            MediaError::Captions { .. } => "captions-invalid",
            MediaError::Io { .. } => "io-error",
            MediaError::Part { .. } => "split-part-unusable",
            MediaError::OutputInvalid { .. } => "output-invalid",
            MediaError::Internal(_) => "internal",
            MediaError::Stopped => "stopped",
        }
    }

    /// Whether the failure is about the input, the request, the environment, or a stop.
    pub fn class(&self) -> ErrorClass {
        match self {
            MediaError::NotFound { .. }
            | MediaError::Empty { .. }
            | MediaError::Refused { .. }
            | MediaError::Open { .. }
            | MediaError::Limits { .. }
            | MediaError::Overrun { .. }
            | MediaError::NoStreams { .. }
            | MediaError::Decode { .. }
            | MediaError::Demux { .. }
            | MediaError::Watermark { .. }
            | MediaError::AudioLanguage { .. }
            | MediaError::Captions { .. } => ErrorClass::InvalidInput,
            MediaError::Unsupported(_)
            | MediaError::Clip { .. }
            | MediaError::Encode { .. }
            | MediaError::Filter { .. } => ErrorClass::Unsupported,
            MediaError::Mux { .. }
            | MediaError::Io { .. }
            | MediaError::Part { .. }
            | MediaError::OutputInvalid { .. }
            | MediaError::Internal(_) => ErrorClass::Transient,
            MediaError::Stopped => ErrorClass::Stopped,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MediaError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Joins FFmpeg's error code text with the detail it logged just before, e.g.
/// "Invalid data found when processing input (mov: moov atom not found)".
pub(crate) fn with_detail(error: &ffmpeg_next::Error, detail: Option<String>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!("{error} ({d})"),
        _ => error.to_string(),
    }
}
