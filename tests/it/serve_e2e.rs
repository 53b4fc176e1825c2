//! `ffarm serve` as a new user runs it: a process in an empty directory, a clip copied into
//! `data/buckets/media/in/`, a valid output found in `out/`, a clean exit on SIGTERM; files
//! that arrive while the farm is down are picked up at the next start, without duplicates.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::helpers::{ffarm_bin, ffprobe, ffprobe_streams, tempdir, valid};

struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    /// `ffarm serve` in `dir` with its defaults, on a free port, one worker slot.
    fn start(dir: &Path) -> Serve {
        let mut child = Command::new(ffarm_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .current_dir(dir)
            .env_remove("FFARM_STORE")
            .env_remove("FFARM_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = crate::helpers::serve_url(&mut child);
        Serve { child, url }
    }

    fn jobs(&self) -> Vec<Value> {
        let url = format!("{}/v1/jobs?limit=1000", self.url);
        let body: Value = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
        body["jobs"].as_array().unwrap().clone()
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
    }
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
