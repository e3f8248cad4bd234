//! Following the revocation log inside this process: the loop shared by everything here that
//! must learn of revocations and changes as they are appended (the API key cache, an embedded
//! gateway's verifier).
//!
//! The loop reads pages of the log from a starting position up to the published head
//! ([`Store::watch_revocation_head`]), hands them to a [`LogFollower`], and waits for the head to
//! move. With a `confirm_every` interval it also reads the head row itself on that interval and
//! reports `caught_up` after each successful read, so a follower that must fail closed when
//! storage is unreachable (a verifier's staleness bound) hears nothing while it is.
//!
//! This module must never report a position past an entry it has not handed over: a failed
//! read is either retried or, if the follower says it can recover without the entries, skipped
//! with the follower told so; and a head found behind the position already read (a restored or
//! replaced database, whose new entries will reuse old positions) restarts reading from 0.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::time::Timestamp;
use portcullis_store::{RevocationEntry, RevocationRange, Store, StoreError};
use tokio::sync::watch;

/// Entries read per query.
const PAGE: i64 = 1_000;
/// Pause before retrying a failed read the follower cannot skip.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What to do after a failed read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReadError {
    /// Skip the unread entries (the follower has made itself safe without them).
    Skip,
    /// Pause, then read the same range again.
    Retry,
}

/// A consumer of the log.
pub trait LogFollower: Send {
    /// The log's head was read and reading starts after `position`. Anything derived from
    /// storage before this moment may predate entries at or before the head, which a follower
    /// starting from the head will never see.
    fn started(&mut self, _position: i64) {}
    /// Entries with `seq` up to and including `through`, oldest first (a page may be empty).
    fn apply(&mut self, entries: Vec<RevocationEntry>, through: i64);
    /// A read failed.
    fn read_failed(&mut self, error: &StoreError) -> OnReadError;
    /// Everything up to `position` has been applied, as of a read of storage just made.
    fn caught_up(&mut self, _position: i64) {}
    /// The log's head is behind what was already read: the database was restored or replaced
    /// (a failover to a lagging replica, say). Reading starts again from 0; what was derived
    /// from the old log may be wrong.
    fn log_replaced(&mut self) {}
    /// Entries that expired by this time may be left out (`None`: hand over every entry).
    fn live_at(&self) -> Option<Timestamp> {
        None
    }
}

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the head at the time of the first successful read: only what is appended later.
    Head,
    /// After this position (0: the whole log).
    After(i64),
}

/// Follows the log until `head`'s store is gone. Subscribe to the head (`head`) before calling,
/// so no append falls between subscribing and the first read.
pub async fn follow(
    store: Arc<dyn Store>,
    mut head: watch::Receiver<i64>,
    start: Start,
    confirm_every: Option<Duration>,
    mut follower: impl LogFollower,
) {
    let stored_head = loop {
        match store.revocation_head().await {
            Ok(seq) => break seq,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the revocation log yet; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    };
    let mut position = match start {
        Start::Head => stored_head,
        Start::After(p) => p,
    };
    follower.started(position);
    let mut target = stored_head.max(*head.borrow_and_update());
    // Whether the last read of storage succeeded: `caught_up` is reported only then.
    let mut reachable = true;
    // The newest entry handed over: re-read on confirmation to notice a replaced log whose
    // head has already caught up with the old one.
    let mut last: Option<RevocationEntry> = None;
    loop {
        while position < target {
            let range = RevocationRange {
                after: position,
                through: target.min(position.saturating_add(PAGE)),
                live_at: follower.live_at(),
                tenant: None,
            };
            match store.revocations_in_range(&range).await {
                Ok(entries) => {
                    reachable = true;
                    if let Some(newest) = entries.last() {
                        last = Some(newest.clone());
                    }
                    follower.apply(entries, range.through);
                    position = range.through;
                }
                Err(e) => {
                    reachable = false;
                    match follower.read_failed(&e) {
                        OnReadError::Skip => position = target,
                        OnReadError::Retry => tokio::time::sleep(RETRY_PAUSE).await,
                    }
                }
            }
        }
        if reachable {
            follower.caught_up(position);
        }
        let confirmed = {
            let (store, last) = (store.clone(), last.clone());
            async move {
                match confirm_every {
                    Some(every) => {
                        tokio::time::sleep(every).await;
                        confirm(store.as_ref(), position, last.as_ref()).await
                    }
                    None => std::future::pending().await,
                }
            }
        };
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    return;
                }
                target = target.max(*head.borrow_and_update());
            }
            read = confirmed => match read {
                Ok(Confirmed::Replaced { head: seq }) => {
                    // Positions already read are being reused for new entries, and the head
                    // watch only moves forward: without starting again they would never be
                    // read, while every confirmation still reported contact.
                    tracing::error!(head = seq, position, "the revocation log is not the one already read (database restored or replaced); reading it again from the start");
                    follower.log_replaced();
                    position = 0;
                    target = seq;
                    last = None;
                    reachable = true;
                }
                Ok(Confirmed::Same { head: seq }) => {
                    reachable = true;
                    target = target.max(seq);
                }
                Err(e) => {
                    reachable = false;
                    tracing::warn!(error = %e, "cannot read the revocation log head");
                }
            },
        }
    }
}

/// What a confirmation read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmed {
    /// The log read so far is still there; its head is at `head`.
    Same { head: i64 },
    /// The log is not the one read so far: its head is behind `position`, or the newest entry
    /// handed over is gone or different.
    Replaced { head: i64 },
}

async fn confirm(
    store: &dyn Store,
    position: i64,
    last: Option<&RevocationEntry>,
) -> Result<Confirmed, StoreError> {
    let head = store.revocation_head().await?;
    if head < position {
        return Ok(Confirmed::Replaced { head });
    }
    if let Some(last) = last {
        let again = store
            .revocations_in_range(&RevocationRange {
                after: last.seq - 1,
                through: last.seq,
                live_at: None,
                tenant: None,
            })
            .await?;
        if again.first() != Some(last) {
            return Ok(Confirmed::Replaced { head });
        }
    }
    Ok(Confirmed::Same { head })
}
