//! Prometheus metrics: the one recorder of the process (installed by `serve`, or by `worker
//! --metrics`), the metric names, and what workers record as attempts end. Without an
//! installed recorder every recording is a no-op.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::job::Outcome;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds: 1 s to 24 h.
const DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0,
];
/// Frames per second.
const FPS_BUCKETS: [f64; 11] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0,
];

/// Installs the process's recorder (once; later calls are no-ops).
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("ffarm_job_duration_seconds".into()),
                &DURATION_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("ffarm_encode_fps".into()),
                    &FPS_BUCKETS,
                )
            });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        describe();
        handle
    });
}

fn describe() {
    metrics::describe_gauge!("ffarm_jobs", "Jobs in the store by status");
    metrics::describe_gauge!("ffarm_queue_depth", "Jobs waiting to run");
    metrics::describe_gauge!("ffarm_running_tasks", "Jobs running (or being stopped)");
    metrics::describe_gauge!("ffarm_workers", "Workers seen in the last 20 s");
    metrics::describe_gauge!("ffarm_slots", "Task slots of the live workers");
    metrics::describe_gauge!("ffarm_busy_slots", "Task slots in use");
    metrics::describe_gauge!(
        "ffarm_parts",
        "Parts of split jobs ready to run (queued) and running"
    );
    metrics::describe_histogram!(
        "ffarm_job_duration_seconds",
        metrics::Unit::Seconds,
        "Wall time of job attempts run by this process's workers, by preset and outcome"
    );
    metrics::describe_histogram!(
        "ffarm_encode_fps",
        "Video frames encoded per second by succeeded attempts, by preset"
    );
}

/// The metrics in Prometheus text format ("" when no recorder is installed).
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// Records an attempt's end.
pub fn attempt_finished(preset: &str, outcome: &Outcome, took: Duration, fps: Option<f64>) {
    let status = match outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::Cancelled => "cancelled",
        Outcome::Released => "released",
    };
    metrics::histogram!(
        "ffarm_job_duration_seconds",
        "preset" => preset.to_string(),
        "status" => status
    )
    .record(took.as_secs_f64());
    if let (Outcome::Succeeded { .. }, Some(fps)) = (outcome, fps)
        && fps.is_finite()
        && fps > 0.0
    {
        metrics::histogram!("ffarm_encode_fps", "preset" => preset.to_string()).record(fps);
    }
}
