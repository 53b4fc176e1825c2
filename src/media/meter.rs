//! The engine's progress meter: shared counters the pipeline's threads update, read as a
//! [`Progress`] measured from the output's timestamps over the input's duration.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crate::progress::{Phase, Progress};

/// Shared counters the pipeline's threads update and the coordinator reads.
pub(crate) struct Meter {
    started: Instant,
    duration: Option<f64>,
    input_size: u64,
    /// Video frames encoded by the first rendition.
    pub frames: AtomicU64,
    /// Per output file: the furthest media time written, in microseconds.
    out_time_us: Vec<AtomicI64>,
    /// Per output file: the pictures a storyboard tiled into it.
    pictures: Vec<AtomicU64>,
    /// How far the demuxer has read, in bytes (used when the duration is unknown).
    pub input_pos: AtomicI64,
    /// Damage in the input the decoders got past: packets they refused, and frames they
    /// concealed errors in.
    pub damaged: AtomicU64,
    /// The media time (µs) the output starts at: a part of a split job starts part-way.
    origin_us: i64,
    /// Outputs left out of the media time reached: a poster beside other outputs is
    /// written at its picture's time, wherever the rest are.
    untimed: Vec<usize>,
}

impl Meter {
    pub fn new(duration: Option<f64>, input_size: u64, outputs: usize) -> Self {
        Meter {
            started: Instant::now(),
            duration,
            input_size,
            frames: AtomicU64::new(0),
            out_time_us: (0..outputs).map(|_| AtomicI64::new(0)).collect(),
            pictures: (0..outputs).map(|_| AtomicU64::new(0)).collect(),
            input_pos: AtomicI64::new(0),
            damaged: AtomicU64::new(0),
            origin_us: 0,
            untimed: Vec::new(),
        }
    }

    /// The same meter, leaving `outputs` out of the media time reached (unless that would
    /// leave none: then their pictures' times are all there is to go by).
    pub fn untimed(mut self, outputs: Vec<usize>) -> Self {
        if outputs.len() < self.out_time_us.len() {
            self.untimed = outputs;
        }
        self
    }

    /// The same meter, measuring from `origin_us` of media time.
    pub fn from(mut self, origin_us: i64) -> Self {
        self.origin_us = origin_us;
        self
    }

    pub fn wrote_until(&self, output: usize, us: i64) {
        if let Some(slot) = self.out_time_us.get(output) {
            slot.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// Records that a storyboard tiled `count` pictures into output `output`.
    pub fn tiled(&self, output: usize, count: u64) {
        if let Some(slot) = self.pictures.get(output) {
            slot.store(count, Ordering::Relaxed);
        }
    }

    /// The pictures a storyboard tiled into output `output`.
    pub fn pictures(&self, output: usize) -> u64 {
        self.pictures
            .get(output)
            .map_or(0, |p| p.load(Ordering::Relaxed))
    }

    /// The media time every output has reached.
    pub fn out_time(&self) -> f64 {
        let us = self
            .out_time_us
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.untimed.contains(i))
            .map(|(_, t)| t.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        (us - self.origin_us).max(0) as f64 / 1e6
    }

    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn snapshot(&self, phase: Phase) -> Progress {
        let elapsed = self.elapsed().max(1e-6);
        let out_time = self.out_time();
        let frames = self.frames.load(Ordering::Relaxed);
        let fraction = match self.duration {
            Some(d) if d > 0.0 => out_time / d,
            _ if self.input_size > 0 => {
                self.input_pos.load(Ordering::Relaxed).max(0) as f64 / self.input_size as f64
            }
            _ => 0.0,
        };
        let percent = match phase {
            Phase::Done => 100.0,
            _ => (fraction * 100.0).clamp(0.0, 99.9),
        };
        let speed = (out_time > 0.0).then(|| out_time / elapsed);
        let eta = match (self.duration, speed) {
            (Some(d), Some(s)) if s > 0.0 => Some(((d - out_time) / s).max(0.0)),
            _ => None,
        };
        Progress {
            phase,
            percent: (percent * 10.0).round() / 10.0,
            fps: (frames > 0).then(|| (frames as f64 / elapsed * 10.0).round() / 10.0),
            speed: speed.map(|s| (s * 100.0).round() / 100.0),
            eta_seconds: match phase {
                Phase::Done => Some(0.0),
                _ => eta.map(|e| e.round()),
            },
            frames,
            out_time_seconds: (out_time * 1000.0).round() / 1000.0,
            ..Progress::default()
        }
    }
}
