//! The engine's sandbox, probed from inside: `ffarm sandbox-probe` enters the same sandbox an
//! engine process gets (the same set-up code), started the way the engine is (its
//! environment cleared), and tries what a hostile input would — read the store's database,
//! another job's workspace and $HOME, write outside its staging directory, connect to a
//! listening loopback port, resolve a host name, run /bin/sh, start a process, allocate past
//! its memory cap, find a credential variable. Each is refused with the sandbox; the same
//! probe without it succeeds at each, so every assertion can fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{ffarm_bin, tempdir};

/// The secrets a worker's environment may hold.
const SECRETS: &[(&str, &str)] = &[
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
    ("FFARM_TOKEN", "a-token"),
    ("FFARM_STORE__URL", "postgres://farm:secret@db/farm"),
];

/// A worker's data directory in miniature: the store, two jobs' workspaces.
struct Farm {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Farm {
    fn new() -> Farm {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("ffarm.db"), b"SQLite format 3\0 the store").unwrap();
        for job in ["mine", "other"] {
            let w = root.join("work").join(job);
            std::fs::create_dir_all(w.join("staging")).unwrap();
            std::fs::write(w.join("input.mp4"), format!("{job}'s input")).unwrap();
        }
        Farm { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// What a probe printed and how it ended.
struct Seen {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Seen {
    /// The probe's answer: its last line, or the filter's line when it was stopped.
    fn answer(&self) -> String {
        if self.code == Some(ffarm::sandbox::SANDBOX_EXIT) {
            return self.stderr.trim().to_string();
        }
        self.stdout.lines().last().unwrap_or("").to_string()
    }

    fn refused(&self) -> bool {
        let a = self.answer();
        a.starts_with("denied: ") || a.starts_with("ffarm sandbox-violation: ")
    }
}

fn probe(farm: &Farm, sandbox: bool, check: &str, arg: &str, memory: Option<u64>) -> Seen {
    let mut cmd = Command::new(ffarm_bin());
    cmd.arg("sandbox-probe")
        .arg("--input")
        .arg(farm.path("work/mine/input.mp4"))
        .arg("--staging")
        .arg(farm.path("work/mine/staging"));
    if !sandbox {
        cmd.arg("--off");
    }
    if let Some(m) = memory {
        cmd.args(["--memory", &m.to_string()]);
    }
    cmd.args([check, arg]);
    // Started as a worker starts its engine: from an environment with secrets in it,
    // cleared to what the engine needs (without the sandbox, passed on whole).
    let parent: Vec<(String, String)> = std::env::vars()
        .chain(SECRETS.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    cmd.env_clear();
    if sandbox {
        cmd.envs(ffarm::sandbox::engine_env(parent));
    } else {
        cmd.envs(parent);
    }
    let out = cmd.output().expect("running the probe");
    Seen {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `check` is refused inside the sandbox and works without it.
fn refused_only_inside(farm: &Farm, check: &str, arg: &str, memory: Option<u64>) -> String {
    let inside = probe(farm, true, check, arg, memory);
    assert!(
        inside.refused(),
        "{check} {arg} inside the sandbox: {:?}\n{}",
        inside.answer(),
        inside.stderr
    );
    let outside = probe(farm, false, check, arg, memory);
    assert!(
        outside.answer().starts_with("allowed: "),
        "{check} {arg} without the sandbox: {:?}\n{}",
        outside.answer(),
        outside.stderr
    );
    inside.answer()
}

#[test]
fn the_sandbox_refuses_what_a_hostile_input_would_try() {
    let farm = Farm::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let staging = farm.path("work/mine/staging/out.ts");
    let outside = farm.path("work/evil.txt");
    let cases: Vec<(&str, String, Option<u64>, &str)> = vec![
        ("read", s(&farm.path("ffarm.db")), None, "Permission denied"),
        (
            "read",
            s(&farm.path("work/other/input.mp4")),
            None,
            "Permission denied",
        ),
        ("read", home, None, "Permission denied"),
        ("write", s(&outside), None, "Permission denied"),
        ("connect", format!("127.0.0.1:{port}"), None, "socket"),
        ("resolve", "localhost".into(), None, ""),
        ("exec", String::new(), None, "execve"),
        ("fork", String::new(), None, "clone (a new process)"),
        (
            "allocate",
            (1u64 << 30).to_string(),
            Some(512 << 20),
            "memory allocation",
        ),
        ("env", String::new(), None, "no credential variable"),
    ];
    let tried = probe(&farm, true, "write", &s(&outside), None);
    assert!(
        tried.refused() && !outside.exists(),
        "nothing written outside the staging directory: {}",
        tried.answer()
    );
    for (check, arg, memory, says) in &cases {
        let answer = refused_only_inside(&farm, check, arg, *memory);
        assert!(answer.contains(says), "{check} {arg}: {answer}");
        eprintln!("{check} {arg}: {answer}");
    }
    // What the engine needs still works inside: its input, its staging directory.
    for (check, arg) in [
        ("read", farm.path("work/mine/input.mp4")),
        ("write", staging),
    ] {
        let seen = probe(&farm, true, check, &s(&arg), None);
        assert!(
            seen.answer().starts_with("allowed: "),
            "{check}: {}",
            seen.answer()
        );
    }
    drop(listener);
}

#[test]
fn the_sandbox_reports_the_layers_that_hold() {
    let farm = Farm::new();
    let seen = probe(&farm, true, "env", "", None);
    let level: serde_json::Value =
        serde_json::from_str(seen.stdout.lines().next().unwrap_or("")).expect("the level");
    let abi = ffarm::sandbox::kernel_abi();
    assert_eq!(
        level["landlock_abi"].as_i64(),
        abi.map(i64::from),
        "{level}"
    );
    assert_eq!(level["seccomp"], true, "{level}");
    assert_eq!(level["limits"]["memory_bytes"], 4u64 << 30, "{level}");
    if level["network_namespace"] != true {
        eprintln!("no network namespace here: {}", level["missing"]);
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
