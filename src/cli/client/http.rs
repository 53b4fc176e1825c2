//! The API client the commands share: the server's base URL and token (`--server`,
//! `FFARM_SERVER`, `FFARM_TOKEN`), requests, and the mapping from HTTP failures to messages
//! and exit codes.

use std::time::Duration;

use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::cli::exit::{self, Failure};

/// Where the server is when neither `--server` nor `FFARM_SERVER` says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// How long an ordinary request may take (event streams have no limit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The options every client command takes. The token comes only from `FFARM_TOKEN`, so it
/// never shows in a process listing or shell history.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The ffarm server's URL [default: http://127.0.0.1:8080]. Its token, when it needs one,
    /// is read from FFARM_TOKEN.
    #[arg(long, env = "FFARM_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

impl ClientArgs {
    /// Whether a server was named (by the flag or the environment).
    pub fn named(&self) -> bool {
        self.server.as_deref().is_some_and(|s| !s.trim().is_empty())
    }

    pub fn connect(&self) -> anyhow::Result<Client> {
        let server = match self.server.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s,
            _ => DEFAULT_SERVER,
        };
        let token = std::env::var("FFARM_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Client::new(server, token)
    }
}

/// A connection to one server.
#[derive(Debug)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Client> {
        let usage = |why: &str| {
            Failure::new(
                exit::USAGE,
                format!("--server {server}: {why} (expected http://HOST:PORT)"),
            )
        };
        let base = Url::parse(server).map_err(|e| usage(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(usage("not an http or https URL").into());
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("ffarm/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Client { base, token, http })
    }

    /// The URL of the API path made of `segments` (each one percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The server's address as the user gave it, for messages.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request, turning transport failures and error answers into [`Failure`]s.
    async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(self.refused(status, &body).into())
    }

    /// `GET` a JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> anyhow::Result<T> {
        let resp = self
            .send(self.request(Method::GET, url).timeout(REQUEST_TIMEOUT))
            .await?;
        self.json(resp).await
    }

    /// `POST` a JSON body (or none); the answer's status and JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        url: Url,
        body: Option<&B>,
    ) -> anyhow::Result<(StatusCode, T)> {
        let mut req = self.request(Method::POST, url).timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        Ok((status, self.json(resp).await?))
    }

    /// Opens an event stream (no time limit).
    pub async fn events(&self, url: Url) -> anyhow::Result<Response> {
        self.send(
            self.request(Method::GET, url)
                .header(reqwest::header::ACCEPT, "text/event-stream"),
        )
        .await
    }

    async fn json<T: DeserializeOwned>(&self, resp: Response) -> anyhow::Result<T> {
        let url = resp.url().path().to_string();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                exit::FAILED,
                format!(
                    "unexpected answer from {}{url}: {e} (is it an ffarm {} server?)",
                    self.server(),
                    env!("CARGO_PKG_VERSION")
                ),
            )
            .into()
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        Failure::new(
            exit::FAILED,
            format!(
                "cannot reach the ffarm server at {}: {}; is `ffarm serve` running? (set \
                 --server or FFARM_SERVER)",
                self.server(),
                root_cause(e)
            ),
        )
    }

    /// The failure for an error answer: the server's message, and the exit code its status
    /// means.
    fn refused(&self, status: StatusCode, body: &str) -> Failure {
        let said = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                let text: String = body.trim().chars().take(300).collect();
                if text.is_empty() {
                    status.to_string()
                } else {
                    format!("{status}: {text}")
                }
            });
        match status {
            StatusCode::UNAUTHORIZED => {
                let hint = if self.token.is_some() {
                    "the server refused the token in FFARM_TOKEN"
                } else {
                    "the server needs a token: set FFARM_TOKEN"
                };
                Failure::new(exit::FAILED, format!("{hint} ({said})"))
            }
            StatusCode::NOT_FOUND => Failure::new(exit::NOT_FOUND, said),
            StatusCode::CONFLICT => Failure::new(exit::CONFLICT, said),
            s if s.is_client_error() => Failure::new(exit::USAGE, said),
            s => Failure::new(
                exit::FAILED,
                format!("server error ({s}) from {}: {said}", self.server()),
            ),
        }
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_answers() {
        let c = Client::new("http://h:1/base/", None).unwrap();
        assert_eq!(
            c.url(&["v1", "jobs", "a b/c"]).as_str(),
            "http://h:1/base/v1/jobs/a%20b%2Fc"
        );
        assert_eq!(c.server(), "http://h:1/base");
        let c = Client::new("http://h:1", None).unwrap();
        assert_eq!(c.url(&["v1", "jobs"]).as_str(), "http://h:1/v1/jobs");
        let err = Client::new("h:1", None).unwrap_err();
        assert_eq!(exit::code_of(&err), exit::USAGE);

        let body = r#"{"error":{"code":"job-not-found","message":"job 'x' not found"}}"#;
        let f = c.refused(StatusCode::NOT_FOUND, body);
        assert_eq!(
            (f.code, f.message.as_str()),
            (exit::NOT_FOUND, "job 'x' not found")
        );
        assert_eq!(c.refused(StatusCode::CONFLICT, body).code, exit::CONFLICT);
        assert_eq!(c.refused(StatusCode::BAD_REQUEST, body).code, exit::USAGE);
        let f = c.refused(StatusCode::UNAUTHORIZED, "");
        assert_eq!(f.code, exit::FAILED);
        assert!(f.message.contains("FFARM_TOKEN"), "{}", f.message);
        let f = c.refused(StatusCode::BAD_GATEWAY, "upstream down");
        assert_eq!(f.code, exit::FAILED);
        assert!(
            f.message.contains("502 Bad Gateway: upstream down"),
            "{}",
            f.message
        );
    }
}
