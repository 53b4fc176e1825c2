//! SQLite's single writer with group commit. SQLite takes one writer at a time; rather than
//! many connections queueing on the file lock, every write goes through this writer, which
//! runs all the writes waiting at that moment in one transaction and answers each only after
//! the commit. One fsync then covers many submits, and claims can never race. An operation of
//! several writes runs inside its own savepoint: one that fails midway leaves nothing behind,
//! and the others in the batch commit as if it had never run (a single statement is undone by
//! SQLite itself).
//!
//! The writer is a thread of its own that holds the connection sqlx opened (and migrated)
//! locked out of sqlx's worker thread for good, and runs every statement itself through
//! rusqlite. Through sqlx each statement would be a round trip to that worker thread, and on
//! a machine where waking a thread on another CPU takes ~100 µs that round trip, not SQLite,
//! was most of a batch's time (BENCHMARKS.md). Here a batch costs one wake-up.

use rusqlite::Connection;
use sqlx::SqliteConnection;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::store::{Change, Result, StoreError};

/// What an operation leaves to do once the batch is committed (or not).
type Finish = Box<dyn FnOnce(std::result::Result<(), String>, &broadcast::Sender<Change>) + Send>;
/// An operation: run on the connection, or (None) skipped because no transaction could start.
type Op = Box<dyn FnOnce(Option<&Connection>) -> Ran + Send>;

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

/// Prepared statements the writer keeps (rusqlite's default is 16; the store has about 25).
const STATEMENT_CACHE: usize = 64;

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
    /// Takes over `conn` (opened with `synchronous = FULL`) on the writer's thread. The
    /// thread ends, and the connection closes, once every `Writer` is dropped.
    pub async fn start(
        conn: SqliteConnection,
        changes: broadcast::Sender<Change>,
    ) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(4096);
        let (ready_tx, ready) = oneshot::channel::<Result<()>>();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("ffarm-sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                let mut locked = match runtime.block_on(conn.lock_handle()) {
                    Ok(locked) => locked,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                // SAFETY: the handle stays open while `locked` is held (sqlx closes it only
                // when `conn` is dropped, after both below), and holding the lock keeps sqlx's
                // worker thread from using it meanwhile. `from_handle` does not close it.
                let db = match unsafe { Connection::from_handle(locked.as_raw_handle().as_ptr()) } {
                    Ok(db) => db,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                let _ = ready_tx.send(Ok(()));
                run(&db, rx, &changes);
                drop(db);
                drop(locked);
            })
            .map_err(|e| StoreError::Backend(format!("starting the SQLite writer: {e}")))?;
        ready
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer did not start".into()))??;
        Ok(Writer { tx })
    }

    /// Runs `f` inside the next batch's transaction, in a savepoint of its own. Its result is
    /// returned, and its changes broadcast, once the batch has committed.
    pub async fn write<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Vec<Change>)> + Send + 'static,
    {
        self.enqueue(durable, Writes::Several, f).await
    }

    /// [`Writer::write`] for an operation that makes at most one write statement (reads
    /// besides are free): SQLite undoes a failing statement, triggers included, by itself, so
    /// it needs no savepoint (submit, claim, heartbeat, finish, cancel, retry).
    pub async fn write_one<T, F>(&self, durable: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Vec<Change>)> + Send + 'static,
    {
        self.enqueue(durable, Writes::One, f).await
    }

    async fn enqueue<T, F>(&self, durable: bool, writes: Writes, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Vec<Change>)> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let op: Op = Box::new(move |conn| {
            let (outcome, tainted) = match (conn, writes) {
                (Some(conn), Writes::Several) => isolated(conn, f),
                (Some(conn), Writes::One) => (f(conn), false),
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
fn isolated<T, F>(conn: &Connection, f: F) -> (Result<(T, Vec<Change>)>, bool)
where
    F: FnOnce(&Connection) -> Result<(T, Vec<Change>)>,
{
    if let Err(e) = conn.execute_batch("SAVEPOINT op") {
        return (Err(e.into()), false);
    }
    let outcome = f(conn);
    let closed = match &outcome {
        Ok(_) => conn.execute_batch("RELEASE op"),
        Err(_) => conn.execute_batch("ROLLBACK TO op; RELEASE op"),
    };
    match closed {
        Ok(()) => (outcome, false),
        Err(e) => (
            Err(StoreError::Backend(format!("closing a savepoint: {e}"))),
            true,
        ),
    }
}

fn run(conn: &Connection, mut rx: mpsc::Receiver<Command>, changes: &broadcast::Sender<Change>) {
    // The connection opens with synchronous = FULL.
    let mut full = true;
    while let Some(first) = rx.blocking_recv() {
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
            if conn.execute_batch(pragma).is_ok() {
                full = durable;
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let message = e.to_string();
            for cmd in batch {
                let ran = (cmd.op)(None);
                (ran.finish)(Err(message.clone()), changes);
            }
            continue;
        }
        let mut finishes = Vec::with_capacity(batch.len());
        let mut tainted = false;
        for cmd in batch {
            let ran = (cmd.op)(Some(conn));
            tainted |= ran.tainted;
            finishes.push(ran.finish);
        }
        let committed = if tainted {
            let _ = conn.execute_batch("ROLLBACK");
            Err("a write could not be undone, so none of its batch was committed".to_string())
        } else {
            match conn.execute_batch("COMMIT") {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e.to_string())
                }
            }
        };
        for finish in finishes {
            finish(committed.clone(), changes);
        }
    }
}
