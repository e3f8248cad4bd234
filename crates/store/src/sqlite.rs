//! The embedded default backend: one SQLite file in WAL mode.
//!
//! The revocation log head moves with this process's own appends (published after commit); the
//! follower only polls the head row, which also notices another process writing the same file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use crate::head::{HeadFeed, HeadSink};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    feed: Arc<HeadFeed>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> crate::Result<Self> {
        Self::open_with(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a `sqlite://` URL.
    pub async fn open_url(url: &str) -> crate::Result<Self> {
        Self::open_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open_with(options: SqliteConnectOptions) -> crate::Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Self::migrate(
            &pool,
            &MIGRATOR,
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '_sqlx_migrations')",
        )
        .await?;
        Ok(Self {
            pool,
            feed: Arc::new(HeadFeed::new()),
        })
    }

    /// The newest schema version this binary knows.
    pub fn supported_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

async fn follow_head(pool: SqlitePool, sink: HeadSink) {
    sink.poll(|| {
        let pool = pool.clone();
        async move { read_revocation_head(&pool).await }
    })
    .await;
}

crate::sql::impl_sql_store!(SqliteStore, SqliteRow, "sqlite", follow_head);
