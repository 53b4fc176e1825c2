//! The FFmpeg fields and calls that `ffmpeg-next` does not wrap. These files hold all of the
//! engine's `unsafe`; everything else in `media` goes through the safe bindings or through
//! the small safe functions here.

mod aes;
mod codec;
mod format;
mod hdr;
mod log;
mod streams;
mod subtitle;

use std::ffi::{CStr, c_char};
use std::sync::Once;

use ff::ffi as sys;
use ffmpeg_next as ff;

pub use aes::aes128_cbc_decrypt;
pub use codec::*;
pub use format::*;
pub use hdr::*;
pub use log::{errors_since, log_mark};
pub use streams::*;
pub use subtitle::*;

/// Initialises FFmpeg once per process and routes its log into `tracing` (target `ffmpeg`).
/// FFmpeg's own log level defaults to warnings; `FFARM_FFMPEG_LOG=info|verbose|debug` raises it.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail with the features we enable (no device registration).
        let _ = ff::init();
        let level = match std::env::var("FFARM_FFMPEG_LOG").as_deref() {
            Ok("quiet") => sys::AV_LOG_QUIET,
            Ok("error") => sys::AV_LOG_ERROR,
            Ok("info") => sys::AV_LOG_INFO,
            Ok("verbose") => sys::AV_LOG_VERBOSE,
            Ok("debug") => sys::AV_LOG_DEBUG,
            _ => sys::AV_LOG_WARNING,
        };
        // SAFETY: plain setters of FFmpeg's global log configuration; the callback is a
        // `extern "C"` function that never unwinds.
        unsafe {
            sys::av_log_set_level(level);
            sys::av_log_set_callback(Some(log::log_callback));
        }
    });
}

fn cstr(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: FFmpeg returns NUL-terminated static or context-owned strings.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}
