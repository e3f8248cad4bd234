//! Following the revocation log's head: the newest position this process knows of, published
//! through a `tokio::sync::watch` channel so the feed and caches learn promptly that the log
//! moved.
//!
//! Three sources raise the head: the store itself right after it commits an append (same
//! process), a backend-specific listener (PostgreSQL `LISTEN`, for appends made by other nodes),
//! and a slow fallback poll of the head row, so a lost notification only delays, never loses.
//! The follower task starts on the first subscription, so a store that nobody follows (a CLI
//! command, most tests) holds no extra connection, and stops when the store is closed or the
//! last handle to it is dropped.
//!
//! The published value is a hint that only moves forward and never runs ahead of what is
//! committed: readers fetch the entries themselves. This module must never publish a position
//! it has not seen committed.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the fallback poll reads the head row unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The shared half handed to a follower task: publish what it reads, and learn how often to
/// poll.
#[derive(Debug, Clone)]
pub(crate) struct HeadSink {
    tx: Arc<watch::Sender<i64>>,
    poll_ms: Arc<AtomicU64>,
}

impl HeadSink {
    /// Raises the published head to `seq` if it is newer; wakes receivers only then.
    pub(crate) fn publish(&self, seq: i64) {
        self.tx.send_if_modified(|head| {
            if seq > *head {
                *head = seq;
                true
            } else {
                false
            }
        });
    }

    /// The head published so far.
    pub(crate) fn current(&self) -> i64 {
        *self.tx.borrow()
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms.load(Ordering::Relaxed).max(1))
    }

    /// Reads the head with `read` every poll interval until the pool is closed.
    pub(crate) async fn poll<F, Fut>(&self, mut read: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<i64, sqlx::Error>>,
    {
        loop {
            match read().await {
                Ok(seq) => self.publish(seq),
                Err(sqlx::Error::PoolClosed) => return,
                Err(e) => tracing::warn!(error = %e, "could not read the revocation log head"),
            }
            tokio::time::sleep(self.poll_interval()).await;
        }
    }
}

/// Owned by a store (behind an `Arc`, shared by its clones).
#[derive(Debug)]
pub(crate) struct HeadFeed {
    sink: HeadSink,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl HeadFeed {
    pub(crate) fn new() -> Self {
        Self {
            sink: HeadSink {
                tx: Arc::new(watch::Sender::new(0)),
                poll_ms: Arc::new(AtomicU64::new(
                    u64::try_from(DEFAULT_POLL_INTERVAL.as_millis()).unwrap_or(u64::MAX),
                )),
            },
            task: Mutex::new(None),
        }
    }

    pub(crate) fn publish(&self, seq: i64) {
        self.sink.publish(seq);
    }

    pub(crate) fn set_poll_interval(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
        self.sink.poll_ms.store(ms, Ordering::Relaxed);
    }

    /// A receiver of the head, starting the follower built by `start` if none runs yet.
    /// Outside a tokio runtime no follower can start; the receiver then sees only this
    /// process's own appends.
    pub(crate) fn subscribe<F, Fut>(&self, start: F) -> watch::Receiver<i64>
    where
        F: FnOnce(HeadSink) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let rx = self.sink.tx.subscribe();
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.as_ref().is_none_or(JoinHandle::is_finished) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => *task = Some(rt.spawn(start(self.sink.clone()))),
                Err(_) => tracing::warn!(
                    "no async runtime: the revocation log head follows only this process's appends"
                ),
            }
        }
        rx
    }

    /// Stops the follower (it holds a database connection that closing the pool waits for).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl Drop for HeadFeed {
    fn drop(&mut self) {
        self.stop();
    }
}
