//! The trigger webhooks over real HTTP with real OSS, AWS S3 and MinIO payloads: decoded keys,
//! every element of a notification, non-create events ignored with reasons, redelivery making
//! no second job while a new upload does, Base64 bodies, rules with several presets and an
//! output template, buckets mapped by URL, and MinIO's bearer token; a rule that cannot run
//! stops the start, named.

use ffarm::api::AppError;
use ffarm::config::{TriggerRule, VIDEO_SUFFIXES};
use ffarm::serve::ServeError;
use ffarm::worker::Shutdown;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_harness::{Api, api_config, assert_error, case};
use crate::worker_harness::{Backend, Farm};

fn payload(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/payloads")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn cloud_rule() -> TriggerRule {
    TriggerRule {
        bucket: "media-in".into(),
        prefix: "in/".into(),
        suffixes: VIDEO_SUFFIXES.iter().map(|s| s.to_string()).collect(),
        presets: vec!["h264-720p".into(), "h264-480p".into()],
        output: "out/{stem}/{preset}".into(),
        output_bucket: None,
        overwrite: false,
        chunking: None,
        group: false,
    }
}

async fn api(token: Option<&str>) -> Api {
    let token = token.map(str::to_string);
    Api::start(Backend::Sqlite, move |c| {
        c.triggers = vec![TriggerRule::default_rule(), cloud_rule()];
        c.token = token;
    })
    .await
}

fn keys(answer: &Value) -> Vec<(String, String, String)> {
    answer["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["input"]["key"].as_str().unwrap().to_string(),
                j["preset"].as_str().unwrap().to_string(),
                j["output"]["prefix"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn reasons(answer: &Value) -> Vec<String> {
    answer["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn oss_notifications() {
    let api = api(None).await;
    // One PutObject: the key is literal, two presets each with its output folder.
    let (s, a) = api
        .post_raw("/v1/triggers/oss", payload("oss-put.json"))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let key = "in/vidéo 東京 & friends+more%21.mp4";
    assert_eq!(
        keys(&a),
        vec![
            (
                key.into(),
                "h264-720p".into(),
                "out/vidéo 東京 & friends+more%21/h264-720p/".into()
            ),
            (
                key.into(),
                "h264-480p".into(),
                "out/vidéo 東京 & friends+more%21/h264-480p/".into()
            ),
        ]
    );
    let id = a["jobs"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("trg-"));
    let job = api.job(id).await;
    let trigger = job.trigger.unwrap();
    assert_eq!(trigger.source, "oss");
    assert_eq!(trigger.payload["oss"]["object"]["key"], key);
    assert_eq!(trigger.payload["eventName"], "ObjectCreated:PutObject");

    // Redelivered: the same jobs, none made.
    let (_, again) = api
        .post_raw("/v1/triggers/oss", payload("oss-put.json"))
        .await;
    assert_eq!(again["jobs"][0]["id"], a["jobs"][0]["id"]);
    assert!(
        again["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["created"] == false)
    );

    // The same key uploaded again (a new eTag): new jobs.
    let newer = payload("oss-put.json").replace(
        "688A7BF4F233DC9C88A80BF985AB7329",
        "0123456789ABCDEF0123456789ABCDEF",
    );
    let (_, new) = api.post_raw("/v1/triggers/oss", newer).await;
    assert_ne!(new["jobs"][0]["id"], a["jobs"][0]["id"]);
    assert_eq!(new["jobs"][0]["created"], true);

    // Every element: two complete objects; the multipart start, the append and the delete
    // are ignored with reasons.
    let (s, m) = api
        .post_raw("/v1/triggers/oss", payload("oss-multi.json"))
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let inputs: Vec<String> = keys(&m).into_iter().map(|k| k.0).collect();
    assert_eq!(
        inputs,
        [
            "in/clip one.mov",
            "in/clip one.mov",
            "in/big master.mxf",
            "in/big master.mxf"
        ]
    );
    let why = reasons(&m);
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(
        why.iter()
            .any(|r| r.contains("multipart upload not complete")),
        "{why:?}"
    );
    assert!(why.iter().any(|r| r.contains("may still grow")), "{why:?}");
    assert!(
        why.iter()
            .any(|r| r.contains("not an object-created event")),
        "{why:?}"
    );

    // The Base64 body of message-queue delivery: the same notification, the same jobs.
    let (s, b) = api
        .post_raw("/v1/triggers/oss", payload("oss-mns-simplified.txt"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let redelivered: Vec<Value> = m["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let mut j = j.clone();
            j["created"] = json!(false);
            j
        })
        .collect();
    assert_eq!(b["jobs"], Value::Array(redelivered));
    let (s, x) = api
        .post_raw("/v1/triggers/oss", payload("oss-mns.xml"))
        .await;
    assert_eq!(s, StatusCode::OK, "{x}");
    assert_eq!(x["jobs"][0]["id"], a["jobs"][0]["id"]);

    // Unreadable bodies are 400s naming the problem.
    api.check_errors([
        case("not JSON")
            .post_raw("/v1/triggers/oss", "not json at all")
            .answers(400, "bad-payload"),
        case("events not a list")
            .post_raw("/v1/triggers/oss", "{\"events\": 5}")
            .answers(400, "bad-payload")
            .saying(&["events"]),
    ])
    .await;
    api.shutdown().await;
}

#[tokio::test]
async fn s3_and_minio_notifications() {
    let token = "minio-webhook-token-0123";
    let api = api(Some(token)).await;
    let (s, a) = api
        .post_raw("/v1/triggers/s3", payload("s3-aws-put.json"))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(keys(&a)[0].0, "in/my video & more.mp4");
    assert_eq!(keys(&a)[0].2, "out/my video & more/h264-720p/");

    let (_, m) = api
        .post_raw("/v1/triggers/s3", payload("s3-aws-multi.json"))
        .await;
    let inputs: Vec<String> = keys(&m).into_iter().map(|k| k.0).collect();
    assert_eq!(
        inputs,
        [
            "in/café (1).mov",
            "in/café (1).mov",
            "in/big master.mxf",
            "in/big master.mxf"
        ]
    );
    assert_eq!(reasons(&m).len(), 1);

    // MinIO sends auth_token as a bearer token; without it the hook is refused.
    let minio = payload("s3-minio-put.json");
    let refused = api
        .send(
            api.http
                .post(format!("{}/v1/triggers/s3", api.url))
                .body(minio.clone()),
        )
        .await;
    assert_error(&refused, 401, "unauthorized", &["Bearer"]);
    let (s, mi) = api.post_raw("/v1/triggers/s3", minio).await;
    assert_eq!(s, StatusCode::OK, "{mi}");
    assert_eq!(keys(&mi)[0].0, "in/vidéo 東京/take 1.mp4");

    // SNS delivery of the same event finds the same jobs.
    let (_, sns) = api
        .post_raw("/v1/triggers/s3", payload("s3-sns.json"))
        .await;
    assert_eq!(sns["jobs"][0]["id"], a["jobs"][0]["id"]);
    assert_eq!(sns["jobs"][0]["created"], false);

    let (s, t) = api
        .post_raw("/v1/triggers/s3", payload("s3-test-event.json"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["jobs"], json!([]));
    assert_eq!(reasons(&t).len(), 1);
    let (_, r) = api
        .post_raw("/v1/triggers/s3", payload("s3-removed.json"))
        .await;
    assert_eq!(r["jobs"], json!([]));
    assert!(
        reasons(&r)[0].contains("not an object-created event"),
        "{r}"
    );
    assert_error(
        &api.post_raw("/v1/triggers/s3", "{\"Records\": {}}").await,
        400,
        "bad-payload",
        &["Records"],
    );
    api.shutdown().await;
}

#[tokio::test]
async fn rules_decide_and_explain() {
    let api = Api::start(Backend::Sqlite, |c| {
        // A configured bucket pointing at a cloud bucket and folder: events name the cloud
        // bucket and the full key.
        c.buckets.insert(
            "studio".into(),
            ffarm::buckets::BucketConfig {
                url: "s3://media-in/studio".into(),
                options: Default::default(),
            },
        );
        c.triggers = vec![TriggerRule {
            bucket: "studio".into(),
            prefix: "".into(),
            suffixes: vec![],
            presets: vec!["mp4".into()],
            output: "done/".into(),
            output_bucket: None,
            overwrite: false,
            chunking: None,
            group: false,
        }];
    })
    .await;
    let event = |key: &str, etag: &str| {
        json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": "media-in"},
            "object": {"key": key, "size": 10, "eTag": etag}}}]})
    };
    let (s, a) = api
        .post("/v1/triggers/s3", &event("studio/raw/a+b.mov", "e1"))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(
        a["jobs"][0]["input"],
        json!({"bucket": "studio", "key": "raw/a b.mov"})
    );
    assert_eq!(
        a["jobs"][0]["output"],
        json!({"bucket": "studio", "prefix": "done/"})
    );
    // Outputs never fire the rules again.
    let (_, o) = api
        .post("/v1/triggers/s3", &event("studio/done/a+b.mp4", "e2"))
        .await;
    assert_eq!(o["jobs"], json!([]));
    assert!(reasons(&o)[0].contains("output folder"), "{o}");
    // Another bucket: no rule, and the answer says so.
    let mut other = event("x.mov", "e3");
    other["Records"][0]["s3"]["bucket"]["name"] = json!("elsewhere");
    let (_, n) = api.post("/v1/triggers/s3", &other).await;
    assert!(
        reasons(&n)[0].contains("no trigger rule for bucket 'elsewhere'"),
        "{n}"
    );
    // A key that could escape the bucket is refused.
    let (_, bad) = api
        .post(
            "/v1/triggers/s3",
            &event("studio/..%2F..%2Fetc%2Fpasswd", "e4"),
        )
        .await;
    assert_eq!(bad["jobs"], json!([]));
    assert!(reasons(&bad)[0].contains("invalid object key"), "{bad}");
    let (s, _) = api.send(api.request(Method::GET, "/v1/triggers/s3")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    api.shutdown().await;
}

/// Two rules sending one preset's result to two places make two jobs from one upload (and a
/// redelivery still makes none); each job may overwrite as its rule says.
#[tokio::test]
async fn one_preset_to_two_outputs_is_two_jobs() {
    let rule = |output: &str, overwrite: bool| TriggerRule {
        bucket: "media-in".into(),
        prefix: "in/".into(),
        suffixes: vec![],
        presets: vec!["h264-720p".into()],
        output: output.into(),
        output_bucket: None,
        overwrite,
        chunking: None,
        group: false,
    };
    let api = Api::start(Backend::Sqlite, move |c| {
        c.triggers = vec![rule("web/", false), rule("archive/", true)];
    })
    .await;
    let event = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "media-in"},
        "object": {"key": "in/talk.mp4", "size": 10, "eTag": "e1"}}}]});
    let (s, a) = api.post("/v1/triggers/s3", &event).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let mut made = keys(&a);
    made.sort();
    assert_eq!(
        made,
        [
            ("in/talk.mp4".into(), "h264-720p".into(), "archive/".into()),
            ("in/talk.mp4".into(), "h264-720p".into(), "web/".into())
        ],
        "{a}"
    );
    assert!(reasons(&a).is_empty(), "{a}");
    assert!(
        a["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["created"] == true)
    );
    for made in a["jobs"].as_array().unwrap() {
        let job = api.job(made["id"].as_str().unwrap()).await;
        assert_eq!(job.overwrite, job.output.prefix == "archive/", "{made}");
    }
    let (_, again) = api.post("/v1/triggers/s3", &event).await;
    assert!(
        again["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["created"] == false),
        "{again}"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn a_rule_that_cannot_run_stops_the_start_and_is_named() {
    let farm = Farm::new(Backend::Sqlite).await;
    let mut config = api_config(&farm);
    config.triggers = vec![
        cloud_rule(),
        TriggerRule {
            presets: vec!["h264-720p".into(), "nope".into()],
            ..TriggerRule::default_rule()
        },
    ];
    let (_tx, rx) = tokio::sync::watch::channel(0u8);
    let err = ffarm::serve::run_on(farm.store.clone(), config, Shutdown(rx), |_| {})
        .await
        .unwrap_err();
    let ServeError::App(AppError::TriggerRule { index, error }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*index, error.bucket.as_str(), error.field()),
        (1, "media", "presets")
    );
    assert_eq!(
        err.to_string(),
        "configuration: trigger rule for bucket 'media': unknown preset 'nope' (see `ffarm \
         presets`)"
    );
}
