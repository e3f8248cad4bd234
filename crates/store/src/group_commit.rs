//! Group commit for the writes on the token service's request path (refresh rotation, code
//! issue and redemption, sessions, last-used marks, single-use `jti` records) and the batches
//! requests feed (audit flushes, API key uses): many commits share one fsync, and none of them
//! is acknowledged before its own write is durable.
//!
//! On SQLite these writes go through one writer connection with `synchronous = NORMAL`: its
//! commits append to the write-ahead log without syncing it. Each caller then waits in
//! [`GroupCommit::durable`] for an fsync of the log that *started after its commit returned*;
//! while one fsync runs, the commits that arrive queue up and the next fsync covers all of them.
//! The one writer connection (held, not pooled: `held.rs`) also means these writes wait for each
//! other in a fair queue (tokio's semaphore) rather than in SQLite's busy handler, which sleeps
//! and polls. The refresh-token rotation writes through a connection of its own on the calling
//! thread (`inline_write.rs`), but only while it holds that writer, so it takes its turn in the
//! same queue and commits with the same `synchronous = NORMAL`. Every other write keeps the `synchronous = FULL` pool. The log is reopened by path
//! for each fsync, so no descriptor outlives the file SQLite uses. The first failed fsync fails
//! every later request-path write until restart. A committed write is visible to other
//! connections before its fsync ends. Only its own caller can act on what it wrote (a rotated token's successor, a
//! code's tokens) before its answer, and that waits for the fsync; a request that reads it
//! meanwhile and then writes (a replay revoking a family) waits for a later fsync, which
//! covers both.
//!
//! On PostgreSQL a commit is durable when it returns and concurrent commits already share WAL
//! flushes, so the writes take the shared pool and [`GroupCommit::durable`] returns at once.
//!
//! This module must never report a write durable before an fsync that began after the write's
//! commit has finished, and never hand out a connection on which a transaction begun in SQL by
//! a cancelled caller may still be open.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::{Connection, Database};

use crate::held::{Connections, Taken};

/// The connection a request-path write runs on, for as long as the write takes. Hand it to
/// [`GroupCommit::durable`] after the commit: that releases it before waiting for the fsync, so
/// the next write runs meanwhile.
pub(crate) type Writer<'a, DB> = Taken<'a, DB>;

/// The connections request-path writes use, and the wait that makes them durable.
#[derive(Debug)]
pub(crate) struct GroupCommit<DB: Database> {
    /// A pool (PostgreSQL; in-memory SQLite), or on a SQLite file one held connection: not a
    /// one-connection pool, whose ping after every write is a second hand-off to SQLite's worker
    /// thread (`held.rs`).
    writers: Connections<DB>,
    log: Option<Arc<LogSync>>,
}

// By hand: a derive would ask the database type itself to be `Clone`.
impl<DB: Database> Clone for GroupCommit<DB> {
    fn clone(&self) -> Self {
        Self {
            writers: self.writers.clone(),
            log: self.log.clone(),
        }
    }
}

impl<DB: Database> GroupCommit<DB> {
    /// Writes through `pool`, whose commits are durable when they return.
    pub(crate) fn durable_pool(pool: sqlx::Pool<DB>) -> Self {
        Self {
            writers: Connections::Pool(pool),
            log: None,
        }
    }

    /// Writes through one connection opened with `options`, whose commits are durable only
    /// after the write-ahead log at `log_path` is synced.
    pub(crate) async fn syncing(
        options: <DB::Connection as Connection>::Options,
        log_path: PathBuf,
    ) -> crate::Result<Self> {
        Ok(Self {
            writers: Connections::held(options, 1).await?,
            log: Some(Arc::new(LogSync::new(log_path))),
        })
    }

    /// The connection for one request-path write; pass it to [`Self::durable`] after the
    /// commit.
    pub(crate) async fn writer(&self) -> crate::Result<Writer<'_, DB>> {
        self.writers.take().await
    }

    /// Releases `writer`, then returns once everything committed through it is on stable
    /// storage.
    pub(crate) async fn durable(&self, writer: Writer<'_, DB>) -> crate::Result<()> {
        drop(writer);
        self.earlier_writes_durable().await
    }

    /// Returns once every request-path write committed before this call is on stable storage.
    pub(crate) async fn earlier_writes_durable(&self) -> crate::Result<()> {
        match &self.log {
            None => Ok(()),
            Some(log) => log.after_commit().await,
        }
    }

    /// [`Self::durable`] after a statement that changed `rows` rows, and whether it wrote: one
    /// that changed nothing (a replay, a mark already made) has nothing to make durable and
    /// waits for no fsync, so repeating it costs the writer nothing.
    pub(crate) async fn durable_if_wrote(
        &self,
        writer: Writer<'_, DB>,
        rows: u64,
    ) -> crate::Result<bool> {
        drop(writer);
        if rows == 0 {
            return Ok(false);
        }
        self.earlier_writes_durable().await?;
        Ok(true)
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

    /// Closes the pool or the held connection.
    pub(crate) async fn close(&self) {
        self.writers.close().await;
    }
}

/// How the log is synced: [`sync_log`], or in tests a stand-in that can hold an fsync open.
type SyncFn = Arc<dyn Fn(&std::path::Path) -> std::io::Result<()> + Send + Sync>;

/// Coalesced fsyncs of one write-ahead log.
struct LogSync {
    path: PathBuf,
    sync: SyncFn,
    /// Commits that have returned and asked to be made durable.
    committed: AtomicU64,
    /// Every commit counted up to this number is covered by a finished fsync.
    synced: AtomicU64,
    /// fsyncs done (tests read it to see commits share them).
    fsyncs: AtomicU64,
    /// Set by the first failed fsync, for good: on Linux a failed writeback may leave the pages
    /// marked clean, so a later fsync can succeed without the lost frames ever reaching the
    /// disk. From then on no request-path write is acknowledged (as PostgreSQL panics on a
    /// failed fsync rather than retrying it).
    failed: std::sync::atomic::AtomicBool,
    /// One fsync at a time; the waiters queue here in arrival order.
    turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSync")
            .field("path", &self.path)
            .field("committed", &self.committed)
            .field("synced", &self.synced)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn io_error(e: std::io::Error) -> crate::StoreError {
    crate::StoreError::Database(sqlx::Error::Io(e))
}

impl LogSync {
    fn new(path: PathBuf) -> Self {
        Self::with_sync(path, Arc::new(sync_log))
    }

    fn with_sync(path: PathBuf, sync: SyncFn) -> Self {
        Self {
            path,
            sync,
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn refuse_if_failed(&self) -> crate::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(io_error(std::io::Error::other(
                "an earlier fsync of the write-ahead log failed; restart to recover",
            )));
        }
        Ok(())
    }

    async fn after_commit(&self) -> crate::Result<()> {
        // Counted after the commit returned: whoever reads a count at least this high reads it
        // after this commit's log frames were written.
        let ticket = self.committed.fetch_add(1, Ordering::AcqRel) + 1;
        let _turn = self.turn.lock().await;
        self.refuse_if_failed()?;
        if self.synced.load(Ordering::Acquire) >= ticket {
            return Ok(());
        }
        // Read before the fsync starts: every commit counted so far is covered by it.
        let covers = self.committed.load(Ordering::Acquire);
        let (path, sync) = (self.path.clone(), self.sync.clone());
        let done = tokio::task::spawn_blocking(move || sync(&path))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        if let Err(e) = done {
            self.failed.store(true, Ordering::Release);
            tracing::error!(error = %e, log = %self.path.display(),
                "fsync of the write-ahead log failed; request-path writes are refused until restart");
            return Err(io_error(e));
        }
        self.fsyncs.fetch_add(1, Ordering::AcqRel);
        self.synced.fetch_max(covers, Ordering::AcqRel);
        Ok(())
    }
}

/// Syncs the log's contents. The log exists from the first commit until the last connection
/// closes, and the writer's connection stays open while the store is, so a missing log is an
/// error (a wrong path, or a database not in WAL mode), never "nothing to sync".
fn sync_log(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_data()
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
    async fn a_failed_fsync_fails_every_later_write_even_when_a_retry_would_succeed() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let log = LogSync::with_sync(
            PathBuf::from("unused"),
            Arc::new(move |_: &std::path::Path| {
                if counted.fetch_add(1, Ordering::AcqRel) == 0 {
                    Err(std::io::Error::other("EIO"))
                } else {
                    Ok(())
                }
            }),
        );
        assert!(log.after_commit().await.is_err());
        // The pages of the failed writeback may now be marked clean: a retry that "succeeds"
        // proves nothing, so none is made.
        assert!(log.after_commit().await.is_err());
        assert_eq!(
            calls.load(Ordering::Acquire),
            1,
            "no fsync after the failure"
        );
        assert_eq!(log.synced.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_missing_log_is_an_error_not_nothing_to_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogSync::new(dir.path().join("db-wal"));
        assert!(log.after_commit().await.is_err());
    }

    /// The rule itself: a commit that returns while an fsync is running is not covered by it
    /// (that fsync may have passed its frames), so it gets the next one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_during_an_fsync_waits_for_the_next_one() {
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, release_rx) = (
            std::sync::Mutex::new(started_tx),
            std::sync::Mutex::new(release_rx),
        );
        // Every fsync says it started, then waits to be let go: the test decides when each
        // one ends, so what it reads between them is not a race.
        let log = Arc::new(LogSync::with_sync(
            PathBuf::from("unused"),
            Arc::new(move |_: &std::path::Path| {
                started_tx.lock().expect("lock").send(()).expect("send");
                release_rx.lock().expect("lock").recv().expect("recv");
                Ok(())
            }),
        ));
        let started = std::sync::Arc::new(std::sync::Mutex::new(started_rx));
        let wait_started = || {
            let started = started.clone();
            tokio::task::spawn_blocking(move || {
                started.lock().expect("lock").recv().expect("started")
            })
        };
        let a = tokio::spawn({
            let log = log.clone();
            async move { log.after_commit().await }
        });
        wait_started().await.expect("join");
        // Commit b returns while a's fsync runs.
        let b = tokio::spawn({
            let log = log.clone();
            async move { log.after_commit().await }
        });
        while log.committed.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        release_tx.send(()).expect("release a's fsync");
        a.await.expect("join").expect("a durable");
        // b's own fsync has started (it began after b's commit) and is held.
        wait_started().await.expect("join");
        assert_eq!(
            log.synced.load(Ordering::Acquire),
            1,
            "a's fsync covers a only"
        );
        release_tx.send(()).expect("release b's fsync");
        b.await.expect("join").expect("b durable");
        assert_eq!(
            log.fsyncs.load(Ordering::Acquire),
            2,
            "b had an fsync of its own"
        );
        assert_eq!(log.synced.load(Ordering::Acquire), 2);
    }
}
