//! The containers and codecs a preset may name, and what ffarm knows about each: the FFmpeg
//! muxer or encoder behind it, its quality scale, and its limits.

use serde::Serialize;

/// An output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Mov,
    Mkv,
    Webm,
    Flv,
    Avi,
    Ts,
    M4a,
    Mp3,
    Ogg,
    Wav,
    /// HTTP Live Streaming: MPEG-TS segments and playlists.
    Hls,
    /// CMAF: fragmented MP4 segments (an init segment per rendition) named by both an HLS
    /// master playlist and a DASH MPD (decision 0081).
    Cmaf,
    /// A single JPEG picture (poster frame).
    Jpg,
    /// Thumbnails every few seconds tiled into JPEG sprite sheets, with a WebVTT file whose
    /// cues point into them (`sheet.jpg#xywh=…`): a player's scrubbing previews.
    Storyboard,
}

impl Container {
    pub const ALL: [Container; 15] = [
        Container::Mp4,
        Container::Mov,
        Container::Mkv,
        Container::Webm,
        Container::Flv,
        Container::Avi,
        Container::Ts,
        Container::M4a,
        Container::Mp3,
        Container::Ogg,
        Container::Wav,
        Container::Hls,
        Container::Cmaf,
        Container::Jpg,
        Container::Storyboard,
    ];

    pub fn parse(name: &str) -> Option<Container> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The name presets and jobs use.
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mov => "mov",
            Container::Mkv => "mkv",
            Container::Webm => "webm",
            Container::Flv => "flv",
            Container::Avi => "avi",
            Container::Ts => "ts",
            Container::M4a => "m4a",
            Container::Mp3 => "mp3",
            Container::Ogg => "ogg",
            Container::Wav => "wav",
            Container::Hls => "hls",
            Container::Cmaf => "cmaf",
            Container::Jpg => "jpg",
            Container::Storyboard => "storyboard",
        }
    }

    /// The FFmpeg muxer that writes it.
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mov => "mov",
            Container::Mkv => "matroska",
            Container::Webm => "webm",
            Container::Flv => "flv",
            Container::Avi => "avi",
            Container::Ts => "mpegts",
            Container::M4a => "ipod",
            Container::Mp3 => "mp3",
            Container::Ogg => "ogg",
            Container::Wav => "wav",
            Container::Hls | Container::Cmaf => "hls",
            Container::Jpg | Container::Storyboard => "image2",
        }
    }

    /// The output file extension (for HLS, the playlist's).
    pub fn extension(self) -> &'static str {
        match self {
            Container::Hls | Container::Cmaf => "m3u8",
            Container::Storyboard => "vtt",
            other => other.name(),
        }
    }

    /// Written as segments named by playlists (HLS; CMAF with its DASH manifest too), by
    /// FFmpeg's `hls` muxer, one per rendition.
    pub fn segmented(self) -> bool {
        matches!(self, Container::Hls | Container::Cmaf)
    }

    /// Holds no video at all.
    pub fn audio_only(self) -> bool {
        matches!(
            self,
            Container::M4a | Container::Mp3 | Container::Ogg | Container::Wav
        )
    }

    /// Holds pictures and no audio: one (jpg) or sheets of them (storyboard).
    pub fn picture(self) -> bool {
        matches!(self, Container::Jpg | Container::Storyboard)
    }

    /// How many audio tracks the output carries: several where the container and its players
    /// handle them, otherwise the input's main track only.
    pub fn max_audio_tracks(self) -> usize {
        match self {
            Container::Mp4 | Container::Mov | Container::Mkv | Container::Webm | Container::Ts => {
                usize::MAX
            }
            Container::Avi => usize::MAX,
            Container::Jpg | Container::Storyboard => 0,
            _ => 1,
        }
    }

    /// Whether the container can hold this video codec. A table rather than FFmpeg's
    /// `avformat_query_codec`, which answers "don't know" for several muxers (mpegts, mp3).
    pub fn holds_video(self, codec: VideoCodec) -> bool {
        use VideoCodec::*;
        match self {
            Container::Mp4 => matches!(codec, H264 | Hevc | Vp9 | Av1 | Mpeg4),
            Container::Mov => matches!(codec, H264 | Hevc | Mpeg4 | Mjpeg),
            Container::Mkv => true,
            Container::Webm => matches!(codec, Vp8 | Vp9 | Av1),
            Container::Flv => matches!(codec, H264),
            Container::Avi => matches!(codec, H264 | Mpeg4 | Mjpeg),
            Container::Ts => matches!(codec, H264 | Hevc),
            Container::Hls | Container::Cmaf => matches!(codec, H264),
            Container::Jpg | Container::Storyboard => matches!(codec, Mjpeg),
            Container::M4a | Container::Mp3 | Container::Ogg | Container::Wav => false,
        }
    }

    /// Whether the container can hold this audio codec (see [`Container::holds_video`]).
    pub fn holds_audio(self, codec: AudioCodec) -> bool {
        use AudioCodec::*;
        match self {
            Container::Mp4 => matches!(codec, Aac | Mp3 | Opus | Flac | Ac3),
            Container::Mov => matches!(codec, Aac | Mp3 | Ac3 | PcmS16le),
            Container::Mkv => true,
            Container::Webm => matches!(codec, Opus | Vorbis),
            Container::Flv => matches!(codec, Aac | Mp3),
            Container::Avi => matches!(codec, Mp3 | Ac3 | PcmS16le | Aac),
            Container::Ts => matches!(codec, Aac | Mp3 | Ac3 | Opus),
            Container::Hls => matches!(codec, Aac | Mp3),
            Container::Cmaf => matches!(codec, Aac),
            Container::M4a => matches!(codec, Aac),
            Container::Mp3 => matches!(codec, Mp3),
            Container::Ogg => matches!(codec, Vorbis | Opus | Flac),
            Container::Wav => matches!(codec, PcmS16le),
            Container::Jpg | Container::Storyboard => false,
        }
    }

    /// Options given to the muxer.
    pub fn muxer_options(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Move the index to the front so playback starts before the download ends.
            Container::Mp4 | Container::Mov | Container::M4a => &[("movflags", "+faststart")],
            Container::Jpg => &[("update", "1")],
            _ => &[],
        }
    }
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How an encoder expresses constant quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityScale {
    /// `crf` in the given inclusive range.
    Crf(u32, u32),
    /// A fixed quantiser scale (`-q:v`), 1 (best) to 31.
    Qscale,
}

/// How an encoder's `encoder_preset` is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeedScale {
    /// x264/x265 names: ultrafast … placebo.
    Named,
    /// An integer in the inclusive range (libvpx `cpu-used`, SVT-AV1 `preset`).
    Number(i32, i32),
    /// The encoder has no speed setting.
    None,
}

pub const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// A video codec a preset may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
    Hevc,
    Vp8,
    Vp9,
    Av1,
    Mpeg4,
    Mjpeg,
}

impl VideoCodec {
    pub const ALL: [VideoCodec; 7] = [
        VideoCodec::H264,
        VideoCodec::Hevc,
        VideoCodec::Vp8,
        VideoCodec::Vp9,
        VideoCodec::Av1,
        VideoCodec::Mpeg4,
        VideoCodec::Mjpeg,
    ];

    pub fn parse(name: &str) -> Option<VideoCodec> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Av1 => "av1",
            VideoCodec::Mpeg4 => "mpeg4",
            VideoCodec::Mjpeg => "mjpeg",
        }
    }

    /// The FFmpeg encoder used.
    pub fn encoder(self) -> &'static str {
        match self {
            VideoCodec::H264 => "libx264",
            VideoCodec::Hevc => "libx265",
            VideoCodec::Vp8 => "libvpx",
            VideoCodec::Vp9 => "libvpx-vp9",
            VideoCodec::Av1 => "libsvtav1",
            VideoCodec::Mpeg4 => "mpeg4",
            VideoCodec::Mjpeg => "mjpeg",
        }
    }

    pub fn quality(self) -> QualityScale {
        match self {
            VideoCodec::H264 | VideoCodec::Hevc => QualityScale::Crf(0, 51),
            VideoCodec::Vp8 => QualityScale::Crf(4, 63),
            VideoCodec::Vp9 => QualityScale::Crf(0, 63),
            VideoCodec::Av1 => QualityScale::Crf(1, 63),
            VideoCodec::Mpeg4 | VideoCodec::Mjpeg => QualityScale::Qscale,
        }
    }

    pub fn speed(self) -> SpeedScale {
        match self {
            VideoCodec::H264 | VideoCodec::Hevc => SpeedScale::Named,
            VideoCodec::Vp8 => SpeedScale::Number(-16, 16),
            VideoCodec::Vp9 => SpeedScale::Number(-8, 8),
            VideoCodec::Av1 => SpeedScale::Number(0, 13),
            VideoCodec::Mpeg4 | VideoCodec::Mjpeg => SpeedScale::None,
        }
    }

    /// The pixel format used when the preset names none.
    pub fn default_pixel_format(self) -> &'static str {
        match self {
            VideoCodec::Mjpeg => "yuvj420p",
            _ => "yuv420p",
        }
    }

    /// Whether players take HDR (PQ or HLG) in this codec: the 10-bit profiles of HEVC, VP9
    /// and AV1 are what HDR is delivered in.
    pub fn carries_hdr(self) -> bool {
        matches!(self, VideoCodec::Hevc | VideoCodec::Vp9 | VideoCodec::Av1)
    }
}

/// An audio codec a preset may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    Vorbis,
    Flac,
    Ac3,
    #[serde(rename = "pcm_s16le")]
    PcmS16le,
}

impl AudioCodec {
    pub const ALL: [AudioCodec; 7] = [
        AudioCodec::Aac,
        AudioCodec::Mp3,
        AudioCodec::Opus,
        AudioCodec::Vorbis,
        AudioCodec::Flac,
        AudioCodec::Ac3,
        AudioCodec::PcmS16le,
    ];

    pub fn parse(name: &str) -> Option<AudioCodec> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Opus => "opus",
            AudioCodec::Vorbis => "vorbis",
            AudioCodec::Flac => "flac",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::PcmS16le => "pcm_s16le",
        }
    }

    pub fn encoder(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "libmp3lame",
            AudioCodec::Opus => "libopus",
            AudioCodec::Vorbis => "libvorbis",
            AudioCodec::Flac => "flac",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::PcmS16le => "pcm_s16le",
        }
    }

    /// The most channels ffarm will encode with this codec (more are downmixed).
    pub fn max_channels(self) -> u32 {
        match self {
            AudioCodec::Mp3 | AudioCodec::Opus => 2,
            AudioCodec::Ac3 => 6,
            _ => 8,
        }
    }

    /// Whether the codec takes a target bit rate.
    pub fn has_bitrate(self) -> bool {
        !matches!(self, AudioCodec::Flac | AudioCodec::PcmS16le)
    }
}
