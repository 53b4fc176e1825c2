//! Jobs: what is submitted (`JobSpec`), what is stored (`Job`), how an attempt ends
//! (`Outcome`) and the retry policy; the state machine (`status`), timestamps (`time`) and
//! the syntax of ids and names (`names`) and split jobs' parts (`parts`) in files of their
//! own.

mod keys;
pub mod language;
mod media;
mod names;
mod parts;
mod status;
mod time;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use keys::{KEY_BYTES, SegmentKey, key_uri};
pub use media::{
    AudioChoice, Caption, Clip, MIN_CLIP_SECONDS, MediaOptions, Position, SubtitleOptions,
    Watermark, is_language_code,
};
pub use names::{BUCKET_NAME_RULE, is_bucket_name, new_id, validate_destination, validate_id};
pub use parts::{
    Chunking, MIN_SEGMENT_SECONDS, Part, PartInfo, PartKind, PartOutcome, PartPlan, SCRATCH_FOLDER,
    Scratch, SplitPlan, aggregate,
};
pub use status::{IllegalTransition, Status, Transition, reachable};
pub use time::Timestamp;

use crate::progress::Progress;

/// The retry policy: exponential backoff with jitter between automatic attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed_attempt + 1`: base·2^(n-1), capped, times a random
    /// factor in [0.5, 1.0] so that jobs failing together do not retry together.
    pub fn delay(&self, failed_attempt: u32, jitter: f64) -> Duration {
        let exp = 2f64.powi(failed_attempt.saturating_sub(1).min(30) as i32);
        let raw = (self.base.as_secs_f64() * exp).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(raw * (0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// An object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// Where a job writes: a bucket and a key prefix (ends with `/` or is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputTarget {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

/// The event that made a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trigger {
    /// "api", "oss", "s3", "watch", "upload"…
    pub source: String,
    pub payload: serde_json::Value,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 24 * 3600;

/// Joins the presets of a job with several outputs (preset names never hold it).
pub const PRESET_SEPARATOR: char = '+';

/// A job's presets from its `preset` field: one name, or several joined by
/// [`PRESET_SEPARATOR`] (a job with several outputs from one decode, decision 0073).
pub fn presets_of(preset: &str) -> Vec<String> {
    preset.split(PRESET_SEPARATOR).map(str::to_string).collect()
}

/// The `preset` field of a job with these presets.
pub fn join_presets(presets: &[String]) -> String {
    presets.join(&PRESET_SEPARATOR.to_string())
}

/// What a client submits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub input: ObjectRef,
    /// A preset name, or several joined by `+` (one output each, from one decode).
    pub preset: String,
    pub output: OutputTarget,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub on_success: Option<String>,
    #[serde(default)]
    pub on_failure: Option<String>,
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// May replace outputs that another input wrote under the same keys. Without it, an
    /// attempt that would do so fails with `output-conflict` before uploading anything.
    #[serde(default)]
    pub overwrite: bool,
    /// Whether the job's video may be encoded in parts by several workers.
    #[serde(default)]
    pub chunking: Chunking,
    /// What the job asks of its media beyond its presets (a clip).
    #[serde(default, flatten)]
    pub media: MediaOptions,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

impl JobSpec {
    /// Whether two specs ask for the same work (the trigger payload does not count: a
    /// redelivered event may differ in incidental fields).
    pub fn same_work(&self, other: &JobSpec) -> bool {
        self.input == other.input
            && self.preset == other.preset
            && self.output == other.output
            && self.priority == other.priority
            && self.max_attempts == other.max_attempts
            && self.timeout_seconds == other.timeout_seconds
            && self.on_success == other.on_success
            && self.on_failure == other.on_failure
            && self.overwrite == other.overwrite
            && self.chunking == other.chunking
            && self.media == other.media
    }
}

/// A file a job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputObject {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    /// For the file that stands for an output (the media file, picture, top playlist or
    /// storyboard cues): what the check before success found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<OutputChecked>,
}

/// What the farm found when it read an output back before the job succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputChecked {
    /// Its length in seconds (an HLS output's shortest variant; a storyboard's last cue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Its streams: `h264 1280x720`, `aac 48000 Hz 2ch`.
    pub streams: Vec<String>,
    /// The segments, variant playlists or sheets it names, every one present.
    #[serde(default)]
    pub files: usize,
    /// Damage in the input the decoders concealed or skipped (refused packets, frames with
    /// concealed errors); 0 for a clean input.
    #[serde(default)]
    pub input_damage: u64,
    /// SSIM and PSNR against the source, per video rendition, when the job or preset asked
    /// (`quality = true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<Quality>,
    /// Per audio stream its preset normalised (`[audio] loudness`): the loudness measured
    /// before and after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loudness: Vec<LoudnessChecked>,
}

/// How close a video rendition's pictures are to the source's, scaled to its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quality {
    /// The HLS rendition it is of (None: the output's one video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<String>,
    /// Mean SSIM over its frames (1: identical).
    pub ssim: f64,
    /// PSNR from the mean squared error over its frames, in dB (at most 100: identical).
    pub psnr_db: f64,
    /// Frames compared.
    pub frames: u64,
}

/// One audio stream's EBU R128 normalisation: what the engine measured of the input stream
/// (its first pass) and of the audio it encoded, and how the gain was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoudnessChecked {
    /// The input stream's index.
    pub stream: usize,
    pub input: LoudnessMeasure,
    pub output: LoudnessMeasure,
    pub mode: LoudnessMode,
}

/// Loudness as EBU R128 measures it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoudnessMeasure {
    /// Integrated loudness, LUFS (-70 for audio the gate leaves nothing of).
    pub integrated_lufs: f64,
    /// True peak, dBTP (the peak of the audio upsampled to 192 kHz; -99 for digital silence).
    pub true_peak_dbtp: f64,
    /// Loudness range, LU.
    pub range_lu: f64,
}

/// How normalisation changed the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoudnessMode {
    /// One gain for the whole stream: its true peak and range allowed it.
    Linear,
    /// Gain that follows the short-term loudness, with a true-peak limiter: one gain would
    /// have pushed the peaks past the limit, or the range is wider than the preset allows.
    Dynamic,
    /// Left as it was: nothing in it is loud enough to measure (silence).
    Unchanged,
}

/// "stream #1: -31.2 LUFS, -24.9 dBTP, 1.6 LU → -16.0 LUFS, -8.9 dBTP, 1.6 LU (linear)".
impl std::fmt::Display for LoudnessChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stream #{}: {} → {} ({})",
            self.stream,
            self.input,
            self.output,
            self.mode.as_str()
        )
    }
}

/// "-31.2 LUFS, -24.9 dBTP, 1.6 LU".
impl std::fmt::Display for LoudnessMeasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} LUFS, {:.1} dBTP, {:.1} LU",
            self.integrated_lufs, self.true_peak_dbtp, self.range_lu
        )
    }
}

impl LoudnessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoudnessMode::Linear => "linear",
            LoudnessMode::Dynamic => "dynamic",
            LoudnessMode::Unchanged => "unchanged",
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// Stable machine code ("input-unreadable", "timeout", "worker-lost", …).
    pub code: String,
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

impl JobError {
    pub fn new(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        JobError {
            code: code.to_string(),
            message: message.into(),
            retryable,
        }
    }
}

/// How a worker ends an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        outputs: Vec<OutputObject>,
    },
    Failed(JobError),
    /// The task stopped because a cancel was requested.
    Cancelled,
    /// Handed back without counting a failed attempt (a draining worker).
    Released,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub status: Status,
    pub input: ObjectRef,
    /// The preset, or the presets joined by `+` for a job with several outputs.
    pub preset: String,
    /// The job's presets, one per output, in order (`preset` split at `+`).
    #[serde(default)]
    pub presets: Vec<String>,
    pub output: OutputTarget,
    pub outputs: Vec<OutputObject>,
    pub progress: Option<Progress>,
    /// The current (or last) attempt number, from 1; 0 before the first claim. Also the
    /// fencing token: only the holder of the current attempt may report on the job.
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: i32,
    pub timeout_seconds: u64,
    /// The worker holding (or last holding) the job.
    pub worker: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Not claimable before this time (retry backoff).
    pub run_after: Option<Timestamp>,
    pub lease_expires_at: Option<Timestamp>,
    pub error: Option<JobError>,
    pub trigger: Option<Trigger>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    /// May replace outputs another input wrote (`JobSpec::overwrite`).
    #[serde(default)]
    pub overwrite: bool,
    /// Whether the job may be split into parts (`JobSpec::chunking`).
    #[serde(default)]
    pub chunking: Chunking,
    /// What the job asks of its media beyond its presets (`JobSpec::media`).
    #[serde(default, flatten)]
    pub media: MediaOptions,
    /// A split job's parts, video parts in order, then the audio and the assembly; empty
    /// for a job that runs whole. Filled in when one job is read, not in lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartInfo>,
}

impl Job {
    pub fn spec(&self) -> JobSpec {
        JobSpec {
            input: self.input.clone(),
            preset: self.preset.clone(),
            output: self.output.clone(),
            priority: self.priority,
            max_attempts: self.max_attempts,
            timeout_seconds: self.timeout_seconds,
            on_success: self.on_success.clone(),
            on_failure: self.on_failure.clone(),
            trigger: self.trigger.clone(),
            overwrite: self.overwrite,
            chunking: self.chunking,
            media: self.media.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(5));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(10));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(10));
        assert_eq!(p.delay(20, 1.0), Duration::from_secs(600));
    }
}
