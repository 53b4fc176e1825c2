//! SQLite's segment keys (`migrations/sqlite/0010_job_keys.sql`): a job's key made once,
//! through the single writer, and read for the key route.

use rusqlite::params;

use super::SqliteStore;
use super::ops::current;
use crate::job::{KEY_BYTES, Timestamp};
use crate::store::{JobStore, Result, keys::stored_key};

impl SqliteStore {
    pub(super) async fn segment_key_now(
        &self,
        id: &str,
        new: [u8; KEY_BYTES],
    ) -> Result<[u8; KEY_BYTES]> {
        let (id, now) = (id.to_string(), Timestamp::now());
        // Durable: the engine encrypts with it once this is answered.
        self.writer
            .write_one(true, move |c| {
                current(c, &id)?;
                c.prepare_cached(
                    "INSERT INTO job_keys (job_id, key, created_at) VALUES (?, ?, ?) \
                     ON CONFLICT (job_id) DO NOTHING",
                )?
                .execute(params![id, &new[..], now.0])?;
                let key: Vec<u8> = c
                    .prepare_cached("SELECT key FROM job_keys WHERE job_id = ?")?
                    .query_row(params![id], |r| r.get(0))?;
                Ok((stored_key(&id, &key)?, Vec::new()))
            })
            .await
    }

    pub(super) async fn stored_segment_key_now(&self, id: &str) -> Result<Option<[u8; KEY_BYTES]>> {
        self.get(id).await?;
        let key: Option<Vec<u8>> = sqlx::query_scalar("SELECT key FROM job_keys WHERE job_id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        key.map(|k| stored_key(id, &k)).transpose()
    }
}
