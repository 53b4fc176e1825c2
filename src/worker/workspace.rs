//! Task workspaces: `DATA_DIR/workspaces/JOB-aATTEMPT/` holding `task.json`, `input/` and
//! `output/`. Removed when the attempt ends, or kept for a while after a failure so an
//! operator can look inside; a worker sweeps leftovers (from crashes) when it starts
//! (`worker::sweep_workspaces`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::job::Job;

pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("workspaces")
}

/// The workspace of one attempt.
pub fn dir(data_dir: &Path, job_id: &str, attempt: u32) -> PathBuf {
    root(data_dir).join(format!("{job_id}-a{attempt}"))
}

/// Creates a fresh workspace (removing any leftover of the same attempt).
pub fn create(data_dir: &Path, job_id: &str, attempt: u32) -> std::io::Result<PathBuf> {
    let d = dir(data_dir, job_id, attempt);
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

pub fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("removing workspace {}: {e}", dir.display());
    }
}

/// Removes a workspace after `keep`.
pub fn remove_later(dir: PathBuf, keep: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(keep).await;
        remove(&dir);
    });
}

/// The environment a task (and an exec session into it) sees.
pub fn task_env(dir: &Path, job: &Job) -> Vec<(String, String)> {
    vec![
        ("FFARM_JOB_ID".into(), job.id.clone()),
        ("FFARM_ATTEMPT".into(), job.attempt.to_string()),
        ("FFARM_PRESET".into(), job.preset.clone()),
        (
            "FFARM_INPUT".into(),
            super::task::input_path(dir, &job.input.key)
                .display()
                .to_string(),
        ),
        (
            "FFARM_OUTPUT_DIR".into(),
            dir.join("output").display().to_string(),
        ),
        ("FFARM_WORKSPACE".into(), dir.display().to_string()),
    ]
}
