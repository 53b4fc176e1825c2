//! Progress reports (at least once a second, monotonic, ending at 100) and stop requests
//! (effective within a second, partial output and every directory the run made removed,
//! reported as stopped).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ffarm::media::{self, ErrorClass, MediaError};
use ffarm::progress::{Phase, Progress};
use ffarm::stop::StopToken;

use crate::helpers::{paths_under, preset, tempdir, valid};

#[test]
fn progress_arrives_every_second_and_reaches_100() {
    let dir = tempdir();
    let mut reports: Vec<(Instant, Progress)> = Vec::new();
    let started = Instant::now();
    media::transcode(
        &valid("hls_source_1080p.mp4"),
        &dir.path().join("p.mp4"),
        preset("h264-720p"),
        &StopToken::new(),
        &mut |p: &Progress| reports.push((Instant::now(), p.clone())),
    )
    .unwrap();
    let total = started.elapsed();
    assert!(
        total > Duration::from_secs(2),
        "long enough to see several reports ({total:?})"
    );
    let phases: Vec<Phase> = reports.iter().map(|r| r.1.phase).collect();
    assert_eq!(phases.first(), Some(&Phase::Probing));
    assert_eq!(phases.last(), Some(&Phase::Done));
    assert!(phases.contains(&Phase::Transcoding));
    let last = &reports.last().unwrap().1;
    assert_eq!(last.percent, 100.0);
    assert!(
        (last.out_time_seconds - 13.0).abs() < 0.2,
        "out time {}",
        last.out_time_seconds
    );
    assert_eq!(last.frames, 13 * 25);

    let mut previous = started;
    let mut percent = 0.0;
    let mut frames = 0;
    for (at, p) in &reports {
        assert!(
            *at - previous <= Duration::from_millis(1000),
            "a gap of {:?} between reports",
            *at - previous
        );
        previous = *at;
        assert!(
            p.percent >= percent,
            "percent went back: {} after {percent}",
            p.percent
        );
        assert!(p.frames >= frames, "frames went back");
        percent = p.percent;
        frames = p.frames;
    }
    let working: Vec<&Progress> = reports
        .iter()
        .map(|r| &r.1)
        .filter(|p| p.phase == Phase::Transcoding && p.frames > 0)
        .collect();
    assert!(!working.is_empty(), "reports while transcoding");
    for p in working {
        assert!(p.fps.unwrap() > 0.0, "fps");
        assert!(p.speed.unwrap() > 0.0, "speed");
        assert!(p.eta_seconds.is_some(), "eta");
        assert!(p.percent > 0.0 && p.percent < 100.0);
    }
}

fn stop_during(preset_name: &str, output: &str) {
    let dir = tempdir();
    let out = dir.path().join(output);
    let stop = StopToken::new();
    let (tx, rx) = mpsc::channel::<f64>();
    let worker = {
        let stop = stop.clone();
        let out = out.clone();
        let p = preset(preset_name).clone();
        std::thread::spawn(move || {
            let result = media::transcode(
                &valid("long_720p.mp4"),
                &out,
                &p,
                &stop,
                &mut |p: &Progress| {
                    if p.phase == Phase::Transcoding {
                        let _ = tx.send(p.percent);
                    }
                },
            );
            (result, Instant::now())
        })
    };
    // Wait until it is really transcoding, then stop it.
    let percent = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("transcoding started");
    assert!(percent < 50.0, "stopped part-way ({percent}%)");
    let asked = Instant::now();
    stop.stop();
    let (result, returned) = worker.join().unwrap();
    let latency = returned - asked;
    assert!(
        latency < Duration::from_secs(1),
        "{preset_name}: stop took {latency:?}"
    );
    match result {
        Err(e @ MediaError::Stopped) => assert_eq!(e.class(), ErrorClass::Stopped),
        other => panic!("{preset_name}: expected Stopped, got {other:?}"),
    }
    assert!(
        paths_under(dir.path()).is_empty(),
        "{preset_name}: partial output or directories left: {:?}",
        paths_under(dir.path())
    );
}

#[test]
fn stop_takes_effect_within_a_second_and_removes_partial_output() {
    // Into directories that do not exist yet: the run makes them, and takes them away.
    stop_during("h264-720p", "made/for/it/s.mp4");
}

#[test]
fn stop_mid_hls_ladder_removes_every_segment() {
    stop_during("hls-abr", "ladder");
}

#[test]
fn a_stop_before_start_never_writes() {
    let dir = tempdir();
    let stop = StopToken::new();
    stop.stop();
    let r = media::transcode(
        &valid("h264_aac.mp4"),
        &dir.path().join("x.mp4"),
        preset("mp4"),
        &stop,
        &mut |_: &Progress| {},
    );
    assert!(matches!(r, Err(MediaError::Stopped)), "{r:?}");
    assert!(paths_under(dir.path()).is_empty());
}
