//! The configuration's sections: one struct per `[section]` of ffarm.toml, with its defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::Chunking;

/// How a bucket is reached (`[buckets.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `file:///abs/dir`, `s3://bucket[/prefix]`, `gs://…`, `az://…`.
    pub url: String,
    /// object_store options, e.g. `aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_allow_http`. They apply over the provider's environment variables (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`); an unknown key is an error.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The file-name endings the default rule fires on.
pub const VIDEO_SUFFIXES: [&str; 15] = [
    ".mp4", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".m4v", ".mpg", ".mpeg", ".wmv",
    ".3gp", ".mxf", ".m2ts", ".ogv",
];

/// One trigger rule (`[[triggers]]`): objects in `bucket` under `prefix` ending in one of
/// `suffixes` run every preset in `presets`, writing under the prefix the `output` template
/// renders. What a rule does is `triggers::rule`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRule {
    pub bucket: String,
    /// Key prefix the object must start with ("" for the whole bucket).
    #[serde(default)]
    pub prefix: String,
    /// File-name endings that fire, compared without case; empty: every object.
    #[serde(default)]
    pub suffixes: Vec<String>,
    pub presets: Vec<String>,
    /// The output prefix: `{stem}` `{name}` `{ext}` `{dir}` (the key's folder below
    /// `prefix`) `{preset}` `{bucket}`; a trailing `/` is implied. Default `out/{dir}`: the
    /// input's folder is kept, so `in/x/clip.mp4` and `in/y/clip.mp4` do not meet in one key.
    #[serde(default = "default_output")]
    pub output: String,
    /// Where outputs go; default: the rule's bucket.
    #[serde(default)]
    pub output_bucket: Option<String>,
    /// The jobs it makes may replace outputs another input wrote (`JobSpec::overwrite`).
    #[serde(default)]
    pub overwrite: bool,
    /// Whether the jobs it makes may be split (`"auto"`, `"off"`, `{ segment_seconds = N }`);
    /// unset: what each preset says, else `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<Chunking>,
    /// One job for all the rule's presets (one decode, an output per preset named
    /// `STEM.PRESET.EXT`) instead of a job per preset. Such jobs run whole.
    #[serde(default)]
    pub group: bool,
}

fn default_output() -> String {
    "out/{dir}".into()
}

impl TriggerRule {
    /// The rule `ffarm serve` runs with when none is configured.
    pub fn default_rule() -> TriggerRule {
        TriggerRule {
            bucket: "media".into(),
            prefix: "in/".into(),
            suffixes: VIDEO_SUFFIXES.iter().map(|s| s.to_string()).collect(),
            presets: vec!["h264-720p".into()],
            output: default_output(),
            output_bucket: None,
            overwrite: false,
            chunking: None,
            group: false,
        }
    }
}

/// Split jobs (`[chunking]`): how a job's video is cut into parts that several workers
/// encode at once. Whether a job may split is its own `chunking`; these are the farm's
/// defaults and limits, read by the workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkingConfig {
    /// About how long a part is, in seconds, for jobs that say `auto` (at least
    /// [`MIN_SEGMENT_SECONDS`](crate::job::MIN_SEGMENT_SECONDS)).
    pub segment_seconds: u32,
    /// `auto` splits only inputs lasting at least this many seconds.
    pub min_seconds: u32,
    /// How many of one job's parts may run at once (0: no limit).
    pub max_parallel: u32,
    /// The bucket parts' scratch objects live in (a `[buckets.NAME]`); default: each job's
    /// output bucket.
    pub scratch_bucket: Option<String>,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        ChunkingConfig {
            segment_seconds: 60,
            min_seconds: 240,
            max_parallel: 0,
            scratch_bucket: None,
        }
    }
}

impl ChunkingConfig {
    /// Where the scratch objects of a job writing to `output_bucket` live.
    pub fn scratch_bucket<'a>(&'a self, output_bucket: &'a str) -> &'a str {
        self.scratch_bucket.as_deref().unwrap_or(output_bucket)
    }

    /// The part length a job's `chunking` asks for: its own, the farm's for `auto`, none
    /// for `off`. Whether `auto` splits at all is the worker's call (input length, room).
    pub fn segment_seconds(&self, chunking: Chunking) -> Option<u32> {
        match chunking {
            Chunking::Off => None,
            Chunking::Auto => Some(self.segment_seconds),
            Chunking::Segments { segment_seconds } => Some(segment_seconds),
        }
    }
}

/// Shells inside running tasks (`ffarm exec`, `GET /v1/jobs/{id}/exec`). Off unless enabled,
/// and always behind a token: `token` here, else the API's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecSettings {
    pub enabled: bool,
    /// A token for exec alone (at least 16 characters); without it, the API token.
    pub token: Option<String>,
    /// A session with no input and no output for this long is closed (0: never).
    pub idle_timeout_seconds: u64,
    /// Sessions open at once into one job.
    pub max_sessions_per_job: u32,
}

impl Default for ExecSettings {
    fn default() -> Self {
        ExecSettings {
            enabled: false,
            token: None,
            idle_timeout_seconds: 600,
            max_sessions_per_job: 2,
        }
    }
}

impl ExecSettings {
    /// The token an exec connection must present: the exec token, else the API token.
    pub fn credential<'a>(&'a self, api_token: Option<&'a str>) -> Option<&'a str> {
        self.token.as_deref().or(api_token)
    }
}

/// The HTTP API of `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Largest upload through `PUT /v1/buckets/…` in bytes; 0: no limit.
    pub max_upload_bytes: u64,
    /// The URI encrypted HLS playlists name for their job's key (`{job}`: the job's id):
    /// where players fetch it, the API's `GET /v1/jobs/{id}/key` or a proxy in front of it.
    pub key_uri: String,
}

/// The key route on the host that serves the playlists (a path, resolved against it).
pub const DEFAULT_KEY_URI: &str = "/v1/jobs/{job}/key";

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_upload_bytes: 0,
            key_uri: DEFAULT_KEY_URI.to_string(),
        }
    }
}

/// The watch folder: local buckets named by trigger rules are watched for new files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchSettings {
    pub enabled: bool,
    /// How long a new file must stay unchanged before it counts as completely written.
    pub settle_seconds: f64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            enabled: true,
            settle_seconds: 2.0,
        }
    }
}

/// Backoff between automatic attempts of a job: base·2^(n−1) seconds, capped, with jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    pub base_seconds: f64,
    pub max_seconds: f64,
}

impl Default for Retry {
    fn default() -> Self {
        let p = crate::job::RetryPolicy::default();
        Retry {
            base_seconds: p.base.as_secs_f64(),
            max_seconds: p.cap.as_secs_f64(),
        }
    }
}

impl Retry {
    pub fn policy(&self) -> crate::job::RetryPolicy {
        crate::job::RetryPolicy {
            base: std::time::Duration::from_secs_f64(self.base_seconds.max(0.0)),
            cap: std::time::Duration::from_secs_f64(
                self.max_seconds.max(self.base_seconds).max(0.0),
            ),
        }
    }
}

/// How workers run tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// This worker's id in the registry; default `HOST/PID`.
    pub id: Option<String>,
    /// Lease length; renewed every second while a task runs.
    pub lease_seconds: u64,
    /// On SIGTERM/SIGINT, how long running tasks may finish before they are stopped and
    /// handed back to the queue.
    pub drain_timeout_seconds: u64,
    /// Between SIGTERM and SIGKILL when stopping a task.
    pub stop_grace_seconds: u64,
    /// The longest any job may run on this worker: a job's own `timeout_seconds` applies
    /// when it is shorter. `serve`'s API also gives it to jobs submitted without a limit.
    pub job_timeout_seconds: u64,
    /// How long a failed task's workspace is kept for inspection (0: removed at once).
    pub keep_failed_workspace_seconds: u64,
    /// Claims are woken by the store's notifications; this is the fallback poll.
    pub poll_seconds: u64,
    /// A worker that stopped without deregistering (killed, or its machine lost) shows as
    /// lost; after this many seconds more its registry entry is removed (0: kept).
    pub forget_lost_after_seconds: u64,
    /// The address (HOST:PORT) the API reaches this worker at for exec; with exec enabled
    /// the worker listens there for sessions into its tasks.
    pub advertise: Option<String>,
    /// The program run as each task (`ffarm task`); default: this executable.
    pub task_program: Option<PathBuf>,
    /// Whether the engine processes that parse media enter the sandbox (no network, no
    /// files but their own, no credentials, bounded memory). Off only for debugging: every
    /// job's log then says so.
    pub sandbox: bool,
    /// The address space an engine process may use (bytes): a decode that needs more ends
    /// the attempt as `memory-limit`.
    pub memory_limit_bytes: u64,
    /// The largest file an engine process may write (bytes): past it, `output-too-large`.
    pub output_limit_bytes: u64,
    /// A running attempt whose media time has not moved for this long (heartbeats still
    /// arriving) is killed and fails as retryable `stalled` (0: never).
    pub stall_seconds: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            id: None,
            lease_seconds: 30,
            drain_timeout_seconds: 60,
            stop_grace_seconds: 10,
            job_timeout_seconds: crate::job::DEFAULT_TIMEOUT_SECONDS,
            keep_failed_workspace_seconds: 3600,
            poll_seconds: 5,
            forget_lost_after_seconds: 24 * 3600,
            advertise: None,
            task_program: None,
            sandbox: true,
            memory_limit_bytes: crate::sandbox::Limits::default().memory_bytes,
            output_limit_bytes: crate::sandbox::Limits::default().file_bytes,
            stall_seconds: 120,
        }
    }
}

/// Where finished jobs are reported when a job names no destination of its own (filled in
/// when the job is made), and how deliveries are tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Destinations {
    /// Receives each succeeded job as JSON.
    pub on_success: Option<String>,
    /// Receives each failed or cancelled job as JSON (the dead-letter path).
    pub on_failure: Option<String>,
    /// Tries per ending of a job before giving up (1 s, 2 s, 4 s… apart).
    pub attempts: u32,
    /// Per delivery.
    pub timeout_seconds: u64,
    /// Standard Webhooks signing secrets (`whsec_` and Base64); every delivery carries a
    /// signature by each (several while one is being replaced). None: deliveries unsigned.
    pub secrets: Vec<String>,
}

impl Destinations {
    /// Gives a job being made the default destinations it names none of. Defaults apply where
    /// jobs are made (the API and the triggers), like the time limit: the job then says where
    /// its ending goes, and only endings with somewhere to go enter the store's outbox.
    pub fn fill(&self, spec: &mut crate::job::JobSpec) {
        if spec.on_success.is_none() {
            spec.on_success.clone_from(&self.on_success);
        }
        if spec.on_failure.is_none() {
            spec.on_failure.clone_from(&self.on_failure);
        }
    }
}

/// The key a Standard Webhooks secret stands for: `whsec_` then the Base64 of 24 to 64
/// random bytes (what the specification asks for, and what its libraries generate).
pub fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return Err("a signing secret starts with whsec_ (then Base64)".into());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the part after whsec_ is not Base64: {e}"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "the secret is {} bytes; Standard Webhooks secrets are 24 to 64",
            key.len()
        ));
    }
    Ok(key)
}

impl Default for Destinations {
    fn default() -> Self {
        Destinations {
            on_success: None,
            on_failure: None,
            attempts: 5,
            timeout_seconds: 10,
            secrets: Vec::new(),
        }
    }
}
