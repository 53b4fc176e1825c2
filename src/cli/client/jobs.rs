//! `ffarm jobs` (the list, page by page), `ffarm show ID` (one job, its parts if it is split,
//! and its history), `ffarm cancel ID` and `ffarm retry ID`.

use clap::Args;
use serde::{Deserialize, Serialize};

use super::format::{self, object};
use super::http::ClientArgs;
use super::{block_on, exit, print_json, print_table, table};
use crate::job::{Job, OutputObject, Status, Timestamp};
use crate::store::{AttemptInfo, JobEvent};

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only jobs in these statuses: queued, running, cancelling, succeeded, failed, cancelled.
    #[arg(long, value_name = "S[,S]", value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<Status>,
    /// Only jobs created at or after this time: RFC 3339, YYYY-MM-DD, or back from now (15m,
    /// 2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only jobs created before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Jobs per page, newest first, 1 to 1000 [default: 50; 1000 with --all].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Every matching job, following the pages to the end.
    #[arg(long)]
    pub all: bool,
    /// Print the jobs as a JSON array.
    #[arg(long)]
    pub json: bool,
}

fn parse_status(s: &str) -> Result<Status, String> {
    s.trim().parse()
}

/// `GET /v1/jobs`'s answer.
#[derive(Debug, Deserialize)]
struct Page {
    jobs: Vec<Job>,
    next_cursor: Option<String>,
}

/// `ffarm jobs`.
pub fn jobs(args: &JobsArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let limit = args.limit.unwrap_or(if args.all { 1000 } else { 50 });
        let statuses: Vec<&str> = args.status.iter().map(|s| s.as_str()).collect();
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = client.url(&["v1", "jobs"]);
            {
                let mut q = url.query_pairs_mut();
                if !statuses.is_empty() {
                    q.append_pair("status", &statuses.join(","));
                }
                if let Some(s) = &args.since {
                    q.append_pair("since", s);
                }
                if let Some(u) = &args.until {
                    q.append_pair("until", u);
                }
                q.append_pair("limit", &limit.to_string());
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let page: Page = client.get(url).await?;
            all.extend(page.jobs);
            match page.next_cursor {
                Some(c) if args.all && !c.is_empty() && cursor.as_ref() != Some(&c) => {
                    cursor = Some(c)
                }
                _ => break,
            }
        }
        if args.json {
            print_json(&all)?;
            return Ok(exit::OK);
        }
        if all.is_empty() {
            eprintln!("no jobs");
            return Ok(exit::OK);
        }
        let now = Timestamp::now();
        let mut t = table(&[
            "ID",
            "STATUS",
            "PRESET",
            "INPUT",
            "PROGRESS",
            "ATTEMPT",
            "CREATED",
            "DURATION/AGE",
        ]);
        for j in &all {
            t.add_row(vec![
                j.id.clone(),
                j.status.to_string(),
                j.preset.clone(),
                object(&j.input.bucket, &j.input.key),
                format::progress_cell(j),
                format!("{}/{}", j.attempt, j.max_attempts),
                format::time(j.created_at),
                format::time_cell(j, now),
            ]);
        }
        print_table(&t);
        Ok(exit::OK)
    })
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job's id.
    pub id: String,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `GET /v1/jobs/{id}/history`'s answer.
#[derive(Debug, Serialize, Deserialize)]
struct History {
    events: Vec<JobEvent>,
    attempts: Vec<AttemptInfo>,
}

/// `ffarm show ID`.
pub fn show(args: &ShowArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let job: Job = client.get(client.url(&["v1", "jobs", &args.id])).await?;
        if args.json {
            print_json(&job)?;
            return Ok(exit::OK);
        }
        let history: History = client
            .get(client.url(&["v1", "jobs", &args.id, "history"]))
            .await?;
        print!("{}", describe(&job, &history, Timestamp::now()));
        Ok(exit::OK)
    })
}

/// One output: its object, its size and what the check before success found.
fn output_row(o: &OutputObject) -> String {
    let checked = o.check.as_ref().map_or(String::new(), |c| {
        let mut seen: Vec<String> = c
            .duration_seconds
            .map(|d| format!("{d:.2} s"))
            .into_iter()
            .collect();
        seen.extend(c.streams.iter().cloned());
        if c.files > 0 {
            seen.push(format!("{} files", c.files));
        }
        if c.input_damage > 0 {
            seen.push(format!(
                "{} damaged input packets or frames concealed",
                c.input_damage
            ));
        }
        for q in &c.quality {
            let name = q
                .rendition
                .as_deref()
                .map(|r| format!("{r} "))
                .unwrap_or_default();
            seen.push(format!("{name}SSIM {:.4} PSNR {:.2} dB", q.ssim, q.psnr_db));
        }
        seen.extend(c.loudness.iter().map(|l| format!("loudness of {l}")));
        format!("; checked: {}", seen.join(", "))
    });
    format!(
        "{}  ({}{checked})",
        object(&o.bucket, &o.key),
        format::bytes(o.bytes)
    )
}

/// The human summary of a job and its history.
fn describe(job: &Job, history: &History, now: Timestamp) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("job", job.id.clone()),
        ("status", job.status.to_string()),
        ("preset", job.preset.clone()),
        ("chunking", job.chunking.to_string()),
        ("input", object(&job.input.bucket, &job.input.key)),
        ("output", object(&job.output.bucket, &job.output.prefix)),
    ];
    media_rows(job, &mut rows);
    for o in &job.outputs {
        rows.push(("outputs", output_row(o)));
    }
    if let Some(p) = &job.progress
        && job.status.is_active()
    {
        rows.push(("progress", format::progress(p)));
    }
    rows.push(("attempt", format!("{}/{}", job.attempt, job.max_attempts)));
    if let Some(w) = &job.worker {
        rows.push(("worker", w.clone()));
    }
    rows.push(("priority", job.priority.to_string()));
    rows.push(("created", format::time(job.created_at)));
    if let Some(t) = job.started_at {
        rows.push(("started", format::time(t)));
    }
    match (job.started_at, job.finished_at) {
        (Some(s), Some(f)) => rows.push((
            "finished",
            format!(
                "{}  (took {})",
                format::time(f),
                format::duration(format::seconds_between(s, f))
            ),
        )),
        (None, Some(f)) => rows.push(("finished", format::time(f))),
        (Some(s), None) if job.status.is_active() => rows.push((
            "running for",
            format::duration(format::seconds_between(s, now)),
        )),
        _ => {}
    }
    if let Some(e) = &job.error {
        let retry = if e.retryable { ", retryable" } else { "" };
        rows.push(("error", format!("{} [{}{retry}]", e.message, e.code)));
    }
    if let Some(t) = &job.trigger {
        rows.push(("trigger", t.source.clone()));
    }
    for url in [&job.on_success, &job.on_failure].into_iter().flatten() {
        rows.push(("notify", url.clone()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<width$}  {v}\n"));
    }
    out.push_str(&super::parts::describe(job));
    if !history.events.is_empty() {
        out.push_str("\nhistory\n");
    }
    for e in &history.events {
        let what = match (e.kind.as_str(), e.from, e.to) {
            ("status", Some(from), Some(to)) => format!("{from} -> {to}"),
            ("status", None, Some(to)) => to.to_string(),
            (kind, ..) => kind.to_string(),
        };
        let attempt = match e.attempt {
            0 => String::new(),
            n => format!("  [attempt {n}]"),
        };
        out.push_str(&format!(
            "  {}  {what:<22}  {}{attempt}\n",
            format::time(e.at),
            e.reason
        ));
    }
    out
}

/// The rows for what the job asks of its media: a clip, a watermark, quality figures, audio
/// languages, captions.
fn media_rows(job: &Job, rows: &mut Vec<(&str, String)>) {
    if let Some(clip) = &job.media.clip {
        let end = clip.end.map_or("the end".to_string(), |e| format!("{e} s"));
        rows.push(("clip", format!("{} s to {end}", clip.start)));
    }
    if let Some(w) = &job.media.watermark {
        let bucket = w.bucket.as_deref().unwrap_or(&job.input.bucket);
        rows.push(("watermark", object(bucket, &w.key)));
    }
    if job.media.quality {
        rows.push(("quality", "SSIM and PSNR measured".to_string()));
    }
    if let Some(a) = &job.media.audio {
        rows.push(("audio", format!("languages {}", a.languages.join(", "))));
    }
    for c in &job.media.captions {
        let bucket = c.bucket.as_deref().unwrap_or(&job.input.bucket);
        rows.push((
            "captions",
            format!("{} ({})", object(bucket, &c.key), c.language),
        ));
    }
    if let Some(s) = job.media.subtitles.filter(|s| s.side_files || s.burn_in) {
        let asked: Vec<&str> = [(s.side_files, "side files"), (s.burn_in, "burnt in")]
            .into_iter()
            .filter_map(|(on, what)| on.then_some(what))
            .collect();
        rows.push(("subtitles", asked.join(", ")));
    }
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job's id.
    pub id: String,
    /// Why, kept in the job's history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct CancelBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// `ffarm cancel ID`: a queued job ends at once; a running one is stopped by its worker.
pub fn cancel(args: &CancelArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let body = CancelBody {
            reason: args.reason.as_deref(),
        };
        let (_, job): (_, Job) = client
            .post(client.url(&["v1", "jobs", &args.id, "cancel"]), Some(&body))
            .await?;
        println!("{} {}", job.id, job.status);
        if job.status == Status::Cancelling {
            eprintln!(
                "its worker is stopping it; `ffarm show {}` to check",
                job.id
            );
        }
        Ok(exit::OK)
    })
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job's id (a failed or cancelled job).
    pub id: String,
}

/// `ffarm retry ID`: queues a failed or cancelled job again.
pub fn retry(args: &RetryArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let (_, job): (_, Job) = client
            .post::<(), _>(client.url(&["v1", "jobs", &args.id, "retry"]), None)
            .await?;
        println!("{} {}", job.id, job.status);
        Ok(exit::OK)
    })
}
