//! Configuration: built-in defaults, then `ffarm.toml` (or `--config FILE`), then `FFARM_…`
//! environment variables (`__` separates sections: `FFARM_WORKER__LEASE_SECONDS`), then
//! command-line flags. `ffarm.example.toml` lists every key with its default and variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::buckets::BucketConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the API and the page listen.
    pub listen: String,
    /// Everything local: the SQLite file, local buckets, task workspaces.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; default: `sqlite://DATA_DIR/ffarm.db`.
    pub store: Option<String>,
    /// Bearer token for the API; required when listening beyond loopback.
    pub token: Option<String>,
    /// Task slots of the workers in this process (`serve`: in-process workers; 0 for an
    /// API-only node). Default: the number of CPU cores.
    pub workers: Option<u32>,
    /// Extra presets (`*.toml`), added to or replacing the shipped ones.
    pub presets_dir: Option<PathBuf>,
    /// Buckets that are not folders under `DATA_DIR/buckets/`.
    pub buckets: BTreeMap<String, BucketConfig>,
    pub worker: WorkerSettings,
    pub retry: Retry,
    pub destinations: Destinations,
    /// Which objects become jobs (`[[triggers]]`); default: bucket `media`, prefix `in/`,
    /// video files → `h264-720p` → `out/`. `triggers = []` turns triggers off.
    pub triggers: Vec<crate::triggers::rules::Rule>,
    pub api: ApiSettings,
    pub watch: WatchSettings,
    pub exec: ExecSettings,
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Largest upload through `PUT /v1/buckets/…` in bytes; 0: no limit.
    pub max_upload_bytes: u64,
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

impl Default for Destinations {
    fn default() -> Self {
        Destinations {
            on_success: None,
            on_failure: None,
            attempts: 5,
            timeout_seconds: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            store: None,
            token: None,
            workers: None,
            presets_dir: None,
            buckets: BTreeMap::new(),
            worker: WorkerSettings::default(),
            retry: Retry::default(),
            destinations: Destinations::default(),
            triggers: vec![crate::triggers::rules::Rule::default_rule()],
            api: ApiSettings::default(),
            watch: WatchSettings::default(),
            exec: ExecSettings::default(),
        }
    }
}

/// The top-level keys, as environment variables name them (`FFARM_<KEY>`).
const SECTIONS: [&str; 14] = [
    "listen",
    "data_dir",
    "store",
    "token",
    "workers",
    "presets_dir",
    "buckets",
    "worker",
    "retry",
    "destinations",
    "triggers",
    "api",
    "watch",
    "exec",
];

/// Whether an environment variable (prefix removed, sections split with '.') names a
/// configuration key. Figment filters before it lowercases, so case does not matter here.
fn names_a_key(key: &str) -> bool {
    let top = key.split('.').next().unwrap_or("");
    SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(top))
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults → `file` (or `./ffarm.toml` if present) → environment → `overrides`
    /// (a partial config, typically from command-line flags).
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) => {
                if !f.exists() {
                    return Err(ConfigError(format!("{}: no such file", f.display())));
                }
                figment = figment.merge(Toml::file(f));
            }
            None => {
                if Path::new("ffarm.toml").exists() {
                    figment = figment.merge(Toml::file("ffarm.toml"));
                }
            }
        }
        // Only variables naming a configuration key: FFARM_LOG, FFARM_SERVER and the like
        // belong to other parts.
        let env = Env::prefixed("FFARM_")
            .split("__")
            .filter(|key| names_a_key(key.as_str()));
        figment = figment.merge(env).merge(Serialized::globals(overrides));
        let config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.worker.lease_seconds < 3 {
            return Err(ConfigError(
                "worker.lease_seconds must be at least 3".into(),
            ));
        }
        if !(self.retry.base_seconds.is_finite()
            && self.retry.base_seconds >= 0.0
            && self.retry.max_seconds.is_finite())
        {
            return Err(ConfigError(
                "retry.base_seconds and retry.max_seconds must be numbers of seconds".into(),
            ));
        }
        if self.worker.job_timeout_seconds == 0 {
            return Err(ConfigError(
                "worker.job_timeout_seconds must be at least 1".into(),
            ));
        }
        if self.worker.poll_seconds == 0 {
            return Err(ConfigError("worker.poll_seconds must be at least 1".into()));
        }
        if let Some(t) = &self.token
            && t.len() < 16
        {
            return Err(ConfigError("token must be at least 16 characters".into()));
        }
        for (key, url) in [
            ("destinations.on_success", &self.destinations.on_success),
            ("destinations.on_failure", &self.destinations.on_failure),
        ] {
            if let Some(url) = url {
                crate::destinations::validate_url(url)
                    .map_err(|m| ConfigError(format!("{key}: {m}")))?;
            }
        }
        if let Some(t) = &self.exec.token
            && t.len() < 16
        {
            return Err(ConfigError(
                "exec.token must be at least 16 characters".into(),
            ));
        }
        if self.exec.max_sessions_per_job == 0 {
            return Err(ConfigError(
                "exec.max_sessions_per_job must be at least 1".into(),
            ));
        }
        if !(self.watch.settle_seconds.is_finite() && self.watch.settle_seconds >= 0.0) {
            return Err(ConfigError(
                "watch.settle_seconds must be a number of seconds".into(),
            ));
        }
        for name in self.buckets.keys() {
            crate::buckets::validate_bucket(name).map_err(|e| ConfigError(e.to_string()))?;
        }
        Ok(())
    }

    /// The configuration as TOML, with secrets (token, bucket credentials) masked.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.token.is_some() {
            shown.token = Some("********".into());
        }
        if shown.exec.token.is_some() {
            shown.exec.token = Some("********".into());
        }
        for bucket in shown.buckets.values_mut() {
            for (k, v) in bucket.options.iter_mut() {
                if k.contains("secret")
                    || k.contains("key")
                    || k.contains("token")
                    || k.contains("password")
                {
                    *v = "********".into();
                }
            }
        }
        if let Some(store) = &shown.store
            && let Ok(mut url) = url::Url::parse(store)
            && url.password().is_some()
        {
            let _ = url.set_password(Some("********"));
            shown.store = Some(url.to_string());
        }
        toml::to_string_pretty(&shown).unwrap_or_default()
    }

    /// Opens the configured store with the configured retry policy.
    pub async fn open_store(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::store::JobStore>, crate::store::StoreError> {
        crate::store::open_with(&self.store_url(), self.retry.policy()).await
    }

    /// The store URL, defaulting to the SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("ffarm.db").display()))
    }

    /// Task slots for this process's workers.
    pub fn slots(&self) -> u32 {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(2)
        })
    }

    /// This worker's registry id.
    pub fn worker_id(&self) -> String {
        self.worker
            .id
            .clone()
            .unwrap_or_else(|| format!("{}/{}", hostname(), std::process::id()))
    }
}

/// This machine's host name, as workers register it and exec sessions are signed with.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::names_a_key;

    #[test]
    fn environment_variables_name_keys_in_any_case() {
        for key in [
            "WORKER.STOP_GRACE_SECONDS",
            "store",
            "DATA_DIR",
            "BUCKETS.MEDIA.URL",
            "retry.base_seconds",
        ] {
            assert!(names_a_key(key), "{key}");
        }
        for key in ["LOG", "SERVER", "FFMPEG_LOG", "TEST_ABORT_KEY"] {
            assert!(!names_a_key(key), "{key}");
        }
    }
}
