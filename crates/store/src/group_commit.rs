//! Group commit for the writes on the token service's request path (refresh rotation, code
//! issue and redemption, sessions, last-used marks, single-use `jti` records) and the batches
//! requests feed (audit flushes, API key uses): many commits share one fsync, and none of them
//! is acknowledged before its own write is durable.
//!
//! On SQLite these writes go through one writer connection with `synchronous = NORMAL`: its
//! commits append to the write-ahead log without syncing it. Each caller then waits in
//! [`GroupCommit::durable`] for an fsync of the log that *started after its commit returned*;
//! while one fsync runs, the commits that arrive queue up and the next fsync covers all of them.
//! The one writer connection also means these writes wait for each other in a fair queue (the
//! pool's) rather than in SQLite's busy handler, which sleeps and polls. Every other write keeps
//! the `synchronous = FULL` pool. The log is reopened by path for each fsync: SQLite deletes it
//! when the last connection closes (after a checkpoint, which syncs), so a held descriptor could
//! point at a file no longer in use. A committed write is visible to other connections before its
//! fsync ends. Only its own caller can act on what it wrote (a rotated token's successor, a
//! code's tokens) before its answer, and that waits for the fsync; a request that reads it
//! meanwhile and then writes (a replay revoking a family) waits for a later fsync, which
//! covers both.
//!
//! On PostgreSQL a commit is durable when it returns and concurrent commits already share WAL
//! flushes, so the writes take the shared pool and [`GroupCommit::durable`] returns at once.
//!
//! This module must never report a write durable before an fsync that began after the write's
//! commit has finished.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The pool that request-path writes use, and the wait that makes them durable.
#[derive(Debug)]
pub(crate) struct GroupCommit<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    log: Option<Arc<LogSync>>,
}

// By hand: a derive would ask the database type itself to be `Clone`.
impl<DB: sqlx::Database> Clone for GroupCommit<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            log: self.log.clone(),
        }
    }
}

impl<DB: sqlx::Database> GroupCommit<DB> {
    /// Writes through `pool`, whose commits are durable when they return.
    pub(crate) fn durable_pool(pool: sqlx::Pool<DB>) -> Self {
        Self { pool, log: None }
    }

    /// Writes through `pool`, whose commits are durable only after the write-ahead log at
    /// `log_path` is synced.
    pub(crate) fn syncing(pool: sqlx::Pool<DB>, log_path: PathBuf) -> Self {
        Self {
            pool,
            log: Some(Arc::new(LogSync::new(log_path))),
        }
    }

    /// The pool request-path writes go through; call [`Self::durable`] after each commit.
    pub(crate) fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    /// Returns once everything the caller committed through [`Self::pool`] before this call is
    /// on stable storage.
    pub(crate) async fn durable(&self) -> crate::Result<()> {
        match &self.log {
            None => Ok(()),
            Some(log) => log.after_commit().await,
        }
    }

    /// How many fsyncs have covered how many commits so far (`(fsyncs, commits)`).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.log.as_ref().map_or((0, 0), |log| {
            (
                log.fsyncs.load(Ordering::Acquire),
                log.committed.load(Ordering::Acquire),
            )
        })
    }

    /// The write-ahead log this group syncs, if it syncs one.
    #[cfg(test)]
    pub(crate) fn log_path(&self) -> Option<&std::path::Path> {
        self.log.as_ref().map(|log| log.path.as_path())
    }

    /// Closes the pool.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// Coalesced fsyncs of one write-ahead log.
#[derive(Debug)]
struct LogSync {
    path: PathBuf,
    /// Commits that have returned and asked to be made durable.
    committed: AtomicU64,
    /// Every commit counted up to this number is covered by a finished fsync.
    synced: AtomicU64,
    /// fsyncs done (tests read it to see commits share them).
    fsyncs: AtomicU64,
    /// One fsync at a time; the waiters queue here in arrival order.
    turn: tokio::sync::Mutex<()>,
}

impl LogSync {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    async fn after_commit(&self) -> crate::Result<()> {
        // Counted after the commit returned: whoever reads a count at least this high reads it
        // after this commit's log frames were written.
        let ticket = self.committed.fetch_add(1, Ordering::AcqRel) + 1;
        let _turn = self.turn.lock().await;
        if self.synced.load(Ordering::Acquire) >= ticket {
            return Ok(());
        }
        // Read before the fsync starts: every commit counted so far is covered by it.
        let covers = self.committed.load(Ordering::Acquire);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || sync_log(&path))
            .await
            .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))?
            .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(e)))?;
        self.fsyncs.fetch_add(1, Ordering::AcqRel);
        self.synced.fetch_max(covers, Ordering::AcqRel);
        Ok(())
    }
}

/// Syncs the log's contents. A missing log was checkpointed into the database and deleted, and a
/// checkpoint syncs both files, so there is nothing left to sync.
fn sync_log(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_in(dir: &tempfile::TempDir) -> Arc<LogSync> {
        let path = dir.path().join("db-wal");
        std::fs::write(&path, b"frames").expect("test setup");
        Arc::new(LogSync::new(path))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_waiting_behind_one_fsync_share_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log_in(&dir);
        // An fsync "in progress": the turn is held while 32 commits arrive.
        let held = log.turn.lock().await;
        let waiters: Vec<_> = (0..32)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move { log.after_commit().await })
            })
            .collect();
        while log.committed.load(Ordering::Acquire) < 32 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for waiter in waiters {
            waiter.await.expect("joined").expect("durable");
        }
        assert_eq!(
            log.fsyncs.load(Ordering::Acquire),
            1,
            "one fsync covers all 32"
        );
        assert_eq!(log.synced.load(Ordering::Acquire), 32);
    }

    #[tokio::test]
    async fn a_commit_after_an_fsync_gets_an_fsync_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log_in(&dir);
        log.after_commit().await.expect("durable");
        log.after_commit().await.expect("durable");
        log.after_commit().await.expect("durable");
        assert_eq!(log.fsyncs.load(Ordering::Acquire), 3);
        assert_eq!(log.synced.load(Ordering::Acquire), 3);
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_the_write_and_covers_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A log "inside" a regular file: opening it fails with "not a directory", an error
        // that, unlike "not found", says nothing about the log having been checkpointed.
        let path = dir.path().join("db-wal");
        std::fs::write(&path, b"frames").expect("test setup");
        let log = Arc::new(LogSync::new(path.join("not-a-dir")));
        assert!(log.after_commit().await.is_err());
        assert_eq!(log.synced.load(Ordering::Acquire), 0);
        assert_eq!(log.fsyncs.load(Ordering::Acquire), 0);
    }
}
