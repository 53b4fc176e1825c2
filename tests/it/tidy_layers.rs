//! The direction of dependencies, checked from the source: a top-level module uses only the
//! layers below its own (ARCHITECTURE.md, "Dependency direction"), and the files of one
//! directory module never use each other in a circle. Read from every `crate::…` and
//! `super::…` path in `src/`, so a back-edge fails the suite where it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top to bottom. A module may use any module of a layer below its own, none of
/// its own layer and none above.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["serve"],
    &["api"],
    &["triggers", "worker"],
    &["exec", "destinations", "engine"],
    &["store", "buckets", "media"],
    &["config", "preset", "metrics"],
    &["job"],
    &["progress", "stop", "process", "sandbox"],
];

/// A module path (`["store", "postgres", "ops"]`) and the text of its file.
struct Source {
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().with_extension("");
        let mut module: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into()).collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            continue;
        }
        out.push(Source {
            module,
            text: std::fs::read_to_string(&f).unwrap(),
        });
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every path a file names from `crate::` or `super::`, made absolute: `use crate::{a::X,
/// b}` gives `[a, X]` and `[b]`; `super::c` in `store/sqlite/ops.rs` gives `[store, sqlite,
/// c]`.
fn paths_used(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for root in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(i) = rest.find(root) {
            let before = rest[..i].chars().next_back();
            rest = &rest[i..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                rest = &rest[root.len()..];
                continue;
            }
            let base: Vec<String> = if root == "crate::" {
                Vec::new()
            } else {
                module[..module.len() - 1].to_vec()
            };
            rest = &rest[root.len()..];
            read_tree(base, &mut rest, &mut out);
        }
    }
    out
}

/// Reads `a::b::{c, d::e}` at the start of `rest` (after a `crate::` or `super::`), adding
/// each full path to `out`.
fn read_tree(mut base: Vec<String>, rest: &mut &str, out: &mut Vec<Vec<String>>) {
    loop {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if word.is_empty() {
            if let Some(inner) = rest.strip_prefix('{') {
                *rest = inner;
                loop {
                    *rest = rest.trim_start();
                    read_tree(base.clone(), rest, out);
                    *rest = rest.trim_start();
                    match rest.chars().next() {
                        Some(',') => *rest = &rest[1..],
                        Some('}') => {
                            *rest = &rest[1..];
                            return;
                        }
                        _ => return,
                    }
                }
            }
            if !base.is_empty() {
                out.push(base);
            }
            return;
        }
        *rest = &rest[word.len()..];
        if word == "super" {
            base.pop();
        } else if word != "self" {
            base.push(word);
        }
        match rest.strip_prefix("::") {
            Some(r) => *rest = r,
            None => {
                out.push(base);
                return;
            }
        }
    }
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every use of a top-level module that its layer does not allow, as `file → module` lines.
fn back_edges(sources: &[Source]) -> Vec<String> {
    let mut bad = BTreeSet::new();
    for s in sources {
        let from = &s.module[0];
        let Some(own) = layer_of(from) else { continue };
        for path in paths_used(&s.module, &s.text) {
            let to = &path[0];
            if to == from {
                continue;
            }
            if layer_of(to).is_some_and(|l| l <= own) {
                bad.insert(format!("{} uses crate::{to}", s.module.join("::")));
            }
        }
    }
    bad.into_iter().collect()
}

/// Circles among the files of one directory module: for each directory, the edges between
/// its children, and any cycle found in them.
fn sibling_cycles(sources: &[Source]) -> Vec<String> {
    let known: BTreeSet<&[String]> = sources.iter().map(|s| s.module.as_slice()).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for s in sources {
        for path in paths_used(&s.module, &s.text) {
            let common = s
                .module
                .iter()
                .zip(&path)
                .take_while(|(a, b)| a == b)
                .count();
            if common >= s.module.len() || common >= path.len() {
                continue; // a module's own items, an ancestor's or a descendant's
            }
            let (parent, from, to) = (&s.module[..common], &s.module[common], &path[common]);
            let mut sibling = parent.to_vec();
            sibling.push(to.clone());
            if known.contains(sibling.as_slice()) {
                edges
                    .entry(parent.to_vec())
                    .or_default()
                    .insert((from.clone(), to.clone()));
            }
        }
    }
    let mut cycles = Vec::new();
    for (parent, e) in edges {
        for (a, b) in &e {
            if reaches(&e, b, a) {
                cycles.push(format!(
                    "{}: {a} and {b} use each other",
                    if parent.is_empty() {
                        "crate".into()
                    } else {
                        parent.join("::")
                    }
                ));
            }
        }
    }
    cycles
}

fn reaches(edges: &BTreeSet<(String, String)>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone()) {
            todo.extend(
                edges
                    .iter()
                    .filter(|(a, _)| *a == m)
                    .map(|(_, b)| b.clone()),
            );
        }
    }
    false
}

#[test]
fn every_top_level_module_has_a_layer() {
    let tops: BTreeSet<String> = sources().into_iter().map(|s| s.module[0].clone()).collect();
    assert!(tops.len() > 10);
    for t in &tops {
        assert!(
            layer_of(t).is_some(),
            "src/{t}: place the new module in a layer of tests/it/tidy_layers.rs and \
             ARCHITECTURE.md (Dependency direction)"
        );
    }
}

#[test]
fn dependencies_point_down() {
    let bad = back_edges(&sources());
    assert!(
        bad.is_empty(),
        "modules using a layer at or above their own (see ARCHITECTURE.md, Dependency \
         direction):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn no_directory_module_has_files_in_a_circle() {
    let cycles = sibling_cycles(&sources());
    assert!(cycles.is_empty(), "{}", cycles.join("\n"));
}

/// The checks find what they are for, on sources made up for the purpose.
#[test]
fn the_checks_catch_back_edges_and_circles() {
    let source = |module: &str, text: &str| Source {
        module: module.split("::").map(String::from).collect(),
        text: text.into(),
    };
    let tree = [
        source("job", "use crate::{progress::Progress, media::Thing};"),
        source("store::query", "use super::filters::Keys;"),
        source("store::filters", "fn f() { crate::store::query::page(); }"),
        source("store", ""),
        source("media", "use crate::preset::{self, Preset};"),
    ];
    assert_eq!(back_edges(&tree), ["job uses crate::media"]);
    assert_eq!(
        sibling_cycles(&tree),
        [
            "store: filters and query use each other",
            "store: query and filters use each other"
        ]
    );
    let paths = paths_used(
        &["store".into(), "sqlite".into(), "ops".into()],
        "use super::{rows::{self, Columns}, super::rules::Decision};",
    );
    assert_eq!(
        paths,
        [
            vec!["store", "sqlite", "rows"],
            vec!["store", "sqlite", "rows", "Columns"],
            vec!["store", "rules", "Decision"],
        ]
    );
}
