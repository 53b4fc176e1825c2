//! Configuration: built-in defaults, then `ffarm.toml` (or `--config FILE`), then `FFARM_…`
//! environment variables (`__` separates sections: `FFARM_WORKER__LEASE_SECONDS`), then
//! command-line flags. `ffarm.example.toml` lists every key with its default and variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::job::MIN_SEGMENT_SECONDS;

mod sections;

pub use sections::*;

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
    pub triggers: Vec<TriggerRule>,
    pub api: ApiSettings,
    pub watch: WatchSettings,
    pub exec: ExecSettings,
    pub chunking: ChunkingConfig,
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
            triggers: vec![TriggerRule::default_rule()],
            api: ApiSettings::default(),
            watch: WatchSettings::default(),
            exec: ExecSettings::default(),
            chunking: ChunkingConfig::default(),
        }
    }
}

/// The top-level keys, as environment variables name them (`FFARM_<KEY>`).
const SECTIONS: [&str; 15] = [
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
    "chunking",
];

/// Whether an environment variable (prefix removed, sections split with '.') names a
/// configuration key. Figment filters before it lowercases, so case does not matter here.
fn names_a_key(key: &str) -> bool {
    let top = key.split('.').next().unwrap_or("");
    SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(top))
}

/// Why a configuration cannot be used; each names the file or key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` names a file that does not exist.
    #[error("configuration: {}: no such file", path.display())]
    NoSuchFile { path: PathBuf },
    /// The sources do not make a configuration (a wrong type, an unknown key); figment's
    /// message names the key and where its value came from.
    #[error("configuration: {0}")]
    Unreadable(Box<figment::Error>),
    /// A key holds a value ffarm cannot run with.
    #[error("configuration: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The key (`worker.lease_seconds`, `buckets.NAME`) or file the error is about.
    pub fn key(&self) -> String {
        match self {
            ConfigError::NoSuchFile { path } => path.display().to_string(),
            ConfigError::Unreadable(e) => e.path.join("."),
            ConfigError::Invalid { key, .. } => key.clone(),
        }
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults → `file` (or `./ffarm.toml` if present) → environment → `overrides`
    /// (a partial config, typically from command-line flags).
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) => {
                if !f.exists() {
                    return Err(ConfigError::NoSuchFile { path: f.into() });
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
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Unreadable(Box::new(e)))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.check_worker()?;
        self.check_tokens()?;
        self.check_chunking()?;
        for (key, url) in [
            ("destinations.on_success", &self.destinations.on_success),
            ("destinations.on_failure", &self.destinations.on_failure),
        ] {
            if let Some(url) = url {
                crate::job::validate_destination(url).map_err(|m| invalid(key, m))?;
            }
        }
        for (i, secret) in self.destinations.secrets.iter().enumerate() {
            sections::signing_key(secret)
                .map_err(|m| invalid(format!("destinations.secrets[{i}]"), m))?;
        }
        if self.exec.max_sessions_per_job == 0 {
            return Err(invalid("exec.max_sessions_per_job", "must be at least 1"));
        }
        if !(self.watch.settle_seconds.is_finite() && self.watch.settle_seconds >= 0.0) {
            return Err(invalid(
                "watch.settle_seconds",
                "must be a number of seconds",
            ));
        }
        for name in self.buckets.keys() {
            if !crate::job::is_bucket_name(name) {
                return Err(invalid(
                    format!("buckets.{name}"),
                    format!("invalid bucket name: {}", crate::job::BUCKET_NAME_RULE),
                ));
            }
        }
        Ok(())
    }

    fn check_worker(&self) -> Result<(), ConfigError> {
        if self.worker.lease_seconds < 3 {
            return Err(invalid("worker.lease_seconds", "must be at least 3"));
        }
        if !(self.retry.base_seconds.is_finite()
            && self.retry.base_seconds >= 0.0
            && self.retry.max_seconds.is_finite())
        {
            return Err(invalid(
                "retry",
                "base_seconds and max_seconds must be numbers of seconds",
            ));
        }
        if self.worker.job_timeout_seconds == 0 {
            return Err(invalid("worker.job_timeout_seconds", "must be at least 1"));
        }
        if self.worker.poll_seconds == 0 {
            return Err(invalid("worker.poll_seconds", "must be at least 1"));
        }
        Ok(())
    }

    fn check_chunking(&self) -> Result<(), ConfigError> {
        let chunking = &self.chunking;
        if chunking.segment_seconds < MIN_SEGMENT_SECONDS {
            return Err(invalid(
                "chunking.segment_seconds",
                format!(
                    "must be at least {MIN_SEGMENT_SECONDS}, not {}",
                    chunking.segment_seconds
                ),
            ));
        }
        if let Some(bucket) = &chunking.scratch_bucket
            && !self.buckets.contains_key(bucket)
        {
            let configured: Vec<&str> = self.buckets.keys().map(String::as_str).collect();
            return Err(invalid(
                "chunking.scratch_bucket",
                format!(
                    "'{bucket}' is not a configured bucket (configured: {}); add \
                     [buckets.{bucket}] or leave it out to keep scratch in each job's \
                     output bucket",
                    if configured.is_empty() {
                        "none".to_string()
                    } else {
                        configured.join(", ")
                    }
                ),
            ));
        }
        Ok(())
    }

    fn check_tokens(&self) -> Result<(), ConfigError> {
        for (key, token) in [("token", &self.token), ("exec.token", &self.exec.token)] {
            if token.as_ref().is_some_and(|t| t.len() < 16) {
                return Err(invalid(key, "must be at least 16 characters"));
            }
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
        for secret in &mut shown.destinations.secrets {
            *secret = "whsec_********".into();
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
