//! Server-Sent Events: one job's status, progress and parts (`/v1/jobs/{id}/events`) and every
//! job's changes (`/v1/events`). Changes come from the store's notifications; the per-job
//! stream also polls once a second, so progress arrives within a second whatever the store
//! (and whichever process changed the job).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::error::{ApiResult, ErrorBody, Path};
use crate::job::Job;
use crate::store::Change;

type EventStream = Sse<KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

fn event<T: Serialize>(name: &str, data: &T) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

fn sse(rx: mpsc::Receiver<Result<Event, Infallible>>) -> EventStream {
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Serialize)]
struct ProgressEvent<'a> {
    id: &'a str,
    status: crate::job::Status,
    progress: &'a Option<crate::progress::Progress>,
}

/// A split job's parts as the job document shows them, whenever one of them changed.
#[derive(Serialize)]
struct PartsEvent<'a> {
    id: &'a str,
    parts: &'a [crate::job::PartInfo],
}

#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "events",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "text/event-stream: `job` (the whole job, first and on \
        every status change), `progress` ({id, status, progress}), `parts` ({id, parts}: a split \
        job's parts, when one changes state, worker or progress); ends when the job ends",
        content_type = "text/event-stream", body = String),
        (status = 404, body = ErrorBody)))]
pub async fn job_events(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<EventStream> {
    let first = app.store.get(super::jobs::job_id(&id)?).await?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut changes = app.store.subscribe();
        let mut last = first;
        if tx.send(Ok(event("job", &last))).await.is_err() || last.status.is_terminal() {
            return;
        }
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        loop {
            let check = tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = poll.tick() => true,
                c = changes.recv() => match c {
                    Ok(
                        Change::Status { id: ref i, .. }
                        | Change::Progress { id: ref i, .. }
                        | Change::Parts { id: ref i },
                    ) => *i == id,
                    Ok(Change::Worker { .. }) => false,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => {
                        changes = app.store.subscribe();
                        true
                    }
                },
            };
            if !check {
                continue;
            }
            let Ok(now) = app.store.get(&id).await else {
                continue;
            };
            let events = difference(&last, &now);
            if events.is_empty() {
                continue;
            }
            for e in events {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            last = now;
            if last.status.is_terminal() {
                return;
            }
        }
    });
    Ok(sse(rx))
}

/// The events telling a watcher of `before` what changed: none when nothing did; the whole
/// job when its status or attempt changed (it carries the parts too); otherwise its progress
/// and its parts, each when it changed.
fn difference(before: &Job, now: &Job) -> Vec<Event> {
    if now.status != before.status || now.attempt != before.attempt {
        return vec![event("job", now)];
    }
    let mut events = Vec::new();
    if now.progress != before.progress || now.updated_at != before.updated_at {
        events.push(event(
            "progress",
            &ProgressEvent {
                id: &now.id,
                status: now.status,
                progress: &now.progress,
            },
        ));
    }
    if now.parts != before.parts {
        events.push(event(
            "parts",
            &PartsEvent {
                id: &now.id,
                parts: &now.parts,
            },
        ));
    }
    events
}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses((status = 200, description = "text/event-stream of every change: `status` ({kind, id, \
        status}), `progress` ({kind, id, progress}), `worker` ({kind, id}), `parts` ({kind, id}: a \
        part of split job id changed status); `resync` when changes were missed (fetch the list again)", content_type = "text/event-stream", body = String)))]
pub async fn all_events(State(app): State<AppState>) -> EventStream {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut changes = app.store.subscribe();
        if tx
            .send(Ok(event("hello", &serde_json::json!({}))))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let e = tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                c = changes.recv() => match c {
                    Ok(c @ Change::Status { .. }) => event("status", &c),
                    Ok(c @ Change::Progress { .. }) => event("progress", &c),
                    Ok(c @ Change::Worker { .. }) => event("worker", &c),
                    Ok(c @ Change::Parts { .. }) => event("parts", &c),
                    Err(RecvError::Lagged(n)) => event("resync", &serde_json::json!({ "missed": n })),
                    Err(RecvError::Closed) => {
                        changes = app.store.subscribe();
                        continue;
                    }
                },
            };
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
    });
    sse(rx)
}
