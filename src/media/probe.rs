//! `ffarm probe`: what a media file holds, in the same terms and values as FFmpeg's `ffprobe`.

use std::path::Path;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::error::MediaError;
use super::ffi;
use super::hdr::HdrTransfer;
use super::input::{self, Input};
use crate::stop::StopToken;

/// A media file's container and streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    /// FFmpeg's demuxer name (ffprobe's `format_name`), e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    pub container: String,
    pub container_long_name: String,
    /// Seconds, or null when the container does not say.
    pub duration_seconds: Option<f64>,
    pub start_seconds: Option<f64>,
    /// Bits per second over the whole file.
    pub bit_rate: Option<i64>,
    pub size_bytes: u64,
    pub streams: Vec<StreamReport>,
}

/// One stream. Fields that do not apply to a stream's kind are left out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StreamReport {
    pub index: usize,
    /// "video", "audio", "subtitle", "data" or "attachment".
    pub kind: String,
    /// FFmpeg's codec name (ffprobe's `codec_name`), e.g. "h264".
    pub codec: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec_long_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Its `title` tag ("Director's commentary").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "is_false", default)]
    pub default: bool,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<i32>,
    /// Average frames per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// As ffprobe prints them: "30000/1001".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_frame_rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r_frame_rate: Option<String>,
    /// Degrees, as ffprobe's display-matrix `rotation` (counter-clockwise); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<i32>,
    /// "progressive", "tt", "bb", "tb" or "bt" when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_aspect_ratio: Option<String>,
    /// The colour description in ffprobe's names, each absent when the stream does not say:
    /// range "tv" or "pc"; space (matrix) e.g. "bt709", "bt2020nc"; transfer e.g. "bt709",
    /// "smpte2084" (PQ: HDR10) or "arib-std-b67" (HLG); primaries e.g. "bt709", "bt2020".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub color_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub color_space: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub color_transfer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub color_primaries: Option<String>,
    /// Cover art and similar single pictures stored as a "video" stream.
    #[serde(skip_serializing_if = "is_false", default)]
    pub attached_picture: bool,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_layout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_format: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl StreamReport {
    /// The HDR transfer the stream says it uses, if any (frames may still say one the
    /// stream does not: the engine looks at them too).
    pub fn hdr(&self) -> Option<HdrTransfer> {
        self.color_transfer
            .as_deref()
            .and_then(HdrTransfer::from_name)
    }
}

impl ProbeReport {
    /// The first video stream that is real video (not cover art).
    pub fn video(&self) -> Option<&StreamReport> {
        self.streams
            .iter()
            .find(|s| s.kind == "video" && !s.attached_picture)
    }

    /// All audio streams, in file order.
    pub fn audio(&self) -> impl Iterator<Item = &StreamReport> {
        self.streams.iter().filter(|s| s.kind == "audio")
    }
}

/// Probes a file: opens it under the input rules and reports what it holds.
pub fn probe(path: &Path) -> Result<ProbeReport, MediaError> {
    let input = input::open(path, &StopToken::new())?;
    Ok(report(&input))
}

/// Builds the report for an already opened input.
pub(crate) fn report(input: &Input) -> ProbeReport {
    let ctx = &input.ctx;
    let fmt = ctx.format();
    let tb = f64::from(ff::ffi::AV_TIME_BASE);
    let duration = ctx.duration();
    ProbeReport {
        container: fmt.name().to_string(),
        container_long_name: fmt.description().to_string(),
        duration_seconds: (duration > 0).then(|| duration as f64 / tb),
        start_seconds: ffi::input_start_time(ctx).map(|t| t as f64 / tb),
        bit_rate: (ctx.bit_rate() > 0).then(|| ctx.bit_rate()),
        size_bytes: input.size,
        streams: ctx.streams().map(|s| stream_report(&s)).collect(),
    }
}

fn ratio(r: ff::Rational) -> Option<String> {
    (r.denominator() != 0 && r.numerator() != 0)
        .then(|| format!("{}/{}", r.numerator(), r.denominator()))
}

fn stream_report(stream: &ff::format::stream::Stream) -> StreamReport {
    let f = ffi::stream_facts(stream);
    let tb = stream.time_base();
    let duration = (stream.duration() > 0 && tb.denominator() != 0)
        .then(|| stream.duration() as f64 * f64::from(tb));
    let metadata = stream.metadata();
    let mut r = StreamReport {
        index: stream.index(),
        kind: f.medium.unwrap_or("unknown").to_string(),
        codec: f.codec,
        codec_long_name: f.codec_long_name,
        profile: f.profile,
        bit_rate: f.bit_rate,
        duration_seconds: duration,
        language: metadata.get("language").map(str::to_string),
        title: metadata.get("title").map(str::to_string),
        default: stream
            .disposition()
            .contains(ff::format::stream::Disposition::DEFAULT),
        attached_picture: f.attached_picture,
        ..StreamReport::default()
    };
    match r.kind.as_str() {
        "video" => {
            r.width = Some(f.width);
            r.height = Some(f.height);
            r.pixel_format = f.pixel_format;
            r.bit_depth = f.bits_per_raw_sample;
            let avg = stream.avg_frame_rate();
            let real = stream.rate();
            r.avg_frame_rate = ratio(avg);
            r.r_frame_rate = ratio(real);
            let best = if avg.numerator() > 0 { avg } else { real };
            r.frame_rate = (best.numerator() > 0 && best.denominator() > 0)
                .then(|| (f64::from(best) * 1000.0).round() / 1000.0);
            r.rotation = f.rotation.map(|d| d as i32).filter(|d| *d != 0);
            r.field_order = f.field_order.map(str::to_string);
            r.sample_aspect_ratio = f.sample_aspect_ratio.map(|(n, d)| format!("{n}:{d}"));
            r.color_range = f.color_range;
            r.color_space = f.color_space;
            r.color_transfer = f.color_transfer;
            r.color_primaries = f.color_primaries;
        }
        "audio" => {
            r.sample_rate = Some(f.sample_rate);
            r.channels = Some(f.channels);
            r.channel_layout = f.channel_layout;
            r.sample_format = f.sample_format;
        }
        _ => {}
    }
    r
}
