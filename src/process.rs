//! Child processes of the farm (task processes, their engines, exec sessions): tasks and
//! sessions spawned in a process group of their own (so a stop reaches everything they
//! started), signalled through that group,
//! watched through `/proc` for the CPU time and memory used so far, and reaped with `wait4`
//! for their totals. FFmpeg-free and store-free, so the worker and exec share it; its one
//! `unsafe` call (wait4) lives here.

use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A running task process and its pipes.
pub struct TaskProcess {
    pub pid: Pid,
    pub stdin: tokio::process::ChildStdin,
    pub stdout: tokio::process::ChildStdout,
    pub stderr: tokio::process::ChildStderr,
}

/// How a task process ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exit {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<Signal>,
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
}

impl Exit {
    /// "exit code 1", "killed by SIGSEGV".
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (_, Some(s)) => format!("killed by {s}"),
            (Some(c), None) => format!("exit code {c}"),
            (None, None) => "ended in an unknown way".into(),
        }
    }
}

/// Starts `program task SPEC` in a new process group.
pub fn spawn(
    program: &Path,
    spec: &Path,
    envs: &[(String, String)],
) -> std::io::Result<TaskProcess> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.arg("task")
        .arg(spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let missing = || std::io::Error::other("task pipes missing");
    let stdin = tokio::process::ChildStdin::from_std(child.stdin.take().ok_or_else(missing)?)?;
    let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().ok_or_else(missing)?)?;
    let stderr = tokio::process::ChildStderr::from_std(child.stderr.take().ok_or_else(missing)?)?;
    // Reaped by `wait` below (std's Child neither waits nor kills when dropped).
    drop(child);
    Ok(TaskProcess {
        pid,
        stdin,
        stdout,
        stderr,
    })
}

/// Starts `program engine` with only `envs` in its environment and its three pipes, in its
/// parent's process group (a stop of the task reaches its engine too). The caller reaps it
/// with [`reap`].
pub fn spawn_engine(
    program: &Path,
    envs: &[(String, String)],
) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(program);
    cmd.arg("engine")
        .env_clear()
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
}

/// Waits, blocking, for a child to end and collects its resource use.
pub fn reap(pid: Pid) -> Exit {
    wait4(pid)
}

/// A process's `/proc/PID/stat` from field 3 on. Field 2 (the name) may hold spaces and
/// parentheses, so the line is cut after its last ')'.
pub fn stat_after_name(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat[stat.rfind(')')? + 1..].to_string())
}

/// What a running task has used so far, its engine processes included: CPU seconds (user +
/// system, every thread, the children it has reaped and those still running) and the peak
/// resident memory of the largest of them, from `/proc`. None once it is gone.
pub fn usage_so_far(pid: Pid) -> Option<(f64, u64)> {
    let (ticks, peak) = own_usage(pid.as_raw(), true)?;
    let (mut ticks, mut peak) = (ticks, peak);
    for child in children(pid.as_raw()) {
        if let Some((t, p)) = own_usage(child, false) {
            ticks += t;
            peak = peak.max(p);
        }
    }
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100);
    Some((ticks as f64 / per_second as f64, peak))
}

/// A process's CPU ticks (with its reaped children's when `reaped`) and peak resident bytes.
fn own_usage(pid: i32, reaped: bool) -> Option<(u64, u64)> {
    let rest = stat_after_name(pid)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the line: 11 to 14 after the
    // name.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let mut ticks = field(11)? + field(12)?;
    if reaped {
        ticks += field(13).unwrap_or(0) + field(14).unwrap_or(0);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((ticks, peak_kib * 1024))
}

/// The live children of a process (of any of its threads).
fn children(pid: i32) -> Vec<i32> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Sends `signal` to the task's whole process group.
pub fn signal(pid: Pid, signal: Signal) {
    if let Err(e) = killpg(pid, signal) {
        // ESRCH: already gone.
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!("signalling task group {pid}: {e}");
        }
    }
}

/// Waits for the task to end and collects its resource use.
pub async fn wait(pid: Pid) -> Exit {
    tokio::task::spawn_blocking(move || wait4(pid))
        .await
        .unwrap_or(Exit {
            code: None,
            signal: None,
            cpu_seconds: 0.0,
            peak_memory_bytes: 0,
        })
}

fn wait4(pid: Pid) -> Exit {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value for the out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 writes only to the two out-parameters, which live for the call.
        let r = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut usage) };
        if r == pid.as_raw() {
            break;
        }
        if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Exit {
            code: None,
            signal: None,
            cpu_seconds: 0.0,
            peak_memory_bytes: 0,
        };
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Signal::try_from(libc::WTERMSIG(status)).ok())
    } else {
        (None, None)
    };
    Exit {
        code,
        signal,
        cpu_seconds: secs(usage.ru_utime) + secs(usage.ru_stime),
        // Linux reports kilobytes.
        peak_memory_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_so_far_counts_cpu_and_memory() {
        let me = Pid::from_raw(std::process::id() as i32);
        let (before, _) = usage_so_far(me).unwrap();
        // Work on this thread until a third of a CPU second shows (however loaded the
        // machine is), or give up after 20 s of wall time.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.3 && started.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = usage_so_far(me).unwrap().0;
        }
        let (after, peak) = usage_so_far(me).unwrap();
        assert!(after - before >= 0.3, "{before} -> {after}");
        assert!(peak > 1 << 20, "{peak}");
        assert_eq!(usage_so_far(Pid::from_raw(i32::MAX)), None);
    }
}
