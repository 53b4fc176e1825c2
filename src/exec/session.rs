//! One exec session, where its process runs: start it, pump the websocket ↔ terminal (or
//! pipes), apply resizes, close it when idle or when its task ends, send the exit code, kill
//! whatever it left, and record it in the job's history (start and end).
//!
//! The two directions run apart — input (websocket → process) in one task, output (process →
//! a writer task owning the socket) in others — so a command that is not reading its input
//! never stops its output, and the reverse: with one loop doing both, `cat` of a large input
//! deadlocks once every buffer on the way is full.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::protocol::{Control, Params};
use super::pty::{self, Io, Launch, Leader};
use super::{SessionSlot, Target};
use crate::job::Timestamp;
use crate::store::{Change, JobStore, StoreError};

/// How long the leader has to go after SIGHUP before SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
/// After the command exited, its output is relayed until the session's processes let go of
/// the terminal or pipes, as long as some moves at least this often …
const DRAIN_GAP: Duration = Duration::from_millis(500);
/// … and for at most this long (a background process may write forever).
const DRAIN_MAX: Duration = Duration::from_secs(30);
/// How often the session checks its idle time and that its task still runs (besides store
/// notifications).
const WATCH_EVERY: Duration = Duration::from_secs(1);
const CHUNK: usize = 16 << 10;
/// How long a closing side waits for the other's Close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Everything a session needs.
pub struct Session {
    pub job_id: String,
    pub target: Target,
    pub params: Params,
    /// The worker whose task this is (for the history).
    pub worker: String,
    pub store: Arc<dyn JobStore>,
    /// Closed after this long without input or output.
    pub idle_timeout: Option<Duration>,
    /// Held for the session's life (the per-job cap).
    pub slot: SessionSlot,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Exited,
    Disconnected,
    Idle,
    TaskEnded,
    WorkspaceGone,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Exited => "exited",
            End::Disconnected => "disconnected",
            End::Idle => "idle",
            End::TaskEnded => "task-ended",
            End::WorkspaceGone => "workspace-removed",
        }
    }
}

enum Input {
    Data(axum::body::Bytes),
    Eof,
}

/// When input or output last moved (milliseconds since the session started), and how many
/// chunks of output have.
#[derive(Default)]
struct Activity {
    last_ms: AtomicU64,
    chunks: AtomicU64,
}

impl Activity {
    fn touch(&self, clock: Instant) {
        self.last_ms
            .store(clock.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self, clock: Instant) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        clock.elapsed().saturating_sub(last)
    }
}

/// Runs the session on an upgraded websocket until it ends.
pub async fn run(socket: WebSocket, s: Session) {
    let (tx, mut rx) = socket.split();
    let started_at = Timestamp::now();
    let clock = Instant::now();
    let launch = Launch {
        command: s.params.command.clone(),
        tty: s.params.tty,
        cols: s.params.cols,
        rows: s.params.rows,
        cwd: s.target.workspace.clone(),
        env: s.target.env.clone(),
    };
    let mut detail = serde_json::json!({
        "who": s.params.who(),
        "user": s.params.user,
        "peer": s.params.peer,
        "command": s.params.describe(),
        "tty": s.params.tty,
        "worker": s.worker,
        "attempt": s.target.attempt,
        "workspace": s.target.workspace.display().to_string(),
        "started_at": started_at,
    });
    let (ws_tx, ws_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(write_socket(tx, ws_rx));
    let spawned = match pty::spawn(&launch) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("starting the session's process: {e}");
            let _ = ws_tx
                .send(text(Control::error("exec-spawn-failed", &message)))
                .await;
            let mut until_closed = std::pin::pin!(async {
                while let Some(Ok(m)) = rx.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            });
            close(ws_tx, writer, &mut until_closed).await;
            detail["error"] = message.clone().into();
            let reason = format!("exec session failed: {message}");
            note(&*s.store, &s.job_id, reason, detail).await;
            return;
        }
    };
    let mut leader = Leader::new(spawned.pid);
    let reason = format!("exec session started by {}", s.params.who());
    note(&*s.store, &s.job_id, reason, detail.clone()).await;
    tracing::info!(
        "job {}: exec session by {} (pid {})",
        s.job_id,
        s.params.who(),
        spawned.pid
    );

    let activity = Arc::new(Activity::default());
    let (in_tx, in_rx) = mpsc::channel::<Input>(16);
    let mut readers = tokio::task::JoinSet::new();
    let control = match spawned.io {
        Io::Pty {
            output,
            input,
            control,
        } => {
            readers.spawn(read_output(
                output,
                ws_tx.clone(),
                activity.clone(),
                clock,
                false,
            ));
            tokio::spawn(write_input(input, in_rx, true));
            Some(control)
        }
        Io::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            readers.spawn(read_output(
                stdout,
                ws_tx.clone(),
                activity.clone(),
                clock,
                false,
            ));
            readers.spawn(read_output(
                stderr,
                ws_tx.clone(),
                activity.clone(),
                clock,
                true,
            ));
            tokio::spawn(write_input(stdin, in_rx, false));
            None
        }
    };
    // Ends when the client closes or goes away; until then, input flows on.
    let mut input = tokio::spawn(read_socket(rx, in_tx, control, activity.clone(), clock));

    let idle = s.idle_timeout;
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = s.store.subscribe();
    let end = loop {
        tokio::select! {
            _ = &mut input => break End::Disconnected,
            () = leader.exited() => break End::Exited,
            change = changes.recv() => match change {
                Ok(Change::Status { id, .. }) if id == s.job_id => {
                    if let Some(end) = ended(&s).await { break end; }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(end) = ended(&s).await { break end; }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    changes = s.store.subscribe();
                }
            },
            _ = watch.tick() => {
                if idle.is_some_and(|limit| activity.idle_for(clock) >= limit) {
                    break End::Idle;
                }
                if let Some(end) = ended(&s).await { break end; }
            }
        }
    };

    let notice = match end {
        End::Idle => Some(format!(
            "closing the session: no input or output for {} s",
            idle.unwrap_or_default().as_secs()
        )),
        End::TaskEnded => Some("the task ended; closing the session".to_string()),
        End::WorkspaceGone => Some("the workspace was removed; closing the session".to_string()),
        End::Exited | End::Disconnected => None,
    };
    if let Some(n) = notice {
        let _ = ws_tx.send(text(Control::notice(n))).await;
    }
    if end == End::Exited {
        // What the command wrote just before it ended still goes out.
        drain(&mut readers, &activity).await;
    }
    let exit = leader.end(HANGUP_GRACE).await;
    let code = exit_code(&exit);
    // The session is over: what its processes left in the pipes goes out before the code.
    let _ = tokio::time::timeout(DRAIN_GAP, async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    readers.abort_all();
    if end == End::Disconnected {
        writer.abort();
    } else {
        let _ = ws_tx.send(text(Control::Exit { code })).await;
        close(ws_tx, writer, &mut input).await;
    }
    input.abort();
    let seconds = clock.elapsed().as_secs_f64();
    detail["ended"] = end.as_str().into();
    detail["exit_code"] = code.into();
    detail["duration_seconds"] = ((seconds * 1000.0).round() / 1000.0).into();
    let reason = format!(
        "exec session by {} ended ({}, exit code {code}) after {seconds:.1} s",
        s.params.who(),
        end.as_str()
    );
    note(&*s.store, &s.job_id, reason, detail).await;
    drop(s.slot);
}

/// Waits while output still moves, until the readers are done (every process let go of the
/// terminal or pipes), output stalls for [`DRAIN_GAP`], or [`DRAIN_MAX`] passed.
async fn drain(readers: &mut tokio::task::JoinSet<()>, activity: &Activity) {
    let deadline = tokio::time::Instant::now() + DRAIN_MAX;
    let mut seen = activity.chunks.load(Ordering::Relaxed);
    while !readers.is_empty() && tokio::time::Instant::now() < deadline {
        if tokio::time::timeout(DRAIN_GAP, readers.join_next())
            .await
            .is_err()
        {
            let now = activity.chunks.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    }
}

/// Closes the websocket as the protocol asks: our Close (after everything queued), then the
/// client's, reading whatever it still sent — `done` is what reads the socket and ends on
/// the client's Close. (Dropping a socket with unread input makes the kernel reset the
/// connection, and a reset can destroy the exit code on its way to the client.)
async fn close<T>(
    ws_tx: mpsc::Sender<Message>,
    writer: tokio::task::JoinHandle<()>,
    done: &mut (impl std::future::Future<Output = T> + Unpin),
) {
    let _ = ws_tx.send(Message::Close(None)).await;
    drop(ws_tx);
    let _ = tokio::time::timeout(CLOSE_WAIT, writer).await;
    let _ = tokio::time::timeout(CLOSE_WAIT, done).await;
}

/// The socket's only writer: output, control messages and the Close, in order.
async fn write_socket(mut tx: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Message>) {
    while let Some(m) = rx.recv().await {
        let closing = matches!(m, Message::Close(_));
        if tx.send(m).await.is_err() || closing {
            return;
        }
    }
}

/// The client's side: input to the process, resizes, end of input; returns when the client
/// closes or goes away.
async fn read_socket(
    mut rx: SplitStream<WebSocket>,
    input: mpsc::Sender<Input>,
    control: Option<OwnedFd>,
    activity: Arc<Activity>,
    clock: Instant,
) {
    while let Some(Ok(msg)) = rx.next().await {
        match msg {
            Message::Binary(b) => {
                activity.touch(clock);
                // Refused once the process closed its input: the client's frames are still
                // read, so its Close is seen.
                let _ = input.send(Input::Data(b)).await;
            }
            Message::Text(t) => match serde_json::from_str::<Control>(&t) {
                Ok(Control::Resize { cols, rows }) => {
                    if let Some(fd) = &control {
                        let side = |n: u16| n.clamp(1, super::protocol::MAX_SIDE);
                        if let Err(e) = pty::resize(fd, side(cols), side(rows)) {
                            tracing::debug!("resizing an exec terminal: {e}");
                        }
                    }
                }
                Ok(Control::Eof) => {
                    let _ = input.send(Input::Eof).await;
                }
                _ => tracing::debug!("ignored exec message {t:?}"),
            },
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

/// Whether the session must close: its task ended (tied sessions), or the kept workspace it
/// runs in was removed.
async fn ended(s: &Session) -> Option<End> {
    if !s.target.workspace.exists() {
        return Some(if s.target.tied {
            End::TaskEnded
        } else {
            End::WorkspaceGone
        });
    }
    if !s.target.tied {
        return None;
    }
    match s.store.get(&s.job_id).await {
        Ok(job) if job.status.is_active() && job.attempt == s.target.attempt => None,
        Ok(_) | Err(StoreError::NotFound { .. }) => Some(End::TaskEnded),
        // The store is briefly unavailable: the next check decides.
        Err(_) => None,
    }
}

/// 128 + N for a process killed by signal N, as shells report it.
fn exit_code(exit: &crate::process::Exit) -> i32 {
    match (exit.code, exit.signal) {
        (_, Some(sig)) => 128 + sig as i32,
        (Some(c), None) => c,
        (None, None) => 255,
    }
}

fn text(c: Control) -> Message {
    Message::Text(c.to_json().into())
}

async fn note(store: &dyn JobStore, id: &str, reason: String, detail: serde_json::Value) {
    if let Err(e) = store.note(id, "exec", &reason, detail).await {
        tracing::warn!("job {id}: recording an exec session: {e}");
    }
}

/// A terminal's or a pipe's output, to the socket, until every process of the session let
/// go of it (EOF; a terminal master says EIO). Standard error without a terminal travels as
/// `stderr` messages.
async fn read_output(
    mut from: impl tokio::io::AsyncRead + Unpin,
    to: mpsc::Sender<Message>,
    activity: Arc<Activity>,
    clock: Instant,
    stderr: bool,
) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let msg = if stderr {
            text(Control::Stderr {
                data: String::from_utf8_lossy(&buf[..n]).into_owned(),
            })
        } else {
            Message::Binary(buf[..n].to_vec().into())
        };
        if to.send(msg).await.is_err() {
            return;
        }
        activity.touch(clock);
        activity.chunks.fetch_add(1, Ordering::Relaxed);
    }
}

/// The session's input into the terminal or the pipe. A terminal has no end of input but the
/// one its line discipline reads (Ctrl-D), so `Eof` only closes a pipe.
async fn write_input(
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut input: mpsc::Receiver<Input>,
    terminal: bool,
) {
    while let Some(i) = input.recv().await {
        match i {
            Input::Data(d) => {
                if to.write_all(&d).await.is_err() {
                    return;
                }
            }
            Input::Eof if terminal => {}
            Input::Eof => return,
        }
    }
}
