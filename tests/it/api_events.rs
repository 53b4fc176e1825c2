//! Server-Sent Events over real HTTP while a real transcode runs: the job's stream opens with
//! the job, pushes progress at least every second while it transcodes, ends with the
//! finished job; the all-jobs stream relays status changes and progress as often. On SQLite with an in-process
//! worker, and on PostgreSQL with a worker process of its own.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_harness::{Api, assert_error};
use crate::worker_harness::{Backend, long_clip};

struct Seen {
    name: String,
    data: Value,
    at: Instant,
}

async fn follow(request: reqwest::RequestBuilder, limit: Duration) -> Vec<Seen> {
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream().eventsource();
    let mut seen = vec![];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(e))) => {
                let s = Seen {
                    name: e.event,
                    data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
                    at: Instant::now(),
                };
                seen.push(s);
            }
            Ok(Some(Err(e))) => panic!("event stream: {e}"),
            Ok(None) => return seen,
            Err(_) => panic!("no end of the event stream within {limit:?}"),
        }
    }
}

async fn progress_of_a_transcode(backend: Backend) {
    let mut api = Api::start(backend, |_| {}).await;
    api.farm.put(&long_clip(), "src/long.mp4");
    let (s, job) = api
        .post(
            "/v1/jobs",
            &json!({"input": {"bucket": "media", "key": "src/long.mp4"}, "preset": "h264-480p"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_string();

    let all = {
        let url = api.url.clone();
        let http = api.http.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let resp = http.get(format!("{url}/v1/events")).send().await.unwrap();
            let mut stream = resp.bytes_stream().eventsource();
            let (mut statuses, mut transcoding) = (vec![], vec![]);
            while let Ok(Some(Ok(e))) =
                tokio::time::timeout(Duration::from_secs(120), stream.next()).await
            {
                let v: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                if v["id"] != id.as_str() {
                    continue;
                }
                if e.event == "status" {
                    statuses.push(v["status"].as_str().unwrap_or("").to_string());
                    if v["status"] == "succeeded" {
                        break;
                    }
                } else if e.event == "progress" && v["progress"]["phase"] == "transcoding" {
                    transcoding.push(Instant::now());
                }
            }
            (statuses, transcoding)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let job_stream = tokio::spawn(follow(
        api.request(Method::GET, &format!("/v1/jobs/{id}/events")),
        Duration::from_secs(120),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The worker's metrics: the API's own in process, or its listener as a process.
    let metrics_url = match backend {
        Backend::Sqlite => {
            let config = api.farm.config();
            api.farm.start_in_process(config);
            format!("{}/metrics", api.url)
        }
        Backend::Postgres => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            api.farm
                .start_process(&["--workers", "1", "--metrics", &addr], &[]);
            format!("http://{addr}/metrics")
        }
    };
    let events = job_stream.await.unwrap();

    assert_eq!(events[0].name, "job");
    let last = events.last().unwrap();
    assert_eq!(last.name, "job");
    assert_eq!(last.data["status"], "succeeded", "{}", last.data);
    let transcoding: Vec<&Seen> = events
        .iter()
        .filter(|e| e.name == "progress" && e.data["progress"]["phase"] == "transcoding")
        .collect();
    assert!(
        transcoding.len() >= 3,
        "{} progress events",
        transcoding.len()
    );
    let percents: Vec<f64> = transcoding
        .iter()
        .map(|e| e.data["progress"]["percent"].as_f64().unwrap())
        .collect();
    assert!(percents.windows(2).all(|w| w[1] >= w[0]), "{percents:?}");
    assert!(
        transcoding
            .iter()
            .any(|e| e.data["progress"]["fps"].as_f64().unwrap_or(0.0) > 0.0)
    );
    // Pushed within a second (plus a little slack for a loaded machine).
    let gaps: Vec<f64> = transcoding
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    assert!(worst < 1.6, "progress gaps {gaps:?}");
    // Status changes came as whole jobs.
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "job")
        .map(|e| e.data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "running", "succeeded"]);

    let (relayed, relayed_progress) = tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .unwrap()
        .unwrap();
    // The all-jobs stream pushes progress as often as the job's own.
    assert!(relayed_progress.len() >= 3, "{relayed_progress:?}");
    let gaps: Vec<f64> = relayed_progress
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    assert!(worst < 1.6, "all-jobs progress gaps {gaps:?}");
    assert_eq!(
        relayed.last().map(String::as_str),
        Some("succeeded"),
        "{relayed:?}"
    );
    assert!(relayed.contains(&"running".to_string()), "{relayed:?}");

    // Its duration and encode rate are in the metrics.
    let text = api
        .http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "ffarm_job_duration_seconds_count{preset=\"h264-480p\",status=\"succeeded\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("ffarm_encode_fps_count{preset=\"h264-480p\"} 1"),
        "{text}"
    );

    // A finished job's stream is just the job.
    let done = follow(
        api.request(Method::GET, &format!("/v1/jobs/{id}/events")),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(done.len(), 1);
    assert_error(
        &api.get("/v1/jobs/nope/events").await,
        404,
        "job-not-found",
        &[],
    );
    api.shutdown().await;
}

#[tokio::test]
async fn progress_of_a_transcode_sqlite() {
    progress_of_a_transcode(Backend::Sqlite).await;
}

#[tokio::test]
async fn progress_of_a_transcode_postgres() {
    progress_of_a_transcode(Backend::Postgres).await;
}
