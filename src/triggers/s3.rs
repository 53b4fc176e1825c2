//! S3 and MinIO event notifications — `{"Records": […]}` from AWS S3 or a MinIO webhook,
//! SNS HTTP deliveries of them, the `s3:TestEvent`, and EventBridge "Object Created"
//! events — read into [`ObjectEvent`]s.
//!
//! Keys in `Records` are URL-encoded: AWS form-encodes them (`+` for a space, `%XX` UTF-8
//! bytes; "red flower.jpg" arrives as "red+flower.jpg") and MinIO runs Go's
//! `url.QueryEscape` (which also writes `/` as `%2F`), so both decode the same way: `+` to
//! a space, then percent-decoding. EventBridge events carry the key as is.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::envelope::{self, NOTIFICATION, str_at, u64_at};
use super::{Ignored, ObjectEvent, Parsed, PayloadError, Source};

/// What a body must be, for error messages.
const EXPECTED: &str = "an S3 event notification: JSON with \"Records\", an SNS message \
     (\"Type\"), an s3:TestEvent (\"Event\") or an EventBridge event (\"detail-type\")";

/// Reads an S3 or MinIO event notification in any of its delivered shapes.
pub fn parse(body: &[u8]) -> Result<Parsed, PayloadError> {
    let value = envelope::json(body, EXPECTED)?;
    let mut parsed = Parsed::default();
    read(&value, 0, &mut parsed)?;
    Ok(parsed)
}

/// Reads one JSON shape, unwrapping SNS.
fn read(v: &Value, depth: usize, out: &mut Parsed) -> Result<(), PayloadError> {
    envelope::check_depth(depth)?;
    let Value::Object(map) = v else {
        return Err(PayloadError::new(
            NOTIFICATION,
            format!("expected {EXPECTED}, got {}", envelope::kind(v)),
        ));
    };
    // MinIO also sends top-level "EventName" and "Key" (the key unescaped, after the
    // bucket): the records say the same per object, so only they are read.
    if let Some(records) = map.get("Records") {
        records_array(records, out)
    } else if let Some(kind) = map.get("Type") {
        sns(v, kind, depth, out)
    } else if let Some(event) = map.get("Event") {
        test_event(v, event, out)
    } else if map.contains_key("detail-type") {
        push(eventbridge(v), out);
        Ok(())
    } else {
        Err(PayloadError::new(
            NOTIFICATION,
            format!(
                "JSON object has none of \"Records\", \"Type\", \"Event\" or \"detail-type\": \
                 expected {EXPECTED}"
            ),
        ))
    }
}

/// Every record of `{"Records": [...]}`.
fn records_array(records: &Value, out: &mut Parsed) -> Result<(), PayloadError> {
    let Some(records) = records.as_array() else {
        return Err(PayloadError::new(
            "Records",
            format!("Records must be an array, got {}", envelope::kind(records)),
        ));
    };
    for r in records {
        push(record(r), out);
    }
    Ok(())
}

/// The SNS message type that subscribes an endpoint to a topic: answered as ignored, with the
/// URL an operator must visit.
pub(crate) const SNS_CONFIRMATION: &str = "SubscriptionConfirmation";

/// An SNS HTTP delivery: a notification wraps the S3 event in its `Message` string.
fn sns(v: &Value, kind: &Value, depth: usize, out: &mut Parsed) -> Result<(), PayloadError> {
    let note = |reason: String| envelope::ignored(None, None, kind.as_str(), reason);
    match kind.as_str() {
        Some("Notification") => {
            let message = str_at(v, &["Message"]).ok_or_else(|| {
                PayloadError::new("Message", "SNS Notification has no \"Message\" string")
            })?;
            let inner = envelope::json(message.as_bytes(), EXPECTED)
                .map_err(|e| PayloadError::new("Message", format!("SNS Message: {e}")))?;
            read(&inner, depth + 1, out)
        }
        Some(SNS_CONFIRMATION) => {
            let url = str_at(v, &["SubscribeURL"]).unwrap_or("(missing from the message)");
            out.ignored.push(note(format!(
                "SNS subscription confirmation: confirm the subscription by visiting \
                 SubscribeURL {url}"
            )));
            Ok(())
        }
        Some("UnsubscribeConfirmation") => {
            out.ignored.push(note(
                "SNS unsubscribe confirmation: the topic no longer delivers here".into(),
            ));
            Ok(())
        }
        Some(other) => Err(PayloadError::new(
            "Type",
            format!("unknown SNS message Type \"{other}\": expected Notification"),
        )),
        None => Err(PayloadError::new(
            "Type",
            format!(
                "SNS \"Type\" must be a string, got {}",
                envelope::kind(kind)
            ),
        )),
    }
}

/// The `s3:TestEvent` S3 sends when notifications are configured.
fn test_event(v: &Value, event: &Value, out: &mut Parsed) -> Result<(), PayloadError> {
    match event.as_str() {
        Some(name @ "s3:TestEvent") => {
            let bucket = str_at(v, &["Bucket"]);
            out.ignored
                .push(envelope::ignored(bucket, None, Some(name), "test event"));
            Ok(())
        }
        _ => Err(PayloadError::new(
            "Event",
            format!("unknown \"Event\" {event}: expected \"s3:TestEvent\""),
        )),
    }
}

fn push(found: Result<ObjectEvent, Ignored>, out: &mut Parsed) {
    match found {
        Ok(object) => out.objects.push(object),
        Err(ignored) => out.ignored.push(ignored),
    }
}

/// One record: a complete object, or why it makes no job.
fn record(r: &Value) -> Result<ObjectEvent, Ignored> {
    let bucket = str_at(r, &["s3", "bucket", "name"]).filter(|b| !b.is_empty());
    let raw_key = str_at(r, &["s3", "object", "key"]);
    let key = raw_key.and_then(decode_key);
    let name = str_at(r, &["eventName"]);
    let skip = |reason: &str| envelope::ignored(bucket, key.as_deref().or(raw_key), name, reason);
    if !r.is_object() {
        return Err(skip("record is not a JSON object"));
    }
    let Some(name) = name else {
        return Err(skip("record has no eventName"));
    };
    if let Some(reason) = not_new_content(name) {
        return Err(skip(reason));
    }
    let Some(bucket) = bucket else {
        return Err(skip("missing s3.bucket.name"));
    };
    if raw_key.is_none() {
        return Err(skip("missing s3.object.key"));
    }
    let Some(key) = key.as_deref() else {
        return Err(skip("object key is not valid UTF-8 once URL-decoded"));
    };
    if envelope::is_folder(key) {
        return Err(skip("a folder, not an object"));
    }
    let object = &r["s3"]["object"];
    let size = u64_at(object, &["size"]);
    let etag = str_at(object, &["eTag"]).or_else(|| str_at(object, &["etag"]));
    let version = envelope::version(str_at(object, &["versionId"]), etag, size)
        .ok_or_else(|| skip("missing s3.object.eTag: nothing tells this upload from another"))?;
    Ok(ObjectEvent {
        source: Source::S3,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        version,
        event_name: name.to_owned(),
        payload: r.clone(),
    })
}

/// A record key decoded: `+` is a space, then `%XX` bytes; `None` when the bytes are not
/// UTF-8. A malformed escape (`%zz`) stays as written.
fn decode_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// Why an event brings no new object content, or `None` when it does.
fn not_new_content(name: &str) -> Option<&'static str> {
    match name.strip_prefix("s3:").unwrap_or(name) {
        // MinIO reports these under ObjectCreated, but they change an existing object's
        // metadata only.
        "ObjectCreated:PutRetention"
        | "ObjectCreated:PutLegalHold"
        | "ObjectCreated:PutTagging"
        | "ObjectCreated:DeleteTagging" => {
            Some("metadata change on an existing object, not new content")
        }
        // Put, Post, Copy, CompleteMultipartUpload.
        n if n.starts_with("ObjectCreated:") => None,
        _ => Some("not an object-created event"),
    }
}

/// An EventBridge event from S3: only "Object Created" names an object to consider.
fn eventbridge(v: &Value) -> Result<ObjectEvent, Ignored> {
    let bucket = str_at(v, &["detail", "bucket", "name"]).filter(|b| !b.is_empty());
    let key = str_at(v, &["detail", "object", "key"]);
    let name = str_at(v, &["detail-type"]);
    let skip = |reason: &str| envelope::ignored(bucket, key, name, reason);
    let Some(name) = name else {
        return Err(skip("detail-type is not a string"));
    };
    if let Some(source) = str_at(v, &["source"]).filter(|s| *s != "aws.s3") {
        return Err(skip(&format!("not an S3 event (source {source})")));
    }
    if name != "Object Created" {
        return Err(skip("not an object-created event"));
    }
    let Some(bucket) = bucket else {
        return Err(skip("missing detail.bucket.name"));
    };
    let Some(key) = key else {
        return Err(skip("missing detail.object.key"));
    };
    if envelope::is_folder(key) {
        return Err(skip("a folder, not an object"));
    }
    let object = &v["detail"]["object"];
    let size = u64_at(object, &["size"]);
    let version = envelope::version(
        str_at(object, &["version-id"]),
        str_at(object, &["etag"]),
        size,
    )
    .ok_or_else(|| skip("missing detail.object.etag: nothing tells this upload from another"))?;
    Ok(ObjectEvent {
        source: Source::S3,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        version,
        event_name: name.to_owned(),
        payload: v.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(name: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-west-2",
            "eventName": name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": "media-in", "arn": "arn:aws:s3:::media-in"},
                "object": {"key": key, "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0055AED6DCD90281E5"}
            }
        })
    }

    fn parse_value(v: &Value) -> Parsed {
        parse(v.to_string().as_bytes()).unwrap()
    }

    fn reasons(p: &Parsed) -> Vec<&str> {
        p.ignored.iter().map(|i| i.reason.as_str()).collect()
    }

    #[test]
    fn record_keys_are_url_decoded() {
        let r = record("ObjectCreated:Put", "in/my+video+%26+more%2B1.mp4");
        let p = parse_value(&json!({"Records": [r.clone()]}));
        assert_eq!(
            p.objects,
            vec![ObjectEvent {
                source: Source::S3,
                bucket: "media-in".into(),
                key: "in/my video & more+1.mp4".into(),
                size: Some(1024),
                version: "d41d8cd98f00b204e9800998ecf8427e-1024".into(),
                event_name: "ObjectCreated:Put".into(),
                payload: r,
            }]
        );
        let minio = record(
            "s3:ObjectCreated:Put",
            "in%2Fvid%C3%A9o+%E6%9D%B1%E4%BA%AC.mp4",
        );
        assert_eq!(
            parse_value(&json!({"Records": [minio]})).objects[0].key,
            "in/vidéo 東京.mp4"
        );
    }

    #[test]
    fn keys_that_are_not_utf8_once_decoded_are_skipped() {
        let p = parse_value(&json!({"Records": [record("ObjectCreated:Put", "bad%FF.mp4")]}));
        assert_eq!(
            reasons(&p),
            ["object key is not valid UTF-8 once URL-decoded"]
        );
        assert_eq!(p.ignored[0].key.as_deref(), Some("bad%FF.mp4"));
        assert_eq!(decode_key("100%zz+x").as_deref(), Some("100%zz x"));
    }

    #[test]
    fn only_new_content_makes_objects() {
        let p = parse_value(&json!({"Records": [
            record("ObjectCreated:Post", "a.mp4"),
            record("ObjectCreated:Copy", "b.mp4"),
            record("s3:ObjectCreated:CompleteMultipartUpload", "c.mp4"),
            record("ObjectRemoved:Delete", "d.mp4"),
            record("s3:ObjectAccessed:Get", "e.mp4"),
            record("ObjectRestore:Completed", "f.mp4"),
            record("s3:ObjectCreated:PutRetention", "g.mp4"),
            record("s3:ObjectCreated:PutLegalHold", "g.mp4"),
            record("s3:ObjectCreated:PutTagging", "g.mp4"),
            record("ObjectCreated:Put", "dir/"),
        ]}));
        let names: Vec<_> = p.objects.iter().map(|o| o.event_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ObjectCreated:Post",
                "ObjectCreated:Copy",
                "s3:ObjectCreated:CompleteMultipartUpload"
            ]
        );
        let meta = "metadata change on an existing object, not new content";
        let other = "not an object-created event";
        assert_eq!(
            reasons(&p),
            [
                other,
                other,
                other,
                meta,
                meta,
                meta,
                "a folder, not an object"
            ]
        );
        assert_eq!(p.ignored[0].event.as_deref(), Some("ObjectRemoved:Delete"));
    }

    #[test]
    fn version_id_wins_unless_null() {
        let mut r = record("ObjectCreated:Put", "a.mp4");
        r["s3"]["object"]["versionId"] = json!("096fKKXTRTtl3on89fVO.nfljtsv6qko");
        assert_eq!(
            parse_value(&json!({"Records": [r.clone()]})).objects[0].version,
            "096fKKXTRTtl3on89fVO.nfljtsv6qko"
        );
        r["s3"]["object"]["versionId"] = json!("null");
        assert_eq!(
            parse_value(&json!({"Records": [r]})).objects[0].version,
            "d41d8cd98f00b204e9800998ecf8427e-1024"
        );
    }

    #[test]
    fn broken_records_are_skipped_not_fatal() {
        let mut no_bucket = record("ObjectCreated:Put", "a.mp4");
        no_bucket["s3"]["bucket"] = json!({});
        let mut no_key = record("ObjectCreated:Put", "a.mp4");
        no_key["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        let mut no_etag = record("ObjectCreated:Put", "a.mp4");
        no_etag["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("eTag");
        let p = parse_value(&json!({"Records": [no_bucket, no_key, no_etag, {"s3": {}}, "x"]}));
        assert_eq!(
            reasons(&p),
            [
                "missing s3.bucket.name",
                "missing s3.object.key",
                "missing s3.object.eTag: nothing tells this upload from another",
                "record has no eventName",
                "record is not a JSON object",
            ]
        );
    }

    #[test]
    fn sns_test_and_eventbridge_shapes() {
        let inner = json!({"Records": [record("ObjectCreated:Put", "s+n.mp4")]}).to_string();
        let sns = json!({"Type": "Notification", "MessageId": "m", "Message": inner});
        assert_eq!(parse_value(&sns).objects[0].key, "s n.mp4");
        let confirm = json!({"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns.example/?Action=ConfirmSubscription"});
        assert_eq!(
            reasons(&parse_value(&confirm)),
            [
                "SNS subscription confirmation: confirm the subscription by visiting SubscribeURL https://sns.example/?Action=ConfirmSubscription"
            ]
        );
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "media-in"});
        let p = parse_value(&test);
        assert_eq!(
            p.ignored,
            vec![envelope::ignored(
                Some("media-in"),
                None,
                Some("s3:TestEvent"),
                "test event"
            )]
        );
        let eb = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {
            "bucket": {"name": "media-in"},
            "object": {"key": "raw/a b+c.mp4", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"}}});
        let p = parse_value(&eb);
        assert_eq!(
            (p.objects[0].key.as_str(), p.objects[0].version.as_str()),
            ("raw/a b+c.mp4", "b1946ac92492d2347c6235b4d2611184-5")
        );
        let deleted = json!({"detail-type": "Object Deleted", "source": "aws.s3", "detail": {}});
        assert_eq!(
            reasons(&parse_value(&deleted)),
            ["not an object-created event"]
        );
    }

    #[test]
    fn malformed_notifications_are_errors() {
        let err = |body: &str| parse(body.as_bytes()).unwrap_err().message;
        assert_eq!(
            err(r#"{"Records": {}}"#),
            "Records must be an array, got an object"
        );
        assert!(
            err("{\"Rec").starts_with("not JSON: EOF while parsing a string at line 1 column 5")
        );
        assert!(err("   ").starts_with("empty body: expected an S3 event notification"));
        assert!(err("[]").starts_with("expected an S3 event notification"));
        assert!(err(r#"{"a": 1}"#).starts_with("JSON object has none of \"Records\""));
        assert!(
            err(r#"{"Type": "Notification", "Message": "nope"}"#)
                .starts_with("SNS Message: not JSON")
        );
        assert!(err(r#"{"Type": "Weird"}"#).starts_with("unknown SNS message Type \"Weird\""));
        assert!(err(r#"{"Event": "s3:Other"}"#).starts_with("unknown \"Event\" \"s3:Other\""));
        assert_eq!(parse(br#"{"Records": []}"#).unwrap(), Parsed::default());
    }

    #[test]
    fn errors_name_the_part_at_fault() {
        let field = |body: &str| parse(body.as_bytes()).unwrap_err().field;
        assert_eq!(field(r#"{"Records": {}}"#), "Records");
        assert_eq!(
            field(r#"{"Type": "Notification", "Message": "nope"}"#),
            "Message"
        );
        assert_eq!(field(r#"{"Type": "Notification"}"#), "Message");
        assert_eq!(field(r#"{"Type": 1}"#), "Type");
        assert_eq!(field(r#"{"Event": "s3:Other"}"#), "Event");
        assert_eq!(field(r#"{"a": 1}"#), "notification");
        assert_eq!(field("{"), "body");
    }

    #[test]
    fn nested_sns_is_bounded() {
        let mut body = json!({"Records": []});
        for _ in 0..=envelope::MAX_ENVELOPES {
            body = json!({"Type": "Notification", "Message": body.to_string()});
        }
        assert!(
            parse(body.to_string().as_bytes())
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
    }
}
