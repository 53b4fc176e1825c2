//! Outputs of one input are never replaced by another's, through real workers and task
//! processes: with two inputs of one stem under one output prefix, the second job fails
//! `output-conflict` naming the first job and its input and leaves the first one's files as
//! they were (one file, or an HLS ladder with its master playlist and segments); a job that
//! says `overwrite` replaces them; a retry and a new version of the same input replace their
//! own. A task waits for its reservation before uploading, and still stops on request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ffarm::job::{Job, Status};
use ffarm::worker::protocol::{TaskMessage, TaskSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::{ffarm_bin, ffprobe, ffprobe_streams, files_under, valid};
use crate::worker_harness::{Backend, Farm};
use crate::worker_uploads::test_presets;

const LIMIT: Duration = Duration::from_secs(90);

/// A farm with one worker: in this process on SQLite, an `ffarm worker` on PostgreSQL.
async fn farm(backend: Backend) -> Farm {
    let mut farm = Farm::new(backend).await;
    match backend {
        Backend::Sqlite => {
            let mut config = farm.config();
            config.presets_dir = Some(test_presets(&farm));
            farm.start_in_process(config);
        }
        Backend::Postgres => {
            let presets = test_presets(&farm);
            farm.start_process(
                &["--workers", "1", "--presets-dir", presets.to_str().unwrap()],
                &[],
            );
        }
    }
    farm
}

/// Runs a job on `key` with `preset` writing under `prefix` to its end.
async fn run(farm: &Farm, key: &str, preset: &str, prefix: &str, overwrite: bool) -> Job {
    let job = farm
        .submit(key, preset, |s| {
            s.output.prefix = prefix.into();
            s.overwrite = overwrite;
        })
        .await;
    farm.wait_terminal(&job.id, LIMIT).await
}

#[track_caller]
fn succeeded(job: &Job) {
    assert_eq!(job.status, Status::Succeeded, "{}: {:?}", job.id, job.error);
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

/// The audio streams ffprobe finds in an output (the first input has one, the second none).
fn audio_streams(path: &Path) -> usize {
    ffprobe_streams(&ffprobe(path), "audio").len()
}

/// `in/x/clip.mp4` then `in/y/clip.mp4` (another picture, no sound) under `prefix`, whose
/// main output is `main` (the file or the master playlist).
async fn another_input_of_the_same_stem_is_refused(backend: Backend, preset: &str, main: &str) {
    let farm = farm(backend).await;
    farm.put(&valid("h264_aac.mp4"), "in/x/clip.mp4");
    farm.put(&valid("video_only.mp4"), "in/y/clip.mp4");
    let prefix = "shared/";
    let dir = farm.bucket_dir().join("shared");
    let first = run(&farm, "in/x/clip.mp4", preset, prefix, false).await;
    succeeded(&first);
    assert_eq!(first.outputs.last().unwrap().key, format!("{prefix}{main}"));
    let before = files(&dir);
    assert!(before.len() == first.outputs.len(), "{:?}", before.keys());

    let second = run(&farm, "in/y/clip.mp4", preset, prefix, false).await;
    assert_eq!(second.status, Status::Failed);
    assert_eq!(second.attempt, 1, "final: not tried again");
    assert!(second.outputs.is_empty());
    let e = second.error.clone().unwrap();
    assert_eq!((e.code.as_str(), e.retryable), ("output-conflict", false));
    for part in [
        "media/shared/clip",
        &format!("job '{}'", first.id),
        "input media/in/x/clip.mp4",
    ] {
        assert!(e.message.contains(part), "{part:?} in {}", e.message);
    }
    if preset != "hls-abr" {
        assert!(
            e.message.contains(&format!("media/shared/{main} ")),
            "{e:?}"
        );
    }
    assert_eq!(
        files(&dir),
        before,
        "the first job's outputs, byte for byte"
    );
    assert_eq!(audio_streams(&dir.join(main)), 1);
    let log: Vec<String> = farm
        .store
        .logs(&second.id, None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert!(
        !log.iter().any(|l| l.contains("[task] uploaded")),
        "{log:?}"
    );

    // Told to overwrite, the second input replaces them.
    let third = run(&farm, "in/y/clip.mp4", preset, prefix, true).await;
    succeeded(&third);
    assert_eq!(third.outputs.last().unwrap().key, format!("{prefix}{main}"));
    assert_eq!(audio_streams(&dir.join(main)), 0, "the second input's now");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_another_input_of_the_same_stem_is_refused() {
    another_input_of_the_same_stem_is_refused(Backend::Sqlite, "h264-720p", "clip.mp4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_another_input_of_the_same_stem_is_refused() {
    another_input_of_the_same_stem_is_refused(Backend::Postgres, "h264-720p", "clip.mp4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_another_input_of_the_same_stem_is_refused_for_hls() {
    another_input_of_the_same_stem_is_refused(Backend::Sqlite, "hls-abr", "clip.m3u8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_another_input_of_the_same_stem_is_refused_for_hls() {
    another_input_of_the_same_stem_is_refused(Backend::Postgres, "hls-abr", "clip.m3u8").await;
}

/// A failed attempt takes back its uploads and gives back its keys; the retry writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_replaces_its_own_outputs() {
    let farm = farm(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/x/clip.mp4");
    // The second segment cannot be stored: a folder is where its file would go.
    let blocked = farm.bucket_dir().join("out/clip_00001.ts");
    std::fs::create_dir_all(&blocked).unwrap();
    let failed = run(&farm, "in/x/clip.mp4", "hls-1s", "out/", false).await;
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_ref().unwrap().code, "key-conflict");
    std::fs::remove_dir(&blocked).unwrap();
    farm.store.retry(&failed.id).await.unwrap();
    let done = farm.wait_terminal(&failed.id, LIMIT).await;
    succeeded(&done);
    assert_eq!(done.attempt, 2);
    let mut keys: Vec<String> = done.outputs.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys.last().map(String::as_str), Some("out/clip.m3u8"));
    assert!(keys.iter().any(|k| k == "out/clip_00001.ts"), "{keys:?}");
    keys.sort();
    let stored: Vec<String> = files_under(&farm.bucket_dir().join("out"))
        .into_iter()
        .map(|f| format!("out/{f}"))
        .collect();
    assert_eq!(stored, keys);
    // And a retry of a job that ended in a conflict meets the same owner again.
    farm.put(&valid("video_only.mp4"), "in/y/clip.mp4");
    let refused = run(&farm, "in/y/clip.mp4", "hls-1s", "out/", false).await;
    assert_eq!(refused.error.as_ref().unwrap().code, "output-conflict");
    farm.store.retry(&refused.id).await.unwrap();
    let again = farm
        .wait_for(&refused.id, LIMIT, |j| {
            j.attempt == 2 && j.status.is_terminal()
        })
        .await;
    assert_eq!(again.error.as_ref().unwrap().code, "output-conflict");
    assert!(again.error.unwrap().message.contains(&done.id));
    farm.cleanup().await;
}

/// A new version of an object (the same key, new content) is a new job on the same input:
/// it replaces that input's outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_version_of_the_same_input_replaces_its_outputs() {
    let farm = farm(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/x/clip.mp4");
    let first = run(&farm, "in/x/clip.mp4", "h264-720p", "out/", false).await;
    succeeded(&first);
    let out = farm.bucket_dir().join("out/clip.mp4");
    assert_eq!(audio_streams(&out), 1);
    farm.put(&valid("video_only.mp4"), "in/x/clip.mp4");
    let newer = run(&farm, "in/x/clip.mp4", "h264-720p", "out/", false).await;
    succeeded(&newer);
    assert_ne!(newer.id, first.id);
    assert_eq!(audio_streams(&out), 0, "the new version's output");
    farm.cleanup().await;
}

/// A task asks for its reservation after transcoding and uploads nothing before the answer;
/// a stop while it waits ends it at once (exit 130), and a worker gone without answering
/// (its stdin closed) fails the attempt with a retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_waiting_for_its_reservation_stops_on_request() {
    let farm = Farm::new(Backend::Sqlite).await;
    farm.put(&valid("h264_aac.mp4"), "in/x/clip.mp4");
    farm.submit("in/x/clip.mp4", "h264-720p", |s| {
        s.output.prefix = "out/".into()
    })
    .await;
    let job = farm
        .store
        .claim("w/test", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    for stop in [true, false] {
        let workspace = farm.data.path().join(format!("workspace-{stop}"));
        std::fs::create_dir_all(&workspace).unwrap();
        let spec = TaskSpec {
            job: job.clone(),
            workspace: workspace.clone(),
            data_dir: farm.data.path().to_path_buf(),
            buckets: Default::default(),
            presets_dir: None,
            work: Default::default(),
            engine: Default::default(),
            segment_key: None,
        };
        let spec_path = workspace.join("task.json");
        std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
        let mut task = Command::new(ffarm_bin())
            .arg("task")
            .arg(&spec_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(task.stdout.take().unwrap()).lines();
        let keys = loop {
            let line = lines.next().expect("a Reserve line").unwrap();
            if let Ok(TaskMessage::Reserve { keys }) = serde_json::from_str(&line) {
                break keys;
            }
        };
        assert_eq!(keys, ["out/clip.mp4"]);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            task.try_wait().unwrap().is_none(),
            "it waits for the answer"
        );
        if stop {
            kill(Pid::from_raw(task.id() as i32), Signal::SIGTERM).unwrap();
        } else {
            drop(task.stdin.take());
        }
        let said: Vec<TaskMessage> = lines
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        let status = task.wait().unwrap();
        if stop {
            assert_eq!(status.code(), Some(130));
            assert!(said.contains(&TaskMessage::Stopped), "{said:?}");
        } else {
            assert_eq!(status.code(), Some(1));
            let Some(TaskMessage::Error(e)) = said.last() else {
                panic!("{said:?}")
            };
            assert!(e.retryable, "{e:?}");
        }
        assert!(files_under(&farm.bucket_dir().join("out")).is_empty());
    }
    farm.cleanup().await;
}
