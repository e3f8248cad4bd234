//! Revocations as the service sees them: following the durable revocation log (`follow`, used by
//! the API key verifier and the embedded gateway) and the revocation feed's settings and shutdown
//! signal ([`Feed`]), which the feed's HTTP handlers in `portcullis-http` read.
//!
//! This module must never decide whether a credential is revoked (core's `RevocationSet` does)
//! and never serve HTTP.

pub mod follow;

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::time::Clock;
use portcullis_store::Store;
use tokio::sync::watch;

use crate::audit::AuditSink;

/// The revocation feed as its HTTP surface uses it: the log (storage), the clock, the audit sink
/// (its readers authenticate with admin or service credentials) and the feed's settings and
/// shutdown signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FeedService {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub feed: Arc<Feed>,
}

/// The feed's settings and its shutdown signal, held in `AppState`.
#[derive(Debug)]
pub struct Feed {
    heartbeat: Duration,
    shutdown: watch::Sender<bool>,
}

impl Feed {
    pub fn new(heartbeat: Duration) -> Self {
        Self {
            heartbeat,
            shutdown: watch::Sender::new(false),
        }
    }

    /// Ends every open stream (at server shutdown: an open stream would otherwise hold the
    /// graceful shutdown until its grace period ends). Readers reconnect elsewhere and resume.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// How often an open stream sends a heartbeat.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Open revocation streams now: each holds one shutdown receiver while it runs.
    pub fn subscribers(&self) -> usize {
        self.shutdown.receiver_count()
    }

    /// A receiver that turns `true` when [`Self::shutdown`] is called.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_the_open_shutdown_receivers() {
        let feed = Feed::new(Duration::from_secs(1));
        assert_eq!(feed.subscribers(), 0);
        let a = feed.shutdown_signal();
        let b = feed.shutdown_signal();
        assert_eq!(feed.subscribers(), 2);
        drop(a);
        assert_eq!(feed.subscribers(), 1);
        drop(b);
        assert_eq!(feed.subscribers(), 0);
    }
}
