//! The sandbox's file rules (Landlock): every file access is handled, and allowed only to
//! read the input, the system's libraries, fonts and the few devices and kernel files FFmpeg
//! and its libraries open, and to do anything inside the staging directory.

use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, path_beneath_rules,
};

use super::Policy;

/// The highest Landlock ABI whose rights are asked for; an older kernel enforces what it has.
const TARGET: ABI = ABI::V5;

/// Read-only: shared libraries and their caches, fonts (text filters), time zones, the
/// devices FFmpeg opens and the kernel files that tell libraries how many CPUs there are.
const SYSTEM_READ: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib",
    "/lib64",
    "/usr/share/fonts",
    // Fontconfig's configuration (the aliases `/etc/fonts/conf.d` links to: without them
    // "Arial" matches whatever font comes first) and its cache (no rescan per run): what
    // libass needs to burn captions in.
    "/usr/share/fontconfig",
    "/var/cache/fontconfig",
    "/usr/share/zoneinfo",
    "/etc/ld.so.cache",
    "/etc/fonts",
    "/etc/localtime",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/sys/devices/system/cpu",
    "/proc/self",
];

/// Restricts the process; the kernel's ABI when the rules hold, None when it has no
/// Landlock at all.
pub(super) fn restrict(policy: &Policy) -> Result<Option<i32>, String> {
    let abi = kernel_abi();
    if abi.is_none() {
        return Ok(None);
    }
    let read = AccessFs::from_read(TARGET);
    let all = AccessFs::from_all(TARGET);
    let existing = |paths: &[&Path]| -> Vec<std::path::PathBuf> {
        paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.to_path_buf())
            .collect()
    };
    let system: Vec<&Path> = SYSTEM_READ.iter().map(Path::new).collect();
    let inputs: Vec<&Path> = policy.read.iter().map(|p| p.as_path()).collect();
    // A path that does not exist gets no rule: opening it then fails as it would anyway.
    let writes: Vec<&Path> = policy.write.iter().map(|p| p.as_path()).collect();
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?
        .add_rules(path_beneath_rules(existing(&system), read))
        .map_err(|e| e.to_string())?
        .add_rules(path_beneath_rules(existing(&inputs), read))
        .map_err(|e| e.to_string())?
        .add_rules(path_beneath_rules(existing(&writes), all))
        .map_err(|e| e.to_string())?
        .restrict_self()
        .map_err(|e| e.to_string())?;
    Ok(match status.ruleset {
        RulesetStatus::NotEnforced => None,
        _ => abi,
    })
}

/// The Landlock ABI version the kernel offers, None without Landlock.
pub fn kernel_abi() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and size 0, the call only reports the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as i32)
}
