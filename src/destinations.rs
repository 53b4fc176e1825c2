//! Destinations: when a job ends, its `on_success` (succeeded) or `on_failure` (failed or
//! cancelled — the dead-letter path) URL — the configured default when the job was made
//! without one — receives the job as JSON by HTTP POST. Deliveries are durable: the store writes each ending into its delivery
//! outbox in the same transaction as the ending, and a [`Courier`] in every worker (and in an
//! API-only `serve`) takes due deliveries under a hold, posts them, records every try in the
//! job's history, and retries with backoff until delivered or given up.
//!
//! Delivery is at least once: a process that dies after the receiver answered but before the
//! try was recorded leaves the delivery to be sent again when its hold expires. Every try of
//! one ending carries the same `Idempotency-Key` (and `webhook-id`) header, so a receiver can
//! drop repeats. With `[destinations] secrets`, deliveries are signed as Standard Webhooks
//! 1.0 asks: `webhook-timestamp`, and `webhook-signature` with a `v1,` HMAC-SHA256 of
//! `id.timestamp.body` per secret.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Destinations;
use crate::job::{Job, Status, Timestamp};
use crate::store::{Change, Delivery, JobStore};

/// Tries in flight at once in one process.
const IN_FLIGHT: usize = 8;
/// How often the outbox is looked at when nothing announces an ending (retries come due).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Where a finished job is delivered, if anywhere: its own `on_success` or `on_failure` (the
/// configured defaults were filled in when it was made; see [`Destinations::fill`]).
pub fn target(job: &Job) -> Option<String> {
    match job.status {
        Status::Succeeded => job.on_success.clone(),
        Status::Failed | Status::Cancelled => job.on_failure.clone(),
        _ => None,
    }
}

/// The wait after failed try `n` (1-based): 1 s, 2 s, 4 s, … up to 64 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1 << n.saturating_sub(1).min(6))
}

/// The `Idempotency-Key` of a delivery: the same for every try of one ending of a job.
pub fn idempotency_key(d: &Delivery) -> String {
    format!("{}:{}:{}", d.job.id, d.job.attempt, d.id)
}

/// The Standard Webhooks headers of one try: `webhook-id`, `webhook-timestamp` (seconds) and,
/// when there are keys, `webhook-signature`: `v1,` and the Base64 HMAC-SHA256 of
/// `id.timestamp.body` by each key, space-separated (a receiver accepts any that matches,
/// so secrets can be replaced without a gap).
pub fn webhook_headers(
    keys: &[Vec<u8>],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut headers = vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    let signatures: Vec<String> = keys
        .iter()
        .filter_map(|key| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            let digest = mac.finalize().into_bytes();
            Some(format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ))
        })
        .collect();
    if !signatures.is_empty() {
        headers.push(("webhook-signature", signatures.join(" ")));
    }
    headers
}

/// Delivers the store's outbox from this process.
#[derive(Clone)]
pub struct Courier {
    store: Arc<dyn JobStore>,
    http: reqwest::Client,
    settings: Destinations,
    /// The signing keys of `settings.secrets` (checked when the configuration was read).
    keys: Arc<Vec<Vec<u8>>>,
    /// Who holds the deliveries this courier takes (the worker's id).
    holder: String,
}

/// A running courier.
pub struct CourierHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CourierHandle {
    /// Stops taking deliveries once what is due now has been taken, and waits for the tries
    /// in flight until `deadline`; those still running then are dropped, and their holds
    /// expire so another process delivers them.
    pub async fn finish(mut self, deadline: tokio::time::Instant) {
        let _ = self.stop.send(true);
        if tokio::time::timeout_at(deadline, &mut self.task)
            .await
            .is_err()
        {
            tracing::info!("drain timeout: leaving deliveries in flight to other workers");
            self.task.abort();
        }
    }

    /// Stops at once, dropping the tries in flight (their holds expire).
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Courier {
    pub fn new(
        store: Arc<dyn JobStore>,
        http: reqwest::Client,
        settings: Destinations,
        holder: String,
    ) -> Courier {
        let keys = settings
            .secrets
            .iter()
            .filter_map(|s| crate::config::signing_key(s).ok())
            .collect();
        Courier {
            store,
            http,
            settings,
            keys: Arc::new(keys),
            holder,
        }
    }

    pub fn start(self) -> CourierHandle {
        let (stop, stopped) = watch::channel(false);
        CourierHandle {
            stop,
            task: tokio::spawn(self.run(stopped)),
        }
    }

    /// How long a try may hold a delivery: the request's timeout twice over, and then some.
    fn hold(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_seconds.max(1) * 2 + 10)
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        let mut in_flight = JoinSet::new();
        loop {
            let stopping = *stop.borrow();
            let room = IN_FLIGHT.saturating_sub(in_flight.len());
            if room > 0 {
                match self
                    .store
                    .claim_deliveries(&self.holder, self.hold(), room as u32)
                    .await
                {
                    Ok(due) => {
                        for d in due {
                            in_flight.spawn(self.clone().try_once(d));
                        }
                    }
                    Err(e) => tracing::warn!("delivery outbox: {e}"),
                }
            }
            if stopping {
                while in_flight.join_next().await.is_some() {}
                return;
            }
            // Until an ending is announced, a try ends, the next look is due, or a stop.
            let look = tokio::time::sleep(LOOK_EVERY);
            tokio::pin!(look);
            loop {
                tokio::select! {
                    _ = &mut look => break,
                    Some(_) = in_flight.join_next() => break,
                    changed = stop.changed() => {
                        if changed.is_err() {
                            // Nobody can stop this courier any more: stop now, as asked last.
                            while in_flight.join_next().await.is_some() {}
                            return;
                        }
                        break;
                    }
                    change = changes.recv() => match change {
                        Ok(Change::Status { status, .. }) if status.is_terminal() => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            changes = self.store.subscribe();
                        }
                    },
                }
            }
        }
    }

    /// POSTs `job` as JSON to `url`, signed when there are secrets (the bytes signed are the
    /// bytes sent).
    async fn post(
        &self,
        url: &str,
        key: &str,
        try_no: u32,
        job: &Job,
    ) -> reqwest::Result<reqwest::Response> {
        let body = serde_json::to_vec(job).unwrap_or_default();
        let now = chrono::Utc::now().timestamp();
        let mut request = self
            .http
            .post(url)
            .timeout(Duration::from_secs(self.settings.timeout_seconds.max(1)))
            .header("Idempotency-Key", key)
            .header("X-Ffarm-Delivery-Try", try_no.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in webhook_headers(&self.keys, key, now, &body) {
            request = request.header(name, value);
        }
        request.body(body).send().await
    }

    /// One try of one delivery: POST, then record the try and what comes next.
    async fn try_once(self, d: Delivery) {
        let job = &d.job;
        let Some(url) = target(job) else {
            // Nowhere to go: nothing to record either. Defensive only: the outbox takes an
            // ending only when the job has the matching URL.
            if let Err(e) = self
                .store
                .record_delivery(d.id, &self.holder, None, None)
                .await
            {
                tracing::debug!("job {}: dropping an undeliverable ending: {e}", job.id);
            }
            return;
        };
        let which = if job.status == Status::Succeeded {
            "on_success"
        } else {
            "on_failure"
        };
        let try_no = d.tries + 1;
        let tries = self.settings.attempts.max(1);
        let key = idempotency_key(&d);
        let sent = self.post(&url, &key, try_no, job).await;
        let (ok, what, status) = match &sent {
            Ok(r) => (
                r.status().is_success(),
                format!("HTTP {}", r.status().as_u16()),
                Some(r.status().as_u16()),
            ),
            Err(e) => (false, e.to_string(), None),
        };
        let gave_up = !ok && try_no >= tries;
        let reason = if ok {
            format!("{which} delivered to {url} ({what})")
        } else if gave_up {
            format!(
                "{which} delivery {try_no}/{tries} to {url} failed: {what}; gave up, not delivered"
            )
        } else {
            format!("{which} delivery {try_no}/{tries} to {url} failed: {what}")
        };
        let detail = serde_json::json!({
            "destination": which,
            "url": url,
            "attempt": try_no,
            "status": status,
            "delivered": ok,
            "gave_up": gave_up,
            "idempotency_key": key,
        });
        let next = (!ok && !gave_up).then(|| Timestamp::now().plus(backoff(try_no)));
        if gave_up {
            tracing::warn!(
                "job {}: gave up delivering to {url} after {tries} tries",
                job.id
            );
        }
        if let Err(e) = self
            .store
            .record_delivery(d.id, &self.holder, next, Some((reason, detail)))
            .await
        {
            tracing::warn!("job {}: recording a delivery: {e}", job.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_growing() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
    }
}
