//! A job's media options through a real `ffarm worker`: a clipped job's output is the clip
//! (its check says the clip's length); a clip past the input's end fails the job
//! `clip-out-of-range` at once, without a retry; a watermark from the bucket shows in the
//! output, and a missing one fails the job `watermark-not-found`; quality figures land on
//! the output's check; audio languages pick the tracks (an HLS job's become its `AUDIO`
//! group) and a language the input lacks fails the job `audio-language-missing`.

use std::time::Duration;

use ffarm::job::{AudioChoice, Clip, Position, Status, Watermark};

use crate::helpers::{ffprobe, image, num, valid};
use crate::media_audio_languages::{near_hz, pitch};
use crate::media_watermark::{MAGENTA, mean, near, picture};
use crate::worker_harness::{Backend, Farm};

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clipped_job_makes_the_clip_and_one_past_the_end_fails_by_name() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.start_process(&["--workers", "1"], &[]);
    farm.put(&valid("long_720p.mp4"), "in/long.mp4");

    let job = farm
        .submit("in/long.mp4", "h264-480p", |s| {
            s.media.clip = Some(Clip {
                start: 12.0,
                end: Some(15.5),
            });
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let check = done.outputs[0].check.clone().unwrap();
    assert!(
        (check.duration_seconds.unwrap() - 3.5).abs() < 0.05,
        "{check:?}"
    );
    let file = farm.bucket_dir().join(&done.outputs[0].key);
    let d = num(&ffprobe(&file)["format"]["duration"]);
    assert!((d - 3.5).abs() < 0.05, "{d}");

    let job = farm
        .submit("in/long.mp4", "h264-480p", |s| {
            s.output.prefix = "past/".into();
            s.media.clip = Some(Clip {
                start: 30.0,
                end: Some(90.0),
            });
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "clip-out-of-range", "{err:?}");
    assert!(
        err.message.contains("clip.end") && err.message.contains("90"),
        "{err:?}"
    );
    assert!(!err.retryable);
    assert_eq!(done.attempt, 1, "no second attempt");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_from_the_bucket_marks_the_output() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.start_process(&["--workers", "1"], &[]);
    farm.put(&valid("h264_aac.mp4"), "in/clip.mp4");
    farm.put(&image("logo.png"), "logos/acme.png");
    let mark = |key: &str| Watermark {
        bucket: None,
        key: key.into(),
        position: Position::TopLeft,
        margin: 0.05,
        opacity: 1.0,
        height_ratio: 0.2,
    };
    let job = farm
        .submit("in/clip.mp4", "h264-480p", |s| {
            s.media.watermark = Some(mark("logos/acme.png"));
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let file = farm.bucket_dir().join(&done.outputs[0].key);
    let marked = picture(&file, 10);
    assert!(near(mean(&marked, (18, 18, 144, 72)), MAGENTA, 20.0));

    // Quality figures land on the output's check.
    let job = farm
        .submit("in/clip.mp4", "h264-480p", |s| {
            s.output.prefix = "measured/".into();
            s.media.quality = true;
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let q = &done.outputs[0].check.as_ref().unwrap().quality;
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(
        q[0].ssim > 0.9 && q[0].psnr_db > 30.0 && q[0].frames == 60,
        "{q:?}"
    );

    let job = farm
        .submit("in/clip.mp4", "h264-480p", |s| {
            s.output.prefix = "nomark/".into();
            s.media.watermark = Some(mark("logos/gone.png"));
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "watermark-not-found", "{err:?}");
    assert!(err.message.contains("logos/gone.png"), "{err:?}");
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_audio_languages_pick_its_tracks() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.start_process(&["--workers", "1"], &[]);
    farm.put(&valid("three_audio.mkv"), "in/talk.mkv");
    let languages = |codes: &[&str]| {
        Some(AudioChoice {
            languages: codes.iter().map(|c| c.to_string()).collect(),
        })
    };
    // Two languages into HLS: an AUDIO group, every rendition published.
    let job = farm
        .submit("in/talk.mkv", "hls-720p", |s| {
            s.media.audio = languages(&["fre", "eng"]);
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let top = done.outputs.iter().find(|o| o.check.is_some()).unwrap();
    let check = top.check.clone().unwrap();
    assert_eq!(
        check.files,
        3 * 2,
        "three playlists, a segment each: {check:?}"
    );
    let top = farm.bucket_dir().join(&top.key);
    let master = std::fs::read_to_string(&top).unwrap();
    let renditions: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .collect();
    assert_eq!(renditions.len(), 2, "{master}");
    assert!(renditions[0].contains("LANGUAGE=\"fra\"") && renditions[0].contains("DEFAULT=YES"));
    assert!(renditions[1].contains("LANGUAGE=\"eng\""), "{master}");
    for (line, hz) in renditions.iter().zip([880.0, 440.0]) {
        let uri = line.split("URI=\"").nth(1).unwrap().trim_end_matches('"');
        let playlist = top.parent().unwrap().join(uri);
        let text = std::fs::read_to_string(&playlist).unwrap();
        let segment = text.lines().find(|l| !l.starts_with('#')).unwrap();
        let got = pitch(&top.parent().unwrap().join(segment), 0);
        assert!(near_hz(got, hz), "{uri}: {got} Hz");
    }

    // A language the input lacks fails the job by name, at once.
    let job = farm
        .submit("in/talk.mkv", "h264-480p", |s| {
            s.output.prefix = "none/".into();
            s.media.audio = languages(&["deu"]);
            s.chunking = ffarm::job::Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Failed);
    let err = done.error.clone().unwrap();
    assert_eq!(err.code, "audio-language-missing", "{err:?}");
    assert!(err.message.contains("deu"), "{err:?}");
    assert!(!err.retryable);
    assert_eq!(done.attempt, 1, "no second attempt");
    farm.cleanup().await;
}
