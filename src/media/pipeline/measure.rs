//! The first pass of loudness normalisation (decision 0076): before the run, the audio
//! streams whose encoders normalise are read and decoded alone — other streams' packets are
//! read past, never decoded — converted as each encoder will take them (rate, sample format,
//! downmix), and measured (`loudness::LoudnessMeter`). It ends on the stop token and holds
//! the input to the run's output limit, as the run does; it reports progress as `Measuring`.
//! A clipped run's audio is measured over the clip alone: read from its start's keyframe,
//! trimmed as the run trims it, and left soon after its end.

use std::path::Path;
use std::time::{Duration, Instant};

use ffmpeg_next as ff;

use super::decode;
use crate::media::encode::{self, AudioEncoderSpec, AudioFormat};
use crate::media::error::{MediaError, with_detail};
use crate::media::ffi;
use crate::media::graph::{AudioShape, Graph};
use crate::media::input::{self, Input};
use crate::media::loudness::{LoudnessMeter, Measured};
use crate::media::plan::{self, AudioWork, Plan, READ_PAST_US};
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;

/// Per audio stream of the plan (`plan.audio`), per encoder group: what the first pass
/// measured, for the groups that normalise.
pub(crate) type Measures = Vec<Vec<Option<GroupMeasure>>>;

/// What the first pass found of the audio one encoder group encodes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupMeasure {
    /// The format its encoder takes, which the audio was measured in.
    pub format: AudioFormat,
    pub measured: Measured,
}

/// How often progress is reported while measuring.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Measures, from the file at `path`, the audio of every encoder group of `plan` that
/// normalises loudness; reads nothing when none does.
pub(crate) fn measure(
    path: &Path,
    plan: &Plan,
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Measures, MediaError> {
    let mut measures: Measures = plan
        .audio
        .iter()
        .map(|a| match &a.work {
            AudioWork::Encode { groups } => vec![None; groups.len()],
            AudioWork::Copy { .. } => Vec::new(),
        })
        .collect();
    if !normalises(plan) {
        return Ok(measures);
    }
    let mut input = input::open(path, stop)?;
    let mut lanes = open_lanes(&input, plan)?;
    read(&mut input, plan, &mut lanes, stop, on_progress)?;
    for lane in lanes {
        let audio = lane.audio;
        for (group, measured) in lane.finish()? {
            measures[audio][group] = measured;
        }
    }
    Ok(measures)
}

/// Whether any encoder group of `plan` normalises loudness.
pub(crate) fn normalises(plan: &Plan) -> bool {
    plan.audio.iter().any(|a| match &a.work {
        AudioWork::Encode { groups } => groups.iter().any(|(s, _)| s.loudness.is_some()),
        AudioWork::Copy { .. } => false,
    })
}

/// One input stream measured: its decoder and a meter per normalising group.
struct Lane {
    /// Its place in `plan.audio`.
    audio: usize,
    stream: usize,
    decoder: ff::decoder::Audio,
    time_base: ff::Rational,
    meters: Vec<GroupMeter>,
}

/// The audio encoder groups will encode, measured: groups that differ only in bit rate (an
/// HLS ladder's rungs) take the same audio, and share one meter.
struct GroupMeter {
    groups: Vec<usize>,
    spec: AudioEncoderSpec,
    /// Set up on the first frame: the conversion into the encoder's format (rebuilt when the
    /// stream changes shape) and the meter after it.
    state: Option<(AudioFormat, Graph, LoudnessMeter)>,
    /// A clip's trim, before the conversion (as the run's audio lanes have it).
    trim: Option<String>,
}

fn open_lanes(input: &Input, plan: &Plan) -> Result<Vec<Lane>, MediaError> {
    let mut lanes = Vec::new();
    for (audio, a) in plan.audio.iter().enumerate() {
        let AudioWork::Encode { groups } = &a.work else {
            continue;
        };
        let mut meters: Vec<GroupMeter> = Vec::new();
        for (group, (spec, _)) in groups.iter().enumerate() {
            if spec.loudness.is_none() {
                continue;
            }
            let same = |m: &&mut GroupMeter| {
                (m.spec.codec, m.spec.sample_rate, m.spec.channels)
                    == (spec.codec, spec.sample_rate, spec.channels)
            };
            match meters.iter_mut().find(same) {
                Some(m) => m.groups.push(group),
                None => meters.push(GroupMeter {
                    groups: vec![group],
                    spec: spec.clone(),
                    state: None,
                    trim: plan.clip_us.map(plan::audio_trim),
                }),
            }
        }
        if meters.is_empty() {
            continue;
        }
        let decode::AudioDecoder {
            decoder, time_base, ..
        } = decode::open_audio(input, a.input)?;
        lanes.push(Lane {
            audio,
            stream: a.input,
            decoder,
            time_base,
            meters,
        });
    }
    Ok(lanes)
}

/// Reads the input to its end, decoding the measured streams' packets.
fn read(
    input: &mut Input,
    plan: &Plan,
    lanes: &mut [Lane],
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<(), MediaError> {
    let mut report = Reporter::new(plan.duration);
    let mut skips = plan.first_packet_skip.clone();
    let offset = plan.start_offset_us as f64 / 1e6;
    if plan.clip_us.is_some() {
        let at = plan.start_offset_us;
        if input.ctx.seek(at, ..at + 1).is_err() {
            tracing::debug!("seek to {at} µs failed; measuring from the start");
        }
    }
    let mut packet = ff::Packet::empty();
    loop {
        if stop.is_stopped() {
            return Err(MediaError::Stopped);
        }
        let mark = ffi::log_mark();
        match packet.read(&mut input.ctx) {
            Ok(()) => {}
            Err(ff::Error::Eof | ff::Error::Exit) => break,
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => continue,
            Err(e) => {
                return Err(MediaError::Demux {
                    path: input.path.clone(),
                    reason: with_detail(&e, ffi::errors_since(mark)),
                });
            }
        }
        let index = packet.stream();
        let Some(lane) = lanes.iter_mut().find(|l| l.stream == index) else {
            continue;
        };
        if let Some(at) = skips.iter().position(|(i, _)| *i == index) {
            ffi::set_skip_samples(&mut packet, skips.swap_remove(at).1);
        }
        if let Some(t) = packet.pts().or(packet.dts()) {
            let end = t.saturating_add(packet.duration().max(0));
            let seconds = end as f64 * f64::from(lane.time_base) - offset;
            plan.limit.check(&input.path, seconds)?;
            report.reached(seconds, on_progress);
            if let Some(clip) = plan.clip_us {
                if seconds * 1e6 > clip.saturating_add(READ_PAST_US) as f64 {
                    break;
                }
                to_clip_time(&mut packet, plan.start_offset_us, lane.time_base);
            }
        }
        lane.decode(Some(&packet))?;
    }
    if stop.is_stopped() {
        return Err(MediaError::Stopped);
    }
    lanes.iter_mut().try_for_each(|l| l.decode(None))?;
    report.send(on_progress);
    Ok(())
}

/// Shifts a packet so a clip's start is time 0, as the run's demuxer does (the trim keeps
/// the samples in `[0, length)`).
fn to_clip_time(packet: &mut ff::Packet, start_offset_us: i64, time_base: ff::Rational) {
    use ff::Rescale;
    let shift = start_offset_us.rescale(ff::Rational::new(1, 1_000_000), time_base);
    packet.set_pts(packet.pts().map(|t| t - shift));
    packet.set_dts(packet.dts().map(|t| t - shift));
}

impl Lane {
    /// Decodes `packet` (None: the end) and measures the frames it gives. Damage is left to
    /// the run, which counts it and decides whether the stream is whole enough.
    fn decode(&mut self, packet: Option<&ff::Packet>) -> Result<(), MediaError> {
        let _ = match packet {
            Some(p) => self.decoder.send_packet(p),
            None => self.decoder.send_eof(),
        };
        loop {
            let mut frame = ff::frame::Audio::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(e) if decode::is_drained(&e) => return Ok(()),
                Err(_) => return Ok(()),
            }
            let (meters, tb) = (&mut self.meters, self.time_base);
            decode::fan_out(frame, meters.len(), |i, f| meters[i].feed(f, tb))?;
        }
    }

    /// What each group's meter measured, by group.
    fn finish(self) -> Result<Vec<(usize, Option<GroupMeasure>)>, MediaError> {
        let mut measured = Vec::new();
        for meter in self.meters {
            let groups = meter.groups.clone();
            let m = meter.finish()?;
            measured.extend(groups.into_iter().map(|g| (g, m)));
        }
        Ok(measured)
    }
}

impl GroupMeter {
    fn feed(&mut self, frame: ff::frame::Audio, tb: ff::Rational) -> Result<(), MediaError> {
        let shape = AudioShape::of(&frame);
        if self.state.is_none() {
            self.state = Some(self.start(&frame, &shape, tb)?);
        }
        let Some((format, convert, meter)) = &mut self.state else {
            return Ok(());
        };
        if !convert.accepts_audio(&shape) {
            // The stream changed format: what the old conversion holds goes first.
            convert.finish(None)?;
            pump(convert, meter)?;
            *convert = Graph::audio(&shape, tb, &chain(self.trim.as_deref(), format), None)?;
        }
        convert.push(&frame)?;
        pump(convert, meter)
    }

    /// The encoder's format for a stream whose first frame is `frame`, the conversion into
    /// it and the meter.
    fn start(
        &self,
        frame: &ff::frame::Audio,
        shape: &AudioShape,
        tb: ff::Rational,
    ) -> Result<(AudioFormat, Graph, LoudnessMeter), MediaError> {
        let format = encode::audio_format(
            &self.spec,
            frame.rate(),
            ffi::frame_channels(frame),
            frame.format(),
        )?;
        let convert = Graph::audio(shape, tb, &chain(self.trim.as_deref(), &format), None)?;
        let meter = LoudnessMeter::new(&format.shape(), format.time_base())?;
        Ok((format, convert, meter))
    }

    /// What it measured; None when the stream gave no frame.
    fn finish(self) -> Result<Option<GroupMeasure>, MediaError> {
        let Some((format, mut convert, mut meter)) = self.state else {
            return Ok(None);
        };
        convert.finish(None)?;
        pump(&mut convert, &mut meter)?;
        let measured = meter.finish()?;
        Ok(Some(GroupMeasure { format, measured }))
    }
}

/// Moves converted frames into the meter.
/// The conversion into the encoder's format, after a clip's trim.
fn chain(trim: Option<&str>, format: &AudioFormat) -> String {
    match trim {
        Some(t) => format!("{t},{}", format.conversion()),
        None => format.conversion(),
    }
}

fn pump(convert: &mut Graph, meter: &mut LoudnessMeter) -> Result<(), MediaError> {
    loop {
        let mut converted = ff::frame::Audio::empty();
        if !convert.pull(&mut converted)? {
            return Ok(());
        }
        meter.push(&converted)?;
    }
}

/// Progress through the measure: how far into the input it has read.
struct Reporter {
    started: Instant,
    last: Option<Instant>,
    duration: Option<f64>,
    reached: f64,
}

impl Reporter {
    fn new(duration: Option<f64>) -> Reporter {
        Reporter {
            started: Instant::now(),
            last: None,
            duration,
            reached: 0.0,
        }
    }

    /// Notes that the audio has been read to `seconds`; reports at once the first time,
    /// then every [`PROGRESS_EVERY`] (and [`Reporter::send`] once more at the end).
    fn reached(&mut self, seconds: f64, on_progress: &mut dyn FnMut(&Progress)) {
        self.reached = self.reached.max(seconds);
        if self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.send(on_progress);
        }
    }

    /// Reports how far it has read.
    fn send(&mut self, on_progress: &mut dyn FnMut(&Progress)) {
        self.last = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64();
        let speed = (elapsed > 0.0).then(|| self.reached / elapsed);
        let left = self.duration.map(|d| (d - self.reached).max(0.0));
        on_progress(&Progress {
            phase: Phase::Measuring,
            percent: self
                .duration
                .filter(|d| *d > 0.0)
                .map_or(0.0, |d| (100.0 * self.reached / d).clamp(0.0, 100.0)),
            speed,
            eta_seconds: left.zip(speed.filter(|s| *s > 0.0)).map(|(l, s)| l / s),
            out_time_seconds: self.reached,
            ..Progress::default()
        });
    }
}
