//! Numbers for overviews: job counts by status for any list filter (the page's tabs), and the
//! last hour's throughput (from the store) and queue depth (sampled by this API process every
//! 10 s while it runs).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, Json, Query};
use super::jobs::ListParams;
use crate::job::{Status, Timestamp};
use crate::store::{ListFilter, TimeField};

/// How often queue depth is sampled, and how much history is kept.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const KEEP_SAMPLES: usize = 360;

/// Job counts by status (every status present, zeros included).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountsAnswer {
    pub counts: BTreeMap<Status, u64>,
    pub total: u64,
}

#[utoipa::path(get, path = "/v1/jobs/counts", tag = "jobs",
    params(ListParams),
    responses((status = 200, description = "counts by status of the jobs the filter matches \
        (its `status`, `limit` and `cursor` are ignored)", body = CountsAnswer),
        (status = 400, body = ErrorBody)))]
pub async fn counts(
    State(app): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<CountsAnswer>> {
    let filter = params.filter()?;
    let counts = app.store.counts(&filter).await?;
    let total = counts.values().sum();
    Ok(Json(CountsAnswer { counts, total }))
}

/// A queue sample.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueSample {
    pub at: Timestamp,
    pub queued: u64,
    pub running: u64,
}

/// Jobs that ended in one minute.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Throughput {
    /// The minute's start.
    pub at: Timestamp,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsAnswer {
    /// Per minute, oldest first, ending with the current minute.
    pub throughput: Vec<Throughput>,
    /// Every 10 s while this API process has been up (at most the window), oldest first.
    pub queue: Vec<QueueSample>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// The window in minutes, 1 to 60 (default 60).
    pub minutes: Option<u32>,
}

/// Queue-depth samples of this process.
#[derive(Debug, Default)]
pub struct Samples(Mutex<VecDeque<QueueSample>>);

impl Samples {
    fn push(&self, s: QueueSample) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(s);
        while q.len() > KEEP_SAMPLES {
            q.pop_front();
        }
    }

    fn since(&self, t: Timestamp) -> Vec<QueueSample> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().filter(|s| s.at >= t).cloned().collect()
    }
}

/// Samples queue depth until the app shuts down.
pub async fn sample_forever(app: AppState) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(c) = app.store.counts(&ListFilter::default()).await {
            let n = |s| c.get(&s).copied().unwrap_or(0);
            app.samples.push(QueueSample {
                at: Timestamp::now(),
                queued: n(Status::Queued),
                running: n(Status::Running) + n(Status::Cancelling),
            });
        }
    }
}

#[utoipa::path(get, path = "/v1/stats", tag = "jobs", params(StatsParams),
    responses((status = 200, body = StatsAnswer), (status = 400, body = ErrorBody)))]
pub async fn stats(
    State(app): State<AppState>,
    Query(p): Query<StatsParams>,
) -> ApiResult<Json<StatsAnswer>> {
    let minutes = p.minutes.unwrap_or(60);
    if !(1..=60).contains(&minutes) {
        return Err(ApiError::bad_request(
            "bad-query",
            format!("minutes must be 1 to 60, not {minutes}"),
        ));
    }
    const MINUTE: i64 = 60_000_000;
    let now = Timestamp::now();
    let this_minute = now.0 - now.0.rem_euclid(MINUTE);
    let first = this_minute - (minutes as i64 - 1) * MINUTE;
    let mut throughput = Vec::with_capacity(minutes as usize);
    for i in 0..minutes as i64 {
        let at = Timestamp(first + i * MINUTE);
        let filter = ListFilter {
            time_field: TimeField::Finished,
            since: Some(at),
            until: Some(Timestamp(at.0 + MINUTE)),
            ..ListFilter::default()
        };
        let c = app.store.counts(&filter).await?;
        let n = |s| c.get(&s).copied().unwrap_or(0);
        throughput.push(Throughput {
            at,
            succeeded: n(Status::Succeeded),
            failed: n(Status::Failed),
            cancelled: n(Status::Cancelled),
        });
    }
    Ok(Json(StatsAnswer {
        throughput,
        queue: app.samples.since(Timestamp(first)),
    }))
}
