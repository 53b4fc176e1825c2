//! How a job says whether it may be split, over real HTTP on SQLite and PostgreSQL: each form
//! `POST /v1/jobs` takes (native and serverless shapes), the bad ones as 400s naming the
//! field, and the one resolution made when a job is made — the request's or the trigger
//! rule's value, else the preset's, else `auto` — shown by the job document. A rule naming a
//! part length for a preset that cannot be split stops the start.

use ffarm::api::AppError;
use ffarm::config::TriggerRule;
use ffarm::job::Chunking;
use ffarm::serve::ServeError;
use ffarm::worker::Shutdown;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api_harness::{Api, api_config, case};
use crate::helpers::{tempdir, valid};
use crate::worker_harness::{Backend, Farm};

/// Presets that say how their jobs split: `whole` never, `parts-20` in 20-second parts.
fn presets_dir() -> tempfile::TempDir {
    let dir = tempdir();
    let body = "description = \"test\"\ncontainer = \"mp4\"\n[video]\ncodec = \"h264\"\n\
                crf = 30\n[audio]\ncodec = \"aac\"\n";
    for (name, chunking) in [
        ("whole", "\"off\""),
        ("parts-20", "{ segment_seconds = 20 }"),
    ] {
        let text = format!("chunking = {chunking}\n{body}");
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    dir
}

/// A farm with those presets and two rules on bucket `media`: `in/` runs `whole` and
/// `h264-720p` as the presets say; `rule/` runs `whole` and `parts-20` in 45-second parts.
async fn api(backend: Backend, presets: &tempfile::TempDir) -> Api {
    let presets = presets.path().to_path_buf();
    let api = Api::start(backend, move |c| {
        c.presets_dir = Some(presets);
        c.triggers = vec![
            TriggerRule {
                suffixes: vec![],
                presets: vec!["whole".into(), "h264-720p".into()],
                ..TriggerRule::default_rule()
            },
            TriggerRule {
                prefix: "rule/".into(),
                suffixes: vec![],
                presets: vec!["whole".into(), "parts-20".into()],
                chunking: Some(Chunking::Segments {
                    segment_seconds: 45,
                }),
                ..TriggerRule::default_rule()
            },
        ];
    })
    .await;
    api.farm.put(&valid("h264_aac.mp4"), "src/clip.mp4");
    api
}

fn native(preset: &str, chunking: Option<Value>) -> Value {
    let mut body = json!({"input": {"bucket": "media", "key": "src/clip.mp4"}, "preset": preset});
    if let Some(c) = chunking {
        body["chunking"] = c;
    }
    body
}

/// Submits `body`: the job's chunking as the answer and as `GET /v1/jobs/{id}` show it.
async fn submitted_chunking(api: &Api, body: &Value) -> Value {
    let (status, job) = api.post("/v1/jobs", body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}: {job}");
    let (_, got) = api
        .get(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["chunking"], job["chunking"], "stored as answered");
    job["chunking"].clone()
}

async fn each_form_and_its_resolution(backend: Backend) {
    let presets = presets_dir();
    let api = api(backend, &presets).await;
    let seconds = |n: u32| json!({"segment_seconds": n});
    for (preset, asked, shown) in [
        // The request's value when it gives one …
        ("h264-720p", Some(json!("off")), json!("off")),
        ("h264-720p", Some(json!("auto")), json!("auto")),
        ("h264-720p", Some(seconds(30)), seconds(30)),
        ("whole", Some(json!("auto")), json!("auto")),
        ("whole", Some(seconds(30)), seconds(30)),
        ("parts-20", Some(json!("off")), json!("off")),
        // … else the preset's, else auto.
        ("whole", None, json!("off")),
        ("parts-20", None, seconds(20)),
        ("h264-720p", None, json!("auto")),
        // A preset that cannot split may still say off or auto.
        ("remux-mkv", Some(json!("off")), json!("off")),
        ("remux-mkv", None, json!("auto")),
    ] {
        let body = native(preset, asked.clone());
        let got = submitted_chunking(&api, &body).await;
        assert_eq!(got, shown, "{preset} asked {asked:?}");
    }
    // The serverless function's shape takes it too.
    let function = json!({"bucket": "media", "object": "src/clip.mp4", "output_dir": "f",
                          "dst_format": "webm"});
    assert_eq!(submitted_chunking(&api, &function).await, "auto");
    let mut off = function.clone();
    off["chunking"] = json!("off");
    off["output_dir"] = json!("g");
    assert_eq!(submitted_chunking(&api, &off).await, "off");
    api.shutdown().await;
}

#[tokio::test]
async fn each_form_and_its_resolution_sqlite() {
    each_form_and_its_resolution(Backend::Sqlite).await;
}

#[tokio::test]
async fn each_form_and_its_resolution_postgres() {
    each_form_and_its_resolution(Backend::Postgres).await;
}

#[tokio::test]
async fn the_resolved_value_is_part_of_the_job() {
    let presets = presets_dir();
    let api = api(Backend::Sqlite, &presets).await;
    let mut body = native("whole", None);
    body["id"] = json!("resolved");
    assert_eq!(submitted_chunking(&api, &body).await, "off");
    // Asking for what the preset said is the same job; asking for another is another.
    body["chunking"] = json!("off");
    assert_eq!(api.post("/v1/jobs", &body).await.0, StatusCode::OK);
    body["chunking"] = json!("auto");
    let (status, answer) = api.post("/v1/jobs", &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    api.shutdown().await;
}

#[tokio::test]
async fn bad_chunking_is_a_400_naming_the_field() {
    let presets = presets_dir();
    let api = api(Backend::Sqlite, &presets).await;
    let bad = |chunking: Value| native("h264-720p", Some(chunking));
    let function = json!({"bucket": "media", "object": "src/clip.mp4", "output_dir": "f",
                          "dst_format": "webm", "chunking": "often"});
    api.check_errors([
        case("a word")
            .post("/v1/jobs", bad(json!("sometimes")))
            .answers(400, "invalid-request")
            .saying(&["chunking", "\"sometimes\"", "\"auto\", \"off\""]),
        case("too short a part")
            .post("/v1/jobs", bad(json!({"segment_seconds": 1})))
            .answers(400, "invalid-request")
            .saying(&["chunking", "segment_seconds must be at least 2, not 1"]),
        case("a misspelt key")
            .post("/v1/jobs", bad(json!({"seconds": 30})))
            .answers(400, "invalid-request")
            .saying(&["chunking", "unknown field `seconds`", "`segment_seconds`"]),
        case("a bare number")
            .post("/v1/jobs", bad(json!(30)))
            .answers(400, "invalid-request")
            .saying(&[
                "chunking",
                "invalid type: integer `30`",
                "{\"segment_seconds\": N}",
            ]),
        case("a part length that is not a number")
            .post("/v1/jobs", bad(json!({"segment_seconds": "30"})))
            .answers(400, "invalid-request")
            .saying(&["chunking", "invalid type"]),
        case("a part length for a stream copy")
            .post(
                "/v1/jobs",
                native("remux-mkv", Some(json!({"segment_seconds": 30}))),
            )
            .answers(400, "invalid-request")
            .saying(&[
                "chunking",
                "'remux-mkv' copies the video stream",
                "cannot be split",
            ]),
        case("a part length for a picture")
            .post(
                "/v1/jobs",
                native("poster-jpg", Some(json!({"segment_seconds": 30}))),
            )
            .answers(400, "invalid-request")
            .saying(&["chunking", "'poster-jpg' makes a still picture"]),
        case("a part length for CMAF")
            .post(
                "/v1/jobs",
                native("cmaf-abr", Some(json!({"segment_seconds": 30}))),
            )
            .answers(400, "invalid-request")
            .saying(&["chunking", "'cmaf-abr' writes CMAF"]),
        case("a part length for encrypted HLS")
            .post(
                "/v1/jobs",
                native("hls-720p-aes", Some(json!({"segment_seconds": 30}))),
            )
            .answers(400, "invalid-request")
            .saying(&["chunking", "'hls-720p-aes' encrypts its segments"]),
        case("the function's shape")
            .post("/v1/jobs", function)
            .answers(400, "invalid-request")
            .saying(&["chunking", "\"often\""]),
    ])
    .await;
    api.shutdown().await;
}

/// The jobs an S3 notification for `key` in bucket `media` made: (preset, chunking).
async fn fired(api: &Api, key: &str) -> Vec<(String, Value)> {
    let event = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "media"}, "object": {"key": key, "size": 10, "eTag": "e1"}}}]});
    let (status, answer) = api.post("/v1/triggers/s3", &event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut out = Vec::new();
    for j in answer["jobs"].as_array().unwrap() {
        let (_, job) = api
            .get(&format!("/v1/jobs/{}", j["id"].as_str().unwrap()))
            .await;
        out.push((
            j["preset"].as_str().unwrap().to_string(),
            job["chunking"].clone(),
        ));
    }
    out
}

#[tokio::test]
async fn a_rules_chunking_wins_over_its_presets() {
    let presets = presets_dir();
    let api = api(Backend::Sqlite, &presets).await;
    assert_eq!(
        fired(&api, "in/clip.mp4").await,
        [
            ("whole".to_string(), json!("off")),
            ("h264-720p".to_string(), json!("auto")),
        ],
        "a rule that says nothing: what each preset says, else auto"
    );
    assert_eq!(
        fired(&api, "rule/clip.mp4").await,
        [
            ("whole".to_string(), json!({"segment_seconds": 45})),
            ("parts-20".to_string(), json!({"segment_seconds": 45})),
        ],
        "a rule that says: the rule's"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn a_rule_naming_a_part_length_for_a_copy_stops_the_start() {
    let farm = Farm::new(Backend::Sqlite).await;
    let mut config = api_config(&farm);
    config.triggers = vec![TriggerRule {
        presets: vec!["h264-720p".into(), "remux-mkv".into()],
        chunking: Some(Chunking::Segments {
            segment_seconds: 30,
        }),
        ..TriggerRule::default_rule()
    }];
    let (_tx, rx) = tokio::sync::watch::channel(0u8);
    let err = ffarm::serve::run_on(farm.store.clone(), config, Shutdown(rx), |_| {})
        .await
        .unwrap_err();
    let ServeError::App(AppError::TriggerRule { index, error }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*index, error.field()), (0, "chunking"));
    assert_eq!(
        err.to_string(),
        "configuration: trigger rule for bucket 'media': chunking: preset 'remux-mkv' copies \
         the video stream, so its jobs cannot be split; leave segment_seconds out or give that \
         preset its own rule"
    );
}

#[tokio::test]
async fn the_api_document_describes_chunking() {
    let presets = presets_dir();
    let api = api(Backend::Sqlite, &presets).await;
    let (_, doc) = api.get("/v1/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for shape in ["SubmitRequest", "ServerlessTranscodeRequest", "Job"] {
        // A job's media options are flattened into it: its own fields sit beside them in
        // an `allOf`.
        let own = schemas[shape]["allOf"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["properties"].is_object()))
            .unwrap_or(&schemas[shape]);
        let property = &own["properties"]["chunking"];
        assert!(
            property
                .to_string()
                .contains("#/components/schemas/Chunking"),
            "{shape}: {property}"
        );
    }
    let choices = schemas["Chunking"]["oneOf"].to_string();
    for word in ["auto", "off", "segment_seconds"] {
        assert!(choices.contains(word), "{choices}");
    }
    // The presets say what they say, and only when they say it.
    let (_, listed) = api.get("/v1/presets").await;
    let said = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p.get("chunking").cloned())
            .unwrap()
    };
    assert_eq!(said("whole"), Some(json!("off")));
    assert_eq!(said("parts-20"), Some(json!({"segment_seconds": 20})));
    assert_eq!(said("h264-720p"), None);
    api.shutdown().await;
}
