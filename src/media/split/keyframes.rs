//! Laying out a split job: the whole input's plan, its video keyframes (read from the
//! packets, nothing decoded), and cut points on those keyframes about a segment apart — for
//! HLS, only keyframes that start an HLS segment of the output.

use std::path::Path;

use ff::Rescale;
use ffmpeg_next as ff;

use super::{Layout, SavedPlan};
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::input::{self, Input};
use crate::media::{plan, probe};
use crate::preset::{Preset, VideoOutput};
use crate::stop::StopToken;

const MICROS: ff::Rational = ff::Rational(1, 1_000_000);

/// How an input is split for `preset` into parts of about `segment_seconds`. None when the
/// preset does not encode video (stream copy, still picture), the input's length is unknown,
/// or it is shorter than two segments (or has no keyframe to cut at).
pub fn layout(
    input: &Path,
    preset: &Preset,
    segment_seconds: u32,
) -> Result<Option<Layout>, MediaError> {
    let encodes_video = matches!(preset.video, Some(VideoOutput::Encode(_)));
    if !encodes_video || preset.container.picture() || segment_seconds == 0 {
        return Ok(None);
    }
    let stop = StopToken::new();
    let mut input = input::open(input, &stop)?;
    let probe = probe::report(&input);
    let plan = plan::plan(&input, &probe, preset)?;
    let Some(saved) = SavedPlan::of(&plan) else {
        return Ok(None);
    };
    let segment_us = i64::from(segment_seconds) * 1_000_000;
    let Some(duration_us) = plan.duration.map(|d| (d * 1e6).round() as i64) else {
        return Ok(None);
    };
    if duration_us < 2 * segment_us {
        return Ok(None);
    }
    let rest_streams = saved.other_inputs();
    let scan = scan(
        &mut input,
        saved.video_input(),
        &rest_streams,
        plan.start_offset_us,
    )?;
    let keys = scan.keys;
    let hls_us = preset
        .hls
        .as_ref()
        .map(|h| (h.segment_seconds * 1e6).round() as i64);
    let spacing = Spacing {
        segment_us,
        duration_us,
        hls_us,
        frame_us: frame_us(&input, saved.video_input()),
    };
    let cuts = spacing.cuts(&keys);
    if cuts.is_empty() {
        return Ok(None);
    }
    Ok(Some(Layout {
        ranges: ranges(&cuts, duration_us),
        duration_us,
        has_audio: !rest_streams.is_empty(),
        preset: preset.name.clone(),
        segment_us: hls_us,
        rest_skip_samples: scan.skips,
        rest_streams,
        plan: saved,
        input: probe,
    }))
}

/// What one pass over the packets finds.
struct Scan {
    /// The output times (µs) of the video stream's keyframes, in file order.
    keys: Vec<i64>,
    /// Per `rest` stream, the priming samples its first packet tells the decoder to drop.
    skips: Vec<u32>,
}

/// Reads every packet (nothing decoded) for the video's keyframes and the other streams'
/// priming.
fn scan(
    input: &mut Input,
    video: usize,
    rest: &[usize],
    start_offset_us: i64,
) -> Result<Scan, MediaError> {
    let time_base = input
        .ctx
        .stream(video)
        .map(|s| s.time_base())
        .ok_or_else(|| MediaError::Internal("video stream vanished".into()))?;
    let offset = start_offset_us.rescale(MICROS, time_base);
    let mut keys = Vec::new();
    let mut skips: Vec<Option<u32>> = vec![None; rest.len()];
    let mut packet = ff::Packet::empty();
    loop {
        let mark = ffi::log_mark();
        match packet.read(&mut input.ctx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => continue,
            Err(e) => {
                return Err(MediaError::Demux {
                    path: input.path.clone(),
                    reason: with_detail(&e, ffi::errors_since(mark)),
                });
            }
        }
        if let Some(i) = rest.iter().position(|&r| r == packet.stream()) {
            skips[i].get_or_insert_with(|| ffi::skip_samples(&packet));
        }
        if packet.stream() != video || !packet.is_key() {
            continue;
        }
        if let Some(t) = packet.pts().or(packet.dts()) {
            keys.push((t - offset).rescale(time_base, MICROS));
        }
    }
    Ok(Scan {
        keys,
        skips: skips.into_iter().map(Option::unwrap_or_default).collect(),
    })
}

/// One frame's duration (µs) at the video's average rate (30 fps when it is unknown).
fn frame_us(input: &Input, video: usize) -> i64 {
    let rate = input
        .ctx
        .stream(video)
        .map(|s| s.avg_frame_rate())
        .filter(|r| r.numerator() > 0 && r.denominator() > 0)
        .map_or(30.0, f64::from);
    (1e6 / rate).round() as i64
}

/// What cut points must respect.
struct Spacing {
    segment_us: i64,
    duration_us: i64,
    /// HLS: the segment length every cut must start.
    hls_us: Option<i64>,
    frame_us: i64,
}

impl Spacing {
    /// A keyframe at `t` starts an HLS segment when it is the first frame at or after a
    /// multiple of the segment length (the encoder forces a keyframe there).
    fn allowed(&self, t: i64) -> bool {
        match self.hls_us {
            Some(s) if s > 0 => t.rem_euclid(s) < self.frame_us,
            _ => true,
        }
    }

    /// Cut points: each the allowed keyframe nearest to a segment past the previous one, at
    /// least half a segment from it and from the end.
    fn cuts(&self, keys: &[i64]) -> Vec<i64> {
        let half = self.segment_us / 2;
        let mut cuts = Vec::new();
        let mut previous = 0;
        loop {
            let want = previous + self.segment_us;
            if self.duration_us - want < half {
                return cuts;
            }
            let best = keys
                .iter()
                .copied()
                .filter(|&k| k >= previous + half && k <= self.duration_us - half)
                .filter(|&k| self.allowed(k))
                .min_by_key(|&k| (k - want).abs());
            let Some(cut) = best else { return cuts };
            cuts.push(cut);
            previous = cut;
        }
    }
}

/// The parts' ranges: from 0 to the first cut, between cuts, and from the last to the end.
fn ranges(cuts: &[i64], duration_us: i64) -> Vec<(i64, i64)> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(duration_us);
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_two_seconds(until: i64) -> Vec<i64> {
        (0..until / 2_000_000).map(|i| i * 2_000_000).collect()
    }

    #[test]
    fn cuts_fall_on_keyframes_about_a_segment_apart() {
        let s = Spacing {
            segment_us: 30_000_000,
            duration_us: 240_000_000,
            hls_us: None,
            frame_us: 33_333,
        };
        let cuts = s.cuts(&every_two_seconds(240_000_000));
        assert_eq!(cuts, (1..8).map(|i| i * 30_000_000).collect::<Vec<_>>());
        let r = ranges(&cuts, 240_000_000);
        assert_eq!(r.len(), 8);
        assert_eq!(r[0], (0, 30_000_000));
        assert_eq!(r[7], (210_000_000, 240_000_000));
    }

    #[test]
    fn hls_cuts_start_segments_and_a_short_tail_joins_the_last_part() {
        let s = Spacing {
            segment_us: 25_000_000,
            duration_us: 62_000_000,
            hls_us: Some(6_000_000),
            frame_us: 33_333,
        };
        let cuts = s.cuts(&every_two_seconds(62_000_000));
        // 24 s is the 6 s boundary nearest 25 s; the next want (49 s) leaves 13 s, so one
        // more cut at 48 s; then 73 s is past the end.
        assert_eq!(cuts, vec![24_000_000, 48_000_000]);
        assert!(cuts.iter().all(|c| c % 6_000_000 == 0));
    }

    #[test]
    fn no_keyframe_to_cut_at_means_no_cut() {
        let s = Spacing {
            segment_us: 30_000_000,
            duration_us: 240_000_000,
            hls_us: None,
            frame_us: 33_333,
        };
        assert!(s.cuts(&[0]).is_empty());
    }
}
