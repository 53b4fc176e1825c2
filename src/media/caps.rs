//! What this FFmpeg build can do: encoders, their options and formats. Presets are validated
//! against these answers at load, through [`Ffmpeg`].

use ffmpeg_next as ff;

use super::ffi;
use crate::preset::Capabilities;

/// The capabilities of the FFmpeg build ffarm links: pass `&Ffmpeg` wherever presets load.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ffmpeg;

impl Capabilities for Ffmpeg {
    fn encoder_available(&self, encoder: &str) -> bool {
        super::init();
        ff::encoder::find_by_name(encoder).is_some()
    }

    fn encoder_has_option(&self, encoder: &str, option: &str) -> bool {
        super::init();
        ffi::encoder_has_option(encoder, option)
    }

    fn encoder_pixel_formats(&self, encoder: &str) -> Vec<String> {
        super::init();
        ffi::encoder_pixel_formats(encoder)
    }

    fn encoder_sample_rates(&self, encoder: &str) -> Vec<u32> {
        super::init();
        ff::encoder::find_by_name(encoder)
            .and_then(|c| c.audio().ok())
            .and_then(|a| a.rates().map(|r| r.map(|v| v.max(0) as u32).collect()))
            .unwrap_or_default()
    }

    fn pixel_format_exists(&self, name: &str) -> bool {
        super::init();
        ffi::pixel_format_exists(name)
    }

    fn pixel_format_bits(&self, name: &str) -> Option<u32> {
        super::init();
        ffi::pixel_format_bits(name)
    }
}
