//! What the `ffarm` command's subcommands do once arguments are parsed: presentation (tables,
//! progress bars, JSON) and exit codes. `main.rs` only parses and dispatches here.

pub mod farm;
mod local;
pub mod serve;
mod workers;

pub use local::{presets, probe, transcode};
pub use workers::{task, worker};

/// Exit codes a script can rely on.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The operation failed (the message says why).
    pub const FAILED: u8 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The operation was stopped (Ctrl-C / SIGTERM), as a shell reports SIGINT.
    pub const STOPPED: u8 = 130;
}
