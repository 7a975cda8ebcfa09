//! Group commit: callers queue an item and wait for its result; a writer takes whatever has
//! queued up (up to a batch) and writes it in one transaction. Every item is still written
//! before its caller goes on, but the database sees one commit per batch instead of one per
//! item — what a commit costs (a WAL flush on PostgreSQL, the write lock on SQLite) is shared.
//!
//! Up to `in_flight` batches are written at once: on a server database one batch's commit
//! waits on the disk while the next one is sent; SQLite has one writer, so there it is one.
use std::{future::Future, sync::Arc};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{Error, Result};

type Pending<T, R> = (T, oneshot::Sender<Result<R>>);

pub struct GroupCommit<T, R> {
    queue: mpsc::Sender<Pending<T, R>>,
    /// The error id answered once the writer has stopped.
    stopped_id: &'static str,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
            stopped_id: self.stopped_id,
        }
    }
}

impl<T, R> std::fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupCommit({})", self.stopped_id)
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the writer; it stops when the last handle is dropped. `write` gets a batch and
    /// answers one result per item, in order.
    pub fn start<F, Fut>(batch: usize, in_flight: usize, stopped_id: &'static str, write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<R>>> + Send + 'static,
    {
        let (queue, mut pending) = mpsc::channel::<Pending<T, R>>(4 * batch);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            loop {
                // Wait for a free slot before taking a batch: what arrives meanwhile joins it.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut items = Vec::with_capacity(batch);
                if pending.recv_many(&mut items, batch).await == 0 {
                    return;
                }
                let (items, replies): (Vec<T>, Vec<_>) = items.into_iter().unzip();
                let written = write(items);
                tokio::spawn(async move {
                    let results = written.await;
                    let mut results = results.into_iter();
                    for reply in replies {
                        let result = results.next().unwrap_or_else(|| {
                            Err(Error::internal(
                                stopped_id,
                                "the batch writer lost a result",
                            ))
                        });
                        let _ = reply.send(result);
                    }
                    drop(slot);
                });
            }
        });
        GroupCommit { queue, stopped_id }
    }

    /// Queues `item` and waits until its batch is written.
    pub async fn submit(&self, item: T) -> Result<R> {
        let stopped = || Error::unavailable(self.stopped_id, "the batch writer has stopped");
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((item, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// How many batches a writer keeps in flight on `db`: one on SQLite (one writer), two on a
/// server database.
pub fn in_flight(db: &crate::storage::Db) -> usize {
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        1
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn every_item_gets_its_own_result_and_items_share_batches() {
        let batches = Arc::new(AtomicUsize::new(0));
        let seen = batches.clone();
        let doubler = GroupCommit::start(8, 2, "TEST-Batch1", move |items: Vec<u32>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                items
                    .into_iter()
                    .map(|i| {
                        if i == 13 {
                            Err(Error::invalid_argument("TEST-Batch2", "unlucky"))
                        } else {
                            Ok(i * 2)
                        }
                    })
                    .collect()
            }
        });
        let calls: Vec<_> = (0..40u32)
            .map(|i| {
                let d = doubler.clone();
                tokio::spawn(async move { d.submit(i).await })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            let answer = call.await.unwrap();
            match answer {
                Ok(v) => assert_eq!(v, 2 * i as u32),
                Err(e) => {
                    assert_eq!(i, 13);
                    assert_eq!(e.id, "TEST-Batch2");
                }
            }
        }
        let n = batches.load(Ordering::SeqCst);
        assert!((5..40).contains(&n), "40 items in {n} batches of at most 8");
    }

    #[tokio::test]
    async fn a_writer_that_answers_too_few_results_fails_the_rest_not_hangs() {
        let short = GroupCommit::start(4, 1, "TEST-Batch3", |_items: Vec<u8>| async {
            Vec::<Result<()>>::new()
        });
        let e = short.submit(1).await.unwrap_err();
        assert_eq!(e.id, "TEST-Batch3");
    }
}
