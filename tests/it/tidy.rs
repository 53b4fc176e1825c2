//! House rules checked mechanically: every source file says what it owns in a `//!` line,
//! and no source file grows past the size where it should be split.

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
