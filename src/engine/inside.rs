//! `ffarm engine`: the engine process itself. It reads its [`Request`] from stdin, loads the
//! preset, enters the sandbox before it opens any media or starts a thread, runs the one
//! step and prints its progress and result as [`Message`] lines. It dies with the task that
//! started it, and a SIGTERM stops it at the next packet.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Fault, JobDone, Made, Message, Request, SplitAsked, Work, exit};
use crate::media::{self, ErrorClass, MediaError, OutputSpec, split};
use crate::preset::{Preset, Presets};
use crate::progress::{Phase, Progress};
use crate::sandbox::{self, Level, Limits, Policy};
use crate::stop::StopToken;

fn say(msg: &Message) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, msg);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn fail(code: &str, message: String, retryable: bool) -> i32 {
    say(&Message::Failed {
        code: code.into(),
        message,
        retryable,
        stopped: false,
    });
    exit::FAILED
}

/// Runs the engine process; returns its exit code.
pub fn main() -> i32 {
    // An engine never outlives its task: the task holds the lease and cleans up after it.
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err() {
        return exit::FAILED;
    }
    let request: Request = match serde_json::from_reader(std::io::stdin().lock()) {
        Ok(r) => r,
        Err(e) => return fail("engine-request", format!("reading the request: {e}"), false),
    };
    let presets = match load_presets(&request) {
        Ok(p) => p,
        Err((code, message)) => return fail(code, message, false),
    };
    let started = Instant::now();
    let level = match &request.sandbox {
        Some(limits) => {
            let policy = Policy {
                read: request.read.clone(),
                write: request.write.clone(),
                limits: limits.clone(),
            };
            match sandbox::enter(&policy) {
                Ok(level) => level,
                Err(e) => return fail("sandbox-setup", e.to_string(), true),
            }
        }
        None => Level::default(),
    };
    let setup_seconds = started.elapsed().as_secs_f64();
    say(&Message::Sandbox {
        level,
        setup_seconds,
    });
    // Only now may threads start (the sandbox's namespaces need a single-threaded process).
    let stop = StopToken::new();
    {
        let stop = stop.clone();
        if let Err(e) = ctrlc::set_handler(move || stop.stop()) {
            eprintln!("[engine] cannot handle stop signals: {e}");
        }
    }
    let mut progress = reporter(request.test_fault);
    let damage = request.test_fault == Some(Fault::Damage);
    match run(&request.work, &presets, damage, &stop, &mut progress) {
        Ok(result) => {
            say(&Message::Done { result });
            exit::OK
        }
        Err(e) if e.class() == ErrorClass::Stopped => {
            say(&Message::Failed {
                code: e.code().into(),
                message: e.to_string(),
                retryable: true,
                stopped: true,
            });
            exit::STOPPED
        }
        Err(e) => {
            let (code, message, retryable) = classify(&e, request.sandbox.as_ref());
            fail(code, message, retryable)
        }
    }
}

type Failed = (&'static str, String);

/// The request's presets (none for a step without media).
fn load_presets(request: &Request) -> Result<Vec<Preset>, Failed> {
    if !request.work.needs_preset() {
        return Ok(Vec::new());
    }
    let names = request
        .preset
        .as_deref()
        .ok_or(("engine-request", "the request names no preset".to_string()))?;
    let presets = Presets::load(request.presets_dir.as_deref(), &media::caps::Ffmpeg)
        .map_err(|e| (e.code(), e.to_string()))?;
    crate::job::presets_of(names)
        .iter()
        .map(|name| {
            presets
                .get(name)
                .cloned()
                .map_err(|e| (e.code(), e.to_string()))
        })
        .collect()
}

/// Runs one step; its result as JSON.
fn run(
    work: &Work,
    presets: &[Preset],
    damage: bool,
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<serde_json::Value, MediaError> {
    let preset = || {
        presets
            .first()
            .ok_or_else(|| MediaError::Internal("no preset loaded".into()))
    };
    match work {
        Work::Level => Ok(serde_json::Value::Null),
        Work::Job {
            input,
            outputs,
            split,
            edits,
        } => json(job(
            input,
            &outputs_of(presets, outputs)?,
            split.as_ref(),
            edits,
            damage,
            stop,
            progress,
        )?),
        Work::EncodePart {
            source,
            layout,
            seq,
            dir,
            threads,
        } => {
            let p = preset()?;
            split::encode_part(source, p, layout, *seq, dir, *threads, stop, progress)?;
            Ok(serde_json::Value::Null)
        }
        Work::EncodeAudio {
            source,
            layout,
            dir,
        } => {
            for l in split::encode_audio(source, preset()?, layout, dir, stop, progress)? {
                eprintln!("[engine] loudness of {l}");
            }
            Ok(serde_json::Value::Null)
        }
        Work::Assemble {
            layout,
            parts,
            audio,
            output,
        } => json(split::assemble(
            layout,
            preset()?,
            parts,
            audio.as_deref(),
            output,
            stop,
            progress,
        )?),
        Work::AssembleHls {
            layout,
            parts,
            audio,
            output,
        } => json(split::assemble_hls(
            layout,
            preset()?,
            parts,
            audio.as_deref(),
            output,
        )?),
    }
}

/// Each preset with the output path the request gives it.
fn outputs_of<'a>(
    presets: &'a [Preset],
    paths: &'a [std::path::PathBuf],
) -> Result<Vec<OutputSpec<'a>>, MediaError> {
    if presets.len() != paths.len() || presets.is_empty() {
        return Err(MediaError::Internal(format!(
            "the request names {} preset(s) and {} output(s)",
            presets.len(),
            paths.len()
        )));
    }
    Ok(presets
        .iter()
        .zip(paths)
        .map(|(preset, path)| OutputSpec { path, preset })
        .collect())
}

/// A whole job: probe, then cut into parts if asked and the input allows (one preset),
/// else transcode into every output.
fn job(
    input: &Path,
    outputs: &[OutputSpec],
    split: Option<&SplitAsked>,
    edits: &media::Edits,
    damage: bool,
    stop: &StopToken,
    progress: &mut dyn FnMut(&Progress),
) -> Result<JobDone, MediaError> {
    let mut phases = BTreeMap::new();
    let t = Instant::now();
    let probe = media::probe(input)?;
    phases.insert("probing".to_string(), t.elapsed().as_secs_f64());
    eprintln!("[engine] input: {}", describe(&probe));
    if let (Some(asked), [one], None) = (split, outputs, &edits.clip) {
        let t = Instant::now();
        if let Some(layout) = layout(input, &probe, one.preset, asked)? {
            let files = split::cut(input, &layout, &asked.dir, stop)?;
            phases.insert("splitting".to_string(), t.elapsed().as_secs_f64());
            let layout = Box::new(layout);
            let made = Made::Split { layout, files };
            return Ok(JobDone {
                input: probe,
                made,
                phases,
            });
        }
    }
    let t = Instant::now();
    let names: Vec<&str> = outputs.iter().map(|o| o.preset.name.as_str()).collect();
    match names.as_slice() {
        [one] => eprintln!("[engine] transcoding with preset {one}"),
        many => eprintln!(
            "[engine] transcoding with presets {} from one decode",
            many.join(", ")
        ),
    }
    let mut measuring = MeasureClock::default();
    let mut watched = |p: &Progress| {
        measuring.saw(p.phase);
        progress(p)
    };
    let report =
        media::transcode_many_then(input, outputs, edits, stop, &mut watched, &mut |files| {
            if damage {
                damage_first(files);
            }
        })?;
    let measured = measuring.seconds();
    if measured > 0.0 {
        phases.insert("measuring".to_string(), measured);
    }
    phases.insert(
        "transcoding".to_string(),
        t.elapsed().as_secs_f64() - measured,
    );
    eprintln!(
        "[engine] transcoded {:.2} s of media in {:.2} s ({} frames)",
        report.out_time_seconds, report.elapsed_seconds, report.frames
    );
    if report.input_damage > 0 {
        eprintln!(
            "[engine] the input is damaged: {} packet(s) or frame(s) were refused or had              errors concealed by the decoder; the outputs are whole but show it",
            report.input_damage
        );
    }
    for check in &report.checks {
        for l in &check.loudness {
            eprintln!(
                "[engine] {}: loudness of {l}",
                check.path.file_name().unwrap_or_default().to_string_lossy()
            );
        }
    }
    let made = Made::Transcoded(Box::new(report));
    Ok(JobDone {
        input: probe,
        made,
        phases,
    })
}

/// How long a transcode's loudness measure took: from its first `Measuring` report to the
/// first report after it.
#[derive(Default)]
struct MeasureClock {
    started: Option<Instant>,
    took: Option<f64>,
}

impl MeasureClock {
    fn saw(&mut self, phase: Phase) {
        match (self.started, phase) {
            (None, Phase::Measuring) => self.started = Some(Instant::now()),
            (Some(at), p) if p != Phase::Measuring && self.took.is_none() => {
                self.took = Some(at.elapsed().as_secs_f64());
            }
            _ => {}
        }
    }

    fn seconds(&self) -> f64 {
        self.took.unwrap_or(0.0)
    }
}

/// The test fault `damage`: the first media file cut to half its length.
fn damage_first(files: &[media::OutputFile]) {
    let Some(file) = files.iter().find(|f| f.kind == media::OutputKind::Media) else {
        return;
    };
    eprintln!(
        "[engine] test switch: cutting {} in half",
        file.path.display()
    );
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&file.path) {
        let _ = f.set_len(file.bytes / 2);
    }
}

/// How the job splits, or None (said in the log) when it runs whole.
fn layout(
    input: &Path,
    probe: &media::ProbeReport,
    preset: &Preset,
    asked: &SplitAsked,
) -> Result<Option<split::Layout>, MediaError> {
    let seconds = probe.duration_seconds.unwrap_or(0.0);
    if asked.min_seconds > 0 && seconds < f64::from(asked.min_seconds) {
        eprintln!(
            "[engine] not split: the input lasts {seconds:.1} s, under chunking.min_seconds ({})",
            asked.min_seconds
        );
        return Ok(None);
    }
    if let Some(why) = preset.why_unsplittable() {
        eprintln!("[engine] not split: preset {} {why}", preset.name);
        return Ok(None);
    }
    let layout = split::layout(input, preset, asked.segment_seconds)?;
    if layout.is_none() {
        eprintln!(
            "[engine] not split: preset {} does not encode video, or the input is shorter than \
             two parts of {} s",
            preset.name, asked.segment_seconds
        );
    }
    Ok(layout)
}

/// The input as the log shows it: container, duration, streams (HDR ones said so).
fn describe(probe: &media::ProbeReport) -> String {
    let streams = probe
        .streams
        .iter()
        .map(|s| match (s.width, s.sample_rate) {
            (Some(w), _) => {
                let hdr = s.hdr().map(|t| format!(" HDR ({})", t.label()));
                let (h, hdr) = (s.height.unwrap_or(0), hdr.unwrap_or_default());
                format!("{} {w}x{h}{hdr}", s.codec)
            }
            (_, Some(r)) => format!("{} {r} Hz", s.codec),
            _ => s.codec.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} {:.2} s, {} stream(s): {streams}",
        probe.container,
        probe.duration_seconds.unwrap_or(0.0),
        probe.streams.len(),
    )
}

fn json<T: serde::Serialize>(value: T) -> Result<serde_json::Value, MediaError> {
    serde_json::to_value(value).map_err(|e| MediaError::Internal(e.to_string()))
}

/// Prints progress about four times a second (every change of phase at once). With a test
/// fault, the engine commits it once transcoding has begun.
fn reporter(fault: Option<Fault>) -> impl FnMut(&Progress) {
    let mut last: Option<(Instant, Phase)> = None;
    move |p: &Progress| {
        let due = last.is_none_or(|(at, phase)| {
            phase != p.phase || at.elapsed() >= Duration::from_millis(250)
        });
        if due {
            last = Some((Instant::now(), p.phase));
            say(&Message::Progress(p.clone()));
            if p.phase == Phase::Transcoding {
                commit(fault);
            }
        }
    }
}

fn commit(fault: Option<Fault>) {
    match fault {
        Some(Fault::Hang) => {
            eprintln!("[engine] test switch: hanging");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Some(Fault::Socket) => {
            eprintln!("[engine] test switch: opening a socket");
            let _ = std::net::UdpSocket::bind("127.0.0.1:0");
        }
        // Committed once the outputs are written (`damage_first`).
        Some(Fault::Damage) | None => {}
    }
}

/// A failure's code and whether another attempt may succeed. Inside the sandbox, a failure
/// after the engine's address space came near its limit is `memory-limit` (a decoder that
/// cannot get a frame buffer reports the stream as broken, so the words alone do not tell),
/// as is an allocation the error names; a write past the file size limit is
/// `output-too-large`. Both final: the same input would hit them again.
fn classify(e: &MediaError, limits: Option<&Limits>) -> (&'static str, String, bool) {
    let text = e.to_string();
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    if let Some(limits) = limits {
        let peak = peak_address_space().unwrap_or(0);
        if text.contains("Cannot allocate memory") || peak >= limits.memory_bytes / 4 * 3 {
            let why = format!(
                "this input needs more memory than the sandbox's limit of {:.1} GiB \
                 (worker.memory_limit_bytes; {:.1} GiB were in use): {text}",
                gib(limits.memory_bytes),
                gib(peak)
            );
            return ("memory-limit", why, false);
        }
        if text.contains("File too large") {
            let why = format!(
                "an output grew past the sandbox's limit of {:.1} GiB \
                 (worker.output_limit_bytes): {text}",
                gib(limits.file_bytes)
            );
            return ("output-too-large", why, false);
        }
    }
    (e.code(), text, e.class() == ErrorClass::Transient)
}

/// The most address space this process has held (VmPeak), in bytes.
fn peak_address_space() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
