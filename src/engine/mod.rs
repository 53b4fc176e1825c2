//! The untrusted side of a task: every step that parses media — probe, transcode, a split
//! job's layout, cut, parts, audio and assembly — runs in an engine process (`ffarm engine`)
//! that the task process starts for it. The task keeps what is worth stealing (bucket
//! credentials, the store's address, the token) and does every transfer; the engine gets a
//! cleared environment, its request on stdin, reads only the files the request names and
//! writes only its staging directory, inside the sandbox (`crate::sandbox`), and reports
//! progress and its result as JSON lines on stdout ([`Message`]); its stderr is the job's
//! log. How an engine ended becomes a named failure (`verdict`). Decision 0072.

pub mod client;
pub mod inside;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::media::split::Layout;
use crate::media::{Edits, ProbeReport, TranscodeReport};
use crate::progress::Progress;
use crate::sandbox::{Level, Limits};

pub use client::{Access, Engine, EngineError};

/// What an engine process is asked to do: one step, the preset it uses, and the sandbox it
/// runs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub work: Work,
    /// The preset, by name, from the shipped ones and `presets_dir` (loaded before the
    /// sandbox is entered); a whole job's presets joined by `+` when it has several.
    #[serde(default)]
    pub preset: Option<String>,
    #[serde(default)]
    pub presets_dir: Option<PathBuf>,
    /// The sandbox's limits; None runs without the sandbox (`worker.sandbox = false`).
    pub sandbox: Option<Limits>,
    /// What the engine may read besides the system's files: its inputs.
    pub read: Vec<PathBuf>,
    /// The directories it may write in.
    pub write: Vec<PathBuf>,
    /// A test switch: a fault the engine makes once transcoding has begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_fault: Option<Fault>,
}

/// A fault the tests make an engine commit, to check what the farm makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// It stops making progress (the stall detector's case).
    Hang,
    /// It opens a socket (the sandbox's filter's case).
    Socket,
    /// It cuts its first output file in half once written, before the output check.
    Damage,
}

impl Fault {
    /// The fault an environment variable's value names.
    pub fn named(name: &str) -> Option<Fault> {
        match name {
            "hang" => Some(Fault::Hang),
            "socket" => Some(Fault::Socket),
            "damage" => Some(Fault::Damage),
            _ => None,
        }
    }
}

/// One step of media work; each names its files (absolute or relative to the task's
/// working directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// Only enter the sandbox and say what holds (a worker asks this as it starts).
    Level,
    /// A whole job ([`JobDone`]): probe the input, then cut it into parts when `split`
    /// says how and it is long enough (a job of one preset), else transcode it into
    /// `outputs`, one per preset in order, from one decode.
    Job {
        input: PathBuf,
        outputs: Vec<PathBuf>,
        split: Option<SplitAsked>,
        /// What the job does to its media beyond its presets (a job with edits runs whole).
        #[serde(default)]
        edits: Edits,
    },
    /// One video part of a split job, into `dir`.
    EncodePart {
        source: PathBuf,
        layout: Box<Layout>,
        seq: u32,
        dir: PathBuf,
        threads: u32,
    },
    /// A split job's audio, into `dir`.
    EncodeAudio {
        source: PathBuf,
        layout: Box<Layout>,
        dir: PathBuf,
    },
    /// A split job's output from its pieces (`media::TranscodeReport`).
    Assemble {
        layout: Box<Layout>,
        parts: Vec<PathBuf>,
        audio: Option<PathBuf>,
        output: PathBuf,
    },
    /// A split HLS job's playlists (`media::split::HlsAssembly`).
    AssembleHls {
        layout: Box<Layout>,
        parts: Vec<PathBuf>,
        audio: Option<PathBuf>,
        output: PathBuf,
    },
}

impl Work {
    /// Whether it needs the job's preset.
    fn needs_preset(&self) -> bool {
        !matches!(self, Work::Level)
    }
}

/// How a job that may split is split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitAsked {
    pub segment_seconds: u32,
    /// The shortest input split (0: any the engine can split).
    pub min_seconds: u32,
    /// Where the parts' sources are cut to.
    pub dir: PathBuf,
}

/// What a whole job's engine did, and the seconds each of its phases took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDone {
    pub input: ProbeReport,
    pub made: Made,
    pub phases: BTreeMap<String, f64>,
}

/// A whole job's work: transcoded, or cut into parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Made {
    Transcoded(Box<TranscodeReport>),
    Split {
        layout: Box<Layout>,
        files: Vec<PathBuf>,
    },
}

/// One line of an engine's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The sandbox it entered (first, before any media is opened) and what setting it up
    /// took.
    Sandbox {
        level: Level,
        setup_seconds: f64,
    },
    Progress(Progress),
    /// The step's result (JSON of the type [`Work`] names).
    Done {
        result: serde_json::Value,
    },
    /// The step failed; `stopped` when it was asked to stop.
    Failed {
        code: String,
        message: String,
        retryable: bool,
        #[serde(default)]
        stopped: bool,
    },
}

/// Exit codes of `ffarm engine` (a trapped system call ends it with
/// [`crate::sandbox::SANDBOX_EXIT`]).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const STOPPED: i32 = 130;
}
