//! The sandbox this worker's engines get, found as the worker starts by running one engine
//! that only enters it (`Engine::level`): what holds goes into the worker's registry entry,
//! and a sandbox that is off, or lacks a layer, is said once in the worker's log.

use std::sync::Arc;

use super::WorkerCtx;
use crate::engine::{Engine, EngineError};
use crate::sandbox::{Level, Limits};

/// What the worker's engines get; warns once if that is less than the whole sandbox.
pub(super) async fn check(ctx: &Arc<WorkerCtx>) -> Level {
    let settings = &ctx.config.worker;
    if !settings.sandbox {
        tracing::warn!(
            "worker.sandbox = false: media is parsed without the sandbox (full access to this \
             worker's files, network and environment); use only for debugging"
        );
        return Level::default();
    }
    let engine = Engine {
        program: ctx.task_program.clone(),
        presets_dir: None,
        preset: None,
        sandbox: Some(Limits {
            memory_bytes: settings.memory_limit_bytes,
            file_bytes: settings.output_limit_bytes,
            ..Limits::default()
        }),
        stall: None,
        test_fault: None,
    };
    let found = tokio::task::spawn_blocking(move || engine.level()).await;
    match found {
        Ok(Ok((level, setup_seconds))) => {
            if level.missing.is_empty() {
                tracing::info!(
                    "sandbox: Landlock ABI {}, seccomp, network namespace, limits (set up in \
                     {:.1} ms)",
                    level.landlock_abi.unwrap_or(0),
                    setup_seconds * 1e3
                );
            } else {
                tracing::warn!(
                    "sandbox: this kernel lacks part of it; engines run without: {}",
                    level.missing.join("; ")
                );
            }
            level
        }
        Ok(Err(EngineError::Failed(e))) => unusable(format!("{}: {}", e.code, e.message)),
        Ok(Err(EngineError::Stopped)) => unusable("stopped".into()),
        Err(e) => unusable(e.to_string()),
    }
}

/// An engine could not enter the sandbox here: every job will fail saying why.
fn unusable(why: String) -> Level {
    tracing::error!("sandbox: an engine could not enter it ({why}); jobs will fail until fixed");
    Level {
        enabled: true,
        missing: vec![format!("the sandbox could not be entered: {why}")],
        ..Level::default()
    }
}
