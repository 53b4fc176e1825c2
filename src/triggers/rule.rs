//! What a trigger rule (`[[triggers]]` in ffarm.toml, [`TriggerRule`]) does: which objects
//! of which bucket run which presets, and where each output goes. Also owns the output
//! template, the loop guard (keys under a rule's output prefix never fire) and the
//! deterministic id of a trigger-made job.

use sha2::{Digest, Sha256};

use crate::buckets::{BucketError, validate_bucket, validate_key, validate_prefix};
pub use crate::config::{TriggerRule, VIDEO_SUFFIXES};
use crate::job::{Chunking, OutputTarget};
use crate::preset::Presets;

impl TriggerRule {
    pub fn output_bucket(&self) -> &str {
        self.output_bucket.as_deref().unwrap_or(&self.bucket)
    }

    /// The fixed start of the output template: every output lands under it.
    pub fn output_root(&self) -> &str {
        let fixed = self.output.split('{').next().unwrap_or("");
        match fixed.rfind('/') {
            Some(i) => &fixed[..=i],
            None => "",
        }
    }

    /// Checks the rule; `preset_exists` says whether a preset name is known.
    pub fn check(&self, preset_exists: &dyn Fn(&str) -> bool) -> Result<(), RuleError> {
        self.check_names()
            .and_then(|()| self.check_presets(preset_exists))
            .and_then(|()| self.check_suffixes())
            .and_then(|()| self.check_output())
            .map_err(|problem| RuleError {
                bucket: self.bucket.clone(),
                problem,
            })
    }

    /// A part length only where every preset of the rule can be split (run after `check`,
    /// which finds the presets known).
    pub fn check_chunking(&self, presets: &Presets) -> Result<(), RuleError> {
        let Some(Chunking::Segments { .. }) = self.chunking else {
            return Ok(());
        };
        if self.grouped() {
            return Err(RuleError {
                bucket: self.bucket.clone(),
                problem: RuleProblem::GroupedSplit,
            });
        }
        for name in &self.presets {
            if let Some(why) = presets.get(name).ok().and_then(|p| p.why_unsplittable()) {
                return Err(RuleError {
                    bucket: self.bucket.clone(),
                    problem: RuleProblem::Unsplittable {
                        preset: name.clone(),
                        why,
                    },
                });
            }
        }
        Ok(())
    }

    /// Whether the rule makes one job of several presets.
    pub fn grouped(&self) -> bool {
        self.group && self.presets.len() > 1
    }

    /// The `preset` of each job an object makes: one per preset, or all of them joined
    /// (`crate::job::join_presets`) for a grouped rule.
    pub fn job_presets(&self) -> Vec<String> {
        if self.grouped() {
            vec![crate::job::join_presets(&self.presets)]
        } else {
            self.presets.clone()
        }
    }

    /// The bucket, the output bucket and the prefix are names a bucket accepts.
    fn check_names(&self) -> Result<(), RuleProblem> {
        validate_bucket(&self.bucket).map_err(RuleProblem::Bucket)?;
        if let Some(b) = &self.output_bucket {
            validate_bucket(b).map_err(RuleProblem::OutputBucket)?;
        }
        if !self.prefix.is_empty() {
            validate_key(self.prefix.trim_end_matches('/')).map_err(RuleProblem::Prefix)?;
        }
        Ok(())
    }

    fn check_presets(&self, preset_exists: &dyn Fn(&str) -> bool) -> Result<(), RuleProblem> {
        if self.presets.is_empty() {
            return Err(RuleProblem::NoPresets);
        }
        if let Some((_, p)) = self
            .presets
            .iter()
            .enumerate()
            .find(|(i, p)| self.presets[..*i].contains(p))
        {
            return Err(RuleProblem::RepeatedPreset(p.clone()));
        }
        match self.presets.iter().find(|p| !preset_exists(p)) {
            Some(p) => Err(RuleProblem::UnknownPreset(p.clone())),
            None => Ok(()),
        }
    }

    fn check_suffixes(&self) -> Result<(), RuleProblem> {
        match self
            .suffixes
            .iter()
            .find(|s| s.is_empty() || s.contains('/'))
        {
            Some(s) => Err(RuleProblem::Suffix(s.clone())),
            None => Ok(()),
        }
    }

    /// The template renders to a valid prefix, and outputs cannot fire the rule again.
    fn check_output(&self) -> Result<(), RuleProblem> {
        let bad_output = |message: String| RuleProblem::Output {
            output: self.output.clone(),
            message,
        };
        if self.grouped() && self.output.contains("{preset}") {
            return Err(bad_output(
                "a grouped rule's outputs share one prefix and carry their preset in their \
                 names (STEM.PRESET.EXT): leave {preset} out"
                    .into(),
            ));
        }
        let sample = self
            .render("in/sample/clip.mp4", &self.presets[0])
            .map_err(bad_output)?;
        validate_prefix(&sample).map_err(|e| bad_output(e.to_string()))?;
        if self.output_bucket() == self.bucket && self.output_root().is_empty() {
            return Err(RuleProblem::OutputRefires(self.output.clone()));
        }
        Ok(())
    }

    /// Whether an object fires this rule. Split jobs' scratch objects never do.
    pub fn matches(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket
            && key.starts_with(&self.prefix)
            && !key.starts_with(crate::job::SCRATCH_FOLDER)
            && (self.suffixes.is_empty() || {
                let k = key.to_ascii_lowercase();
                self.suffixes
                    .iter()
                    .any(|s| k.ends_with(&s.to_ascii_lowercase()))
            })
    }

    /// The output prefix for an object and a preset (ends with `/`, or is empty).
    pub fn render(&self, key: &str, preset: &str) -> Result<String, String> {
        let (dir, name) = match key.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", key),
        };
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s, e),
            _ => (name, ""),
        };
        let below = dir
            .strip_prefix(self.prefix.trim_end_matches('/'))
            .unwrap_or(dir)
            .trim_start_matches('/');
        let mut out = String::new();
        let mut rest = self.output.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| "an unclosed '{'".to_string())?;
            let value = match &rest[open + 1..open + close] {
                "stem" => stem,
                "name" => name,
                "ext" => ext,
                "dir" => below,
                "preset" => preset,
                "bucket" => self.bucket.as_str(),
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} (known: {{stem}} {{name}} {{ext}} \
                         {{dir}} {{preset}} {{bucket}})"
                    ));
                }
            };
            out.push_str(value);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        // Empty placeholders must not leave empty segments behind.
        let mut prefix = out
            .split('/')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        if !prefix.is_empty() {
            prefix.push('/');
        }
        Ok(prefix)
    }
}

/// A trigger rule ffarm cannot run: the rule (named by its bucket) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("trigger rule for bucket '{bucket}': {problem}")]
pub struct RuleError {
    pub bucket: String,
    pub problem: RuleProblem,
}

impl RuleError {
    /// The rule's field at fault (`bucket`, `prefix`, `presets`, `output` …).
    pub fn field(&self) -> &'static str {
        self.problem.field()
    }
}

/// What is wrong with a trigger rule, by field.
#[derive(Debug, thiserror::Error)]
pub enum RuleProblem {
    #[error("{0}")]
    Bucket(BucketError),
    #[error("output_bucket: {0}")]
    OutputBucket(BucketError),
    #[error("prefix: {0}")]
    Prefix(BucketError),
    #[error("presets must name at least one preset")]
    NoPresets,
    #[error("unknown preset '{0}' (see `ffarm presets`)")]
    UnknownPreset(String),
    #[error("preset '{0}' is named twice")]
    RepeatedPreset(String),
    /// A grouped rule asks for parts: its jobs run whole.
    #[error(
        "chunking: a grouped rule's jobs (group = true) run whole and cannot be split; leave \
         segment_seconds out or set group = false"
    )]
    GroupedSplit,
    #[error("suffix '{0}' must be a non-empty file ending")]
    Suffix(String),
    /// The output template does not render to a valid prefix.
    #[error("output '{output}': {message}")]
    Output { output: String, message: String },
    /// Outputs would land where the rule watches, with nothing to tell them from inputs.
    #[error(
        "output '{0}' must start with a fixed folder (like \"out/\") when outputs go to the \
         same bucket, or outputs would fire the rule again"
    )]
    OutputRefires(String),
    /// The rule names a part length, and one of its presets cannot be split.
    #[error(
        "chunking: preset '{preset}' {why}, so its jobs cannot be split; leave \
         segment_seconds out or give that preset its own rule"
    )]
    Unsplittable { preset: String, why: &'static str },
}

impl RuleProblem {
    /// The rule's field at fault, as `[[triggers]]` spells it.
    pub fn field(&self) -> &'static str {
        match self {
            RuleProblem::Bucket(_) => "bucket",
            RuleProblem::OutputBucket(_) => "output_bucket",
            RuleProblem::Prefix(_) => "prefix",
            RuleProblem::NoPresets
            | RuleProblem::UnknownPreset(_)
            | RuleProblem::RepeatedPreset(_) => "presets",
            RuleProblem::Suffix(_) => "suffixes",
            RuleProblem::Output { .. } | RuleProblem::OutputRefires(_) => "output",
            RuleProblem::Unsplittable { .. } | RuleProblem::GroupedSplit => "chunking",
        }
    }
}

/// Whether a key is output of some rule (under a rule's fixed output folder in that bucket):
/// such keys never fire, so a farm writing into the bucket it watches does not feed itself.
pub fn is_output(rules: &[TriggerRule], bucket: &str, key: &str) -> bool {
    rules.iter().any(|r| {
        r.output_bucket() == bucket
            && !r.output_root().is_empty()
            && key.starts_with(r.output_root())
    })
}

/// The id of the job a trigger makes: the same object version, preset and output always give
/// the same id, so a redelivered event finds its job instead of making another. The output is
/// part of it because two rules may send one preset's result to two places: two jobs, not one
/// job and a conflict.
pub fn job_id(
    bucket: &str,
    key: &str,
    version: &str,
    preset: &str,
    output: &OutputTarget,
) -> String {
    let mut h = Sha256::new();
    for part in [bucket, key, version, preset, &output.bucket, &output.prefix] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("trg-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(output: &str) -> TriggerRule {
        TriggerRule {
            output: output.into(),
            ..TriggerRule::default_rule()
        }
    }

    #[test]
    fn templates_render_prefixes() {
        let r = rule("out/{stem}/{preset}");
        assert_eq!(
            r.render("in/a b/clip.final.mp4", "h264-720p").unwrap(),
            "out/clip.final/h264-720p/"
        );
        assert_eq!(rule("out/").render("in/x.mov", "p").unwrap(), "out/");
        assert_eq!(
            rule("out/{dir}/{name}-{ext}")
                .render("in/x.mov", "p")
                .unwrap(),
            "out/x.mov-mov/"
        );
        assert_eq!(
            rule("{bucket}/{dir}/")
                .render("in/2024/05/x.mov", "p")
                .unwrap(),
            "media/2024/05/"
        );
        assert!(rule("out/{nope}").render("in/x", "p").is_err());
        assert!(rule("out/{stem").render("in/x", "p").is_err());
    }

    #[test]
    fn the_default_rule_keeps_the_inputs_folder() {
        let r = TriggerRule::default_rule();
        let render = |key: &str| r.render(key, "h264-720p").unwrap();
        assert_eq!(render("in/clip.mp4"), "out/");
        assert_eq!(render("in/x/clip.mp4"), "out/x/");
        assert_eq!(render("in/y/clip.mp4"), "out/y/");
        assert_eq!(render("in/2026/12/clip.mov"), "out/2026/12/");
        assert_eq!(r.output_root(), "out/");
    }

    #[test]
    fn matching_and_loop_guard() {
        let r = TriggerRule::default_rule();
        assert!(r.matches("media", "in/Clip.MP4"));
        assert!(!r.matches("media", "in/notes.txt"));
        assert!(!r.matches("other", "in/clip.mp4"));
        assert!(!r.matches("media", "inbox/clip.mp4"));
        // A rule watching a whole bucket never fires on split jobs' scratch.
        let whole = TriggerRule {
            prefix: String::new(),
            suffixes: vec![".nut".into(), ".mp4".into()],
            ..TriggerRule::default_rule()
        };
        assert!(whole.matches("media", "clip.mp4"));
        assert!(!whole.matches("media", ".ffarm-scratch/J1/src/0.nut"));
        let rules = [TriggerRule::default_rule()];
        assert!(is_output(&rules, "media", "out/clip.mp4"));
        assert!(!is_output(&rules, "media", "in/clip.mp4"));
        assert!(!is_output(&rules, "other", "out/clip.mp4"));
    }

    #[test]
    fn checks_name_the_problem() {
        let known = |p: &str| p == "h264-720p";
        assert!(TriggerRule::default_rule().check(&known).is_ok());
        let e = rule("{stem}/").check(&known).unwrap_err();
        assert_eq!(e.field(), "output");
        assert!(e.to_string().contains("fixed folder"), "{e}");
        let e = TriggerRule {
            presets: vec!["nope".into()],
            ..TriggerRule::default_rule()
        }
        .check(&known)
        .unwrap_err();
        assert_eq!((e.bucket.as_str(), e.field()), ("media", "presets"));
        assert_eq!(
            e.to_string(),
            "trigger rule for bucket 'media': unknown preset 'nope' (see `ffarm presets`)"
        );
        let e = rule("../x/").check(&known).unwrap_err();
        assert_eq!(e.field(), "output");
        assert!(
            e.to_string()
                .starts_with("trigger rule for bucket 'media': output '../x/': ")
        );
        let e = TriggerRule {
            prefix: "in/../".into(),
            ..TriggerRule::default_rule()
        }
        .check(&known)
        .unwrap_err();
        assert_eq!(e.field(), "prefix");
        assert!(
            e.to_string()
                .starts_with("trigger rule for bucket 'media': prefix: "),
            "{e}"
        );
        let e = TriggerRule {
            suffixes: vec!["a/b".into()],
            ..TriggerRule::default_rule()
        }
        .check(&known)
        .unwrap_err();
        assert_eq!(e.field(), "suffixes");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let out = |bucket: &str, prefix: &str| OutputTarget {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        let o = out("media", "out/");
        let a = job_id("media", "in/x.mp4", "etag1", "h264-720p", &o);
        assert_eq!(a, job_id("media", "in/x.mp4", "etag1", "h264-720p", &o));
        assert_ne!(a, job_id("media", "in/x.mp4", "etag2", "h264-720p", &o));
        assert_ne!(a, job_id("media", "in/x.mp4", "etag1", "mp4", &o));
        assert_ne!(
            a,
            job_id(
                "media",
                "in/x.mp4",
                "etag1",
                "h264-720p",
                &out("media", "web/")
            )
        );
        assert_ne!(
            a,
            job_id(
                "media",
                "in/x.mp4",
                "etag1",
                "h264-720p",
                &out("cdn", "out/")
            )
        );
        assert!(crate::job::validate_id(&a).is_ok());
        assert_eq!(a.len(), 36);
    }
}
