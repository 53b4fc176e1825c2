//! A served farm for API tests: `ffarm::serve` on 127.0.0.1:0 in this process over a test
//! store (SQLite file or fresh PostgreSQL database), real HTTP through reqwest.

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
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
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
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    let message = got.1["error"]["message"].as_str().unwrap_or("");
    for w in words {
        assert!(message.contains(w), "message {message:?} lacks {w:?}");
    }
}
