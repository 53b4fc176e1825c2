//! `ffarm exec` as people and scripts use it: real `ffarm serve` / `ffarm worker` processes,
//! a task kept running by a slow preset, commands with their output and exit codes, an
//! interactive shell on a real pseudo-terminal (typing, resizing, Ctrl-C, the terminal
//! restored), sessions through the API into a worker process, the idle timeout, the end of
//! the task, a failed job's kept workspace until it is removed, every refusal, and the job's
//! history.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::exec_harness::{
    Dirs, Proc, Terminal, exec_events, ffarm, free_port, http, open_ws, rt, run, submit_slow,
    ws_url,
};

const TOKEN: &str = "exec-test-api-token-0123456789";
const EXEC_TOKEN: &str = "exec-test-exec-token-0123456789";
const SECOND: Duration = Duration::from_secs(1);

fn exec_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [&["exec"], args].concat()
}

#[test]
fn exec_runs_commands_in_the_running_task_and_refuses_what_it_must() {
    let dirs = Dirs::new();
    let s = Proc::serve(
        &dirs,
        1,
        &[("FFARM_TOKEN", TOKEN), ("FFARM_EXEC__ENABLED", "true")],
    );
    let env = [("FFARM_TOKEN", TOKEN)];
    let exec =
        |args: &[&str], input: Option<&str>| run(&mut ffarm(&s.url, &env, &exec_args(args)), input);
    let submit = ["submit", "media/src/clip.mp4", "-p", "h264-480p", "--id"];
    run(
        &mut ffarm(&s.url, &env, &[&submit[..], &["done", "--wait"]].concat()),
        None,
    )
    .expect(0);
    let bad = [
        "submit",
        "media/src/bad.mp4",
        "-p",
        "h264-480p",
        "--id",
        "failed",
        "--wait",
    ];
    run(&mut ffarm(&s.url, &env, &bad), None).expect(1);
    submit_slow(&s.url, TOKEN, "slow");
    // The only slot is busy: this one waits.
    run(
        &mut ffarm(&s.url, &env, &[&submit[..], &["waiting"]].concat()),
        None,
    )
    .expect(0);

    let out = exec(&["slow", "--", "sh", "-c", "ls input; exit 3"], None);
    assert_eq!(out.expect(3).stdout, "long.mp4\n", "{out:#?}");
    let out = exec(&["slow", "--", "printenv", "FFARM_JOB_ID"], None);
    assert_eq!(out.expect(0).stdout, "slow\n");
    // In the task's workspace with its environment; standard error apart from the output.
    let script = r#"pwd; echo "$FFARM_INPUT"; test -s "$FFARM_INPUT" && echo "$FFARM_PRESET"; echo to-stderr >&2"#;
    let out = exec(&["slow", "--", "sh", "-c", script], None);
    let lines: Vec<&str> = out.expect(0).stdout.lines().collect();
    assert!(lines[0].ends_with("/workspaces/slow-a1"), "{out:#?}");
    assert_eq!(lines[1], format!("{}/input/long.mp4", lines[0]));
    assert_eq!(lines[2], "slow-test");
    assert_eq!(out.stderr, "to-stderr\n");
    // `-i` passes standard input byte for byte (no terminal: no \r added); without it the
    // command's input is closed at once.
    let out = exec(&["-i", "slow", "--", "cat"], Some("line one\nline two\n"));
    assert_eq!(out.expect(0).stdout, "line one\nline two\n");
    assert_eq!(
        exec(&["slow", "--", "cat"], Some("unread\n"))
            .expect(0)
            .stdout,
        ""
    );
    // No command and no terminal: the shell reads its script from standard input.
    let out = exec(&["slow"], Some("echo piped-$((1+1))\nexit 5\n"));
    assert_eq!(out.expect(5).stdout, "piped-2\n");

    // A failed attempt's workspace, kept for inspection, can be entered too.
    let out = exec(
        &["failed", "--", "sh", "-c", "ls input; echo $FFARM_JOB_ID"],
        None,
    );
    assert_eq!(out.expect(0).stdout, "bad.mp4\nfailed\n", "{out:#?}");

    // Refused: no token, a wrong one, no such job, no task to exec into, not a websocket.
    let no_token = run(
        &mut ffarm(&s.url, &[], &exec_args(&["slow", "--", "true"])),
        None,
    );
    assert!(
        no_token.expect(1).stderr.contains("FFARM_EXEC_TOKEN"),
        "{no_token:#?}"
    );
    let wrong = [("FFARM_TOKEN", "not-the-token-at-all")];
    let out = run(
        &mut ffarm(&s.url, &wrong, &exec_args(&["slow", "--", "true"])),
        None,
    );
    assert!(
        out.expect(1).stderr.contains("refused the token"),
        "{out:#?}"
    );
    let exec_url = format!("{}/v1/jobs/slow/exec", s.url);
    let (status, body) = http(&exec_url, None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    let (status, body) = http(&exec_url, Some(TOKEN));
    assert_eq!(
        (status, &body["error"]["code"]),
        (426, &json!("websocket-required"))
    );
    let out = exec(&["nope", "--", "true"], None);
    assert_eq!(out.expect(3).stderr, "error: job 'nope' not found\n");
    let out = exec(&["done", "--", "true"], None);
    assert!(
        out.expect(4).stderr.contains("it has succeeded"),
        "{out:#?}"
    );
    let out = exec(&["waiting", "--", "true"], None);
    assert!(out.expect(4).stderr.contains("it is queued"), "{out:#?}");

    // Two sessions at once into one job (the default cap); a third waits for room.
    let sleeper = ws_url(&s.url, "slow", "command=sleep&command=60&user=capped");
    rt().block_on(async {
        let first = open_ws(&sleeper, TOKEN).await.unwrap();
        let _second = open_ws(&sleeper, TOKEN).await.unwrap();
        assert_eq!(open_ws(&sleeper, TOKEN).await.err(), Some(409));
        let out = exec(&["slow", "--", "true"], None);
        assert!(
            out.expect(4).stderr.contains("already has 2 exec session"),
            "{out:#?}"
        );
        drop(first);
        let started = Instant::now();
        while exec(&["slow", "--", "true"], None).code != Some(0) {
            assert!(
                started.elapsed() < 10 * SECOND,
                "no room after a session closed"
            );
            tokio::time::sleep(SECOND / 5).await;
        }
    });

    // Every session is in the job's history: who, what, how it ended, how long it took.
    let events = exec_events(&s.url, TOKEN, "slow");
    let ended: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail"]["ended"].is_string())
        .collect();
    let started = events.len() - ended.len();
    assert!(started >= ended.len() && ended.len() >= 9, "{events:#?}");
    let ls = ended
        .iter()
        .find(|e| e["detail"]["command"] == json!(["sh", "-c", "ls input; exit 3"]))
        .unwrap();
    let d = &ls["detail"];
    assert_eq!(d["exit_code"], 3);
    assert_eq!(d["ended"], "exited");
    assert!(d["duration_seconds"].as_f64().unwrap() >= 0.0, "{d}");
    assert!(d["started_at"].is_string(), "{d}");
    let who = d["who"].as_str().unwrap();
    assert!(
        who.contains('@') && who.contains(" from 127.0.0.1:"),
        "{who}"
    );
    assert!(!d["worker"].as_str().unwrap().is_empty());
    let piped = ended
        .iter()
        .find(|e| e["detail"]["command"] == "interactive")
        .unwrap();
    assert_eq!(piped["detail"]["exit_code"], 5);
    let capped = ended
        .iter()
        .find(|e| e["detail"]["user"] == "capped")
        .unwrap();
    assert_eq!(capped["detail"]["ended"], "disconnected");

    run(&mut ffarm(&s.url, &env, &["cancel", "slow"]), None).expect(0);
}

/// The shell prompt the terminal test sets, as typed and as the shell shows it.
const PROMPT_TYPED: &str = "prompt-$((6*7))> ";
const PROMPT: &str = "prompt-42> ";

#[test]
fn exec_opens_an_interactive_shell_on_a_terminal() {
    let dirs = Dirs::new();
    let s = Proc::serve(
        &dirs,
        1,
        &[
            ("FFARM_TOKEN", TOKEN),
            ("FFARM_EXEC__ENABLED", "true"),
            ("FFARM_EXEC__TOKEN", EXEC_TOKEN),
        ],
    );
    submit_slow(&s.url, TOKEN, "shell");
    // Exec has its own token here: the API's does not open shells.
    let api_only = [("FFARM_TOKEN", TOKEN)];
    let out = run(
        &mut ffarm(&s.url, &api_only, &exec_args(&["shell", "--", "true"])),
        None,
    );
    assert!(
        out.expect(1).stderr.contains("exec takes its own token"),
        "{out:#?}"
    );
    let (status, body) = http(&format!("{}/v1/jobs/shell/exec", s.url), Some(TOKEN));
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("exec-token-required"))
    );

    let env = [("FFARM_TOKEN", TOKEN), ("FFARM_EXEC_TOKEN", EXEC_TOKEN)];
    let mut t = Terminal::spawn(ffarm(&s.url, &env, &["exec", "shell"]), 80, 24);
    t.wait_raw();
    // A prompt the test tells apart from its own typing (the shell echoes what is typed).
    t.type_in(&format!("PS1='{PROMPT_TYPED}'\n"));
    t.expect(PROMPT, 15 * SECOND);
    t.type_in("echo hi-$((40+2))\n");
    t.expect("hi-42", 15 * SECOND);
    t.type_in("stty size\n");
    t.expect("24 80", 10 * SECOND);
    // A resize reaches the remote terminal.
    t.resize(132, 50);
    kill(Pid::from_raw(t.child.id() as i32), Signal::SIGWINCH).unwrap();
    let started = Instant::now();
    loop {
        t.type_in("stty size\n");
        if t.seen_within("50 132", SECOND / 2) {
            break;
        }
        assert!(started.elapsed() < 10 * SECOND, "no resize: {:?}", t.seen);
    }
    // Ctrl-C interrupts the remote command, not the client.
    t.type_in("sleep 30\n");
    std::thread::sleep(SECOND / 2);
    t.type_in("\x03");
    t.type_in("echo after-$((6*7))\n");
    t.expect("after-42", 10 * SECOND);
    // Ctrl-D at the prompt reaches the remote shell, which ends as on a local terminal. At
    // the prompt, as a user types it: sent while the shell still runs a command, the terminal
    // keeps it for readline as a NUL, as it would on a local terminal.
    t.expect(PROMPT, 10 * SECOND);
    t.type_in("\x04");
    let status = t.wait(15 * SECOND);
    assert_eq!(status.code(), Some(0), "{:?}", t.seen);
    assert_eq!(t.modes(), t.cooked, "the client restores the terminal");

    // A session ends, with a notice, when its task does.
    let mut t = Terminal::spawn(ffarm(&s.url, &env, &["exec", "shell"]), 80, 24);
    t.wait_raw();
    t.type_in("echo ready-$((1+1))\n");
    t.expect("ready-2", 15 * SECOND);
    run(&mut ffarm(&s.url, &api_only, &["cancel", "shell"]), None).expect(0);
    t.expect("the task ended", 30 * SECOND);
    let status = t.wait(15 * SECOND);
    assert!(!status.success(), "{status}");
    assert_eq!(t.modes(), t.cooked, "the client restores the terminal");

    let events = exec_events(&s.url, TOKEN, "shell");
    let ended: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail"]["ended"].is_string())
        .collect();
    assert_eq!(ended.len(), 2, "{events:#?}");
    assert_eq!(ended[0]["detail"]["command"], "interactive");
    assert_eq!(ended[0]["detail"]["tty"], true);
    assert_eq!(ended[0]["detail"]["exit_code"], 0);
    assert_eq!(ended[1]["detail"]["ended"], "task-ended");
}

#[test]
fn exec_reaches_a_task_on_a_worker_process_through_the_api() {
    let dirs = Dirs::new();
    let farm_env = [("FFARM_TOKEN", TOKEN), ("FFARM_EXEC__ENABLED", "true")];
    let s = Proc::serve(&dirs, 0, &farm_env);
    let advertise = format!("127.0.0.1:{}", free_port());
    let w = Proc::worker(
        &dirs,
        &advertise,
        &[&farm_env[..], &[("FFARM_EXEC__IDLE_TIMEOUT_SECONDS", "2")]].concat(),
    );
    submit_slow(&s.url, TOKEN, "remote");
    let (_, job) = http(&format!("{}/v1/jobs/remote", s.url), Some(TOKEN));
    let env = [("FFARM_TOKEN", TOKEN)];
    let exec = |args: &[&str]| run(&mut ffarm(&s.url, &env, &exec_args(args)), None);

    let out = exec(&["remote", "--", "printenv", "FFARM_JOB_ID"]);
    assert_eq!(out.expect(0).stdout, "remote\n", "{out:#?}");
    exec(&["remote", "--", "sh", "-c", "exit 7"]).expect(7);
    // Megabytes both ways at once, through the bridge, byte for byte.
    let big: String = (0..300_000).map(|i| format!("line {i}\n")).collect();
    let out = run(
        &mut ffarm(&s.url, &env, &exec_args(&["-i", "remote", "--", "cat"])),
        Some(&big),
    );
    assert!(
        out.expect(0).stdout == big,
        "{} of {} bytes came back",
        out.stdout.len(),
        big.len()
    );
    let events = exec_events(&s.url, TOKEN, "remote");
    let ended = events
        .iter()
        .find(|e| e["detail"]["exit_code"] == 7)
        .unwrap();
    assert_eq!(
        ended["detail"]["worker"], job["worker"],
        "run by the worker"
    );
    let who = ended["detail"]["who"].as_str().unwrap();
    assert!(
        who.contains(" from 127.0.0.1:"),
        "the client as the API saw it: {who}"
    );

    // The worker's listener serves exec only, and only with the token.
    let (status, _) = http(&format!("{}/v1/exec/remote/1", w.url), None);
    assert_eq!(status, 401);
    let (status, _) = http(
        &format!("{}/v1/exec/remote/1", w.url),
        Some("not-the-token-at-all"),
    );
    assert_eq!(status, 401);
    let (status, _) = http(&format!("{}/v1/jobs", w.url), None);
    assert_eq!(status, 401);
    let (status, body) = http(&format!("{}/v1/jobs", w.url), Some(TOKEN));
    assert_eq!((status, &body["error"]["code"]), (404, &json!("no-route")));
    let (status, _) = http(&format!("{}/v1/exec/remote/1", w.url), Some(TOKEN));
    assert_eq!(status, 426);

    // A session with neither input nor output is closed after the idle limit, with a notice.
    rt().block_on(async {
        let mut ws = open_ws(&ws_url(&s.url, "remote", "tty=true"), TOKEN)
            .await
            .unwrap();
        let opened = Instant::now();
        let (mut notice, mut exit, mut output) = (String::new(), None, 0);
        while let Ok(Some(Ok(m))) = tokio::time::timeout(15 * SECOND, ws.next()).await {
            match m {
                Message::Binary(b) => output += b.len(),
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("notice") => notice = v["message"].as_str().unwrap().to_string(),
                        Some("exit") => exit = v["code"].as_i64(),
                        _ => {}
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        assert!(output > 0, "the shell's prompt came through the bridge");
        assert!(notice.contains("no input or output for 2 s"), "{notice:?}");
        assert!(exit.is_some());
        let took = opened.elapsed();
        assert!(took >= 2 * SECOND && took < 12 * SECOND, "{took:?}");
    });
    let events = exec_events(&s.url, TOKEN, "remote");
    assert!(
        events.iter().any(|e| e["detail"]["ended"] == "idle"),
        "{events:#?}"
    );
    run(&mut ffarm(&s.url, &env, &["cancel", "remote"]), None).expect(0);
}

#[test]
fn exec_is_off_unless_enabled_and_always_needs_a_token() {
    let dirs = Dirs::new();
    let off = Proc::serve(&dirs, 0, &[("FFARM_TOKEN", TOKEN)]);
    let out = run(
        &mut ffarm(
            &off.url,
            &[("FFARM_TOKEN", TOKEN)],
            &exec_args(&["any", "--", "true"]),
        ),
        None,
    );
    assert!(
        out.expect(1).stderr.contains("[exec] enabled = true"),
        "{out:#?}"
    );
    let (status, body) = http(&format!("{}/v1/jobs/any/exec", off.url), None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("exec-disabled"))
    );
    drop(off);

    // On loopback the API needs no token; exec still does.
    let open = Proc::serve(&dirs, 0, &[("FFARM_EXEC__ENABLED", "true")]);
    assert_eq!(http(&format!("{}/v1/jobs", open.url), None).0, 200);
    let (status, body) = http(&format!("{}/v1/jobs/any/exec", open.url), None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("exec-needs-token"))
    );
    let out = run(
        &mut ffarm(&open.url, &[], &exec_args(&["any", "--", "true"])),
        None,
    );
    assert!(out.expect(1).stderr.contains("needs a token"), "{out:#?}");
}

#[test]
fn exec_into_a_failed_job_on_a_worker_process_while_its_workspace_is_kept() {
    let dirs = Dirs::new();
    let farm_env = [("FFARM_TOKEN", TOKEN), ("FFARM_EXEC__ENABLED", "true")];
    let s = Proc::serve(&dirs, 0, &farm_env);
    let advertise = format!("127.0.0.1:{}", free_port());
    let keep = [("FFARM_WORKER__KEEP_FAILED_WORKSPACE_SECONDS", "5")];
    let _w = Proc::worker(&dirs, &advertise, &[&farm_env[..], &keep[..]].concat());
    let env = [("FFARM_TOKEN", TOKEN)];
    let exec = |args: &[&str]| run(&mut ffarm(&s.url, &env, &exec_args(args)), None);
    let bad = [
        "submit",
        "media/src/bad.mp4",
        "-p",
        "h264-480p",
        "--id",
        "broken",
        "--wait",
    ];
    run(&mut ffarm(&s.url, &env, &bad), None).expect(1);
    let failed = Instant::now();

    // Through the API server, into the worker process that kept the failed attempt's files.
    let out = exec(&["broken", "--", "sh", "-c", "ls input; echo $FFARM_JOB_ID"]);
    assert_eq!(out.expect(0).stdout, "bad.mp4\nbroken\n", "{out:#?}");
    // A session open when the workspace is removed is closed then, with a notice.
    let out = exec(&["broken", "--", "sleep", "60"]);
    let took = failed.elapsed();
    assert!(out.stderr.contains("the workspace was removed"), "{out:#?}");
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(took < 20 * SECOND, "closed after {took:?}");
    // And from then on there is nothing to enter.
    let out = exec(&["broken", "--", "true"]);
    assert!(
        out.expect(4)
            .stderr
            .contains("the workspace of its last attempt was removed"),
        "{out:#?}"
    );
    let events = exec_events(&s.url, TOKEN, "broken");
    assert!(
        events
            .iter()
            .any(|e| e["detail"]["ended"] == "workspace-removed"),
        "{events:#?}"
    );
}

#[test]
fn exec_enters_a_running_part_of_a_split_job() {
    let dirs = Dirs::new();
    let s = Proc::serve(
        &dirs,
        2,
        &[("FFARM_TOKEN", TOKEN), ("FFARM_EXEC__ENABLED", "true")],
    );
    let env = [("FFARM_TOKEN", TOKEN)];
    let exec =
        |args: &[&str], input: Option<&str>| run(&mut ffarm(&s.url, &env, &exec_args(args)), input);
    // The 40-second clip in parts of 10 s at the slowest settings: two parts run at once.
    let submit = [
        "submit",
        "media/src/long.mp4",
        "-p",
        "slow-test",
        "--id",
        "split",
        "--chunking",
        "10",
    ];
    run(&mut ffarm(&s.url, &env, &submit), None).expect(0);
    let started = Instant::now();
    let running = loop {
        let (_, job) = http(&format!("{}/v1/jobs/split", s.url), Some(TOKEN));
        let running: Vec<u64> = job["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"] == "running" && p["kind"] == "video")
            .map(|p| p["seq"].as_u64().unwrap())
            .collect();
        if running.len() >= 2 {
            break running;
        }
        assert!(started.elapsed() < 60 * SECOND, "no two parts ran: {job}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The metrics count them.
    let metrics = rt().block_on(async {
        let req = reqwest::Client::new().get(format!("{}/metrics", s.url));
        req.bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let gauge = |status: &str| {
        let name = format!("ffarm_parts{{status=\"{status}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&name)?.parse::<f64>().ok())
    };
    assert!(gauge("running") >= Some(2.0), "{metrics}");
    assert!(gauge("queued") >= Some(1.0), "{metrics}");
    // Several parts run and no terminal to ask at: refused, naming them.
    let out = exec(&["split", "--", "true"], None);
    assert!(
        out.expect(4).stderr.contains("parts are running") && out.stderr.contains("--part"),
        "{out:#?}"
    );
    // --part N: that part's task, its workspace and the job's environment.
    let n = running[1].to_string();
    let out = exec(
        &[
            "--part",
            &n,
            "split",
            "--",
            "sh",
            "-c",
            "pwd; echo $FFARM_JOB_ID; ls input",
        ],
        None,
    );
    let lines: Vec<&str> = out.expect(0).stdout.lines().collect();
    assert!(
        lines[0].ends_with(&format!("/workspaces/split-p{n}-a1")),
        "{out:#?}"
    );
    assert_eq!(lines[1], "split");
    assert_eq!(lines[2], format!("{n}.nut"), "the part's own source");
    // A part that does not exist, or is not running.
    let out = exec(&["--part", "99", "split", "--", "true"], None);
    assert!(out.expect(4).stderr.contains("no part 99"), "{out:#?}");
}
