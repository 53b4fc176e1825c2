//! The sandbox's seccomp filter: the calls a media decoder never needs and an exploit
//! would (sockets, running a program, a new process, another process's memory, mounts,
//! BPF, kernel keys, namespaces, modules, io_uring, which seccomp cannot see into) trap;
//! the handler names the call on stderr and ends the process with [`SANDBOX_EXIT`], which
//! the engine's parent reads as a `sandbox-violation`. Threads stay allowed (`clone` with
//! `CLONE_THREAD`); `clone3`, whose flags a filter cannot read, answers ENOSYS so the C
//! library falls back to `clone`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The exit status of a process the filter stopped.
pub const SANDBOX_EXIT: i32 = 159;

/// The refused calls and their names (a new process is `clone` without `CLONE_THREAD`).
const DENIED: &[(i64, &str)] = &[
    (libc::SYS_socket, "socket"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_listen, "listen"),
    (libc::SYS_accept, "accept"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_execve, "execve"),
    (libc::SYS_execveat, "execveat"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_fork, "fork"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_vfork, "vfork"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_pidfd_getfd, "pidfd_getfd"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_chroot, "chroot"),
    (libc::SYS_open_tree, "open_tree"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_perf_event_open, "perf_event_open"),
    (libc::SYS_userfaultfd, "userfaultfd"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_init_module, "init_module"),
    (libc::SYS_finit_module, "finit_module"),
    (libc::SYS_delete_module, "delete_module"),
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_reboot, "reboot"),
    (libc::SYS_swapon, "swapon"),
    (libc::SYS_swapoff, "swapoff"),
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
];

/// Installs the filters on this thread (and every thread and process it starts after).
pub(super) fn install() -> Result<(), String> {
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("{}: {e:?}", std::env::consts::ARCH))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&(nr, _)| (nr, Vec::new())).collect();
    let new_process = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(|e| e.to_string())?;
    let rule = SeccompRule::new(vec![new_process]).map_err(|e| e.to_string())?;
    rules.insert(libc::SYS_clone, vec![rule]);
    let trap = program(rules, SeccompAction::Trap, arch)?;
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let enosys = program(clone3, SeccompAction::Errno(libc::ENOSYS as u32), arch)?;
    seccompiler::apply_filter(&enosys).map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&trap).map_err(|e| e.to_string())
}

fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    on_match: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, arch)
        .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// The name of a refused call.
fn name_of(nr: i64) -> &'static str {
    if nr == libc::SYS_clone {
        return "clone (a new process)";
    }
    DENIED
        .iter()
        .find(|&&(n, _)| n == nr)
        .map_or("a refused call", |&(_, name)| name)
}

/// Installs the SIGSYS handler that names a trapped call and ends the process.
pub fn install_violation_handler() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::SigAction(on_sigsys),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    // SAFETY: the handler only reads its siginfo, writes to stderr and exits, all
    // async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGSYS, &action) };
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // For SIGSYS the kernel puts the call's number after the calling address in the
    // siginfo union (`si_syscall`), at byte 24 on 64-bit Linux.
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let nr = unsafe { *(info as *const u8).add(24).cast::<i32>() };
    let mut line = Line::default();
    line.push(b"ffarm sandbox-violation: ");
    line.push(name_of(i64::from(nr)).as_bytes());
    line.push(b" (system call ");
    line.number(i64::from(nr));
    line.push(b")\n");
    // SAFETY: write and _exit are async-signal-safe; the buffer lives on this stack.
    unsafe {
        libc::write(2, line.buf.as_ptr().cast(), line.len);
        libc::_exit(SANDBOX_EXIT);
    }
}

/// A line built without allocating (in a signal handler).
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, n: i64) {
        let mut digits = [0u8; 20];
        let (mut i, mut v) = (digits.len(), n.unsigned_abs());
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[i..]);
    }
}
