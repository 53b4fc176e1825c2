//! Reading streams and frames: codec parameters, side data, channel layouts.

use std::ffi::{CStr, c_char, c_int};
use std::ptr;

use ff::ffi as sys;
use ffmpeg_next as ff;

use super::cstr;

/// Everything the probe and the planner need from one stream's codec parameters.
#[derive(Debug, Clone, Default)]
pub struct StreamFacts {
    pub medium: Option<&'static str>,
    pub codec: String,
    pub codec_long_name: Option<String>,
    pub profile: Option<String>,
    pub level: Option<i32>,
    pub bit_rate: Option<i64>,
    pub width: u32,
    pub height: u32,
    pub pixel_format: Option<String>,
    pub bits_per_raw_sample: Option<i32>,
    pub sample_aspect_ratio: Option<(i32, i32)>,
    pub field_order: Option<&'static str>,
    /// The colour description in ffprobe's names ("tv", "bt2020nc", "smpte2084", "bt2020"),
    /// each None when the stream leaves it unspecified.
    pub color_range: Option<String>,
    pub color_space: Option<String>,
    pub color_transfer: Option<String>,
    pub color_primaries: Option<String>,
    pub sample_rate: u32,
    pub channels: u32,
    pub channel_layout: Option<String>,
    pub sample_format: Option<String>,
    /// Counter-clockwise rotation in degrees from the display matrix, as ffprobe reports it.
    pub rotation: Option<f64>,
    /// The display matrix itself, carried over when the stream is copied.
    pub display_matrix: Option<[i32; 9]>,
    pub attached_picture: bool,
}

/// Reads a stream's codec parameters and side data.
pub fn stream_facts(stream: &ff::format::stream::Stream) -> StreamFacts {
    // SAFETY: the stream and its codecpar are owned by an open input context that outlives
    // this call; only plain fields are read and only FFmpeg's own getters are called.
    unsafe {
        let st = stream.as_ptr();
        let par = (*st).codecpar;
        let p = &*par;
        let mut f = StreamFacts {
            codec: cstr(sys::avcodec_get_name(p.codec_id)).unwrap_or_else(|| "none".into()),
            ..StreamFacts::default()
        };
        let desc = sys::avcodec_descriptor_get(p.codec_id);
        if !desc.is_null() {
            f.codec_long_name = cstr((*desc).long_name);
        }
        f.medium = match p.codec_type {
            sys::AVMediaType::AVMEDIA_TYPE_VIDEO => Some("video"),
            sys::AVMediaType::AVMEDIA_TYPE_AUDIO => Some("audio"),
            sys::AVMediaType::AVMEDIA_TYPE_SUBTITLE => Some("subtitle"),
            sys::AVMediaType::AVMEDIA_TYPE_DATA => Some("data"),
            sys::AVMediaType::AVMEDIA_TYPE_ATTACHMENT => Some("attachment"),
            _ => None,
        };
        if p.profile != sys::FF_PROFILE_UNKNOWN {
            f.profile = cstr(sys::avcodec_profile_name(p.codec_id, p.profile));
        }
        f.level = (p.level != sys::FF_LEVEL_UNKNOWN).then_some(p.level);
        f.bit_rate = (p.bit_rate > 0).then_some(p.bit_rate);
        f.bits_per_raw_sample = (p.bits_per_raw_sample > 0).then_some(p.bits_per_raw_sample);
        f.attached_picture = (*st).disposition & sys::AV_DISPOSITION_ATTACHED_PIC != 0;
        match p.codec_type {
            sys::AVMediaType::AVMEDIA_TYPE_VIDEO => {
                f.width = p.width.max(0) as u32;
                f.height = p.height.max(0) as u32;
                f.pixel_format = pixel_format_name(p.format);
                let sar = p.sample_aspect_ratio;
                f.sample_aspect_ratio = (sar.num > 0 && sar.den > 0).then_some((sar.num, sar.den));
                f.field_order = match p.field_order {
                    sys::AVFieldOrder::AV_FIELD_PROGRESSIVE => Some("progressive"),
                    sys::AVFieldOrder::AV_FIELD_TT => Some("tt"),
                    sys::AVFieldOrder::AV_FIELD_BB => Some("bb"),
                    sys::AVFieldOrder::AV_FIELD_TB => Some("tb"),
                    sys::AVFieldOrder::AV_FIELD_BT => Some("bt"),
                    _ => None,
                };
                colour(p, &mut f);
                let sd = sys::av_stream_get_side_data(
                    st,
                    sys::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                    ptr::null_mut(),
                );
                if !sd.is_null() {
                    let m = sd as *const i32;
                    let mut matrix = [0i32; 9];
                    for (i, v) in matrix.iter_mut().enumerate() {
                        *v = *m.add(i);
                    }
                    f.display_matrix = Some(matrix);
                    let r = sys::av_display_rotation_get(m);
                    f.rotation = r.is_finite().then_some(r);
                }
            }
            sys::AVMediaType::AVMEDIA_TYPE_AUDIO => {
                f.sample_rate = p.sample_rate.max(0) as u32;
                f.channels = p.ch_layout.nb_channels.max(0) as u32;
                f.channel_layout = channel_layout_name(&p.ch_layout);
                f.sample_format = sample_format_name(p.format);
            }
            _ => {}
        }
        f
    }
}

/// A video stream's colour description, in the names ffprobe prints (it leaves out what is
/// unspecified).
fn colour(p: &sys::AVCodecParameters, f: &mut StreamFacts) {
    use sys::{
        AVColorPrimaries::AVCOL_PRI_UNSPECIFIED, AVColorRange::AVCOL_RANGE_UNSPECIFIED,
        AVColorSpace::AVCOL_SPC_UNSPECIFIED, AVColorTransferCharacteristic::AVCOL_TRC_UNSPECIFIED,
    };
    // SAFETY: FFmpeg's name lookups return static strings, or null for values it does not
    // know.
    unsafe {
        f.color_range = (p.color_range != AVCOL_RANGE_UNSPECIFIED)
            .then(|| cstr(sys::av_color_range_name(p.color_range)))
            .flatten();
        f.color_space = (p.color_space != AVCOL_SPC_UNSPECIFIED)
            .then(|| cstr(sys::av_color_space_name(p.color_space)))
            .flatten();
        f.color_transfer = (p.color_trc != AVCOL_TRC_UNSPECIFIED)
            .then(|| cstr(sys::av_color_transfer_name(p.color_trc)))
            .flatten();
        f.color_primaries = (p.color_primaries != AVCOL_PRI_UNSPECIFIED)
            .then(|| cstr(sys::av_color_primaries_name(p.color_primaries)))
            .flatten();
    }
}

pub(super) fn pixel_format_name(v: c_int) -> Option<String> {
    if v < 0 || v >= sys::AVPixelFormat::AV_PIX_FMT_NB as c_int {
        return None;
    }
    // SAFETY: `v` is within the enum's range, checked above.
    unsafe {
        let fmt: sys::AVPixelFormat = std::mem::transmute(v);
        cstr(sys::av_get_pix_fmt_name(fmt))
    }
}

fn sample_format_name(v: c_int) -> Option<String> {
    if v < 0 || v >= sys::AVSampleFormat::AV_SAMPLE_FMT_NB as c_int {
        return None;
    }
    // SAFETY: `v` is within the enum's range, checked above.
    unsafe {
        let fmt: sys::AVSampleFormat = std::mem::transmute(v);
        cstr(sys::av_get_sample_fmt_name(fmt))
    }
}

fn channel_layout_name(layout: &sys::AVChannelLayout) -> Option<String> {
    if layout.nb_channels <= 0 || layout.order == sys::AVChannelOrder::AV_CHANNEL_ORDER_UNSPEC {
        return None;
    }
    let mut buf = [0 as c_char; 128];
    // SAFETY: `layout` is a valid layout; FFmpeg writes at most `buf.len()` bytes.
    let n = unsafe { sys::av_channel_layout_describe(layout, buf.as_mut_ptr(), buf.len()) };
    if n <= 0 {
        return None;
    }
    // SAFETY: the buffer is NUL-terminated by FFmpeg.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The channel layout of a decoded audio frame as a filter-graph string ("stereo", "5.1"…);
/// an unspecified layout gets FFmpeg's default for its channel count.
pub fn frame_channel_layout(frame: &ff::frame::Audio) -> String {
    // SAFETY: reads the frame's own layout; a default layout is built in a local.
    unsafe {
        let layout = &(*frame.as_ptr()).ch_layout;
        if let Some(name) = channel_layout_name(layout) {
            return name;
        }
        let mut def: sys::AVChannelLayout = std::mem::zeroed();
        sys::av_channel_layout_default(&mut def, layout.nb_channels.max(1));
        let name = channel_layout_name(&def);
        sys::av_channel_layout_uninit(&mut def);
        name.unwrap_or_else(|| "stereo".into())
    }
}

/// The channel count of a decoded audio frame.
pub fn frame_channels(frame: &ff::frame::Audio) -> u32 {
    // SAFETY: plain field read.
    unsafe { (*frame.as_ptr()).ch_layout.nb_channels.max(0) as u32 }
}

/// The channel layout name for `channels` ("mono", "stereo", "5.1"…).
pub fn default_layout_name(channels: u32) -> String {
    // SAFETY: builds and releases a local layout.
    unsafe {
        let mut def: sys::AVChannelLayout = std::mem::zeroed();
        sys::av_channel_layout_default(&mut def, channels as c_int);
        let name = channel_layout_name(&def);
        sys::av_channel_layout_uninit(&mut def);
        name.unwrap_or_else(|| format!("{channels}c"))
    }
}

/// A stream's codec extradata (for H.264: SPS/PPS, Annex B or avcC).
pub fn extradata(params: &ff::codec::Parameters) -> Vec<u8> {
    // SAFETY: reads `extradata_size` bytes FFmpeg owns for as long as `params` lives.
    unsafe {
        let p = params.as_ptr();
        let (data, size) = ((*p).extradata, (*p).extradata_size);
        if data.is_null() || size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data, size as usize).to_vec()
        }
    }
}

/// Clears a copied stream's codec tag so the target container picks its own.
pub fn reset_codec_tag(params: &mut ff::codec::Parameters) {
    // SAFETY: plain field write on owned parameters.
    unsafe { (*params.as_mut_ptr()).codec_tag = 0 }
}
