//! The scale-out backend: PostgreSQL shared by any number of API servers and workers.
//! Claims use `FOR UPDATE SKIP LOCKED`; every other transition is an optimistic guarded
//! UPDATE, re-decided if the row moved underneath. The history (events, attempts, totals) is
//! written by triggers in each change's own transaction; changes travel by LISTEN/NOTIFY,
//! announced after they commit (`announce.rs` says why), so a notification never precedes its
//! commit.
//! Submits, claims, finishes, cancels, retries and reaps commit synchronously: they move
//! attempt numbers and statuses, which fence workers and answer clients. Heartbeats, logs,
//! notes, attempt measurements and the workers registry use a pool with
//! `synchronous_commit = off`: a database crash can lose the last of them, which shortens a
//! lease or drops a log line but never hands out an attempt number twice.

mod announce;
mod batched;
mod claimed;
mod deliveries;
mod gather;
mod keys;
mod ops;
mod outputs;
mod parts;
mod reads;
mod split;
mod statistics;
mod tables;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;

use super::transitions::{self, Current};
use super::{
    AttemptInfo, AttemptStats, Capacity, Change, ClaimedPart, Counts, Delivery, Heartbeat,
    JobEvent, JobStore, ListFilter, LogLine, Page, Reservation, Result, StoreError, Submitted,
    WorkerInfo,
};
use crate::job::{
    self, Job, JobSpec, KEY_BYTES, Outcome, Part, PartOutcome, RetryPolicy, Scratch, SplitPlan,
    Timestamp,
};
use crate::progress::Progress;
use announce::Announcer;
use batched::{Decide, HeartbeatReq, SubmitReq, TransitionReq};
use claimed::Claimed;
use gather::Batcher;

/// The NOTIFY channel changes travel on.
pub(crate) const CHANNEL: &str = "ffarm_changes";

/// How long a store connection may sit idle inside a transaction before the server ends it
/// (`connect_options`).
pub const IDLE_IN_TRANSACTION: &str = "5s";

pub struct PostgresStore {
    /// Synchronous commits: what a client or a worker was told is durable.
    durable: PgPool,
    /// Asynchronous commits: lease renewals, progress, logs, notes, the workers registry; one
    /// generic plan per statement, as `lanes`.
    fast: PgPool,
    /// The batched durable writes (submits, claims, transitions): synchronous commits, and
    /// each statement planned once per connection (see `open_with`).
    lanes: PgPool,
    submits: Batcher<SubmitReq, Submitted>,
    claims: Batcher<(String, Timestamp), Option<Job>>,
    heartbeats: Batcher<HeartbeatReq, Heartbeat>,
    transitions: Batcher<TransitionReq, (Job, bool)>,
    /// The state this process's claims left their jobs in, for their finishes.
    claimed: Arc<Claimed>,
    changes: broadcast::Sender<Change>,
    /// What this process changed, announced to every listening process once committed.
    announcer: Arc<Announcer>,
    policy: RetryPolicy,
    /// Stops the statistics upkeep (`statistics.rs`) with the store.
    _statistics: tokio_util::sync::DropGuard,
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<PostgresStore> {
        Self::open_with(url, RetryPolicy::default()).await
    }

    /// How a store connects to `url`: its logging, and the session limits every one of its
    /// connections carries (each pool then adds its commit mode).
    pub fn connect_options(url: &str) -> Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
            // A process stopped inside one of the store's transactions (a frozen VM, SIGSTOP,
            // a debugger) would otherwise hold that transaction's row locks for as long as it
            // stays stopped, and every other process's reaper, finish or cancel of that job
            // would wait on them. The store's transactions take milliseconds; a session idle
            // inside one this long is ended by the server and its locks released.
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]))
    }

    pub async fn open_with(url: &str, policy: RetryPolicy) -> Result<PostgresStore> {
        let options = Self::connect_options(url)?;
        // Set, not inherited: a server (or role) configured with synchronous_commit = off
        // must not quietly make acknowledged submits lossable.
        let durable = pool(&options, 16, &[("synchronous_commit", "on")]).await?;
        sqlx::migrate!("migrations/postgres").run(&durable).await?;
        // The writes by key run the same few statements thousands of times a second, the
        // batched ones with arrays whose length is the batch's. Left to choose, the server
        // plans each execution afresh (a custom plan per batch length): about a tenth of its
        // CPU under load went to planning them. Their plans do not depend on the values
        // (primary-key lookups, the queue index's head), so their connections keep one
        // generic plan per statement. The batched durable writes (the lanes) are apart from
        // the durable pool so that reads, whose best plans do depend on their filter values,
        // keep the server's choice: one connection per lane, and one for a transition decided
        // again on its own.
        let generic = ("plan_cache_mode", "force_generic_plan");
        let fast = pool(&options, 16, &[("synchronous_commit", "off"), generic]).await?;
        let lanes = pool(&options, 4, &[("synchronous_commit", "on"), generic]).await?;
        let (changes, _) = broadcast::channel(4096);
        let mut listener = PgListener::connect_with(&durable).await?;
        listener.listen(CHANNEL).await?;
        tokio::spawn(forward(listener, changes.clone()));
        // Each batch is announced as soon as it has committed, before its callers hear back.
        let announcer = Arc::new(Announcer::start(fast.clone()));
        let on = |pool: &PgPool| (pool.clone(), announcer.clone());
        let (d, a) = on(&lanes);
        let submits = Batcher::start(1, move |reqs| {
            let (pool, announcer) = (d.clone(), a.clone());
            async move {
                let out = batched::submits(&pool, reqs).await;
                for s in out.iter().flatten().filter(|s| s.created) {
                    announcer.status(&s.job);
                }
                out
            }
        });
        // A claim hands out an attempt number, the token that fences every later report of the
        // attempt. Committed asynchronously, a database crash could lose the claim after its
        // worker started: the next claim would hand out the same number again, and the lost
        // worker's reports would pass for the new one's. So claims wait for the WAL flush.
        let claimed = Arc::new(Claimed::default());
        let ((d, a), c) = (on(&lanes), claimed.clone());
        let claims = Batcher::start(1, move |reqs| {
            let (pool, announcer, claimed) = (d.clone(), a.clone(), c.clone());
            async move {
                let out = batched::claims(&pool, &claimed, reqs).await;
                for job in out.iter().flatten().flatten() {
                    announcer.status(job);
                }
                out
            }
        });
        let (f, a) = on(&fast);
        let heartbeats = Batcher::start(2, move |reqs: Vec<HeartbeatReq>| {
            let (pool, announcer) = (f.clone(), a.clone());
            async move {
                let progress: Vec<_> = reqs
                    .iter()
                    .map(|r| (r.id.clone(), r.progress.clone()))
                    .collect();
                let out = batched::heartbeats(&pool, reqs).await;
                for ((id, progress), renewed) in progress.into_iter().zip(&out) {
                    if let (Some(progress), Ok(_)) = (progress, renewed) {
                        announcer.post(Change::Progress { id, progress });
                    }
                }
                out
            }
        });
        let (d, a) = on(&lanes);
        let transitions = Batcher::start(1, move |reqs| {
            let (pool, announcer) = (d.clone(), a.clone());
            async move {
                let out = batched::transitions(&pool, reqs).await;
                for (job, _) in out.iter().flatten().filter(|(_, changed)| *changed) {
                    announcer.status(job);
                }
                out
            }
        });
        let statistics = statistics::keep_fresh(fast.clone());
        Ok(PostgresStore {
            durable,
            fast,
            lanes,
            submits,
            claims,
            heartbeats,
            transitions,
            claimed,
            changes,
            announcer,
            policy,
            _statistics: statistics,
        })
    }
}

impl PostgresStore {
    /// A setting as one connection of each pool reports it.
    pub async fn setting(&self, name: &str) -> Result<PoolSettings> {
        let show = |pool| {
            sqlx::query_scalar("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(pool)
        };
        Ok(PoolSettings {
            durable: show(&self.durable).await?,
            fast: show(&self.fast).await?,
            lanes: show(&self.lanes).await?,
        })
    }
}

/// One setting's value in each of a store's pools (`PostgresStore::setting`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// The synchronous single writes and the reads.
    pub durable: String,
    /// The asynchronous writes.
    pub fast: String,
    /// The batched durable writes.
    pub lanes: String,
}

/// A pool of up to `max` connections, each opened with `settings` on top of `options`.
async fn pool(options: &PgConnectOptions, max: u32, settings: &[(&str, &str)]) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone().options(settings.iter().copied()))
        .await?)
}

/// Relays NOTIFY payloads to subscribers. PgListener reconnects by itself after a lost
/// connection; anything announced meanwhile is caught by the workers' fallback polling.
async fn forward(mut listener: PgListener, changes: broadcast::Sender<Change>) {
    loop {
        match listener.recv().await {
            Ok(n) => match announce::parse(n.payload()) {
                Ok(batch) => {
                    for change in batch {
                        let _ = changes.send(change);
                    }
                }
                Err(e) => tracing::warn!("unreadable notification {:?}: {e}", n.payload()),
            },
            Err(e) => {
                tracing::warn!("store notifications interrupted: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

impl PostgresStore {
    /// The job without its parts.
    async fn get_bare(&self, id: &str) -> Result<Job> {
        reads::get(&self.durable, id).await
    }

    fn announce_worker(&self, id: &str) {
        self.announcer.post(Change::Worker { id: id.to_string() });
    }

    /// A guarded transition, batched with whatever else is transitioning; decided from
    /// `claimed` when given, else from the job's row.
    async fn transition(&self, id: &str, claimed: Option<Current>, decide: Decide) -> Result<Job> {
        let req = TransitionReq {
            id: id.to_string(),
            lease_before: None,
            decide,
            claimed,
        };
        Ok(self.transitions.call(req).await?.0)
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn submit(&self, id: Option<String>, spec: JobSpec) -> Result<Submitted> {
        let id = match id {
            Some(id) => {
                job::validate_id(&id).map_err(StoreError::Invalid)?;
                id
            }
            None => job::new_id(),
        };
        self.submits.call(SubmitReq { id, spec }).await
    }

    async fn get(&self, id: &str) -> Result<Job> {
        let mut job = self.get_bare(id).await?;
        job.parts = self.part_infos(id).await?;
        Ok(job)
    }

    async fn list(&self, filter: &ListFilter, limit: u32, cursor: Option<&str>) -> Result<Page> {
        reads::list(&self.durable, filter, limit, cursor).await
    }

    async fn counts(&self, filter: &ListFilter) -> Result<Counts> {
        reads::counts(&self.durable, filter).await
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let lease_until = Timestamp::now().plus(lease);
        self.claims.call((worker.to_string(), lease_until)).await
    }

    async fn heartbeat(
        &self,
        id: &str,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        let req = HeartbeatReq {
            id: id.to_string(),
            attempt,
            lease_until: Timestamp::now().plus(lease),
            progress: progress.cloned(),
        };
        self.heartbeats.call(req).await
    }

    async fn finish(&self, id: &str, attempt: u32, outcome: Outcome) -> Result<Job> {
        let (key, policy) = (id.to_string(), self.policy);
        let decide: Decide = Box::new(move |_, cur: &Current, now| {
            transitions::finish(
                &key,
                cur,
                attempt,
                outcome.clone(),
                now,
                &policy,
                fastrand::f64(),
            )
            .map(Some)
        });
        let claimed = self.claimed.take(id, attempt);
        self.transition(id, claimed, decide).await
    }

    async fn cancel(&self, id: &str, reason: &str) -> Result<Job> {
        // One transaction with the job's row locked: a split job's parts stop with it.
        self.cancel_now(id, reason).await
    }

    async fn retry(&self, id: &str) -> Result<Job> {
        let key = id.to_string();
        let decide: Decide =
            Box::new(move |_, cur: &Current, now| transitions::retry(&key, cur, now).map(Some));
        self.transition(id, None, decide).await
    }

    async fn reap(&self) -> Result<Vec<Job>> {
        let now = Timestamp::now();
        let expired = reads::expired_leases(&self.durable, now).await?;
        // Ending an attempt is a finish like any other (it may fail the job for good and
        // deliver `on_failure`), so it goes the way finishes go: batched, committed
        // synchronously. Another process may have reaped the job, or its worker renewed the
        // lease, since the scan: each is decided again from its row, and the update is guarded
        // on the lease having expired.
        let reaps = expired.into_iter().map(|id| {
            let (key, policy) = (id.clone(), self.policy);
            let decide: Decide = Box::new(move |job: Option<&Job>, cur: &Current, now| {
                let lease = job.and_then(|j| j.lease_expires_at);
                let expired = cur.status.is_active() && lease.is_some_and(|t| t < now);
                if !expired {
                    return Ok(None);
                }
                transitions::lease_expired(&key, cur, now, &policy, fastrand::f64()).map(Some)
            });
            let req = TransitionReq {
                id: id.clone(),
                lease_before: Some(now),
                decide,
                claimed: None,
            };
            async move { (id, self.transitions.call(req).await) }
        });
        let mut jobs = Vec::new();
        for (id, result) in futures_util::future::join_all(reaps).await {
            match result {
                Ok((job, true)) => jobs.push(job),
                Ok((_, false)) => {}
                Err(e) => tracing::warn!("reaping {id}: {e}"),
            }
        }
        jobs.extend(self.reap_parts().await?);
        Ok(jobs)
    }

    async fn events(&self, id: &str) -> Result<Vec<JobEvent>> {
        reads::events(&self.durable, id).await
    }

    async fn note(
        &self,
        id: &str,
        kind: &str,
        reason: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        ops::note(&self.fast, id, kind, reason, &detail, Timestamp::now()).await
    }

    async fn append_logs(&self, id: &str, attempt: u32, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        ops::append_logs(&self.fast, id, attempt, lines, Timestamp::now()).await
    }

    async fn logs(
        &self,
        id: &str,
        attempt: Option<u32>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>> {
        reads::logs(&self.durable, id, attempt, after_seq, limit).await
    }

    async fn record_attempt(&self, id: &str, attempt: u32, stats: &AttemptStats) -> Result<()> {
        ops::record_attempt(&self.fast, id, attempt, stats).await
    }

    async fn attempts(&self, id: &str) -> Result<Vec<AttemptInfo>> {
        reads::attempts(&self.durable, id).await
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        ops::register_worker(&self.fast, worker, Timestamp::now()).await?;
        self.announce_worker(&worker.id);
        Ok(())
    }

    async fn touch_worker(&self, id: &str, draining: bool) -> Result<()> {
        ops::touch_worker(&self.fast, id, draining, Timestamp::now()).await?;
        self.announce_worker(id);
        Ok(())
    }

    async fn remove_worker(&self, id: &str) -> Result<()> {
        if ops::remove_worker(&self.fast, id).await? {
            self.announce_worker(id);
        }
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let held = self.held_parts().await?;
        reads::workers(&self.durable, held).await
    }

    async fn reserve_outputs(
        &self,
        id: &str,
        attempt: u32,
        keys: &[String],
    ) -> Result<Reservation> {
        outputs::reserve(&self.durable, id, attempt, keys).await
    }

    async fn release_outputs(&self, id: &str, attempt: u32) -> Result<()> {
        outputs::release(&self.durable, id, attempt).await
    }

    async fn split(&self, id: &str, attempt: u32, plan: &SplitPlan) -> Result<Job> {
        self.split_now(id, attempt, plan).await
    }

    async fn claim_part(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedPart>> {
        self.claim_part_now(worker, lease).await
    }

    async fn heartbeat_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        lease: Duration,
        progress: Option<&Progress>,
    ) -> Result<Heartbeat> {
        self.heartbeat_part_now(id, seq, attempt, lease, progress)
            .await
    }

    async fn finish_part(
        &self,
        id: &str,
        seq: u32,
        attempt: u32,
        outcome: PartOutcome,
    ) -> Result<Job> {
        self.finish_part_now(id, seq, attempt, outcome).await
    }

    async fn parts(&self, id: &str) -> Result<Vec<Part>> {
        self.parts_now(id).await
    }

    async fn segment_key(&self, id: &str, new: [u8; KEY_BYTES]) -> Result<[u8; KEY_BYTES]> {
        self.segment_key_now(id, new).await
    }

    async fn stored_segment_key(&self, id: &str) -> Result<Option<[u8; KEY_BYTES]>> {
        self.stored_segment_key_now(id).await
    }

    async fn split_plan(&self, id: &str) -> Result<Option<SplitPlan>> {
        self.split_plan_now(id).await
    }

    async fn capacity(&self) -> Result<Capacity> {
        self.capacity_now().await
    }

    async fn scratch_due(
        &self,
        keep_failed: Duration,
        limit: u32,
    ) -> Result<Vec<(String, Scratch)>> {
        self.scratch_due_now(keep_failed, limit).await
    }

    async fn forget_scratch(&self, id: &str) -> Result<bool> {
        self.forget_scratch_now(id).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn claim_deliveries(
        &self,
        holder: &str,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        deliveries::claim(&self.durable, holder, hold, limit).await
    }

    async fn record_delivery(
        &self,
        delivery: i64,
        holder: &str,
        next_try: Option<Timestamp>,
        note: Option<(String, serde_json::Value)>,
    ) -> Result<()> {
        deliveries::record(&self.durable, delivery, holder, next_try, note).await
    }
}
