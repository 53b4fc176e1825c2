//! Output owners: which job, attempt and input wrote each output key (`output_owners`). Both
//! backends reserve an attempt's keys through [`decide`], so the rule of who may replace an
//! output lives once: the same input may (another attempt, a new version of it), a job that
//! says `overwrite` may, and a key left by a job that failed or was cancelled is free; any
//! other owner is a conflict, and then nothing is reserved.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::job::{Job, JobError, ObjectRef, Status};

/// An output key another input's job owns: what an attempt about to replace it is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "output {bucket}/{key} belongs to job '{job_id}', made from input {}/{}: a job does not \
     replace another input's output (choose another output prefix, or set overwrite = true)",
    input.bucket,
    input.key
)]
pub struct OutputConflict {
    pub bucket: String,
    pub key: String,
    /// The job that owns the key.
    pub job_id: String,
    /// That job's input.
    pub input: ObjectRef,
}

impl OutputConflict {
    /// The stable code of the error an attempt fails with.
    pub const CODE: &'static str = "output-conflict";

    pub fn code(&self) -> &'static str {
        Self::CODE
    }

    /// The attempt's error: final, as another attempt would meet the same owner.
    pub fn job_error(&self) -> JobError {
        JobError::new(Self::CODE, self.to_string(), false)
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every key is the attempt's now.
    Reserved,
    /// The first key (in the order asked) another input owns; nothing was reserved.
    Conflict(OutputConflict),
}

/// A key's owner as stored, with the status of the job that owns it (None: no such job).
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub job_id: String,
    pub input: ObjectRef,
    pub job_status: Option<Status>,
}

impl Owner {
    /// Whether `job` may take this key over.
    fn yields_to(&self, job: &Job) -> bool {
        self.input == job.input
            || job.overwrite
            || matches!(self.job_status, Some(Status::Failed | Status::Cancelled))
    }
}

/// The keys asked for, each once, in the order first asked.
pub(crate) fn distinct(keys: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    keys.iter()
        .filter(|k| seen.insert(k.as_str()))
        .cloned()
        .collect()
}

/// Decides a reservation of `keys` (in `job`'s output bucket) for `job`, given the keys'
/// current `owners`: Ok when every key is free or may be taken over, else the first conflict.
pub(crate) fn decide(
    job: &Job,
    keys: &[String],
    owners: &HashMap<String, Owner>,
) -> Result<(), OutputConflict> {
    for key in keys {
        if let Some(owner) = owners.get(key)
            && !owner.yields_to(job)
        {
            return Err(OutputConflict {
                bucket: job.output.bucket.clone(),
                key: key.clone(),
                job_id: owner.job_id.clone(),
                input: owner.input.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, OutputTarget, Timestamp};

    fn job(input_key: &str, overwrite: bool) -> Job {
        let spec = JobSpec {
            input: ObjectRef {
                bucket: "media".into(),
                key: input_key.into(),
            },
            preset: "h264-720p".into(),
            output: OutputTarget {
                bucket: "media".into(),
                prefix: "out/".into(),
            },
            priority: 0,
            max_attempts: 3,
            timeout_seconds: 60,
            on_success: None,
            on_failure: None,
            trigger: None,
            overwrite,
            chunking: Default::default(),
            media: Default::default(),
        };
        Job {
            id: format!("job-{input_key}"),
            status: Status::Running,
            input: spec.input,
            presets: crate::job::presets_of(&spec.preset),
            preset: spec.preset,
            output: spec.output,
            outputs: vec![],
            progress: None,
            attempt: 1,
            max_attempts: 3,
            priority: 0,
            timeout_seconds: 60,
            worker: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            started_at: None,
            finished_at: None,
            run_after: None,
            lease_expires_at: None,
            error: None,
            trigger: None,
            on_success: None,
            on_failure: None,
            overwrite: spec.overwrite,
            chunking: spec.chunking,
            media: spec.media,
            parts: Vec::new(),
        }
    }

    fn owned_by(input_key: &str, status: Option<Status>) -> Owner {
        Owner {
            job_id: "owner".into(),
            input: ObjectRef {
                bucket: "media".into(),
                key: input_key.into(),
            },
            job_status: status,
        }
    }

    #[test]
    fn only_the_same_input_overwrite_or_a_failed_owner_take_a_key_over() {
        let keys = vec!["out/free.mp4".to_string(), "out/clip.mp4".to_string()];
        let decide_with = |owner: Owner, job: &Job| {
            let owners = HashMap::from([("out/clip.mp4".to_string(), owner)]);
            decide(job, &keys, &owners)
        };
        let mine = job("in/x/clip.mp4", false);
        let running = Some(Status::Running);
        assert!(decide_with(owned_by("in/x/clip.mp4", running), &mine).is_ok());
        for status in [Status::Failed, Status::Cancelled] {
            assert!(decide_with(owned_by("in/y/clip.mp4", Some(status)), &mine).is_ok());
        }
        let replacing = job("in/x/clip.mp4", true);
        assert!(decide_with(owned_by("in/y/clip.mp4", running), &replacing).is_ok());
        for status in [Some(Status::Succeeded), Some(Status::Queued), running, None] {
            let conflict = decide_with(owned_by("in/y/clip.mp4", status), &mine).unwrap_err();
            assert_eq!(conflict.key, "out/clip.mp4");
            assert_eq!(conflict.job_id, "owner");
            assert_eq!(conflict.input.key, "in/y/clip.mp4");
        }
    }

    #[test]
    fn a_conflict_is_a_final_error_naming_the_key_the_job_and_its_input() {
        let conflict = OutputConflict {
            bucket: "media".into(),
            key: "out/clip.mp4".into(),
            job_id: "trg-1".into(),
            input: ObjectRef {
                bucket: "media".into(),
                key: "in/x/clip.mp4".into(),
            },
        };
        let e = conflict.job_error();
        assert_eq!((e.code.as_str(), e.retryable), ("output-conflict", false));
        for part in [
            "media/out/clip.mp4",
            "'trg-1'",
            "media/in/x/clip.mp4",
            "overwrite",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
    }

    #[test]
    fn keys_are_asked_once_in_order() {
        let keys: Vec<String> = ["b", "a", "b", "c", "a"].map(String::from).into();
        assert_eq!(distinct(&keys), ["b", "a", "c"]);
    }
}
