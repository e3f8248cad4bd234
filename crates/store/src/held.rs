//! Connections the store holds itself instead of borrowing them from an sqlx pool, for the
//! statements on the token service's request path on SQLite (the request-path writer of
//! `group_commit.rs`; the request path's reads run on the calling thread, `request_reads.rs`).
//!
//! Why not a pool: sqlx's pool pings every connection it takes back, from a task it spawns for
//! the purpose. On SQLite every statement is already a hand-off to the connection's worker
//! thread and back; the ping is a second one, and a refresh grant is mostly such hand-offs. A
//! held connection goes back to its slot when its guard drops, with nothing sent to it.
//!
//! What a pool's ping was for is kept another way. A statement abandoned by a cancelled caller
//! is finished or stopped by the worker before it runs the next one (its queue is ordered), and a
//! transaction sqlx began and did not commit is rolled back by sqlx's own guard, also through
//! that queue. A transaction begun in SQL (`BEGIN IMMEDIATE; ...; COMMIT` in one call), which
//! sqlx does not know about, is marked with [`Taken::begin_in_sql`]; a connection still marked
//! when its guard drops is closed (which ends the transaction) and replaced at once, from a task,
//! and in any case before its slot is used again.
//!
//! This module must never hand one connection to two callers at once, open more connections
//! than its slots, or hand out a connection on which a transaction begun in SQL may be open.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection, Database};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, Semaphore, SemaphorePermit};

/// How long a caller waits for a connection before failing: as long as a write used to wait in
/// SQLite's busy handler (`busy_timeout`).
const WAIT: Duration = Duration::from_secs(5);

/// Where a group of statements runs: any connection of a pool (PostgreSQL; an in-memory SQLite
/// database, whose connections must come from the one pool that created it), or one of a few
/// connections held by the store.
#[derive(Debug)]
pub(crate) enum Connections<DB: Database> {
    Pool(sqlx::Pool<DB>),
    Held(Arc<HeldSet<DB>>),
}

impl<DB: Database> Clone for Connections<DB> {
    fn clone(&self) -> Self {
        match self {
            Self::Pool(pool) => Self::Pool(pool.clone()),
            Self::Held(held) => Self::Held(held.clone()),
        }
    }
}

impl<DB: Database> Connections<DB> {
    /// `slots` connections opened with `options`: the first now (so a bad file fails at open),
    /// the others when first needed.
    pub(crate) async fn held(
        options: <DB::Connection as Connection>::Options,
        slots: usize,
    ) -> crate::Result<Self> {
        let mut first = Some(HeldConnection {
            conn: options.connect().await?,
            begun_in_sql: false,
        });
        let slots: Vec<_> = (0..slots.max(1))
            .map(|_| Mutex::new(first.take()))
            .collect();
        Ok(Self::Held(Arc::new(HeldSet {
            options,
            permits: Semaphore::new(slots.len()),
            slots,
        })))
    }

    /// A connection for the caller alone until the guard drops.
    pub(crate) async fn take(&self) -> crate::Result<Taken<'_, DB>> {
        let inner = match self {
            Self::Pool(pool) => TakenInner::Pooled(pool.acquire().await?, false),
            Self::Held(set) => {
                let (held, permit) = set.take().await?;
                TakenInner::Held {
                    held,
                    _permit: permit,
                    set: set.clone(),
                }
            }
        };
        Ok(Taken { inner })
    }

    /// Closes the pool, or every held connection; later takes fail.
    pub(crate) async fn close(&self) {
        match self {
            Self::Pool(pool) => pool.close().await,
            Self::Held(set) => set.close().await,
        }
    }
}

/// Connections held in slots; a permit per slot, so a caller holding a permit always finds a
/// free slot (a slot is locked only under a permit, and unlocked before the permit goes back).
pub(crate) struct HeldSet<DB: Database> {
    options: <DB::Connection as Connection>::Options,
    /// `None` until first needed, and after a connection left mid-transaction was closed.
    slots: Vec<Mutex<Option<HeldConnection<DB>>>>,
    permits: Semaphore,
}

impl<DB: Database> std::fmt::Debug for HeldSet<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldSet")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// A held connection, and whether a transaction begun in SQL may still be open on it.
pub(crate) struct HeldConnection<DB: Database> {
    conn: DB::Connection,
    begun_in_sql: bool,
}

impl<DB: Database> HeldSet<DB> {
    async fn take(
        &self,
    ) -> crate::Result<(
        MappedMutexGuard<'_, HeldConnection<DB>>,
        SemaphorePermit<'_>,
    )> {
        let permit = tokio::time::timeout(WAIT, self.permits.acquire())
            .await
            .map_err(|_| crate::StoreError::Database(sqlx::Error::PoolTimedOut))?
            .map_err(|_| crate::StoreError::Database(sqlx::Error::PoolClosed))?;
        // Always found (see the type's comment); the error is for the impossible case.
        let mut slot = self
            .slots
            .iter()
            .find_map(|slot| slot.try_lock().ok())
            .ok_or(crate::StoreError::Database(sqlx::Error::PoolTimedOut))?;
        if slot.as_ref().is_some_and(|held| held.begun_in_sql) {
            // Never reused: closing it (after whatever its worker still has queued) ends the
            // transaction, and only then is its write lock free for the next connection.
            if let Some(old) = slot.take() {
                if let Err(e) = old.conn.close().await {
                    tracing::warn!(error = %e, "closing a connection left mid-transaction");
                }
            }
        }
        if slot.is_none() {
            *slot = Some(HeldConnection {
                conn: self.options.connect().await?,
                begun_in_sql: false,
            });
        }
        let held = MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| crate::StoreError::Database(sqlx::Error::PoolClosed))?;
        Ok((held, permit))
    }

    async fn close(&self) {
        self.permits.close();
        for slot in &self.slots {
            if let Some(held) = slot.lock().await.take() {
                let _ = held.conn.close().await;
            }
        }
    }
}

/// A connection taken from [`Connections`], the caller's alone until dropped.
pub(crate) struct Taken<'a, DB: Database> {
    inner: TakenInner<'a, DB>,
}

enum TakenInner<'a, DB: Database> {
    /// A pooled connection, and whether a transaction begun in SQL may be open on it.
    Pooled(PoolConnection<DB>, bool),
    /// The slot's lock first, then its permit: fields drop in order, so the slot is free
    /// before the permit that promises a free slot goes back.
    Held {
        held: MappedMutexGuard<'a, HeldConnection<DB>>,
        _permit: SemaphorePermit<'a>,
        /// To replace the connection at once if it is dropped mid-transaction.
        set: Arc<HeldSet<DB>>,
    },
}

impl<DB: Database> Taken<'_, DB> {
    /// A transaction managed by sqlx (rolled back if dropped before its commit).
    pub(crate) async fn begin(&mut self) -> crate::Result<sqlx::Transaction<'_, DB>> {
        Ok(Connection::begin(&mut **self).await?)
    }

    /// Says that the next statement begins a transaction in SQL (`BEGIN IMMEDIATE; ...`), to
    /// save the round trips of sqlx's own `BEGIN` and `COMMIT`. Until [`Self::ended_in_sql`], a
    /// connection dropped with the transaction possibly open is closed, never reused.
    pub(crate) fn begin_in_sql(&mut self) {
        self.set_begun_in_sql(true);
    }

    /// Says that the transaction begun in SQL has ended (committed or rolled back).
    pub(crate) fn ended_in_sql(&mut self) {
        self.set_begun_in_sql(false);
    }

    fn set_begun_in_sql(&mut self, begun: bool) {
        match &mut self.inner {
            TakenInner::Pooled(_, flag) => *flag = begun,
            TakenInner::Held { held, .. } => held.begun_in_sql = begun,
        }
    }
}

impl<DB: Database> Drop for Taken<'_, DB> {
    fn drop(&mut self) {
        match &mut self.inner {
            // A pool would hand the connection out again as it is: it is closed instead.
            TakenInner::Pooled(conn, true) => conn.close_on_drop(),
            // A held connection keeps its mark, so no caller ever gets it as it is. It is
            // replaced now rather than at the next take: until then the open transaction
            // would hold SQLite's write lock (every other connection's writes waiting on it)
            // and stop checkpoints. Outside a runtime, the next take replaces it.
            TakenInner::Held { held, set, .. } if held.begun_in_sql => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let set = set.clone();
                    runtime.spawn(async move {
                        // Taking the slot is what replaces a marked connection.
                        if let Err(e) = set.take().await {
                            tracing::warn!(error = %e, "could not replace a connection left mid-transaction");
                        }
                    });
                }
            }
            _ => {}
        }
    }
}

impl<DB: Database> Deref for Taken<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match &self.inner {
            TakenInner::Pooled(conn, _) => conn,
            TakenInner::Held { held, .. } => &held.conn,
        }
    }
}

impl<DB: Database> DerefMut for Taken<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match &mut self.inner {
            TakenInner::Pooled(conn, _) => conn,
            TakenInner::Held { held, .. } => &mut held.conn,
        }
    }
}
