//! The transcoding pipeline: runs a plan on threads — demux, one decoder lane per used
//! stream, one encoder per video rendition, one muxer per output file — joined by bounded
//! channels, while the calling thread watches the stop token and reports progress. A whole
//! transcode's outputs (planned, staged, checked) are `many`'s.

mod audio;
mod captions;
mod decode;
mod demux;
mod grid;
mod many;
pub(crate) mod measure;
pub(crate) mod mux;
mod thumbs;
mod video;
mod wire;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use super::dash;
use super::error::MediaError;
use super::ffi;
use super::hls;
use super::input::{Input, OutputLimit};
use super::meter::Meter;
use super::output::{Layout, MuxTarget, OutputFile};
use super::plan::{AudioMember, Plan};
use super::probe::ProbeReport;
use super::verify::OutputCheck;
use crate::job::LoudnessChecked;
use crate::preset::{Container, Preset};
use crate::progress::{Phase, Progress};
use crate::stop::StopToken;
use audio::AudioLane;
use demux::Route;
pub use many::{Edits, OutputSpec, transcode, transcode_many, transcode_many_then};
use mux::{MuxMsg, StreamSummary};
use wire::{Fed, VideoLanes, Wiring};

/// What a finished transcode produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscodeReport {
    /// The files written, in the order they must be published (HLS playlists last).
    pub outputs: Vec<OutputFile>,
    /// What the check of each output found (`verify`), in the order of the outputs asked for.
    #[serde(default)]
    pub checks: Vec<OutputCheck>,
    /// Damage in the input the decoders got past (refused packets, frames with concealed
    /// errors): the outputs are whole, but show what the input lost.
    #[serde(default)]
    pub input_damage: u64,
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
    /// What loudness normalisation did, with the output files each went to.
    loudness: Mutex<Vec<(Vec<usize>, LoudnessChecked)>>,
}

impl<'a> Shared<'a> {
    pub(crate) fn new(stop: &'a StopToken, plan: &Plan, input_size: u64) -> Shared<'a> {
        let origin_us = plan.keep_us.map_or(0, |(from, _)| from.max(0));
        Shared {
            stop,
            abort: AtomicBool::new(false),
            enough: AtomicBool::new(false),
            error: Mutex::new(None),
            meter: Meter::new(plan.duration, input_size, plan.outputs.len())
                .from(origin_us)
                .untimed(plan.picked_outputs()),
            limit: plan.limit,
            loudness: Mutex::new(Vec::new()),
        }
    }

    /// Records what normalisation did to audio that went to output files `outputs`.
    pub fn normalised(&self, outputs: &[usize], checked: LoudnessChecked) {
        let mut all = self.loudness.lock().unwrap_or_else(|p| p.into_inner());
        all.push((outputs.to_vec(), checked));
    }

    pub fn stop_token(&self) -> &StopToken {
        self.stop
    }

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
    pub(crate) fn fail(&self, e: MediaError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Runs a thread body, turning its error or panic into a recorded failure.
    pub(crate) fn guard<T>(
        &self,
        name: &str,
        body: impl FnOnce() -> Result<T, MediaError>,
    ) -> Option<T> {
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
    plan: &Plan,
    meter: &Meter,
    input: &Path,
    log_start: u64,
) -> Result<(), MediaError> {
    let (Some(declared), true, None) = (plan.duration, plan.duration_trusted, plan.poster_at)
    else {
        return Ok(());
    };
    // Only picked pictures (a storyboard alone): their times do not measure the input.
    if plan.picked_outputs().len() == plan.outputs.len() {
        return Ok(());
    }
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

/// What one muxer wrote: its streams' summaries, or None when it failed.
pub(crate) type Written = Option<Vec<StreamSummary>>;

/// What a finished run of a plan leaves: what each muxer wrote, the meter that watched, and
/// what loudness normalisation did (with the output files each went to).
pub(crate) struct Ran {
    pub summaries: Vec<Written>,
    pub meter: Meter,
    pub loudness: Vec<(Vec<usize>, LoudnessChecked)>,
}

/// Runs `plan` on `input`, writing output file `i` of the plan to `targets[i]`, until it
/// ends; the failure, stop or short input that ended it early is the error. The caller owns
/// the targets' files (kept or removed). Audio the plan normalises is measured first, in a
/// pass of its own over the file.
pub(crate) fn run_plan(
    input: Input,
    plan: &Plan,
    targets: &[MuxTarget],
    stop: &StopToken,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Ran, MediaError> {
    let log_start = ffi::log_mark();
    let input_path = input.path.clone();
    let measures = measure::measure(&input_path, plan, stop, on_progress)?;
    let shared = Shared::new(stop, plan, input.size);
    let wiring = wire::wire(&input, plan, &measures)?;
    let summaries = run(&shared, input, wiring, plan, targets, on_progress);
    outcome(&shared, plan, &input_path, &summaries, log_start)?;
    let loudness = shared
        .loudness
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(Ran {
        summaries,
        meter: shared.meter,
        loudness,
    })
}

/// Runs the wired pipeline, a thread per part, while this thread reports progress, until
/// every part has finished; returns what each muxer wrote.
fn run(
    shared: &Shared,
    input: Input,
    wiring: Wiring,
    plan: &Plan,
    targets: &[MuxTarget],
    on_progress: &mut dyn FnMut(&Progress),
) -> Vec<Written> {
    let Wiring {
        routes,
        muxers,
        video,
        audio,
        captions,
    } = wiring;
    // A poster reads from its picture's keyframe on; a clip from its start's.
    let seek_us = plan
        .poster_at
        .map(|t| (t * 1e6) as i64)
        .or(plan.clip_us.map(|_| 0));
    std::thread::scope(|s| {
        let muxers = start_muxers(s, shared, muxers, targets, plan);
        let mut lanes = start_video_lanes(s, shared, video);
        lanes.extend(start_audio(s, shared, audio));
        lanes.extend(start_captions(s, shared, captions));
        lanes.push(start_demux(s, shared, input, routes, plan, seek_us));
        watch(shared, &lanes, &muxers, on_progress);
        for h in lanes {
            let _ = h.join();
        }
        muxers
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    })
}

/// Starts a named pipeline thread in `scope`.
pub(crate) fn spawn<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: String,
    body: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, body)
        .expect("spawning a pipeline thread")
}

/// Starts one muxer thread per output file.
fn start_muxers<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    muxers: Vec<Receiver<MuxMsg>>,
    targets: &'scope [MuxTarget],
    plan: &'scope Plan,
) -> Vec<ScopedJoinHandle<'scope, Written>> {
    muxers
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let target = &targets[i];
            let slots = &plan.outputs[i].slots;
            spawn(s, format!("ffarm-mux-{i}"), move || {
                shared.guard("mux", || mux::run(shared, i, target, slots, rx))
            })
        })
        .collect()
}

/// Starts a thread per video rendition, then the video decoder that feeds them.
fn start_video_lanes<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    video: Option<VideoLanes<'scope>>,
) -> Vec<ScopedJoinHandle<'scope, ()>> {
    let mut handles = Vec::new();
    let Some(lanes) = video else {
        return handles;
    };
    for (lane, rx) in lanes.renditions {
        handles.push(spawn(s, "ffarm-encode".into(), move || {
            shared.guard("video encode", || video::run_rendition(shared, lane, rx));
        }));
    }
    let (lane, rx, txs) = (lanes.decoder, lanes.packets, lanes.frames);
    handles.push(spawn(s, "ffarm-vdec".into(), move || {
        shared.guard("video decode", || video::run_decoder(shared, lane, rx, txs));
    }));
    handles
}

/// Starts a thread per audio lane.
fn start_audio<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    audio: Vec<Fed<AudioLane, ff::Packet>>,
) -> Vec<ScopedJoinHandle<'scope, ()>> {
    audio
        .into_iter()
        .map(|(lane, rx)| {
            spawn(s, "ffarm-audio".into(), move || {
                shared.guard("audio", || audio::run(shared, lane, rx));
            })
        })
        .collect()
}

/// Starts the thread that sends caption streams' packets (all known before the run) to
/// their muxers, which interleave them with the rest.
fn start_captions<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    feeds: Vec<wire::CaptionFeed>,
) -> Option<ScopedJoinHandle<'scope, ()>> {
    if feeds.is_empty() {
        return None;
    }
    Some(spawn(s, "ffarm-captions".into(), move || {
        for feed in feeds {
            for packet in feed.packets {
                if shared.aborted() {
                    return;
                }
                let msg = MuxMsg::Packet {
                    slot: feed.slot,
                    packet,
                    time_base: crate::media::captions::MILLISECONDS,
                };
                if feed.mux.send(msg).is_err() {
                    return;
                }
            }
            let _ = feed.mux.send(MuxMsg::End { slot: feed.slot });
        }
    }))
}

/// Starts the demuxer, which feeds every other part.
fn start_demux<'scope>(
    s: &'scope Scope<'scope, '_>,
    shared: &'scope Shared,
    input: Input,
    routes: Vec<Route>,
    plan: &'scope Plan,
    seek_us: Option<i64>,
) -> ScopedJoinHandle<'scope, ()> {
    spawn(s, "ffarm-demux".into(), move || {
        shared.guard("demux", || demux::run(shared, input, routes, plan, seek_us));
    })
}

/// Reports progress every [`PROGRESS_EVERY`] until every thread has finished.
pub(crate) fn watch(
    shared: &Shared,
    lanes: &[ScopedJoinHandle<()>],
    muxers: &[ScopedJoinHandle<Written>],
    on_progress: &mut dyn FnMut(&Progress),
) {
    // The first report goes out at once: a short run still says it is transcoding (the
    // task's stall detector arms on it).
    let mut last_report = Instant::now() - PROGRESS_EVERY;
    while !(lanes.iter().all(|h| h.is_finished()) && muxers.iter().all(|h| h.is_finished())) {
        std::thread::sleep(Duration::from_millis(20));
        if last_report.elapsed() >= PROGRESS_EVERY && !shared.aborted() {
            last_report = Instant::now();
            on_progress(&shared.meter.snapshot(Phase::Transcoding));
        }
    }
}

/// How the run ended: stopped, failed (the first failure recorded), with an output no
/// stream reached (the input's streams held no packet: a damaged index, empty clusters), cut
/// short by its input, or complete.
pub(crate) fn outcome(
    shared: &Shared,
    plan: &Plan,
    input: &Path,
    summaries: &[Written],
    log_start: u64,
) -> Result<(), MediaError> {
    if shared.stop.is_stopped() {
        return Err(MediaError::Stopped);
    }
    if let Some(e) = shared
        .error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e);
    }
    if summaries
        .iter()
        .any(|w| w.as_ref().is_some_and(Vec::is_empty))
    {
        return Err(MediaError::NoStreams {
            path: input.to_path_buf(),
            why: with_detail_text(
                "its streams gave no frame or sample to write (their packets are missing: a \
                 damaged index or empty data)"
                    .into(),
                ffi::errors_since(log_start),
            ),
        });
    }
    check_complete(plan, &shared.meter, input, log_start)
}

/// Writes a ladder's master playlist (with its audio and subtitle renditions) and a CMAF
/// output's DASH MPD, then moves every output into place. `members` says, per output file,
/// whether it is one of the master's alternate audio renditions (empty: none is).
pub(crate) fn finalise_outputs(
    layout: Layout,
    summaries: &[Written],
    preset: &Preset,
    members: &[Option<AudioMember>],
    subtitles: &[hls::SubtitleRendition],
) -> Result<Vec<OutputFile>, MediaError> {
    if let Err(e) = write_manifests(&layout, summaries, preset, members, subtitles) {
        layout.discard();
        return Err(e);
    }
    layout.commit(preset.container.picture())
}

/// The files naming a ladder's playlists or a CMAF output's segments: a ladder always gets
/// a master playlist, even when a small source leaves one rung; CMAF always gets its MPD.
fn write_manifests(
    layout: &Layout,
    summaries: &[Written],
    preset: &Preset,
    members: &[Option<AudioMember>],
    subtitles: &[hls::SubtitleRendition],
) -> Result<(), MediaError> {
    let (master, mpd) = (layout.staged_master(), layout.staged_manifest());
    if master.is_none() && mpd.is_none() {
        return Ok(());
    }
    let (mut variants, audio) = hls_variants(layout, summaries, members);
    let fmp4 = preset.container == Container::Cmaf;
    variants.iter_mut().for_each(|v| v.fmp4 = fmp4);
    let staged = layout.targets.first().and_then(|t| t.path.parent());
    let dir = staged.unwrap_or(Path::new("."));
    let mut measured = hls::measure_all(dir, &variants)?;
    let renditions = hls::measure_audio(dir, &audio)?;
    if let Some(master) = master {
        hls::write_master_of(&master, &measured, &renditions, subtitles)?;
    }
    if let Some(mpd) = mpd {
        let segment_seconds = preset.hls.as_ref().map_or(6.0, |h| h.segment_seconds);
        measured.extend(
            renditions
                .iter()
                .map(|(a, rate)| (a.as_variant(fmp4), *rate)),
        );
        dash::write_mpd(&mpd, &measured, segment_seconds)?;
    }
    Ok(())
}

/// What the master playlist says of each output file, from what its muxer wrote: the
/// variants, and the audio renditions they share.
fn hls_variants(
    layout: &Layout,
    summaries: &[Written],
    members: &[Option<AudioMember>],
) -> (Vec<hls::Variant>, Vec<hls::AudioRendition>) {
    let (mut variants, mut audio) = (Vec::new(), Vec::new());
    for (i, (target, summary)) in layout.targets.iter().zip(summaries).enumerate() {
        let streams = summary.clone().unwrap_or_default();
        let uri = target
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let codecs = streams
            .iter()
            .filter_map(|s| s.codec_string.clone())
            .collect();
        if let Some(Some(m)) = members.get(i) {
            audio.push(hls::AudioRendition {
                uri,
                codecs,
                channels: streams.iter().find_map(|s| s.channels),
                language: m.language.clone(),
                name: m.name.clone(),
                default: m.default,
            });
            continue;
        }
        let video = streams.iter().find(|s| s.width > 0);
        variants.push(hls::Variant {
            uri,
            resolution: video.map(|v| (v.width, v.height)),
            frame_rate: video.and_then(|v| v.frame_rate),
            codecs,
            fmp4: false,
        });
    }
    (variants, audio)
}
