//! SQLite's single writer with group commit. SQLite takes one writer at a time; rather than
//! many connections queueing on the file lock, every write goes through this task, which
//! runs all the writes waiting at that moment in one transaction and answers each only after
//! the commit. One fsync then covers many submits, and claims can never race. An operation of
//! several writes runs inside its own savepoint: one that fails midway leaves nothing behind,
//! and the others in the batch commit as if it had never run (a single statement is undone by
//! SQLite itself).

use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::store::{Change, Result, StoreError};

/// What an operation leaves to do once the batch is committed (or not).
type Finish = Box<dyn FnOnce(std::result::Result<(), String>, &broadcast::Sender<Change>) + Send>;
/// An operation: run on the connection, or (None) skipped because no transaction could start.
type Op = Box<dyn for<'c> FnOnce(Option<&'c mut SqliteConnection>) -> BoxFuture<'c, Ran> + Send>;

/// An operation that ran: what to do after the commit, and whether its savepoint could not
/// be undone (its partial writes may still be in the transaction, which must not commit).
struct Ran {
    finish: Finish,
    tainted: bool,
}

struct Command {
    op: Op,
    /// Needs `synchronous = FULL` (an fsync at commit): submits.
    durable: bool,
}

/// Writes at most this many operations per transaction.
const MAX_BATCH: usize = 512;

/// How many write statements an operation may make.
#[derive(Clone, Copy)]
enum Writes {
    One,
    Several,
}

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

    /// Runs `f` inside the next batch's transaction, in a savepoint of its own. Its result is
    /// returned, and its changes broadcast, once the batch has committed.
    pub async fn write<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(T, Vec<Change>)>>
            + Send
            + 'static,
    {
        self.enqueue(durable, Writes::Several, f).await
    }

    /// [`Writer::write`] for an operation that makes at most one write statement (reads
    /// besides are free): SQLite undoes a failing statement, triggers included, by itself, so
    /// it needs no savepoint — two fewer round trips to the connection on the hot paths
    /// (submit, claim, heartbeat, finish, cancel, retry).
    pub async fn write_one<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(T, Vec<Change>)>>
            + Send
            + 'static,
    {
        self.enqueue(durable, Writes::One, f).await
    }

    async fn enqueue<T, F>(&self, durable: bool, writes: Writes, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(T, Vec<Change>)>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let op: Op = Box::new(move |conn| {
            Box::pin(async move {
                let (outcome, tainted) = match (conn, writes) {
                    (Some(conn), Writes::Several) => isolated(conn, f).await,
                    (Some(conn), Writes::One) => (f(conn).await, false),
                    (None, _) => (
                        Err(StoreError::Backend(
                            "could not start a write transaction".into(),
                        )),
                        false,
                    ),
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
                Ran { finish, tainted }
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

/// Runs one operation inside a savepoint of the batch's transaction: released when it
/// succeeds, rolled back when it fails, so a failure midway (a constraint, a full disk, a
/// fenced report after a first write) leaves none of its writes. The flag says the rollback
/// itself failed and the transaction holds writes nobody answered for.
async fn isolated<T, F>(conn: &mut SqliteConnection, f: F) -> (Result<(T, Vec<Change>)>, bool)
where
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(T, Vec<Change>)>>,
{
    if let Err(e) = sqlx::query("SAVEPOINT op").execute(&mut *conn).await {
        return (Err(e.into()), false);
    }
    let outcome = f(&mut *conn).await;
    let closed = match &outcome {
        Ok(_) => sqlx::query("RELEASE op").execute(&mut *conn).await,
        Err(_) => match sqlx::query("ROLLBACK TO op").execute(&mut *conn).await {
            Ok(_) => sqlx::query("RELEASE op").execute(&mut *conn).await,
            Err(e) => Err(e),
        },
    };
    match closed {
        Ok(_) => (outcome, false),
        Err(e) => (
            Err(StoreError::Backend(format!("closing a savepoint: {e}"))),
            true,
        ),
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
                let ran = (cmd.op)(None).await;
                (ran.finish)(Err(message.clone()), &changes);
            }
            continue;
        }
        let mut finishes = Vec::with_capacity(batch.len());
        let mut tainted = false;
        for cmd in batch {
            let ran = (cmd.op)(Some(&mut conn)).await;
            tainted |= ran.tainted;
            finishes.push(ran.finish);
        }
        let committed = if tainted {
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            Err("a write could not be undone, so none of its batch was committed".to_string())
        } else {
            match sqlx::query("COMMIT").execute(&mut conn).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                    Err(e.to_string())
                }
            }
        };
        for finish in finishes {
            finish(committed.clone(), &changes);
        }
    }
}
