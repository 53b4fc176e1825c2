//! Where a job's columns live in PostgreSQL: its spec in `job_specs`, its state in
//! `job_states` (migration 0007), joined by the `jobs` view for reads. Writes to the state that
//! return whole jobs name each column by its table.

use crate::store::rows::JOB_COLUMNS;

/// The job columns that live in `job_specs` (migration 0007); the rest are in `job_states`.
const SPEC_COLUMNS: &[&str] = &[
    "id",
    "input_bucket",
    "input_key",
    "preset",
    "output_bucket",
    "output_prefix",
    "priority",
    "max_attempts",
    "timeout_seconds",
    "on_success",
    "on_failure",
    "trigger",
    "created_at",
    "overwrite",
    "chunking",
    "media",
];

/// The job columns, each qualified by the table holding it, for a write to `job_states`
/// (named `state` in the statement) joined to `job_specs s` that returns whole jobs.
pub(super) fn returned_columns(state: &str) -> String {
    JOB_COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| {
            let table = if SPEC_COLUMNS.contains(&c) {
                "s"
            } else {
                state
            };
            format!("{table}.{c}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
