//! Writing captions: a track's events encoded with FFmpeg's subtitle encoders (webvtt,
//! mov_text, ass) into packets in milliseconds, and files of their own written with FFmpeg's
//! `webvtt` and `ass` muxers.

use std::path::Path;

use ffmpeg_next as ff;

use super::Track;
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;

/// The time base caption packets are timed in.
pub(crate) const MILLISECONDS: ff::Rational = ff::Rational(1, 1000);

/// The largest encoded caption accepted (the encoders' own buffer in the command line).
const MAX_PACKET: usize = 1 << 20;

/// `track` encoded with the named encoder: the stream's parameters and one packet per cue,
/// timed in [`MILLISECONDS`].
pub(crate) fn encoded(
    track: &Track,
    encoder: &str,
) -> Result<(ff::codec::Parameters, Vec<ff::Packet>), MediaError> {
    let fail = |e: ff::Error, mark: u64| MediaError::Encode {
        codec: encoder.to_string(),
        reason: format!(
            "{} ({})",
            with_detail(&e, ffi::errors_since(mark)),
            track.source
        ),
    };
    let mark = ffi::log_mark();
    let codec = ff::encoder::find_by_name(encoder).ok_or_else(|| MediaError::Encode {
        codec: encoder.to_string(),
        reason: "this FFmpeg build has no such encoder".into(),
    })?;
    let mut ctx = ff::codec::Context::new_with_codec(codec);
    ctx.set_time_base(MILLISECONDS);
    ffi::set_subtitle_header(&mut ctx, &track.header);
    let mut enc = ctx
        .encoder()
        .subtitle()
        .and_then(|e| e.open_as(codec))
        .map_err(|e| fail(e, mark))?;
    let params = ff::codec::Parameters::from(&*enc);
    let mut buf = vec![0u8; MAX_PACKET];
    let mut packets = Vec::with_capacity(track.cues.len());
    for cue in &track.cues {
        let mut sub = ff::Subtitle::new();
        sub.set_pts(Some(cue.start_us));
        sub.set_start(0);
        sub.set_end(((cue.end_us - cue.start_us) / 1000).clamp(1, i64::from(u32::MAX)) as u32);
        if let ff::codec::subtitle::RectMut::Ass(mut rect) =
            sub.add_rect(ff::codec::subtitle::Type::Ass)
        {
            // Decoded from C strings, the text holds no NUL; the binding would panic on one.
            rect.set(&cue.text.replace('\0', ""));
        }
        let n = ffi::encode_subtitle(&mut enc, &sub, &mut buf);
        ffi::free_subtitle(&mut sub);
        let n = n.map_err(|e| fail(e, mark))?;
        let mut packet = ff::Packet::copy(&buf[..n]);
        let start_ms = cue.start_us / 1000;
        packet.set_pts(Some(start_ms));
        packet.set_dts(Some(start_ms));
        packet.set_duration((cue.end_us / 1000 - start_ms).max(1));
        packets.push(packet);
    }
    Ok((params, packets))
}

/// Writes `track` as a WebVTT file at `path`. For an HLS rendition, `timestamp_map` puts
/// the `X-TIMESTAMP-MAP` header in that ties the cues' zero to the segments' MPEG-TS clock.
pub(crate) fn write_webvtt(
    track: &Track,
    path: &Path,
    timestamp_map: Option<&str>,
) -> Result<(), MediaError> {
    write_file(track, path, "webvtt", "webvtt")?;
    let Some(map) = timestamp_map else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path).map_err(|e| MediaError::io(path, e))?;
    let body = text.strip_prefix("WEBVTT").unwrap_or(&text);
    let with_map = format!("WEBVTT\nX-TIMESTAMP-MAP={map}{body}");
    std::fs::write(path, with_map).map_err(|e| MediaError::io(path, e))
}

/// Writes `track` as an ASS script at `path` (what libass renders for burn-in).
pub(crate) fn write_ass(track: &Track, path: &Path) -> Result<(), MediaError> {
    write_file(track, path, "ass", "ass")
}

/// Writes `track` encoded with `encoder` into a file of its own with `muxer`.
fn write_file(track: &Track, path: &Path, encoder: &str, muxer: &str) -> Result<(), MediaError> {
    let (params, packets) = encoded(track, encoder)?;
    let name = crate::media::utf8_path(path)?;
    let mark = ffi::log_mark();
    let fail = |e: ff::Error, mark: u64| MediaError::Mux {
        path: path.to_path_buf(),
        reason: with_detail(&e, ffi::errors_since(mark)),
    };
    let mut octx = ffi::open_output(name, muxer).map_err(|e| fail(e, mark))?;
    {
        let mut ost = octx
            .add_stream(ff::encoder::find(ff::codec::Id::None))
            .map_err(|e| fail(e, mark))?;
        ost.set_parameters(params);
        ost.set_time_base(MILLISECONDS);
    }
    octx.write_header().map_err(|e| fail(e, mark))?;
    let out_time_base = octx.stream(0).map_or(MILLISECONDS, |s| s.time_base());
    for mut packet in packets {
        packet.rescale_ts(MILLISECONDS, out_time_base);
        packet.set_stream(0);
        packet
            .write_interleaved(&mut octx)
            .map_err(|e| fail(e, mark))?;
    }
    octx.write_trailer().map_err(|e| fail(e, mark))
}
