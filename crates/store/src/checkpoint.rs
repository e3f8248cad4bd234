//! Checkpoints of a SQLite file's write-ahead log from a background task, so the request path's
//! writer rarely runs one.
//!
//! A checkpoint copies the pages the log holds back into the database file and syncs it. SQLite
//! runs one inside whichever commit takes the log past `wal_autocheckpoint` pages: on the request
//! path that is the one writer's commit (`group_commit.rs`), and every rotation queued behind it
//! waits for the copy and the sync. This task instead asks for a passive checkpoint every
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
