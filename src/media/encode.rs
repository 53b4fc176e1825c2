//! Encoders: a preset's settings as FFmpeg encoder options (the same `-key value` pairs the
//! command line takes), and opening video and audio encoders for the first filtered frame.

use ffmpeg_next as ff;

use super::error::{MediaError, with_detail};
use super::ffi;
use super::graph::AudioShape;
use super::hdr::HdrMetadata;
use crate::preset::{AudioCodec, AudioEncoding, Loudness, RateControl, VideoCodec, VideoEncoding};

/// Everything needed to open one video encoder.
#[derive(Debug, Clone)]
pub(crate) struct VideoEncoderSpec {
    pub codec: VideoCodec,
    /// Encoder options, in command-line terms (`preset`, `crf`, `maxrate`…).
    pub options: Vec<(String, String)>,
    /// A fixed quantiser (`-q:v`) for codecs without CRF.
    pub fixed_quality: Option<u32>,
    pub pixel_format: String,
    pub keyframe_seconds: f64,
    /// Force a keyframe at every multiple of this many seconds (HLS segment boundaries).
    pub force_keyframes_every: Option<f64>,
    /// Encoder threads; 0 lets FFmpeg choose (as the command line's `-threads auto`).
    pub threads: u32,
}

/// Everything needed to open one audio encoder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioEncoderSpec {
    pub codec: AudioCodec,
    pub options: Vec<(String, String)>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
    /// Normalise to this loudness (two passes: `media::loudness`).
    pub loudness: Option<Loudness>,
}

/// The video encoder options for a preset's encoding, with `rate` replacing its rate control
/// (an HLS rendition's).
pub(crate) fn video_spec(v: &VideoEncoding, rate: &RateControl) -> VideoEncoderSpec {
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| opts.push((k.to_string(), v));
    match v.codec {
        VideoCodec::H264 | VideoCodec::Hevc | VideoCodec::Av1 => {
            if let Some(p) = &v.encoder_preset {
                push("preset", p.clone());
            }
        }
        VideoCodec::Vp8 | VideoCodec::Vp9 => {
            if let Some(p) = &v.encoder_preset {
                push("cpu-used", p.clone());
            }
        }
        VideoCodec::Mpeg4 | VideoCodec::Mjpeg => {}
    }
    if let Some(crf) = rate.crf {
        push("crf", crf.to_string());
        // libvpx reaches constant quality only with a zero target bit rate.
        if matches!(v.codec, VideoCodec::Vp8 | VideoCodec::Vp9) && rate.bitrate.is_none() {
            push("b", "0".into());
        }
    }
    if let Some(b) = rate.bitrate {
        push("b", b.to_string());
    }
    if let Some(m) = rate.max_bitrate {
        push("maxrate", m.to_string());
    }
    if let Some(s) = rate.buffer_size {
        push("bufsize", s.to_string());
    }
    if let Some(p) = &v.profile {
        push("profile", p.clone());
    }
    let mut x265_params = String::from("log-level=error");
    for (k, val) in &v.options {
        if v.codec == VideoCodec::Hevc && k == "x265-params" {
            x265_params = format!("{x265_params}:{val}");
        } else {
            opts.push((k.clone(), val.clone()));
        }
    }
    if v.codec == VideoCodec::Hevc {
        opts.push(("x265-params".into(), x265_params));
    }
    VideoEncoderSpec {
        codec: v.codec,
        options: opts,
        fixed_quality: rate.quality,
        pixel_format: v.pixel_format.clone(),
        keyframe_seconds: v.keyframe_seconds,
        force_keyframes_every: None,
        threads: 0,
    }
}

/// The audio encoder options for a preset's encoding; `bitrate` overrides its own.
pub(crate) fn audio_spec(a: &AudioEncoding, bitrate: Option<u64>) -> AudioEncoderSpec {
    let mut options = Vec::new();
    if let Some(b) = bitrate.or(a.bitrate) {
        options.push(("b".to_string(), b.to_string()));
    }
    for (k, v) in &a.options {
        options.push((k.clone(), v.clone()));
    }
    AudioEncoderSpec {
        codec: a.codec,
        options,
        sample_rate: a.sample_rate,
        channels: a.channels,
        loudness: a.loudness,
    }
}

fn dictionary(options: &[(String, String)]) -> ff::Dictionary<'static> {
    let mut dict = ff::Dictionary::new();
    for (k, v) in options {
        dict.set(k, v);
    }
    dict
}

fn encode_error(encoder: &str, e: &ff::Error, mark: u64) -> MediaError {
    MediaError::Encode {
        codec: encoder.to_string(),
        reason: with_detail(e, ffi::errors_since(mark)),
    }
}

/// The shape of the frames a video encoder will receive.
pub(crate) struct VideoInputShape {
    pub width: u32,
    pub height: u32,
    pub pixel_format: ff::format::Pixel,
    pub time_base: ff::Rational,
    pub frame_rate: Option<ff::Rational>,
}

/// Opens a video encoder for frames of `shape`, taking colour properties from `first` and,
/// for kept HDR, its mastering-display and light-level metadata `hdr`.
pub(crate) fn open_video(
    spec: &VideoEncoderSpec,
    shape: &VideoInputShape,
    first: &ff::frame::Video,
    hdr: &HdrMetadata,
    global_header: bool,
) -> Result<ff::encoder::Video, MediaError> {
    let name = spec.codec.encoder();
    let codec = ff::encoder::find_by_name(name).ok_or_else(|| MediaError::Encode {
        codec: name.into(),
        reason: "this FFmpeg build has no such encoder".into(),
    })?;
    let mut ctx = ff::codec::Context::new_with_codec(codec);
    ffi::set_threads(&mut ctx, spec.threads);
    if let Some(q) = spec.fixed_quality {
        ffi::set_fixed_quality(&mut ctx, q);
    }
    if global_header {
        ffi::set_global_header(&mut ctx);
    }
    let mut enc = ctx
        .encoder()
        .video()
        .map_err(|e| encode_error(name, &e, ffi::log_mark()))?;
    enc.set_width(shape.width);
    enc.set_height(shape.height);
    enc.set_format(shape.pixel_format);
    enc.set_aspect_ratio(ff::Rational::new(1, 1));
    enc.set_time_base(shape.time_base);
    enc.set_frame_rate(shape.frame_rate);
    let fps = shape
        .frame_rate
        .filter(|r| r.numerator() > 0 && r.denominator() > 0)
        .map_or(25.0, f64::from);
    let gop = (spec.keyframe_seconds * fps).round().max(1.0) as u32;
    enc.set_gop(gop);
    ffi::copy_color_properties(first, &mut enc);
    let mark = ffi::log_mark();
    enc.open_as_with(codec, dictionary(&with_hdr_metadata(spec, hdr)))
        .map_err(|e| encode_error(name, &e, mark))
}

/// The encoder options with kept HDR's metadata added where the encoder takes it from its
/// options: x265's SEI (libx265 here does not read the frames' side data).
fn with_hdr_metadata(spec: &VideoEncoderSpec, hdr: &HdrMetadata) -> Vec<(String, String)> {
    let mut options = spec.options.clone();
    if spec.codec != VideoCodec::Hevc {
        return options;
    }
    let Some(extra) = hdr.x265_params() else {
        return options;
    };
    match options.iter_mut().find(|(k, _)| k == "x265-params") {
        Some((_, v)) => *v = format!("{v}:{extra}"),
        None => options.push(("x265-params".into(), extra)),
    }
    options
}

/// An opened audio encoder and the frame shape it wants.
pub(crate) struct OpenedAudio {
    pub encoder: ff::encoder::Audio,
    pub sample_rate: u32,
    pub sample_format: ff::format::Sample,
    pub channels: u32,
    /// Samples per frame the encoder needs, or None when any size will do.
    pub frame_size: Option<u32>,
}

impl OpenedAudio {
    /// The encoder's own time base: one tick per sample.
    pub fn time_base(&self) -> ff::Rational {
        ff::Rational::new(1, self.sample_rate as i32)
    }

    /// The samples it takes.
    pub fn format(&self) -> AudioFormat {
        AudioFormat {
            sample_rate: self.sample_rate,
            sample_format: self.sample_format,
            channels: self.channels,
        }
    }
}

/// The samples an audio encoder takes: rate, sample format and channel count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AudioFormat {
    pub sample_rate: u32,
    pub sample_format: ff::format::Sample,
    pub channels: u32,
}

impl AudioFormat {
    /// Frames of this format, as a filter graph's source takes them.
    pub fn shape(&self) -> AudioShape {
        AudioShape {
            rate: self.sample_rate,
            format: self.sample_format,
            layout: ffi::default_layout_name(self.channels),
        }
    }

    /// One tick per sample.
    pub fn time_base(&self) -> ff::Rational {
        ff::Rational::new(1, self.sample_rate as i32)
    }

    /// The filters that resample and remix any audio into this format.
    pub fn conversion(&self) -> String {
        format!(
            "aresample={rate},aformat=sample_fmts={fmt}:sample_rates={rate}:channel_layouts={layout}",
            rate = self.sample_rate,
            fmt = self.sample_format.name(),
            layout = ffi::default_layout_name(self.channels),
        )
    }
}

fn find_audio_encoder(spec: &AudioEncoderSpec) -> Result<ff::Codec, MediaError> {
    let name = spec.codec.encoder();
    ff::encoder::find_by_name(name).ok_or_else(|| MediaError::Encode {
        codec: name.into(),
        reason: "this FFmpeg build has no such encoder".into(),
    })
}

/// The format an encoder of `spec` takes for a source with `source_rate` Hz,
/// `source_channels` channels and samples in `source_format`: the source's sample format
/// and rate where the encoder takes them, else its first format and nearest rate; the
/// preset's rate and channels where it names them.
pub(crate) fn audio_format(
    spec: &AudioEncoderSpec,
    source_rate: u32,
    source_channels: u32,
    source_format: ff::format::Sample,
) -> Result<AudioFormat, MediaError> {
    let name = spec.codec.encoder();
    let audio_codec = find_audio_encoder(spec)?
        .audio()
        .map_err(|e| encode_error(name, &e, ffi::log_mark()))?;
    let sample_format = audio_codec
        .formats()
        .and_then(|mut formats| {
            let all: Vec<_> = formats.by_ref().collect();
            all.iter()
                .copied()
                .find(|f| *f == source_format)
                .or_else(|| all.first().copied())
        })
        .unwrap_or(source_format);
    let wanted_rate = spec.sample_rate.unwrap_or(source_rate.max(8_000));
    let sample_rate = match audio_codec.rates() {
        Some(rates) => {
            let rates: Vec<i32> = rates.collect();
            rates
                .iter()
                .copied()
                .filter(|r| *r > 0)
                .min_by_key(|r| (i64::from(*r) - i64::from(wanted_rate)).abs())
                .map_or(wanted_rate, |r| r as u32)
        }
        None => wanted_rate,
    };
    let channels = spec
        .channels
        .unwrap_or(source_channels)
        .clamp(1, spec.codec.max_channels());
    Ok(AudioFormat {
        sample_rate,
        sample_format,
        channels,
    })
}

/// Opens an audio encoder for a source with `source_rate` Hz, `source_channels` channels and
/// samples in `source_format`.
pub(crate) fn open_audio(
    spec: &AudioEncoderSpec,
    source_rate: u32,
    source_channels: u32,
    source_format: ff::format::Sample,
    global_header: bool,
) -> Result<OpenedAudio, MediaError> {
    let name = spec.codec.encoder();
    let codec = find_audio_encoder(spec)?;
    let AudioFormat {
        sample_rate,
        sample_format,
        channels,
    } = audio_format(spec, source_rate, source_channels, source_format)?;
    let mut ctx = ff::codec::Context::new_with_codec(codec);
    ffi::set_threads_auto(&mut ctx);
    if global_header {
        ffi::set_global_header(&mut ctx);
    }
    let mut enc = ctx
        .encoder()
        .audio()
        .map_err(|e| encode_error(name, &e, ffi::log_mark()))?;
    enc.set_rate(sample_rate as i32);
    enc.set_format(sample_format);
    ffi::set_encoder_channels(&mut enc, channels);
    enc.set_time_base(ff::Rational::new(1, sample_rate as i32));
    let mark = ffi::log_mark();
    let encoder = enc
        .open_as_with(codec, dictionary(&spec.options))
        .map_err(|e| encode_error(name, &e, mark))?;
    let frame_size = (!ffi::encoder_variable_frame_size(&encoder))
        .then(|| ffi::encoder_frame_size(&encoder))
        .filter(|n| *n > 0);
    Ok(OpenedAudio {
        encoder,
        sample_rate,
        sample_format,
        channels,
        frame_size,
    })
}
