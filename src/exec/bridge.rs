//! From an API server to the worker holding a job's task: open the worker's exec websocket
//! (`ws://ADVERTISE/v1/exec/{job}/{attempt}`, with the exec credential) before answering the
//! client — so the worker's refusals reach the client as HTTP answers — then pump frames both
//! ways until either side closes.

use std::time::Duration;

use axum::extract::ws::{self, WebSocket};
use axum::http::{HeaderValue, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::ExecError;
use super::protocol::Params;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The worker's side of a bridged session.
pub type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where a job's session is taken.
#[derive(Debug, Clone)]
pub struct Worker<'a> {
    pub id: &'a str,
    pub address: &'a str,
}

/// Opens the session on the worker.
pub async fn connect(
    worker: Worker<'_>,
    job: &str,
    attempt: u32,
    params: &Params,
    token: &str,
) -> Result<Upstream, ExecError> {
    let fail = |message: String| ExecError::Worker {
        worker: worker.id.to_string(),
        address: worker.address.to_string(),
        message,
    };
    let job_segment: String =
        url::form_urlencoded::byte_serialize(job.as_bytes()).collect::<String>();
    let url = format!(
        "ws://{}/v1/exec/{job_segment}/{attempt}?{}",
        worker.address,
        params.to_query()
    );
    let mut request = url
        .into_client_request()
        .map_err(|e| fail(format!("bad address: {e}")))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| fail("the exec token is not a valid header value".into()))?;
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
        Err(_) => Err(fail(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(answer))) => {
            let status = answer.status();
            let body = answer.body().as_deref().unwrap_or_default();
            let (code, message) = error_of(body, status);
            Err(match status.as_u16() {
                // The session's own refusals: the client's business.
                400 | 409 => ExecError::Refused {
                    status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::CONFLICT),
                    code,
                    message,
                },
                401 | 403 => fail(format!(
                    "refused this API server's exec credentials ({message}); API servers and \
                     workers need the same `[exec] enabled` and `[exec] token` (or `token`)"
                )),
                _ => fail(format!("answered {status}: {message}")),
            })
        }
        Ok(Err(e)) => Err(fail(e.to_string())),
    }
}

/// `{"error": {"code", "message"}}`, or the status and text when the body is something else.
fn error_of(body: &[u8], status: tungstenite::http::StatusCode) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match (v["error"]["code"].as_str(), v["error"]["message"].as_str()) {
        (Some(c), Some(m)) => (c.to_string(), m.to_string()),
        _ => (
            "exec-worker-unreachable".into(),
            format!("{status} {}", String::from_utf8_lossy(body).trim()),
        ),
    }
}

/// Pumps frames between the client and the worker, each direction on its own (so neither
/// waits on the other), until one side closes; the close travels on and the other side's
/// answer is awaited (its remaining frames read, so no socket is dropped with unread input —
/// which would reset the connection and could lose the exit code).
pub async fn pump(client: WebSocket, upstream: Upstream) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_worker, mut from_worker) = upstream.split();
    let up = async {
        while let Some(Ok(msg)) = from_client.next().await {
            let forwarded = match msg {
                ws::Message::Binary(b) => tungstenite::Message::Binary(b),
                ws::Message::Text(t) => tungstenite::Message::text(t.as_str()),
                ws::Message::Close(_) => break,
                ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
            };
            if to_worker.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = to_worker.send(tungstenite::Message::Close(None)).await;
    };
    let down = async {
        while let Some(Ok(msg)) = from_worker.next().await {
            let forwarded = match msg {
                tungstenite::Message::Binary(b) => ws::Message::Binary(b),
                tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
                tungstenite::Message::Close(_) => break,
                _ => continue,
            };
            if to_client.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = to_client.send(ws::Message::Close(None)).await;
    };
    tokio::pin!(up, down);
    let wait = super::session::CLOSE_WAIT;
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(wait, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(wait, up).await; }
    }
}
