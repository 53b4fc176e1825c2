//! Progress reports: the phase a task is in and how far along it is. FFmpeg-free, so the
//! job model, the stores and the clients share it with the engine that measures it.

use serde::{Deserialize, Serialize};

/// The phase of a task. The engine reports `Probing` through `Done` (`Measuring` only for a
/// preset that normalises loudness: the first pass over the audio); a worker adds the
/// transfer phases around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Starting,
    Downloading,
    Probing,
    Measuring,
    Transcoding,
    Finalizing,
    Uploading,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Downloading => "downloading",
            Phase::Probing => "probing",
            Phase::Measuring => "measuring",
            Phase::Transcoding => "transcoding",
            Phase::Finalizing => "finalizing",
            Phase::Uploading => "uploading",
            Phase::Done => "done",
        }
    }
}

/// A snapshot of a task's progress.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    pub phase: Phase,
    /// 0 to 100 within the transcode (output time over input duration), or within the
    /// loudness measure while `Measuring`.
    pub percent: f64,
    /// Video frames encoded per second (wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Output media time per wall-clock second (2.0 = twice real time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<f64>,
    #[serde(default)]
    pub frames: u64,
    #[serde(default)]
    pub out_time_seconds: f64,
    /// Bytes moved so far in a transfer phase, and the total when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// CPU seconds the task process has used so far (every thread), and its peak resident
    /// memory: filled in by the worker that watches the task, not by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}
