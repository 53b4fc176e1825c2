//! The engine's sandbox: what a process that parses untrusted media may reach. The process
//! sets it up itself, before it opens its input and before it starts a thread, in this
//! order: a private network namespace (inside a user namespace of its own) where the kernel
//! allows one; resource limits (address space, file size, open files, no core dumps, CPU
//! time); `no_new_privs`; Landlock (read its input and the system's libraries and fonts,
//! write only its staging directory); a seccomp filter that refuses sockets, new programs and
//! processes, other processes' memory, mounts, BPF, keys, namespaces and the like. The
//! process that starts it clears its environment ([`engine_env`]). A layer the kernel lacks
//! is skipped, and [`Level`] says what holds. Decision 0071.

mod filter;
mod landlock_rules;
pub mod probe;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use filter::{SANDBOX_EXIT, install_violation_handler};
pub use landlock_rules::kernel_abi;

/// What the sandboxed process may touch.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Files and directories it reads (its input).
    pub read: Vec<PathBuf>,
    /// The directories it writes in (its staging directories).
    pub write: Vec<PathBuf>,
    pub limits: Limits,
}

/// Resource limits of the sandboxed process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Address space (bytes): a decode that asks for more fails to allocate.
    pub memory_bytes: u64,
    /// The largest file it may write (bytes).
    pub file_bytes: u64,
    /// Open file descriptors.
    pub open_files: u64,
    /// CPU seconds, when the job has a time limit.
    pub cpu_seconds: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 4 << 30,
            file_bytes: 64 << 30,
            open_files: 256,
            cpu_seconds: None,
        }
    }
}

/// What holds in a sandbox that was entered: each layer, or why not. A worker reports the
/// level its engine processes get (`enabled` false when `worker.sandbox = false`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Level {
    /// Whether engine processes enter the sandbox at all.
    #[serde(default)]
    pub enabled: bool,
    /// The kernel's Landlock ABI when the file rules are enforced.
    pub landlock_abi: Option<i32>,
    pub seccomp: bool,
    pub network_namespace: bool,
    pub limits: Option<Limits>,
    /// The layers that could not be set up, and why.
    pub missing: Vec<String>,
}

/// Why the sandbox could not be entered at all (a layer the kernel lacks is not an error:
/// it is left out of the [`Level`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox: {what}: {reason}")]
    Setup { what: &'static str, reason: String },
}

fn setup(what: &'static str) -> impl Fn(String) -> SandboxError {
    move |reason| SandboxError::Setup { what, reason }
}

/// Enters the sandbox for `policy`. Must run before the process starts a thread (a user
/// namespace cannot be entered by a threaded process); returns what holds.
pub fn enter(policy: &Policy) -> Result<Level, SandboxError> {
    let mut level = Level {
        enabled: true,
        ..Level::default()
    };
    match private_network() {
        Ok(()) => level.network_namespace = true,
        Err(why) => level.missing.push(format!("network namespace: {why}")),
    }
    set_limits(&policy.limits).map_err(setup("resource limits"))?;
    level.limits = Some(policy.limits.clone());
    nix::sys::prctl::set_no_new_privs().map_err(|e| setup("no_new_privs")(e.to_string()))?;
    match landlock_rules::restrict(policy) {
        Ok(Some(abi)) => level.landlock_abi = Some(abi),
        Ok(None) => level
            .missing
            .push("landlock: not supported by this kernel".into()),
        Err(why) => return Err(setup("landlock")(why)),
    }
    install_violation_handler();
    filter::install().map_err(setup("seccomp"))?;
    level.seccomp = true;
    Ok(level)
}

/// A network namespace of its own (with only a loopback interface, down): nothing to
/// connect to. Unprivileged, it needs a user namespace, entered first; the process keeps
/// its user on the files it opens.
fn private_network() -> Result<(), String> {
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())
}

fn set_limits(limits: &Limits) -> Result<(), String> {
    use nix::sys::resource::{Resource, setrlimit};
    let set = |what: Resource, value: u64| {
        setrlimit(what, value, value).map_err(|e| format!("{what:?} to {value}: {e}"))
    };
    set(Resource::RLIMIT_AS, limits.memory_bytes)?;
    set(Resource::RLIMIT_FSIZE, limits.file_bytes)?;
    set(Resource::RLIMIT_NOFILE, limits.open_files)?;
    set(Resource::RLIMIT_CORE, 0)?;
    if let Some(cpu) = limits.cpu_seconds {
        // The soft limit sends SIGXCPU; the hard one, a second later, SIGKILL.
        setrlimit(Resource::RLIMIT_CPU, cpu, cpu + 1)
            .map_err(|e| format!("RLIMIT_CPU to {cpu}: {e}"))?;
    }
    Ok(())
}

/// The environment an engine process gets: nothing of its parent's but what FFmpeg and the
/// system libraries read (no credentials, store URL or token can be in it).
pub fn engine_env(parent: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    const KEPT: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ", "FONTCONFIG_PATH", "SVT_LOG"];
    parent
        .into_iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()))
        .collect()
}
