//! The transcoding engine on FFmpeg's libraries: probe, the decode → filter → encode → mux
//! pipeline, HLS, progress and stop. Only this module links FFmpeg.

pub mod caps;
mod captions;
mod command;
mod dash;
mod encode;
mod error;
mod ffi;
mod geometry;
mod graph;
mod hdr;
mod hls;
mod input;
mod loudness;
mod meter;
mod output;
mod pipeline;
mod plan;
mod probe;
mod quality;
pub mod split;
mod storyboard;
mod verify;
mod watermark;

use std::path::Path;

pub use captions::{CaptionEdits, CaptionFile};
pub use command::equivalent_command;
pub use error::{ErrorClass, MediaError};
pub use hdr::HdrTransfer;
pub use input::{ALLOWED_DEMUXERS, MAX_DIMENSION, MAX_DURATION_SECONDS, MAX_PIXELS};
pub use output::{OutputFile, OutputKind, local_key_file};
pub use pipeline::{
    Edits, OutputSpec, TranscodeReport, transcode, transcode_many, transcode_many_then,
};
pub use plan::preset_for_extension;
pub use probe::{ProbeReport, StreamReport, probe};
pub use verify::OutputCheck;
pub use watermark::Overlay;

/// Initialises FFmpeg (idempotent). Every entry point calls it; callers may too.
pub fn init() {
    ffi::init();
}

/// FFmpeg takes paths as C strings: refuse the (rare) names that are not UTF-8 up front.
pub(crate) fn utf8_path(path: &Path) -> Result<&str, MediaError> {
    path.to_str().ok_or_else(|| MediaError::Open {
        path: path.into(),
        reason: "the file name is not valid UTF-8".into(),
    })
}
