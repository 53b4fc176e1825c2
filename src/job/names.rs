//! What the names a job is given may look like: job ids, bucket names and destination URLs.
//! Pure syntax, shared by the API, the configuration and the triggers.

/// Checks a client-chosen job id: 1 to 128 of A-Z, a-z, 0-9, '_' and '-'.
pub fn validate_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid job id '{}': use 1 to 128 of A-Z, a-z, 0-9, '_' and '-'",
            id.chars().take(140).collect::<String>()
        ))
    }
}

/// A new time-sortable job id (a ULID: 26 characters, sorting by creation time).
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// What a bucket name may hold, as error messages say it.
pub const BUCKET_NAME_RULE: &str =
    "use 1-63 of a-z, 0-9, '.', '-' and '_', starting with a letter or digit";

/// Whether `name` is a bucket name: see [`BUCKET_NAME_RULE`]; never `.` nor holding `..`.
pub fn is_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
        && name != "."
        && !name.contains("..")
}

/// Checks a destination URL: absolute http(s), without control characters.
pub fn validate_destination(url: &str) -> Result<(), String> {
    // The URL parser drops some control characters silently; the job would keep them.
    if url.chars().any(char::is_control) {
        return Err(format!("destination {url:?} contains a control character"));
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!(
            "destination '{url}' must be an http:// or https:// URL"
        )),
        Err(e) => Err(format!("destination '{url}' is not a URL: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("my1-480P-mp4").is_ok());
        assert!(validate_id(&"a".repeat(128)).is_ok());
        for bad in ["", "a b", "../x", "é", &"a".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
        let id = new_id();
        assert_eq!(id.len(), 26);
        assert!(validate_id(&id).is_ok());
    }

    #[test]
    fn destination_urls_are_http() {
        assert!(validate_destination("http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_destination("https://example.com/x").is_ok());
        assert!(validate_destination("ftp://example.com").is_err());
        assert!(validate_destination("file:///etc/passwd").is_err());
        assert!(validate_destination("not a url").is_err());
        assert!(validate_destination("http://example.com/a\0b").is_err());
    }
}
