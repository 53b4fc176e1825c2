//! The FFmpeg fields and calls that `ffmpeg-next` does not wrap. This file holds all of the
//! engine's `unsafe`; everything else in `media` goes through the safe bindings or through
//! the small safe functions here.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use ff::ffi as sys;
use ffmpeg_next as ff;

/// Initialises FFmpeg once per process and routes its log into `tracing` (target `ffmpeg`).
/// FFmpeg's own log level defaults to warnings; `FFARM_FFMPEG_LOG=info|verbose|debug` raises it.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Cannot fail with the features we enable (no device registration).
        let _ = ff::init();
        let level = match std::env::var("FFARM_FFMPEG_LOG").as_deref() {
            Ok("quiet") => sys::AV_LOG_QUIET,
            Ok("error") => sys::AV_LOG_ERROR,
            Ok("info") => sys::AV_LOG_INFO,
            Ok("verbose") => sys::AV_LOG_VERBOSE,
            Ok("debug") => sys::AV_LOG_DEBUG,
            _ => sys::AV_LOG_WARNING,
        };
        // SAFETY: plain setters of FFmpeg's global log configuration; the callback is a
        // `extern "C"` function that never unwinds.
        unsafe {
            sys::av_log_set_level(level);
            sys::av_log_set_callback(Some(log_callback));
        }
    });
}

// ---------------------------------------------------------------------------------------
// Log capture: FFmpeg explains most failures in its log, not in the error code. The last
// lines at error level are kept so an error can carry FFmpeg's own words.

struct LogLine {
    seq: u64,
    text: String,
}

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);
static RECENT: Mutex<VecDeque<LogLine>> = Mutex::new(VecDeque::new());
const RECENT_LINES: usize = 32;

thread_local! {
    static PARTIAL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A position in FFmpeg's log; see [`errors_since`].
pub fn log_mark() -> u64 {
    LOG_SEQ.load(Ordering::SeqCst)
}

/// FFmpeg's error-level log lines since `mark`, joined with "; " (at most the last three).
pub fn errors_since(mark: u64) -> Option<String> {
    let recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    let lines: Vec<&str> = recent
        .iter()
        .filter(|l| l.seq > mark)
        .map(|l| l.text.as_str())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let start = lines.len().saturating_sub(3);
    Some(lines[start..].join("; "))
}

unsafe extern "C" fn log_callback(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: *mut sys::__va_list_tag,
) {
    // SAFETY: FFmpeg calls this with its own valid arguments; the va_list is consumed once.
    unsafe {
        if level > sys::av_log_get_level() {
            return;
        }
        let mut buf = [0 as c_char; 1024];
        let mut print_prefix: c_int = 1;
        sys::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as c_int,
            &mut print_prefix,
        );
        let piece = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
        let class = class_name(avcl);
        let _ = std::panic::catch_unwind(|| emit(level, class, &piece));
    }
}

unsafe fn class_name(avcl: *mut c_void) -> Option<String> {
    if avcl.is_null() {
        return None;
    }
    // SAFETY: by FFmpeg's logging contract a non-null context starts with an AVClass pointer.
    unsafe {
        let class = *(avcl as *const *const sys::AVClass);
        if class.is_null() {
            return None;
        }
        let item_name = (*class).item_name?;
        let name = item_name(avcl);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

fn emit(level: c_int, class: Option<String>, piece: &str) {
    let line = PARTIAL.with(|p| {
        let mut p = p.borrow_mut();
        p.push_str(piece);
        if !p.ends_with('\n') {
            return None;
        }
        let line = p.trim().to_string();
        p.clear();
        Some(line)
    });
    let Some(line) = line else { return };
    if line.is_empty() {
        return;
    }
    // The formatted line starts with "[name @ 0x…] "; keep the name, drop the address.
    let text = match (line.strip_prefix('['), class) {
        (Some(rest), Some(class)) => match rest.split_once("] ") {
            Some((_, msg)) => format!("{class}: {msg}"),
            None => line.clone(),
        },
        _ => line.clone(),
    };
    match level {
        l if l <= sys::AV_LOG_ERROR => {
            tracing::error!(target: "ffmpeg", "{text}");
            let seq = LOG_SEQ.fetch_add(1, Ordering::SeqCst) + 1;
            let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back(LogLine { seq, text });
        }
        l if l <= sys::AV_LOG_WARNING => tracing::warn!(target: "ffmpeg", "{text}"),
        l if l <= sys::AV_LOG_INFO => tracing::info!(target: "ffmpeg", "{text}"),
        l if l <= sys::AV_LOG_DEBUG => tracing::debug!(target: "ffmpeg", "{text}"),
        _ => tracing::trace!(target: "ffmpeg", "{text}"),
    }
}

// ---------------------------------------------------------------------------------------
// Reading stream parameters.

fn cstr(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: FFmpeg returns NUL-terminated static or context-owned strings.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

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

fn pixel_format_name(v: c_int) -> Option<String> {
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

// ---------------------------------------------------------------------------------------
// Format detection without opening: which demuxer would FFmpeg pick for these bytes?

/// The demuxer FFmpeg would choose for a file starting with `head`, as (name, long name).
pub fn detect_demuxer(file_name: &str, head: &[u8]) -> Option<(String, String)> {
    let padding = sys::AVPROBE_PADDING_SIZE as usize;
    let mut buf = vec![0u8; head.len() + padding];
    buf[..head.len()].copy_from_slice(head);
    let name = CString::new(file_name).unwrap_or_default();
    let pd = sys::AVProbeData {
        filename: name.as_ptr(),
        buf: buf.as_mut_ptr(),
        buf_size: head.len() as c_int,
        mime_type: ptr::null(),
    };
    let mut score: c_int = 0;
    // SAFETY: `pd` points at a zero-padded buffer as FFmpeg requires; the result is a
    // static demuxer description.
    unsafe {
        let fmt = sys::av_probe_input_format2(&pd, 1, &mut score);
        if fmt.is_null() {
            return None;
        }
        Some((
            cstr((*fmt).name).unwrap_or_default(),
            cstr((*fmt).long_name).unwrap_or_default(),
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Muxers, encoders and options.

/// The AVFMT_* flags of the named muxer, or None if this FFmpeg has no such muxer.
pub fn muxer_flags(name: &str) -> Option<c_int> {
    let name = CString::new(name).ok()?;
    // SAFETY: returns a pointer to a static muxer description or null.
    unsafe {
        let fmt = sys::av_guess_format(name.as_ptr(), ptr::null(), ptr::null());
        (!fmt.is_null()).then(|| (*fmt).flags)
    }
}

/// Whether the muxer can hold codec `id`, by FFmpeg's `avformat_query_codec`: Some(true) or
/// Some(false) when FFmpeg knows, None when the muxer does not say (several don't).
pub fn muxer_supports(muxer: &str, id: ff::codec::Id) -> Option<bool> {
    let name = CString::new(muxer).ok()?;
    // SAFETY: the muxer pointer is static; the query only reads it.
    unsafe {
        let fmt = sys::av_guess_format(name.as_ptr(), ptr::null(), ptr::null());
        if fmt.is_null() {
            return Some(false);
        }
        match sys::avformat_query_codec(fmt, id.into(), sys::FF_COMPLIANCE_NORMAL) {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
}

pub const AVFMT_GLOBALHEADER: c_int = sys::AVFMT_GLOBALHEADER as c_int;

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

/// Clears a copied stream's codec tag so the target container picks its own.
pub fn reset_codec_tag(params: &mut ff::codec::Parameters) {
    // SAFETY: plain field write on owned parameters.
    unsafe { (*params.as_mut_ptr()).codec_tag = 0 }
}

/// Attaches a display matrix (rotation) to an output stream before its header is written.
pub fn set_display_matrix(stream: &mut ff::format::stream::StreamMut, matrix: &[i32; 9]) {
    // SAFETY: the stream belongs to an output context whose header is not yet written; FFmpeg
    // allocates the side data and we fill exactly its 36 bytes.
    unsafe {
        let sd = sys::av_stream_new_side_data(
            stream.as_mut_ptr(),
            sys::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            std::mem::size_of::<[i32; 9]>(),
        );
        if !sd.is_null() {
            ptr::copy_nonoverlapping(matrix.as_ptr() as *const u8, sd, 36);
        }
    }
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

/// Sets the stream's average and real frame rate (what players read as "fps").
pub fn set_stream_frame_rate(stream: &mut ff::format::stream::StreamMut, rate: ff::Rational) {
    stream.set_avg_frame_rate(rate);
    stream.set_rate(rate);
}

/// Sets the disposition flags of an output stream (default track and so on).
pub fn set_disposition(stream: &mut ff::format::stream::StreamMut, default: bool) {
    // SAFETY: plain field write before the header is written.
    unsafe {
        let st = stream.as_mut_ptr();
        if default {
            (*st).disposition |= sys::AV_DISPOSITION_DEFAULT as c_int;
        } else {
            (*st).disposition &= !(sys::AV_DISPOSITION_DEFAULT as c_int);
        }
    }
}

/// The byte position the demuxer has reached in its input.
pub fn input_position(input: &ff::format::context::Input) -> i64 {
    // SAFETY: reads the context's AVIO position; `pb` is checked for null.
    unsafe {
        let ctx = input.as_ptr();
        let pb = (*ctx).pb;
        if pb.is_null() {
            0
        } else {
            sys::avio_seek(pb, 0, libc::SEEK_CUR)
        }
    }
}

/// The input's start time in AV_TIME_BASE units, when the demuxer knows it.
pub fn input_start_time(input: &ff::format::context::Input) -> Option<i64> {
    // SAFETY: plain field read.
    let t = unsafe { (*input.as_ptr()).start_time };
    (t != sys::AV_NOPTS_VALUE).then_some(t)
}

/// Adds `AV_CODEC_FLAG_GLOBAL_HEADER` to an encoder context (for muxers that want codec
/// headers out of band), keeping any flags already set.
pub fn set_global_header(ctx: &mut ff::codec::Context) {
    // SAFETY: plain field update on a context not yet opened.
    unsafe { (*ctx.as_mut_ptr()).flags |= sys::AV_CODEC_FLAG_GLOBAL_HEADER as c_int }
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

/// Sets an output stream's codec tag (e.g. `hvc1` for HEVC in MP4, which Apple players need).
pub fn set_codec_tag(stream: &mut ff::format::stream::StreamMut, tag: [u8; 4]) {
    // SAFETY: plain field write before the header is written.
    unsafe {
        (*(*stream.as_mut_ptr()).codecpar).codec_tag = u32::from_le_bytes(tag);
    }
}

/// Opens an output file for the named muxer, restricted to the local `file` protocol
/// (including any files the muxer opens itself, such as HLS segments).
pub fn open_output(path: &str, muxer: &str) -> Result<ff::format::context::Output, ff::Error> {
    let c_path = CString::new(path).map_err(|_| ff::Error::InvalidData)?;
    let c_muxer = CString::new(muxer).map_err(|_| ff::Error::InvalidData)?;
    let whitelist = CString::new("file").map_err(|_| ff::Error::InvalidData)?;
    // SAFETY: the context is allocated by FFmpeg and either wrapped (owned by the returned
    // Output, which closes `pb` and frees it) or freed here on failure.
    unsafe {
        let mut ctx = ptr::null_mut();
        let r = sys::avformat_alloc_output_context2(
            &mut ctx,
            ptr::null(),
            c_muxer.as_ptr(),
            c_path.as_ptr(),
        );
        if r < 0 || ctx.is_null() {
            return Err(ff::Error::from(if r < 0 {
                r
            } else {
                sys::AVERROR_MUXER_NOT_FOUND
            }));
        }
        (*ctx).protocol_whitelist = sys::av_strdup(whitelist.as_ptr());
        if (*(*ctx).oformat).flags & sys::AVFMT_NOFILE as c_int == 0 {
            let mut opts: *mut sys::AVDictionary = ptr::null_mut();
            sys::av_dict_set(
                &mut opts,
                c"protocol_whitelist".as_ptr(),
                whitelist.as_ptr(),
                0,
            );
            let r = sys::avio_open2(
                &mut (*ctx).pb,
                c_path.as_ptr(),
                sys::AVIO_FLAG_WRITE as c_int,
                &(*ctx).interrupt_callback,
                &mut opts,
            );
            sys::av_dict_free(&mut opts);
            if r < 0 {
                sys::avformat_free_context(ctx);
                return Err(ff::Error::from(r));
            }
        }
        Ok(ff::format::context::Output::wrap(ctx))
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

/// How long a decoded frame lasts, in its stream's time base (0 when unknown).
pub fn frame_duration(frame: &ff::Frame) -> i64 {
    // SAFETY: plain field read.
    unsafe { (*frame.as_ptr()).pkt_duration.max(0) }
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
