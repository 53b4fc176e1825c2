//! The `ffarm` command line: parses arguments and dispatches to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ffarm::cli;

#[derive(Parser)]
#[command(
    name = "ffarm",
    version,
    about = "A self-hosted media transcoding worker farm"
)]
struct Cli {
    /// A directory of extra presets (*.toml) that add to or replace the shipped ones.
    #[arg(long, global = true, env = "FFARM_PRESETS_DIR")]
    presets_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole farm: API, web page, watch folder and workers (embedded default:
    /// ./data, SQLite, 127.0.0.1:8080).
    Serve(cli::serve::ServeArgs),
    /// Print what a media file holds, as JSON (the same values ffprobe reports).
    Probe { file: PathBuf },
    /// List the presets with a one-line description (a server's, with --server or
    /// FFARM_SERVER; the shipped ones otherwise).
    Presets {
        /// Print the full presets as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: cli::client::ClientArgs,
    },
    /// Transcode one file here, with the same engine the workers run.
    Transcode(TranscodeArgs),
    /// Print the effective configuration (defaults, ffarm.toml, FFARM_* and flags), secrets
    /// masked.
    Config {
        #[command(flatten)]
        farm: cli::options::FarmArgs,
    },
    /// Run workers: claim jobs from the store and run each as a task process.
    Worker {
        #[command(flatten)]
        farm: cli::options::FarmArgs,
        /// Serve this worker's Prometheus metrics (attempt durations, encode fps) at
        /// http://HOST:PORT/metrics.
        #[arg(long, value_name = "HOST:PORT")]
        metrics: Option<String>,
    },
    /// Run one task (started by a worker; not for direct use).
    #[command(hide = true)]
    Task { spec: PathBuf },
    /// Run one step of a task's media work in the sandbox, its request on stdin (started by
    /// a task; not for direct use).
    #[command(hide = true)]
    Engine,
    /// Try one thing from inside the engine's sandbox (the tests' probe; not for direct use).
    #[command(hide = true)]
    SandboxProbe {
        /// The input the sandbox lets it read.
        #[arg(long)]
        input: PathBuf,
        /// The staging directory the sandbox lets it write in.
        #[arg(long)]
        staging: PathBuf,
        /// Without the sandbox, to show the check can succeed.
        #[arg(long)]
        off: bool,
        /// The address-space limit, in bytes.
        #[arg(long)]
        memory: Option<u64>,
        check: String,
        arg: Option<String>,
    },
    /// Submit a job to a server: BUCKET/KEY with a preset; --wait follows it to the end.
    Submit(cli::client::SubmitArgs),
    /// List a server's jobs, newest first.
    Jobs(cli::client::JobsArgs),
    /// Show one job: status, input, outputs, progress, times, error and history.
    Show(cli::client::ShowArgs),
    /// Cancel a job (a running one is stopped by its worker).
    Cancel(cli::client::CancelArgs),
    /// Queue a failed or cancelled job again.
    Retry(cli::client::RetryArgs),
    /// Print a job's task log; -f follows it until the job ends.
    Logs(cli::client::LogsArgs),
    /// Open a shell inside a job's running task (`ffarm exec ID`), or run one command there
    /// and exit with its code (`ffarm exec ID -- CMD ARGS…`). Needs `[exec] enabled` on the
    /// server and its token (FFARM_EXEC_TOKEN, else FFARM_TOKEN).
    Exec(cli::client::ExecArgs),
    /// List a server's workers.
    Workers(cli::client::WorkersArgs),
}

/// `ffarm transcode`'s arguments.
#[derive(clap::Args)]
struct TranscodeArgs {
    input: PathBuf,
    /// The output file; for HLS presets a playlist path (x.m3u8: a ladder's master
    /// playlist, beside its x_RUNG.m3u8 variants) or a directory (the master is
    /// master.m3u8 there, beside index_RUNG.m3u8).
    output: PathBuf,
    /// The preset; without it, the default preset for the output's extension.
    #[arg(long, short)]
    preset: Option<String>,
    /// Print the full report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print the equivalent `ffmpeg` command line instead of transcoding.
    #[arg(long)]
    print_ffmpeg: bool,
    /// Transcode only from this time of the input (seconds; frame-accurate, the audio cut
    /// to match).
    #[arg(long, value_name = "SECONDS")]
    start: Option<f64>,
    /// Transcode only up to this time of the input (seconds).
    #[arg(long, value_name = "SECONDS")]
    end: Option<f64>,
    /// Composite this PNG or JPEG on the video (placed as the preset's watermark says,
    /// else bottom right, a tenth of the picture's height).
    #[arg(long, value_name = "IMAGE")]
    watermark: Option<PathBuf>,
    /// Measure the video's SSIM and PSNR against the input afterwards (one more decode
    /// of both; shown on stderr and in --json's checks).
    #[arg(long)]
    quality: bool,
    /// Keep the audio tracks in these languages, in this order (ISO 639 codes, `und` for
    /// tracks that name none; over the preset's `[audio] languages`). Several kept go
    /// into containers that hold several, and become alternate audio renditions in HLS.
    #[arg(long, value_name = "LANG,…", value_delimiter = ',')]
    audio_languages: Option<Vec<String>>,
    /// Carry this caption file (SRT, ASS/SSA, WebVTT) into the output, in language LANG
    /// (ISO 639-2, e.g. eng; default und); repeatable.
    #[arg(long, value_name = "FILE[:LANG]")]
    captions: Vec<String>,
    /// Also write every caption track as NAME.LANG.vtt beside the output.
    #[arg(long)]
    caption_side_files: bool,
    /// Render the first caption track into the picture.
    #[arg(long)]
    burn_in: bool,
    /// Run without the sandbox the workers' engines run in (by default this command
    /// enters it too: it reads only INPUT and writes only in OUTPUT's folder, with no
    /// network and bounded memory).
    #[arg(long)]
    no_sandbox: bool,
}

impl TranscodeArgs {
    fn run(self, presets_dir: Option<&std::path::Path>) -> anyhow::Result<u8> {
        let clip = (self.start.is_some() || self.end.is_some()).then(|| ffarm::job::Clip {
            start: self.start.unwrap_or(0.0),
            end: self.end,
        });
        cli::transcode(
            &self.input,
            &self.output,
            self.preset.as_deref(),
            presets_dir,
            cli::TranscodeOptions {
                json: self.json,
                print_ffmpeg: self.print_ffmpeg,
                sandbox: !self.no_sandbox,
                clip,
                watermark: self.watermark,
                quality: self.quality,
                audio_languages: self.audio_languages,
                captions: ffarm::media::CaptionEdits {
                    files: self.captions.iter().map(|c| cli::caption_file(c)).collect(),
                    side_files: self.caption_side_files,
                    burn_in: self.burn_in,
                },
            },
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The long-running commands say what they do; one-shot commands only warn.
    let default_log = match cli.command {
        Command::Serve(_) | Command::Worker { .. } => "warn,ffarm=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FFARM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let presets_dir = cli.presets_dir.as_deref();
    let result = match cli.command {
        Command::Probe { file } => cli::probe(&file),
        Command::Presets { json, client } => cli::client::presets(&client, presets_dir, json),
        Command::Transcode(args) => args.run(presets_dir),
        Command::Config { farm } => farm.load(cli.presets_dir.as_ref()).map(|c| {
            print!("{}", c.to_redacted_toml());
            cli::exit::OK
        }),
        Command::Serve(args) => cli::serve::serve(&args, cli.presets_dir.as_ref()),
        Command::Worker { farm, metrics } => {
            cli::worker(&farm, metrics.as_deref(), cli.presets_dir.as_ref())
        }
        Command::Task { spec } => return ExitCode::from(cli::task(&spec)),
        Command::Engine => return ExitCode::from(cli::engine()),
        Command::SandboxProbe {
            input,
            staging,
            off,
            memory,
            check,
            arg,
        } => {
            let probe = ffarm::sandbox::probe::Probe {
                sandbox: !off,
                input,
                staging,
                memory_bytes: memory,
                check,
                arg,
            };
            return ExitCode::from(ffarm::sandbox::probe::run(&probe));
        }
        Command::Submit(args) => cli::client::submit(&args),
        Command::Jobs(args) => cli::client::jobs(&args),
        Command::Show(args) => cli::client::show(&args),
        Command::Cancel(args) => cli::client::cancel(&args),
        Command::Retry(args) => cli::client::retry(&args),
        Command::Logs(args) => cli::client::logs(&args),
        Command::Exec(args) => cli::client::exec(&args),
        Command::Workers(args) => cli::client::workers(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit::code_of(&e))
        }
    }
}
