//! Rebuilds when a shipped preset or the web page changes (both are compiled into the binary).

fn main() {
    println!("cargo:rerun-if-changed=presets");
    println!("cargo:rerun-if-changed=web");
}
