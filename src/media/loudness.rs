//! EBU R128 loudness: a meter that measures audio through FFmpeg's own filters, read from the
//! frames' metadata (`ebur128` for integrated loudness, range and the momentary blocks the
//! gate's threshold comes from; `astats` on the audio upsampled to 192 kHz for the true peak,
//! as `loudnorm` measures it), and the `loudnorm` filter that brings audio measured so to a
//! preset's target in one linear gain where its true peak and range allow (decision 0076).

use ffmpeg_next as ff;

use super::encode::{AudioFormat, OpenedAudio};
use super::error::{MediaError, with_detail};
use super::ffi;
use super::graph::{AudioShape, Graph};
use crate::job::{LoudnessChecked, LoudnessMeasure, LoudnessMode};
use crate::preset::Loudness;

/// The meter's filters. `ebur128` passes the audio on in 100 ms frames, each carrying that
/// step's momentary and running integrated loudness and range; the peak is read at 192 kHz in
/// double precision (a 16-bit format would clip the overs it is there to find).
const METER: &str = "ebur128=metadata=1,aresample=192000,aformat=sample_fmts=dbl,\
                     astats=metadata=1:measure_perchannel=none:measure_overall=Peak_level";

/// Below this, BS.1770's absolute gate leaves nothing to measure.
const GATE_LUFS: f64 = -70.0;

/// What a meter measured of some audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measured {
    /// Integrated loudness, LUFS ([`GATE_LUFS`] when the gate leaves nothing).
    pub integrated: f64,
    /// True peak, dBTP (negative infinity for digital silence).
    pub true_peak: f64,
    /// Loudness range, LU.
    pub range: f64,
    /// The integrated loudness's relative gate, LUFS (what `loudnorm` calls the threshold).
    pub threshold: f64,
    /// How much audio it measured, in seconds.
    pub seconds: f64,
}

impl Measured {
    /// Whether anything in it passed the gate.
    pub fn audible(&self) -> bool {
        self.integrated > GATE_LUFS && self.true_peak.is_finite()
    }

    /// As a job's record shows it: to the hundredth, silence's peak as -99 dBTP.
    pub fn record(&self) -> LoudnessMeasure {
        // Infinite (digital silence) and NaN peaks are kept finite: JSON has no such numbers.
        let finite = |v: f64| {
            hundredths(if v.is_nan() {
                -99.0
            } else {
                v.clamp(-99.0, 99.0)
            })
        };
        LoudnessMeasure {
            integrated_lufs: finite(self.integrated),
            true_peak_dbtp: finite(self.true_peak),
            range_lu: finite(self.range),
        }
    }
}

/// Measures the audio pushed through it.
pub(crate) struct LoudnessMeter {
    graph: Graph,
    rate: u32,
    samples: u64,
    integrated: f64,
    range: f64,
    peak: f64,
    /// The momentary blocks above the absolute gate: their summed energy and count.
    blocks: (f64, u64),
}

impl LoudnessMeter {
    /// A meter for frames of `shape` whose timestamps are in `time_base`.
    pub fn new(shape: &AudioShape, time_base: ff::Rational) -> Result<Self, MediaError> {
        Ok(LoudnessMeter {
            graph: Graph::audio(shape, time_base, METER, None)?,
            rate: shape.rate.max(1),
            samples: 0,
            integrated: GATE_LUFS,
            range: 0.0,
            peak: f64::NEG_INFINITY,
            blocks: (0.0, 0),
        })
    }

    /// Measures `frame` (whose data moves into the meter).
    pub fn push(&mut self, frame: &ff::frame::Audio) -> Result<(), MediaError> {
        self.samples += frame.samples() as u64;
        self.graph.push(frame)?;
        self.drain()
    }

    /// Everything it was given, measured.
    pub fn finish(mut self) -> Result<Measured, MediaError> {
        self.graph.finish(None)?;
        self.drain()?;
        let (energy, count) = self.blocks;
        // BS.1770's relative gate: 10 LU below the mean of the blocks above the absolute one.
        let threshold = if count > 0 {
            10.0 * (energy / count as f64).log10() - 10.0
        } else {
            GATE_LUFS
        };
        Ok(Measured {
            integrated: self.integrated,
            true_peak: self.peak,
            range: self.range,
            threshold,
            seconds: self.samples as f64 / f64::from(self.rate),
        })
    }

    fn drain(&mut self) -> Result<(), MediaError> {
        loop {
            let mut out = ff::frame::Audio::empty();
            if !self.graph.pull(&mut out)? {
                return Ok(());
            }
            self.read(&out);
        }
    }

    /// Takes what a filtered frame's metadata says: the running values replace the last
    /// ones, each momentary block joins the gate's.
    fn read(&mut self, frame: &ff::frame::Audio) {
        let metadata = frame.metadata();
        let value = |key: &str| metadata.get(key).and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(i) = value("lavfi.r128.I") {
            self.integrated = i;
        }
        if let Some(lra) = value("lavfi.r128.LRA") {
            self.range = lra;
        }
        if let Some(peak) = value("lavfi.astats.Overall.Peak_level") {
            self.peak = peak;
        }
        if let Some(m) = value("lavfi.r128.M").filter(|m| *m > GATE_LUFS) {
            self.blocks.0 += 10f64.powf(m / 10.0);
            self.blocks.1 += 1;
        }
    }
}

/// How audio measured as `measured` is brought to `target`: the `loudnorm` filter, and
/// whether its gain is one linear step; None for audio with nothing to normalise (silence).
pub(crate) fn normalisation(
    target: &Loudness,
    measured: &Measured,
) -> Option<(String, LoudnessMode)> {
    if !measured.audible() {
        return None;
    }
    let given = Given::of(measured);
    // loudnorm is given every value to the hundredth, and decides from what it is given.
    let target = Loudness {
        target: hundredths(target.target),
        true_peak: hundredths(target.true_peak),
        range: hundredths(target.range),
    };
    let filter = format!(
        "loudnorm=I={:.2}:TP={:.2}:LRA={:.2}:measured_I={:.2}:measured_TP={:.2}:\
         measured_LRA={:.2}:measured_thresh={:.2}:linear=true",
        target.target,
        target.true_peak,
        target.range,
        given.integrated,
        given.true_peak,
        given.range,
        given.threshold,
    );
    Some((filter, given.mode(&target, measured.seconds)))
}

fn hundredths(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The second pass over one encoder's audio: `loudnorm` with the first pass's measure, the
/// result brought back to the encoder's format (`loudnorm` works at 192 kHz unless its gain
/// is linear), and a meter on what the encoder made of it (its packets decoded again, so the
/// record is of the audio as written, lossy coding included).
pub(crate) struct Normaliser {
    graph: Graph,
    input: Measured,
    mode: LoudnessMode,
    format: AudioFormat,
    /// The first frame's time, in the encoder's time base: `loudnorm` starts its output's
    /// timestamps at zero, so its output is put back where its input began.
    start: Option<i64>,
    encoded: EncodedMeter,
}

impl Normaliser {
    /// The second pass for audio that the first pass measured as `input`, into the encoder
    /// `opened`; None when there is nothing to normalise (silence).
    pub fn new(
        target: &Loudness,
        input: Measured,
        opened: &OpenedAudio,
    ) -> Result<Option<Normaliser>, MediaError> {
        let Some((filter, mode)) = normalisation(target, &input) else {
            return Ok(None);
        };
        let format = opened.format();
        let chain = format!("{filter},{}", format.conversion());
        Ok(Some(Normaliser {
            graph: Graph::audio(&format.shape(), format.time_base(), &chain, None)?,
            input,
            mode,
            format,
            start: None,
            encoded: EncodedMeter::new(opened)?,
        }))
    }

    /// Feeds a frame in the encoder's format and time base.
    pub fn push(&mut self, frame: &ff::frame::Audio) -> Result<(), MediaError> {
        if self.start.is_none() {
            self.start = frame.pts();
        }
        self.graph.push(frame)
    }

    /// Signals the end of the audio: `loudnorm` lets out what it holds back.
    pub fn finish(&mut self) -> Result<(), MediaError> {
        self.graph.finish(None)
    }

    /// Takes the next normalised frame, in the encoder's time base; false when none is
    /// ready.
    pub fn pull(&mut self, out: &mut ff::frame::Audio) -> Result<bool, MediaError> {
        use ff::Rescale;
        if !self.graph.pull(out)? {
            return Ok(false);
        }
        let from = self.graph.output_time_base();
        let to = self.format.time_base();
        let start = self.start.unwrap_or(0);
        let pts = out.pts().map(|p| p.rescale(from, to) + start);
        out.set_pts(pts);
        Ok(true)
    }

    /// Measures a packet the encoder made of the normalised audio.
    pub fn encoded(&mut self, packet: &ff::Packet) -> Result<(), MediaError> {
        self.encoded.packet(Some(packet))
    }

    /// What was done to input stream `stream`, once the encoder has given its last packet.
    pub fn report(mut self, stream: usize) -> Result<LoudnessChecked, MediaError> {
        self.encoded.packet(None)?;
        let output = self.encoded.finish()?;
        Ok(LoudnessChecked {
            stream,
            input: self.input.record(),
            output: output.as_ref().unwrap_or(&self.input).record(),
            mode: self.mode,
        })
    }
}

/// An encoder's packets decoded again and measured.
struct EncodedMeter {
    decoder: ff::decoder::Audio,
    time_base: ff::Rational,
    /// Set up on the first decoded frame.
    meter: Option<LoudnessMeter>,
}

impl EncodedMeter {
    fn new(opened: &OpenedAudio) -> Result<EncodedMeter, MediaError> {
        let codec = opened
            .encoder
            .codec()
            .map_or_else(|| "audio".to_string(), |c| c.name().to_string());
        let fail = |e: ff::Error, mark: u64| MediaError::Encode {
            codec: codec.clone(),
            reason: format!(
                "cannot decode what it encoded to measure its loudness: {}",
                with_detail(&e, ffi::errors_since(mark))
            ),
        };
        let mark = ffi::log_mark();
        let params = ff::codec::Parameters::from(&opened.encoder);
        let mut ctx = ff::codec::Context::from_parameters(params).map_err(|e| fail(e, mark))?;
        ffi::set_packet_time_base(&mut ctx, opened.time_base());
        let decoder = ctx.decoder().audio().map_err(|e| fail(e, mark))?;
        Ok(EncodedMeter {
            decoder,
            time_base: opened.time_base(),
            meter: None,
        })
    }

    /// Decodes `packet` (None: the end) and measures what it gives.
    fn packet(&mut self, packet: Option<&ff::Packet>) -> Result<(), MediaError> {
        let _ = match packet {
            Some(p) => self.decoder.send_packet(p),
            None => self.decoder.send_eof(),
        };
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let meter = match &mut self.meter {
                Some(m) => m,
                None => self
                    .meter
                    .insert(LoudnessMeter::new(&AudioShape::of(&frame), self.time_base)?),
            };
            meter.push(&frame)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Option<Measured>, MediaError> {
        self.meter.map(LoudnessMeter::finish).transpose()
    }
}

/// The record of a stream left as it was: nothing in it passed the gate.
pub(crate) fn unchanged(stream: usize, input: &Measured) -> LoudnessChecked {
    LoudnessChecked {
        stream,
        input: input.record(),
        output: input.record(),
        mode: LoudnessMode::Unchanged,
    }
}

/// The measured values as `loudnorm` is given them: to the hundredth, inside its ranges, and
/// never one of the values it reads as "not measured" (0 LUFS, 0 LU, 99 dBTP, -70 LUFS), so
/// a steady tone's zero range still allows the linear gain.
struct Given {
    integrated: f64,
    true_peak: f64,
    range: f64,
    threshold: f64,
}

impl Given {
    fn of(m: &Measured) -> Given {
        let avoid = |v: f64, unset: f64, instead: f64| if v == unset { instead } else { v };
        Given {
            integrated: hundredths(m.integrated.clamp(-99.0, -0.01)),
            true_peak: avoid(hundredths(m.true_peak.clamp(-99.0, 99.0)), 99.0, 98.99),
            range: hundredths(m.range.clamp(0.01, 99.0)),
            threshold: avoid(hundredths(m.threshold.clamp(-99.0, -0.01)), -70.0, -70.01),
        }
    }

    /// What `loudnorm` (FFmpeg 5.1) will do: one gain when that keeps the true peak within
    /// the limit and the range is within the target's, or when the audio is shorter than its
    /// 3-second window (it then applies one gain, held under the limit); else dynamic.
    fn mode(&self, target: &Loudness, seconds: f64) -> LoudnessMode {
        let gain = target.target - self.integrated;
        let fits = self.true_peak + gain <= target.true_peak && self.range <= target.range;
        if fits || seconds < 3.0 {
            LoudnessMode::Linear
        } else {
            LoudnessMode::Dynamic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(integrated: f64, true_peak: f64, range: f64) -> Measured {
        Measured {
            integrated,
            true_peak,
            range,
            threshold: integrated - 10.0,
            seconds: 60.0,
        }
    }

    #[test]
    fn one_gain_where_the_peak_and_range_allow_it() {
        let t = Loudness::DEFAULT;
        let quiet = measured(-32.0, -24.9, 1.6);
        let (filter, mode) = normalisation(&t, &quiet).unwrap();
        assert_eq!(mode, LoudnessMode::Linear);
        assert_eq!(
            filter,
            "loudnorm=I=-16.00:TP=-1.50:LRA=11.00:measured_I=-32.00:measured_TP=-24.90:\
             measured_LRA=1.60:measured_thresh=-42.00:linear=true"
        );
        // +16 dB would take a -12 dBTP peak to +4: the limiter has to work.
        let peaky = measured(-32.0, -12.0, 1.6);
        assert_eq!(normalisation(&t, &peaky).unwrap().1, LoudnessMode::Dynamic);
        let wide = measured(-20.0, -10.0, 14.0);
        assert_eq!(normalisation(&t, &wide).unwrap().1, LoudnessMode::Dynamic);
        // Shorter than loudnorm's window: one gain whatever the peak.
        let short = Measured {
            seconds: 2.5,
            ..peaky
        };
        assert_eq!(normalisation(&t, &short).unwrap().1, LoudnessMode::Linear);
    }

    #[test]
    fn values_loudnorm_reads_as_unmeasured_are_never_given() {
        let steady = measured(-20.0, -17.0, 0.0);
        let (filter, mode) = normalisation(&Loudness::DEFAULT, &steady).unwrap();
        assert!(filter.contains("measured_LRA=0.01"), "{filter}");
        assert_eq!(mode, LoudnessMode::Linear);
        let at_gate = Measured {
            threshold: -70.001,
            ..measured(-60.0, -50.0, 3.0)
        };
        let (filter, _) = normalisation(&Loudness::DEFAULT, &at_gate).unwrap();
        assert!(filter.contains("measured_thresh=-70.01"), "{filter}");
    }

    #[test]
    fn silence_is_left_alone_and_recorded_finite() {
        let silence = Measured {
            threshold: GATE_LUFS,
            ..measured(GATE_LUFS, f64::NEG_INFINITY, 0.0)
        };
        assert!(normalisation(&Loudness::DEFAULT, &silence).is_none());
        let record = silence.record();
        assert_eq!(record.true_peak_dbtp, -99.0);
        assert_eq!(record.integrated_lufs, -70.0);
    }
}
