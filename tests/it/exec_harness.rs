//! What the exec tests share: a data dir with clips and a preset slow enough to keep a task
//! running, `ffarm serve` / `ffarm worker` processes, client commands with a clean
//! environment, the API over HTTP, raw exec websockets, and a pseudo-terminal to run
//! `ffarm exec` on as a person would.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{ffarm_bin, isolate, malformed_dir, tempdir, valid};

/// A data dir (`buckets/media/src/{long,clip,bad}.mp4`; bad is random bytes) and a presets
/// dir with `slow-test`.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempdir();
        let src = root.path().join("data/buckets/media/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::copy(valid("long_720p.mp4"), src.join("long.mp4")).unwrap();
        std::fs::copy(valid("h264_aac.mp4"), src.join("clip.mp4")).unwrap();
        std::fs::copy(malformed_dir().join("random.mp4"), src.join("bad.mp4")).unwrap();
        std::fs::create_dir_all(root.path().join("presets")).unwrap();
        std::fs::write(
            root.path().join("presets/slow-test.toml"),
            crate::helpers::SLOW_PRESET,
        )
        .unwrap();
        Dirs { root }
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// `ffarm --presets-dir … ARGS --data-dir …` with only the given FFARM_ variables.
    fn farm_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(ffarm_bin());
        cmd.arg("--presets-dir")
            .arg(self.root.path().join("presets"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .current_dir(self.root.path());
        isolate(&mut cmd, self.root.path());
        cmd.env("FFARM_LOG", "info")
            .env("FFARM_WORKER__POLL_SECONDS", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// A farm process (`serve` or `worker`), killed when dropped; its log is printed if the test
/// failed.
pub struct Proc {
    child: Child,
    log: PathBuf,
    /// `serve`: the API's URL.
    pub url: String,
}

impl Proc {
    /// `ffarm serve` on a free port with `workers` slots.
    pub fn serve(dirs: &Dirs, workers: u32, env: &[(&str, &str)]) -> Proc {
        let w = workers.to_string();
        let args = ["serve", "--listen", "127.0.0.1:0", "--workers", &w];
        let log = dirs
            .root
            .path()
            .join(format!("serve-{}.log", fastrand::u32(..)));
        let mut child = dirs
            .farm_command(&args, env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let url = crate::helpers::serve_url(&mut child);
        Proc { child, log, url }
    }

    /// `ffarm worker` with one slot, taking exec sessions on `advertise`.
    pub fn worker(dirs: &Dirs, advertise: &str, env: &[(&str, &str)]) -> Proc {
        let args = ["worker", "--workers", "1", "--advertise", advertise];
        let log = dirs.root.path().join("worker.log");
        let child = dirs
            .farm_command(&args, env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc {
            child,
            log,
            url: format!("http://{advertise}"),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- {} (last lines) ---", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A free port on 127.0.0.1 (free when asked; good enough for one test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ffarm ARGS` against `url` with exactly these FFARM_ variables.
pub fn ffarm(url: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(ffarm_bin());
    isolate(&mut cmd, &std::env::temp_dir());
    cmd.env("FFARM_SERVER", url).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Out {
        assert_eq!(self.code, Some(code), "{self:#?}");
        self
    }
}

/// Runs a command to its end (at most 30 s), feeding it `input` (none: /dev/null).
pub fn run(cmd: &mut Command, input: Option<&str>) -> Out {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(i) = input {
        // On a thread: the command's output is read meanwhile, however large both are.
        let (mut stdin, i) = (child.stdin.take().unwrap(), i.to_string());
        std::thread::spawn(move || stdin.write_all(i.as_bytes()));
    }
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status = wait_child(&mut child, Duration::from_secs(30));
    Out {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Waits for a child, killing it and failing the test after `limit`.
pub fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    wait_at_most(child, limit).unwrap_or_else(|| panic!("command did not end within {limit:?}"))
}

/// Waits for a child for at most `limit`; one still running then is killed (None).
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An API request: status and JSON body (Null when not JSON).
pub fn http(url: &str, token: Option<&str>) -> (u16, Value) {
    rt().block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Submits `src/long.mp4` with the slow preset as `id` and waits until it transcodes.
pub fn submit_slow(url: &str, token: &str, id: &str) {
    let env = [("FFARM_TOKEN", token)];
    let args = [
        "submit",
        "media/src/long.mp4",
        "-p",
        "slow-test",
        "--id",
        id,
    ];
    run(&mut ffarm(url, &env, &args), None).expect(0);
    let started = Instant::now();
    loop {
        let (_, job) = http(&format!("{url}/v1/jobs/{id}"), Some(token));
        if job["status"] == "running" && job["progress"]["phase"] == "transcoding" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "job {id} never transcoded: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job's `exec` history entries.
pub fn exec_events(url: &str, token: &str, id: &str) -> Vec<Value> {
    let (status, h) = http(&format!("{url}/v1/jobs/{id}/history"), Some(token));
    assert_eq!(status, 200, "{h}");
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "exec")
        .cloned()
        .collect()
}

/// `ffarm exec` on a pseudo-terminal, as a person runs it: the test types into the master
/// and reads what the client prints.
pub struct Terminal {
    pub master: std::fs::File,
    /// Kept to read the terminal's settings (what the client leaves behind).
    pub slave: OwnedFd,
    pub child: Child,
    /// The settings before the client started.
    pub cooked: (
        rustix::termios::InputModes,
        rustix::termios::OutputModes,
        rustix::termios::LocalModes,
    ),
    output: mpsc::Receiver<Vec<u8>>,
    pub seen: String,
}

impl Terminal {
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> Terminal {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None).unwrap();
        let t = rustix::termios::tcgetattr(&pty.slave).unwrap();
        let cooked = (t.input_modes, t.output_modes, t.local_modes);
        assert!(cooked.2.contains(rustix::termios::LocalModes::ICANON));
        let child = cmd
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
            .spawn()
            .unwrap();
        drop(cmd);
        let master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            master,
            slave: pty.slave,
            child,
            cooked,
            output,
            seen: String::new(),
        }
    }

    pub fn type_in(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Reads until the output holds `want` (returns what came up to there), or fails.
    #[track_caller]
    pub fn expect(&mut self, want: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.seen.find(want) {
                let upto: String = self.seen.drain(..i + want.len()).collect();
                return upto;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!(
                    "{want:?} not seen within {limit:?}; output: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Whether the output comes to hold `want` within `limit` (consumed up to there).
    pub fn seen_within(&mut self, want: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.seen.find(want) {
                self.seen.drain(..i + want.len());
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => return false,
            }
        }
    }

    /// Waits for the client to end, failing after `limit` with what the terminal showed.
    #[track_caller]
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = wait_at_most(&mut self.child, limit);
        while let Ok(b) = self.output.try_recv() {
            self.seen.push_str(&String::from_utf8_lossy(&b));
        }
        status.unwrap_or_else(|| {
            panic!(
                "the client did not end within {limit:?}; output: {:?}",
                self.seen
            )
        })
    }

    /// The local terminal's settings (input, output and local modes).
    pub fn modes(
        &self,
    ) -> (
        rustix::termios::InputModes,
        rustix::termios::OutputModes,
        rustix::termios::LocalModes,
    ) {
        let t = rustix::termios::tcgetattr(&self.slave).unwrap();
        (t.input_modes, t.output_modes, t.local_modes)
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        rustix::termios::tcsetwinsize(
            &self.master,
            rustix::termios::Winsize {
                ws_col: cols,
                ws_row: rows,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
    }

    /// Waits until the client switched the terminal to raw mode.
    pub fn wait_raw(&self) {
        let started = Instant::now();
        while self.modes().2.contains(rustix::termios::LocalModes::ICANON) {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the client never set raw mode"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The exec websocket URL of a job on an API server (`http://…`), with a query.
pub fn ws_url(url: &str, id: &str, query: &str) -> String {
    format!(
        "{}/v1/jobs/{id}/exec?{query}",
        url.replacen("http://", "ws://", 1)
    )
}

/// Opens an exec websocket with a bearer token; the refusal's status when refused.
pub async fn open_ws(
    url: &str,
    token: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("connecting {url}: {e}"),
    }
}
