//! `ffarm worker` (claim and run jobs from a shared store) and `ffarm task` (one attempt, run
//! by a worker as a child process).

use std::path::{Path, PathBuf};

use super::exit;
use super::farm::FarmArgs;
use crate::worker::{self, Shutdown};

/// `ffarm worker`: runs until SIGTERM/SIGINT (drain) or a second signal (stop now).
pub fn worker(args: &FarmArgs, presets_dir: Option<&PathBuf>) -> anyhow::Result<u8> {
    let config = args.load(presets_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let store = config.open_store().await?;
        let ctx = worker::context(store, config)?;
        let shutdown = Shutdown::on_signals()?;
        worker::run(ctx, shutdown).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}

/// `ffarm task SPEC`: the task process; its exit code is the protocol's.
pub fn task(spec: &Path) -> u8 {
    worker::task::run(spec) as u8
}
