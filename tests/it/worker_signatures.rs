//! Signed deliveries (`[destinations] secrets`), judged by an independent implementation:
//! the `standardwebhooks` package from PyPI verifies what a real worker sent with each
//! configured secret (two, as during a rotation), and rejects it with a secret the farm does
//! not hold, with the body changed by one byte, and once its timestamp is ten minutes old.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ffarm::job::Status;

use crate::helpers::test_tool;
use crate::worker_harness::{Backend, Farm};

/// What the destination received: the headers and the body, byte for byte.
type Received = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

async fn hook(State(got): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    got.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::OK
}

/// Runs the PyPI library's `Webhook(secret).verify(body, headers)` the way a receiver
/// would: "verified", or "rejected: WHY".
fn verify(secret: &str, headers: &[(String, String)], body: &[u8], mode: &str) -> String {
    let dir = crate::helpers::tempdir();
    std::fs::write(dir.path().join("body"), body).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    std::fs::write(
        dir.path().join("headers"),
        serde_json::to_vec(&map).unwrap(),
    )
    .unwrap();
    let script = r#"
import json, sys
from datetime import datetime, timedelta, timezone
import standardwebhooks.webhooks as w
secret, folder, mode = sys.argv[1:4]
body = open(folder + "/body", "rb").read()
headers = json.load(open(folder + "/headers"))
if mode == "tampered":
    body = body.replace(b'"status"', b'"Status"', 1)
if mode == "stale":
    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(minutes=10)
    w.datetime = Later
try:
    w.Webhook(secret).verify(body, headers)
    print("verified")
except w.WebhookVerificationError as e:
    print("rejected:", e)
"#;
    let out = std::process::Command::new(test_tool("python"))
        .args(["-c", script, secret])
        .arg(dir.path())
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_every_secret_and_nothing_else() {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Two secrets, as while replacing one: 32 bytes each, Base64.
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7iWbkC1ANBM=";
    let new = "whsec_9Q2mZkq1b6Xr0cT3vJw8LhYpN4sDfGaEuRiKoB7nM5A=";
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.put(
        &crate::helpers::malformed_dir().join("random.mp4"),
        "in/bad.mp4",
    );
    let mut config = farm.config();
    config.destinations.on_failure = Some(url);
    config.destinations.secrets = vec![old.into(), new.into()];
    let defaults = config.destinations.clone();
    farm.start_in_process(config);
    let job = farm.submit("in/bad.mp4", "mp4", |s| defaults.fill(s)).await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(60)).await;
    assert_eq!(done.status, Status::Failed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (headers, body) = got.lock().unwrap().first().cloned().expect("a delivery");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("webhook-id"), header("idempotency-key"));
    assert_eq!(header("webhook-signature").matches("v1,").count(), 2);
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["id"], job.id.as_str());

    assert_eq!(verify(old, &headers, &body, "ok"), "verified");
    assert_eq!(verify(new, &headers, &body, "ok"), "verified");
    let stranger = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    assert!(verify(stranger, &headers, &body, "ok").starts_with("rejected: No matching"));
    assert!(verify(new, &headers, &body, "tampered").starts_with("rejected: No matching"));
    assert_eq!(
        verify(new, &headers, &body, "stale"),
        "rejected: Message timestamp too old"
    );
    farm.cleanup().await;
}

#[test]
fn secrets_that_are_not_standard_webhooks_secrets_are_refused() {
    use ffarm::config::signing_key;
    assert_eq!(
        signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7iWbkC1ANBM=")
            .unwrap()
            .len(),
        32
    );
    assert!(
        signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7iWbkC1ANBM=")
            .unwrap_err()
            .contains("whsec_")
    );
    assert!(
        signing_key("whsec_not base64!")
            .unwrap_err()
            .contains("Base64")
    );
    assert!(
        signing_key("whsec_AAECAw==")
            .unwrap_err()
            .contains("24 to 64")
    );
}
