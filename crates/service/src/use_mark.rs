//! The one throttled mark: when this node last wrote that something was used (a client, a
//! resource server's secret, a redirect URI or trust rule admitting a grant), so the store sees
//! one informational write per subject and interval instead of one per request.
//!
//! How: the mark is an atomic timestamp; the one caller whose compare-and-swap moves it past the
//! interval spawns the write, off the request path, and every other caller of that interval does
//! nothing. A write that fails puts the mark back (unless a newer one replaced it), so the next
//! use tries again.
//!
//! This module must never decide whether anything is allowed, never make a request wait for the
//! write, and never let a failed write refuse or slow what it records.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::time::Timestamp;
use portcullis_store::StoreError;

/// When this node last recorded a use (ms since the epoch). Cheap to clone: clones share the mark.
#[derive(Debug, Clone)]
pub struct UseMark(Arc<AtomicI64>);

impl UseMark {
    /// A mark starting at the stored last use (`None`: never used, so the first use is written).
    pub fn new(stored: Option<Timestamp>) -> Self {
        Self(Arc::new(AtomicI64::new(
            stored.map_or(i64::MIN, |t| t.as_millis()),
        )))
    }

    /// Moves the mark to `now` if the last recorded use is at least `interval` old; `Some` (the
    /// previous mark) for the one caller that did, which owns the write.
    pub(crate) fn claim(&self, now: Timestamp, interval: Duration) -> Option<i64> {
        let due = now.saturating_sub(interval).as_millis();
        let last = self.0.load(Ordering::Relaxed);
        (last <= due && last < now.as_millis())
            .then(|| {
                self.0
                    .compare_exchange(last, now.as_millis(), Ordering::Relaxed, Ordering::Relaxed)
                    .ok()
            })
            .flatten()
    }

    /// Undoes a claim whose write failed, unless a newer claim replaced it.
    pub(crate) fn release(&self, claimed: Timestamp, previous: i64) {
        let _ = self.0.compare_exchange(
            claimed.as_millis(),
            previous,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Records a use at `now`: when the last recorded one is at least `interval` old, this caller
    /// (and no concurrent one) spawns `write()` and gets `true`. The closure runs only then, so
    /// whatever it clones costs nothing on the other requests. Needs a tokio runtime.
    pub fn record<F, Fut>(&self, now: Timestamp, interval: Duration, write: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let Some(previous) = self.claim(now, interval) else {
            return false;
        };
        let write = write();
        let mark = self.clone();
        tokio::spawn(async move {
            if let Err(e) = write.await {
                mark.release(now, previous);
                tracing::warn!(error = %e, "could not record a use");
            }
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn counting(
        writes: &Arc<AtomicUsize>,
        fail: bool,
    ) -> impl FnOnce() -> std::future::Ready<Result<(), StoreError>> {
        let writes = writes.clone();
        move || {
            writes.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if fail {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            })
        }
    }

    /// Let spawned writes run (a current-thread runtime runs them when the test yields).
    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_use_is_written_once_per_interval() {
        let g = Duration::from_secs(30);
        let writes = Arc::new(AtomicUsize::new(0));
        let mark = UseMark::new(Some(Timestamp::from_secs(100)));
        assert!(!mark.record(Timestamp::from_secs(120), g, counting(&writes, false)));
        assert!(mark.record(Timestamp::from_secs(130), g, counting(&writes, false)));
        assert!(!mark.record(Timestamp::from_secs(130), g, counting(&writes, false)));
        assert!(!mark.record(Timestamp::from_secs(159), g, counting(&writes, false)));
        assert!(mark.record(Timestamp::from_secs(160), g, counting(&writes, false)));
        settle().await;
        assert_eq!(
            writes.load(Ordering::SeqCst),
            2,
            "closures of refused uses never ran"
        );

        let never = UseMark::new(None);
        assert!(never.record(Timestamp::from_secs(0), g, counting(&writes, false)));
        let shared = never.clone();
        assert!(
            !shared.record(Timestamp::from_secs(1), g, counting(&writes, false)),
            "a clone is the same mark"
        );
    }

    #[tokio::test]
    async fn a_failed_write_is_tried_again_at_the_next_use() {
        let g = Duration::from_secs(3600);
        let writes = Arc::new(AtomicUsize::new(0));
        let mark = UseMark::new(None);
        let now = Timestamp::from_secs(1_000);
        assert!(mark.record(now, g, counting(&writes, true)));
        settle().await;
        assert!(
            mark.record(
                now.saturating_add(Duration::from_secs(1)),
                g,
                counting(&writes, false)
            ),
            "the failed write gave the mark back"
        );
        settle().await;
        assert!(!mark.record(
            now.saturating_add(Duration::from_secs(2)),
            g,
            counting(&writes, false)
        ));
        assert_eq!(writes.load(Ordering::SeqCst), 2);
    }

    /// Many threads using one subject at the same instant: exactly one writes.
    #[test]
    fn concurrent_uses_claim_the_mark_once() {
        let mark = UseMark::new(None);
        let now = Timestamp::from_secs(50);
        let claimed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        if mark.claim(now, Duration::from_secs(60)).is_some() {
                            claimed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(claimed.load(Ordering::SeqCst), 1);
    }
}
