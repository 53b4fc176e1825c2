//! Reading captions: the input's text subtitle streams, in one pass of their own over the
//! file, and caption files (SRT, ASS/SSA, WebVTT) opened as untrusted input with a demuxer
//! allow-list of their own. Everything is decoded to ASS events held in memory.

use std::path::Path;

use ffmpeg_next as ff;

use super::{CaptionFile, Cue, MAX_CUES, MAX_TEXT_BYTES, Track, is_text_codec};
use crate::media::error::MediaError;
use crate::media::ffi;
use crate::media::input::{self, Input};
use crate::media::probe::ProbeReport;
use crate::stop::StopToken;

/// One stream being decoded.
struct Reading {
    index: usize,
    decoder: ff::decoder::Subtitle,
    track: Track,
}

/// The input's text subtitle streams (`probe`'s), decoded from a second reading of `path`;
/// bitmap subtitles (PGS, DVB, DVD) are left out with a warning. No text stream: no read.
pub(crate) fn source_tracks(
    path: &Path,
    probe: &ProbeReport,
    stop: &StopToken,
) -> Result<Vec<Track>, MediaError> {
    let subtitles: Vec<_> = probe
        .streams
        .iter()
        .filter(|s| s.kind == "subtitle")
        .collect();
    for s in subtitles.iter().filter(|s| !is_text_codec(&s.codec)) {
        tracing::warn!(
            "subtitle stream #{} ({}) is pictures, not text: left out of the captions",
            s.index,
            s.codec
        );
    }
    if !subtitles.iter().any(|s| is_text_codec(&s.codec)) {
        return Ok(Vec::new());
    }
    let mut input = input::open(path, stop)?;
    let mut readings = Vec::new();
    for s in subtitles.iter().filter(|s| is_text_codec(&s.codec)) {
        let track = Track {
            language: s.language.clone().filter(|l| l != "und"),
            name: stream_title(&input, s.index),
            source: format!("input stream #{}", s.index),
            ..Track::default()
        };
        let decoder = open_decoder(&input, s.index)?;
        readings.push(Reading {
            index: s.index,
            decoder,
            track,
        });
    }
    read_all(&mut input, &mut readings, stop)?;
    Ok(readings.into_iter().map(|r| r.track).collect())
}

/// A caption file: one text subtitle stream in SRT, ASS/SSA or WebVTT, read whole. Anything
/// else (a picture, media, bytes no caption demuxer reads) fails `captions-invalid`.
pub(crate) fn file_track(file: &CaptionFile, stop: &StopToken) -> Result<Track, MediaError> {
    let path = &file.path;
    let invalid = |what: String| MediaError::Captions {
        path: path.clone(),
        what,
    };
    let mut input = input::open_captions(path, stop).map_err(|e| match e {
        MediaError::Stopped => e,
        MediaError::Refused {
            format, long_name, ..
        } => invalid(format!(
            "not a caption file: FFmpeg detects it as '{format}' ({long_name}); SRT, ASS/SSA \
             or WebVTT expected"
        )),
        // The error names the file first; the captions' error names it once.
        other => {
            let text = other.to_string();
            let prefix = format!("{}: ", path.display());
            invalid(text.strip_prefix(&prefix).unwrap_or(&text).to_string())
        }
    })?;
    let (index, codec) = input
        .ctx
        .streams()
        .find(|s| s.parameters().medium() == ff::media::Type::Subtitle)
        .map(|s| (s.index(), ffi::stream_facts(&s).codec))
        .ok_or_else(|| invalid("it holds no subtitle stream".into()))?;
    if !is_text_codec(&codec) {
        return Err(invalid(format!(
            "not text subtitles (FFmpeg reads them as {codec})"
        )));
    }
    let decoder = open_decoder(&input, index).map_err(|e| invalid(e.to_string()))?;
    let mut readings = vec![Reading {
        index,
        decoder,
        track: Track {
            language: Some(file.language.clone()),
            name: file.name.clone(),
            source: format!("caption file {}", path.display()),
            ..Track::default()
        },
    }];
    read_all(&mut input, &mut readings, stop).map_err(|e| match e {
        MediaError::Stopped => e,
        other => invalid(other.to_string()),
    })?;
    let track = readings.remove(0).track;
    if track.cues.is_empty() {
        return Err(invalid("it holds no caption (no cue decoded)".into()));
    }
    Ok(track)
}

/// The stream's `title` tag, when it has one.
fn stream_title(input: &Input, index: usize) -> Option<String> {
    let stream = input.ctx.stream(index)?;
    let title = stream.metadata().get("title").map(str::to_string);
    title.filter(|t| !t.trim().is_empty())
}

/// The subtitle decoder of input stream `index`, its packets' time base set.
fn open_decoder(input: &Input, index: usize) -> Result<ff::decoder::Subtitle, MediaError> {
    let stream = input
        .ctx
        .stream(index)
        .ok_or_else(|| MediaError::Internal("subtitle stream vanished".into()))?;
    let fail = |reason: String| MediaError::Decode {
        path: input.path.clone(),
        stream: index,
        codec: ffi::stream_facts(&stream).codec,
        reason,
    };
    let mut ctx = ff::codec::Context::from_parameters(stream.parameters())
        .map_err(|e| fail(e.to_string()))?;
    ffi::set_packet_time_base(&mut ctx, stream.time_base());
    ctx.decoder()
        .subtitle()
        .map_err(|e| fail(format!("this FFmpeg build cannot decode it ({e})")))
}

/// Reads `input` to its end, decoding each reading's packets into its track's cues.
fn read_all(
    input: &mut Input,
    readings: &mut [Reading],
    stop: &StopToken,
) -> Result<(), MediaError> {
    let path = input.path.clone();
    let mut text_bytes = 0usize;
    for (stream, packet) in input.ctx.packets() {
        if stop.is_stopped() {
            return Err(MediaError::Stopped);
        }
        let Some(r) = readings.iter_mut().find(|r| r.index == stream.index()) else {
            continue;
        };
        let mut sub = ff::Subtitle::new();
        // A packet that does not decode is one lost caption, as players treat it.
        let got = r.decoder.decode(&packet, &mut sub).unwrap_or(false);
        if got {
            text_bytes += add_cues(&mut r.track, &sub, &packet, stream.time_base());
        }
        ffi::free_subtitle(&mut sub);
        let cues: usize = readings.iter().map(|r| r.track.cues.len()).sum();
        if cues > MAX_CUES || text_bytes > MAX_TEXT_BYTES {
            return Err(MediaError::Limits {
                path,
                what: format!(
                    "more captions than accepted (at most {MAX_CUES} cues and \
                     {MAX_TEXT_BYTES} bytes of text)"
                ),
            });
        }
    }
    for r in readings.iter_mut() {
        r.track.header = ffi::subtitle_header(&r.decoder).unwrap_or_default();
        r.track.cues.sort_by_key(|c| (c.start_us, c.end_us));
    }
    Ok(())
}

/// Adds the ASS events of a decoded subtitle to `track`, timed in microseconds of the
/// input's timeline; returns the bytes of text added.
fn add_cues(
    track: &mut Track,
    sub: &ff::Subtitle,
    packet: &ff::Packet,
    time_base: ff::Rational,
) -> usize {
    let base_us = match sub.pts() {
        Some(pts) => pts,
        None => packet.pts().map_or(0, |p| {
            ff::Rescale::rescale(&p, time_base, ff::Rational::new(1, 1_000_000))
        }),
    };
    let start_us = base_us + i64::from(sub.start()) * 1000;
    let end_ms = sub.end();
    // No end said (an open cue): shown until the next, as a player would; a few seconds.
    let end_us = if end_ms == 0 || end_ms == u32::MAX {
        start_us + 5_000_000
    } else {
        base_us + i64::from(end_ms) * 1000
    };
    let mut added = 0;
    for rect in sub.rects() {
        let text = match rect {
            ff::codec::subtitle::Rect::Ass(a) => a.get().to_string(),
            // Plain text becomes an event of the default style, as FFmpeg's text decoders
            // make it.
            ff::codec::subtitle::Rect::Text(t) => format!("0,0,Default,,0,0,0,,{}", t.get()),
            _ => continue,
        };
        added += text.len();
        track.cues.push(Cue {
            start_us,
            end_us: end_us.max(start_us),
            text,
        });
    }
    added
}
