//! Media fuzzing through the sandboxed engine: 120 damaged copies of the fixtures
//! (`fuzz_mutate`, a fixed seed) as jobs on an `ffarm worker` process with two slots and
//! the sandbox on. The worker lives through all of them and stays registered, every job
//! ends, and every failure is a named one (`fuzz_run`): no `task-crashed`, no `internal`,
//! no time limit reached. Engine crashes and stalls are allowed (retryable, named) but
//! counted and printed. The long run is `cargo bench --bench fuzz` (BENCHMARKS.md). First,
//! the mutator itself: the same seed makes the same files, every kind changes its file, and
//! the box and element walks find what they edit.

use std::time::Duration;

use ffarm::worker::WorkerState;

use crate::fuzz_mutate::{
    BoxAt, CLUSTER, DEFAULT_SEED, Kind, Mutant, Rng, SEGMENT, SIMPLE_BLOCK, TRACK_ENTRY, TRACKS,
    box_edit, boxes, corpus, elements, mutant, seeds, size_field,
};
use crate::fuzz_run::{self, ENGINE_CRASHED, STALLED, Settings};
use crate::helpers::{valid, valid_dir};
use crate::worker_harness::{Backend, Farm, alive};

const FILES: usize = 120;

#[test]
fn fuzz_mutate_same_seed_same_bytes() {
    let seeds = seeds(&valid_dir());
    let a = corpus(&seeds, 7, 24);
    let b = corpus(&seeds, 7, 24);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert!(x.bytes == y.bytes, "{} differs between runs", x.name);
    }
    let c = corpus(&seeds, 8, 24);
    assert!(a.iter().zip(&c).any(|(x, y)| x.bytes != y.bytes));
    // A file can be made again from its index and seed alone.
    assert_eq!(mutant(&seeds, 13, a[13].seed).bytes, a[13].bytes);
}

#[test]
fn fuzz_mutate_every_kind_changes_the_file() {
    let seeds = seeds(&valid_dir());
    let files = corpus(&seeds, DEFAULT_SEED, 120);
    for kind in Kind::ALL {
        let of: Vec<&Mutant> = files.iter().filter(|m| m.kind == kind).collect();
        assert_eq!(of.len(), 20, "{kind:?}");
        for m in of {
            let name = m.name.rsplit('-').next().unwrap();
            let (stem, ext) = name.rsplit_once('.').unwrap();
            let source = seeds
                .iter()
                .find(|s| s.stem == stem && s.ext == ext)
                .unwrap();
            assert!(source.bytes != m.bytes, "{} is its fixture", m.name);
            assert!(m.name.contains(kind.name()), "{}", m.name);
        }
    }
    // Names are unique, and keys a bucket takes.
    let mut names: Vec<&str> = files.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), files.len());
    for n in names {
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{n}"
        );
    }
}

#[test]
fn fuzz_mutate_walks_boxes_and_elements() {
    let mp4 = std::fs::read(valid("h264_aac.mp4")).unwrap();
    let found = boxes(&mp4);
    let names: Vec<String> = found.iter().map(BoxAt::name).collect();
    for want in [
        "ftyp", "moov", "trak", "stbl", "stsz", "avcC", "esds", "mdat",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let moov = found.iter().find(|b| b.name() == "moov").unwrap();
    assert_eq!(moov.depth, 0);
    // An edit rewrites a box's header where the walk found it.
    let (edited, detail) = box_edit(&mp4, &mut Rng::new(3));
    assert_eq!(edited.len(), mp4.len());
    assert!(edited != mp4, "{detail}");

    let mkv = std::fs::read(valid("hevc_aac.mkv")).unwrap();
    let found = elements(&mkv);
    for id in [SEGMENT, TRACKS, TRACK_ENTRY, CLUSTER, SIMPLE_BLOCK] {
        assert!(found.iter().any(|e| e.id == id), "{id:x}");
    }
    let segment = found.iter().find(|e| e.id == SEGMENT).unwrap();
    let at = segment.size_at;
    assert_eq!(
        size_field(segment.size_len, segment.size.unwrap()),
        mkv[at..at + segment.size_len].to_vec()
    );
    assert_eq!(size_field(1, u64::MAX), vec![0xFF]);
    assert_eq!(size_field(8, 5), vec![1, 0, 0, 0, 0, 0, 0, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fuzzed_media_fails_by_name_and_never_takes_the_worker_down() {
    let mutants = corpus(&seeds(&valid_dir()), DEFAULT_SEED, FILES);
    let mut farm = Farm::new(Backend::Sqlite).await;
    let worker = farm.start_process(
        &["--workers", "2", "--worker-id", "fuzz/1"],
        &[("FFARM_WORKER__STALL_SECONDS", "20"), ("FFARM_LOG", "warn")],
    );
    let settings = Settings {
        job_timeout_seconds: 90,
        deadline: Duration::from_secs(900),
    };
    let bucket = farm.bucket_dir();
    let mut worker_alive = || {
        if alive(worker as i32) {
            Ok(())
        } else {
            Err(format!("the worker process {worker} exited"))
        }
    };
    let report = fuzz_run::run(
        &farm.store,
        &bucket,
        DEFAULT_SEED,
        &mutants,
        &settings,
        &mut worker_alive,
    )
    .await;
    let table = report.table();
    println!("{table}");

    assert!(report.worker_died.is_none(), "{table}");
    assert!(alive(worker as i32), "{table}");
    let workers = farm.store.workers().await.unwrap();
    let me = workers
        .iter()
        .find(|w| w.id == "fuzz/1")
        .expect("the worker is registered");
    assert_eq!(
        WorkerState::of(me, ffarm::job::Timestamp::now()),
        WorkerState::Active,
        "{me:?}"
    );
    assert!(
        me.sandbox.as_ref().is_some_and(|s| s.enabled),
        "the sandbox is on: {me:?}"
    );
    assert!(report.stuck.is_empty(), "jobs that never ended:\n{table}");
    assert_eq!(report.ended.len(), FILES, "{table}");
    assert!(report.unnamed().is_empty(), "unnamed failures:\n{table}");
    // Allowed, but seen: a crash or a stall is printed with its file above.
    println!(
        "engine crashes: {}, stalls: {}",
        report.count(ENGINE_CRASHED),
        report.count(STALLED)
    );
    // The corpus is damaged, not destroyed: some files still transcode, many do not.
    assert!(report.count("succeeded") > 0, "{table}");
    assert!(report.failed() > 0, "{table}");
    farm.cleanup().await;
}
