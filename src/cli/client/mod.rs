//! The client commands — `submit`, `jobs`, `show`, `cancel`, `retry`, `logs`, `exec`,
//! `workers`, and `presets` with a server — which talk to a running `ffarm serve` over its
//! HTTP API. Errors carry their exit codes (see [`crate::cli::exit`]).

mod exec;
mod farm;
mod format;
mod http;
mod jobs;
mod logs;
mod parts;
mod submit;

use std::future::Future;

pub use exec::{ExecArgs, exec};
pub use farm::{WorkersArgs, presets, workers};
pub use http::{ClientArgs, DEFAULT_SERVER};
pub use jobs::{CancelArgs, JobsArgs, RetryArgs, ShowArgs, cancel, jobs, retry, show};
pub use logs::{LogsArgs, logs};
pub use submit::{SubmitArgs, submit};

use super::exit;
use crate::job::Status;

/// Runs a command's future on a runtime of its own.
fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Runs `f` (which follows job `id`) until it ends or Ctrl-C; on Ctrl-C, says the job goes on
/// and how to follow it again, and exits 130.
async fn until_interrupted(
    id: &str,
    f: impl Future<Output = anyhow::Result<u8>>,
    on_interrupt: impl FnOnce(),
) -> anyhow::Result<u8> {
    tokio::select! {
        r = f => r,
        _ = tokio::signal::ctrl_c() => {
            on_interrupt();
            eprintln!(
                "interrupted: job {id} keeps running on the server; follow it again with \
                 `ffarm logs -f {id}` or `ffarm show {id}` (stop it with `ffarm cancel {id}`)"
            );
            Ok(exit::STOPPED)
        }
    }
}

/// The exit code for a finished job's status.
fn status_code(status: Status) -> u8 {
    match status {
        Status::Succeeded => exit::OK,
        Status::Cancelled => exit::CANCELLED,
        _ => exit::FAILED,
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A plain table (no borders, two spaces between columns) that fits the terminal.
fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Prints a table without trailing spaces.
fn print_table(t: &comfy_table::Table) {
    for line in t.lines() {
        println!("{}", line.trim_end());
    }
}
