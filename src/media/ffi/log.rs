//! FFmpeg's log, routed into `tracing` (target `ffmpeg`). The last lines at error level are
//! kept so an error can carry FFmpeg's own explanation, which is usually in the log rather
//! than in the error code.

use std::collections::VecDeque;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ffmpeg_next::ffi as sys;

struct LogLine {
    seq: u64,
    text: String,
}

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

static RECENT: Mutex<VecDeque<LogLine>> = Mutex::new(VecDeque::new());

const RECENT_LINES: usize = 32;

thread_local! {
    static PARTIAL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A position in FFmpeg's log; see [`errors_since`].
pub fn log_mark() -> u64 {
    LOG_SEQ.load(Ordering::SeqCst)
}

/// FFmpeg's error-level log lines since `mark`, joined with "; " (at most the last three).
pub fn errors_since(mark: u64) -> Option<String> {
    let recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    let lines: Vec<&str> = recent
        .iter()
        .filter(|l| l.seq > mark)
        .map(|l| l.text.as_str())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let start = lines.len().saturating_sub(3);
    Some(lines[start..].join("; "))
}

pub(super) unsafe extern "C" fn log_callback(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: *mut sys::__va_list_tag,
) {
    // SAFETY: FFmpeg calls this with its own valid arguments; the va_list is consumed once.
    unsafe {
        if level > sys::av_log_get_level() {
            return;
        }
        let mut buf = [0 as c_char; 1024];
        let mut print_prefix: c_int = 1;
        sys::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as c_int,
            &mut print_prefix,
        );
        let piece = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
        let class = class_name(avcl);
        let _ = std::panic::catch_unwind(|| emit(level, class, &piece));
    }
}

unsafe fn class_name(avcl: *mut c_void) -> Option<String> {
    if avcl.is_null() {
        return None;
    }
    // SAFETY: by FFmpeg's logging contract a non-null context starts with an AVClass pointer.
    unsafe {
        let class = *(avcl as *const *const sys::AVClass);
        if class.is_null() {
            return None;
        }
        let item_name = (*class).item_name?;
        let name = item_name(avcl);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

fn emit(level: c_int, class: Option<String>, piece: &str) {
    let line = PARTIAL.with(|p| {
        let mut p = p.borrow_mut();
        p.push_str(piece);
        if !p.ends_with('\n') {
            return None;
        }
        let line = p.trim().to_string();
        p.clear();
        Some(line)
    });
    let Some(line) = line else { return };
    if line.is_empty() {
        return;
    }
    // The formatted line starts with "[name @ 0x…] "; keep the name, drop the address.
    let text = match (line.strip_prefix('['), class) {
        (Some(rest), Some(class)) => match rest.split_once("] ") {
            Some((_, msg)) => format!("{class}: {msg}"),
            None => line.clone(),
        },
        _ => line.clone(),
    };
    match level {
        l if l <= sys::AV_LOG_ERROR => {
            tracing::error!(target: "ffmpeg", "{text}");
            let seq = LOG_SEQ.fetch_add(1, Ordering::SeqCst) + 1;
            let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back(LogLine { seq, text });
        }
        l if l <= sys::AV_LOG_WARNING => tracing::warn!(target: "ffmpeg", "{text}"),
        l if l <= sys::AV_LOG_INFO => tracing::info!(target: "ffmpeg", "{text}"),
        l if l <= sys::AV_LOG_DEBUG => tracing::debug!(target: "ffmpeg", "{text}"),
        _ => tracing::trace!(target: "ffmpeg", "{text}"),
    }
}
