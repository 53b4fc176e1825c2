//! Envelopes around bucket event notifications — JSON text, Base64, and MNS XML
//! `<Notification>` bodies — unwrapped to a `serde_json::Value` under a depth limit so
//! hostile input cannot nest forever; plus the `Value` lookups and the version and folder
//! rules the OSS and S3 parsers share.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::{Ignored, PayloadError};

/// How many envelopes (Base64, an XML `<Message>`, a JSON `"Message"` string, a batch array
/// …) may wrap a notification. Real deliveries use at most two (MNS XML → Base64 → JSON).
pub(super) const MAX_ENVELOPES: usize = 3;

/// The field of errors about the notification as a whole (its shape, its nesting), whichever
/// envelope it came out of.
pub(super) const NOTIFICATION: &str = "notification";
/// The field of errors about an MNS XML body's `<Message>` element.
const XML_MESSAGE: &str = "XML <Message>";

/// Fails once more than [`MAX_ENVELOPES`] envelopes have been removed.
pub(super) fn check_depth(depth: usize) -> Result<(), PayloadError> {
    if depth > MAX_ENVELOPES {
        return Err(PayloadError::new(
            NOTIFICATION,
            format!(
                "notification nested too deeply: more than {MAX_ENVELOPES} envelopes \
                 (Base64, XML <Message>, JSON \"Message\") around it"
            ),
        ));
    }
    Ok(())
}

/// The body without a UTF-8 byte-order mark and surrounding whitespace.
fn trimmed(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(body)
        .trim_ascii()
}

/// Reads a body that must be JSON text.
pub(super) fn json(body: &[u8], expected: &str) -> Result<Value, PayloadError> {
    let body = trimmed(body);
    if body.is_empty() {
        return Err(PayloadError::new(
            "body",
            format!("empty body: expected {expected}"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| PayloadError::new("body", format!("not JSON: {e} (expected {expected})")))
}

/// Reads a body the way MNS may push it: JSON text, an XML `<Notification>` whose
/// `<Message>` holds the notification, or Base64 of either (the SIMPLIFIED format).
/// `depth` counts the envelopes already removed; the returned depth includes those removed
/// here.
pub(super) fn mns(
    body: &[u8],
    depth: usize,
    expected: &str,
) -> Result<(Value, usize), PayloadError> {
    check_depth(depth)?;
    let body = trimmed(body);
    let what = if depth == 0 {
        "body"
    } else {
        "unwrapped message"
    };
    match body.first() {
        None => Err(PayloadError::new(
            what,
            format!("empty {what}: expected {expected}"),
        )),
        Some(b'{' | b'[' | b'"') => serde_json::from_slice(body)
            .map(|v| (v, depth))
            .map_err(|e| {
                PayloadError::new(
                    what,
                    format!("{what} is not JSON: {e} (expected {expected})"),
                )
            }),
        Some(b'<') => mns(xml_message(body)?.as_bytes(), depth + 1, expected),
        Some(_) => {
            let decoded = base64(body).map_err(|e| {
                PayloadError::new(
                    what,
                    format!(
                        "{what} is neither JSON, MNS XML nor Base64 ({e}): expected {expected}"
                    ),
                )
            })?;
            mns(&decoded, depth + 1, expected)
        }
    }
}

/// Standard-alphabet Base64, padding optional (MNS pads; hand-made bodies often do not).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes Base64 that may be wrapped in lines or end in a newline.
fn base64(body: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    BASE64.decode(compact)
}

/// The text of the `<Message>` element of an MNS XML notification, with entities and CDATA
/// resolved.
///
/// A minimal extraction rather than an XML parser (such as `quick-xml`): only this one
/// element matters, its content is Base64 or JSON text, and MNS's own documented sample is
/// not well-formed (`xlmns=`, `<PublishTime>…</MessagePublishTime>`), so a strict parser
/// would reject the very shape MNS documents. What is read is narrow: the first `<Message>`
/// (not `<MessageId>`, `<MessageMD5>`, …), text, CDATA and the five predefined entities plus
/// character references; any markup inside it is an error.
fn xml_message(body: &[u8]) -> Result<String, PayloadError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| PayloadError::new("body", format!("XML body is not UTF-8: {e}")))?;
    let content = message_start(text).ok_or_else(|| {
        PayloadError::new(
            XML_MESSAGE,
            "XML body has no <Message> element: expected an MNS <Notification> holding \
             the event in <Message>",
        )
    })?;
    match content {
        Some(rest) => message_text(rest),
        None => Ok(String::new()),
    }
}

/// Finds the `<Message>` start tag: `Some(Some(rest after it))`, `Some(None)` for an empty
/// `<Message/>`, `None` when there is none.
fn message_start(text: &str) -> Option<Option<&str>> {
    const TAG: &str = "<Message";
    let mut rest = text;
    loop {
        let after = &rest[rest.find(TAG)? + TAG.len()..];
        match after.chars().next() {
            Some('>') => return Some(Some(&after[1..])),
            Some(c) if c.is_ascii_whitespace() || c == '/' => {
                let end = after.find('>')?;
                if after[..end].ends_with('/') {
                    return Some(None);
                }
                return Some(Some(&after[end + 1..]));
            }
            _ => rest = after,
        }
    }
}

/// Reads text up to `</Message>`, resolving CDATA sections and entities.
fn message_text(mut rest: &str) -> Result<String, PayloadError> {
    let mut out = String::with_capacity(rest.len().min(1 << 20));
    loop {
        let Some(at) = rest.find(['<', '&']) else {
            return Err(PayloadError::new(
                XML_MESSAGE,
                "XML <Message> element is not closed",
            ));
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
            let end = cdata
                .find("]]>")
                .ok_or_else(|| PayloadError::new(XML_MESSAGE, "XML CDATA section is not closed"))?;
            out.push_str(&cdata[..end]);
            rest = &cdata[end + 3..];
        } else if let Some(close) = rest.strip_prefix("</Message") {
            if close.trim_start().starts_with('>') {
                return Ok(out);
            }
            return Err(PayloadError::new(
                XML_MESSAGE,
                "XML </Message> end tag is malformed",
            ));
        } else if rest.starts_with('&') {
            let (c, len) = entity(rest)?;
            out.push(c);
            rest = &rest[len..];
        } else {
            return Err(PayloadError::new(
                XML_MESSAGE,
                "XML <Message> element holds markup: expected Base64 or JSON text",
            ));
        }
    }
}

/// Resolves the entity at the start of `s` (which starts with `&`): the character and how
/// many bytes the reference spans.
fn entity(s: &str) -> Result<(char, usize), PayloadError> {
    // Entity names are short: look for the `;` nearby only, so a body full of `&` stays linear.
    let window = &s.as_bytes()[..s.len().min(12)];
    let semi = window
        .iter()
        .position(|b| *b == b';')
        .ok_or_else(|| PayloadError::new(XML_MESSAGE, "XML text has a bare '&' (not an entity)"))?;
    let name = &s[1..semi];
    let c = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => char_reference(name),
    };
    c.map(|c| (c, semi + 1)).ok_or_else(|| {
        PayloadError::new(
            XML_MESSAGE,
            format!("XML text has an unknown entity &{name};"),
        )
    })
}

/// `#NN` or `#xHH` as a character.
fn char_reference(name: &str) -> Option<char> {
    let digits = name.strip_prefix('#')?;
    let code = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    char::from_u32(code)
}

/// The string at `path` in `v`, if every step exists and the last is a string.
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, step| v.get(step))?.as_str()
}

/// The unsigned integer at `path` in `v`.
pub(super) fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, step| v.get(step))?.as_u64()
}

/// What a JSON value is, for error messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What tells one upload of a key from another: the version id when the store keeps
/// versions (S3 writes `"null"` when it does not), else the eTag (quotes stripped) with the
/// size, as `"{etag}-{size}"`. `None` when there is neither.
pub(super) fn version(
    version_id: Option<&str>,
    etag: Option<&str>,
    size: Option<u64>,
) -> Option<String> {
    if let Some(id) = version_id.filter(|id| !id.is_empty() && *id != "null") {
        return Some(id.to_owned());
    }
    let etag = etag
        .map(|e| e.trim_matches('"'))
        .filter(|e| !e.is_empty())?;
    Some(match size {
        Some(size) => format!("{etag}-{size}"),
        None => etag.to_owned(),
    })
}

/// An empty key, or one ending in `/`: a console "folder" marker, not an object.
pub(super) fn is_folder(key: &str) -> bool {
    key.is_empty() || key.ends_with('/')
}

/// An [`Ignored`] entry from borrowed parts.
pub(super) fn ignored(
    bucket: Option<&str>,
    key: Option<&str>,
    event: Option<&str>,
    reason: impl Into<String>,
) -> Ignored {
    Ignored {
        bucket: bucket.map(str::to_owned),
        key: key.map(str::to_owned),
        event: event.map(str::to_owned),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "a test notification";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn json_base64_and_xml_unwrap_to_the_same_value() {
        let plain = r#"{"a":1}"#;
        let (v, depth) = mns(plain.as_bytes(), 0, WHAT).unwrap();
        assert_eq!((v.clone(), depth), (serde_json::json!({"a":1}), 0));
        let (v2, depth) = mns(format!("{}\r\n", b64(plain)).as_bytes(), 0, WHAT).unwrap();
        assert_eq!((v2, depth), (v.clone(), 1));
        let xml = format!(
            "<?xml version=\"1.0\"?><Notification><MessageId>x</MessageId>\
             <Message>{}</Message><MessageMD5>y</MessageMD5></Notification>",
            b64(plain)
        );
        assert_eq!(mns(xml.as_bytes(), 0, WHAT).unwrap(), (v, 2));
    }

    #[test]
    fn base64_without_padding_or_with_line_breaks_decodes() {
        let text = b64(r#"{"events":[]}"#);
        let unpadded = text.trim_end_matches('=');
        assert_eq!(base64(unpadded.as_bytes()).unwrap(), br#"{"events":[]}"#);
        let wrapped = format!("{}\n{}\n", &text[..8], &text[8..]);
        assert_eq!(base64(wrapped.as_bytes()).unwrap(), br#"{"events":[]}"#);
    }

    #[test]
    fn xml_message_resolves_entities_and_cdata() {
        let xml = r#"<Notification><Message attr="1">{&quot;k&quot;:&quot;a&amp;b &#x4E1C;&#20140;&lt;&gt;&apos;&quot;}</Message></Notification>"#;
        assert_eq!(
            xml_message(xml.as_bytes()).unwrap(),
            "{\"k\":\"a&b 东京<>'\"}"
        );
        let cdata =
            "<Notification><Message><![CDATA[{\"k\":\"</Message>\"}]]></Message></Notification>";
        assert_eq!(
            xml_message(cdata.as_bytes()).unwrap(),
            "{\"k\":\"</Message>\"}"
        );
        assert_eq!(xml_message(b"<N><Message/></N>").unwrap(), "");
    }

    #[test]
    fn xml_problems_are_named() {
        let err = |xml: &str| xml_message(xml.as_bytes()).unwrap_err().message;
        assert!(err("<N><MessageId>1</MessageId></N>").contains("no <Message> element"));
        assert!(err("<N><Message>abc").contains("not closed"));
        assert!(err("<N><Message>a<b/></Message></N>").contains("holds markup"));
        assert!(err("<N><Message>&nbsp;</Message></N>").contains("unknown entity &nbsp;"));
        assert!(err("<N><Message>a & b</Message></N>").contains("bare '&'"));
        assert!(err("<N><Message>&#xD800;</Message></N>").contains("unknown entity"));
        let field = |xml: &str| xml_message(xml.as_bytes()).unwrap_err().field;
        assert_eq!(field("<N><Message>a & b</Message></N>"), XML_MESSAGE);
        assert_eq!(field("<N></N>"), XML_MESSAGE);
    }

    #[test]
    fn nesting_is_bounded() {
        let mut body = r#"{"a":1}"#.to_owned();
        for _ in 0..MAX_ENVELOPES {
            body = b64(&body);
        }
        assert_eq!(mns(body.as_bytes(), 0, WHAT).unwrap().1, MAX_ENVELOPES);
        let deeper = b64(&body);
        let err = mns(deeper.as_bytes(), 0, WHAT).unwrap_err().message;
        assert!(err.contains("nested too deeply"), "{err}");
    }

    #[test]
    fn undecodable_bodies_say_what_was_expected() {
        let err = mns(b"  \n", 0, WHAT).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            ("body", "empty body: expected a test notification")
        );
        let err = mns(b"%", 1, WHAT).unwrap_err();
        assert_eq!(err.field, "unwrapped message");
        let err = mns(b"hello world!", 0, WHAT).unwrap_err().message;
        assert!(
            err.starts_with("body is neither JSON, MNS XML nor Base64"),
            "{err}"
        );
        let err = mns(b"{\"a\":", 0, WHAT).unwrap_err().message;
        assert!(
            err.starts_with("body is not JSON: EOF while parsing"),
            "{err}"
        );
        let err = json(b"{oops}", WHAT).unwrap_err().message;
        assert!(
            err.starts_with("not JSON: key must be a string at line 1 column 2"),
            "{err}"
        );
    }

    #[test]
    fn version_prefers_a_real_version_id() {
        assert_eq!(version(Some("v1"), Some("\"e\""), Some(3)).unwrap(), "v1");
        assert_eq!(
            version(Some("null"), Some("\"e\""), Some(3)).unwrap(),
            "e-3"
        );
        assert_eq!(version(None, Some("e"), None).unwrap(), "e");
        assert_eq!(version(Some(""), Some("\"\""), Some(3)), None);
    }
}
