//! Task processes: spawned in a process group of their own (so a stop reaches everything the
//! task started), signalled through that group, and reaped with `wait4` for their CPU time
//! and peak memory. The one `unsafe` call in the worker (wait4) lives here.

use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A running task process and its output pipes.
pub struct TaskProcess {
    pub pid: Pid,
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let missing = || std::io::Error::other("task pipes missing");
    let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().ok_or_else(missing)?)?;
    let stderr = tokio::process::ChildStderr::from_std(child.stderr.take().ok_or_else(missing)?)?;
    // Reaped by `wait` below (std's Child neither waits nor kills when dropped).
    drop(child);
    Ok(TaskProcess {
        pid,
        stdout,
        stderr,
    })
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
