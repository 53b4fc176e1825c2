//! Captions through a real `ffarm worker` (its engine sandboxed): a caption file from the
//! bucket joins the input's text streams as WebVTT renditions of an HLS ladder and as side
//! files, burn-in renders with the fonts the sandbox lets libass read, a missing caption
//! object fails `captions-not-found` and bytes that are not captions `captions-invalid`,
//! neither retried.

use std::time::Duration;

use ffarm::job::{Caption, Chunking, Status, SubtitleOptions};

use crate::helpers::{fixtures, valid};
use crate::media_watermark::picture;
use crate::worker_harness::{Backend, Farm};

const LIMIT: Duration = Duration::from_secs(120);

fn caption(key: &str, language: &str) -> Caption {
    Caption {
        bucket: None,
        key: key.into(),
        language: language.into(),
        name: Some("Deutsch".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caption_file_from_the_bucket_joins_the_renditions_and_side_files() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.start_process(&["--workers", "1"], &[]);
    farm.put(&valid("captions.mkv"), "in/movie.mkv");
    farm.put(&fixtures().join("captions/attached.srt"), "subs/de.srt");
    let job = farm
        .submit("in/movie.mkv", "hls-abr-captions", |s| {
            s.media.captions = vec![caption("subs/de.srt", "deu")];
            s.media.subtitles = Some(SubtitleOptions {
                side_files: true,
                burn_in: false,
            });
            s.chunking = Chunking::Off;
        })
        .await;
    let done = farm.wait_terminal(&job.id, LIMIT).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    let keys: Vec<&str> = done.outputs.iter().map(|o| o.key.as_str()).collect();
    let text = keys
        .iter()
        .filter(|k| k.ends_with(".m3u8"))
        .map(|k| std::fs::read_to_string(farm.bucket_dir().join(k)).unwrap())
        .find(|t| t.contains("#EXT-X-STREAM-INF"))
        .expect("a master playlist");
    let media: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("TYPE=SUBTITLES"))
        .collect();
    assert_eq!(media.len(), 3, "{text}");
    assert!(
        media[0].contains("NAME=\"Deutsch\"") && media[0].contains("LANGUAGE=\"deu\""),
        "{text}"
    );
    assert!(media[1].contains("LANGUAGE=\"eng\"") && media[2].contains("LANGUAGE=\"fra\""));
    // Every rendition's WebVTT file was uploaded beside its playlist.
    for n in 0..3 {
        assert!(
            keys.iter().any(|k| k.ends_with(&format!("_sub{n}.vtt"))),
            "{keys:?}"
        );
    }
    let side = keys
        .iter()
        .find(|k| k.ends_with(".deu.vtt"))
        .expect("a side file");
    let vtt = std::fs::read_to_string(farm.bucket_dir().join(side)).unwrap();
    assert!(
        vtt.starts_with("WEBVTT") && vtt.contains("00:00.500 --> 00:02.000\nattached line"),
        "{vtt}"
    );
    farm.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_in_renders_in_the_sandbox_and_bad_caption_files_fail_by_name() {
    let mut farm = Farm::new(Backend::Sqlite).await;
    farm.start_process(&["--workers", "1"], &[]);
    farm.put(&valid("captions.mkv"), "in/movie.mkv");
    farm.put(&fixtures().join("captions/random.srt"), "subs/random.srt");
    let mut pictures = Vec::new();
    for (prefix, burn_in) in [("plain/", false), ("burnt/", true)] {
        let job = farm
            .submit("in/movie.mkv", "h264-480p", |s| {
                s.output.prefix = prefix.into();
                s.media.subtitles = Some(SubtitleOptions {
                    side_files: false,
                    burn_in,
                });
                s.chunking = Chunking::Off;
            })
            .await;
        let done = farm.wait_terminal(&job.id, LIMIT).await;
        assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
        pictures.push(picture(&farm.bucket_dir().join(&done.outputs[0].key), 25));
    }
    // "hello" drawn in a real font: many pixels in the bottom quarter, none above.
    let (plain, burnt) = (&pictures[0], &pictures[1]);
    let w = plain.0 as usize;
    let changed = |rows: std::ops::Range<usize>| {
        let (from, to) = (rows.start * w * 3, rows.end * w * 3);
        plain.2[from..to]
            .chunks(3)
            .zip(burnt.2[from..to].chunks(3))
            .filter(|(a, b)| a.iter().zip(*b).any(|(p, q)| p.abs_diff(*q) > 60))
            .count()
    };
    let h = plain.1 as usize;
    assert!(changed(h * 3 / 4..h) > 100, "{}", changed(h * 3 / 4..h));
    assert_eq!(changed(0..h / 2), 0);

    for (key, code) in [
        ("subs/gone.srt", "captions-not-found"),
        ("subs/random.srt", "captions-invalid"),
    ] {
        let job = farm
            .submit("in/movie.mkv", "h264-480p", |s| {
                s.output.prefix = format!("{code}/");
                s.media.captions = vec![caption(key, "deu")];
                s.chunking = Chunking::Off;
            })
            .await;
        let done = farm.wait_terminal(&job.id, LIMIT).await;
        assert_eq!(done.status, Status::Failed);
        let err = done.error.clone().unwrap();
        assert_eq!(err.code, code, "{err:?}");
        assert!(!err.retryable, "{err:?}");
        assert!(
            err.message.contains(key.rsplit('/').next().unwrap()),
            "{err:?}"
        );
        assert_eq!(done.attempt, 1, "no second attempt");
    }
    farm.cleanup().await;
}
