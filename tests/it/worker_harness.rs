//! A farm for worker tests: a store (SQLite file or fresh PostgreSQL database), a data
//! directory whose `media` bucket holds fixture clips, and workers — in this process (tasks
//! are still real `ffarm task` child processes) or as `ffarm worker` processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffarm::config::Config;
use ffarm::job::{Job, JobSpec, ObjectRef, OutputTarget, Status};
use ffarm::store::{Change, JobStore};
use ffarm::worker::{self, Shutdown};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::helpers::{ffarm_bin, valid};
use crate::store_harness::TestStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Farm {
    pub store: Arc<dyn JobStore>,
    pub url: String,
    pub data: tempfile::TempDir,
    test_store: Option<TestStore>,
    in_process: Vec<(watch::Sender<u8>, tokio::task::JoinHandle<()>)>,
    pub processes: Vec<Child>,
}

impl Farm {
    pub async fn new(backend: Backend) -> Farm {
        let ts = match backend {
            Backend::Sqlite => TestStore::sqlite().await,
            Backend::Postgres => TestStore::postgres().await,
        };
        let data = crate::helpers::tempdir();
        std::fs::create_dir_all(data.path().join("buckets/media/in")).unwrap();
        Farm {
            store: ts.store.clone(),
            url: ts.url.clone(),
            data,
            test_store: Some(ts),
            in_process: Vec::new(),
            processes: Vec::new(),
        }
    }

    pub fn bucket_dir(&self) -> PathBuf {
        self.data.path().join("buckets/media")
    }

    /// Copies a fixture into the media bucket under `key`.
    pub fn put(&self, fixture: &Path, key: &str) {
        let dest = self.bucket_dir().join(key);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(fixture, dest).unwrap();
    }

    /// A configuration for workers of this farm.
    pub fn config(&self) -> Config {
        let mut c = Config {
            data_dir: self.data.path().to_path_buf(),
            store: Some(self.url.clone()),
            workers: Some(1),
            ..Config::default()
        };
        c.worker.task_program = Some(ffarm_bin());
        c.worker.poll_seconds = 1;
        c.worker.lease_seconds = 10;
        c.worker.stop_grace_seconds = 5;
        c.worker.keep_failed_workspace_seconds = 0;
        c
    }

    /// Starts a worker in this process (sharing the store instance, so notifications reach it
    /// as they do inside `ffarm serve`).
    pub fn start_in_process(&mut self, config: Config) {
        let ctx = worker::context(self.store.clone(), config).unwrap();
        let (tx, rx) = watch::channel(0u8);
        let handle = tokio::spawn(async move {
            worker::run(ctx, Shutdown(rx)).await.unwrap();
        });
        self.in_process.push((tx, handle));
    }

    /// Starts `ffarm worker` as a process of its own.
    pub fn start_process(&mut self, args: &[&str], envs: &[(&str, &str)]) -> u32 {
        let mut cmd = Command::new(ffarm_bin());
        cmd.arg("worker")
            .arg("--store")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(self.data.path())
            .args(args)
            .env("FFARM_WORKER__POLL_SECONDS", "1")
            .env("FFARM_WORKER__STOP_GRACE_SECONDS", "5")
            .env("FFARM_WORKER__KEEP_FAILED_WORKSPACE_SECONDS", "0")
            .env("FFARM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        self.processes.push(child);
        pid
    }

    /// Sends `signal` to the farm's process `pid` (a number `start_process` returned) and waits,
    /// off the runtime, until it exits; it is no longer one of the farm's processes then.
    pub async fn signal_and_wait(&mut self, pid: u32, signal: Signal) -> ExitStatus {
        kill(Pid::from_raw(pid as i32), signal).unwrap();
        let at = self
            .processes
            .iter()
            .position(|p| p.id() == pid)
            .expect("a process of this farm");
        let mut child = self.processes.remove(at);
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn submit(&self, key: &str, preset: &str, tweak: impl FnOnce(&mut JobSpec)) -> Job {
        let mut spec = JobSpec {
            input: ObjectRef {
                bucket: "media".into(),
                key: key.into(),
            },
            preset: preset.into(),
            output: OutputTarget {
                bucket: "media".into(),
                prefix: format!("out/{}/", key.trim_start_matches("in/").replace('.', "_")),
            },
            priority: 0,
            max_attempts: 3,
            timeout_seconds: 3600,
            on_success: None,
            on_failure: None,
            trigger: None,
            overwrite: false,
            chunking: Default::default(),
            media: Default::default(),
        };
        tweak(&mut spec);
        self.store.submit(None, spec).await.unwrap().job
    }

    /// Polls until the job satisfies `done`, or fails the test after `limit`.
    pub async fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Job) -> bool) -> Job {
        let started = Instant::now();
        loop {
            let job = self.store.get(id).await.unwrap();
            if done(&job) {
                return job;
            }
            if started.elapsed() > limit {
                let logs = self.store.logs(id, None, 0, 200).await.unwrap_or_default();
                let lines: Vec<String> = logs.into_iter().map(|l| l.line).collect();
                panic!(
                    "job {id} still {} after {limit:?}: {:?}\nlog:\n{}",
                    job.status,
                    job.progress,
                    lines.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Job {
        self.wait_for(id, limit, |j| j.status.is_terminal()).await
    }

    /// Waits until the job is transcoding with at least `percent` done.
    pub async fn wait_transcoding(&self, id: &str, percent: f64) -> Job {
        self.wait_for(id, Duration::from_secs(60), |j| {
            j.status == Status::Running
                && j.progress.as_ref().is_some_and(|p| {
                    p.phase == ffarm::progress::Phase::Transcoding && p.percent >= percent
                })
        })
        .await
    }

    /// Waits for the next progress the store announces for the job (the worker's heartbeat
    /// carries it); fails the test when 5 s pass without any change announced.
    pub async fn wait_heartbeat(&self, id: &str) {
        let mut changes = self.store.subscribe();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), changes.recv()).await {
                Ok(Ok(Change::Progress { id: got, .. })) if got == id => break,
                Ok(Ok(_)) => {}
                other => panic!("no progress announced: {other:?}"),
            }
        }
    }

    /// The task process id the worker logged for `attempt`.
    pub async fn task_pid(&self, id: &str, attempt: u32) -> i32 {
        let started = Instant::now();
        loop {
            let logs = self.store.logs(id, Some(attempt), 0, 1000).await.unwrap();
            if let Some(pid) = logs.iter().find_map(|l| {
                l.line
                    .split("task pid ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|p| p.parse().ok())
            }) {
                return pid;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no task pid logged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The lines of a job's log, every attempt's.
    pub async fn log_lines(&self, id: &str) -> Vec<String> {
        self.store
            .logs(id, None, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect()
    }

    /// Files under the bucket's `out/` folder.
    pub fn outputs(&self) -> Vec<String> {
        crate::helpers::files_under(&self.bucket_dir().join("out"))
    }

    /// Asks in-process workers to drain and waits for them.
    pub async fn stop_in_process(&mut self) {
        for (tx, handle) in self.in_process.drain(..) {
            let _ = tx.send(2);
            let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
        }
    }

    pub async fn cleanup(mut self) {
        self.stop_in_process().await;
        for mut p in self.processes.drain(..) {
            let _ = p.kill();
            let _ = p.wait();
        }
        // DROP DATABASE … WITH (FORCE) closes this farm's own connections too.
        if let Some(ts) = self.test_store.take() {
            ts.cleanup().await;
        }
    }
}

impl Drop for Farm {
    /// A failing test must not leave worker processes behind.
    fn drop(&mut self) {
        for p in self.processes.iter_mut() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Whether a process is still alive (not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

pub fn long_clip() -> PathBuf {
    valid("long_720p.mp4")
}
