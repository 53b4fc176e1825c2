//! Stores for the conformance suite: a SQLite file in a temp dir, or a fresh PostgreSQL
//! database on the server at 127.0.0.1:5432 (override with FFARM_TEST_PG_URL), dropped when
//! the `TestStore` goes, whether the test passed or panicked.

use std::sync::Arc;
use std::time::Duration;

use ffarm::job::{Job, RetryPolicy};
use ffarm::store::JobStore;
use ffarm::store::postgres::PostgresStore;
use ffarm::store::sqlite::SqliteStore;
use sqlx::Connection;

/// Short backoff so retry tests run in a second.
pub fn test_policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(1),
    }
}

pub struct TestStore {
    pub store: Arc<dyn JobStore>,
    /// The URL another process (or a reopen) uses for the same data.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<DropDatabase>,
}

pub fn pg_admin_url() -> String {
    std::env::var("FFARM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn pg_url_for(db: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{db}")
}

impl TestStore {
    pub async fn sqlite() -> TestStore {
        let dir = crate::helpers::tempdir();
        let url = format!("sqlite://{}", dir.path().join("ffarm.db").display());
        let store = SqliteStore::open_with(&url, test_policy())
            .await
            .expect("open sqlite");
        TestStore {
            store: Arc::new(store),
            url,
            _dir: Some(dir),
            pg_db: None,
        }
    }

    /// A store on an empty database of its own on the local PostgreSQL.
    pub async fn postgres() -> TestStore {
        let (url, guard) = empty_postgres().await;
        let store = PostgresStore::open_with(&url, test_policy())
            .await
            .expect("open postgres");
        TestStore {
            store: Arc::new(store),
            url,
            _dir: None,
            pg_db: Some(guard),
        }
    }

    /// The same data opened again, as another process or machine would: its own connections,
    /// its own writer or batchers, its own notification listener.
    pub async fn another(&self) -> Arc<dyn JobStore> {
        if self.is_postgres() {
            Arc::new(
                PostgresStore::open_with(&self.url, test_policy())
                    .await
                    .expect("open postgres again"),
            )
        } else {
            Arc::new(
                SqliteStore::open_with(&self.url, test_policy())
                    .await
                    .expect("open sqlite again"),
            )
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg_db.is_some()
    }

    /// Runs SQL on the data directly, beside the store (to arrange a state or inject a fault).
    pub async fn execute(&self, sql: &str) {
        if self.is_postgres() {
            execute_on::<sqlx::PgConnection>(&self.url, sql).await;
        } else {
            execute_on::<sqlx::SqliteConnection>(&self.url, sql).await;
        }
    }

    /// Drops the PostgreSQL database now (SQLite's goes with its temp dir). Dropping the
    /// `TestStore` does the same; this only makes the end of a test explicit.
    pub async fn cleanup(self) {
        drop(self);
    }
}

/// Submits a job for each key (its spec as `helpers::spec` makes it), all at once,
/// spreading them over `stores` in turn: the jobs, in the order of the keys.
pub async fn submit_together(
    stores: &[Arc<dyn JobStore>],
    keys: impl IntoIterator<Item = String>,
) -> Vec<Job> {
    let submits = keys.into_iter().enumerate().map(|(i, key)| {
        let s = &stores[i % stores.len()];
        async move {
            s.submit(None, crate::helpers::spec(&key))
                .await
                .unwrap()
                .job
        }
    });
    futures_util::future::join_all(submits).await
}

/// Runs SQL on a connection of its own, of the kind `C`, to the data at `url`.
async fn execute_on<C>(url: &str, sql: &str)
where
    C: Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let mut conn = C::connect(url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("execute");
}

/// A new, empty database on the local PostgreSQL (no store has migrated it): its URL, and the
/// guard that drops it.
pub async fn empty_postgres() -> (String, DropDatabase) {
    let db = format!("ffarm_test_{}", ffarm::job::new_id().to_lowercase());
    let mut admin = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (set FFARM_TEST_PG_URL to use another)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    // From here on the database is dropped however the test ends.
    (pg_url_for(&db), DropDatabase(db))
}

/// Drops a test database when it goes out of scope, also while a failed test unwinds.
pub struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let db = std::mem::take(&mut self.0);
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own does the work. WITH (FORCE) closes the store's own connections.
        let dropped = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Runs one conformance case against both backends, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let s = crate::store_harness::TestStore::sqlite().await;
                    super::$case(&*s.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let s = crate::store_harness::TestStore::postgres().await;
                    super::$case(&*s.store).await;
                }
            )*
        }
    };
}
pub(crate) use conformance;

/// Runs a case that needs the `TestStore` itself (to open the same data again) against both
/// backends.
macro_rules! with_test_store {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(crate::store_harness::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(crate::store_harness::TestStore::postgres().await).await;
                }
            )*
        }
    };
}
pub(crate) use with_test_store;
