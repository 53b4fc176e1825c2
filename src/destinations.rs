//! Destinations: when a job ends, its `on_success` (succeeded) or `on_failure` (failed or
//! cancelled — the dead-letter path) URL, or the configured default, receives the job as JSON
//! by HTTP POST, retried with backoff. Every delivery attempt is noted in the job's history.

use std::time::Duration;

use crate::config::Destinations;
use crate::job::{Job, Status};
use crate::store::JobStore;

/// Checks a destination URL: absolute http(s), without control characters.
pub fn validate_url(url: &str) -> Result<(), String> {
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

/// Where a finished job is delivered, if anywhere.
pub fn target(job: &Job, settings: &Destinations) -> Option<String> {
    match job.status {
        Status::Succeeded => job
            .on_success
            .clone()
            .or_else(|| settings.on_success.clone()),
        Status::Failed | Status::Cancelled => job
            .on_failure
            .clone()
            .or_else(|| settings.on_failure.clone()),
        _ => None,
    }
}

/// Delivers a finished job to its destination, retrying with backoff (1 s, 2 s, 4 s, …).
pub async fn deliver(
    store: &dyn JobStore,
    http: &reqwest::Client,
    settings: &Destinations,
    job: &Job,
) {
    let Some(url) = target(job, settings) else {
        return;
    };
    let which = if job.status == Status::Succeeded {
        "on_success"
    } else {
        "on_failure"
    };
    let attempts = settings.attempts.max(1);
    for attempt in 1..=attempts {
        let sent = http
            .post(&url)
            .timeout(Duration::from_secs(settings.timeout_seconds.max(1)))
            .json(job)
            .send()
            .await;
        let (ok, what, status) = match &sent {
            Ok(r) if r.status().is_success() => (
                true,
                format!("HTTP {}", r.status().as_u16()),
                Some(r.status().as_u16()),
            ),
            Ok(r) => (
                false,
                format!("HTTP {}", r.status().as_u16()),
                Some(r.status().as_u16()),
            ),
            Err(e) => (false, e.to_string(), None),
        };
        let reason = if ok {
            format!("{which} delivered to {url} ({what})")
        } else {
            format!("{which} delivery {attempt}/{attempts} to {url} failed: {what}")
        };
        let detail = serde_json::json!({
            "destination": which,
            "url": url,
            "attempt": attempt,
            "status": status,
            "delivered": ok,
        });
        if let Err(e) = store.note(&job.id, "delivery", &reason, detail).await {
            tracing::warn!("recording a delivery for {}: {e}", job.id);
        }
        if ok {
            return;
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1).min(6))).await;
        }
    }
    tracing::warn!(
        "job {}: gave up delivering to {url} after {attempts} attempts",
        job.id
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_url("https://example.com/x").is_ok());
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("file:///etc/passwd").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(validate_url("http://example.com/a\0b").is_err());
    }
}
