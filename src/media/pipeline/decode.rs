//! Decoders: opened threaded and capped in size, and the rule for when a damaged stream fails
//! the run. Isolated corrupt packets are concealed (and logged), as players do; a stream that
//! yields no picture or sound at all, or more errors than frames, fails with FFmpeg's reason.

use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::input::MAX_PIXELS;

/// Opens the decoder for an input stream, with FFmpeg's automatic threading.
pub(crate) fn open(
    path: &Path,
    stream: &ff::format::stream::Stream,
) -> Result<ff::decoder::Opened, MediaError> {
    let facts = ffi::stream_facts(stream);
    let fail = |e: ff::Error, mark: u64| MediaError::Decode {
        path: path.to_path_buf(),
        stream: stream.index(),
        codec: facts.codec.clone(),
        reason: with_detail(&e, ffi::errors_since(mark)),
    };
    let mark = ffi::log_mark();
    let mut ctx =
        ff::codec::Context::from_parameters(stream.parameters()).map_err(|e| fail(e, mark))?;
    ffi::set_threads_auto(&mut ctx);
    ffi::set_max_pixels(&mut ctx, MAX_PIXELS as i64);
    ffi::set_packet_time_base(&mut ctx, stream.time_base());
    let decoder = ctx.decoder();
    let codec = ff::decoder::find(stream.parameters().id()).ok_or_else(|| MediaError::Decode {
        path: path.to_path_buf(),
        stream: stream.index(),
        codec: facts.codec.clone(),
        reason: "this FFmpeg build has no decoder for it".into(),
    })?;
    decoder.open_as(codec).map_err(|e| fail(e, mark))
}

/// An input audio stream's opened decoder, its packets' time base and its health record.
pub(crate) struct AudioDecoder {
    pub decoder: ff::decoder::Audio,
    pub time_base: ff::Rational,
    pub health: Health,
}

/// Opens the audio decoder for input stream `index` of `input`.
pub(crate) fn open_audio(
    input: &crate::media::input::Input,
    index: usize,
) -> Result<AudioDecoder, MediaError> {
    let stream = input
        .ctx
        .stream(index)
        .ok_or_else(|| MediaError::Internal("audio stream vanished".into()))?;
    let decoder = open(&input.path, &stream)?
        .audio()
        .map_err(|e| MediaError::Decode {
            path: input.path.clone(),
            stream: index,
            codec: ffi::stream_facts(&stream).codec,
            reason: e.to_string(),
        })?;
    Ok(AudioDecoder {
        decoder,
        time_base: stream.time_base(),
        health: Health::new(&input.path, &stream),
    })
}

/// Hands `frame` to each of `n` consumers: references to all but the last, which takes the
/// frame itself (no copy of the samples). A reference that cannot be made skips that one.
pub(crate) fn fan_out(
    mut frame: ff::frame::Audio,
    n: usize,
    mut each: impl FnMut(usize, ff::frame::Audio) -> Result<(), MediaError>,
) -> Result<(), MediaError> {
    for i in 0..n {
        let f = if i + 1 == n {
            std::mem::replace(&mut frame, ff::frame::Audio::empty())
        } else {
            match ffi::frame_ref(&frame) {
                Some(r) => ff::frame::Audio::from(r),
                None => continue,
            }
        };
        each(i, f)?;
    }
    Ok(())
}

/// Counts what a decoder produced and what it refused.
pub(crate) struct Health {
    path: PathBuf,
    stream: usize,
    codec: String,
    pub decoded: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Health {
    pub fn new(path: &Path, stream: &ff::format::stream::Stream) -> Self {
        Health {
            path: path.to_path_buf(),
            stream: stream.index(),
            codec: ffi::stream_facts(stream).codec,
            decoded: 0,
            errors: 0,
            first_error: None,
        }
    }

    pub fn error(&mut self, e: &ff::Error, mark: u64) {
        self.errors += 1;
        let reason = with_detail(e, ffi::errors_since(mark));
        if self.errors <= 3 {
            tracing::warn!("input stream #{} ({}): {reason}", self.stream, self.codec);
        }
        self.first_error.get_or_insert(reason);
    }

    /// Whether the stream decoded well enough to trust the output.
    pub fn verdict(&self) -> Result<(), MediaError> {
        let broken = (self.decoded == 0 && self.errors > 0) || self.errors > self.decoded;
        if !broken {
            return Ok(());
        }
        Err(MediaError::Decode {
            path: self.path.clone(),
            stream: self.stream,
            codec: self.codec.clone(),
            reason: format!(
                "{} ({} of {} packets failed)",
                self.first_error
                    .clone()
                    .unwrap_or_else(|| "no frame could be decoded".into()),
                self.errors,
                self.errors + self.decoded
            ),
        })
    }
}

/// Whether an error from `receive_frame`/`receive_packet` only means "nothing more now".
pub(crate) fn is_drained(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Eof) || matches!(e, ff::Error::Other { errno } if *errno == libc::EAGAIN)
}
