//! Pure presentation helpers for the client commands: durations, ages, sizes, times,
//! progress lines, sandbox levels, and reading `BUCKET/KEY` arguments.

use crate::job::{Job, ObjectRef, Status, Timestamp};
use crate::progress::{Phase, Progress};
use crate::sandbox::Level;

/// Reads `BUCKET/KEY` (split on the first `/`; both parts needed). Used as a clap value parser,
/// so a bad argument is a usage error (exit 2).
pub fn split_object(s: &str) -> Result<ObjectRef, String> {
    match s.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
        }),
        _ => Err(format!(
            "expected BUCKET/KEY (for example media/in/clip.mp4), not '{s}'"
        )),
    }
}

/// A span of time, short: "0.4s", "12s", "4m05s", "1h02m", "2d03h".
pub fn duration(seconds: f64) -> String {
    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// Seconds from `from` to `to`.
pub fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.micros() - from.micros()) as f64 / 1e6
}

/// How long ago `t` was, relative to `now`: "3s ago", "4m05s ago".
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    format!("{} ago", duration(seconds_between(t, now).round()))
}

/// A byte count for people: "512 B", "214.6 KiB", "1.5 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A time in UTC, to the second: "2026-11-22 10:00:00Z".
pub fn time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(t.micros())
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_rfc3339())
}

/// What a job's progress says, in one line: "transcoding 45%  120 fps  2.10x  ETA 0:05".
pub fn progress(p: &Progress) -> String {
    let mut s = p.phase.as_str().to_string();
    match p.phase {
        Phase::Measuring | Phase::Transcoding | Phase::Finalizing => {
            s.push_str(&format!(" {:.0}%", p.percent))
        }
        Phase::Downloading | Phase::Uploading => {
            if let (Some(done), Some(total)) = (p.bytes_done, p.bytes_total) {
                s.push_str(&format!(" {} of {}", bytes(done), bytes(total)));
            }
        }
        _ => {}
    }
    if p.phase == Phase::Transcoding {
        if let Some(fps) = p.fps {
            s.push_str(&format!("  {fps:.0} fps"));
        }
        if let Some(speed) = p.speed {
            s.push_str(&format!("  {speed:.2}x"));
        }
        if let Some(eta) = p.eta_seconds {
            s.push_str(&format!(
                "  ETA {}",
                super::super::local::format_duration(eta)
            ));
        }
    }
    s
}

/// The PROGRESS column: how far an active job is, "done" for a succeeded one, "-" otherwise.
pub fn progress_cell(job: &Job) -> String {
    match (&job.progress, job.status) {
        (_, Status::Succeeded) => "done".into(),
        (Some(p), s) if s.is_active() => format!("{} {:.0}%", p.phase.as_str(), p.percent),
        _ => "-".into(),
    }
}

/// The DURATION/AGE column: a finished job's run time, an active job's time since it
/// started, a queued job's wait so far.
pub fn time_cell(job: &Job, now: Timestamp) -> String {
    match (job.status, job.started_at, job.finished_at) {
        (s, Some(start), Some(end)) if s.is_terminal() => duration(seconds_between(start, end)),
        (s, None, Some(end)) if s.is_terminal() => duration(seconds_between(job.created_at, end)),
        (s, Some(start), _) if s.is_active() => duration(seconds_between(start, now)),
        _ => format!("{} ago", duration(seconds_between(job.created_at, now))),
    }
}

/// What a worker's sandbox holds, short: "landlock 6, seccomp, netns, 4 GiB" (the Landlock
/// ABI, the seccomp filter, the network namespace, the memory cap), "off" when the operator
/// turned it off, "-" when the worker reported nothing. A missing layer is simply not listed.
pub fn sandbox(level: Option<&Level>) -> String {
    let Some(level) = level else {
        return "-".into();
    };
    if !level.enabled {
        return "off".into();
    }
    let mut held = Vec::new();
    if let Some(abi) = level.landlock_abi {
        held.push(format!("landlock {abi}"));
    }
    if level.seccomp {
        held.push("seccomp".into());
    }
    if level.network_namespace {
        held.push("netns".into());
    }
    if let Some(limits) = &level.limits {
        held.push(bytes(limits.memory_bytes).replace(".0 ", " "));
    }
    if held.is_empty() {
        "none".into()
    } else {
        held.join(", ")
    }
}

/// "media/out/clip.mp4".
pub fn object(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_key_arguments() {
        let o = split_object("media/in/a/b.mp4").unwrap();
        assert_eq!((o.bucket.as_str(), o.key.as_str()), ("media", "in/a/b.mp4"));
        for bad in ["media", "media/", "/key.mp4", ""] {
            let e = split_object(bad).unwrap_err();
            assert!(e.contains("expected BUCKET/KEY"), "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0.0), "0.0s");
        assert_eq!(duration(0.44), "0.4s");
        assert_eq!(duration(-3.0), "0.0s");
        assert_eq!(duration(f64::NAN), "0.0s");
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(duration(2.0 * 86_400.0 + 3.0 * 3600.0), "2d03h");
        let t = Timestamp(1_000_000_000);
        assert_eq!(seconds_between(t, Timestamp(1_002_500_000)), 2.5);
        assert_eq!(ago(t, Timestamp(1_065_000_000)), "1m05s ago");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(219_760), "214.6 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn sandbox_levels() {
        use crate::sandbox::Limits;
        assert_eq!(sandbox(None), "-");
        assert_eq!(sandbox(Some(&Level::default())), "off");
        let full = Level {
            enabled: true,
            landlock_abi: Some(7),
            seccomp: true,
            network_namespace: true,
            limits: Some(Limits::default()),
            missing: vec![],
        };
        assert_eq!(sandbox(Some(&full)), "landlock 7, seccomp, netns, 4 GiB");
        let partial = Level {
            landlock_abi: None,
            network_namespace: false,
            limits: Some(Limits {
                memory_bytes: 1536 << 20,
                ..Limits::default()
            }),
            missing: vec!["landlock: not supported by this kernel".into()],
            ..full
        };
        assert_eq!(sandbox(Some(&partial)), "seccomp, 1.5 GiB");
        let bare = Level {
            enabled: true,
            ..Level::default()
        };
        assert_eq!(sandbox(Some(&bare)), "none");
    }

    #[test]
    fn times_and_progress() {
        let t = Timestamp::parse("2026-11-22T10:00:00.5Z").unwrap();
        assert_eq!(time(t), "2026-11-22 10:00:00Z");
        let p = Progress {
            phase: Phase::Transcoding,
            percent: 45.2,
            fps: Some(120.0),
            speed: Some(2.1),
            eta_seconds: Some(65.0),
            ..Progress::default()
        };
        assert_eq!(progress(&p), "transcoding 45%  120 fps  2.10x  ETA 1:05");
        let up = Progress {
            phase: Phase::Uploading,
            bytes_done: Some(512),
            bytes_total: Some(2048),
            ..Progress::default()
        };
        assert_eq!(progress(&up), "uploading 512 B of 2.0 KiB");
        assert_eq!(progress(&Progress::default()), "starting");
    }
}
