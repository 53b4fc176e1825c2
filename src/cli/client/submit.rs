//! `ffarm submit BUCKET/KEY --preset P [--wait]`: submits a job and, with `--wait`, follows it
//! to the end over its event stream (polling when the stream drops), showing progress on
//! stderr, then prints its outputs or its error.

use std::time::{Duration, Instant};

use clap::Args;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::format::{self, object};
use super::http::{Client, ClientArgs};
use super::{block_on, exit, print_json, status_code, until_interrupted};
use crate::cli::exit::Failure;
use crate::job::{AudioChoice, Chunking, Clip, Job, ObjectRef, Status};
use crate::progress::Progress;

/// How long the event stream may stay silent before `--wait` polls instead.
const STREAM_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The input object, as BUCKET/KEY (split at the first '/').
    #[arg(value_name = "BUCKET/KEY", value_parser = format::split_object)]
    pub input: ObjectRef,
    /// The preset (`ffarm presets` lists them). Give it several times (or comma-separated)
    /// for one job with an output per preset, made from one decode, named STEM.PRESET.EXT.
    #[arg(long, short, required = true, value_delimiter = ',')]
    pub preset: Vec<String>,
    /// Name the job (1 to 128 of A-Z a-z 0-9 _ -); submitting an existing id with the same
    /// request returns that job.
    #[arg(long)]
    pub id: Option<String>,
    /// Where outputs go in the input's bucket [default: out/].
    #[arg(long, value_name = "PREFIX")]
    pub output_prefix: Option<String>,
    /// Higher runs first [default: 0].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Replace outputs another input wrote under the same keys (without it such a job fails
    /// with output-conflict and leaves them as they are).
    #[arg(long)]
    pub overwrite: bool,
    /// Whether the job's video may be split into parts that several workers encode at once:
    /// auto (when the input is long and the farm has free slots), off, or a part length in
    /// seconds (at least 2; only for presets that encode video) [default: what the preset
    /// says, else auto].
    #[arg(long, value_name = "auto|off|SECONDS", value_parser = Chunking::parse)]
    pub chunking: Option<Chunking>,
    /// Transcode only from this time of the input (seconds; frame-accurate, the audio cut to
    /// match; only presets that re-encode; such a job runs whole).
    #[arg(long, value_name = "SECONDS")]
    pub start: Option<f64>,
    /// Transcode only up to this time of the input (seconds).
    #[arg(long, value_name = "SECONDS")]
    pub end: Option<f64>,
    /// Keep the audio tracks in these languages, in this order (ISO 639 codes, `und` for
    /// tracks that name none); several become alternate audio renditions in HLS.
    #[arg(long, value_name = "LANG,…", value_delimiter = ',')]
    pub audio_languages: Option<Vec<String>>,
    /// Follow the job to the end; exit 0 if it succeeded, 1 if it failed, 5 if cancelled.
    #[arg(long)]
    pub wait: bool,
    /// Print the job as JSON (with --wait, the finished job).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct SubmitBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    input: &'a ObjectRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    preset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presets: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<OutputBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwrite: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunking: Option<Chunking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clip: Option<Clip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<AudioChoice>,
}

#[derive(Debug, Serialize)]
struct OutputBody<'a> {
    prefix: &'a str,
}

/// `ffarm submit`.
pub fn submit(args: &SubmitArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let body = SubmitBody {
            id: args.id.as_deref(),
            input: &args.input,
            preset: match args.preset.as_slice() {
                [one] => Some(one.as_str()),
                _ => None,
            },
            presets: (args.preset.len() > 1).then_some(args.preset.as_slice()),
            output: args
                .output_prefix
                .as_deref()
                .map(|prefix| OutputBody { prefix }),
            priority: args.priority,
            overwrite: args.overwrite,
            chunking: args.chunking,
            clip: (args.start.is_some() || args.end.is_some()).then(|| Clip {
                start: args.start.unwrap_or(0.0),
                end: args.end,
            }),
            audio: args
                .audio_languages
                .clone()
                .map(|languages| AudioChoice { languages }),
        };
        let (status, job): (_, Job) = client
            .post(client.url(&["v1", "jobs"]), Some(&body))
            .await?;
        let created = status == StatusCode::CREATED;
        if !args.json {
            println!("{}", job.id);
            if created {
                eprintln!("created job {} ({})", job.id, job.status);
            } else {
                eprintln!("job {} already exists ({})", job.id, job.status);
            }
        }
        if !args.wait {
            if args.json {
                print_json(&job)?;
            }
            return Ok(exit::OK);
        }
        let id = job.id.clone();
        let mut view = View::new(&job);
        let bar = view.bar.clone();
        let followed = async {
            let done = follow(&client, job, &mut view).await?;
            view.finish();
            finish(&done, args.json)
        };
        until_interrupted(&id, followed, || {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        })
        .await
    })
}

/// Prints how the job ended; the exit code its status means (a failure is an error).
fn finish(job: &Job, json: bool) -> anyhow::Result<u8> {
    if json {
        print_json(job)?;
    } else {
        for o in &job.outputs {
            println!(
                "{}  {} ({} bytes)",
                object(&o.bucket, &o.key),
                format::bytes(o.bytes),
                o.bytes
            );
        }
    }
    let code = status_code(job.status);
    match job.status {
        Status::Succeeded => Ok(code),
        Status::Cancelled => {
            Err(Failure::new(code, format!("job {} was cancelled", job.id)).into())
        }
        _ => {
            let why = job
                .error
                .as_ref()
                .map(|e| format!(": {} [{}]", e.message, e.code))
                .unwrap_or_default();
            Err(Failure::new(
                code,
                format!(
                    "job {} failed after attempt {}/{}{why} (`ffarm logs {}` shows its log)",
                    job.id, job.attempt, job.max_attempts, job.id
                ),
            )
            .into())
        }
    }
}

/// A `progress` event.
#[derive(Debug, Deserialize)]
struct ProgressEvent {
    status: Status,
    progress: Option<Progress>,
}

/// Follows a job until it is terminal: its event stream, then polling once a second when
/// the stream is unavailable or ends early.
async fn follow(client: &Client, mut job: Job, view: &mut View) -> anyhow::Result<Job> {
    view.job(&job);
    if job.status.is_terminal() {
        return Ok(job);
    }
    if let Ok(resp) = client
        .events(client.url(&["v1", "jobs", &job.id, "events"]))
        .await
    {
        let mut events = resp.bytes_stream().eventsource();
        // A stream silent this long may be a dead connection: polling is as good.
        while let Ok(Some(Ok(e))) = tokio::time::timeout(STREAM_IDLE, events.next()).await {
            match e.event.as_str() {
                "job" => {
                    if let Ok(j) = serde_json::from_str::<Job>(&e.data) {
                        job = j;
                        view.job(&job);
                        if job.status.is_terminal() {
                            return Ok(job);
                        }
                    }
                }
                "progress" => {
                    if let Ok(p) = serde_json::from_str::<ProgressEvent>(&e.data) {
                        view.progress(p.status, p.progress.as_ref());
                    }
                }
                _ => {}
            }
        }
    }
    // The stream dropped (or never opened): poll, riding out a restarting server.
    let mut failures = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match client
            .get::<Job>(client.url(&["v1", "jobs", &job.id]))
            .await
        {
            Ok(j) => {
                failures = 0;
                job = j;
                view.job(&job);
                if job.status.is_terminal() {
                    return Ok(job);
                }
            }
            // Unreachable or a server error: worth retrying for a while.
            Err(e) if exit::code_of(&e) == exit::FAILED && failures < 30 => {
                if failures == 0 {
                    view.say(&format!("{e:#}; retrying every second"));
                }
                failures += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The progress display on stderr: a bar on a terminal, otherwise a line every few seconds.
struct View {
    id: String,
    bar: Option<ProgressBar>,
    status: Option<Status>,
    attempt: u32,
    last_line: Option<Instant>,
    last_phase: Option<&'static str>,
}

impl View {
    fn new(job: &Job) -> View {
        View {
            id: job.id.clone(),
            bar: super::super::local::progress_bar(&job.id),
            status: None,
            attempt: 0,
            last_line: None,
            last_phase: None,
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn job(&mut self, job: &Job) {
        if self.status != Some(job.status) || self.attempt != job.attempt {
            let mut line = format!("{}: {}", self.id, job.status);
            if job.status.is_active()
                && let Some(w) = &job.worker
            {
                line.push_str(&format!(
                    " on {w} (attempt {}/{})",
                    job.attempt, job.max_attempts
                ));
            }
            self.say(&line);
            self.status = Some(job.status);
            self.attempt = job.attempt;
        }
        self.progress(job.status, job.progress.as_ref());
    }

    fn progress(&mut self, status: Status, p: Option<&Progress>) {
        let what = match p {
            Some(p) if status.is_active() => format::progress(p),
            _ => status.to_string(),
        };
        if let Some(bar) = &self.bar {
            bar.set_position(p.map_or(0, |p| (p.percent.clamp(0.0, 100.0) * 10.0) as u64));
            bar.set_message(what);
            return;
        }
        let Some(p) = p.filter(|_| status.is_active()) else {
            return;
        };
        let phase = p.phase.as_str();
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if due || self.last_phase != Some(phase) {
            eprintln!("{}: {what}", self.id);
            self.last_line = Some(Instant::now());
            self.last_phase = Some(phase);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
