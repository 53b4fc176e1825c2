//! `ffarm serve` as a new user runs it: a process in an empty directory, a clip copied into
//! `data/buckets/media/in/`, a valid output found in `out/`, a clean exit on SIGTERM; clips
//! of one name in two folders of `in/` come out in two folders of `out/` (files, HLS
//! ladders); files that arrive while the farm is down are picked up at the next start,
//! without duplicates; a SIGTERM while a job runs hands it back, and the next start runs it;
//! what an operator must act on (an SNS subscription to confirm) is in the log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::helpers::{SLOW_PRESET, ffarm_bin, ffprobe, ffprobe_streams, isolate, tempdir, valid};

struct Serve {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Serve {
    /// `ffarm serve` in `dir` with its defaults, on a free port, one worker slot.
    fn start(dir: &Path) -> Serve {
        Serve::start_with(dir, &[])
    }

    /// [`Serve::start`] with more arguments (one slot unless they say `--workers`); the
    /// server's log goes to `dir/serve.log`.
    fn start_with(dir: &Path, args: &[&str]) -> Serve {
        let log = dir.join("serve.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(ffarm_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if !args.contains(&"--workers") {
            cmd.args(["--workers", "1"]);
        }
        cmd.args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(stderr);
        isolate(&mut cmd, dir);
        let mut child = cmd.spawn().unwrap();
        let url = crate::helpers::serve_url(&mut child);
        Serve { child, url, log }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.url);
        rt().block_on(async {
            let resp = reqwest::get(url).await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        rt().block_on(async {
            let resp = reqwest::Client::new()
                .post(url)
                .json(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        })
    }

    fn jobs(&self) -> Vec<Value> {
        self.get_json("/v1/jobs?limit=1000")["jobs"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The value of an unlabelled gauge on `/metrics`.
    fn gauge(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not on /metrics:\n{text}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within the limit.
    fn stop(mut self) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log());
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn drop_clip(dir: &Path, name: &str) {
    let inbox = dir.join("data/buckets/media/in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::copy(valid("h264_aac.mp4"), inbox.join(name)).unwrap();
}

fn succeeded(jobs: &[Value]) -> usize {
    jobs.iter().filter(|j| j["status"] == "succeeded").count()
}

#[test]
fn a_clip_dropped_into_in_comes_out_transcoded() {
    let dir = tempdir();
    let serve = Serve::start(dir.path());
    assert!(dir.path().join("data/ffarm.db").exists());
    drop_clip(dir.path(), "holiday clip.mp4");
    let out = dir.path().join("data/buckets/media/out/holiday clip.mp4");
    wait_for(Duration::from_secs(90), "the output appears", || {
        out.exists()
    });
    let probe = ffprobe(&out);
    let video = ffprobe_streams(&probe, "video");
    assert_eq!(video[0]["codec_name"], "h264");
    assert_eq!(ffprobe_streams(&probe, "audio")[0]["codec_name"], "aac");
    let jobs = serve.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["status"], "succeeded");
    assert_eq!(jobs[0]["trigger"]["source"], "watch");
    assert_eq!(jobs[0]["preset"], "h264-720p");
    let status = serve.stop();
    assert!(status.success(), "serve exited with {status}");
}

/// Drops `h264_aac.mp4` as `in/x/clip.mp4` and `video_only.mp4` (no sound) as
/// `in/y/clip.mp4`, waits for both jobs to end, and checks both succeeded with their outputs
/// in their own folders of `out/`: `main` there (a file, or a master playlist) and nothing
/// directly under `out/`.
fn clips_of_one_name_in_two_folders_come_out_apart(dir: &Path, serve: Serve, main: &str) {
    let inbox = dir.join("data/buckets/media/in");
    for (folder, fixture) in [("x", "h264_aac.mp4"), ("y", "video_only.mp4")] {
        std::fs::create_dir_all(inbox.join(folder)).unwrap();
        std::fs::copy(valid(fixture), inbox.join(folder).join("clip.mp4")).unwrap();
    }
    wait_for(Duration::from_secs(120), "both jobs end", || {
        let jobs = serve.jobs();
        jobs.len() == 2
            && jobs
                .iter()
                .all(|j| j["status"] != "queued" && j["status"] != "running")
    });
    let jobs = serve.jobs();
    assert_eq!(succeeded(&jobs), 2, "{jobs:#?}");
    let out = dir.join("data/buckets/media/out");
    for (folder, audio) in [("x", 1), ("y", 0)] {
        let probe = ffprobe(&out.join(folder).join(main));
        assert!(!ffprobe_streams(&probe, "video").is_empty(), "{folder}");
        assert_eq!(ffprobe_streams(&probe, "audio").len(), audio, "{folder}");
    }
    assert!(!out.join(main).exists());
    assert!(serve.stop().success());
}

#[test]
fn clips_of_one_name_in_two_folders_come_out_in_their_own_folders() {
    let dir = tempdir();
    let serve = Serve::start(dir.path());
    clips_of_one_name_in_two_folders_come_out_apart(dir.path(), serve, "clip.mp4");
}

#[test]
fn hls_ladders_of_one_name_in_two_folders_come_out_in_their_own_folders() {
    let dir = tempdir();
    let rule = "[[triggers]]\nbucket = \"media\"\nprefix = \"in/\"\npresets = [\"hls-abr\"]\n";
    std::fs::write(dir.path().join("ffarm.toml"), rule).unwrap();
    let serve = Serve::start(dir.path());
    clips_of_one_name_in_two_folders_come_out_apart(dir.path(), serve, "clip.m3u8");
    let out = dir.path().join("data/buckets/media/out");
    for folder in ["x", "y"] {
        let files = crate::helpers::files_under(&out.join(folder));
        assert!(
            files.iter().any(|f| f.ends_with(".ts")),
            "{folder}: {files:?}"
        );
        assert!(
            files.contains(&"clip_480p.m3u8".to_string()),
            "{folder}: {files:?}"
        );
        let master = std::fs::read_to_string(out.join(folder).join("clip.m3u8")).unwrap();
        assert!(master.contains("#EXT-X-STREAM-INF"), "{master}");
    }
}

#[test]
fn files_that_arrive_while_down_are_picked_up_once() {
    let dir = tempdir();
    let serve = Serve::start(dir.path());
    drop_clip(dir.path(), "first.mp4");
    wait_for(Duration::from_secs(90), "the first job succeeds", || {
        succeeded(&serve.jobs()) == 1
    });
    assert!(serve.stop().success());

    // Down: two files arrive.
    drop_clip(dir.path(), "second.mp4");
    drop_clip(dir.path(), "third.mov");
    let serve = Serve::start(dir.path());
    wait_for(Duration::from_secs(120), "both new files are done", || {
        succeeded(&serve.jobs()) == 3
    });
    assert!(serve.stop().success());

    // Nothing new: a restart makes no job.
    let serve = Serve::start(dir.path());
    std::thread::sleep(Duration::from_secs(5));
    let jobs = serve.jobs();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let mut outs: Vec<String> = std::fs::read_dir(dir.path().join("data/buckets/media/out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outs.sort();
    assert_eq!(outs, ["first.mp4", "second.mp4", "third.mp4"]);
    assert!(serve.stop().success());
}

#[test]
fn sigterm_hands_a_running_job_back_and_the_next_start_runs_it() {
    let dir = tempdir();
    let src = dir.path().join("data/buckets/media/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(valid("long_720p.mp4"), src.join("long.mp4")).unwrap();
    let presets = dir.path().join("presets");
    std::fs::create_dir_all(&presets).unwrap();
    std::fs::write(presets.join("slow-test.toml"), SLOW_PRESET).unwrap();
    let presets = presets.to_string_lossy().into_owned();
    let args = ["--presets-dir", presets.as_str(), "--drain-timeout", "1"];
    let serve = Serve::start_with(dir.path(), &args);
    let spec = json!({"id": "long", "input": {"bucket": "media", "key": "src/long.mp4"},
                      "preset": "slow-test", "output": {"prefix": "out/"}, "max_attempts": 1});
    let (status, body) = serve.post("/v1/jobs", &spec);
    assert_eq!(status, 201, "{body}");
    wait_for(Duration::from_secs(30), "the job transcodes", || {
        serve.get_json("/v1/jobs/long")["progress"]["phase"] == "transcoding"
    });
    // While it runs, the farm's gauges say so.
    assert_eq!(serve.gauge("ffarm_running_tasks"), 1.0);
    assert_eq!(serve.gauge("ffarm_busy_slots"), 1.0);
    assert_eq!(serve.gauge("ffarm_queue_depth"), 0.0);

    let asked = Instant::now();
    let status = serve.stop();
    assert!(status.success(), "a clean exit after draining: {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "drained in {:?}",
        asked.elapsed()
    );

    // Nothing lost: the next start runs it again, its one allowed attempt still there.
    let serve = Serve::start_with(dir.path(), &args);
    let history = serve.get_json("/v1/jobs/long/history");
    let reasons: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("draining worker")),
        "{reasons:?}"
    );
    wait_for(Duration::from_secs(30), "the job runs again", || {
        let job = serve.get_json("/v1/jobs/long");
        job["status"] == "running" && job["attempt"] == 2
    });
    let (status, body) = serve.post("/v1/jobs/long/cancel", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(serve.stop().success());
}

#[test]
fn an_sns_subscription_confirmation_is_logged_for_the_operator() {
    let dir = tempdir();
    let serve = Serve::start(dir.path());
    let url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37";
    let confirmation = json!({"Type": "SubscriptionConfirmation", "MessageId": "165545c9",
        "Token": "2336412f37", "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
        "SubscribeURL": url});
    let (status, body) = serve.post("/v1/triggers/s3", &confirmation);
    assert_eq!(status, 200, "{body}");
    assert!(body["jobs"].as_array().unwrap().is_empty(), "{body}");
    wait_for(Duration::from_secs(5), "the URL is in the log", || {
        serve
            .log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(url))
    });
    assert!(serve.stop().success());
}

#[test]
fn an_api_only_node_warns_that_its_drop_folder_needs_workers_that_can_read_it() {
    let dir = tempdir();
    let serve = Serve::start_with(dir.path(), &["--workers", "0"]);
    wait_for(Duration::from_secs(5), "the warning is in the log", || {
        serve
            .log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("bucket media is a folder on this machine"))
    });
    assert!(serve.stop().success());
    // With workers, no such warning.
    std::fs::remove_file(dir.path().join("serve.log")).unwrap();
    let serve = Serve::start(dir.path());
    assert!(serve.stop().success());
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("watching"), "{log}");
    assert!(!log.contains("is a folder on this machine"), "{log}");
}
