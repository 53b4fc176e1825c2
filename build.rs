//! Rebuilds when a shipped preset or the web page changes (both are compiled into the binary),
//! and copies the page's front-end packages (`web-vendor/`, installed from the npm registry by
//! `./dev.sh`, never committed) into `OUT_DIR/vendor`, from where they are compiled in too.

use std::path::{Path, PathBuf};

/// (file in web-vendor/node_modules, name served under /assets/vendor/)
const VENDOR: [(&str, &str); 3] = [
    ("@xterm/xterm/lib/xterm.js", "xterm.js"),
    ("@xterm/xterm/css/xterm.css", "xterm.css"),
    ("@xterm/addon-fit/lib/addon-fit.js", "addon-fit.js"),
];

fn main() {
    println!("cargo:rerun-if-changed=presets");
    // sqlx::migrate! embeds the migrations; a new file must rebuild it.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=web");
    println!("cargo:rerun-if-changed=web-vendor/package-lock.json");
    let modules = Path::new("web-vendor/node_modules");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("vendor");
    let _ = std::fs::remove_dir_all(&out);
    if let Err(e) = std::fs::create_dir_all(&out) {
        println!("cargo:warning=creating {}: {e}", out.display());
        return;
    }
    let mut missing = vec![];
    for (from, to) in VENDOR {
        let src = modules.join(from);
        println!("cargo:rerun-if-changed={}", src.display());
        if std::fs::copy(&src, out.join(to)).is_err() {
            missing.push(from);
        }
    }
    if !missing.is_empty() {
        // The page still works; its terminal panel says this build has none.
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::create_dir_all(&out);
        println!(
            "cargo:warning=web terminal left out: web-vendor/node_modules lacks {} \
             (run `npm ci --prefix web-vendor`, which ./dev.sh does)",
            missing.join(", ")
        );
    }
}
