//! Planner statistics for the store's own tables, kept fresh when the server does not. A
//! server with autovacuum off (some CI and hand-tuned servers) never analyzes a new farm's
//! tables: every connection then keeps the plans it made while `jobs` was empty (sequential
//! scans for the finish's lookups by id), and a store slows as its tables grow. Every few
//! seconds the store looks at `pg_stat_user_tables` and analyzes those of its tables that
//! autovacuum's default rule calls stale and that nobody analyzed in the last minute. Where
//! autovacuum runs, it gets there first and this finds nothing to do. (Vacuuming, which also
//! reclaims dead rows, stays the server's job.)

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::store::Result;

/// The store's tables.
const TABLES: &[&str] = &[
    "job_specs",
    "job_states",
    "job_events",
    "job_attempts",
    "job_logs",
    "job_counts",
    "deliveries",
    "workers",
];

/// How often the statistics are looked at.
const EVERY: Duration = Duration::from_secs(5);

/// Autovacuum's default rule (more rows changed since the last analyze than 50 + 10 % of the
/// table), throttled to once a minute per table whoever analyzed it.
const STALE: &str = "SELECT relname::text FROM pg_stat_user_tables \
     WHERE schemaname = current_schema() AND relname = ANY($1) \
       AND n_mod_since_analyze > 50 + 0.1 * n_live_tup \
       AND COALESCE(GREATEST(last_analyze, last_autoanalyze), '-infinity') \
           < now() - interval '1 minute' \
     ORDER BY relname";

/// Looks after the statistics until the guard is dropped.
pub(super) fn keep_fresh(pool: PgPool) -> DropGuard {
    let stop = CancellationToken::new();
    let guard = stop.clone().drop_guard();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match analyze_stale(&pool).await {
                Ok(tables) if !tables.is_empty() => {
                    tracing::debug!(?tables, "analyzed the store's tables")
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("refreshing the store's statistics: {e}"),
            }
        }
    });
    guard
}

/// Analyzes the stale tables, returning their names.
async fn analyze_stale(pool: &PgPool) -> Result<Vec<String>> {
    let stale: Vec<String> = sqlx::query_scalar(STALE)
        .bind(TABLES)
        .fetch_all(pool)
        .await?;
    if !stale.is_empty() {
        // The names are TABLES' own (the query only filters them).
        let list = stale
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {list}")))
            .execute(pool)
            .await?;
    }
    Ok(stale)
}
