//! Codec contexts, filter sinks, frames and packets: the fields the bindings leave out.

use std::ffi::{CString, c_int, c_void};
use std::ptr;

use ff::ffi as sys;
use ffmpeg_next as ff;

use super::streams::pixel_format_name;

/// Whether `option` is an option of the named encoder (its private options or the generic
/// codec options), as `-option value` on the command line would accept it.
pub fn encoder_has_option(encoder: &str, option: &str) -> bool {
    let (Ok(enc), Ok(opt)) = (CString::new(encoder), CString::new(option)) else {
        return false;
    };
    // SAFETY: a throwaway context is allocated for the lookup and freed before returning.
    unsafe {
        let codec = sys::avcodec_find_encoder_by_name(enc.as_ptr());
        if codec.is_null() {
            return false;
        }
        let mut ctx = sys::avcodec_alloc_context3(codec);
        if ctx.is_null() {
            return false;
        }
        let found = !sys::av_opt_find(
            ctx as *mut c_void,
            opt.as_ptr(),
            ptr::null(),
            0,
            sys::AV_OPT_SEARCH_CHILDREN as c_int,
        )
        .is_null();
        sys::avcodec_free_context(&mut ctx);
        found
    }
}

/// The pixel formats an encoder accepts, by name; empty when it does not say.
pub fn encoder_pixel_formats(encoder: &str) -> Vec<String> {
    let Some(codec) = ff::encoder::find_by_name(encoder) else {
        return Vec::new();
    };
    let Ok(video) = codec.video() else {
        return Vec::new();
    };
    video
        .formats()
        .map(|it| {
            it.filter_map(|f| {
                let v: sys::AVPixelFormat = f.into();
                pixel_format_name(v as c_int)
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Whether FFmpeg knows a pixel format by this name.
pub fn pixel_format_exists(name: &str) -> bool {
    let Ok(n) = CString::new(name) else {
        return false;
    };
    // SAFETY: a pure lookup.
    unsafe { sys::av_get_pix_fmt(n.as_ptr()) != sys::AVPixelFormat::AV_PIX_FMT_NONE }
}

/// The depth in bits of a known pixel format's first component (8 for yuv420p, 10 for
/// yuv420p10le).
pub fn pixel_format_bits(name: &str) -> Option<u32> {
    let n = CString::new(name).ok()?;
    // SAFETY: a lookup, then a read of the static descriptor FFmpeg returns for the format.
    unsafe {
        let fmt = sys::av_get_pix_fmt(n.as_ptr());
        if fmt == sys::AVPixelFormat::AV_PIX_FMT_NONE {
            return None;
        }
        let desc = sys::av_pix_fmt_desc_get(fmt);
        if desc.is_null() || (*desc).nb_components == 0 {
            return None;
        }
        u32::try_from((*desc).comp[0].depth).ok()
    }
}

/// Sets a codec context to FFmpeg's automatic thread count (as the command line's default
/// `-threads auto`), keeping both frame and slice threading enabled.
pub fn set_threads_auto(ctx: &mut ff::codec::Context) {
    // SAFETY: plain field writes on a context not yet opened.
    unsafe {
        let c = ctx.as_mut_ptr();
        (*c).thread_count = 0;
        (*c).thread_type = (sys::FF_THREAD_FRAME | sys::FF_THREAD_SLICE) as c_int;
    }
}

/// Sets a codec context to `count` threads (0: FFmpeg's automatic count), frame and slice
/// threading both enabled.
pub fn set_threads(ctx: &mut ff::codec::Context, count: u32) {
    set_threads_auto(ctx);
    // SAFETY: a plain field write on a context not yet opened.
    unsafe {
        (*ctx.as_mut_ptr()).thread_count = c_int::try_from(count).unwrap_or(0);
    }
}

/// Marks a packet's first `samples` decoded samples as to be dropped (encoder priming), as
/// the demuxer of the file it was copied from did; NUT cannot carry the mark.
pub fn set_skip_samples(packet: &mut ff::Packet, samples: u32) {
    // SAFETY: FFmpeg allocates the side data on the packet we own and hands back a buffer of
    // the asked size (or null), which is filled in bounds.
    unsafe {
        let data = sys::av_packet_new_side_data(
            ff::packet::Mut::as_mut_ptr(packet),
            sys::AVPacketSideDataType::AV_PKT_DATA_SKIP_SAMPLES,
            10,
        );
        if !data.is_null() {
            let bytes = std::slice::from_raw_parts_mut(data, 10);
            bytes.fill(0);
            bytes[..4].copy_from_slice(&samples.to_le_bytes());
        }
    }
}

/// The samples a packet marks as to be dropped from its start (encoder priming).
pub fn skip_samples(packet: &ff::Packet) -> u32 {
    packet
        .side_data()
        .find(|s| s.kind() == ff::packet::side_data::Type::SkipSamples)
        .and_then(|s| {
            s.data()
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        })
        .unwrap_or(0)
}

/// Caps the pixel count a decoder will allocate frames for.
pub fn set_max_pixels(ctx: &mut ff::codec::Context, max: i64) {
    // SAFETY: plain field write on a context not yet opened.
    unsafe { (*ctx.as_mut_ptr()).max_pixels = max }
}

/// Sets the time base in which a decoder receives packets (needed for correct timestamps).
pub fn set_packet_time_base(ctx: &mut ff::codec::Context, tb: ff::Rational) {
    // SAFETY: plain field write.
    unsafe { (*ctx.as_mut_ptr()).pkt_timebase = tb.into() }
}

/// Sets the encoder's colour description (primaries, transfer, matrix, range) from a frame,
/// as the command line does with the first frame it encodes.
pub fn copy_color_properties(frame: &ff::frame::Video, encoder: &mut ff::encoder::video::Video) {
    // SAFETY: plain field copies between a frame and an unopened encoder context.
    unsafe {
        let f = frame.as_ptr();
        let c = encoder.as_mut_ptr();
        (*c).color_primaries = (*f).color_primaries;
        (*c).color_trc = (*f).color_trc;
        (*c).colorspace = (*f).colorspace;
        (*c).color_range = (*f).color_range;
        (*c).chroma_sample_location = (*f).chroma_location;
    }
}

/// Marks an encoder context to use a fixed quantiser scale (`-q:v N` on the command line).
pub fn set_fixed_quality(ctx: &mut ff::codec::Context, q: u32) {
    // SAFETY: plain field writes on a context not yet opened.
    unsafe {
        let c = ctx.as_mut_ptr();
        (*c).flags |= sys::AV_CODEC_FLAG_QSCALE as c_int;
        (*c).global_quality = (q as c_int) * sys::FF_QP2LAMBDA as c_int;
    }
}

/// Adds `AV_CODEC_FLAG_GLOBAL_HEADER` to an encoder context (for muxers that want codec
/// headers out of band), keeping any flags already set.
pub fn set_global_header(ctx: &mut ff::codec::Context) {
    // SAFETY: plain field update on a context not yet opened.
    unsafe { (*ctx.as_mut_ptr()).flags |= sys::AV_CODEC_FLAG_GLOBAL_HEADER as c_int }
}

/// Sets an audio encoder's channel layout to FFmpeg's default layout for `channels`.
pub fn set_encoder_channels(encoder: &mut ff::encoder::audio::Audio, channels: u32) {
    // SAFETY: the context is not yet opened; the old layout is released before replacing it.
    unsafe {
        let ctx = encoder.as_mut_ptr();
        sys::av_channel_layout_uninit(&mut (*ctx).ch_layout);
        sys::av_channel_layout_default(&mut (*ctx).ch_layout, channels as c_int);
        #[allow(deprecated)]
        {
            (*ctx).channels = channels as c_int;
            (*ctx).channel_layout = (*ctx).ch_layout.u.mask;
        }
    }
}

/// The number of samples per frame an opened audio encoder wants (0: any).
pub fn encoder_frame_size(encoder: &ff::encoder::Audio) -> u32 {
    // SAFETY: plain field read on an opened encoder.
    unsafe { (*encoder.as_ptr()).frame_size.max(0) as u32 }
}

/// Whether an audio encoder accepts frames of any size.
pub fn encoder_variable_frame_size(encoder: &ff::encoder::Audio) -> bool {
    // SAFETY: reads the opened encoder's codec capabilities.
    unsafe {
        let codec = (*encoder.as_ptr()).codec;
        !codec.is_null()
            && (*codec).capabilities & sys::AV_CODEC_CAP_VARIABLE_FRAME_SIZE as c_int != 0
    }
}

/// The frame rate a buffersink will output (after `fps` and similar filters).
pub fn buffersink_frame_rate(ctx: &mut ff::filter::Context) -> ff::Rational {
    // SAFETY: `ctx` is a configured buffersink.
    unsafe { sys::av_buffersink_get_frame_rate(ctx.as_mut_ptr()).into() }
}

/// Makes an audio buffersink emit frames of exactly `samples` samples (encoder frame size).
pub fn buffersink_set_frame_size(ctx: &mut ff::filter::Context, samples: u32) {
    // SAFETY: `ctx` is a configured buffersink.
    unsafe { sys::av_buffersink_set_frame_size(ctx.as_mut_ptr(), samples) }
}

/// A new reference to the same frame data (no pixel or sample copy), for fanning a frame
/// out to several consumers.
pub fn frame_ref(frame: &ff::Frame) -> Option<ff::Frame> {
    // SAFETY: av_frame_clone returns a new owned frame referencing the same buffers;
    // `wrap` takes ownership (the frame is freed when the wrapper drops).
    unsafe {
        let p = sys::av_frame_clone(frame.as_ptr());
        (!p.is_null()).then(|| ff::Frame::wrap(p))
    }
}

/// A new reference to the same packet data (no copy), for sending one packet to several
/// outputs.
pub fn packet_ref(packet: &ff::Packet) -> ff::Packet {
    let mut out = ff::Packet::empty();
    // SAFETY: av_packet_ref fills an empty packet with a new reference to the source buffer.
    unsafe {
        use ff::packet::{Mut, Ref};
        sys::av_packet_ref(out.as_mut_ptr(), packet.as_ptr());
    }
    out
}

/// Whether the decoder says it concealed damage in a frame (`decode_error_flags`) or
/// marked it corrupt.
pub fn frame_damaged(frame: &ff::Frame) -> bool {
    // SAFETY: plain field reads.
    unsafe {
        let f = frame.as_ptr();
        (*f).decode_error_flags != 0 || (*f).flags & sys::AV_FRAME_FLAG_CORRUPT != 0
    }
}

/// How long a decoded frame lasts, in its stream's time base (0 when unknown).
pub fn frame_duration(frame: &ff::Frame) -> i64 {
    // SAFETY: plain field read.
    unsafe { (*frame.as_ptr()).pkt_duration.max(0) }
}
