//! Starting a session's process and ending it: a shell or a command in a task's workspace,
//! either on a pseudo-terminal or on pipes; resizing the terminal; killing everything the
//! session started. No `unsafe` and no `pre_exec`: util-linux's `setsid` makes the process a
//! session leader (and, with `--ctty`, takes its standard input — the terminal — as the
//! controlling terminal), and the kernel's `/proc` names the session's processes.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::net::unix::pipe;

use crate::process;

/// util-linux's `setsid`: a new session without `unsafe` in this process.
const SETSID: &str = "setsid";
/// Directories a session's `PATH` always has (FFmpeg's tools live in one of them).
const USUAL_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];
/// Variables of the worker a session does not inherit: an exec user need not hold the API's
/// credentials (the process still runs as the worker's user; see
/// docs/decisions/0041-exec-session-is-worker-user.md).
const WITHHELD: [&str; 4] = [
    "FFARM_TOKEN",
    "FFARM_EXEC__TOKEN",
    "FFARM_EXEC_TOKEN",
    "FFARM_STORE",
];

/// What to start, and where.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The argv; empty: the shell.
    pub command: Vec<String>,
    pub tty: bool,
    pub cols: u16,
    pub rows: u16,
    pub cwd: PathBuf,
    /// The task's environment, added to the worker's own.
    pub env: Vec<(String, String)>,
}

/// The started process's input and output.
pub enum Io {
    /// The pseudo-terminal's master side: read (output), written (input), and `control` for
    /// resizing — three descriptors of one non-blocking open file. (tokio's pipe types read
    /// and write any pollable descriptor without `unsafe`; a terminal master is one.)
    Pty {
        output: pipe::Receiver,
        input: pipe::Sender,
        control: OwnedFd,
    },
    Pipes {
        stdin: tokio::process::ChildStdin,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
    },
}

/// A started session process: `pid` leads a session (and process group) of its own.
pub struct Spawned {
    pub pid: Pid,
    pub io: Io,
}

/// The shell: `$SHELL` when it names a real shell, else bash, else sh.
pub fn shell() -> PathBuf {
    if let Some(s) = std::env::var_os("SHELL").map(PathBuf::from)
        && s.is_absolute()
        && s.is_file()
        && !s.ends_with("nologin")
        && !s.ends_with("false")
    {
        return s;
    }
    let bash = Path::new("/bin/bash");
    if bash.is_file() {
        bash.into()
    } else {
        "/bin/sh".into()
    }
}

/// Starts the process: on a pseudo-terminal (`setsid --ctty --wait`) or on pipes (`setsid
/// --wait`, no controlling terminal), in `launch.cwd` with the task's environment.
pub fn spawn(launch: &Launch) -> io::Result<Spawned> {
    if !launch.cwd.is_dir() {
        return Err(io::Error::other(format!(
            "the workspace {} is gone",
            launch.cwd.display()
        )));
    }
    let named = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => io::Error::other(format!(
            "`{SETSID}` (util-linux) is not installed on this worker: {e}"
        )),
        _ => e,
    };
    let mut cmd = Command::new(SETSID);
    if launch.tty {
        cmd.arg("--ctty");
    }
    cmd.arg("--wait");
    match launch.command.split_first() {
        Some((program, args)) => {
            cmd.arg(program).args(args);
        }
        None => {
            cmd.arg(shell());
            // On a terminal the shell is interactive anyway; say it for shells that check
            // only the flag. Without one it reads commands from the input.
            if launch.tty {
                cmd.arg("-i");
            }
        }
    }
    cmd.current_dir(&launch.cwd).env("PATH", path());
    for k in WITHHELD {
        cmd.env_remove(k);
    }
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    if launch.tty {
        if std::env::var_os("TERM").is_none_or(|t| t == "dumb" || t.is_empty()) {
            cmd.env("TERM", "xterm-256color");
        }
        let (master, slave) = open_pty(launch.cols, launch.rows)?;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().map_err(named)?;
        // The child holds the terminal now; ours go with `cmd`, so the master reads EOF
        // (EIO) once everything in the session has let go of it.
        drop(cmd);
        Ok(Spawned {
            pid: Pid::from_raw(child.id() as i32),
            io: Io::Pty {
                output: pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?,
                input: pipe::Sender::from_owned_fd_unchecked(master.try_clone()?)?,
                control: master,
            },
        })
    } else {
        cmd.env_remove("TERM")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(named)?;
        let missing = || io::Error::other("the session's pipes are missing");
        let stdin = tokio::process::ChildStdin::from_std(child.stdin.take().ok_or_else(missing)?)?;
        let stdout =
            tokio::process::ChildStdout::from_std(child.stdout.take().ok_or_else(missing)?)?;
        let stderr =
            tokio::process::ChildStderr::from_std(child.stderr.take().ok_or_else(missing)?)?;
        // Reaped by `process::wait` (std's Child neither waits nor kills when dropped).
        let pid = Pid::from_raw(child.id() as i32);
        drop(child);
        Ok(Spawned {
            pid,
            io: Io::Pipes {
                stdin,
                stdout,
                stderr,
            },
        })
    }
}

/// A pseudo-terminal of `cols`×`rows`: the master non-blocking, both sides close-on-exec from
/// the start (`openpty` leaves them inheritable, so a session started meanwhile on another
/// thread could hold this one's terminal open).
fn open_pty(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    // std opens with O_CLOEXEC.
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)?
        .into();
    let master = OwnedFd::from(master);
    rustix::io::ioctl_fionbio(&master, true)?;
    resize(&master, cols, rows)?;
    Ok((master, slave))
}

/// Sets the terminal's size (the kernel tells the foreground process group with SIGWINCH).
pub fn resize(master: &impl AsFd, cols: u16, rows: u16) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        master,
        rustix::termios::Winsize {
            ws_col: cols,
            ws_row: rows,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// `PATH` with the usual directories appended where missing.
fn path() -> String {
    let mut dirs: Vec<String> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    for d in USUAL_PATH {
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_string());
        }
    }
    dirs.join(":")
}

/// Signals every process of the session `leader` started: its process group, and every
/// group of a process whose session is the leader's (jobs a shell put in groups of their
/// own, programs that left the group). `setsid` does not fork here (we never start it as a
/// group leader), so the leader's pid is the session id.
pub fn signal_session(leader: Pid, signal: Signal) {
    let mut groups = vec![leader];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if let Some((pgrp, session)) = groups_of(pid)
                && session == leader.as_raw()
                && !groups.contains(&Pid::from_raw(pgrp))
            {
                groups.push(Pid::from_raw(pgrp));
            }
        }
    }
    for g in groups {
        process::signal(g, signal);
    }
}

/// A process's group and session, from `/proc/PID/stat` (fields 5 and 6).
fn groups_of(pid: i32) -> Option<(i32, i32)> {
    let rest = process::stat_after_name(pid)?;
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some((pgrp, session))
}

/// A session's leader, from start to reaping. Its end is seen without reaping it (`waitid`
/// with `WNOWAIT`), so its pid — the session's and group's id — cannot be reused while the
/// rest of the session is killed; `end` then reaps it (`process::wait`).
pub struct Leader {
    pub pid: Pid,
    dead: tokio::task::JoinHandle<()>,
    reaped: bool,
}

impl Leader {
    pub fn new(pid: Pid) -> Leader {
        let dead = tokio::task::spawn_blocking(move || {
            use nix::sys::wait::{Id, WaitPidFlag, waitid};
            while let Err(nix::errno::Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
        });
        Leader {
            pid,
            dead,
            reaped: false,
        }
    }

    /// Resolves when the leader has exited (cancel-safe).
    pub async fn exited(&mut self) {
        let _ = (&mut self.dead).await;
    }

    pub fn has_exited(&self) -> bool {
        self.dead.is_finished()
    }

    /// Ends the session: a live leader gets SIGHUP (as from a closed terminal) and SIGKILL
    /// after `grace`; whatever else the session started is killed; the leader is reaped.
    pub async fn end(mut self, grace: std::time::Duration) -> process::Exit {
        if !self.dead.is_finished() {
            signal_session(self.pid, Signal::SIGHUP);
            signal_session(self.pid, Signal::SIGCONT);
            if tokio::time::timeout(grace, &mut self.dead).await.is_err() {
                signal_session(self.pid, Signal::SIGKILL);
                let _ = (&mut self.dead).await;
            }
        }
        signal_session(self.pid, Signal::SIGKILL);
        self.reaped = true;
        process::wait(self.pid).await
    }
}

impl Drop for Leader {
    /// A session dropped midway (its server shutting down) leaves no process behind.
    fn drop(&mut self) {
        if !self.reaped {
            signal_session(self.pid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_parses() {
        let me = std::process::id() as i32;
        let (pgrp, session) = groups_of(me).unwrap();
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(session, nix::unistd::getsid(None).unwrap().as_raw());
    }

    #[test]
    fn path_keeps_order_and_adds_the_usual_dirs() {
        let p = path();
        for d in USUAL_PATH {
            assert!(p.split(':').any(|x| x == d), "{p}");
        }
    }
}
