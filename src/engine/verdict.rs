//! How an engine process that gave no result of its own ended, as a named failure: a call the
//! sandbox trapped (`sandbox-violation`, naming it), the address-space limit
//! (`memory-limit`), the file-size limit (`output-too-large`), the CPU-time limit
//! (`cpu-limit`) — each final, as the same input would do the same again — or a crash
//! (`engine-crashed`, retryable like a crashed task).

use nix::sys::signal::Signal;

use crate::job::JobError;
use crate::process::Exit;
use crate::sandbox::{Limits, SANDBOX_EXIT};

/// What the violation handler writes before the process ends.
const VIOLATION: &str = "ffarm sandbox-violation: ";

/// Lines the C and Rust runtimes print when an allocation fails.
const OUT_OF_MEMORY: &[&str] = &[
    "memory allocation of",
    "Cannot allocate memory",
    "failed to spawn thread",
    "std::bad_alloc",
    "out of memory",
];

/// The failure an engine's end amounts to; `tail` is the end of its log.
pub(super) fn of(exit: &Exit, tail: &[String], limits: Option<&Limits>) -> JobError {
    if exit.code == Some(SANDBOX_EXIT)
        && let Some(call) = tail.iter().rev().find_map(|l| l.strip_prefix(VIOLATION))
    {
        return JobError::new(
            "sandbox-violation",
            format!(
                "the engine made a system call its sandbox refuses, {call}; a media file \
                 never needs it, so the input is treated as hostile"
            ),
            false,
        );
    }
    if let Some(limits) = limits {
        if let Some(e) = past_a_limit(exit, tail, limits) {
            return e;
        }
    }
    let how = match exit.signal {
        Some(signal) => format!("was killed by {signal}"),
        None => format!("ended without a result ({})", exit.describe()),
    };
    let last = tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!("; its last words: {}", l.trim()))
        .unwrap_or_default();
    JobError::new(
        "engine-crashed",
        format!("the engine process {how}{last}"),
        true,
    )
}

fn past_a_limit(exit: &Exit, tail: &[String], limits: &Limits) -> Option<JobError> {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    if exit.signal == Some(Signal::SIGXFSZ) {
        return Some(JobError::new(
            "output-too-large",
            format!(
                "the engine wrote a file past the sandbox's limit of {:.1} GiB \
                 (worker.output_limit_bytes)",
                gib(limits.file_bytes)
            ),
            false,
        ));
    }
    let cpu_spent = limits
        .cpu_seconds
        .is_some_and(|cpu| exit.cpu_seconds + 0.5 >= cpu as f64);
    if exit.signal == Some(Signal::SIGXCPU) || (exit.signal == Some(Signal::SIGKILL) && cpu_spent) {
        return Some(JobError::new(
            "cpu-limit",
            format!(
                "the engine used up its {} CPU seconds (the job's time limit times the \
                 worker's cores)",
                limits.cpu_seconds.unwrap_or(0)
            ),
            false,
        ));
    }
    let starved = tail
        .iter()
        .any(|l| OUT_OF_MEMORY.iter().any(|m| l.contains(m)));
    (starved && exit.code != Some(0)).then(|| {
        JobError::new(
            "memory-limit",
            format!(
                "decoding this input needs more memory than the sandbox's limit of {:.1} GiB \
                 (worker.memory_limit_bytes)",
                gib(limits.memory_bytes)
            ),
            false,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: Option<i32>, signal: Option<Signal>, cpu: f64) -> Exit {
        Exit {
            code,
            signal,
            cpu_seconds: cpu,
            peak_memory_bytes: 0,
        }
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_trapped_call_is_named() {
        let tail = lines(&[
            "[engine] x",
            "ffarm sandbox-violation: socket (system call 41)",
        ]);
        let e = of(&exit(Some(159), None, 0.1), &tail, Some(&Limits::default()));
        assert_eq!(e.code, "sandbox-violation");
        assert!(
            e.message.contains("socket (system call 41)"),
            "{}",
            e.message
        );
        assert!(!e.retryable);
    }

    #[test]
    fn limits_are_named_only_inside_the_sandbox() {
        let limits = Limits {
            cpu_seconds: Some(10),
            ..Limits::default()
        };
        let code = |x: Exit, tail: &[&str], l: Option<&Limits>| of(&x, &lines(tail), l).code;
        assert_eq!(
            code(exit(None, Some(Signal::SIGXFSZ), 1.0), &[], Some(&limits)),
            "output-too-large"
        );
        assert_eq!(
            code(exit(None, Some(Signal::SIGXCPU), 10.0), &[], Some(&limits)),
            "cpu-limit"
        );
        assert_eq!(
            code(exit(None, Some(Signal::SIGKILL), 11.0), &[], Some(&limits)),
            "cpu-limit"
        );
        // Killed early: not the CPU limit.
        assert_eq!(
            code(exit(None, Some(Signal::SIGKILL), 2.0), &[], Some(&limits)),
            "engine-crashed"
        );
        let oom = ["memory allocation of 1073741824 bytes failed"];
        assert_eq!(
            code(exit(None, Some(Signal::SIGABRT), 1.0), &oom, Some(&limits)),
            "memory-limit"
        );
        assert_eq!(
            code(exit(None, Some(Signal::SIGABRT), 1.0), &oom, None),
            "engine-crashed"
        );
    }

    #[test]
    fn a_crash_says_how_and_its_last_words() {
        let e = of(
            &exit(None, Some(Signal::SIGSEGV), 0.2),
            &lines(&["[h264 @ 0x1] broken", ""]),
            None,
        );
        assert_eq!(e.code, "engine-crashed");
        assert!(e.retryable);
        assert!(e.message.contains("SIGSEGV"), "{}", e.message);
        assert!(e.message.contains("[h264 @ 0x1] broken"), "{}", e.message);
    }
}
