//! The progress page in a real browser: `ffarm serve` as a process (port 0, a temp data dir),
//! data prepared through the bucket folder or the store, then a Playwright script from
//! `tests/browser/` driving Debian's headless Chromium against it (`node SCRIPT URL SHOTS …`).
//! Each script checks what the page shows and fails on any console error; its screenshots of
//! every step go to `target/screenshots/`. Also: the page's files are served typed, cached by
//! ETag and without the token, while the API keeps asking for it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffarm::job::{JobError, JobSpec, Outcome, OutputObject};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ffarm_bin, malformed_dir, slow_presets_dir, spec, tempdir, valid};

/// How long one browser script may take before it is killed.
const SCRIPT_LIMIT: Duration = Duration::from_secs(150);

/// `ffarm serve` in a temp dir, with its log kept for failure reports.
pub(crate) struct Served {
    child: Child,
    pub(crate) url: String,
    dir: tempfile::TempDir,
}

impl Served {
    /// Serves `data/` of a fresh temp dir after `prepare(data)` filled it.
    pub(crate) fn start(workers: u32, token: Option<&str>, prepare: impl FnOnce(&Path)) -> Served {
        Served::start_with(workers, token, &[], prepare)
    }

    /// [`Served::start`] with extra `FFARM_…` variables.
    fn start_with(
        workers: u32,
        token: Option<&str>,
        env: &[(&str, String)],
        prepare: impl FnOnce(&Path),
    ) -> Served {
        let dir = tempdir();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("buckets/media")).unwrap();
        prepare(&data);
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut command = Command::new(ffarm_bin());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(["--workers", &workers.to_string()])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        crate::helpers::isolate(&mut command, dir.path());
        if let Some(t) = token {
            command.env("FFARM_TOKEN", t);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let url = crate::helpers::serve_url(&mut child);
        Served { child, url, dir }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The end of the server's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// What the store holds of the farm's jobs (the server's SQLite file, opened beside it):
    /// each one's history and log, with their times, for failure messages: the server's log
    /// says little of a job that is slow to end.
    fn story(&self) -> String {
        let url = format!("sqlite://{}", self.data().join("ffarm.db").display());
        let status = |s: Option<ffarm::job::Status>| s.map_or("-".into(), |s| s.to_string());
        let read = async {
            let store = ffarm::store::open(&url).await?;
            let page = store
                .list(&ffarm::store::ListFilter::default(), 20, None)
                .await?;
            let mut out = String::new();
            for job in page.jobs {
                out += &format!(
                    "job {} ({}, attempt {}):\n",
                    job.id, job.status, job.attempt
                );
                for e in store.events(&job.id).await? {
                    out += &format!(
                        "  {} {} {} -> {}: {}\n",
                        e.at.to_rfc3339(),
                        e.kind,
                        status(e.from),
                        status(e.to),
                        e.reason
                    );
                }
                for l in store.logs(&job.id, None, 0, 200).await? {
                    out += &format!("  {} log: {}\n", l.at.to_rfc3339(), l.line);
                }
            }
            Ok::<_, ffarm::store::StoreError>(out)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(read)
            .unwrap_or_else(|e| format!("(the store could not be read: {e})"))
    }

    /// Runs `tests/browser/SCRIPT URL SHOTS ARGS…` and fails with its output unless it exits 0.
    pub(crate) fn browse(&self, script: &str, args: &[String]) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("tests/browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "tests/browser/node_modules is missing: run ./dev.sh test (it installs chromium and \
             node, then runs `npm ci --prefix tests/browser`)"
        );
        let shots = screenshots();
        let started = Instant::now();
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .arg(&self.url)
            .arg(&shots)
            .args(args)
            .current_dir(&dir)
            // The scripts' switch to serve the page from disk: here the binary's own copy is
            // what is under test.
            .env_remove("FFARM_WEB_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running node: run ./dev.sh test, which installs it");
        let read = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                s
            })
        };
        let stdout = read(Box::new(child.stdout.take().unwrap()));
        let stderr = read(Box::new(child.stderr.take().unwrap()));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > SCRIPT_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = format!(
            "{}{}",
            stdout.join().unwrap_or_default(),
            stderr.join().unwrap_or_default()
        );
        println!(
            "{script} ({:.1} s):\n{output}",
            started.elapsed().as_secs_f64()
        );
        match status {
            Some(s) if s.success() => {}
            other => panic!(
                "{script} {} after {:.1} s:\n{output}\n--- ffarm serve's log, last lines:\n{}\n\
                 --- the jobs in its store:\n{}\n(screenshots in {})",
                other.map_or("was killed (too slow)".into(), |s| format!("failed ({s})")),
                started.elapsed().as_secs_f64(),
                self.log_tail(),
                self.story(),
                shots.display()
            ),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/screenshots`, under CARGO_TARGET_DIR when it is set.
fn screenshots() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| root.join(t))
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(data: &Path, key: &str, from: &Path) {
    let to = data.join("buckets/media").join(key);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// Fills the store of `data` before the server starts: `done-1..3` succeeded (with an
/// output), `bad-1` and `bad-2` failed (`bad-2` created two hours ago), `stop-1..4` cancelled,
/// and `bulk` queued jobs of which the first `old` were created three days ago; a draining
/// worker `edge/1` (sandboxed, but for its network) and a lost one `gone/1` (sandbox off) in
/// the registry.
fn seed(data: &Path, bulk: usize, old: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = data.join("ffarm.db");
        let store = ffarm::store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let ended = ["done-1", "done-2", "done-3", "bad-1", "bad-2"];
        for id in ended {
            // Above the bulk's priority: the claims below take exactly these.
            store
                .submit(
                    Some(id.into()),
                    JobSpec {
                        priority: 5,
                        ..spec(&format!("in/{id}.mp4"))
                    },
                )
                .await
                .unwrap();
        }
        for _ in ended {
            let job = store
                .claim("seed/1", Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            let outcome = if job.id.starts_with("done") {
                Outcome::Succeeded {
                    outputs: vec![OutputObject {
                        bucket: "media".into(),
                        key: format!("out/{}.mp4", job.id),
                        bytes: 123_456,
                        check: None,
                    }],
                }
            } else {
                Outcome::Failed(JobError::new(
                    "input-unreadable",
                    "Invalid data found when processing input",
                    false,
                ))
            };
            store.finish(&job.id, job.attempt, outcome).await.unwrap();
        }
        for i in 1..=4 {
            let id = format!("stop-{i}");
            store
                .submit(Some(id.clone()), spec(&format!("in/{id}.mp4")))
                .await
                .unwrap();
            store.cancel(&id, "seeded").await.unwrap();
        }
        let store = &store;
        futures_util::stream::iter(0..bulk)
            .map(|i| async move {
                let age = if i < old { "old" } else { "bulk" };
                store
                    .submit(None, spec(&format!("in/{age}-{i:05}.mp4")))
                    .await
                    .unwrap();
            })
            .buffer_unordered(128)
            .collect::<Vec<()>>()
            .await;
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        const HOUR: i64 = 3_600_000_000;
        sqlx::query("UPDATE jobs SET created_at = created_at - ? WHERE input_key LIKE 'in/old-%'")
            .bind(72 * HOUR)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET created_at = created_at - ? WHERE id = 'bad-2'")
            .bind(2 * HOUR)
            .execute(&pool)
            .await
            .unwrap();
        // Two workers in the registry: one draining, its sandbox without a network namespace;
        // one that stopped reporting, its sandbox turned off.
        let edge = ffarm::sandbox::Level {
            enabled: true,
            landlock_abi: Some(6),
            seccomp: true,
            network_namespace: false,
            limits: Some(ffarm::sandbox::Limits::default()),
            missing: vec!["network namespace: Operation not permitted (EPERM)".into()],
        };
        for (id, sandbox) in [("edge/1", edge), ("gone/1", Default::default())] {
            let now = ffarm::job::Timestamp::now();
            let info = ffarm::store::WorkerInfo {
                id: id.into(),
                host: id.split('/').next().unwrap().into(),
                address: None,
                slots: 2,
                version: env!("CARGO_PKG_VERSION").into(),
                started_at: now,
                last_seen: now,
                draining: false,
                running: vec![],
                sandbox: Some(sandbox),
            };
            store.register_worker(&info).await.unwrap();
        }
        store.touch_worker("edge/1", true).await.unwrap();
        sqlx::query("UPDATE workers SET last_seen = last_seen - ? WHERE id = 'gone/1'")
            .bind(120_000_000_i64)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
}

#[test]
fn web_page_upload_progress_and_download() {
    let served = Served::start(1, None, |data| {
        put(data, "src/blocker.mp4", &valid("long_720p.mp4"));
    });
    let clip = valid("hls_source_1080p.mp4");
    served.browse("upload.mjs", &[clip.display().to_string()]);
    let out = served.data().join("buckets/media/out/hls_source_1080p.mp4");
    assert!(out.exists(), "the output is in the bucket");
}

#[test]
fn web_page_stop_retry_and_resubmit() {
    let served = Served::start(1, None, |data| {
        put(data, "src/long.mp4", &valid("long_720p.mp4"));
    });
    served.browse("stop.mjs", &[]);
}

#[test]
fn web_page_filters_over_10000_jobs() {
    let (bulk, old) = (9_991, 2_000);
    let served = Served::start(0, None, |data| seed(data, bulk, old));
    let any = json!({"all": 10_000, "queued": bulk, "running": 0, "succeeded": 3, "failed": 2, "cancelled": 4});
    let hour = json!({"all": 10_000 - old - 1, "queued": bulk - old, "running": 0, "succeeded": 3, "failed": 1, "cancelled": 4});
    let day = json!({"all": 10_000 - old, "queued": bulk - old, "running": 0, "succeeded": 3, "failed": 2, "cancelled": 4});
    let expected = json!({"any": any, "1h": hour, "1d": day, "7d": any});
    served.browse("filters.mjs", &[expected.to_string()]);
}

#[test]
fn web_page_failed_job_error_and_log() {
    let served = Served::start(1, None, |_| {});
    let text = malformed_dir().join("text.mp4");
    served.browse(
        "failure.mjs",
        &[
            text.display().to_string(),
            served.data().display().to_string(),
        ],
    );
}

#[test]
fn web_page_token_prompt() {
    let token = "web-page-token-0123456789";
    let served = Served::start(0, Some(token), |data| seed(data, 20, 0));
    served.browse("token.mjs", &[token.to_string()]);
}

#[test]
fn web_page_phone_and_dark() {
    let served = Served::start(0, None, |data| seed(data, 40, 10));
    served.browse("phone.mjs", &[]);
}

/// The page's files: open without the token, typed for browsers, revalidated by ETag, with a
/// policy that keeps the page on its own origin; the API stays closed.
#[test]
fn web_page_files_are_served_open_typed_and_cached() {
    let token = "web-page-token-0123456789";
    let served = Served::start(0, Some(token), |_| {});
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("{}{path}", served.url));
        let page = get("/").send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let header = |r: &reqwest::Response, h: &str| {
            r.headers()
                .get(h)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert!(header(&page, "content-security-policy").contains("default-src 'self'"));
        let html = page.text().await.unwrap();
        assert!(html.contains("/assets/js/main.js"));

        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut files = vec![("style.css", "text/css"), ("favicon.svg", "image/svg+xml")];
        let modules: Vec<String> = std::fs::read_dir(web.join("js"))
            .unwrap()
            .map(|e| format!("js/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        assert!(modules.len() >= 6, "{modules:?}");
        files.extend(modules.iter().map(|m| (m.as_str(), "text/javascript")));
        for (file, kind) in files {
            let r = get(&format!("/assets/{file}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{file}");
            assert!(header(&r, "content-type").starts_with(kind), "{file}");
            assert_eq!(header(&r, "cache-control"), "no-cache", "{file}");
            let etag = header(&r, "etag");
            assert!(etag.starts_with('"'), "{file}: {etag}");
            let body = r.bytes().await.unwrap();
            assert_eq!(body, std::fs::read(web.join(file)).unwrap(), "{file}");
            let again = get(&format!("/assets/{file}"))
                .header("if-none-match", &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{file}");
        }
        let missing = get("/assets/js/nope.js").send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not-found");
        for closed in ["/v1/jobs", "/v1/events", "/metrics", "/assets/../v1/jobs"] {
            let r = get(closed).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{closed}");
        }
        let r = get("/v1/jobs").bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
}

#[test]
fn web_page_terminal_into_a_running_task() {
    let token = "terminal-test-token-0123";
    let presets = slow_presets_dir();
    let env = [
        ("FFARM_EXEC__ENABLED", "true".to_string()),
        ("FFARM_PRESETS_DIR", presets.path().display().to_string()),
    ];
    let served = Served::start_with(1, Some(token), &env, |data| {
        put(data, "src/long.mp4", &valid("long_720p.mp4"));
    });
    served.browse("terminal.mjs", &[token.to_string()]);
}

#[test]
fn web_page_terminal_with_its_own_exec_token() {
    let (token, exec_token) = ("terminal-test-token-0123", "exec-only-token-456789");
    let presets = slow_presets_dir();
    let env = [
        ("FFARM_EXEC__ENABLED", "true".to_string()),
        ("FFARM_EXEC__TOKEN", exec_token.to_string()),
        ("FFARM_PRESETS_DIR", presets.path().display().to_string()),
    ];
    let served = Served::start_with(1, Some(token), &env, |data| {
        put(data, "src/long.mp4", &valid("long_720p.mp4"));
    });
    served.browse("terminal.mjs", &[token.to_string(), exec_token.to_string()]);
}
