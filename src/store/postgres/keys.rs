//! PostgreSQL's segment keys (`migrations/postgres/0014_job_keys.sql`): a job's key made
//! once (the first insert wins, every caller reads the winner), and read for the key route.

use super::PostgresStore;
use crate::job::{KEY_BYTES, Timestamp};
use crate::store::{Result, keys::stored_key};

impl PostgresStore {
    pub(super) async fn segment_key_now(
        &self,
        id: &str,
        new: [u8; KEY_BYTES],
    ) -> Result<[u8; KEY_BYTES]> {
        self.get_bare(id).await?;
        // The first insert wins; the read after it (a statement of its own, so a snapshot
        // that sees a winner committed meanwhile) gives every caller the same key.
        sqlx::query(
            "INSERT INTO job_keys (job_id, key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(id)
        .bind(&new[..])
        .bind(Timestamp::now().0)
        .execute(&self.durable)
        .await?;
        let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM job_keys WHERE job_id = $1")
            .bind(id)
            .fetch_one(&self.durable)
            .await?;
        stored_key(id, &key)
    }

    pub(super) async fn stored_segment_key_now(&self, id: &str) -> Result<Option<[u8; KEY_BYTES]>> {
        self.get_bare(id).await?;
        let key: Option<Vec<u8>> = sqlx::query_scalar("SELECT key FROM job_keys WHERE job_id = $1")
            .bind(id)
            .fetch_optional(&self.durable)
            .await?;
        key.map(|k| stored_key(id, &k)).transpose()
    }
}
