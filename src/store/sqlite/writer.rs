//! SQLite's single writer with group commit. SQLite takes one writer at a time; rather than
//! many connections queueing on the file lock, every write goes through this task, which
//! runs all the writes waiting at that moment in one transaction and answers each only after
//! the commit. One fsync then covers many submits, and claims can never race.

use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::store::{Change, Result, StoreError};

/// What an operation leaves to do once the batch is committed (or not).
type Finish = Box<dyn FnOnce(std::result::Result<(), String>, &broadcast::Sender<Change>) + Send>;
/// An operation: run on the connection, or (None) skipped because no transaction could start.
type Op = Box<dyn for<'c> FnOnce(Option<&'c mut SqliteConnection>) -> BoxFuture<'c, Finish> + Send>;

struct Command {
    op: Op,
    /// Needs `synchronous = FULL` (an fsync at commit): submits.
    durable: bool,
}

/// Writes at most this many operations per transaction.
const MAX_BATCH: usize = 512;

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Command>,
}

impl Writer {
    pub fn start(conn: SqliteConnection, changes: broadcast::Sender<Change>) -> Writer {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(conn, rx, changes));
        Writer { tx }
    }

    /// Runs `f` inside the next batch's transaction. Its result is returned, and its changes
    /// broadcast, once the batch has committed.
    pub async fn write<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(T, Vec<Change>)>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let op: Op = Box::new(move |conn| {
            Box::pin(async move {
                let outcome = match conn {
                    Some(conn) => f(conn).await,
                    None => Err(StoreError::Backend(
                        "could not start a write transaction".into(),
                    )),
                };
                let finish: Finish = Box::new(move |committed, changes_tx| {
                    let result = match (outcome, committed) {
                        (Ok((value, changes)), Ok(())) => {
                            for c in changes {
                                let _ = changes_tx.send(c);
                            }
                            Ok(value)
                        }
                        (Ok(_), Err(e)) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                        (Err(e), _) => Err(e),
                    };
                    let _ = reply.send(result);
                });
                finish
            })
        });
        self.tx
            .send(Command { op, durable })
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer dropped a request".into()))?
    }
}

async fn run(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Command>,
    changes: broadcast::Sender<Change>,
) {
    // The connection opens with synchronous = FULL.
    let mut full = true;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|c| c.durable);
        if durable != full {
            let pragma = if durable {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            if sqlx::query(pragma).execute(&mut conn).await.is_ok() {
                full = durable;
            }
        }
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await {
            let message = e.to_string();
            for cmd in batch {
                let finish = (cmd.op)(None).await;
                finish(Err(message.clone()), &changes);
            }
            continue;
        }
        let mut finishes = Vec::with_capacity(batch.len());
        for cmd in batch {
            finishes.push((cmd.op)(Some(&mut conn)).await);
        }
        let committed = match sqlx::query("COMMIT").execute(&mut conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                Err(e.to_string())
            }
        };
        for finish in finishes {
            finish(committed.clone(), &changes);
        }
    }
}
