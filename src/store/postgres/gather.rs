//! Gathering concurrent calls of one kind into batches (`Batcher`), each run as one statement
//! (`batched.rs`). PostgreSQL commits a 20-row statement nearly as fast as a 1-row one, so
//! calls of one kind that arrive while a statement is in flight are sent together as the next
//! one. A lone call goes out at once (no added delay).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{Result, StoreError};

type Pending<Req, Resp> = (Req, oneshot::Sender<Result<Resp>>);

/// A queue of calls of one kind, drained by `lanes` concurrent statement runners.
pub(super) struct Batcher<Req, Resp> {
    tx: mpsc::Sender<Pending<Req, Resp>>,
}

/// Most calls per statement.
pub(super) const MAX_BATCH: usize = 128;

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// `run` executes one batch and answers each request in order.
    pub fn start<F, Fut>(lanes: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<Resp>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Pending<Req, Resp>>(8192);
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        for _ in 0..lanes.max(1) {
            let (rx, run) = (rx.clone(), run.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(p) => batch.push(p),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    let (reqs, replies): (Vec<Req>, Vec<_>) = batch.into_iter().unzip();
                    let n = reqs.len();
                    let mut results = run(reqs).await;
                    results.resize_with(n, || {
                        Err(StoreError::Backend("batch answered short".into()))
                    });
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
            });
        }
        Batcher { tx }
    }

    /// Queues a call nobody waits on. False when the queue is full (the call is dropped).
    pub fn post(&self, req: Req) -> bool {
        let (reply, _) = oneshot::channel();
        self.tx.try_send((req, reply)).is_ok()
    }

    pub async fn call(&self, req: Req) -> Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((req, reply))
            .await
            .map_err(|_| StoreError::Backend("the store's batcher has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the store's batcher dropped a call".into()))?
    }
}
