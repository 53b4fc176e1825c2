//! `ffarm exec JOB [-- CMD ARGS…]`: a shell inside a job's running task, like `kubectl exec
//! -it` — the local terminal in raw mode (restored on every way out), window resizes
//! forwarded, Ctrl-C and Ctrl-D delivered to the remote side — or one command whose output
//! and exit code come back as if it ran here, for scripts (pipes, no terminal: bytes pass
//! untouched and standard error stays apart). Exits with the remote command's code. Speaks
//! ws:// to http servers and wss:// to https ones.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::http::ClientArgs;
use super::{block_on, exit};
use crate::cli::exit::Failure;
use crate::exec::protocol::{Control, Params};

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Give the command a terminal too, as the shell gets (for programs such as `top`).
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Pass standard input on to the remote command (the shell always gets it).
    #[arg(long, short = 'i')]
    pub stdin: bool,
    /// For a split job, the part to enter (its number in `ffarm show`); when several run
    /// and none is given, the command asks (or, without a terminal, names them).
    #[arg(long, value_name = "N")]
    pub part: Option<u32>,
    /// The job's id.
    pub id: String,
    /// The command to run and its arguments, after `--`; without one, an interactive shell.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// For a split job with several parts running, which one to enter, asked at the terminal.
/// None leaves it to the server: a job that runs whole, or one part running.
async fn choose_part(client: &super::http::Client, id: &str) -> anyhow::Result<Option<u32>> {
    let job: crate::job::Job = client.get(client.url(&["v1", "jobs", id])).await?;
    let running: Vec<_> = job
        .parts
        .iter()
        .filter(|p| p.status == crate::job::Status::Running)
        .collect();
    if running.len() < 2 {
        return Ok(None);
    }
    let listed = running
        .iter()
        .map(|p| {
            let percent = p.progress.as_ref().map_or(0.0, |g| g.percent);
            let worker = p.worker.as_deref().unwrap_or("?");
            format!(
                "  {:>3}  {}  on {worker}, {percent:.0} %",
                p.seq,
                p.kind.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("job {id} has {} parts running:\n{listed}", running.len());
    loop {
        eprint!("which part? ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 {
            return Err(Failure::new(exit::FAILED, "no part chosen").into());
        }
        match line.trim().parse::<u32>() {
            Ok(n) if running.iter().any(|p| p.seq == n) => return Ok(Some(n)),
            _ => eprintln!("'{}' is not one of the running parts", line.trim()),
        }
    }
}

/// `ffarm exec`.
pub fn exec(args: &ExecArgs) -> anyhow::Result<u8> {
    let client = args.client.connect()?;
    let stdin_is_terminal = std::io::stdin().is_terminal();
    if args.tty && !stdin_is_terminal {
        eprintln!("note: --tty needs a terminal on standard input; running without one");
    }
    let tty = stdin_is_terminal && (args.command.is_empty() || args.tty);
    let (cols, rows) = if tty { window_size() } else { (80, 24) };
    // Asking needs a terminal; a failed look-up leaves the answer to the exec endpoint,
    // whose refusals (exec off, no token, no such job) are the ones to show.
    let part = match args.part {
        Some(n) => Some(n),
        None if stdin_is_terminal => block_on(choose_part(&client, &args.id)).unwrap_or(None),
        None => None,
    };
    let params = Params {
        command: args.command.clone(),
        tty,
        cols,
        rows,
        user: Some(user()),
        peer: None,
        part,
    };
    let mut url = client.url(&["v1", "jobs", &args.id, "exec"]);
    let tls = url.scheme() == "https";
    let _ = url.set_scheme(if tls { "wss" } else { "ws" });
    url.set_query(Some(&params.to_query()));
    // The exec token when exec has its own, else the API token.
    let token = ["FFARM_EXEC_TOKEN", "FFARM_TOKEN"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty());
    let forward_stdin = tty || args.command.is_empty() || args.stdin;
    let server = client.server().to_string();
    block_on(async move {
        let mut request = url.as_str().into_client_request()?;
        if let Some(t) = &token
            && let Ok(v) = format!("Bearer {t}").parse()
        {
            request.headers_mut().insert("authorization", v);
        }
        let connector = if tls { Some(tls_connector()?) } else { None };
        let connected =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await;
        let socket = match connected {
            Ok((socket, _)) => socket,
            Err(tungstenite::Error::Http(answer)) => {
                let body = answer.body().as_deref().unwrap_or_default();
                return Err(refused(answer.status().as_u16(), body, token.is_some()).into());
            }
            Err(e) => {
                return Err(Failure::new(
                    exit::FAILED,
                    format!(
                        "cannot reach the ffarm server at {server}: {e}; is `ffarm serve` \
                         running? (set --server or FFARM_SERVER)"
                    ),
                )
                .into());
            }
        };
        let raw = if tty { Some(RawMode::enable()?) } else { None };
        let result = run(socket, tty, forward_stdin).await;
        drop(raw);
        result
    })
}

/// TLS as the other client commands have it (reqwest's rustls: aws-lc-rs and the platform's
/// certificate verifier), given explicitly so no process-wide default is needed.
fn tls_connector() -> anyhow::Result<tokio_tungstenite::Connector> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
        config,
    )))
}

/// The failure for a refused upgrade: the server's message and the exit code its status
/// means.
fn refused(status: u16, body: &[u8], had_token: bool) -> Failure {
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status} {}", String::from_utf8_lossy(body).trim()));
    match status {
        401 if had_token => Failure::new(
            exit::FAILED,
            format!("the server refused the token in FFARM_EXEC_TOKEN / FFARM_TOKEN ({said})"),
        ),
        401 => Failure::new(
            exit::FAILED,
            "the server needs a token for exec: set FFARM_EXEC_TOKEN (or FFARM_TOKEN)",
        ),
        403 => Failure::new(exit::FAILED, format!("exec refused: {said}")),
        404 => Failure::new(exit::NOT_FOUND, said),
        409 => Failure::new(exit::CONFLICT, said),
        400 => Failure::new(exit::USAGE, said),
        _ => Failure::new(exit::FAILED, format!("server error ({status}): {said}")),
    }
}

/// The session, once connected: until the server closes it (after the exit code), or a
/// signal ends it here. Sending runs apart from receiving (a writer task owns the socket's
/// sending half), so output keeps coming while input waits for the remote side.
async fn run(
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    tty: bool,
    forward_stdin: bool,
) -> anyhow::Result<u8> {
    let (sink, mut stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<Message>(8);
    tokio::spawn(write_socket(sink, out_rx));
    if forward_stdin {
        read_stdin(out_tx.clone(), tty);
    } else {
        let _ = out_tx.send(text(&Control::Eof)).await;
    }
    if tty {
        let resizes = out_tx.clone();
        let mut winch = signal(SignalKind::window_change())?;
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                let (cols, rows) = window_size();
                if resizes
                    .send(text(&Control::Resize { cols, rows }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut code: Option<i32> = None;
    let mut error: Option<Failure> = None;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if let Err(e) = stdout.write_all(&b).and_then(|()| stdout.flush()) {
                        stop(&out_tx).await;
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(exit::FAILED);
                        }
                        return Err(Failure::new(exit::FAILED, format!("writing the output: {e}")).into());
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(&t) {
                    Ok(Control::Exit { code: c }) => code = Some(c),
                    Ok(Control::Notice { message }) => say(tty, &message),
                    Ok(Control::Stderr { data }) => {
                        let _ = std::io::stderr().write_all(data.as_bytes());
                    }
                    Ok(Control::Error { code: c, message }) => {
                        let exit = if c == "exec-unavailable" { exit::CONFLICT } else { exit::FAILED };
                        error = Some(Failure::new(exit, message));
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) => {
                    // Reading on sends the server the answer to its Close.
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
                    break;
                }
                None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if code.is_none() && error.is_none() {
                        error = Some(Failure::new(exit::FAILED, format!("the session's connection failed: {e}")));
                    }
                    break;
                }
            },
            _ = term.recv() => {
                stop(&out_tx).await;
                return Ok(exit::STOPPED);
            }
            _ = hup.recv() => {
                stop(&out_tx).await;
                return Ok(exit::STOPPED);
            }
        }
    }
    match (code, error) {
        (Some(c), _) => Ok(c.clamp(0, 255) as u8),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Err(Failure::new(
            exit::FAILED,
            "the server closed the session without an exit code",
        )
        .into()),
    }
}

/// The socket's only writer: input, resizes, end of input, and the Close.
async fn write_socket(
    mut sink: impl futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(m) = rx.recv().await {
        let closing = matches!(m, Message::Close(_));
        if sink.send(m).await.is_err() || closing {
            return;
        }
    }
}

/// Ends the session from this side (the server then ends the remote process).
async fn stop(out: &mpsc::Sender<Message>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), out.send(Message::Close(None))).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn text(c: &Control) -> Message {
    Message::text(c.to_json())
}

/// A notice from the server, on its own line (raw mode needs the carriage return).
fn say(tty: bool, message: &str) {
    let eol = if tty { "\r\n" } else { "\n" };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{eol}ffarm exec: {message}{eol}");
    let _ = err.flush();
}

/// Standard input, read on a thread of its own (a blocking read must not hold the runtime,
/// nor keep it from ending), sent as it comes; at its end, `eof` — but not on a terminal,
/// where Ctrl-D travels as a byte.
fn read_stdin(tx: mpsc::Sender<Message>, tty: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match stdin.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if tx
                        .blocking_send(Message::Binary(buf[..n].to_vec().into()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => {
                    if !tty {
                        let _ = tx.blocking_send(text(&Control::Eof));
                    }
                    return;
                }
            }
        }
    });
}

/// The size of the terminal on standard input (where raw mode is set), or 80×24.
fn window_size() -> (u16, u16) {
    match rustix::termios::tcgetwinsize(std::io::stdin()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (w.ws_col, w.ws_row),
        _ => (80, 24),
    }
}

/// `$USER@host`, for the job's history.
fn user() -> String {
    let name = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.is_empty())
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").map_or("unknown".into(), |m| format!("uid{}", m.uid()))
        });
    format!("{name}@{}", crate::config::hostname())
}

/// The local terminal in raw mode while the value lives: every byte, Ctrl-C and Ctrl-D
/// included, goes to the remote terminal. Dropping it — on return, error or panic —
/// restores the terminal.
struct RawMode;

impl RawMode {
    fn enable() -> anyhow::Result<RawMode> {
        crossterm::terminal::enable_raw_mode().map_err(|e| {
            Failure::new(
                exit::FAILED,
                format!("setting the terminal to raw mode: {e}"),
            )
        })?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_exit_codes() {
        let body = br#"{"error":{"code":"exec-disabled","message":"exec is disabled: set `[exec] enabled = true`"}}"#;
        let f = refused(403, body, true);
        assert_eq!(f.code, exit::FAILED);
        assert!(f.message.contains("[exec] enabled"), "{}", f.message);
        assert_eq!(refused(404, b"{}", true).code, exit::NOT_FOUND);
        assert_eq!(refused(409, b"{}", true).code, exit::CONFLICT);
        assert_eq!(refused(400, b"{}", true).code, exit::USAGE);
        assert!(
            refused(401, b"", false)
                .message
                .contains("FFARM_EXEC_TOKEN")
        );
        assert!(
            refused(401, b"", true)
                .message
                .contains("refused the token")
        );
        assert_eq!(refused(502, b"", true).code, exit::FAILED);
    }
}
