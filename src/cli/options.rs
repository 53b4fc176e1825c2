//! The options `serve` and `worker` share — where the farm's data lives and how its workers
//! run — and how they become configuration overrides (flags beat `ffarm.toml` and `FFARM_…`).

use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value, json};

use crate::config::Config;

#[derive(Debug, Args)]
pub struct FarmArgs {
    /// Configuration file (default: ./ffarm.toml when it exists).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The job store: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://DATA_DIR/ffarm.db].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Local data: SQLite file, local buckets, task workspaces [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A bucket that is not a folder under DATA_DIR/buckets: NAME=URL (file://, s3://, gs://,
    /// az://). Repeatable. Credentials and endpoints come from the usual AWS_*, GOOGLE_*,
    /// AZURE_* variables; options in ffarm.toml win over them.
    #[arg(long = "bucket", value_name = "NAME=URL")]
    pub buckets: Vec<String>,
    /// Task slots of this process's workers [default: the number of CPU cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// This worker's registry id [default: HOST/PID].
    #[arg(long, value_name = "ID")]
    pub worker_id: Option<String>,
    /// Lease length in seconds (renewed every second while a task runs) [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub lease_seconds: Option<u64>,
    /// How long running tasks may finish on SIGTERM before they are handed back [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub drain_timeout: Option<u64>,
    /// The address the API reaches this worker at for exec; with [exec] enabled the worker
    /// listens there for sessions into its tasks.
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
}

impl FarmArgs {
    /// Loads the configuration with these flags on top.
    pub fn load(&self, presets_dir: Option<&PathBuf>) -> anyhow::Result<Config> {
        Ok(Config::load(
            self.config.as_deref(),
            self.overrides(presets_dir)?,
        )?)
    }

    fn overrides(&self, presets_dir: Option<&PathBuf>) -> anyhow::Result<Value> {
        let mut top = Map::new();
        let mut set = |k: &str, v: Value| {
            top.insert(k.to_string(), v);
        };
        if let Some(s) = &self.store {
            set("store", json!(s));
        }
        if let Some(d) = &self.data_dir {
            set("data_dir", json!(d));
        }
        if let Some(w) = self.workers {
            set("workers", json!(w));
        }
        if let Some(p) = presets_dir {
            set("presets_dir", json!(p));
        }
        let mut buckets = Map::new();
        for b in &self.buckets {
            let (name, url) = b
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--bucket {b}: expected NAME=URL"))?;
            buckets.insert(name.to_string(), json!({ "url": url }));
        }
        if !buckets.is_empty() {
            set("buckets", Value::Object(buckets));
        }
        let mut worker = Map::new();
        if let Some(id) = &self.worker_id {
            worker.insert("id".into(), json!(id));
        }
        if let Some(l) = self.lease_seconds {
            worker.insert("lease_seconds".into(), json!(l));
        }
        if let Some(d) = self.drain_timeout {
            worker.insert("drain_timeout_seconds".into(), json!(d));
        }
        if let Some(a) = &self.advertise {
            worker.insert("advertise".into(), json!(a));
        }
        if !worker.is_empty() {
            set("worker", Value::Object(worker));
        }
        Ok(Value::Object(top))
    }
}
