//! What the `ffarm` command's subcommands do once arguments are parsed: presentation (tables,
//! progress bars, JSON) and exit codes. `main.rs` only parses and dispatches here.

pub mod client;
mod local;
pub mod options;
pub mod serve;
mod worker;

pub use local::{TranscodeOptions, caption_file, presets, probe, transcode};
pub use worker::{engine, task, worker};

/// Exit codes a script can rely on.
///
/// | code | meaning |
/// |------|---------|
/// | 0    | success (`--wait`, `logs -f`: the job succeeded) |
/// | 1    | the operation failed; the job failed; a server error (5xx); the server cannot be reached; the server wants a token (401: set `FFARM_TOKEN`) |
/// | 2    | bad usage, or the server refused the request as malformed (400, the server's message) |
/// | 3    | not found (404: no such job, object or preset) |
/// | 4    | conflict (409: the job is already finished, not finished, or the id exists with another spec) |
/// | 5    | the job was cancelled (`--wait`, `logs -f`) |
/// | 130  | interrupted (Ctrl-C); a job being waited for keeps running on the server |
///
/// `ffarm exec` exits with the remote command's code once it ran; before that, with the
/// codes above (1 also when exec is refused: disabled, or the token is wrong or missing).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The operation failed (the message says why).
    pub const FAILED: u8 = 1;
    /// The command line was wrong (clap's own code), or the server answered 400.
    pub const USAGE: u8 = 2;
    /// What was named does not exist (the server answered 404).
    pub const NOT_FOUND: u8 = 3;
    /// The request conflicts with the job's state or an existing id (the server answered 409).
    pub const CONFLICT: u8 = 4;
    /// The job waited for (`submit --wait`, `logs -f`) ended cancelled.
    pub const CANCELLED: u8 = 5;
    /// The operation was stopped (Ctrl-C / SIGTERM), as a shell reports SIGINT.
    pub const STOPPED: u8 = 130;

    /// An error that carries its exit code; `main` prints it as `error: MESSAGE`.
    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    pub struct Failure {
        pub code: u8,
        pub message: String,
    }

    impl Failure {
        pub fn new(code: u8, message: impl Into<String>) -> Failure {
            Failure {
                code,
                message: message.into(),
            }
        }
    }

    /// The exit code for a command's error: a [`Failure`]'s own code, otherwise `FAILED`.
    pub fn code_of(e: &anyhow::Error) -> u8 {
        e.downcast_ref::<Failure>().map_or(FAILED, |f| f.code)
    }
}
