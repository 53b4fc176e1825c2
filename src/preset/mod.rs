//! Presets: named recipes (`presets/NAME.toml`) that say what a transcode produces. Shipped
//! presets are built into the binary; a presets directory may add or override some. Every
//! file is validated at load, with errors naming the file, the field and the problem.

mod capabilities;
mod codecs;
mod spec;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};

use crate::job::{Chunking, Watermark};

pub use capabilities::Capabilities;
pub use codecs::{AudioCodec, Container, QualityScale, SpeedScale, VideoCodec, X264_PRESETS};

/// The presets shipped with ffarm, compiled in from `presets/`.
static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/presets");

/// The `dst_format` values a job may name instead of a preset; each has a preset of the
/// same name whose container writes that format.
pub const FORMAT_DEFAULTS: [&str; 12] = [
    "mp4", "mov", "mkv", "webm", "flv", "avi", "ts", "m3u8", "mp3", "m4a", "ogg", "wav",
];

/// What a preset does with text subtitles (captions): converted into the output, written
/// beside it, burnt into the picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Captions {
    /// Text subtitle streams converted to the container's text format: WebVTT renditions
    /// in HLS, mov_text in MP4/MOV, WebVTT in MKV/WebM.
    pub convert: bool,
    /// Every caption track also written as `NAME.LANG.vtt` beside the output.
    pub side_files: bool,
    /// The first caption track rendered into every video rendition's picture.
    pub burn_in: bool,
}

impl Captions {
    pub fn is_none(&self) -> bool {
        *self == Captions::default()
    }
}

/// A validated preset.
#[derive(Debug, Clone, Serialize)]
pub struct Preset {
    pub name: String,
    pub description: String,
    pub container: Container,
    pub video: Option<VideoOutput>,
    pub audio: Option<AudioOutput>,
    pub hls: Option<HlsLadder>,
    pub poster: Option<PosterAt>,
    pub storyboard: Option<Storyboard>,
    pub copy_subtitles: bool,
    /// The audio tracks kept, by language (canonical ISO 639 codes, `und` for tracks that
    /// name none), in order; empty: the container's rule (every track, or the main one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audio_languages: Vec<String>,
    /// What becomes of text subtitles beyond copying (decision 0080).
    #[serde(skip_serializing_if = "Captions::is_none")]
    pub captions: Captions,
    /// An image composited on every video rendition (a job's own watermark replaces it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Watermark>,
    /// Its jobs measure SSIM and PSNR of their video against the source.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quality: bool,
    /// Whether jobs with this preset may be split, when the job does not say; `None`: the
    /// file does not say (jobs get `auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunking: Option<Chunking>,
    /// Where the preset came from: "builtin" or a file path.
    pub origin: String,
}

impl Preset {
    /// Whether its jobs can be split into parts (see [`unsplittable`]).
    pub fn can_split(&self) -> bool {
        self.why_unsplittable().is_none()
    }

    /// Whether its HLS segments are encrypted with the job's key.
    pub fn encrypts(&self) -> bool {
        self.hls.as_ref().is_some_and(|h| h.encryption.is_some())
    }

    /// Why its jobs cannot be split, if they cannot: "copies the video stream", …
    pub fn why_unsplittable(&self) -> Option<&'static str> {
        unsplittable(self.container, &self.video)
            .or((self.container == Container::Cmaf).then_some("writes CMAF (such jobs run whole)"))
            .or(self
                .encrypts()
                .then_some("encrypts its segments (such jobs run whole)"))
            .or(self
                .watermark
                .as_ref()
                .map(|_| "composites a watermark (such jobs run whole)"))
            .or(self
                .quality
                .then_some("measures quality figures (such jobs run whole)"))
            .or(
                (self.container == Container::Hls && self.audio_languages.len() > 1).then_some(
                    "keeps audio in several languages as HLS renditions (such jobs run whole)",
                ),
            )
            .or((!self.captions.is_none())
                .then_some("converts or burns in captions (such jobs run whole)"))
    }

    /// Which of the input's streams it copies as they are ("video", "audio", "video and
    /// audio"), if any: a copied stream can only be cut at its own keyframes.
    pub fn copies_streams(&self) -> Option<&'static str> {
        let video = matches!(self.video, Some(VideoOutput::Copy));
        let audio = matches!(self.audio, Some(AudioOutput::Copy));
        match (video, audio) {
            (true, true) => Some("video and audio"),
            (true, false) => Some("video"),
            (false, true) => Some("audio"),
            (false, false) => None,
        }
    }

    /// A job's chunking, decided once when the job is made: what the job asks for (its
    /// request or trigger rule) if anything, else what the preset says, else `auto`.
    pub fn resolve_chunking(&self, asked: Option<Chunking>) -> Chunking {
        asked.or(self.chunking).unwrap_or_default()
    }
}

/// Why jobs writing `container` with `video` cannot be split into parts, if they cannot: only
/// video encoded into a moving picture can (a stream copy has nothing to encode in parts, a
/// still picture is one frame).
pub fn unsplittable(container: Container, video: &Option<VideoOutput>) -> Option<&'static str> {
    match video {
        _ if container.picture() => Some("makes a still picture"),
        Some(VideoOutput::Copy) => Some("copies the video stream"),
        None => Some("has no video"),
        Some(VideoOutput::Encode(_)) => None,
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
#[allow(clippy::large_enum_variant)] // one per preset; boxing would only add indirection
pub enum VideoOutput {
    Copy,
    Encode(VideoEncoding),
}

#[derive(Debug, Clone, Serialize)]
pub struct VideoEncoding {
    pub codec: VideoCodec,
    pub rate: RateControl,
    pub encoder_preset: Option<String>,
    pub profile: Option<String>,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    pub max_fps: Option<f64>,
    pub pixel_format: String,
    pub keyframe_seconds: f64,
    /// What becomes of an HDR input.
    pub hdr: HdrMode,
    /// Further encoder options, as `-key value` on the command line.
    pub options: BTreeMap<String, String>,
}

/// What an encoding does with an HDR input (PQ or HLG transfer): the preset's `hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HdrMode {
    /// Tone-mapped to BT.709 SDR, so that SDR screens show it as it was meant to look rather
    /// than grey and flat.
    #[default]
    Tonemap,
    /// Kept HDR: the input's transfer, primaries and matrix, and its mastering-display and
    /// light-level metadata. Needs a codec and a pixel format that carry it.
    Keep,
}

impl HdrMode {
    /// The default, which a written-down plan leaves out.
    pub fn is_tonemap(&self) -> bool {
        *self == HdrMode::Tonemap
    }
}

/// Rate control: constant quality (`crf` or `quality`), a target `bitrate`, and an optional
/// VBV cap (`max_bitrate` with `buffer_size`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RateControl {
    pub crf: Option<u32>,
    pub quality: Option<u32>,
    pub bitrate: Option<u64>,
    pub max_bitrate: Option<u64>,
    pub buffer_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum AudioOutput {
    Copy,
    Encode(AudioEncoding),
}

#[derive(Debug, Clone, Serialize)]
pub struct AudioEncoding {
    pub codec: AudioCodec,
    pub bitrate: Option<u64>,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
    /// EBU R128 loudness normalisation, when the preset asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness: Option<Loudness>,
    pub options: BTreeMap<String, String>,
}

/// Where EBU R128 normalisation brings the audio: integrated loudness `target` (LUFS), at
/// most `true_peak` (dBTP), and a loudness range of at most `range` (LU) before the gain may
/// no longer be one linear step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    pub target: f64,
    pub true_peak: f64,
    pub range: f64,
}

impl Loudness {
    /// -16 LUFS, -1.5 dBTP, 11 LU: the level streaming and podcast platforms play at.
    pub const DEFAULT: Loudness = Loudness {
        target: -16.0,
        true_peak: -1.5,
        range: 11.0,
    };
}

/// HLS output: segment length and the renditions. No renditions means one rendition
/// described by the preset's `[video]`, written as a single media playlist.
#[derive(Debug, Clone, Serialize)]
pub struct HlsLadder {
    pub segment_seconds: f64,
    pub renditions: Vec<Rendition>,
    /// Segments encrypted with the job's key (decision 0082).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<HlsEncryption>,
}

/// How HLS segments are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HlsEncryption {
    /// Whole segments, AES-128-CBC (`#EXT-X-KEY:METHOD=AES-128`), one key per job.
    #[serde(rename = "aes-128")]
    Aes128,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rendition {
    pub name: String,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    pub rate: RateControl,
    pub audio_bitrate: Option<u64>,
}

/// Where a poster frame is taken.
/// A storyboard's grid: a thumbnail every `interval_seconds`, `tile_width` wide, placed
/// `columns` × `rows` to a sheet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Storyboard {
    pub interval_seconds: f64,
    pub tile_width: u32,
    pub columns: u32,
    pub rows: u32,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PosterAt {
    Percent(f64),
    Seconds(f64),
}

/// A preset that could not be loaded or found.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("{file}: {field}: {problem}")]
    Invalid {
        file: String,
        field: String,
        problem: String,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown preset '{name}'; known presets: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("unknown dst_format '{format}'; known formats: {}", FORMAT_DEFAULTS.join(", "))]
    UnknownFormat { format: String },
}

impl PresetError {
    pub fn code(&self) -> &'static str {
        match self {
            PresetError::Invalid { .. } | PresetError::Parse { .. } | PresetError::Io { .. } => {
                "invalid-preset"
            }
            PresetError::Unknown { .. } => "unknown-preset",
            PresetError::UnknownFormat { .. } => "unknown-format",
        }
    }
}

/// The loaded presets, by name.
#[derive(Debug, Clone)]
pub struct Presets {
    by_name: BTreeMap<String, Preset>,
}

impl Presets {
    /// The presets shipped in the binary, checked against what `caps` can encode.
    pub fn builtin(caps: &dyn Capabilities) -> Result<Presets, PresetError> {
        Self::load(None, caps)
    }

    /// The shipped presets plus every `*.toml` in `dir` (a file there replaces the shipped
    /// preset of the same name), each checked against what `caps` can encode.
    pub fn load(dir: Option<&Path>, caps: &dyn Capabilities) -> Result<Presets, PresetError> {
        let mut by_name = Self::shipped(caps)?;
        if let Some(dir) = dir {
            by_name.extend(Self::from_dir(dir, caps)?);
        }
        let presets = Presets { by_name };
        presets.check_format_defaults()?;
        Ok(presets)
    }

    /// The presets compiled into the binary, in file order, each marked "builtin".
    fn shipped(caps: &dyn Capabilities) -> Result<BTreeMap<String, Preset>, PresetError> {
        let mut by_name = BTreeMap::new();
        let mut files: Vec<_> = BUILTIN.files().collect();
        files.sort_by_key(|f| f.path());
        for file in files {
            let Some(name) = toml_stem(file.path()) else {
                continue;
            };
            let origin = format!("presets/{}", file.path().display());
            let text = file.contents_utf8().ok_or_else(|| PresetError::Parse {
                file: origin.clone(),
                message: "not UTF-8".into(),
            })?;
            let preset = Self::parse(&name, &origin, text, caps)?;
            by_name.insert(
                name,
                Preset {
                    origin: "builtin".into(),
                    ..preset
                },
            );
        }
        Ok(by_name)
    }

    /// Every `*.toml` in `dir`, in file-name order, each marked with its path.
    fn from_dir(
        dir: &Path,
        caps: &dyn Capabilities,
    ) -> Result<BTreeMap<String, Preset>, PresetError> {
        let io = |e| PresetError::Io {
            file: dir.display().to_string(),
            source: e,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        let mut by_name = BTreeMap::new();
        for path in paths {
            let Some(name) = toml_stem(&path) else {
                continue;
            };
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| PresetError::Io {
                file: origin.clone(),
                source: e,
            })?;
            let preset = Self::parse(&name, &origin, &text, caps)?;
            by_name.insert(name, preset);
        }
        Ok(by_name)
    }

    /// Parses one preset file's text and validates it against what `caps` can encode.
    pub fn parse(
        name: &str,
        origin: &str,
        text: &str,
        caps: &dyn Capabilities,
    ) -> Result<Preset, PresetError> {
        validate::parse(name, origin, text, caps)
    }

    pub fn get(&self, name: &str) -> Result<&Preset, PresetError> {
        self.by_name.get(name).ok_or_else(|| PresetError::Unknown {
            name: name.to_string(),
            known: self.by_name.keys().cloned().collect(),
        })
    }

    /// The default preset for a `dst_format` ("mp4", "m3u8", …).
    pub fn for_format(&self, format: &str) -> Result<&Preset, PresetError> {
        let format = format.trim_start_matches('.').to_ascii_lowercase();
        if !FORMAT_DEFAULTS.contains(&format.as_str()) {
            return Err(PresetError::UnknownFormat { format });
        }
        self.get(&format)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Preset> {
        self.by_name.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    fn check_format_defaults(&self) -> Result<(), PresetError> {
        for format in FORMAT_DEFAULTS {
            let preset = self
                .by_name
                .get(format)
                .ok_or_else(|| PresetError::Invalid {
                    file: format!("presets/{format}.toml"),
                    field: "(file)".into(),
                    problem: format!(
                        "missing: every dst_format needs a default preset named '{format}'"
                    ),
                })?;
            if preset.container.extension() != format {
                return Err(PresetError::Invalid {
                    file: preset.origin.clone(),
                    field: "container".into(),
                    problem: format!(
                        "the default preset for dst_format '{format}' must write {format}, not {}",
                        preset.container
                    ),
                });
            }
        }
        Ok(())
    }
}

fn toml_stem(path: &Path) -> Option<String> {
    (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_string))?
}
