//! Split jobs' parts, decided once for both backends: what ending a part's attempt does to
//! the part, its siblings and its job; what a cancel of a split job does; which parts a new
//! plan keeps. A part goes through the job's own state machine (`transitions::finish` over
//! the part's status, attempt and retry base), so retries, backoff, fencing and stops mean
//! the same for a part as for a job. The backends only execute the decided writes.

use std::collections::{BTreeSet, HashMap};

use crate::job::{
    self, Job, JobError, Outcome, Part, PartInfo, PartKind, PartOutcome, PartPlan, RetryPolicy,
    SplitPlan, Status, Timestamp, Transition,
};
use crate::progress::Progress;

use super::transitions::{self, Current, Update};
use super::{Result, StoreError};

/// A part as stored: what a worker sees of it, and the rest of its row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartRow {
    pub part: Part,
    pub after: Vec<u32>,
    pub retry_base: u32,
    pub lease_expires_at: Option<Timestamp>,
    pub progress: Option<Progress>,
    pub error: Option<JobError>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl PartRow {
    /// The part as the job document shows it.
    pub fn info(&self) -> PartInfo {
        let p = &self.part;
        PartInfo {
            seq: p.seq,
            kind: p.kind,
            start_seconds: p.start_us as f64 / 1e6,
            end_seconds: p.end_us as f64 / 1e6,
            status: p.status,
            attempt: p.attempt,
            worker: p.worker.clone(),
            progress: self.progress.clone(),
            error: self.error.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
        }
    }

    /// The part's state, as the job state machine reads a job's.
    fn current(&self) -> Current {
        Current {
            status: self.part.status,
            attempt: self.part.attempt,
            max_attempts: self.part.max_attempts,
            retry_base: self.retry_base,
            split: false,
        }
    }

    /// The plan entry this part was made from.
    pub fn plan(&self) -> PartPlan {
        PartPlan {
            seq: self.part.seq,
            kind: self.part.kind,
            start_us: self.part.start_us,
            end_us: self.part.end_us,
            after: self.after.clone(),
        }
    }
}

/// How errors and history name part `seq` of job `id`.
pub(crate) fn part_name(id: &str, seq: u32) -> String {
    format!("{id}#{seq}")
}

/// The part `seq` of `parts`, or NotFound naming it.
pub(crate) fn find<'p>(parts: &'p [PartRow], id: &str, seq: u32) -> Result<&'p PartRow> {
    parts
        .iter()
        .find(|p| p.part.seq == seq)
        .ok_or_else(|| StoreError::NotFound {
            id: part_name(id, seq),
        })
}

/// A report on a part's attempt that is not its current one (or on a part no longer running).
pub(crate) fn fenced(row: &PartRow, attempt: u32) -> StoreError {
    StoreError::Fenced {
        id: part_name(&row.part.job_id, row.part.seq),
        attempt,
        current: row.part.attempt,
        status: row.part.status,
    }
}

/// The job's progress from its parts (None: leave it as it is).
pub(crate) fn job_progress(parts: &[PartRow]) -> Option<Progress> {
    let infos: Vec<PartInfo> = parts.iter().map(PartRow::info).collect();
    job::aggregate(&infos)
}

/// What ending a part's attempt writes.
#[derive(Debug, Clone)]
pub(crate) struct PartEnd {
    /// The part's new state (its `outputs` unused).
    pub part: Update,
    /// What the part made, kept with it when it succeeded.
    pub result: Option<serde_json::Value>,
    /// The job's transition, if the part ends it.
    pub job: Option<Update>,
    /// The job's other parts stop: queued ones are cancelled, running ones asked to stop.
    pub stop_others: bool,
    /// The note for the job's history.
    pub note: String,
}

/// A worker's report that ends attempt `attempt` of part `seq`.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub seq: u32,
    pub attempt: u32,
    pub outcome: PartOutcome,
}

/// Decides the end `report` tells of, for a part of `job` (whose state is `job_cur`) among
/// the job's `parts`.
pub(crate) fn end(
    job: &Job,
    job_cur: &Current,
    parts: &[PartRow],
    report: Report,
    now: Timestamp,
    policy: &RetryPolicy,
) -> Result<PartEnd> {
    let Report {
        seq,
        attempt,
        outcome,
    } = report;
    let row = find(parts, &job.id, seq)?;
    if row.part.attempt != attempt || !row.part.status.is_active() {
        return Err(fenced(row, attempt));
    }
    let (outcome, result) = match outcome {
        PartOutcome::Succeeded { result, outputs } => {
            (Outcome::Succeeded { outputs }, Some(result))
        }
        PartOutcome::Failed(e) => (Outcome::Failed(e), None),
        PartOutcome::Cancelled => (Outcome::Cancelled, None),
        PartOutcome::Released => (Outcome::Released, None),
    };
    let name = part_name(&job.id, seq);
    let part = transitions::finish(
        &name,
        &row.current(),
        attempt,
        outcome,
        now,
        policy,
        fastrand::f64(),
    )?;
    let note = format!("part {seq} ({}): {}", row.part.kind.as_str(), part.reason);
    let mut end = PartEnd {
        result: result.filter(|_| part.status == Status::Succeeded),
        job: None,
        stop_others: false,
        note,
        part,
    };
    // Only the attempt that planned the parts is ended by them (a retried job is not).
    if !(job_cur.split && job.attempt == row.part.job_attempt) {
        return Ok(end);
    }
    end.job = job_consequence(job, job_cur, parts, row, &end.part)?;
    end.stop_others = end.job.as_ref().is_some_and(|u| u.status == Status::Failed);
    Ok(end)
}

/// What a part's new state does to its job: the assembly's success ends it succeeded, a
/// final failure fails it, the last part to stop ends a cancelling job cancelled.
fn job_consequence(
    job: &Job,
    job_cur: &Current,
    parts: &[PartRow],
    row: &PartRow,
    part: &Update,
) -> Result<Option<Update>> {
    let seq = row.part.seq;
    let others_active = parts
        .iter()
        .any(|p| p.part.seq != seq && p.part.status.is_active());
    let u = match part.status {
        Status::Succeeded if row.part.kind == PartKind::Assemble => job_update(
            &job.id,
            job_cur,
            Transition::Succeed,
            "succeeded (its parts assembled)".into(),
            None,
            part.outputs.clone(),
        )?,
        Status::Failed if job_cur.status == Status::Running => {
            let error = part.error.clone().map(|e| JobError {
                message: format!("part {seq}: {}", e.message),
                ..e
            });
            let reason = format!(
                "failed: part {seq}: {}",
                part.reason.trim_start_matches("failed: ")
            );
            job_update(&job.id, job_cur, Transition::Fail, reason, error, None)?
        }
        s if !s.is_active() && job_cur.status == Status::Cancelling && !others_active => {
            job_update(
                &job.id,
                job_cur,
                Transition::ConfirmCancel,
                "stopped on request (its last running part stopped)".into(),
                None,
                None,
            )?
        }
        _ => return Ok(None),
    };
    Ok(Some(u))
}

/// A job transition that ends the job.
fn job_update(
    id: &str,
    cur: &Current,
    t: Transition,
    reason: String,
    error: Option<JobError>,
    outputs: Option<Vec<job::OutputObject>>,
) -> Result<Update> {
    let status = cur
        .status
        .apply(t)
        .map_err(|e| StoreError::IllegalTransition {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Update {
        status,
        reason,
        error,
        outputs,
        run_after: Timestamp(0),
        retry_base: cur.retry_base,
        finished: status.is_terminal(),
        release: true,
    })
}

/// The end of attempt `attempt` of part `seq` whose lease expired.
pub(crate) fn worker_lost(seq: u32, attempt: u32) -> Report {
    let error = JobError::new(
        "worker-lost",
        "the worker stopped renewing the part's lease (it crashed, was killed, or lost the store)",
        true,
    );
    Report {
        seq,
        attempt,
        outcome: PartOutcome::Failed(error),
    }
}

/// A cancel: None when the job is already cancelling or cancelled; else the job's update. A
/// split job is cancelled at once when none of its parts runs, else cancelling until the last
/// confirms (its queued parts are cancelled and its running ones asked to stop).
pub(crate) fn cancel(
    id: &str,
    cur: &Current,
    parts: &[PartRow],
    reason: &str,
) -> Result<Option<Update>> {
    let Some(mut u) = transitions::cancel(id, cur, reason)? else {
        return Ok(None);
    };
    let running = parts
        .iter()
        .any(|p| p.part.job_attempt == cur.attempt && p.part.status.is_active());
    if cur.split && u.status == Status::Cancelling && !running {
        u.status = Status::Cancelled;
        u.finished = true;
        u.release = true;
    }
    Ok(Some(u))
}

/// What a new plan does to the parts a job already has.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Replan {
    /// Parts that succeeded before and are kept as they are (same input, same layout).
    pub keep: BTreeSet<u32>,
    /// For each part written afresh, the attempt its count goes on from (the old part's of the
    /// same seq, so no attempt number is handed out twice for one part).
    pub base: HashMap<u32, u32>,
    /// Old parts the plan no longer has.
    pub drop: Vec<u32>,
}

/// Which of `old` parts (split before by `old_plan`) a new `plan` keeps: every succeeded part
/// when the input version and the video ranges are unchanged and the part is the same.
pub(crate) fn replan(old_plan: Option<&SplitPlan>, old: &[PartRow], plan: &SplitPlan) -> Replan {
    let same_input = old_plan.is_some_and(|o| {
        let old_ranges = SplitPlan {
            parts: old.iter().map(PartRow::plan).collect(),
            ..o.clone()
        }
        .video_ranges();
        o.input_version == plan.input_version && old_ranges == plan.video_ranges()
    });
    let mut out = Replan::default();
    for p in &plan.parts {
        match old.iter().find(|o| o.part.seq == p.seq) {
            Some(o) if same_input && o.part.status == Status::Succeeded && same(o, p) => {
                out.keep.insert(p.seq);
            }
            Some(o) => {
                out.base.insert(p.seq, o.part.attempt);
            }
            None => {
                out.base.insert(p.seq, 0);
            }
        }
    }
    out.drop = old
        .iter()
        .map(|o| o.part.seq)
        .filter(|s| !plan.parts.iter().any(|p| p.seq == *s))
        .collect();
    out
}

fn same(old: &PartRow, new: &PartPlan) -> bool {
    old.part.kind == new.kind && old.part.start_us == new.start_us && old.part.end_us == new.end_us
}

/// The checks before a split: the plan can run, and `attempt` holds the job (running under a
/// lease, not split yet).
pub(crate) fn check_split(id: &str, cur: &Current, attempt: u32, plan: &SplitPlan) -> Result<()> {
    if cur.status != Status::Running {
        return Err(StoreError::IllegalTransition {
            id: id.to_string(),
            reason: format!("a {} job cannot be split", cur.status),
        });
    }
    transitions::check_fence(id, cur, attempt)?;
    plan.check(id)
        .map_err(|e| StoreError::Invalid(format!("job '{id}': {e}")))
}

/// The history note of a split.
pub(crate) fn split_note(plan: &SplitPlan, replan: &Replan) -> String {
    let kept = replan.keep.len();
    let n = plan.parts.len();
    if kept == 0 {
        format!("split into {n} parts")
    } else {
        format!("split into {n} parts, {kept} of them kept from an earlier attempt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Scratch;

    fn row(seq: u32, kind: PartKind, status: Status, attempt: u32) -> PartRow {
        PartRow {
            part: Part {
                job_id: "j".into(),
                seq,
                kind,
                start_us: i64::from(seq) * 10,
                end_us: i64::from(seq) * 10 + 10,
                status,
                attempt,
                max_attempts: 3,
                job_attempt: 1,
                worker: None,
                result: None,
            },
            after: Vec::new(),
            retry_base: 0,
            lease_expires_at: None,
            progress: None,
            error: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn plan_of(rows: &[PartRow], version: &str) -> SplitPlan {
        SplitPlan {
            parts: rows.iter().map(PartRow::plan).collect(),
            scratch: Scratch::of("b", "j"),
            input_version: version.into(),
            max_parallel: 0,
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_new_plan_keeps_finished_parts_only_for_the_same_input_and_layout() {
        let old = vec![
            row(0, PartKind::Video, Status::Succeeded, 1),
            row(1, PartKind::Video, Status::Failed, 3),
            row(2, PartKind::Assemble, Status::Cancelled, 0),
        ];
        let same = replan(Some(&plan_of(&old, "v1")), &old, &plan_of(&old, "v1"));
        assert_eq!(same.keep, BTreeSet::from([0]));
        assert_eq!(
            same.base.get(&1),
            Some(&3),
            "attempts go on from the old part's"
        );
        let other = replan(Some(&plan_of(&old, "v1")), &old, &plan_of(&old, "v2"));
        assert!(other.keep.is_empty());
        assert_eq!(other.base.get(&0), Some(&1));
        let shorter = plan_of(&old[..1], "v1");
        assert_eq!(
            replan(Some(&plan_of(&old, "v1")), &old, &shorter).drop,
            [1, 2]
        );
    }

    /// Job "j" at attempt 1, split (running or cancelling, no lease).
    fn job(status: Status) -> (Job, Current) {
        let job = Job {
            id: "j".into(),
            status,
            input: crate::job::ObjectRef {
                bucket: "b".into(),
                key: "k".into(),
            },
            preset: "p".into(),
            presets: vec!["p".into()],
            output: crate::job::OutputTarget {
                bucket: "b".into(),
                prefix: "out/".into(),
            },
            outputs: vec![],
            progress: None,
            attempt: 1,
            max_attempts: 3,
            priority: 0,
            timeout_seconds: 60,
            worker: None,
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
            started_at: None,
            finished_at: None,
            run_after: None,
            lease_expires_at: None,
            error: None,
            trigger: None,
            on_success: None,
            on_failure: None,
            overwrite: false,
            chunking: Default::default(),
            media: Default::default(),
            parts: vec![],
        };
        let cur = Current::of(&job, 0);
        (job, cur)
    }

    #[test]
    fn a_part_end_decides_the_part_and_its_job() {
        use PartOutcome::*;
        let (v, a) = (PartKind::Video, PartKind::Assemble);
        let failed = |retryable| Failed(JobError::new("e", "broke", retryable));
        let done = || Succeeded {
            result: serde_json::Value::Null,
            outputs: vec![],
        };
        // (job status, the part's kind and attempt, the other part's status, outcome) →
        // (the part's status, the job's new status, whether the others stop).
        let cases = [
            (
                Status::Running,
                v,
                1,
                Status::Running,
                failed(true),
                (Status::Queued, None, false),
            ),
            (
                Status::Running,
                v,
                3,
                Status::Running,
                failed(true),
                (Status::Failed, Some(Status::Failed), true),
            ),
            (
                Status::Running,
                v,
                1,
                Status::Queued,
                failed(false),
                (Status::Failed, Some(Status::Failed), true),
            ),
            (
                Status::Running,
                v,
                1,
                Status::Running,
                done(),
                (Status::Succeeded, None, false),
            ),
            (
                Status::Running,
                a,
                1,
                Status::Succeeded,
                done(),
                (Status::Succeeded, Some(Status::Succeeded), false),
            ),
            (
                Status::Running,
                v,
                1,
                Status::Running,
                Released,
                (Status::Queued, None, false),
            ),
            (
                Status::Cancelling,
                v,
                1,
                Status::Cancelling,
                Cancelled,
                (Status::Cancelled, None, false),
            ),
            (
                Status::Cancelling,
                v,
                1,
                Status::Cancelled,
                Cancelled,
                (Status::Cancelled, Some(Status::Cancelled), false),
            ),
        ];
        for (job_status, kind, attempt, other, outcome, want) in cases {
            let (job, cur) = job(job_status);
            let part_status = if job_status == Status::Cancelling {
                Status::Cancelling
            } else {
                Status::Running
            };
            let parts = [row(0, kind, part_status, attempt), row(1, v, other, 1)];
            let report = Report {
                seq: 0,
                attempt,
                outcome: outcome.clone(),
            };
            let end = end(
                &job,
                &cur,
                &parts,
                report,
                Timestamp(1),
                &RetryPolicy::default(),
            );
            let end = end.unwrap();
            let got = (end.part.status, end.job.map(|u| u.status), end.stop_others);
            assert_eq!(
                got, want,
                "{job_status} {kind:?} attempt {attempt}, {outcome:?}"
            );
        }
        let (job, cur) = job(Status::Running);
        let parts = [row(0, v, Status::Running, 2)];
        let stale = Report {
            seq: 0,
            attempt: 1,
            outcome: Cancelled,
        };
        let e = end(
            &job,
            &cur,
            &parts,
            stale,
            Timestamp(1),
            &RetryPolicy::default(),
        );
        assert!(
            matches!(e, Err(StoreError::Fenced { ref id, .. }) if id == "j#0"),
            "{e:?}"
        );
    }
}
