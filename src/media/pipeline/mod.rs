//! `transcode`: runs a plan on threads — demux, one decoder lane per used stream, one encoder
//! per video rendition, one muxer per output file — joined by bounded channels, while the
//! calling thread watches the stop token and reports progress.

mod audio;
mod decode;
mod demux;
mod grid;
mod mux;
mod video;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use ffmpeg_next as ff;
use serde::Serialize;

use super::error::MediaError;
use super::ffi;
use super::hls;
use super::input::{self, OutputLimit};
use super::meter::Meter;
use super::output::{Layout, OutputFile};
use super::plan::{self, AudioWork, VideoWork};
use super::probe::{self, ProbeReport};
use crate::preset::{Container, Preset};
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;
use demux::Route;
use mux::{MuxMsg, StreamSetup, StreamSummary};

/// What a finished transcode produced.
#[derive(Debug, Clone, Serialize)]
pub struct TranscodeReport {
    /// The files written, in the order they must be published (HLS playlists last).
    pub outputs: Vec<OutputFile>,
    pub input: ProbeReport,
    pub frames: u64,
    pub out_time_seconds: f64,
    pub elapsed_seconds: f64,
}

/// State every pipeline thread shares.
pub(crate) struct Shared<'a> {
    stop: &'a StopToken,
    abort: AtomicBool,
    /// A poster has its picture: reading can end.
    enough: AtomicBool,
    error: Mutex<Option<MediaError>>,
    pub meter: Meter,
    /// How far the output may run (checked on every packet read).
    pub limit: OutputLimit,
}

impl Shared<'_> {
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed) || self.stop.is_stopped()
    }

    pub fn enough(&self) -> bool {
        self.enough.load(Ordering::Relaxed)
    }

    pub fn set_enough(&self) {
        self.enough.store(true, Ordering::Relaxed);
    }

    /// Records the first failure and tells every thread to stop.
    fn fail(&self, e: MediaError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Runs a thread body, turning its error or panic into a recorded failure.
    fn guard<T>(&self, name: &str, body: impl FnOnce() -> Result<T, MediaError>) -> Option<T> {
        match std::panic::catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.fail(e);
                None
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.fail(MediaError::Internal(format!("{name} thread: {what}")));
                None
            }
        }
    }
}

/// Fails a run whose output ends well before the input says it should: the input was cut
/// short (an incomplete upload, a truncated file) and FFmpeg's demuxer simply met its end.
fn check_complete(
    plan: &plan::Plan,
    meter: &Meter,
    input: &Path,
    log_start: u64,
) -> Result<(), MediaError> {
    let (Some(declared), true, None) = (plan.duration, plan.duration_trusted, plan.poster_at)
    else {
        return Ok(());
    };
    let produced = meter.out_time();
    let tolerance = (declared * 0.02).max(0.5);
    if declared - produced <= tolerance {
        return Ok(());
    }
    Err(MediaError::Demux {
        path: input.to_path_buf(),
        reason: with_detail_text(
            format!(
                "the input ends early: its container says {declared:.2} s but its streams end \
                 at {produced:.2} s (a truncated or incomplete file)"
            ),
            ffi::errors_since(log_start),
        ),
    })
}

fn with_detail_text(text: String, detail: Option<String>) -> String {
    match detail {
        Some(d) => format!("{text} ({d})"),
        None => text,
    }
}

/// How often progress is reported while transcoding.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Transcodes `input` to `output` with `preset`. `on_progress` is called on this thread at
/// least once a second; `stop` ends the run within a fraction of a second, removing partial
/// output, with [`MediaError::Stopped`].
pub fn transcode(
    input: &Path,
    output: &Path,
    preset: &Preset,
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TranscodeReport, MediaError> {
    let started = Instant::now();
    on_progress(&Progress {
        phase: Phase::Probing,
        ..Progress::default()
    });
    let log_start = ffi::log_mark();
    let input = input::open(input, stop)?;
    let input_path = input.path.clone();
    let probe = probe::report(&input);
    let plan = plan::plan(&input, &probe, preset)?;
    let layout = Layout::new(output, preset, &plan.renditions())?;
    let shared = Shared {
        stop,
        abort: AtomicBool::new(false),
        enough: AtomicBool::new(false),
        error: Mutex::new(None),
        meter: Meter::new(plan.duration, input.size, plan.outputs.len()),
        limit: plan.limit,
    };

    // Channels: one into each muxer; one into each decoder lane; one per rendition.
    let (mux_tx, mux_rx): (Vec<Sender<MuxMsg>>, Vec<_>) =
        plan.outputs.iter().map(|_| bounded::<MuxMsg>(256)).unzip();
    let mut routes: Vec<Route> = (0..input.ctx.nb_streams()).map(|_| Route::Ignore).collect();
    let hvc1 = matches!(preset.container, Container::Mp4 | Container::Mov);

    // Copied streams announce themselves now, from the input's parameters.
    let mut copies: Vec<(usize, Vec<plan::Target>)> = plan
        .subtitles
        .iter()
        .map(|c| (c.input, c.targets.clone()))
        .collect();
    if let Some(v) = &plan.video
        && let VideoWork::Copy { targets } = &v.work
    {
        copies.push((v.input, targets.clone()));
    }
    for a in &plan.audio {
        if let AudioWork::Copy { targets } = &a.work {
            copies.push((a.input, targets.clone()));
        }
    }
    for (index, targets) in copies {
        let Some(stream) = input.ctx.stream(index) else {
            continue;
        };
        let facts = ffi::stream_facts(&stream);
        let mut params = stream.parameters().clone();
        ffi::reset_codec_tag(&mut params);
        let rate = stream.avg_frame_rate();
        for t in &targets {
            let setup = StreamSetup {
                params: params.clone(),
                time_base: stream.time_base(),
                frame_rate: (facts.medium == Some("video") && rate.numerator() > 0).then_some(rate),
                display_matrix: facts.display_matrix,
                hvc1: hvc1 && facts.codec == "hevc",
                summary: StreamSummary::default(),
            };
            let _ = mux_tx[t.output].send(MuxMsg::Stream {
                slot: t.slot,
                setup: Box::new(setup),
            });
        }
        routes[index] = Route::Copy(
            targets
                .iter()
                .map(|t| (mux_tx[t.output].clone(), t.slot))
                .collect(),
        );
    }

    // Decoders are opened here so a broken stream fails before any thread starts.
    let mut video_lane = None;
    let mut rendition_lanes = Vec::new();
    if let Some(v) = &plan.video
        && let VideoWork::Encode {
            deinterlace,
            rotation,
            frame_rate,
            renditions,
        } = &v.work
    {
        let stream = input
            .ctx
            .stream(v.input)
            .ok_or_else(|| MediaError::Internal("video stream vanished".into()))?;
        let decoder =
            decode::open(&input_path, &stream)?
                .video()
                .map_err(|e| MediaError::Decode {
                    path: input_path.clone(),
                    stream: v.input,
                    codec: ffi::stream_facts(&stream).codec,
                    reason: e.to_string(),
                })?;
        let (packet_tx, packet_rx) = bounded::<ff::Packet>(64);
        routes[v.input] = Route::Decode(packet_tx);
        let mut frame_txs = Vec::new();
        for (i, r) in renditions.iter().enumerate() {
            let (tx, rx) = bounded::<ff::frame::Video>(4);
            frame_txs.push(tx);
            rendition_lanes.push((
                video::RenditionLane {
                    plan: r,
                    counts_frames: i == 0,
                    time_base: stream.time_base(),
                    frame_rate: *frame_rate,
                    global_header: plan.global_header,
                    hvc1,
                    mux: mux_tx[r.target.output].clone(),
                },
                rx,
            ));
        }
        video_lane = Some((
            video::DecodeLane {
                decoder,
                health: decode::Health::new(&input_path, &stream),
                time_base: stream.time_base(),
                frame_rate: *frame_rate,
                deinterlace: *deinterlace,
                rotation: *rotation,
                poster_at: plan.poster_at,
            },
            packet_rx,
            frame_txs,
        ));
    }
    let mut audio_lanes = Vec::new();
    for a in &plan.audio {
        let AudioWork::Encode { groups } = &a.work else {
            continue;
        };
        let stream = input
            .ctx
            .stream(a.input)
            .ok_or_else(|| MediaError::Internal("audio stream vanished".into()))?;
        let decoder =
            decode::open(&input_path, &stream)?
                .audio()
                .map_err(|e| MediaError::Decode {
                    path: input_path.clone(),
                    stream: a.input,
                    codec: ffi::stream_facts(&stream).codec,
                    reason: e.to_string(),
                })?;
        let (packet_tx, packet_rx) = bounded::<ff::Packet>(128);
        routes[a.input] = Route::Decode(packet_tx);
        let groups = groups
            .iter()
            .map(|(spec, targets)| {
                let targets = targets
                    .iter()
                    .map(|t| (mux_tx[t.output].clone(), t.slot))
                    .collect();
                audio::Group::new(spec.clone(), targets)
            })
            .collect();
        audio_lanes.push((
            audio::AudioLane {
                decoder,
                health: decode::Health::new(&input_path, &stream),
                time_base: stream.time_base(),
                global_header: plan.global_header,
                groups,
            },
            packet_rx,
        ));
    }
    // The coordinator keeps no sender: each muxer ends when its last producer does.
    drop(mux_tx);

    let seek_us = plan.poster_at.map(|t| (t * 1e6) as i64);
    let summaries: Vec<Option<Vec<StreamSummary>>> = std::thread::scope(|s| {
        let shared = &shared;
        let mut handles = Vec::new();
        let mux_handles: Vec<_> = mux_rx
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let target = &layout.targets[i];
                let slots = &plan.outputs[i].slots;
                std::thread::Builder::new()
                    .name(format!("ffarm-mux-{i}"))
                    .spawn_scoped(s, move || {
                        shared.guard("mux", || mux::run(shared, i, target, slots, rx))
                    })
                    .expect("spawning a pipeline thread")
            })
            .collect();
        for (lane, rx) in rendition_lanes {
            handles.push(
                std::thread::Builder::new()
                    .name("ffarm-encode".into())
                    .spawn_scoped(s, move || {
                        shared.guard("video encode", || video::run_rendition(shared, lane, rx));
                    })
                    .expect("spawning a pipeline thread"),
            );
        }
        if let Some((lane, rx, txs)) = video_lane {
            handles.push(
                std::thread::Builder::new()
                    .name("ffarm-vdec".into())
                    .spawn_scoped(s, move || {
                        shared.guard("video decode", || video::run_decoder(shared, lane, rx, txs));
                    })
                    .expect("spawning a pipeline thread"),
            );
        }
        for (lane, rx) in audio_lanes {
            handles.push(
                std::thread::Builder::new()
                    .name("ffarm-audio".into())
                    .spawn_scoped(s, move || {
                        shared.guard("audio", || audio::run(shared, lane, rx));
                    })
                    .expect("spawning a pipeline thread"),
            );
        }
        let offset = plan.start_offset_us;
        handles.push(
            std::thread::Builder::new()
                .name("ffarm-demux".into())
                .spawn_scoped(s, move || {
                    shared.guard("demux", || {
                        demux::run(shared, input, routes, offset, seek_us)
                    });
                })
                .expect("spawning a pipeline thread"),
        );

        let mut last_report = Instant::now();
        while !(handles.iter().all(|h| h.is_finished())
            && mux_handles.iter().all(|h| h.is_finished()))
        {
            std::thread::sleep(Duration::from_millis(20));
            if last_report.elapsed() >= PROGRESS_EVERY && !shared.aborted() {
                last_report = Instant::now();
                on_progress(&shared.meter.snapshot(Phase::Transcoding));
            }
        }
        for h in handles {
            let _ = h.join();
        }
        mux_handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });

    if stop.is_stopped() {
        layout.discard();
        return Err(MediaError::Stopped);
    }
    if let Some(e) = shared
        .error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        layout.discard();
        return Err(e);
    }
    if let Err(e) = check_complete(&plan, &shared.meter, &input_path, log_start) {
        layout.discard();
        return Err(e);
    }
    on_progress(&shared.meter.snapshot(Phase::Finalizing));
    // A ladder always gets a master playlist, even when a small source leaves one rung.
    if let Some(master) = layout.staged_master() {
        let variants: Vec<hls::Variant> = layout
            .targets
            .iter()
            .zip(&summaries)
            .map(|(target, summary)| {
                let streams = summary.clone().unwrap_or_default();
                let video = streams.iter().find(|s| s.width > 0);
                hls::Variant {
                    uri: target
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    resolution: video.map(|v| (v.width, v.height)),
                    frame_rate: video.and_then(|v| v.frame_rate),
                    codecs: streams
                        .iter()
                        .filter_map(|s| s.codec_string.clone())
                        .collect(),
                }
            })
            .collect();
        if let Err(e) = hls::write_master(&master, &variants) {
            layout.discard();
            return Err(e);
        }
    }
    let outputs = layout.commit(preset.container.picture())?;
    let done = shared.meter.snapshot(Phase::Done);
    on_progress(&done);
    Ok(TranscodeReport {
        outputs,
        input: probe,
        frames: done.frames,
        out_time_seconds: done.out_time_seconds,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}
