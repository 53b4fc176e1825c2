//! The farm as a server sees it: `ffarm presets` with `--server`/`FFARM_SERVER` (the server's
//! presets; the shipped ones otherwise) and `ffarm workers`.

use std::path::Path;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::format;
use super::http::ClientArgs;
use super::{block_on, exit, print_json, print_table, table};
use crate::job::Timestamp;
use crate::store::WorkerInfo;

/// A preset as `GET /v1/presets` lists it (only what the listing shows).
#[derive(Debug, Deserialize)]
struct PresetSummary {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    container: String,
}

/// `ffarm presets [--json]`: the server's presets when a server is named, else the local set.
pub fn presets(client: &ClientArgs, presets_dir: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    if !client.named() {
        return super::super::presets(presets_dir, json);
    }
    if presets_dir.is_some() {
        eprintln!("note: --presets-dir applies to local commands; listing the server's presets");
    }
    block_on(async {
        let client = client.connect()?;
        let all: Vec<serde_json::Value> = client.get(client.url(&["v1", "presets"])).await?;
        if json {
            print_json(&all)?;
            return Ok(exit::OK);
        }
        let list: Vec<PresetSummary> = all
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        let width = list.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &list {
            println!("{:<width$}  {:<5}  {}", p.name, p.container, p.description);
        }
        Ok(exit::OK)
    })
}

#[derive(Debug, Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the workers as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A worker as `GET /v1/workers` lists it.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerView {
    #[serde(flatten)]
    info: WorkerInfo,
    /// active, draining or lost.
    state: String,
    busy: u32,
}

/// `ffarm workers`.
pub fn workers(args: &WorkersArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let list: Vec<WorkerView> = client.get(client.url(&["v1", "workers"])).await?;
        if args.json {
            print_json(&list)?;
            return Ok(exit::OK);
        }
        if list.is_empty() {
            eprintln!("no workers have registered");
            return Ok(exit::OK);
        }
        let now = Timestamp::now();
        let mut t = table(&[
            "ID",
            "STATE",
            "SLOTS",
            "BUSY",
            "RUNNING",
            "VERSION",
            "LAST SEEN",
            "SANDBOX",
        ]);
        for w in &list {
            let running = match w.info.running.as_slice() {
                [] => "-".to_string(),
                ids => ids.join(", "),
            };
            t.add_row(vec![
                w.info.id.clone(),
                w.state.clone(),
                w.info.slots.to_string(),
                w.busy.to_string(),
                running,
                w.info.version.clone(),
                format::ago(w.info.last_seen, now),
                format::sandbox(w.info.sandbox.as_ref()),
            ]);
        }
        print_table(&t);
        Ok(exit::OK)
    })
}
