//! Demuxer detection, muxers and output files, and format-context fields.

use std::ffi::{CString, c_int};
use std::ptr;

use ff::ffi as sys;
use ffmpeg_next as ff;

use super::cstr;

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

/// Sets an output stream's codec tag (e.g. `hvc1` for HEVC in MP4, which Apple players need).
pub fn set_codec_tag(stream: &mut ff::format::stream::StreamMut, tag: [u8; 4]) {
    // SAFETY: plain field write before the header is written.
    unsafe {
        (*(*stream.as_mut_ptr()).codecpar).codec_tag = u32::from_le_bytes(tag);
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

/// Opens an output file for the named muxer, restricted to the local `file` protocol
/// (including any files the muxer opens itself, such as HLS segments).
pub fn open_output(path: &str, muxer: &str) -> Result<ff::format::context::Output, ff::Error> {
    let c_path = CString::new(path).map_err(|_| ff::Error::InvalidData)?;
    let c_muxer = CString::new(muxer).map_err(|_| ff::Error::InvalidData)?;
    // The hls muxer writes encrypted segments through `crypto:` over a file it names from
    // its options (ours); `crypto` only wraps a nested URL, which the list still holds to
    // `file`.
    let protocols = if muxer == "hls" {
        "file,crypto"
    } else {
        "file"
    };
    let whitelist = CString::new(protocols).map_err(|_| ff::Error::InvalidData)?;
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

/// Where an input's duration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationSource {
    /// Declared by the container or its streams' headers (MP4, Matroska, …).
    Header,
    /// Estimated from the first and last timestamps (MPEG-TS and -PS, NUT).
    Timestamps,
    /// Estimated from the file size and bit rate (raw streams without timestamps).
    BitRate,
}

/// How FFmpeg arrived at the input's duration.
pub fn duration_source(input: &ff::format::context::Input) -> DurationSource {
    // SAFETY: plain field read.
    let method = unsafe { (*input.as_ptr()).duration_estimation_method };
    match method {
        sys::AVDurationEstimationMethod::AVFMT_DURATION_FROM_STREAM => DurationSource::Header,
        sys::AVDurationEstimationMethod::AVFMT_DURATION_FROM_PTS => DurationSource::Timestamps,
        _ => DurationSource::BitRate,
    }
}
