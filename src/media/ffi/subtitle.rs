//! Subtitles: the ASS header text decoders make and encoders need, encoding one subtitle
//! with its size known, and freeing what a decoder allocated in a subtitle.

use std::ffi::{CStr, c_int};

use ff::ffi as sys;
use ffmpeg_next as ff;

/// The ASS header a subtitle decoder made (styles, play resolution), when it made one.
pub fn subtitle_header(ctx: &ff::codec::Context) -> Option<String> {
    // SAFETY: reads a NUL-terminated buffer the decoder owns, copied before returning.
    unsafe {
        let c = ctx.as_ptr();
        let header = (*c).subtitle_header;
        if header.is_null() || (*c).subtitle_header_size <= 0 {
            return None;
        }
        let bytes = std::slice::from_raw_parts(header, (*c).subtitle_header_size as usize);
        let text = CStr::from_bytes_until_nul(bytes)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned());
        Some(text)
    }
}

/// Gives a subtitle encoder (not yet opened) the ASS header its input was decoded with.
pub fn set_subtitle_header(ctx: &mut ff::codec::Context, header: &str) {
    let bytes = header.as_bytes();
    // SAFETY: the buffer is allocated with FFmpeg's allocator (the context frees it) and
    // NUL-terminated; any earlier header is freed first.
    unsafe {
        let c = ctx.as_mut_ptr();
        sys::av_freep(&mut (*c).subtitle_header as *mut *mut u8 as *mut std::ffi::c_void);
        let buf = sys::av_mallocz(bytes.len() + 1) as *mut u8;
        if buf.is_null() {
            (*c).subtitle_header_size = 0;
            return;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        (*c).subtitle_header = buf;
        (*c).subtitle_header_size = bytes.len() as c_int;
    }
}

/// Encodes `subtitle` into `out`, returning the bytes written (the bindings drop the size).
pub fn encode_subtitle(
    encoder: &mut ff::encoder::subtitle::Encoder,
    subtitle: &ff::Subtitle,
    out: &mut [u8],
) -> Result<usize, ff::Error> {
    // SAFETY: the encoder is open, `out` is a live buffer of the length given.
    let r = unsafe {
        sys::avcodec_encode_subtitle(
            encoder.as_mut_ptr(),
            out.as_mut_ptr(),
            out.len() as c_int,
            subtitle.as_ptr(),
        )
    };
    if r < 0 {
        Err(ff::Error::from(r))
    } else {
        Ok(r as usize)
    }
}

/// Frees the rectangles a decoder (or `add_rect`) put in `subtitle`, leaving it empty.
pub fn free_subtitle(subtitle: &mut ff::Subtitle) {
    // SAFETY: avsubtitle_free frees the rects and zeroes the struct; it is safe on an empty
    // subtitle.
    unsafe { sys::avsubtitle_free(subtitle.as_mut_ptr()) }
}
