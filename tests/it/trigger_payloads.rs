//! Bucket event notification parsing against real-shaped samples in `tests/payloads/`:
//! decoded keys, versions, every element of a multi-event body, MNS/Base64/XML/SNS
//! unwrapping, reasons for skipped events, clear errors, and no panic on any input.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ffarm::triggers::{Ignored, ObjectEvent, Parsed, PayloadError, Source, oss, s3};
use serde_json::Value;

fn payload(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/payloads")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_file(name: &str) -> Value {
    serde_json::from_slice(&payload(name)).unwrap()
}

fn ignored(bucket: &str, key: &str, event: &str, reason: &str) -> Ignored {
    Ignored {
        bucket: Some(bucket.into()),
        key: Some(key.into()),
        event: Some(event.into()),
        reason: reason.into(),
    }
}

/// (key, version, event name) of each object, in order.
fn summary(p: &Parsed) -> Vec<(&str, &str, &str)> {
    p.objects
        .iter()
        .map(|o| (o.key.as_str(), o.version.as_str(), o.event_name.as_str()))
        .collect()
}

// ---- OSS ----

#[test]
fn oss_put_keeps_the_key_literal() {
    let p = oss::parse(&payload("oss-put.json")).unwrap();
    assert_eq!(p.ignored, vec![]);
    assert_eq!(
        p.objects,
        vec![ObjectEvent {
            source: Source::Oss,
            bucket: "media-in".into(),
            key: "in/vidéo 東京 & friends+more%21.mp4".into(),
            size: Some(122539),
            version: "688A7BF4F233DC9C88A80BF985AB7329-122539".into(),
            event_name: "ObjectCreated:PutObject".into(),
            payload: json_file("oss-put.json")["events"][0].clone(),
        }]
    );
}

fn assert_oss_multi(p: &Parsed) {
    assert_eq!(
        summary(p),
        [
            (
                "in/clip one.mov",
                "137138904F2E18D307D04EB38EA44CDA-12990",
                "ObjectCreated:PostObject"
            ),
            (
                "in/big master.mxf",
                "A3D5A8E0F1B2C3D4E5F60718293A4B5C-512-5368709120",
                "ObjectCreated:CompleteMultipartUpload"
            ),
        ]
    );
    assert_eq!(
        p.ignored,
        vec![
            ignored(
                "media-in",
                "in/big master.mxf",
                "ObjectCreated:InitiateMultipartUpload",
                "multipart upload not complete yet"
            ),
            ignored(
                "media-in",
                "live/stream.flv",
                "ObjectCreated:AppendObject",
                "appendable object may still grow"
            ),
            ignored(
                "media-in",
                "in/old.mov",
                "ObjectRemoved:DeleteObject",
                "not an object-created event"
            ),
        ]
    );
    let events = json_file("oss-multi.json");
    assert_eq!(p.objects[1].payload, events["events"][2]);
}

#[test]
fn oss_multi_reads_every_element() {
    assert_oss_multi(&oss::parse(&payload("oss-multi.json")).unwrap());
}

#[test]
fn oss_mns_pushes_unwrap_to_the_same_events() {
    let direct = oss::parse(&payload("oss-put.json")).unwrap();
    assert_eq!(oss::parse(&payload("oss-mns-json.json")).unwrap(), direct);
    assert_eq!(oss::parse(&payload("oss-mns.xml")).unwrap(), direct);
    let simplified = payload("oss-mns-simplified.txt");
    assert!(simplified.ends_with(b"\n"));
    assert_oss_multi(&oss::parse(&simplified).unwrap());
}

#[test]
fn oss_mns_message_may_be_plain_json_or_entity_escaped_xml() {
    let direct = oss::parse(&payload("oss-put.json")).unwrap();
    let text = String::from_utf8(payload("oss-put.json")).unwrap();
    let mut push = json_file("oss-mns-json.json");
    push["Message"] = Value::String(text.clone());
    assert_eq!(oss::parse(push.to_string().as_bytes()).unwrap(), direct);
    let escaped = text
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let xml = format!(
        "<?xml version=\"1.0\"?><Notification xmlns=\"http://mns.aliyuncs.com/doc/v1/\">\
         <MessageId>1</MessageId><Message>{escaped}</Message>\
         <MessageMD5>X</MessageMD5></Notification>"
    );
    assert_eq!(oss::parse(xml.as_bytes()).unwrap(), direct);
}

#[test]
fn oss_eventbridge_reads_data_and_falls_back_to_type() {
    let event = json_file("oss-eventbridge.json");
    let p = oss::parse(&payload("oss-eventbridge.json")).unwrap();
    assert_eq!(
        summary(&p),
        [(
            "copies/señal 100%.mp4",
            "55E12BE2D2F2F8C5B3F4B5D1F2F2F8C5-2048576",
            "ObjectCreated:CopyObject"
        )]
    );
    assert_eq!(p.objects[0].payload, event["data"]);
    let mut unnamed = event.clone();
    unnamed["data"].as_object_mut().unwrap().remove("eventName");
    unnamed["type"] = "oss:ObjectCreated:PutObject".into();
    let p = oss::parse(unnamed.to_string().as_bytes()).unwrap();
    assert_eq!(p.objects[0].event_name, "ObjectCreated:PutObject");
    unnamed["type"] = "oss:ObjectCreated:PutSymlink".into();
    let p = oss::parse(unnamed.to_string().as_bytes()).unwrap();
    assert_eq!(p.objects, vec![]);
    assert_eq!(
        p.ignored[0].reason,
        "a symlink, not media bytes: its target is an object of its own"
    );
}

#[test]
fn oss_envelopes_nest_only_so_deep() {
    // MNS JSON push (Message Base64) inside Base64: three envelopes, the limit.
    let three = B64.encode(payload("oss-mns-json.json"));
    assert_eq!(
        oss::parse(three.as_bytes()).unwrap().objects[0].key,
        "in/vidéo 東京 & friends+more%21.mp4"
    );
    let four = B64.encode(&three);
    assert!(
        oss::parse(four.as_bytes())
            .unwrap_err()
            .message
            .contains("nested too deeply")
    );
    let mut deep = String::from_utf8(payload("oss-put.json")).unwrap();
    for _ in 0..12 {
        deep = B64.encode(deep);
    }
    let err = oss::parse(deep.as_bytes()).unwrap_err().message;
    assert!(
        err.starts_with("notification nested too deeply: more than 3"),
        "{err}"
    );
}

#[test]
fn oss_malformed_bodies_are_errors_that_say_what_was_expected() {
    let err = |body: &[u8]| oss::parse(body).unwrap_err().message;
    assert_eq!(
        err(b""),
        "empty body: expected an OSS event notification: JSON with \"events\", an event \
         element with \"oss\", an EventBridge event with \"data\", or an MNS push (JSON or \
         XML with \"Message\", or Base64)"
    );
    assert_eq!(
        oss::parse(br#"{"events": 5}"#).unwrap_err(),
        PayloadError {
            field: "events".into(),
            message: "\"events\" must be an array, got a number".into()
        }
    );
    let garbage = [0xff, 0xfe, 0x00, 0x9c, b'{', 0x01];
    assert!(err(&garbage).starts_with("body is neither JSON, MNS XML nor Base64"));
    let full = payload("oss-put.json");
    let truncated = err(&full[..full.len() / 2]);
    assert!(
        truncated.starts_with("body is not JSON: EOF while parsing"),
        "{truncated}"
    );
    assert!(truncated.contains("at line "), "{truncated}");
    assert!(
        err(b"<Notification><MessageId>1</MessageId></Notification>")
            .starts_with("XML body has no <Message> element")
    );
    assert!(
        err(&payload("s3-aws-put.json"))
            .starts_with("JSON object has none of \"events\", \"oss\", \"data\" or \"Message\"")
    );
    let bad_inner = serde_json::json!({"TopicName": "t", "Message": B64.encode("{\"events\":")});
    assert!(
        err(bad_inner.to_string().as_bytes())
            .starts_with("unwrapped message is not JSON: EOF while parsing")
    );
    assert_eq!(oss::parse(br#"{"events": []}"#).unwrap(), Parsed::default());
}

// ---- S3 / MinIO ----

#[test]
fn s3_aws_put_decodes_the_form_encoded_key() {
    let p = s3::parse(&payload("s3-aws-put.json")).unwrap();
    assert_eq!(p.ignored, vec![]);
    assert_eq!(
        p.objects,
        vec![ObjectEvent {
            source: Source::S3,
            bucket: "media-in".into(),
            key: "in/my video & more.mp4".into(),
            size: Some(1048576),
            version: "096fKKXTRTtl3on89fVO.nfljtsv6qko".into(),
            event_name: "ObjectCreated:Put".into(),
            payload: json_file("s3-aws-put.json")["Records"][0].clone(),
        }]
    );
}

#[test]
fn s3_aws_multi_reads_every_record() {
    let p = s3::parse(&payload("s3-aws-multi.json")).unwrap();
    assert_eq!(
        summary(&p),
        [
            (
                "in/café (1).mov",
                "137138904f2e18d307d04eb38ea44cda-12990",
                "ObjectCreated:Post"
            ),
            (
                "in/big master.mxf",
                "4af981f98d22a0b9979da24b259e5e42-12-198524144",
                "ObjectCreated:CompleteMultipartUpload"
            ),
        ]
    );
    assert_eq!(
        p.ignored,
        vec![ignored(
            "media-in",
            "in/old.mov",
            "ObjectRemoved:Delete",
            "not an object-created event"
        )]
    );
}

#[test]
fn s3_minio_webhook_decodes_the_query_escaped_key() {
    let p = s3::parse(&payload("s3-minio-put.json")).unwrap();
    assert_eq!(
        summary(&p),
        [(
            "in/vidéo 東京/take 1.mp4",
            "f1671feacb8bbf7b0397c6e9364e8c92-248682",
            "s3:ObjectCreated:Put"
        )]
    );
    assert_eq!(p.objects[0].size, Some(248682));
    // MinIO's own top-level "Key" is bucket + the unescaped key: the decodings agree.
    let body = json_file("s3-minio-put.json");
    assert_eq!(
        body["Key"],
        format!("media-in/{}", p.objects[0].key).as_str()
    );
}

#[test]
fn s3_sns_notification_unwraps_to_the_records() {
    let direct = s3::parse(&payload("s3-aws-put.json")).unwrap();
    assert_eq!(s3::parse(&payload("s3-sns.json")).unwrap(), direct);
}

#[test]
fn s3_sns_confirmation_and_test_event_are_ignored_with_reasons() {
    let p = s3::parse(&payload("s3-sns-confirmation.json")).unwrap();
    assert_eq!(p.objects, vec![]);
    let url = json_file("s3-sns-confirmation.json")["SubscribeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        p.ignored,
        vec![Ignored {
            bucket: None,
            key: None,
            event: Some("SubscriptionConfirmation".into()),
            reason: format!(
                "SNS subscription confirmation: confirm the subscription by visiting \
                 SubscribeURL {url}"
            ),
        }]
    );
    let p = s3::parse(&payload("s3-test-event.json")).unwrap();
    assert_eq!(p.objects, vec![]);
    assert_eq!(
        p.ignored,
        vec![Ignored {
            bucket: Some("media-in".into()),
            key: None,
            event: Some("s3:TestEvent".into()),
            reason: "test event".into(),
        }]
    );
}

#[test]
fn s3_eventbridge_key_is_taken_as_is() {
    let p = s3::parse(&payload("s3-eventbridge.json")).unwrap();
    assert_eq!(
        summary(&p),
        [(
            "raw/clip + more & 東京.mp4",
            "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "Object Created"
        )]
    );
    assert_eq!(p.objects[0].payload, json_file("s3-eventbridge.json"));
}

#[test]
fn s3_removed_is_ignored_with_the_decoded_key() {
    let p = s3::parse(&payload("s3-removed.json")).unwrap();
    assert_eq!(p.objects, vec![]);
    assert_eq!(
        p.ignored,
        vec![ignored(
            "media-in",
            "in/my video & more.mp4",
            "ObjectRemoved:DeleteMarkerCreated",
            "not an object-created event"
        )]
    );
}

#[test]
fn s3_malformed_bodies_are_errors_that_name_the_problem() {
    let err = |body: &[u8]| s3::parse(body).unwrap_err().message;
    assert_eq!(
        err(br#"{"Records": 5}"#),
        "Records must be an array, got a number"
    );
    let full = payload("s3-aws-put.json");
    assert!(err(&full[..full.len() / 2]).starts_with("not JSON: EOF while parsing"));
    assert!(err(b"\x00\xffgarbage").starts_with("not JSON: expected value at line 1 column 1"));
    assert!(err(b"").starts_with("empty body: expected an S3 event notification"));
    assert!(err(&payload("oss-put.json")).starts_with(
        "JSON object has none of \"Records\", \"Type\", \"Event\" or \"detail-type\""
    ));
    let sns = serde_json::json!({"Type": "Notification", "Message": "{\"Records\": 1}"});
    assert_eq!(
        s3::parse(sns.to_string().as_bytes()).unwrap_err(),
        PayloadError {
            field: "Records".into(),
            message: "Records must be an array, got a number".into()
        }
    );
    assert_eq!(s3::parse(br#"{"Records": []}"#).unwrap(), Parsed::default());
}

// ---- robustness ----

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random bytes, fixtures with bytes changed or cut, and random text in envelopes.
fn hostile_inputs() -> Vec<Vec<u8>> {
    let names = [
        "oss-put.json",
        "oss-multi.json",
        "oss-mns-json.json",
        "oss-mns.xml",
        "oss-mns-simplified.txt",
        "oss-eventbridge.json",
        "s3-aws-put.json",
        "s3-minio-put.json",
        "s3-sns.json",
        "s3-eventbridge.json",
    ];
    let fixtures: Vec<Vec<u8>> = names.iter().map(|n| payload(n)).collect();
    let alphabet = b"{}[]\":,<>/&;#xX0123456789+=abcdefABCDEF%\\ \n\tMessage events Records oss";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut inputs = Vec::new();
    for round in 0..900 {
        let input = match round % 3 {
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            1 => {
                let mut f = fixtures[rng.below(fixtures.len())].clone();
                for _ in 0..=rng.below(6) {
                    let at = rng.below(f.len());
                    f[at] = alphabet[rng.below(alphabet.len())];
                }
                f.truncate(rng.below(f.len() + 1));
                f
            }
            _ => {
                let text: Vec<u8> = (0..rng.below(120))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect();
                let text = String::from_utf8_lossy(&text).into_owned();
                match rng.below(3) {
                    0 => format!("<Notification><Message>{text}</Message></Notification>"),
                    1 => B64.encode(&text),
                    _ => serde_json::json!({"Message": text, "Type": "Notification"}).to_string(),
                }
                .into_bytes()
            }
        };
        inputs.push(input);
    }
    inputs
}

#[test]
fn no_input_makes_a_parser_panic() {
    for input in hostile_inputs() {
        let outcome = std::panic::catch_unwind(|| {
            let _ = oss::parse(&input);
            let _ = s3::parse(&input);
        });
        assert!(
            outcome.is_ok(),
            "parser panicked on {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}
