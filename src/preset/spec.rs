//! The preset file format as written in `presets/*.toml`, before validation. Unknown keys are
//! errors, so a misspelt field never silently falls back to a default.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A number or a string with a k/M suffix ("128k", "2.5M", 800000).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Bitrate {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetSpec {
    pub description: String,
    pub container: String,
    pub video: Option<VideoSpec>,
    pub audio: Option<AudioSpec>,
    pub hls: Option<HlsSpec>,
    pub poster: Option<PosterSpec>,
    pub storyboard: Option<StoryboardSpec>,
    pub subtitles: Option<SubtitleSpec>,
    /// An image composited on the video (`job::Watermark`'s fields; `bucket` required).
    pub watermark: Option<crate::job::Watermark>,
    /// Measure SSIM and PSNR of its video outputs against the source.
    pub quality: Option<bool>,
    /// `"auto"`, `"off"` or `{ segment_seconds = N }`; read as a value so that a mistake is
    /// reported against the field rather than as a parse error.
    pub chunking: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSpec {
    /// A codec name, or "copy" to pass the stream through untouched.
    pub codec: String,
    pub crf: Option<i64>,
    /// Fixed quantiser for codecs without CRF (mpeg4, mjpeg): 1 (best) to 31.
    pub quality: Option<i64>,
    pub bitrate: Option<Bitrate>,
    pub max_bitrate: Option<Bitrate>,
    pub buffer_size: Option<Bitrate>,
    pub encoder_preset: Option<toml::Value>,
    pub profile: Option<String>,
    pub max_width: Option<i64>,
    pub max_height: Option<i64>,
    pub max_fps: Option<f64>,
    pub pixel_format: Option<String>,
    pub keyframe_seconds: Option<f64>,
    /// What becomes of an HDR (PQ or HLG) input: "tonemap" (the default) or "keep".
    pub hdr: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    pub codec: String,
    pub bitrate: Option<Bitrate>,
    pub channels: Option<i64>,
    pub sample_rate: Option<i64>,
    /// `{ target, true_peak, range }` (LUFS, dBTP, LU), each optional; read as a value so
    /// that a mistake is reported against the field rather than as a parse error.
    pub loudness: Option<toml::Value>,
    /// Which tracks to keep, by language (`["eng", "und"]`).
    pub languages: Option<Vec<String>>,
    #[serde(default)]
    pub options: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsSpec {
    pub segment_seconds: Option<f64>,
    /// "aes-128" or "none".
    pub encryption: Option<String>,
    #[serde(default)]
    pub renditions: Vec<RenditionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenditionSpec {
    pub name: String,
    pub max_width: Option<i64>,
    pub max_height: Option<i64>,
    pub crf: Option<i64>,
    pub bitrate: Option<Bitrate>,
    pub max_bitrate: Option<Bitrate>,
    pub buffer_size: Option<Bitrate>,
    pub audio_bitrate: Option<Bitrate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosterSpec {
    /// Where to take the picture, as a share of the duration (default 10).
    pub at_percent: Option<f64>,
    /// Or at an absolute time in seconds.
    pub at_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryboardSpec {
    /// Seconds between thumbnails (default 5).
    pub interval_seconds: Option<f64>,
    /// Each thumbnail's width in pixels; its height keeps the picture's shape (default 160).
    pub tile_width: Option<i64>,
    /// Thumbnails across one sheet (default 10).
    pub columns: Option<i64>,
    /// Thumbnails down one sheet (default 10).
    pub rows: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtitleSpec {
    /// "copy": carry subtitle streams the container can hold; "text": convert the text ones
    /// to the container's text format (WebVTT renditions in HLS, mov_text in MP4/MOV,
    /// WebVTT in MKV/WebM).
    pub codec: Option<String>,
    /// Write every caption track as `NAME.LANG.vtt` beside the output.
    pub side_files: Option<bool>,
    /// Render the first caption track into the picture (libass).
    pub burn_in: Option<bool>,
}
