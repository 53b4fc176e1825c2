//! House rules checked mechanically: every source file says what it owns in a `//!` line,
//! no source file grows past the size where it should be split, and `anyhow` stays in the
//! command line.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must start with a //! line saying what it owns",
            f.display()
        );
        let lines = text.lines().count();
        if f.starts_with(root.join("src")) {
            assert!(
                lines <= 600,
                "{} has {lines} lines: split it by operation",
                f.display()
            );
        }
    }
}

/// Errors in layers: library code answers with its module's error types, which say what
/// failed; only the command line (`main.rs`, `cli/`), where an error ends as a message and an
/// exit code, may erase them into `anyhow`.
#[test]
fn anyhow_only_in_the_command_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let command_line = |f: &Path| f == src.join("main.rs") || f.starts_with(src.join("cli"));
    let using: Vec<String> = files
        .iter()
        .filter(|f| !command_line(f))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("anyhow"))
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(
        using.is_empty(),
        "anyhow outside main.rs and cli/ (give the module a thiserror enum that carries \
         what failed): {}",
        using.join(", ")
    );
}

/// `unsafe` stays where ARCHITECTURE.md's invariants say it is: FFmpeg's fields and calls in
/// `media/ffi/`, `wait4` in `process.rs`, the SQLite writer's `Connection::from_handle`, and
/// the sandbox's system calls and signal handler in `sandbox/`.
/// Child processes are started only by `process.rs` (tasks) and `exec/pty.rs` (sessions).
#[test]
fn unsafe_code_and_process_spawns_stay_where_the_invariants_say() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rel = |f: &Path| f.strip_prefix(&src).unwrap().display().to_string();
    let code_lines = |f: &Path| -> Vec<String> {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.starts_with("//"))
            .collect()
    };
    let mut misplaced = Vec::new();
    for f in &files {
        let name = rel(f);
        let lines = code_lines(f);
        let has_unsafe = lines.iter().any(|l| {
            l.contains("unsafe {") || l.contains("unsafe fn") || l.contains("unsafe impl")
        });
        let unsafe_allowed = name.starts_with("media/ffi/")
            || name == "process.rs"
            || name == "store/sqlite/writer.rs"
            || name.starts_with("sandbox/");
        if has_unsafe && !unsafe_allowed {
            misplaced.push(format!("{name}: unsafe"));
        }
        let spawns = lines.iter().any(|l| l.contains("Command::new("));
        if spawns && name != "process.rs" && name != "exec/pty.rs" {
            misplaced.push(format!("{name}: starts a process"));
        }
    }
    assert!(misplaced.is_empty(), "{}", misplaced.join("\n"));
}
