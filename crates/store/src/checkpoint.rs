//! Checkpoints of a SQLite file's write-ahead log from a background task, so the request path's
//! writer rarely runs one.
//!
//! A checkpoint copies the pages the log holds back into the database file and syncs it. SQLite
//! runs one inside whichever commit takes the log past `wal_autocheckpoint` pages: on the request
//! path that is a commit made in the one writer's turn (`group_commit.rs`; the rotation's, on the
//! calling thread, `inline_write.rs`), and every request-path write queued behind it waits for
//! the copy and the sync. This task instead asks for a passive checkpoint every
//! [`EVERY`] on a pooled connection, on SQLite's worker thread, while the writer goes on. A
//! passive checkpoint never waits for a writer or a reader. The log starts over only when a
//! commit finds it wholly copied, so under steady writes it still grows to `wal_autocheckpoint`
//! pages; the writer's own checkpoint there finds most of it already copied.
//!
//! This module must never hold a store alive: the task ends once every clone of the store that
//! started it is gone, or its pool is closed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::SqlitePool;

/// How often the log is checkpointed in the background.
pub(crate) const EVERY: Duration = Duration::from_millis(250);

/// Keeps the task running while held (the store holds it; its clones share it).
#[derive(Debug, Clone)]
pub(crate) struct Running {
    _alive: Arc<()>,
}

/// Starts checkpointing `pool`'s database every `every`.
pub(crate) fn start(pool: SqlitePool, every: Duration) -> Running {
    let alive = Arc::new(());
    let held: Weak<()> = Arc::downgrade(&alive);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if held.strong_count() == 0 || pool.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %e, "background checkpoint of the write-ahead log failed");
            }
        }
    });
    Running { _alive: alive }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    /// A pool on a new WAL file whose commits never checkpoint by themselves (the limit is
    /// far above what the test writes), holding one table, with its log copied in.
    async fn pool_on_a_new_file(dir: &tempfile::TempDir) -> (std::path::PathBuf, SqlitePool) {
        let path = dir.path().join("db");
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .pragma("wal_autocheckpoint", "100000"),
            )
            .await
            .expect("test setup");
        sqlx::query("CREATE TABLE t (v TEXT NOT NULL)")
            .execute(&pool)
            .await
            .expect("test setup");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await
            .expect("test setup");
        (path, pool)
    }

    /// Writes new pages: in the log only, until a checkpoint copies them into the file.
    async fn write_pages(pool: &SqlitePool) {
        for _ in 0..50 {
            sqlx::query("INSERT INTO t VALUES (?)")
                .bind("x".repeat(1_000))
                .execute(pool)
                .await
                .expect("write");
        }
    }

    fn file_size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).expect("db file").len()
    }

    /// While held, the task copies the log into the file; once dropped (the last store clone
    /// gone), it stops, and holds nothing open: the pool it was given closes as usual.
    #[tokio::test]
    async fn checkpoints_run_while_held_and_stop_once_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, pool) = pool_on_a_new_file(&dir).await;
        let running = start(pool.clone(), Duration::from_millis(10));
        let before = file_size(&path);
        write_pages(&pool).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while file_size(&path) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no background checkpoint while held"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        drop(running);
        // The task notices at its next tick; give it many.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stopped = file_size(&path);
        write_pages(&pool).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            file_size(&path),
            stopped,
            "a checkpoint ran after the task was dropped"
        );
        tokio::time::timeout(Duration::from_secs(10), pool.close())
            .await
            .expect("the pool closes: the task holds no connection");
    }
}
