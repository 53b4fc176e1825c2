//! The client commands (`submit`, `jobs`, `show`, `cancel`, `retry`, `logs`, `workers`,
//! `presets` with a server) as a user runs them: real `ffarm serve` and `ffarm` processes,
//! checked by exit code, stdout and stderr.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffarm::sandbox::{Level, Limits};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::helpers::{ffarm_bin, tempdir, valid};

const TOKEN: &str = "cli-client-test-token-0123456789";

/// A running `ffarm serve`, stopped when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Serves a fresh data dir holding `media/src/clip.mp4` (and `media/src/long.mp4`).
    pub(crate) fn start(workers: u32, token: Option<&str>) -> Server {
        let dir = tempdir();
        let src = dir.path().join("buckets/media/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::copy(valid("h264_aac.mp4"), src.join("clip.mp4")).unwrap();
        std::fs::copy(valid("long_720p.mp4"), src.join("long.mp4")).unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut cmd = Command::new(ffarm_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--drain-timeout", "1"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--workers", &workers.to_string()])
            .current_dir(dir.path())
            .env_remove("FFARM_SERVER")
            .env_remove("FFARM_TOKEN")
            .env("FFARM_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(t) = token {
            cmd.env("FFARM_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        let url = crate::helpers::serve_url(&mut child);
        Server { child, url, dir }
    }

    /// Its SQLite store's URL: a test may open the same store beside it.
    pub(crate) fn store_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("ffarm.db").display())
    }

    /// `ffarm ARGS` against this server (FFARM_SERVER set, no token unless given).
    pub(crate) fn run(&self, args: &[&str]) -> Out {
        run(client(Some(&self.url), None).args(args))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The first SIGTERM drains, the second stops the tasks at once.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        std::thread::sleep(Duration::from_millis(100));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client command with a clean environment.
fn client(server: Option<&str>, token: Option<&str>) -> Command {
    let mut cmd = Command::new(ffarm_bin());
    cmd.env_remove("FFARM_SERVER")
        .env_remove("FFARM_TOKEN")
        .env_remove("FFARM_LOG")
        .stdin(Stdio::null());
    if let Some(s) = server {
        cmd.env("FFARM_SERVER", s);
    }
    if let Some(t) = token {
        cmd.env("FFARM_TOKEN", t);
    }
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub(crate) struct Out {
    code: Option<i32>,
    pub(crate) stdout: String,
    stderr: String,
}

impl Out {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout {:?}, stderr {:?}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub(crate) fn expect(&self, code: i32) -> &Out {
        assert_eq!(self.code, Some(code), "{self:#?}");
        self
    }
}

/// Runs a command to its end (at most 60 s).
fn run(cmd: &mut Command) -> Out {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child)
}

fn wait(mut child: Child) -> Out {
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn job<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[test]
fn submit_wait_list_show_logs_and_the_error_exit_codes() {
    let s = Server::start(1, None);

    let out = s.run(&[
        "submit",
        "media/src/clip.mp4",
        "--preset",
        "h264-720p",
        "--id",
        "quick",
        "--wait",
    ]);
    out.expect(0);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("quick"), "{out:#?}");
    assert!(
        lines.next().unwrap().starts_with("media/out/clip.mp4  "),
        "{out:#?}"
    );
    assert!(out.stderr.contains("created job quick"), "{out:#?}");
    assert!(out.stderr.contains("quick: succeeded"), "{out:#?}");

    // The same id and request: the existing job; another request under that id: a conflict.
    let out = s.run(&[
        "submit",
        "media/src/clip.mp4",
        "-p",
        "h264-720p",
        "--id",
        "quick",
    ]);
    out.expect(0);
    assert_eq!(out.stdout, "quick\n");
    assert!(out.stderr.contains("already exists"), "{out:#?}");
    let out = s.run(&[
        "submit",
        "media/src/clip.mp4",
        "-p",
        "h264-480p",
        "--id",
        "quick",
    ]);
    assert!(out.expect(4).stderr.contains("different spec"), "{out:#?}");

    // Output prefix and priority reach the job; --json prints the finished job.
    let out = s.run(&[
        "submit",
        "media/src/clip.mp4",
        "-p",
        "h264-480p",
        "--id",
        "second",
        "--output-prefix",
        "renders",
        "--priority",
        "-5",
        "--wait",
        "--json",
    ]);
    let second = out.expect(0).json();
    assert_eq!(second["status"], "succeeded");
    assert_eq!(second["priority"], -5);
    assert_eq!(second["outputs"][0]["key"], "renders/clip.mp4");
    assert!(second["outputs"][0]["bytes"].as_u64().unwrap() > 0);

    let list = s.run(&["jobs", "--json"]).expect(0).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let quick = job(&list, "quick");
    assert_eq!(quick["status"], "succeeded");
    assert_eq!(quick["preset"], "h264-720p");
    assert_eq!(quick["input"]["key"], "src/clip.mp4");
    // One per page, and every page with --all.
    assert_eq!(
        s.run(&["jobs", "--limit", "1", "--json"])
            .expect(0)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let all = s
        .run(&["jobs", "--all", "--limit", "1", "--json"])
        .expect(0)
        .json();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(
        s.run(&["jobs", "--status", "failed,cancelled", "--json"])
            .expect(0)
            .json(),
        Value::Array(vec![])
    );
    assert!(
        s.run(&["jobs", "--status", "done"])
            .expect(2)
            .stderr
            .contains("unknown status 'done'")
    );
    assert!(
        s.run(&["jobs", "--since", "yesterday"])
            .expect(2)
            .stderr
            .contains("since")
    );
    let table = s.run(&["jobs"]).expect(0).stdout.clone();
    let header = table.lines().next().unwrap();
    for col in [
        "ID",
        "STATUS",
        "PRESET",
        "INPUT",
        "PROGRESS",
        "ATTEMPT",
        "CREATED",
        "DURATION/AGE",
    ] {
        assert!(header.contains(col), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("quick ")).unwrap();
    for cell in ["succeeded", "h264-720p", "media/src/clip.mp4", "1/3"] {
        assert!(row.contains(cell), "{row}");
    }

    let shown = s.run(&["show", "quick", "--json"]).expect(0).json();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["outputs"][0]["key"], "out/clip.mp4");
    assert_eq!(shown["attempt"], 1);
    let text = s.run(&["show", "quick"]).expect(0).stdout.clone();
    for want in [
        "status    succeeded",
        "outputs   media/out/clip.mp4  (",
        "attempt   1/3",
        "trigger   api",
        "queued -> running",
        "running -> succeeded",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    let logs = s.run(&["logs", "quick"]).expect(0).stdout.clone();
    assert!(
        logs.contains("[engine] transcoding with preset h264-720p\n"),
        "{logs}"
    );
    assert!(
        logs.contains("[task] uploaded media/out/clip.mp4"),
        "{logs}"
    );
    assert!(!logs.contains("[attempt"), "{logs}");
    assert_eq!(s.run(&["logs", "-f", "quick"]).expect(0).stdout, logs);
    assert_eq!(
        s.run(&["logs", "quick", "--attempt", "2"]).expect(0).stdout,
        ""
    );

    // A succeeded job can be neither retried nor cancelled.
    assert!(
        s.run(&["retry", "quick"])
            .expect(4)
            .stderr
            .contains("cannot be retried")
    );
    assert!(
        s.run(&["cancel", "quick"])
            .expect(4)
            .stderr
            .contains("cannot be cancelled")
    );

    let out = s.run(&["show", "nope"]);
    assert_eq!(out.expect(3).stderr, "error: job 'nope' not found\n");
    s.run(&["logs", "nope"]).expect(3);
    s.run(&["cancel", "nope"]).expect(3);
    let out = s.run(&["submit", "media/nothing.mp4", "--preset", "h264-720p"]);
    assert!(
        out.expect(3).stderr.contains("media/nothing.mp4"),
        "{out:#?}"
    );
    assert!(out.stdout.is_empty());
    let out = s.run(&["submit", "media/src/clip.mp4", "--preset", "h264-9000p"]);
    assert!(
        out.expect(2).stderr.contains("unknown preset 'h264-9000p'"),
        "{out:#?}"
    );
    let out = s.run(&["submit", "clip.mp4", "--preset", "h264-720p"]);
    assert!(
        out.expect(2).stderr.contains("expected BUCKET/KEY"),
        "{out:#?}"
    );

    let workers = s.run(&["workers", "--json"]).expect(0).json();
    let workers = workers.as_array().unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0]["slots"], 1);
    assert_eq!(workers[0]["state"], "active");
    assert_eq!(workers[0]["busy"], 0);
    let table = s.run(&["workers"]).expect(0).stdout.clone();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("LAST SEEN") && table.contains("active"),
        "{table}"
    );
    workers_show_their_sandbox(&s);

    // With a server named, presets are the server's.
    let presets = s.run(&["presets", "--json"]).expect(0).json();
    assert!(
        presets
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "h264-720p")
    );
    let listing = s.run(&["presets"]).expect(0).stdout.clone();
    assert!(
        listing.lines().any(|l| l.starts_with("h264-720p ")),
        "{listing}"
    );
}

/// The SANDBOX column says what holds for each worker ("off" when turned off, "-" when not
/// reported); `--json` has the whole level. Workers registered beside the server's own.
fn workers_show_their_sandbox(s: &Server) {
    let full = Level {
        enabled: true,
        landlock_abi: Some(6),
        seccomp: true,
        network_namespace: true,
        limits: Some(Limits::default()),
        missing: vec![],
    };
    let partial = Level {
        landlock_abi: None,
        network_namespace: false,
        limits: Some(Limits {
            memory_bytes: 1536 << 20,
            ..Limits::default()
        }),
        missing: vec![
            "network namespace: Operation not permitted (EPERM)".into(),
            "landlock: not supported by this kernel".into(),
        ],
        ..full.clone()
    };
    let registered = [
        ("sbx/full", Some(full)),
        ("sbx/none", None),
        ("sbx/off", Some(Level::default())),
        ("sbx/partial", Some(partial)),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = ffarm::store::open(&s.store_url()).await.unwrap();
        for (id, sandbox) in &registered {
            let now = ffarm::job::Timestamp::now();
            let worker = ffarm::store::WorkerInfo {
                id: id.to_string(),
                host: "sbx".into(),
                address: None,
                slots: 1,
                version: "0.0.0".into(),
                started_at: now,
                last_seen: now,
                draining: false,
                running: vec![],
                sandbox: sandbox.clone(),
            };
            store.register_worker(&worker).await.unwrap();
        }
    });

    let table = s.run(&["workers"]).expect(0).stdout.clone();
    let header = table.lines().next().unwrap_or_default();
    assert!(header.ends_with("  SANDBOX"), "{table}");
    for (id, shown) in [
        ("sbx/full", "landlock 6, seccomp, netns, 4 GiB"),
        ("sbx/none", "-"),
        ("sbx/off", "off"),
        ("sbx/partial", "seccomp, 1.5 GiB"),
    ] {
        let line = table.lines().find(|l| l.starts_with(&format!("{id} ")));
        assert!(
            line.is_some_and(|l| l.ends_with(&format!("  {shown}"))),
            "{id}'s sandbox should read '{shown}':\n{table}"
        );
    }

    let listed = s.run(&["workers", "--json"]).expect(0).json();
    for (id, sandbox) in &registered {
        let worker = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == *id)
            .unwrap_or_else(|| panic!("{id} not in {listed}"));
        let level: Option<Level> = serde_json::from_value(worker["sandbox"].clone()).unwrap();
        assert_eq!(&level, sandbox, "{id}");
    }
}

/// Waits until `ffarm show ID --json` says the job exists and is transcoding.
fn wait_until_transcoding(s: &Server, id: &str) {
    let started = Instant::now();
    loop {
        // Not found (exit 3) until the submit gets there.
        let out = s.run(&["show", id, "--json"]);
        if out.code == Some(0) {
            let j = out.json();
            if j["status"] == "running" && j["progress"]["phase"] == "transcoding" {
                return;
            }
        } else {
            out.expect(3);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never ran: {out:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(s: &Server, args: &[&str]) -> Child {
    client(Some(&s.url), None)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn interrupt_cancel_and_retry_a_running_job() {
    let s = Server::start(1, None);
    let submit = [
        "submit",
        "media/src/long.mp4",
        "-p",
        "h264-720p",
        "--id",
        "long",
        "--wait",
    ];

    // Ctrl-C stops the waiting, not the job.
    let waiter = spawn(&s, &submit);
    wait_until_transcoding(&s, "long");
    kill(Pid::from_raw(waiter.id() as i32), Signal::SIGINT).unwrap();
    let out = wait(waiter);
    assert!(
        out.expect(130).stderr.contains("job long keeps running"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("`ffarm logs -f long`"), "{out:#?}");
    assert_eq!(
        s.run(&["show", "long", "--json"]).json()["status"],
        "running"
    );

    // Two followers see the cancel: a second `submit --wait` of the same job and `logs -f`.
    let waiter = spawn(&s, &submit);
    let follower = spawn(&s, &["logs", "-f", "long"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = s.run(&["cancel", "long", "--reason", "from the test"]);
    assert_eq!(out.expect(0).stdout, "long cancelling\n");
    let out = wait(waiter);
    assert!(
        out.expect(5)
            .stderr
            .contains("error: job long was cancelled"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("already exists"), "{out:#?}");
    let out = wait(follower);
    out.expect(5);
    assert!(
        out.stdout
            .contains("[engine] transcoding with preset h264-720p"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("cancel requested"), "{out:#?}");

    let shown = s.run(&["show", "long", "--json"]).json();
    assert_eq!(shown["status"], "cancelled");
    assert!(
        s.run(&["show", "long"])
            .expect(0)
            .stdout
            .contains("from the test")
    );

    // A cancelled job can be retried, and cancelled again.
    assert_eq!(s.run(&["retry", "long"]).expect(0).stdout, "long queued\n");
    s.run(&["retry", "long"]).expect(4);
    let out = s.run(&["cancel", "long"]);
    assert!(out.expect(0).stdout.starts_with("long cancel"), "{out:#?}");
}

#[test]
fn tokens_and_unreachable_servers() {
    let s = Server::start(0, Some(TOKEN));
    let out = run(client(Some(&s.url), None).args(["jobs"]));
    assert!(out.expect(1).stderr.contains("FFARM_TOKEN"), "{out:#?}");
    let out = run(client(Some(&s.url), Some("not-the-right-token-at-all")).args(["jobs"]));
    assert!(
        out.expect(1)
            .stderr
            .contains("refused the token in FFARM_TOKEN"),
        "{out:#?}"
    );
    let out = run(client(Some(&s.url), Some(TOKEN)).args(["jobs", "--json"]));
    assert_eq!(out.expect(0).json(), Value::Array(vec![]));
    let out = run(client(Some(&s.url), Some(TOKEN)).args(["workers", "--json"]));
    assert_eq!(out.expect(0).json(), Value::Array(vec![]));
    // --server beats FFARM_SERVER.
    let out =
        run(client(Some("http://127.0.0.1:1"), Some(TOKEN)).args(["jobs", "--server", &s.url]));
    out.expect(0);

    let out = run(client(None, None).args(["show", "x", "--server", "http://127.0.0.1:1"]));
    out.expect(1);
    assert!(
        out.stderr
            .starts_with("error: cannot reach the ffarm server at http://127.0.0.1:1: ")
            && out
                .stderr
                .contains("is `ffarm serve` running? (set --server or FFARM_SERVER)"),
        "{out:#?}"
    );
    let out = run(client(Some("not a url"), None).args(["jobs"]));
    assert!(
        out.expect(2).stderr.contains("--server not a url"),
        "{out:#?}"
    );
    // Without a server, presets are the shipped ones.
    let out = run(client(None, None)
        .args(["presets"])
        .current_dir(Path::new("/")));
    assert!(
        out.expect(0)
            .stdout
            .lines()
            .any(|l| l.starts_with("h264-720p "))
    );
}

/// A job whose output another input wrote fails with output-conflict, naming that job and
/// its input, and leaves the output alone; `--overwrite` replaces it.
#[test]
fn submit_leaves_another_inputs_output_alone_unless_told_to_overwrite() {
    let s = Server::start(1, None);
    let other = s.dir.path().join("buckets/media/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(valid("video_only.mp4"), other.join("clip.mp4")).unwrap();
    let submit = |input: &str, id: &str, more: &[&str]| {
        let mut args = vec!["submit", input, "-p", "h264-720p", "--id", id, "--wait"];
        args.extend_from_slice(more);
        s.run(&args)
    };
    submit("media/src/clip.mp4", "first", &[]).expect(0);
    let output = s.dir.path().join("buckets/media/out/clip.mp4");
    let written = std::fs::read(&output).unwrap();

    let out = submit("media/other/clip.mp4", "second", &[]);
    let stderr = &out.expect(1).stderr;
    for want in [
        "[output-conflict]",
        "out/clip.mp4",
        "job 'first'",
        "media/src/clip.mp4",
    ] {
        assert!(stderr.contains(want), "{want:?} in {out:#?}");
    }
    let text = s.run(&["show", "second"]).expect(0).stdout.clone();
    assert!(text.contains("output-conflict"), "{text}");
    assert_eq!(std::fs::read(&output).unwrap(), written, "left alone");

    let replaced = submit("media/other/clip.mp4", "third", &["--overwrite", "--json"]);
    let third = replaced.expect(0).json();
    assert_eq!(third["overwrite"], true);
    assert_eq!(third["outputs"][0]["key"], "out/clip.mp4");
}

/// `--chunking` sends how the job may split; the job shows what was decided.
#[test]
fn submit_says_whether_the_job_may_split() {
    let s = Server::start(0, None);
    let submit = |id: &str, preset: &str, chunking: &[&str]| {
        let mut args = vec!["submit", "media/src/clip.mp4", "-p", preset, "--id", id];
        args.extend_from_slice(chunking);
        s.run(&args)
    };
    for (id, flag, shown) in [
        ("plain", None, "\"auto\""),
        ("off", Some("off"), "\"off\""),
        ("parts", Some("30"), "{\"segment_seconds\":30}"),
        ("parts-s", Some("45s"), "{\"segment_seconds\":45}"),
    ] {
        let mut args = vec!["--json"];
        args.extend(flag.map(|f| ["--chunking", f]).into_iter().flatten());
        let job = submit(id, "h264-720p", &args).expect(0).json();
        assert_eq!(job["chunking"].to_string(), shown, "{id}");
    }
    let text = s.run(&["show", "parts"]).expect(0).stdout.clone();
    assert!(text.contains("chunking") && text.contains("30s"), "{text}");
    let out = submit("short", "h264-720p", &["--chunking", "1"]);
    let stderr = &out.expect(2).stderr;
    assert!(stderr.contains("at least 2, not 1"), "{out:#?}");
    let out = submit("copy", "remux-mkv", &["--chunking", "30"]);
    let stderr = &out.expect(2).stderr;
    assert!(stderr.contains("cannot be split"), "{out:#?}");
    // Several presets (repeated or comma-separated): one job that runs whole.
    let args = ["-p", "poster-jpg", "--json"];
    let job = submit("set", "h264-720p,mp4", &args).expect(0).json();
    assert_eq!(
        job["presets"],
        serde_json::json!(["h264-720p", "mp4", "poster-jpg"])
    );
    assert_eq!(job["chunking"], "off");
    let out = submit("set-parts", "h264-720p,mp4", &["--chunking", "30"]);
    assert!(out.expect(2).stderr.contains("runs whole"), "{out:#?}");
    // A clip: sent, shown, and it runs whole too.
    let args = ["--start", "0.5", "--end", "1.25", "--json"];
    let job = submit("cut", "h264-720p", &args).expect(0).json();
    assert_eq!(job["clip"], serde_json::json!({"start": 0.5, "end": 1.25}));
    assert_eq!(job["chunking"], "off");
    let text = s.run(&["show", "cut"]).expect(0).stdout.clone();
    assert!(text.contains("clip      0.5 s to 1.25 s"), "{text}");
    let out = submit("cut-copy", "remux-mkv", &["--end", "1"]);
    assert!(
        out.expect(2).stderr.contains("copies the input's"),
        "{out:#?}"
    );
}
