//! A served farm for API tests: `ffarm::serve` on 127.0.0.1:0 in this process over a test
//! store (SQLite file or fresh PostgreSQL database), real HTTP through reqwest. Error answers
//! are checked one at a time (`assert_error`) or as a table of named cases (`check_errors`).

use std::time::{Duration, Instant};

use ffarm::config::Config;
use ffarm::job::{Job, Status};
use ffarm::worker::Shutdown;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::watch;

use crate::worker_harness::{Backend, Farm};

pub struct Api {
    pub farm: Farm,
    pub url: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    stop: Option<watch::Sender<u8>>,
    server: Option<tokio::task::JoinHandle<Result<(), ffarm::serve::ServeError>>>,
}

/// A configuration for an API-only node (no workers, no watch folder) on a free port.
pub fn api_config(farm: &Farm) -> Config {
    let mut c = farm.config();
    c.listen = "127.0.0.1:0".into();
    c.workers = Some(0);
    c.watch.enabled = false;
    c
}

impl Api {
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Api {
        let farm = Farm::new(backend).await;
        let mut config = api_config(&farm);
        tweak(&mut config);
        Api::serve(farm, config).await
    }

    pub async fn serve(farm: Farm, config: Config) -> Api {
        let token = config.token.clone();
        let (tx, rx) = watch::channel(0u8);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let store = farm.store.clone();
        let server = tokio::spawn(async move {
            ffarm::serve::run_on(store, config, Shutdown(rx), move |addr| {
                let _ = ready_tx.send(addr);
            })
            .await
        });
        let addr = tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("server ready in time")
            .expect("server started");
        Api {
            farm,
            url: format!("http://{addr}"),
            http: reqwest::Client::new(),
            token,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and returns status and JSON body (Null when the body is not JSON).
    pub async fn send(&self, r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn job(&self, id: &str) -> Job {
        let (s, v) = self.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn wait_status(&self, id: &str, limit: Duration, want: &[Status]) -> Job {
        let start = Instant::now();
        loop {
            let job = self.job(id).await;
            if want.contains(&job.status) {
                return job;
            }
            assert!(
                start.elapsed() < limit,
                "job {id} still {} after {limit:?}: {:?}",
                job.status,
                job.error
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server (as SIGTERM would) and drops the test store.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(1);
        }
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), s)
                .await
                .expect("server stops in time")
                .unwrap()
                .unwrap();
        }
        self.farm.cleanup().await;
    }
}

/// Asserts an error answer: status, code, and words its message must contain.
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str, words: &[&str]) {
    if let Some(why) = error_mismatch(got, status, code, words) {
        panic!("{why}");
    }
}

/// How an answer differs from the error expected (status, then code, then each word of the
/// message), or None when it is that error.
fn error_mismatch(
    got: &(StatusCode, Value),
    status: u16,
    code: &str,
    words: &[&str],
) -> Option<String> {
    let (got_status, body) = got;
    if got_status.as_u16() != status {
        return Some(format!("status {got_status}, not {status}: {body}"));
    }
    if body["error"]["code"] != code {
        return Some(format!(
            "code {}, not {code:?}: {body}",
            body["error"]["code"]
        ));
    }
    let message = body["error"]["message"].as_str().unwrap_or("");
    words
        .iter()
        .find(|w| !message.contains(*w))
        .map(|w| format!("message {message:?} lacks {w:?}"))
}

/// One row of an error table: a name to report it by, a request, and the error answer that
/// request must get. Written `case("name").post(path, body).answers(400, "code")`, then
/// `.saying(&["word"])` for words its message must contain; checked by [`Api::check_errors`].
pub struct ErrorCase {
    name: &'static str,
    method: Method,
    path: String,
    body: Body,
    token: Token,
    status: u16,
    code: &'static str,
    words: &'static [&'static str],
}

enum Body {
    None,
    /// Serialized by reqwest, which also says it is JSON.
    Json(Value),
    /// Sent as is, under the content type given if any.
    Bytes(Vec<u8>, Option<&'static str>),
}

/// Which bearer token a case's request carries.
enum Token {
    /// The API's own, when it has one (as `Api::request` sends).
    Api,
    None,
    Given(&'static str),
}

/// A case named `name`; its request and its answer are set by the methods that follow.
pub fn case(name: &'static str) -> ErrorCase {
    ErrorCase {
        name,
        method: Method::GET,
        path: String::new(),
        body: Body::None,
        token: Token::Api,
        status: 0,
        code: "",
        words: &[],
    }
}

impl ErrorCase {
    pub fn get(self, path: impl Into<String>) -> Self {
        self.request(Method::GET, path)
    }

    /// A request without a body.
    pub fn request(self, method: Method, path: impl Into<String>) -> Self {
        ErrorCase {
            method,
            path: path.into(),
            ..self
        }
    }

    /// A POST of `body` as JSON (as `Api::post` sends it).
    pub fn post(self, path: impl Into<String>, body: Value) -> Self {
        ErrorCase {
            body: Body::Json(body),
            ..self.request(Method::POST, path)
        }
    }

    /// A POST of `body` as is, labelled JSON (as `Api::post_raw` sends it).
    pub fn post_raw(self, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        ErrorCase {
            body: Body::Bytes(body.into(), Some("application/json")),
            ..self.request(Method::POST, path)
        }
    }

    /// A PUT of `body` as is, without a content type.
    pub fn put(self, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        ErrorCase {
            body: Body::Bytes(body.into(), None),
            ..self.request(Method::PUT, path)
        }
    }

    /// The request goes without any token.
    pub fn without_token(self) -> Self {
        ErrorCase {
            token: Token::None,
            ..self
        }
    }

    /// The request carries `token` instead of the API's.
    pub fn with_token(self, token: &'static str) -> Self {
        ErrorCase {
            token: Token::Given(token),
            ..self
        }
    }

    /// The error answer the request must get: its status and its code.
    pub fn answers(self, status: u16, code: &'static str) -> Self {
        ErrorCase {
            status,
            code,
            ..self
        }
    }

    /// Words the answer's message must contain.
    pub fn saying(self, words: &'static [&'static str]) -> Self {
        ErrorCase { words, ..self }
    }
}

impl ErrorCase {
    /// The case's request, to be sent to `api`.
    fn build(&self, api: &Api) -> reqwest::RequestBuilder {
        let r = api
            .http
            .request(self.method.clone(), format!("{}{}", api.url, self.path));
        let r = match (&self.token, &api.token) {
            (Token::Api, Some(t)) => r.bearer_auth(t),
            (Token::Given(t), _) => r.bearer_auth(t),
            (Token::Api | Token::None, _) => r,
        };
        match &self.body {
            Body::None => r,
            Body::Json(v) => r.json(v),
            Body::Bytes(b, None) => r.body(b.clone()),
            Body::Bytes(b, Some(t)) => r.header("content-type", *t).body(b.clone()),
        }
    }
}

impl Api {
    /// Sends each case's request in turn and checks its answer as [`assert_error`] does; then
    /// fails, naming every case whose answer was not the one expected.
    pub async fn check_errors(&self, cases: impl IntoIterator<Item = ErrorCase>) {
        let mut checked = 0;
        let mut failed = Vec::new();
        for c in cases {
            assert!(
                !c.path.is_empty() && c.status != 0,
                "case {:?} needs a request and an answer",
                c.name
            );
            let got = self.send(c.build(self)).await;
            if let Some(why) = error_mismatch(&got, c.status, c.code, c.words) {
                failed.push(format!("{} ({} {}): {why}", c.name, c.method, c.path));
            }
            checked += 1;
        }
        assert!(
            failed.is_empty(),
            "{} of {checked} cases failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}
