//! Split jobs through real workers and task processes, on SQLite and PostgreSQL: a job cut
//! into 30-second parts comes out whole (every frame, decoding cleanly) and leaves no scratch,
//! an HLS one with the parts' segments published as written;
//! a worker killed with SIGKILL mid-part costs that part only; a cancel stops every part's
//! process within a second and removes the scratch; a retry after a storage failure reuses the
//! parts already finished; and `auto` splits only when the farm has room.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ffarm::config::Config;
use ffarm::job::{Chunking, Job, PartKind, Status};
use nix::sys::signal::Signal;

use crate::helpers::{count_frames, valid};
use crate::worker_harness::{Backend, Farm};

const PARTS_OF_30S: Chunking = Chunking::Segments {
    segment_seconds: 30,
};
const LIMIT: Duration = Duration::from_secs(240);

fn long_input() -> PathBuf {
    valid("split_4min.mp4")
}

/// A farm with the four-minute input in its bucket as `in/long.mp4`.
async fn farm(backend: Backend) -> Farm {
    let farm = Farm::new(backend).await;
    farm.put(&long_input(), "in/long.mp4");
    farm
}

fn config(farm: &Farm, slots: u32) -> Config {
    let mut c = farm.config();
    c.workers = Some(slots);
    c.worker.lease_seconds = 4;
    c
}

/// The scratch objects left under the bucket's scratch folder.
fn scratch_left(farm: &Farm) -> Vec<String> {
    crate::helpers::files_under(&farm.bucket_dir().join(".ffarm-scratch"))
}

/// Waits until the job's scratch is gone (the janitor runs every lease/3 seconds).
async fn wait_scratch_removed(farm: &Farm) {
    let started = Instant::now();
    while !scratch_left(farm).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "scratch left: {:?}",
            scratch_left(farm)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The job's one output file.
fn output_file(farm: &Farm, job: &Job) -> PathBuf {
    assert_eq!(job.outputs.len(), 1, "{:?}", job.outputs);
    farm.bucket_dir().join(&job.outputs[0].key)
}

/// What `ffmpeg -v error` prints decoding the file (nothing for a clean file).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks a finished split job: every video frame of the input, a clean decode, 8 video
/// parts of 30 s, the audio and the assembly.
fn assert_whole(farm: &Farm, job: &Job) {
    assert_eq!(job.status, Status::Succeeded, "{:?}", job.error);
    let out = output_file(farm, job);
    assert_eq!(
        count_frames(&out, "v"),
        count_frames(&long_input(), "v"),
        "every frame of the input"
    );
    assert_eq!(decode_errors(&out), "", "decodes without an error");
    let kinds: Vec<PartKind> = job.parts.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == PartKind::Video).count(), 8);
    assert!(kinds.ends_with(&[PartKind::Audio, PartKind::Assemble]));
    assert!(job.parts.iter().all(|p| p.status == Status::Succeeded));
    // The joined output was read back before the job succeeded.
    let check = job.outputs[0].check.clone().expect("the assembly's check");
    assert!(
        (check.duration_seconds.unwrap() - 240.0).abs() < 0.1,
        "{check:?}"
    );
    assert!(
        check.streams.iter().any(|s| s.starts_with("aac")),
        "{check:?}"
    );
}

async fn a_split_job_comes_out_whole(backend: Backend) {
    let mut farm = farm(backend).await;
    farm.start_in_process(config(&farm, 2));
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| s.chunking = PARTS_OF_30S)
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_whole(&farm, &done);
    assert!(
        done.parts.iter().all(|p| p.attempt == 1),
        "{:?}",
        done.parts
    );
    // Two workers took parts (each holds one slot per part).
    let workers: std::collections::BTreeSet<_> =
        done.parts.iter().filter_map(|p| p.worker.clone()).collect();
    assert!(!workers.is_empty());
    let log = farm.store.logs(&job.id, None, 0, 5000).await.unwrap();
    assert!(
        log.iter().any(|l| l.line.starts_with("[part 0] ")),
        "parts' logs reach the job's log"
    );
    wait_scratch_removed(&farm).await;
    assert!(
        !farm.outputs().iter().any(|o| o.contains(".ffarm-scratch")),
        "scratch is never an output"
    );
    farm.cleanup().await;
}

/// A split HLS job: the parts' segments are published from the scratch as they were
/// written, the assembly adds the playlists (the master last, with the audio rendition), and
/// the whole plays back every frame cleanly.
async fn a_split_hls_job_publishes_the_parts_segments(backend: Backend) {
    let mut farm = farm(backend).await;
    farm.start_in_process(config(&farm, 2));
    let job = farm
        .submit("in/long.mp4", "hls-abr", |s| s.chunking = PARTS_OF_30S)
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let keys: Vec<&str> = done.outputs.iter().map(|o| o.key.as_str()).collect();
    let master = keys.last().expect("outputs");
    let text = std::fs::read_to_string(farm.bucket_dir().join(master)).unwrap();
    assert!(
        text.contains("#EXT-X-STREAM-INF") && text.contains("#EXT-X-MEDIA:TYPE=AUDIO"),
        "the master goes last: {keys:?}\n{text}"
    );
    assert!(keys.iter().any(|k| k.ends_with("_audio.m3u8")), "{keys:?}");
    let segments = keys.iter().filter(|k| k.ends_with(".ts")).count();
    // 240 s in 6 s segments, for the video rendition and the audio.
    assert!(segments >= 80, "{segments} segments: {keys:?}");
    for o in &done.outputs {
        let size = std::fs::metadata(farm.bucket_dir().join(&o.key)).map(|m| m.len());
        assert_eq!(size.ok(), Some(o.bytes), "{} as recorded", o.key);
    }
    // The playlists were read back before the job succeeded: every segment there.
    let check = done
        .outputs
        .last()
        .unwrap()
        .check
        .clone()
        .expect("the master's check");
    assert!(check.files >= 40, "{check:?}");
    assert!(
        (check.duration_seconds.unwrap() - 240.0).abs() < 0.1,
        "{check:?}"
    );
    let top = farm.bucket_dir().join(master);
    assert_eq!(count_frames(&top, "v:0"), count_frames(&long_input(), "v"));
    assert_eq!(decode_errors(&top), "", "decodes without an error");
    let log = farm.store.logs(&job.id, None, 0, 5000).await.unwrap();
    assert!(
        log.iter()
            .any(|l| l.line.contains("copied ") && l.line.contains(" object(s)")),
        "segments are copied, not re-uploaded"
    );
    wait_scratch_removed(&farm).await;
    farm.cleanup().await;
}

/// The first part (video or the audio, which goes first) running on `worker` with at least
/// `percent` done.
fn running_part_on(job: &Job, worker: &str, percent: f64) -> Option<u32> {
    job.parts
        .iter()
        .find(|p| {
            p.kind != PartKind::Assemble
                && p.status == Status::Running
                && p.worker.as_deref() == Some(worker)
                && p.progress.as_ref().is_some_and(|g| g.percent >= percent)
        })
        .map(|p| p.seq)
}

async fn a_worker_killed_mid_part_costs_that_part_only(backend: Backend) {
    let mut farm = farm(backend).await;
    let env = [
        ("FFARM_WORKER__LEASE_SECONDS", "3"),
        ("FFARM_RETRY__BASE_SECONDS", "0.2"),
    ];
    let a = farm.start_process(&["--workers", "1", "--worker-id", "victim"], &env);
    farm.start_process(&["--workers", "1", "--worker-id", "survivor"], &env);
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| s.chunking = PARTS_OF_30S)
        .await;
    let running = farm
        .wait_for(&job.id, LIMIT, |j| {
            running_part_on(j, "victim", 10.0).is_some()
        })
        .await;
    let killed = running_part_on(&running, "victim", 10.0).unwrap();
    farm.signal_and_wait(a, Signal::SIGKILL).await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_whole(&farm, &done);
    for p in &done.parts {
        let want = if p.seq == killed { 2 } else { 1 };
        assert_eq!(p.attempt, want, "part {}: {:?}", p.seq, done.parts);
    }
    farm.cleanup().await;
}

/// The `ffarm task` processes running under the farm's data directory.
fn task_processes(farm: &Farm) -> Vec<i32> {
    let data = farm.data.path().to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" task ")
            && cmdline.contains(&data)
            && crate::worker_harness::alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

async fn a_cancel_stops_every_part_within_a_second(backend: Backend) {
    let mut farm = farm(backend).await;
    farm.start_in_process(config(&farm, 2));
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| s.chunking = PARTS_OF_30S)
        .await;
    farm.wait_for(&job.id, LIMIT, |j| {
        j.parts
            .iter()
            .filter(|p| p.status == Status::Running)
            .count()
            >= 2
    })
    .await;
    assert!(task_processes(&farm).len() >= 2, "two parts run at once");
    let asked = Instant::now();
    farm.store.cancel(&job.id, "test").await.unwrap();
    while !task_processes(&farm).is_empty() {
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "part processes still running after 1 s: {:?}",
            task_processes(&farm)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = farm.wait_terminal(&job.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Cancelled);
    wait_scratch_removed(&farm).await;
    assert!(farm.outputs().is_empty(), "{:?}", farm.outputs());
    farm.cleanup().await;
}

async fn a_retry_reuses_the_finished_parts(backend: Backend) {
    let mut farm = farm(backend).await;
    let mut c = config(&farm, 2);
    // A failed job's scratch is kept a while, as its workspace is.
    c.worker.keep_failed_workspace_seconds = 600;
    farm.start_in_process(c);
    // The storage failure: where the output folder should be, a file.
    let blocked = farm.bucket_dir().join("out/long_mp4");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, b"not a folder").unwrap();
    let job = farm
        .submit("in/long.mp4", "h264-720p", |s| {
            s.chunking = PARTS_OF_30S;
            s.max_attempts = 1;
        })
        .await;
    let failed = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(failed.status, Status::Failed, "{:?}", failed.parts);
    let assembly = failed.parts.last().unwrap();
    assert_eq!(assembly.status, Status::Failed);
    let before: Vec<_> = failed
        .parts
        .iter()
        .filter(|p| p.kind != PartKind::Assemble)
        .cloned()
        .collect();
    assert!(before.iter().all(|p| p.status == Status::Succeeded));
    std::fs::remove_file(&blocked).unwrap();
    farm.store.retry(&job.id).await.unwrap();
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_whole(&farm, &done);
    assert_eq!(done.attempt, 2);
    for p in &before {
        let now = done.parts.iter().find(|q| q.seq == p.seq).unwrap();
        assert_eq!(
            (now.attempt, now.finished_at),
            (p.attempt, p.finished_at),
            "part {} was reused, not run again",
            p.seq
        );
    }
    farm.cleanup().await;
}

async fn auto_splits_only_when_the_farm_has_room(backend: Backend) {
    let mut farm = farm(backend).await;
    let mut c = config(&farm, 1);
    c.chunking.min_seconds = 60;
    c.chunking.segment_seconds = 30;
    farm.start_in_process(c);
    // One slot and three jobs: the first one claimed finds no free slot for parts.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(farm.submit("in/long.mp4", "h264-720p", |_| {}).await);
    }
    let first = farm
        .wait_for(&jobs[0].id, LIMIT, |j| {
            j.progress
                .as_ref()
                .is_some_and(|p| p.phase == ffarm::progress::Phase::Transcoding)
        })
        .await;
    assert!(first.parts.is_empty(), "split although the queue was full");
    for j in &jobs {
        farm.store.cancel(&j.id, "test").await.unwrap();
    }
    for j in &jobs {
        farm.wait_terminal(&j.id, Duration::from_secs(30)).await;
    }
    farm.cleanup().await;
}

async fn auto_splits_a_long_input_when_slots_are_free(backend: Backend) {
    let mut farm = farm(backend).await;
    let mut c = config(&farm, 2);
    c.chunking.min_seconds = 60;
    c.chunking.segment_seconds = 30;
    farm.start_in_process(c);
    let job = farm.submit("in/long.mp4", "h264-720p", |_| {}).await;
    let split = farm.wait_for(&job.id, LIMIT, |j| !j.parts.is_empty()).await;
    assert_eq!(split.chunking, Chunking::Auto);
    farm.store.cancel(&job.id, "test").await.unwrap();
    farm.wait_terminal(&job.id, Duration::from_secs(30)).await;
    farm.cleanup().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_split_job_comes_out_whole,
    a_split_hls_job_publishes_the_parts_segments,
    a_worker_killed_mid_part_costs_that_part_only,
    a_cancel_stops_every_part_within_a_second,
    a_retry_reuses_the_finished_parts,
    auto_splits_only_when_the_farm_has_room,
    auto_splits_a_long_input_when_slots_are_free,
);
