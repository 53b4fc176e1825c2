//! Listing jobs over real HTTP, on SQLite and on PostgreSQL: filters and pagination across
//! thousands of jobs, counts by status, throughput per minute, the status counts in the
//! metrics, and every filter that cannot be read.

use ffarm::job::JobSpec;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api_harness::{Api, case};
use crate::helpers::spec;
use crate::worker_harness::Backend;

async fn listing(backend: Backend) {
    let api = Api::start(backend, |_| {}).await;
    const N: usize = 2500;
    for i in 0..N {
        let preset = if i % 5 == 0 { "h264-480p" } else { "h264-720p" };
        api.farm
            .store
            .submit(
                Some(format!("job-{i:05}")),
                JobSpec {
                    preset: preset.into(),
                    timeout_seconds: 60,
                    ..spec(&format!("in/{i:05}.mp4"))
                },
            )
            .await
            .unwrap();
    }
    for i in 0..10 {
        api.farm
            .store
            .cancel(&format!("job-{i:05}"), "test")
            .await
            .unwrap();
    }
    // Every job exactly once, newest first, over pages of 1000.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=1000&cursor={c}"),
            None => "/v1/jobs?limit=1000".into(),
        };
        let (s, page) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        for j in page["jobs"].as_array().unwrap() {
            assert!(seen.insert(j["id"].as_str().unwrap().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), N);
    assert_eq!(pages, 3);

    let count = |v: &Value| v["jobs"].as_array().unwrap().len();
    let (_, c) = api.get("/v1/jobs?status=cancelled&limit=1000").await;
    assert_eq!(count(&c), 10);
    assert!(
        c["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "cancelled")
    );
    let (_, c) = api.get("/v1/jobs?status=cancelled,queued&limit=5").await;
    assert_eq!(count(&c), 5);
    let (_, c) = api.get("/v1/jobs?preset=h264-480p&limit=1000").await;
    assert_eq!(count(&c), N / 5);
    let (_, c) = api.get("/v1/jobs?q=job-0001&limit=1000").await;
    assert_eq!(count(&c), 10);
    let (_, c) = api.get("/v1/jobs?since=1h&limit=10").await;
    assert_eq!(count(&c), 10);
    let (_, c) = api.get("/v1/jobs?until=2000-01-01").await;
    assert_eq!(count(&c), 0);
    let (_, c) = api
        .get("/v1/jobs?since=2000-01-01T00:00:00Z&time_field=finished&limit=1000")
        .await;
    assert_eq!(count(&c), 10);
    // Counts for the same filters, every status present.
    let (s, c) = api.get("/v1/jobs/counts").await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["total"], N);
    assert_eq!(c["counts"]["cancelled"], 10);
    assert_eq!(c["counts"]["failed"], 0);
    let (_, c) = api.get("/v1/jobs/counts?preset=h264-480p&q=job-0000").await;
    assert_eq!(
        (c["total"].as_u64(), c["counts"]["cancelled"].as_u64()),
        (Some(2), Some(2))
    );
    // Throughput per minute: the ten cancels ended within the window.
    let (s, st) = api.get("/v1/stats?minutes=5").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    let minutes = st["throughput"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    let cancelled: u64 = minutes
        .iter()
        .map(|m| m["cancelled"].as_u64().unwrap())
        .sum();
    assert_eq!(cancelled, 10);
    assert!(
        !st["queue"].as_array().unwrap().is_empty(),
        "sampled at start: {st}"
    );
    // Every filter that cannot be read is a 400 naming it.
    api.check_errors([
        case("unknown status")
            .get("/v1/jobs?status=done")
            .answers(400, "bad-query")
            .saying(&["done"]),
        case("since a word")
            .get("/v1/jobs?since=yesterday")
            .answers(400, "bad-query")
            .saying(&["yesterday"]),
        case("garbled cursor")
            .get("/v1/jobs?cursor=garbage")
            .answers(400, "invalid"),
        case("negative limit")
            .get("/v1/jobs?limit=-1")
            .answers(400, "bad-query")
            .saying(&["limit"]),
        case("unknown parameter")
            .get("/v1/jobs?colour=1")
            .answers(400, "bad-query")
            .saying(&["colour"]),
        case("unknown time field")
            .get("/v1/jobs?time_field=sometime")
            .answers(400, "bad-query")
            .saying(&["time_field"]),
        case("counts since a word")
            .get("/v1/jobs/counts?since=never")
            .answers(400, "bad-query")
            .saying(&["never"]),
        case("stats over no minutes")
            .get("/v1/stats?minutes=0")
            .answers(400, "bad-query")
            .saying(&["minutes"]),
    ])
    .await;

    // The status counts show in the metrics.
    let text = api
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("ffarm_jobs{status=\"cancelled\"} 10"),
        "{text}"
    );
    assert!(
        text.contains(&format!("ffarm_queue_depth {}", N - 10)),
        "{text}"
    );
    assert!(text.contains("ffarm_busy_slots 0"), "{text}");
    api.shutdown().await;
}

#[tokio::test]
async fn listing_sqlite() {
    listing(Backend::Sqlite).await;
}

#[tokio::test]
async fn listing_postgres() {
    listing(Backend::Postgres).await;
}
