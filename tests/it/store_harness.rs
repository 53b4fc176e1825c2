//! Stores for the conformance suite: a SQLite file in a temp dir, or a fresh PostgreSQL
//! database on the server at 127.0.0.1:5432 (override with FFARM_TEST_PG_URL), dropped after.

use std::sync::Arc;
use std::time::Duration;

use ffarm::job::RetryPolicy;
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
    pg_db: Option<String>,
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

    /// An empty database of its own on the local PostgreSQL.
    pub async fn postgres() -> TestStore {
        let db = format!("ffarm_test_{}", ffarm::job::new_id().to_lowercase());
        let mut admin = sqlx::PgConnection::connect(&pg_admin_url())
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (set FFARM_TEST_PG_URL to use another)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = pg_url_for(&db);
        let store = PostgresStore::open_with(&url, test_policy())
            .await
            .expect("open postgres");
        TestStore {
            store: Arc::new(store),
            url,
            _dir: None,
            pg_db: Some(db),
        }
    }

    /// Drops a PostgreSQL test database (SQLite's goes with its temp dir).
    pub async fn cleanup(self) {
        let Some(db) = self.pg_db.clone() else { return };
        drop(self);
        if let Ok(mut admin) = sqlx::PgConnection::connect(&pg_admin_url()).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
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
                    s.cleanup().await;
                }
            )*
        }
    };
}
pub(crate) use conformance;
