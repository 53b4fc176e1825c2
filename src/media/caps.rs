//! What this FFmpeg build can do: encoders, their options and formats, and which codecs a
//! muxer can hold. Presets are validated against these answers at load.

use ffmpeg_next as ff;

use super::ffi;

/// Whether this FFmpeg build has the named encoder.
pub fn encoder_available(encoder: &str) -> bool {
    super::init();
    ff::encoder::find_by_name(encoder).is_some()
}

/// Whether the encoder accepts `option` (its own options or the generic codec ones).
pub fn encoder_has_option(encoder: &str, option: &str) -> bool {
    super::init();
    ffi::encoder_has_option(encoder, option)
}

/// The pixel formats the encoder takes; empty when it does not say.
pub fn encoder_pixel_formats(encoder: &str) -> Vec<String> {
    super::init();
    ffi::encoder_pixel_formats(encoder)
}

/// The sample rates the encoder takes; empty when it takes any.
pub fn encoder_sample_rates(encoder: &str) -> Vec<u32> {
    super::init();
    ff::encoder::find_by_name(encoder)
        .and_then(|c| c.audio().ok())
        .and_then(|a| a.rates().map(|r| r.map(|v| v.max(0) as u32).collect()))
        .unwrap_or_default()
}

/// Whether FFmpeg knows the pixel format.
pub fn pixel_format_exists(name: &str) -> bool {
    super::init();
    ffi::pixel_format_exists(name)
}
