//! Firing: object events become jobs. Maps an event's cloud bucket to the farm's bucket,
//! applies the rules, and submits one job per matching preset under the deterministic trigger
//! id, reporting what was made and what was ignored and why.

use std::sync::Arc;

use serde::Serialize;

use super::rule;
use super::{Ignored, ObjectEvent, Parsed, Source};
use crate::config::TriggerRule;
use object_store::ObjectStoreExt;

use crate::buckets::{Access, BucketError, Buckets, storage_error, validate_key};
use crate::config::Destinations;
use crate::job::{
    Chunking, DEFAULT_MAX_ATTEMPTS, JobSpec, ObjectRef, OutputTarget, Status, Trigger as JobTrigger,
};
use crate::preset::Presets;
use crate::store::{JobStore, StoreError};

/// A job a trigger made or found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FiredJob {
    pub id: String,
    pub status: Status,
    pub preset: String,
    pub input: ObjectRef,
    pub output: OutputTarget,
    /// False when the job already existed (a redelivered event).
    pub created: bool,
}

/// What a notification did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fired {
    pub jobs: Vec<FiredJob>,
    pub ignored: Vec<Ignored>,
}

/// The rules and what firing them needs.
pub struct Triggers {
    rules: Vec<TriggerRule>,
    store: Arc<dyn JobStore>,
    buckets: Arc<Buckets>,
    presets: Arc<Presets>,
    timeout_seconds: u64,
    destinations: Destinations,
}

impl Triggers {
    /// `timeout_seconds` and `destinations`: what the jobs it makes get (as from the API);
    /// `presets`: what a rule's presets say about splitting.
    pub fn new(
        rules: Vec<TriggerRule>,
        store: Arc<dyn JobStore>,
        buckets: Arc<Buckets>,
        presets: Arc<Presets>,
        timeout_seconds: u64,
        destinations: Destinations,
    ) -> Triggers {
        Triggers {
            rules,
            store,
            buckets,
            presets,
            timeout_seconds,
            destinations,
        }
    }

    pub fn rules(&self) -> &[TriggerRule] {
        &self.rules
    }

    /// The farm bucket and key an event's bucket and key refer to: a bucket configured under
    /// that name, else a configured bucket whose URL points at that cloud bucket (the URL's
    /// path prefix removed from the key), else a bucket of that name.
    pub fn farm_object(&self, bucket: &str, key: &str) -> (String, String) {
        if self.buckets.configured().contains_key(bucket) {
            return (bucket.to_string(), key.to_string());
        }
        for (name, config) in self.buckets.configured() {
            let Ok(url) = url::Url::parse(&config.url) else {
                continue;
            };
            if url.scheme() == "file" || url.host_str() != Some(bucket) {
                continue;
            }
            let root = url.path().trim_matches('/');
            if root.is_empty() {
                return (name.clone(), key.to_string());
            }
            if let Some(rest) = key.strip_prefix(root).and_then(|k| k.strip_prefix('/')) {
                return (name.clone(), rest.to_string());
            }
        }
        (bucket.to_string(), key.to_string())
    }

    /// Fires every object of a notification. Only the store failing is an error (the sender
    /// should deliver again); everything else that made no job is in `ignored`.
    pub async fn fire(&self, parsed: Parsed) -> Result<Fired, StoreError> {
        let mut fired = Fired {
            jobs: vec![],
            ignored: parsed.ignored,
        };
        for event in parsed.objects {
            self.fire_one(event, &mut fired).await?;
        }
        Ok(fired)
    }

    /// Fires a local object (watch folder, upload): its version is the store's eTag.
    pub async fn fire_local(
        &self,
        source: Source,
        bucket: &str,
        key: &str,
    ) -> Result<Fired, FireError> {
        let path = self.buckets.key_path(bucket, key)?;
        let meta = self
            .buckets
            .store(bucket)?
            .head(&path)
            .await
            .map_err(|e| storage_error(bucket, key, Access::Read, e))?;
        let version = meta
            .e_tag
            .clone()
            .unwrap_or_else(|| format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size));
        let event = ObjectEvent {
            source,
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: Some(meta.size),
            payload: serde_json::json!({
                "bucket": bucket, "key": key, "size": meta.size, "e_tag": meta.e_tag,
                "last_modified": meta.last_modified.to_rfc3339(),
            }),
            version,
            event_name: "ObjectCreated".into(),
        };
        Ok(self
            .fire(Parsed {
                objects: vec![event],
                ignored: vec![],
            })
            .await?)
    }

    async fn fire_one(&self, event: ObjectEvent, fired: &mut Fired) -> Result<(), StoreError> {
        let ignore = |reason: String| Ignored {
            bucket: Some(event.bucket.clone()),
            key: Some(event.key.clone()),
            event: Some(event.event_name.clone()),
            reason,
        };
        let (bucket, key) = self.farm_object(&event.bucket, &event.key);
        if let Err(e) = validate_key(&key) {
            fired.ignored.push(ignore(e.to_string()));
            return Ok(());
        }
        if rule::is_output(&self.rules, &bucket, &key) {
            fired.ignored.push(ignore(
                "under a trigger rule's output folder (outputs never fire rules)".into(),
            ));
            return Ok(());
        }
        let matching: Vec<&TriggerRule> = self
            .rules
            .iter()
            .filter(|r| r.matches(&bucket, &key))
            .collect();
        if matching.is_empty() {
            fired.ignored.push(ignore(self.why_no_rule(&bucket, &key)));
            return Ok(());
        }
        for rule in matching {
            for preset in &rule.job_presets() {
                let prefix = match rule.render(&key, preset) {
                    Ok(p) => p,
                    Err(e) => {
                        fired.ignored.push(ignore(format!("output template: {e}")));
                        continue;
                    }
                };
                let mut spec = JobSpec {
                    input: ObjectRef {
                        bucket: bucket.clone(),
                        key: key.clone(),
                    },
                    preset: preset.clone(),
                    output: OutputTarget {
                        bucket: rule.output_bucket().to_string(),
                        prefix,
                    },
                    priority: 0,
                    max_attempts: DEFAULT_MAX_ATTEMPTS,
                    timeout_seconds: self.timeout_seconds,
                    on_success: None,
                    on_failure: None,
                    trigger: Some(JobTrigger {
                        source: event.source.as_str().to_string(),
                        payload: event.payload.clone(),
                    }),
                    overwrite: rule.overwrite,
                    chunking: self.chunking(rule, preset),
                    media: Default::default(),
                };
                self.destinations.fill(&mut spec);
                let id = rule::job_id(&bucket, &key, &event.version, preset, &spec.output);
                match self.store.submit(Some(id.clone()), spec).await {
                    Ok(s) => fired.jobs.push(FiredJob {
                        id: s.job.id,
                        status: s.job.status,
                        preset: s.job.preset,
                        input: s.job.input,
                        output: s.job.output,
                        created: s.created,
                    }),
                    Err(StoreError::IdConflict { .. }) => fired.ignored.push(ignore(format!(
                        "job {id} was already made from this object with other settings"
                    ))),
                    Err(StoreError::Invalid(m)) => fired.ignored.push(ignore(m)),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The chunking of a job `rule` makes with `preset`: the rule's, else the preset's, else
    /// `auto`. The rules were checked against the presets at start, so the preset is known.
    fn chunking(&self, rule: &TriggerRule, preset: &str) -> Chunking {
        if rule.grouped() {
            return Chunking::Off;
        }
        match self.presets.get(preset) {
            Ok(p) => p.resolve_chunking(rule.chunking),
            Err(_) => rule.chunking.unwrap_or_default(),
        }
    }

    fn why_no_rule(&self, bucket: &str, key: &str) -> String {
        let in_bucket: Vec<&TriggerRule> =
            self.rules.iter().filter(|r| r.bucket == bucket).collect();
        if self.rules.is_empty() {
            "no trigger rules are configured".into()
        } else if in_bucket.is_empty() {
            format!("no trigger rule for bucket '{bucket}'")
        } else if !in_bucket.iter().any(|r| key.starts_with(&r.prefix)) {
            let prefixes: Vec<&str> = in_bucket.iter().map(|r| r.prefix.as_str()).collect();
            format!("not under a rule's prefix ({})", prefixes.join(", "))
        } else {
            "no rule for this file type (suffixes)".into()
        }
    }
}

/// Why a local object could not be fired.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
