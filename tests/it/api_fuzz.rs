//! The API fuzzed from its own OpenAPI document by schemathesis (installed from PyPI by
//! `./dev.sh test` into target/test-tools): whatever a client sends — odd paths and keys, huge
//! numbers, strange headers, malformed bodies — the answer is never a 5xx, and the answers
//! match what the document says. The run is seeded, so a failure reproduces.

use std::time::{Duration, Instant};

use crate::api_harness::Api;
use crate::helpers::{tempdir, test_tool, valid};
use crate::worker_harness::Backend;

/// Test cases per operation and phase: enough to reach the corners, bounded so the test
/// takes about half a minute on two cores (40 s beside the other API tests).
const MAX_EXAMPLES: u32 = 200;
/// Fixed, so a failure reproduces with the printed command line.
const SEED: u32 = 1729;
/// What every answer must satisfy: above all no 5xx, and the document must be true.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance";
/// The event streams never end, so a fuzzer would wait on them forever.
const EXCLUDED_PATHS: [&str; 2] = ["/v1/events", "/v1/jobs/{id}/events"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_input_gets_a_server_error() {
    let schemathesis = test_tool("schemathesis");
    let api = Api::start(Backend::Sqlite, |_| {}).await;
    // An input the document's examples name, so some submits and downloads succeed.
    api.farm.put(&valid("h264_aac.mp4"), "in/clip.mp4");

    let mut args: Vec<String> = vec![
        "run".into(),
        format!("{}/v1/openapi.json", api.url),
        format!("--checks={CHECKS}"),
        format!("--max-examples={MAX_EXAMPLES}"),
        format!("--seed={SEED}"),
        // Each run on its own: no example database replaying an earlier run's failures.
        "--generation-database=none".into(),
        // A hang is a failure too.
        "--request-timeout=10".into(),
        "--workers=2".into(),
        "--no-color".into(),
    ];
    args.extend(EXCLUDED_PATHS.iter().map(|p| format!("--exclude-path={p}")));
    let command = format!("{} {}", schemathesis.display(), args.join(" "));
    eprintln!("running {command}");

    // Schemathesis keeps its state (.hypothesis, .schemathesis) in its working directory.
    let work = tempdir();
    let mut runs = 0;
    let out = loop {
        runs += 1;
        let started = Instant::now();
        let run = tokio::process::Command::new(&schemathesis)
            .args(&args)
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .env("COLUMNS", "120")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(300), run)
            .await
            .unwrap_or_else(|_| panic!("schemathesis still running after 5 minutes: {command}"))
            .expect("running schemathesis");
        eprintln!("schemathesis took {:.0?}", started.elapsed());
        // Python 3.11's `ast` module now and then raises "AST constructor recursion depth
        // mismatch" while Hypothesis describes one of its strategies (seen once in a fresh
        // CI run): a crash of the tool, reported with no failed check. Run once more.
        let text = String::from_utf8_lossy(&out.stdout);
        let tool_crash =
            text.contains("AST constructor recursion depth mismatch") && !text.contains("FAILURES");
        if out.status.success() || !tool_crash || runs == 2 {
            break out;
        }
        eprintln!("schemathesis crashed inside Python's ast module (not a finding); running again");
    };
    api.shutdown().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}): {command}\n{stdout}\n{stderr}",
        out.status
    );
}
