//! Alibaba Cloud OSS event notifications: every shape in which OSS events reach an HTTP
//! endpoint — the `{"events": […]}` JSON, a lone event element, an EventBridge CloudEvent,
//! and MNS pushes (JSON, XML or SIMPLIFIED Base64) — read into [`ObjectEvent`]s.
//!
//! Object keys are taken literally. Alibaba documents `oss.object.key` as "the object's
//! name" (Function Compute's OSS trigger event reference, and the MNS event message format)
//! and never as URL-encoded, unlike AWS, whose docs say outright that S3 keys in
//! notifications are URL-encoded; Alibaba's own FC samples pass the key straight to
//! `bucket.get_object`. Decoding would also corrupt real keys holding `%` or `+`.

use serde_json::Value;

use super::envelope::{self, NOTIFICATION, str_at, u64_at};
use super::{Ignored, ObjectEvent, Parsed, PayloadError, Source};

/// What a body must be, for error messages.
const EXPECTED: &str = "an OSS event notification: JSON with \"events\", an event element \
     with \"oss\", an EventBridge event with \"data\", or an MNS push (JSON or XML with \
     \"Message\", or Base64)";

/// Reads an OSS event notification in any of its delivered shapes.
pub fn parse(body: &[u8]) -> Result<Parsed, PayloadError> {
    let (value, depth) = envelope::mns(body, 0, EXPECTED)?;
    let mut parsed = Parsed::default();
    read(&value, depth, &mut parsed)?;
    Ok(parsed)
}

/// Reads one JSON shape, unwrapping what wraps the events.
fn read(v: &Value, depth: usize, out: &mut Parsed) -> Result<(), PayloadError> {
    envelope::check_depth(depth)?;
    match v {
        Value::Object(map) => {
            if let Some(events) = map.get("events") {
                events_array(events, out)
            } else if map.contains_key("oss") {
                push(element(v, None), out);
                Ok(())
            } else if let Some(data) = map.get("data") {
                cloud_event(v, data, depth, out)
            } else if let Some(message) = map.get("Message") {
                nested(message, ("Message", "MNS \"Message\""), depth, out)
            } else {
                Err(PayloadError::new(
                    NOTIFICATION,
                    format!(
                        "JSON object has none of \"events\", \"oss\", \"data\" or \
                         \"Message\": expected {EXPECTED}"
                    ),
                ))
            }
        }
        // A batch, as Function Compute hands EventBridge events over.
        Value::Array(items) => items.iter().try_for_each(|item| read(item, depth + 1, out)),
        Value::String(_) => nested(v, (NOTIFICATION, "JSON string"), depth, out),
        other => Err(PayloadError::new(
            NOTIFICATION,
            format!("expected {EXPECTED}, got {}", envelope::kind(other)),
        )),
    }
}

/// A string holding the notification again (MNS `Message`, CloudEvent `data`, …), named as
/// `(field, what it is for messages)`.
fn nested(
    v: &Value,
    (field, what): (&str, &str),
    depth: usize,
    out: &mut Parsed,
) -> Result<(), PayloadError> {
    let Some(text) = v.as_str() else {
        return Err(PayloadError::new(
            field,
            format!("{what} must be a string, got {}", envelope::kind(v)),
        ));
    };
    let (inner, depth) = envelope::mns(text.as_bytes(), depth + 1, EXPECTED)?;
    read(&inner, depth, out)
}

/// Every element of `{"events": [...]}`.
fn events_array(events: &Value, out: &mut Parsed) -> Result<(), PayloadError> {
    let Some(events) = events.as_array() else {
        return Err(PayloadError::new(
            "events",
            format!(
                "\"events\" must be an array, got {}",
                envelope::kind(events)
            ),
        ));
    };
    for e in events {
        push(element(e, None), out);
    }
    Ok(())
}

/// An EventBridge CloudEvent: `data` is the event element, and `type`
/// (`oss:ObjectCreated:PutObject`) names the event when the element does not.
fn cloud_event(
    event: &Value,
    data: &Value,
    depth: usize,
    out: &mut Parsed,
) -> Result<(), PayloadError> {
    match data {
        Value::Object(map) if map.contains_key("oss") => {
            let fallback = str_at(event, &["type"]).map(|t| t.strip_prefix("oss:").unwrap_or(t));
            push(element(data, fallback), out);
            Ok(())
        }
        Value::Object(_) => read(data, depth + 1, out),
        Value::String(_) => nested(data, ("data", "CloudEvent \"data\""), depth, out),
        other => Err(PayloadError::new(
            "data",
            format!(
                "CloudEvent \"data\" must be an OSS event element, got {}",
                envelope::kind(other)
            ),
        )),
    }
}

fn push(found: Result<ObjectEvent, Ignored>, out: &mut Parsed) {
    match found {
        Ok(object) => out.objects.push(object),
        Err(ignored) => out.ignored.push(ignored),
    }
}

/// One event element: a complete object, or why it makes no job.
fn element(e: &Value, fallback_name: Option<&str>) -> Result<ObjectEvent, Ignored> {
    let bucket = str_at(e, &["oss", "bucket", "name"]).filter(|b| !b.is_empty());
    let key = str_at(e, &["oss", "object", "key"]);
    let name = str_at(e, &["eventName"]).or(fallback_name);
    let skip = |reason: &str| envelope::ignored(bucket, key, name, reason);
    if !e.is_object() {
        return Err(skip("event element is not a JSON object"));
    }
    let Some(name) = name else {
        return Err(skip("event has no eventName"));
    };
    if let Some(reason) = not_a_complete_object(name) {
        return Err(skip(reason));
    }
    let Some(bucket) = bucket else {
        return Err(skip("missing oss.bucket.name"));
    };
    let Some(key) = key else {
        return Err(skip("missing oss.object.key"));
    };
    if envelope::is_folder(key) {
        return Err(skip("a folder, not an object"));
    }
    let size = u64_at(e, &["oss", "object", "size"]);
    let version = envelope::version(
        str_at(e, &["oss", "object", "versionId"]),
        str_at(e, &["oss", "object", "eTag"]),
        size,
    )
    .ok_or_else(|| skip("missing oss.object.eTag: nothing tells this upload from another"))?;
    Ok(ObjectEvent {
        source: Source::Oss,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        version,
        event_name: name.to_owned(),
        payload: e.clone(),
    })
}

/// Why an event names no complete object, or `None` when it does.
fn not_a_complete_object(name: &str) -> Option<&'static str> {
    match name.strip_prefix("oss:").unwrap_or(name) {
        "ObjectCreated:InitiateMultipartUpload"
        | "ObjectCreated:UploadPart"
        | "ObjectCreated:UploadPartCopy" => Some("multipart upload not complete yet"),
        "ObjectCreated:AppendObject" => Some("appendable object may still grow"),
        "ObjectCreated:PutSymlink" => {
            Some("a symlink, not media bytes: its target is an object of its own")
        }
        // PutObject, PostObject, CopyObject, CompleteMultipartUpload, and any later kind of
        // whole-object creation.
        n if n.starts_with("ObjectCreated:") => None,
        _ => Some("not an object-created event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn event(name: &str, key: &str) -> Value {
        json!({
            "eventName": name, "eventSource": "acs:oss", "eventVersion": "1.0",
            "oss": {
                "bucket": {"name": "media-in", "arn": "acs:oss:cn-hangzhou:1:media-in"},
                "object": {"key": key, "size": 122539, "eTag": "688A7BF4F233DC9C88A80BF985AB7329"},
                "ossSchemaVersion": "1.0"
            },
            "region": "cn-hangzhou"
        })
    }

    fn parse_value(v: &Value) -> Parsed {
        parse(v.to_string().as_bytes()).unwrap()
    }

    fn reasons(p: &Parsed) -> Vec<&str> {
        p.ignored.iter().map(|i| i.reason.as_str()).collect()
    }

    #[test]
    fn a_put_becomes_an_object_with_a_literal_key() {
        let e = event("ObjectCreated:PutObject", "in/vidéo 東京 %41+b.mp4");
        let p = parse_value(&json!({"events": [e.clone()]}));
        assert_eq!(p.ignored, vec![]);
        assert_eq!(
            p.objects,
            vec![ObjectEvent {
                source: Source::Oss,
                bucket: "media-in".into(),
                key: "in/vidéo 東京 %41+b.mp4".into(),
                size: Some(122539),
                version: "688A7BF4F233DC9C88A80BF985AB7329-122539".into(),
                event_name: "ObjectCreated:PutObject".into(),
                payload: e,
            }]
        );
    }

    #[test]
    fn every_element_is_read_and_incomplete_uploads_are_skipped_with_a_reason() {
        let p = parse_value(&json!({"events": [
            event("ObjectCreated:PostObject", "a.mp4"),
            event("ObjectCreated:InitiateMultipartUpload", "b.mp4"),
            event("ObjectCreated:UploadPart", "b.mp4"),
            event("ObjectCreated:UploadPartCopy", "b.mp4"),
            event("ObjectCreated:CompleteMultipartUpload", "b.mp4"),
            event("ObjectCreated:AppendObject", "c.mp4"),
            event("ObjectCreated:PutSymlink", "d.mp4"),
            event("ObjectCreated:CopyObject", "e.mp4"),
            event("ObjectRemoved:DeleteObject", "f.mp4"),
            event("ObjectReplication:ObjectCreated", "g.mp4"),
            event("ObjectDownloaded:GetObject", "h.mp4"),
        ]}));
        let keys: Vec<_> = p
            .objects
            .iter()
            .map(|o| (o.key.as_str(), o.event_name.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("a.mp4", "ObjectCreated:PostObject"),
                ("b.mp4", "ObjectCreated:CompleteMultipartUpload"),
                ("e.mp4", "ObjectCreated:CopyObject"),
            ]
        );
        assert_eq!(
            reasons(&p),
            [
                "multipart upload not complete yet",
                "multipart upload not complete yet",
                "multipart upload not complete yet",
                "appendable object may still grow",
                "a symlink, not media bytes: its target is an object of its own",
                "not an object-created event",
                "not an object-created event",
                "not an object-created event",
            ]
        );
        assert_eq!(p.ignored[0].key.as_deref(), Some("b.mp4"));
        assert_eq!(p.ignored[0].bucket.as_deref(), Some("media-in"));
        assert_eq!(
            p.ignored[5].event.as_deref(),
            Some("ObjectRemoved:DeleteObject")
        );
    }

    #[test]
    fn broken_elements_are_skipped_not_fatal() {
        let mut no_bucket = event("ObjectCreated:PutObject", "a.mp4");
        no_bucket["oss"]["bucket"] = json!({});
        let mut no_key = event("ObjectCreated:PutObject", "a.mp4");
        no_key["oss"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("key");
        let mut no_etag = event("ObjectCreated:PutObject", "a.mp4");
        no_etag["oss"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("eTag");
        let mut no_name = event("ObjectCreated:PutObject", "a.mp4");
        no_name.as_object_mut().unwrap().remove("eventName");
        let p = parse_value(&json!({"events": [
            no_bucket, no_key, no_etag, no_name, 7,
            event("ObjectCreated:PutObject", "folder/"),
            event("ObjectCreated:PutObject", ""),
            event("ObjectCreated:PutObject", "ok.mov"),
        ]}));
        assert_eq!(
            reasons(&p),
            [
                "missing oss.bucket.name",
                "missing oss.object.key",
                "missing oss.object.eTag: nothing tells this upload from another",
                "event has no eventName",
                "event element is not a JSON object",
                "a folder, not an object",
                "a folder, not an object",
            ]
        );
        assert_eq!(p.objects.len(), 1);
        assert_eq!(p.objects[0].key, "ok.mov");
    }

    #[test]
    fn version_id_wins_and_etag_quotes_are_stripped() {
        let mut e = event("ObjectCreated:PutObject", "a.mp4");
        e["oss"]["object"]["eTag"] = json!("\"ABC\"");
        assert_eq!(parse_value(&e).objects[0].version, "ABC-122539");
        e["oss"]["object"]["versionId"] =
            json!("CAEQNhiBgM0BYiIDc4MGZjZGI2OTBjOTRmNTE5NmU5NmFmZjJjOWY2");
        assert_eq!(
            parse_value(&e).objects[0].version,
            "CAEQNhiBgM0BYiIDc4MGZjZGI2OTBjOTRmNTE5NmU5NmFmZjJjOWY2"
        );
    }

    #[test]
    fn a_cloud_event_names_the_event_from_its_type_when_data_does_not() {
        let mut data = event("ObjectCreated:PutObject", "x.mp4");
        data.as_object_mut().unwrap().remove("eventName");
        let ce = json!({"specversion": "1.0", "source": "acs.oss",
            "type": "oss:ObjectCreated:CompleteMultipartUpload", "data": data.clone()});
        let p = parse_value(&ce);
        assert_eq!(
            p.objects[0].event_name,
            "ObjectCreated:CompleteMultipartUpload"
        );
        assert_eq!(p.objects[0].payload, data);
        let ce =
            json!({"specversion": "1.0", "type": "oss:ObjectCreated:UploadPart", "data": data});
        assert_eq!(
            reasons(&parse_value(&ce)),
            ["multipart upload not complete yet"]
        );
    }

    #[test]
    fn mns_envelopes_unwrap() {
        let inner = json!({"events": [event("ObjectCreated:PutObject", "m.mp4")]}).to_string();
        let json_push = json!({"TopicOwner": "1", "TopicName": "t", "Message": b64(&inner)});
        assert_eq!(parse_value(&json_push).objects[0].key, "m.mp4");
        let plain_push = json!({"TopicName": "t", "Message": inner});
        assert_eq!(parse_value(&plain_push).objects[0].key, "m.mp4");
        let simplified = format!("{}\n", b64(&inner));
        assert_eq!(
            parse(simplified.as_bytes()).unwrap().objects[0].key,
            "m.mp4"
        );
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Notification \
             xmlns=\"http://mns.aliyuncs.com/doc/v1/\"><TopicOwner>1</TopicOwner>\
             <MessageId>A</MessageId><Message>{}</Message><MessageMD5>B</MessageMD5>\
             </Notification>",
            b64(&inner)
        );
        assert_eq!(parse(xml.as_bytes()).unwrap().objects[0].key, "m.mp4");
        let batch = json!([{"specversion": "1.0", "type": "oss:ObjectCreated:PutObject",
            "data": event("ObjectCreated:PutObject", "n.mp4")}]);
        assert_eq!(parse_value(&batch).objects[0].key, "n.mp4");
    }

    #[test]
    fn malformed_notifications_are_errors() {
        let err = |body: &[u8]| parse(body).unwrap_err().message;
        assert_eq!(
            err(br#"{"events": 5}"#),
            "\"events\" must be an array, got a number"
        );
        assert!(err(br#"{"hello": 1}"#).starts_with("JSON object has none of \"events\""));
        assert!(err(b"").starts_with("empty body: expected an OSS event notification"));
        assert!(err(b"%%%").starts_with("body is neither JSON, MNS XML nor Base64"));
        assert!(err(br#"{"events": ["#).starts_with("body is not JSON: EOF while parsing"));
        assert_eq!(
            err(br#"{"Message": 1}"#),
            "MNS \"Message\" must be a string, got a number"
        );
        assert!(err(b"42").starts_with("body is neither JSON, MNS XML nor Base64"));
        assert!(err(b"true").contains("expected an OSS event notification"));
        assert!(parse(br#"{"events": []}"#).unwrap() == Parsed::default());
    }

    #[test]
    fn errors_name_the_part_at_fault() {
        let field = |body: &[u8]| parse(body).unwrap_err().field;
        assert_eq!(field(br#"{"events": 5}"#), "events");
        assert_eq!(field(br#"{"Message": 1}"#), "Message");
        assert_eq!(field(br#"{"data": 1}"#), "data");
        assert_eq!(field(br#"{"hello": 1}"#), "notification");
        assert_eq!(field(b""), "body");
        assert_eq!(field(b"<N></N>"), "XML <Message>");
        let inner = b64(r#"{"events":"#);
        assert_eq!(
            field(json!({"Message": inner}).to_string().as_bytes()),
            "unwrapped message"
        );
    }
}
