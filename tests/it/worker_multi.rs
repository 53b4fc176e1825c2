//! Jobs with several outputs, end to end: `POST /v1/jobs` with `presets` (and the bad
//! lists as 400s naming the problem), a grouped trigger rule making one job of its presets
//! (and refusing `{preset}` in its output or a part length), and real workers making every
//! output from one engine on SQLite and PostgreSQL, named `STEM.PRESET.EXT`.

use std::time::Duration;

use ffarm::api::AppError;
use ffarm::config::TriggerRule;
use ffarm::job::{Chunking, Status};
use ffarm::serve::ServeError;
use ffarm::worker::Shutdown;
use reqwest::StatusCode;
use serde_json::json;

use crate::api_harness::{Api, api_config, case};
use crate::helpers::{ffprobe, ffprobe_streams, num, valid};
use crate::worker_harness::{Backend, Farm};

const SET: &str = "hls-abr+h264-720p+poster-jpg";

fn grouped_rule() -> TriggerRule {
    TriggerRule {
        suffixes: vec![],
        presets: vec!["h264-480p".into(), "poster-jpg".into()],
        group: true,
        ..TriggerRule::default_rule()
    }
}

#[tokio::test]
async fn the_api_takes_a_list_of_presets_and_refuses_bad_ones() {
    let api = Api::start(Backend::Sqlite, |c| c.triggers = vec![grouped_rule()]).await;
    api.farm.put(&valid("h264_aac.mp4"), "src/clip.mp4");
    let body = |extra: serde_json::Value| {
        let mut b = json!({"input": {"bucket": "media", "key": "src/clip.mp4"}});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let (status, job) = api
        .post(
            "/v1/jobs",
            &body(json!({"presets": ["hls-abr", "h264-720p", "poster-jpg"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["preset"], SET);
    assert_eq!(
        job["presets"],
        json!(["hls-abr", "h264-720p", "poster-jpg"])
    );
    assert_eq!(
        job["chunking"], "off",
        "a job of several presets runs whole"
    );
    // One preset in the list is a plain job.
    let (status, one) = api
        .post("/v1/jobs", &body(json!({"presets": ["h264-720p"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{one}");
    assert_eq!(one["preset"], "h264-720p");
    assert_eq!(one["chunking"], "auto");

    let nine: Vec<&str> = std::iter::repeat_n("mp4", 9).collect();
    api.check_errors([
        case("a preset named twice")
            .post("/v1/jobs", body(json!({"presets": ["mp4", "mkv", "mp4"]})))
            .answers(400, "invalid-request")
            .saying(&["'mp4' is named twice"]),
        case("no presets")
            .post("/v1/jobs", body(json!({"presets": []})))
            .answers(400, "invalid-request")
            .saying(&["1 to 8"]),
        case("too many presets")
            .post("/v1/jobs", body(json!({"presets": nine})))
            .answers(400, "invalid-request")
            .saying(&["1 to 8", "not 9"]),
        case("an unknown preset in the list")
            .post("/v1/jobs", body(json!({"presets": ["mp4", "h265-8k"]})))
            .answers(400, "unknown-preset")
            .saying(&["h265-8k"]),
        case("parts for a job of several presets")
            .post(
                "/v1/jobs",
                body(json!({"presets": ["mp4", "mkv"], "chunking": {"segment_seconds": 10}})),
            )
            .answers(400, "invalid-request")
            .saying(&["runs whole"]),
        case("preset and presets")
            .post(
                "/v1/jobs",
                body(json!({"preset": "mp4", "presets": ["mkv"]})),
            )
            .answers(400, "invalid-request")
            .saying(&["not several"]),
    ])
    .await;

    // A grouped rule: one job for both presets.
    let event = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "media"}, "object": {"key": "in/a.mp4", "size": 10, "eTag": "e1"}}}]});
    let (status, answer) = api.post("/v1/triggers/s3", &event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let jobs = answer["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{answer}");
    assert_eq!(jobs[0]["preset"], "h264-480p+poster-jpg");
    let (_, fired) = api
        .get(&format!("/v1/jobs/{}", jobs[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!(fired["chunking"], "off");
    api.shutdown().await;
}

#[tokio::test]
async fn a_grouped_rule_with_a_preset_placeholder_or_parts_stops_the_start() {
    for (rule, field, words) in [
        (
            TriggerRule {
                output: "out/{preset}".into(),
                ..grouped_rule()
            },
            "output",
            "leave {preset} out",
        ),
        (
            TriggerRule {
                chunking: Some(Chunking::Segments {
                    segment_seconds: 30,
                }),
                ..grouped_rule()
            },
            "chunking",
            "run whole",
        ),
    ] {
        let farm = Farm::new(Backend::Sqlite).await;
        let mut config = api_config(&farm);
        config.triggers = vec![rule];
        let (_tx, rx) = tokio::sync::watch::channel(0u8);
        let err = ffarm::serve::run_on(farm.store.clone(), config, Shutdown(rx), |_| {})
            .await
            .unwrap_err();
        let ServeError::App(AppError::TriggerRule { error, .. }) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(error.field(), field, "{error}");
        assert!(error.to_string().contains(words), "{error}");
        farm.cleanup().await;
    }
}

async fn every_output_from_one_engine(backend: Backend) {
    let mut farm = Farm::new(backend).await;
    match backend {
        Backend::Sqlite => {
            let config = farm.config();
            farm.start_in_process(config);
        }
        Backend::Postgres => {
            farm.start_process(&["--workers", "1"], &[]);
        }
    }
    farm.put(&valid("h264_aac.mp4"), "in/clip.mp4");
    let job = farm
        .submit("in/clip.mp4", SET, |s| s.output.prefix = "out/".into())
        .await;
    let done = farm.wait_terminal(&job.id, Duration::from_secs(120)).await;
    assert_eq!(done.status, Status::Succeeded, "{:?}", done.error);
    assert_eq!(done.presets, ["hls-abr", "h264-720p", "poster-jpg"]);
    let keys: Vec<&str> = done.outputs.iter().map(|o| o.key.as_str()).collect();
    for want in [
        "out/clip.hls-abr.m3u8",
        "out/clip.h264-720p.mp4",
        "out/clip.poster-jpg.jpg",
    ] {
        assert!(keys.contains(&want), "{want} in {keys:?}");
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with("out/clip.hls-abr_") && k.ends_with(".ts")),
        "{keys:?}"
    );
    let bucket = farm.bucket_dir();
    let mp4 = ffprobe(&bucket.join("out/clip.h264-720p.mp4"));
    let input = ffprobe(&valid("h264_aac.mp4"));
    let d = |p: &serde_json::Value| num(&p["format"]["duration"]);
    assert!(
        (d(&mp4) - d(&input)).abs() < 0.1,
        "{} of {}",
        d(&mp4),
        d(&input)
    );
    let jpg = ffprobe(&bucket.join("out/clip.poster-jpg.jpg"));
    assert_eq!(ffprobe_streams(&jpg, "video")[0]["codec_name"], "mjpeg");
    let log = farm.log_lines(&job.id).await;
    assert!(
        log.iter().any(|l| l
            .contains("transcoding with presets hls-abr, h264-720p, poster-jpg from one decode")),
        "{log:?}"
    );
    farm.cleanup().await;
}

#[tokio::test]
async fn every_output_from_one_engine_sqlite() {
    every_output_from_one_engine(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_output_from_one_engine_postgres() {
    every_output_from_one_engine(Backend::Postgres).await;
}
