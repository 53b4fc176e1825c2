//! Split jobs: whether a job's video may be encoded in parts by several workers
//! (`Chunking`), and its parts as the store keeps and shows them (`PartKind`, `Part`,
//! `PartInfo`, `SplitPlan`, `PartOutcome`). A part is a unit of work with a job's semantics:
//! the same `Status` and transitions, leases, heartbeats, attempt fencing and retries.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{JobError, ObjectRef, OutputObject, Status, Timestamp};
use crate::progress::Progress;

/// Whether a job's video may be split into parts encoded by several workers:
/// `"auto"` (split a long input when the farm has room), `"off"`, or
/// `{"segment_seconds": N}` (split into parts of about N seconds whenever the preset
/// encodes video).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    #[default]
    Auto,
    Off,
    Segments {
        segment_seconds: u32,
    },
}

/// The shortest part a job may ask for, in seconds.
pub const MIN_SEGMENT_SECONDS: u32 = 2;

impl Chunking {
    pub fn is_auto(self) -> bool {
        self == Chunking::Auto
    }

    /// `auto`, `off`, or a number of seconds (what `--chunking` and the page take).
    pub fn parse(s: &str) -> Result<Chunking, String> {
        match s.trim() {
            "auto" => Ok(Chunking::Auto),
            "off" => Ok(Chunking::Off),
            n => match n.trim_end_matches('s').parse::<u32>() {
                Ok(segment_seconds) => Chunking::segments(segment_seconds),
                Err(_) => Err(format!(
                    "chunking '{s}': use auto, off, or a part length in seconds (e.g. 60)"
                )),
            },
        }
    }

    fn segments(segment_seconds: u32) -> Result<Chunking, String> {
        if segment_seconds < MIN_SEGMENT_SECONDS {
            return Err(format!(
                "chunking: segment_seconds must be at least {MIN_SEGMENT_SECONDS}, not \
                 {segment_seconds}"
            ));
        }
        Ok(Chunking::Segments { segment_seconds })
    }
}

impl fmt::Display for Chunking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunking::Auto => f.write_str("auto"),
            Chunking::Off => f.write_str("off"),
            Chunking::Segments { segment_seconds } => write!(f, "{segment_seconds}s"),
        }
    }
}

impl Serialize for Chunking {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Chunking::Auto => s.serialize_str("auto"),
            Chunking::Off => s.serialize_str("off"),
            Chunking::Segments { segment_seconds } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("segment_seconds", segment_seconds)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Chunking {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Chunking;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""auto", "off" or {"segment_seconds": N}"#)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Chunking, E> {
                match v {
                    "auto" => Ok(Chunking::Auto),
                    "off" => Ok(Chunking::Off),
                    other => Err(E::custom(format!(
                        r#"chunking "{other}": use "auto", "off" or {{"segment_seconds": N}}"#
                    ))),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Chunking, A::Error> {
                let mut seconds = None;
                while let Some(key) = m.next_key::<String>()? {
                    match key.as_str() {
                        "segment_seconds" if seconds.is_none() => seconds = Some(m.next_value()?),
                        "segment_seconds" => {
                            return Err(serde::de::Error::duplicate_field("segment_seconds"));
                        }
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["segment_seconds"],
                            ));
                        }
                    }
                }
                let seconds =
                    seconds.ok_or_else(|| serde::de::Error::missing_field("segment_seconds"))?;
                Chunking::segments(seconds).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl utoipa::PartialSchema for Chunking {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["auto", "off"])),
            )
            .item(
                ObjectBuilder::new()
                    .property(
                        "segment_seconds",
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(MIN_SEGMENT_SECONDS as f64)),
                    )
                    .required("segment_seconds")
                    .additional_properties(Some(
                        utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                    )),
            )
            .description(Some(
                "Whether the job's video may be encoded in parts by several workers: \"auto\" \
                 (a long input, when the farm has free slots), \"off\", or parts of about \
                 segment_seconds.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Chunking {}

/// What a part of a split job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// Encodes the video of one range of the input.
    Video,
    /// Encodes the whole input's audio once (subtitles copied along).
    Audio,
    /// Joins the encoded parts and the audio into the outputs; ends the job.
    Assemble,
}

impl PartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Video => "video",
            PartKind::Audio => "audio",
            PartKind::Assemble => "assemble",
        }
    }

    pub fn parse(s: &str) -> Option<PartKind> {
        [PartKind::Video, PartKind::Audio, PartKind::Assemble]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where a split job keeps what its parts make: a prefix in a bucket, never under an output
/// key, removed when the job ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scratch {
    pub bucket: String,
    /// Ends with `/`.
    pub prefix: String,
}

/// The folder every scratch prefix starts with; triggers never fire on keys under it.
pub const SCRATCH_FOLDER: &str = ".ffarm-scratch/";

impl Scratch {
    /// The scratch of job `job_id` in `bucket`.
    pub fn of(bucket: &str, job_id: &str) -> Scratch {
        Scratch {
            bucket: bucket.to_string(),
            prefix: format!("{SCRATCH_FOLDER}{job_id}/"),
        }
    }

    /// An object under the scratch prefix.
    pub fn key(&self, name: &str) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key: format!("{}{name}", self.prefix),
        }
    }
}

/// One part in a plan, as the planning task hands it to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartPlan {
    pub seq: u32,
    pub kind: PartKind,
    /// The media range it covers (microseconds of the input's timeline); the whole input
    /// for audio and assembly.
    pub start_us: i64,
    pub end_us: i64,
    /// The parts (by `seq`) that must succeed before it may run.
    pub after: Vec<u32>,
}

/// How a job was split: what the store keeps with the job while its parts run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPlan {
    pub parts: Vec<PartPlan>,
    pub scratch: Scratch,
    /// The input's version (eTag, or size and time): finished parts are reused by a retry
    /// only when it is unchanged.
    pub input_version: String,
    /// The most parts of this job that may run at once (0: no limit).
    pub max_parallel: u32,
    /// What every part task needs to know (the engine's facts about the input, the
    /// settings): opaque to the store, handed to each part as it was planned.
    pub detail: serde_json::Value,
}

/// A part as a worker claims it: enough to run it and report on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub job_id: String,
    pub seq: u32,
    pub kind: PartKind,
    pub start_us: i64,
    pub end_us: i64,
    pub status: Status,
    /// The part's own attempt: the fencing token for its reports.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The job's attempt that planned it.
    pub job_attempt: u32,
    pub worker: Option<String>,
    pub result: Option<serde_json::Value>,
}

/// A part as the job document shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartInfo {
    pub seq: u32,
    pub kind: PartKind,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub status: Status,
    pub attempt: u32,
    pub worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// How a worker ends a part's attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum PartOutcome {
    /// Done: what it made (opaque to the store; the assembly reads it), and for the
    /// assembly the job's outputs.
    Succeeded {
        result: serde_json::Value,
        outputs: Vec<OutputObject>,
    },
    Failed(JobError),
    Cancelled,
    /// Handed back by a draining worker: back to the queue, the attempt not counted.
    Released,
}

impl SplitPlan {
    /// Whether the plan can be run as `job_id`'s parts: at least one part, seqs unique,
    /// every `after` naming another part of the plan (and no part waiting on itself through
    /// others), ranges not empty, video ranges not overlapping, the scratch prefix the job's
    /// own (so removing it removes nothing else). The error names what is wrong.
    pub fn check(&self, job_id: &str) -> Result<(), String> {
        if self.parts.is_empty() {
            return Err("a split plan needs at least one part".into());
        }
        let own = Scratch::of(&self.scratch.bucket, job_id);
        if self.scratch != own {
            return Err(format!(
                "scratch prefix '{}' is not the job's own ('{}')",
                self.scratch.prefix, own.prefix
            ));
        }
        let mut seqs = std::collections::BTreeSet::new();
        for p in &self.parts {
            if !seqs.insert(p.seq) {
                return Err(format!("part {} appears twice", p.seq));
            }
            if p.start_us < 0 || p.end_us <= p.start_us {
                return Err(format!(
                    "part {}: range [{}, {}) µs is empty or negative",
                    p.seq, p.start_us, p.end_us
                ));
            }
        }
        for p in &self.parts {
            if let Some(missing) = p.after.iter().find(|s| !seqs.contains(s) || **s == p.seq) {
                return Err(format!(
                    "part {} waits on part {missing}, which is not another part of the plan",
                    p.seq
                ));
            }
        }
        self.check_video_ranges()?;
        self.check_no_cycle()
    }

    fn check_video_ranges(&self) -> Result<(), String> {
        let mut video: Vec<&PartPlan> = self
            .parts
            .iter()
            .filter(|p| p.kind == PartKind::Video)
            .collect();
        video.sort_by_key(|p| p.start_us);
        match video.windows(2).find(|w| w[1].start_us < w[0].end_us) {
            Some(w) => Err(format!("parts {} and {} overlap", w[0].seq, w[1].seq)),
            None => Ok(()),
        }
    }

    /// Parts that wait on each other in a ring would never run.
    fn check_no_cycle(&self) -> Result<(), String> {
        let mut done = std::collections::BTreeSet::new();
        while done.len() < self.parts.len() {
            let ready: Vec<u32> = self
                .parts
                .iter()
                .filter(|p| !done.contains(&p.seq) && p.after.iter().all(|a| done.contains(a)))
                .map(|p| p.seq)
                .collect();
            if ready.is_empty() {
                return Err("some parts wait on each other in a ring and could never run".into());
            }
            done.extend(ready);
        }
        Ok(())
    }

    /// The video ranges by seq: a retry reuses finished parts only when these are unchanged.
    pub fn video_ranges(&self) -> Vec<(u32, i64, i64)> {
        let mut v: Vec<_> = self
            .parts
            .iter()
            .filter(|p| p.kind == PartKind::Video)
            .map(|p| (p.seq, p.start_us, p.end_us))
            .collect();
        v.sort_unstable();
        v
    }
}

/// A split job's progress from its parts': the video parts weighted by duration (a finished
/// part counts 100 %), frames per second and speed summed over the running ones, the time
/// left as the media seconds left over the summed speed. None for a job with no video parts.
pub fn aggregate(parts: &[PartInfo]) -> Option<Progress> {
    use crate::progress::Phase;
    let video: Vec<&PartInfo> = parts.iter().filter(|p| p.kind == PartKind::Video).collect();
    let total: f64 = video.iter().map(|p| p.end_seconds - p.start_seconds).sum();
    if video.is_empty() || total <= 0.0 {
        return None;
    }
    let (mut done, mut frames, mut fps, mut speed) = (0.0, 0u64, None, None);
    for p in &video {
        let length = p.end_seconds - p.start_seconds;
        let running = p.status.is_active();
        let fraction = match (&p.progress, p.status) {
            (_, Status::Succeeded) => 1.0,
            (Some(pr), _) if running => (pr.percent / 100.0).clamp(0.0, 1.0),
            _ => 0.0,
        };
        done += length * fraction;
        if let Some(pr) = &p.progress {
            frames += pr.frames;
            if running {
                fps = sum(fps, pr.fps);
                speed = sum(speed, pr.speed);
            }
        }
    }
    let all_done = video.iter().all(|p| p.status == Status::Succeeded);
    let started = done > 0.0 || video.iter().any(|p| p.status.is_active());
    let phase = match (all_done, started) {
        (true, _) => Phase::Finalizing,
        (false, true) => Phase::Transcoding,
        (false, false) => Phase::Starting,
    };
    let left = (total - done).max(0.0);
    Some(Progress {
        phase,
        percent: 100.0 * done / total,
        fps,
        speed,
        eta_seconds: speed.filter(|s| *s > 0.0).map(|s| left / s),
        frames,
        out_time_seconds: done,
        ..Progress::default()
    })
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.map_or(b, |a| Some(a + b.unwrap_or(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_reads_and_writes_its_three_forms() {
        for (json, want) in [
            (r#""auto""#, Chunking::Auto),
            (r#""off""#, Chunking::Off),
            (
                r#"{"segment_seconds":30}"#,
                Chunking::Segments {
                    segment_seconds: 30,
                },
            ),
        ] {
            let got: Chunking = serde_json::from_str(json).unwrap();
            assert_eq!(got, want);
            assert_eq!(serde_json::to_string(&got).unwrap(), json);
        }
        for (bad, says) in [
            (r#""sometimes""#, "sometimes"),
            (r#"{"segment_seconds":1}"#, "at least 2"),
            (r#"{"seconds":30}"#, "unknown field"),
            ("{}", "missing field"),
            ("30", "segment_seconds"),
        ] {
            let e = serde_json::from_str::<Chunking>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn chunking_parses_what_the_command_line_takes() {
        assert_eq!(Chunking::parse("auto"), Ok(Chunking::Auto));
        assert_eq!(Chunking::parse("off"), Ok(Chunking::Off));
        assert_eq!(
            Chunking::parse("45"),
            Ok(Chunking::Segments {
                segment_seconds: 45
            })
        );
        assert_eq!(Chunking::parse("45s"), Chunking::parse("45"));
        assert!(Chunking::parse("1").is_err());
        assert!(Chunking::parse("often").unwrap_err().contains("auto, off"));
    }

    fn plan(parts: Vec<PartPlan>) -> SplitPlan {
        SplitPlan {
            parts,
            scratch: Scratch::of("media", "job1"),
            input_version: "v1".into(),
            max_parallel: 0,
            detail: serde_json::Value::Null,
        }
    }

    fn part(seq: u32, kind: PartKind, range: (i64, i64), after: &[u32]) -> PartPlan {
        PartPlan {
            seq,
            kind,
            start_us: range.0,
            end_us: range.1,
            after: after.to_vec(),
        }
    }

    #[test]
    fn a_plan_is_checked_and_the_error_names_the_fault() {
        let v = PartKind::Video;
        let good = plan(vec![
            part(0, v, (0, 10), &[]),
            part(1, v, (10, 20), &[]),
            part(2, PartKind::Assemble, (0, 20), &[0, 1]),
        ]);
        assert_eq!(good.check("job1"), Ok(()));
        assert!(
            good.check("job2")
                .unwrap_err()
                .contains("not the job's own")
        );
        for (bad, says) in [
            (plan(vec![]), "at least one part"),
            (
                plan(vec![part(0, v, (0, 10), &[]), part(1, v, (5, 20), &[])]),
                "overlap",
            ),
            (plan(vec![part(0, v, (0, 10), &[7])]), "part 7"),
            (plan(vec![part(0, v, (10, 10), &[])]), "empty"),
            (
                plan(vec![part(0, v, (0, 10), &[]), part(0, v, (10, 20), &[])]),
                "twice",
            ),
            (
                plan(vec![part(0, v, (0, 10), &[1]), part(1, v, (10, 20), &[0])]),
                "ring",
            ),
        ] {
            let e = bad.check("job1").unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    fn info(seq: u32, range: (f64, f64), status: Status, progress: Option<Progress>) -> PartInfo {
        PartInfo {
            seq,
            kind: PartKind::Video,
            start_seconds: range.0,
            end_seconds: range.1,
            status,
            attempt: 1,
            worker: None,
            progress,
            error: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn job_progress_weighs_parts_by_duration() {
        let running = |percent, speed| Progress {
            percent,
            speed: Some(speed),
            fps: Some(speed * 25.0),
            ..Progress::default()
        };
        let parts = vec![
            info(0, (0.0, 30.0), Status::Succeeded, None),
            info(1, (30.0, 90.0), Status::Running, Some(running(50.0, 2.0))),
            info(2, (90.0, 120.0), Status::Running, Some(running(0.0, 1.0))),
            info(3, (120.0, 120.0 + 60.0), Status::Queued, None),
        ];
        let p = aggregate(&parts).unwrap();
        // 30 s done + 30 s of the 60 s part, of 180 s.
        assert!((p.percent - 100.0 * 60.0 / 180.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.speed, Some(3.0));
        assert_eq!(p.fps, Some(75.0));
        assert_eq!(p.eta_seconds, Some(120.0 / 3.0));
        assert_eq!(p.phase, crate::progress::Phase::Transcoding);
        let all = vec![info(0, (0.0, 30.0), Status::Succeeded, None)];
        let p = aggregate(&all).unwrap();
        assert_eq!(
            (p.percent, p.phase),
            (100.0, crate::progress::Phase::Finalizing)
        );
        assert_eq!(aggregate(&[]), None);
    }

    #[test]
    fn scratch_keys_live_under_the_scratch_folder() {
        let s = Scratch::of("media", "job1");
        assert_eq!(s.key("parts/3.nut").key, ".ffarm-scratch/job1/parts/3.nut");
        assert!(s.prefix.starts_with(SCRATCH_FOLDER));
        assert_eq!(PartKind::parse("audio"), Some(PartKind::Audio));
        assert_eq!(PartKind::parse("x"), None);
    }
}
