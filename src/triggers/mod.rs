//! Triggers: objects appearing in buckets become jobs. Event sources — OSS notifications
//! (`oss`), S3 / MinIO notifications (`s3`), the watch folder (`watch`) and uploads through
//! the API — report [`ObjectEvent`]s; `rules` decides which presets run on them and where
//! the outputs go; `fire` submits the jobs under ids derived from the object's version, so a
//! redelivered event makes no second job.

mod envelope;
mod fire;
pub mod oss;
pub mod rule;
pub mod s3;
pub mod watch;

pub use fire::{FireError, Fired, FiredJob, Triggers};

use serde::Serialize;

/// Where an object event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Oss,
    S3,
    Watch,
    Upload,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Oss => "oss",
            Source::S3 => "s3",
            Source::Watch => "watch",
            Source::Upload => "upload",
        }
    }
}

/// A complete object that appeared in a bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    pub source: Source,
    /// The bucket as the event names it (a cloud bucket's own name, or a local bucket).
    pub bucket: String,
    /// The object key, decoded (no URL escapes left).
    pub key: String,
    pub size: Option<u64>,
    /// What distinguishes this upload of the key from another one: the version id when the
    /// store keeps versions, else the eTag.
    pub version: String,
    /// The event's name as the source spelled it ("ObjectCreated:PutObject", …).
    pub event_name: String,
    /// The event as received (one element of a multi-event notification): kept as the
    /// job's trigger payload.
    pub payload: serde_json::Value,
}

/// Part of a notification that made no job, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ignored {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub reason: String,
}

/// What a notification held: the objects to consider, and what was skipped at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub objects: Vec<ObjectEvent>,
    pub ignored: Vec<Ignored>,
}

/// A notification that could not be read at all: the part of it at fault and what is wrong
/// there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    /// The part at fault: `body`, an envelope (`unwrapped message`, `XML <Message>`, `SNS
    /// Message`) or a field (`events`, `Records`, `Type`, `Event`, `data` …).
    pub field: String,
    /// What is wrong with it, for people (says what was expected).
    pub message: String,
}

impl PayloadError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> PayloadError {
        PayloadError {
            field: field.into(),
            message: message.into(),
        }
    }
}
