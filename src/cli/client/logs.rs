//! `ffarm logs ID [-f] [--attempt N]`: a job's task log, page by page; `-f` keeps polling
//! until the job has finished and no more lines come, then exits with the job's status.

use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::http::{Client, ClientArgs};
use super::{block_on, exit, status_code, until_interrupted};
use crate::job::Job;
use crate::store::LogLine;

/// How often `-f` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Lines per request.
const PAGE: u32 = 1000;

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job's id.
    pub id: String,
    /// Keep printing new lines until the job ends; exit 0 if it succeeded, 1 if it failed,
    /// 5 if cancelled.
    #[arg(long, short)]
    pub follow: bool,
    /// Only this attempt's lines (default: every attempt's).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
}

/// `GET /v1/jobs/{id}/logs`'s answer.
#[derive(Debug, Deserialize)]
struct LogPage {
    lines: Vec<LogLine>,
    next: i64,
}

/// `ffarm logs`.
pub fn logs(args: &LogsArgs) -> anyhow::Result<u8> {
    block_on(async {
        let client = args.client.connect()?;
        let mut reader = Reader {
            client: &client,
            args,
            after: 0,
            tagged: false,
        };
        let job: Job = client.get(client.url(&["v1", "jobs", &args.id])).await?;
        reader.tag_if_several(&job);
        if !args.follow {
            reader.print_new().await?;
            return Ok(exit::OK);
        }
        let follow = async {
            loop {
                // The job first: lines written before it finished are then all there to read.
                let job: Job = client.get(client.url(&["v1", "jobs", &args.id])).await?;
                reader.tag_if_several(&job);
                let printed = reader.print_new().await?;
                if job.status.is_terminal() && printed == 0 {
                    return Ok(status_code(job.status));
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        };
        until_interrupted(&args.id, follow, || {}).await
    })
}

struct Reader<'a> {
    client: &'a Client,
    args: &'a LogsArgs,
    /// The last sequence number printed.
    after: i64,
    /// Whether lines carry `[attempt N]` (several attempts shown).
    tagged: bool,
}

impl Reader<'_> {
    fn tag_if_several(&mut self, job: &Job) {
        self.tagged |= self.args.attempt.is_none() && job.attempt > 1;
    }

    /// Prints every line after the last one printed; how many there were.
    async fn print_new(&mut self) -> anyhow::Result<usize> {
        let mut printed = 0;
        loop {
            let mut url = self.client.url(&["v1", "jobs", &self.args.id, "logs"]);
            {
                let mut q = url.query_pairs_mut();
                if let Some(a) = self.args.attempt {
                    q.append_pair("attempt", &a.to_string());
                }
                q.append_pair("after", &self.after.to_string());
                q.append_pair("limit", &PAGE.to_string());
            }
            let page: LogPage = self.client.get(url).await?;
            if page.lines.is_empty() {
                return Ok(printed);
            }
            for l in &page.lines {
                println!("{}", line(l, self.tagged));
            }
            printed += page.lines.len();
            if page.next <= self.after {
                return Ok(printed); // a server that does not move on: stop rather than loop
            }
            self.after = page.next;
        }
    }
}

/// A log line as printed: its text, tagged with its attempt when several are shown.
fn line(l: &LogLine, tagged: bool) -> String {
    if tagged {
        format!("[attempt {}] {}", l.attempt, l.line)
    } else {
        l.line.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Timestamp;

    #[test]
    fn lines_are_tagged_only_when_asked() {
        let l = LogLine {
            seq: 4,
            attempt: 2,
            at: Timestamp(0),
            line: "[task] downloading".into(),
        };
        assert_eq!(line(&l, false), "[task] downloading");
        assert_eq!(line(&l, true), "[attempt 2] [task] downloading");
    }
}
