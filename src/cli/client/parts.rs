//! `ffarm show`'s view of a split job's parts: a count by state, then a table with one row
//! per part (video parts in order, then the audio and the assembly) that fits 80 columns, then
//! each failed part's error.

use super::table;
use crate::job::{Job, PartInfo, PartKind, Status};

/// The parts section of `ffarm show`, or nothing for a job that is not split.
pub fn describe(job: &Job) -> String {
    if job.parts.is_empty() {
        return String::new();
    }
    let mut out = format!("\nparts  {}\n", summary(&job.parts));
    let mut t = table(&[
        "PART", "KIND", "RANGE", "STATUS", "ATTEMPT", "WORKER", "PROGRESS",
    ]);
    for p in &job.parts {
        t.add_row(vec![
            p.seq.to_string(),
            p.kind.as_str().to_string(),
            format!("{}-{}", hms(p.start_seconds), hms(p.end_seconds)),
            p.status.to_string(),
            attempt(p, job.max_attempts),
            p.worker.clone().unwrap_or_else(|| "-".into()),
            progress(p),
        ]);
    }
    for line in t.lines() {
        out.push_str(&format!("  {}\n", line.trim_end()));
    }
    for p in job.parts.iter().filter(|p| p.error.is_some()) {
        if let Some(e) = &p.error {
            out.push_str(&format!("  part {}: {} [{}]\n", p.seq, e.message, e.code));
        }
    }
    out
}

/// "6 video parts: 2 succeeded, 1 running, 3 queued".
fn summary(parts: &[PartInfo]) -> String {
    let video: Vec<&PartInfo> = parts.iter().filter(|p| p.kind == PartKind::Video).collect();
    let counts: Vec<String> = Status::ALL
        .iter()
        .map(|s| (s, video.iter().filter(|p| p.status == *s).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    format!("{} video parts: {}", video.len(), counts.join(", "))
}

/// A time on the input's timeline, to the second: "0:01:30".
pub fn hms(seconds: f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0).round() as u64
    } else {
        0
    };
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// "2/3": the part's attempt out of what the job allows; "-" before its first.
fn attempt(p: &PartInfo, max_attempts: u32) -> String {
    match p.attempt {
        0 => "-".into(),
        n => format!("{n}/{max_attempts}"),
    }
}

/// "42%" while it runs, "done" once it succeeded, "-" otherwise.
fn progress(p: &PartInfo) -> String {
    match (p.status, &p.progress) {
        (Status::Succeeded, _) => "done".into(),
        (s, Some(pr)) if s.is_active() => format!("{:.0}%", pr.percent),
        (s, None) if s.is_active() => "0%".into(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobError;
    use crate::progress::{Phase, Progress};

    fn part(seq: u32, kind: PartKind, range: (f64, f64), status: Status) -> PartInfo {
        PartInfo {
            seq,
            kind,
            start_seconds: range.0,
            end_seconds: range.1,
            status,
            attempt: 0,
            worker: None,
            progress: None,
            error: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn times_on_the_timeline() {
        assert_eq!(hms(0.0), "0:00:00");
        assert_eq!(hms(89.6), "0:01:30");
        assert_eq!(hms(3725.0), "1:02:05");
        assert_eq!(hms(-1.0), "0:00:00");
        assert_eq!(hms(f64::NAN), "0:00:00");
    }

    #[test]
    fn each_part_says_its_attempt_and_progress() {
        let mut running = part(1, PartKind::Video, (30.0, 60.0), Status::Running);
        running.attempt = 2;
        running.progress = Some(Progress {
            phase: Phase::Transcoding,
            percent: 41.6,
            ..Progress::default()
        });
        assert_eq!(attempt(&running, 3), "2/3");
        assert_eq!(progress(&running), "42%");
        let queued = part(2, PartKind::Video, (60.0, 90.0), Status::Queued);
        assert_eq!(
            (attempt(&queued, 3), progress(&queued)),
            ("-".into(), "-".into())
        );
        let mut done = part(0, PartKind::Video, (0.0, 30.0), Status::Succeeded);
        done.attempt = 1;
        assert_eq!(progress(&done), "done");
        let mut failed = part(3, PartKind::Audio, (0.0, 90.0), Status::Failed);
        failed.error = Some(JobError::new("encode-failed", "the encoder gave up", false));
        let parts = [done, running, queued, failed];
        assert_eq!(
            summary(&parts),
            "3 video parts: 1 queued, 1 running, 1 succeeded"
        );
    }
}
