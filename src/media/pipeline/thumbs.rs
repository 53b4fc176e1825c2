//! Picked frames: a poster's one picture beside other outputs (`pick`), and a storyboard's
//! thumbnails: from a rendition's decoded frames, the frame on screen at the
//! start of each interval (0, N, 2N … seconds) while the video lasts, stamped with that
//! start. A frame that stays on screen across several starts stands for each of them, so
//! thumbnail `k` is always at `k × N` and the storyboard's cues can be written from the
//! count alone.

use std::collections::VecDeque;

use crossbeam_channel::Receiver;
use ff::Rescale;
use ffmpeg_next as ff;

use super::Shared;
use crate::media::ffi;

pub(super) struct Thumbnails<'a> {
    frames: crossbeam_channel::Iter<'a, ff::frame::Video>,
    shared: &'a Shared<'a>,
    interval: f64,
    time_base: ff::Rational,
    frame_rate: Option<ff::Rational>,
    /// The next thumbnail's number.
    next: i64,
    /// The latest frame seen: on screen until the next one's time.
    held: Option<(ff::frame::Video, f64)>,
    ready: VecDeque<ff::frame::Video>,
    done: bool,
}

impl<'a> Thumbnails<'a> {
    pub(super) fn new(
        shared: &'a Shared<'a>,
        frames: &'a Receiver<ff::frame::Video>,
        interval: f64,
        time_base: ff::Rational,
        frame_rate: Option<ff::Rational>,
    ) -> Thumbnails<'a> {
        Thumbnails {
            frames: frames.iter(),
            shared,
            interval,
            time_base,
            frame_rate,
            next: 0,
            held: None,
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// The number of thumbnails handed out so far.
    pub(super) fn handed_out(&self) -> u64 {
        self.next.max(0) as u64 - self.ready.len() as u64
    }

    fn seconds(&self, pts: i64) -> f64 {
        pts as f64 * f64::from(self.time_base)
    }

    /// Queues `frame` as every thumbnail whose start lies before `until` (seconds).
    fn stand_for_starts_before(&mut self, frame: &ff::frame::Video, until: f64) {
        while (self.next as f64) * self.interval < until - 1e-6 {
            let Some(r) = ffi::frame_ref(frame) else {
                return;
            };
            let mut thumb = ff::frame::Video::from(r);
            let start = (self.next as f64 * self.interval * 1e6).round() as i64;
            thumb.set_pts(Some(
                start.rescale(ff::Rational::new(1, 1_000_000), self.time_base),
            ));
            self.ready.push_back(thumb);
            self.next += 1;
        }
    }

    /// Where the held frame leaves the screen: its time plus its duration (or one frame).
    fn end_of(&self, frame: &ff::frame::Video, at: f64) -> f64 {
        let mut duration = ffi::frame_duration(frame);
        if duration == 0
            && let Some(r) = self.frame_rate.filter(|r| r.numerator() > 0)
        {
            duration = 1i64.rescale(r.invert(), self.time_base);
        }
        at + self.seconds(duration.max(1))
    }
}

impl Iterator for Thumbnails<'_> {
    type Item = ff::frame::Video;

    fn next(&mut self) -> Option<ff::frame::Video> {
        loop {
            if let Some(t) = self.ready.pop_front() {
                return Some(t);
            }
            if self.done {
                return None;
            }
            match self.frames.next() {
                Some(_) if self.shared.aborted() => self.done = true,
                Some(frame) => {
                    let at = frame.pts().map_or(0.0, |p| self.seconds(p));
                    // The starts before this frame show the one before it (or this one,
                    // for starts before the first frame).
                    let shown = self.held.take().map_or_else(
                        || ffi::frame_ref(&frame).map(ff::frame::Video::from),
                        |(h, _)| Some(h),
                    );
                    if let Some(shown) = shown {
                        self.stand_for_starts_before(&shown, at);
                    }
                    self.held = Some((frame, at));
                }
                None => {
                    self.done = true;
                    if let Some((last, at)) = self.held.take() {
                        let end = self.end_of(&last, at);
                        self.stand_for_starts_before(&last, end);
                    }
                }
            }
        }
    }
}

/// The one frame at media time `at` (seconds): the first at or after it, or the last one
/// when the stream ends before it. None when the run is aborted or no frame came.
pub(super) fn pick(
    shared: &Shared,
    frames: &Receiver<ff::frame::Video>,
    at: f64,
    time_base: ff::Rational,
) -> Option<ff::frame::Video> {
    let mut last = None;
    for frame in frames.iter() {
        if shared.aborted() {
            return None;
        }
        let t = frame.pts().map_or(0.0, |p| p as f64 * f64::from(time_base));
        if t + 1e-3 >= at {
            return Some(frame);
        }
        last = Some(frame);
    }
    last
}
