//! Jobs: what is submitted (`JobSpec`), what is stored (`Job`), and the state machine —
//! `Status::apply` is the one place that decides which transitions are legal.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::media::Progress;

/// A job's status.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    /// A stop was requested for a running job; its worker has not yet confirmed it.
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Cancelling,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Cancelling => "cancelling",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed and cancelled never change again except through an explicit retry.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }

    /// Held by a worker (under a lease).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Cancelling)
    }

    /// The status after `t`, or why `t` is not allowed from here.
    pub fn apply(self, t: Transition) -> Result<Status, IllegalTransition> {
        use Status::*;
        use Transition::*;
        let next = match (self, t) {
            (Queued, Claim) => Running,
            (Running | Cancelling, Succeed) => Succeeded,
            (Running, Requeue) => Queued,
            (Running, Fail) => Failed,
            // A run that fails or is handed back after a stop was requested ends cancelled:
            // the stop, not the failure, is what the user asked for.
            (Cancelling, Requeue | Fail | ConfirmCancel) => Cancelled,
            (Queued, RequestCancel) => Cancelled,
            (Running, RequestCancel) => Cancelling,
            (Cancelling, RequestCancel) => Cancelling,
            (Cancelled, RequestCancel) => Cancelled,
            (Failed | Cancelled, Retry) => Queued,
            (from, t) => {
                return Err(IllegalTransition {
                    from,
                    transition: t,
                });
            }
        };
        Ok(next)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status '{s}'; one of: {}", known.join(", "))
            })
    }
}

/// What happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// A worker takes the job under a lease.
    Claim,
    /// The task finished with outputs.
    Succeed,
    /// Back to the queue: a retryable failure with attempts left, a lost worker, or a
    /// drained worker handing the job back.
    Requeue,
    /// A final failure, or retries exhausted.
    Fail,
    /// A user asks to stop the job.
    RequestCancel,
    /// The worker confirms the task stopped.
    ConfirmCancel,
    /// A user asks to run a failed or cancelled job again.
    Retry,
}

impl Transition {
    pub const ALL: [Transition; 7] = [
        Transition::Claim,
        Transition::Succeed,
        Transition::Requeue,
        Transition::Fail,
        Transition::RequestCancel,
        Transition::ConfirmCancel,
        Transition::Retry,
    ];
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} job cannot {}", describe(*.transition))]
pub struct IllegalTransition {
    pub from: Status,
    pub transition: Transition,
}

fn describe(t: Transition) -> &'static str {
    match t {
        Transition::Claim => "be claimed",
        Transition::Succeed => "succeed",
        Transition::Requeue => "go back to the queue",
        Transition::Fail => "fail",
        Transition::RequestCancel => "be cancelled",
        Transition::ConfirmCancel => "confirm a stop",
        Transition::Retry => "be retried (only failed or cancelled jobs can)",
    }
}

/// Whether any transition leads from `from` to `to` (for the exhaustive pair test).
pub fn reachable(from: Status, to: Status) -> bool {
    Transition::ALL.into_iter().any(|t| from.apply(t) == Ok(to))
}

/// The retry policy: exponential backoff with jitter between automatic attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failed_attempt + 1`: base·2^(n-1), capped, times a random
    /// factor in [0.5, 1.0] so that jobs failing together do not retry together.
    pub fn delay(&self, failed_attempt: u32, jitter: f64) -> Duration {
        let exp = 2f64.powi(failed_attempt.saturating_sub(1).min(30) as i32);
        let raw = (self.base.as_secs_f64() * exp).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(raw * (0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// An object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// Where a job writes: a bucket and a key prefix (ends with `/` or is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputTarget {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

/// The event that made a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trigger {
    /// "api", "oss", "s3", "watch", "upload"…
    pub source: String,
    pub payload: serde_json::Value,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 24 * 3600;

/// What a client submits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub input: ObjectRef,
    pub preset: String,
    pub output: OutputTarget,
    #[serde(default)]
    pub priority: i32,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    #[serde(default)]
    pub on_success: Option<String>,
    #[serde(default)]
    pub on_failure: Option<String>,
    #[serde(default)]
    pub trigger: Option<Trigger>,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

impl JobSpec {
    /// Whether two specs ask for the same work (the trigger payload does not count: a
    /// redelivered event may differ in incidental fields).
    pub fn same_work(&self, other: &JobSpec) -> bool {
        self.input == other.input
            && self.preset == other.preset
            && self.output == other.output
            && self.priority == other.priority
            && self.max_attempts == other.max_attempts
            && self.timeout_seconds == other.timeout_seconds
            && self.on_success == other.on_success
            && self.on_failure == other.on_failure
    }
}

/// A file a job produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputObject {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// Stable machine code ("input-unreadable", "timeout", "worker-lost", …).
    pub code: String,
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

impl JobError {
    pub fn new(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        JobError {
            code: code.to_string(),
            message: message.into(),
            retryable,
        }
    }
}

/// How a worker ends an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        outputs: Vec<OutputObject>,
    },
    Failed(JobError),
    /// The task stopped because a cancel was requested.
    Cancelled,
    /// Handed back without counting a failed attempt (a draining worker).
    Released,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub status: Status,
    pub input: ObjectRef,
    pub preset: String,
    pub output: OutputTarget,
    pub outputs: Vec<OutputObject>,
    pub progress: Option<Progress>,
    /// The current (or last) attempt number, from 1; 0 before the first claim. Also the
    /// fencing token: only the holder of the current attempt may report on the job.
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: i32,
    pub timeout_seconds: u64,
    /// The worker holding (or last holding) the job.
    pub worker: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Not claimable before this time (retry backoff).
    pub run_after: Option<Timestamp>,
    pub lease_expires_at: Option<Timestamp>,
    pub error: Option<JobError>,
    pub trigger: Option<Trigger>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

impl Job {
    pub fn spec(&self) -> JobSpec {
        JobSpec {
            input: self.input.clone(),
            preset: self.preset.clone(),
            output: self.output.clone(),
            priority: self.priority,
            max_attempts: self.max_attempts,
            timeout_seconds: self.timeout_seconds,
            on_success: self.on_success.clone(),
            on_failure: self.on_failure.clone(),
            trigger: self.trigger.clone(),
        }
    }
}

/// A moment in time, kept as microseconds since the Unix epoch and shown as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(micros(d)))
    }

    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(micros(d)))
    }

    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_micros(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    /// Parses RFC 3339 ("2026-11-22T10:00:00Z"), a date ("2026-11-22"), or a relative time
    /// back from now ("15m", "2h", "7d").
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        let s = s.trim();
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(Timestamp(t.timestamp_micros()));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let t = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            return Ok(Timestamp(t.timestamp_micros()));
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a time (RFC 3339, YYYY-MM-DD, or 30s/15m/2h/7d)"))?;
        // Longer ago than time goes back is the beginning of time.
        let secs = match unit {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => {
                return Err(format!(
                    "'{s}' is not a time (RFC 3339, YYYY-MM-DD, or 30s/15m/2h/7d)"
                ));
            }
        };
        Ok(Timestamp::now().minus(Duration::from_secs(secs)))
    }
}

/// A duration in microseconds, saturating (a `Duration` may hold ~2^64 seconds).
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Shown as an RFC 3339 date-time string.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples([serde_json::json!("2026-11-22T10:00:00.000000Z")])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp(t.timestamp_micros()))
            .map_err(serde::de::Error::custom)
    }
}

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

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    /// Every pair of states, and whether some transition leads from the first to the second.
    #[test]
    fn every_pair_of_states() {
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Running, Succeeded),
            (Running, Queued),
            (Running, Failed),
            (Running, Cancelling),
            (Cancelling, Succeeded),
            (Cancelling, Cancelled),
            (Cancelling, Cancelling),
            (Cancelled, Cancelled),
            (Failed, Queued),
            (Cancelled, Queued),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    reachable(from, to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_change_only_by_retry() {
        for from in [Succeeded, Failed, Cancelled] {
            for t in Transition::ALL {
                match from.apply(t) {
                    Ok(to) if to != from => assert_eq!(t, Transition::Retry, "{from} via {t:?}"),
                    _ => {}
                }
            }
        }
        assert!(Succeeded.apply(Transition::Retry).is_err());
    }

    #[test]
    fn cancel_racing_finish_ends_in_one_terminal_state() {
        let cancelling = Running.apply(Transition::RequestCancel).unwrap();
        assert_eq!(cancelling, Cancelling);
        assert_eq!(cancelling.apply(Transition::Succeed), Ok(Succeeded));
        assert_eq!(cancelling.apply(Transition::Fail), Ok(Cancelled));
        assert_eq!(cancelling.apply(Transition::Requeue), Ok(Cancelled));
        // Once terminal, the other report is refused.
        assert!(Succeeded.apply(Transition::ConfirmCancel).is_err());
        assert!(Cancelled.apply(Transition::Succeed).is_err());
    }

    #[test]
    fn illegal_transitions_say_why() {
        let e = Succeeded.apply(Transition::RequestCancel).unwrap_err();
        assert_eq!(e.to_string(), "a succeeded job cannot be cancelled");
        let e = Running.apply(Transition::Retry).unwrap_err();
        assert!(e.to_string().contains("only failed or cancelled"));
    }

    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("done".parse::<Status>().unwrap_err().contains("queued"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(5));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(10));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(10));
        assert_eq!(p.delay(20, 1.0), Duration::from_secs(600));
    }

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
    fn timestamps_parse_and_print() {
        let t = Timestamp::parse("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00.000000Z");
        assert_eq!(
            Timestamp::parse("2026-11-22").unwrap(),
            Timestamp::parse("2026-11-22T00:00:00Z").unwrap()
        );
        let hour_ago = Timestamp::parse("1h").unwrap();
        let delta = Timestamp::now().0 - hour_ago.0;
        assert!((3_599_000_000..3_601_000_000).contains(&delta));
        assert!(Timestamp::parse("yesterday").is_err());
        // Further back than anything: long ago, not an overflow.
        for far in ["999999999999999999d", "18446744073709551615s"] {
            assert!(Timestamp::parse(far).unwrap() < Timestamp(0), "{far}");
        }
    }
}
