//! The reads every token request makes (a refresh token with its family, a session by cookie
//! or by id), and where they run: on PostgreSQL and in-memory SQLite through the serving pool;
//! on a SQLite file on the calling thread itself ([`InlineReaders`], rusqlite).
//!
//! Why a second SQLite driver for these reads: sqlx runs each SQLite connection on a worker
//! thread of its own, so every statement is a hand-off to that thread and a wake-up back. A
//! refresh grant made two (the read and the rotation) and spent about half its time in the
//! kernel switching between threads. A read on a file in WAL mode never waits for a writer and
//! takes tens of microseconds, less than the hand-off, so it runs where the request runs. Writes
//! stay on the request path's writer (`group_commit.rs`); the one that also runs on the calling
//! thread, the refresh-token rotation, does so only while it holds that writer
//! (`inline_write.rs`).
//!
//! A read that meets a lock anyway (another process holding the file in exclusive locking mode,
//! the write-ahead log being recovered) is not waited for on the runtime's thread: it is
//! repeated on tokio's blocking pool with the serving busy timeout. Both paths decode rows with
//! the same functions as sqlx's rows ([`Columns`]), so a record has one decoder.
//!
//! This module must never write (its connections are `query_only`), never wait for a lock on a
//! runtime thread, and never open a database file that does not exist.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql};

use crate::{Result, StoreError};

/// How long a read that met a lock waits for it (off the runtime), as the serving pool does.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Idle connections kept for the next reads. Reads on the calling thread never await while they
/// hold one, so no more are in use at once than there are threads running reads.
const MAX_IDLE: usize = 8;

/// A stored row's columns by name, whichever driver read it: the decoders of the records read
/// here take `&dyn Columns`, so sqlx's rows and rusqlite's share them.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<String>;
    fn opt_text(&self, name: &str) -> Result<Option<String>>;
    fn int(&self, name: &str) -> Result<i64>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>>;
    fn blob(&self, name: &str) -> Result<Vec<u8>>;
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>>;
}

macro_rules! sqlx_columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, name: &str) -> Result<String> {
                Ok(sqlx::Row::try_get(self, name)?)
            }
            fn opt_text(&self, name: &str) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, name)?)
            }
            fn int(&self, name: &str) -> Result<i64> {
                Ok(sqlx::Row::try_get(self, name)?)
            }
            fn opt_int(&self, name: &str) -> Result<Option<i64>> {
                Ok(sqlx::Row::try_get(self, name)?)
            }
            fn blob(&self, name: &str) -> Result<Vec<u8>> {
                Ok(sqlx::Row::try_get(self, name)?)
            }
            fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
                Ok(sqlx::Row::try_get(self, name)?)
            }
        }
    };
}

sqlx_columns!(sqlx::sqlite::SqliteRow);
sqlx_columns!(sqlx::postgres::PgRow);

impl Columns for rusqlite::Row<'_> {
    fn text(&self, name: &str) -> Result<String> {
        Ok(self.get(name)?)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name)?)
    }
    fn int(&self, name: &str) -> Result<i64> {
        Ok(self.get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name)?)
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.get(name)?)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(name)?)
    }
}

/// A value bound to a read's `$N` placeholder, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind<'a> {
    Blob(&'a [u8]),
    Text(&'a str),
    Int(i64),
    /// An integer or `NULL`.
    OptInt(Option<i64>),
}

impl Bind<'_> {
    pub(crate) fn owned(self) -> Value {
        match self {
            Self::Blob(b) => Value::Blob(b.to_vec()),
            Self::Text(t) => Value::Text(t.to_owned()),
            Self::Int(i) | Self::OptInt(Some(i)) => Value::Integer(i),
            Self::OptInt(None) => Value::Null,
        }
    }
}

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Blob(b) => ToSqlOutput::from(*b),
            Self::Text(t) => ToSqlOutput::from(*t),
            Self::Int(i) | Self::OptInt(Some(i)) => ToSqlOutput::from(*i),
            Self::OptInt(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// Decodes the one row a request-path read found.
pub(crate) type Decode<R> = fn(&dyn Columns) -> Result<R>;

/// Where the request path's reads run.
#[derive(Debug)]
pub(crate) enum RequestReads<DB: sqlx::Database> {
    /// The serving pool (PostgreSQL; an in-memory SQLite database, which only the pool that
    /// created it can see).
    Pool(sqlx::Pool<DB>),
    /// A SQLite file, read on the calling thread.
    Inline(Arc<InlineReaders>),
}

impl<DB: sqlx::Database> Clone for RequestReads<DB> {
    fn clone(&self) -> Self {
        match self {
            Self::Pool(pool) => Self::Pool(pool.clone()),
            Self::Inline(inline) => Self::Inline(inline.clone()),
        }
    }
}

impl<DB: sqlx::Database> RequestReads<DB> {
    /// Closes the idle inline connections (the pool is the store's to close).
    pub(crate) fn close(&self) {
        if let Self::Inline(inline) = self {
            inline.close();
        }
    }
}

/// Connections to one SQLite file for reads on the calling thread.
pub(crate) struct InlineReaders {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for InlineReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineReaders")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl InlineReaders {
    /// Reads of the file at `path`, which must exist: one connection is opened now, so a file
    /// that cannot be read fails here rather than at the first request.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let first = connect(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![first]),
        })
    }

    /// The one row `sql` finds with `binds`, decoded, or `None`. Runs on the calling thread; a
    /// read that meets a lock is repeated on the blocking pool (see the module's comment).
    pub(crate) async fn row<R: Send + 'static>(
        self: &Arc<Self>,
        sql: &'static str,
        binds: &[Bind<'_>],
        decode: Decode<R>,
    ) -> Result<Option<R>> {
        let conn = self.take()?;
        match query_row(&conn, sql, rusqlite::params_from_iter(binds), decode) {
            Err(StoreError::Sqlite(e)) if is_lock(&e) => {}
            done => {
                self.give_back(conn);
                return done;
            }
        }
        let owned: Vec<Value> = binds.iter().map(|b| b.owned()).collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let read = conn
                .busy_timeout(LOCK_WAIT)
                .map_err(StoreError::from)
                .and_then(|()| query_row(&conn, sql, rusqlite::params_from_iter(&owned), decode));
            // Given back only once it fails fast again.
            if conn.busy_timeout(Duration::ZERO).is_ok() {
                this.give_back(conn);
            }
            read
        })
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    fn take(&self) -> Result<Connection> {
        match lock(&self.idle).pop() {
            Some(conn) => Ok(conn),
            None => connect(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    fn close(&self) {
        lock(&self.idle).clear();
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        lock(&self.idle).len()
    }
}

/// A connection holder's lock. A panic elsewhere while it was held leaves what it guards
/// usable: whole connections, none of them inside a transaction (`inline_write.rs` rolls back
/// or drops its connection before it lets go).
pub(crate) fn lock<T>(held: &Mutex<T>) -> MutexGuard<'_, T> {
    held.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A read-only connection to an existing file that fails at once on a lock.
fn connect(path: &Path) -> Result<Connection> {
    let conn = open_existing(path)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// A connection for use on the calling thread (readers here, the rotation's writer in
/// `inline_write.rs`): to a file that must already exist (never created), failing at once on a
/// lock.
pub(crate) fn open_existing(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::ZERO)?;
    Ok(conn)
}

fn query_row<R>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: Decode<R>,
) -> Result<Option<R>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn is_lock(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The lock tests' referee: `release` (letting go of a lock) runs on another thread only once a
/// ticker task on the calling runtime has ticked five times, or after 3 s if it never does. A
/// wait for the lock that blocks the runtime's thread stops the ticker, and
/// [`Released::ticked_first`] then says so.
#[cfg(test)]
pub(crate) fn release_once_the_runtime_ticks(release: impl FnOnce() + Send + 'static) -> Released {
    use std::sync::atomic::{AtomicU32, Ordering};
    let ticks = Arc::new(AtomicU32::new(0));
    let releaser = {
        let ticks = ticks.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while ticks.load(Ordering::Relaxed) < 5 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let ticked = ticks.load(Ordering::Relaxed) >= 5;
            release();
            ticked
        })
    };
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ticks.fetch_add(1, Ordering::Relaxed);
        }
    });
    Released { releaser, ticker }
}

#[cfg(test)]
pub(crate) struct Released {
    releaser: std::thread::JoinHandle<bool>,
    ticker: tokio::task::JoinHandle<()>,
}

#[cfg(test)]
impl Released {
    /// Whether the runtime ticked before the lock was released (stops the ticker).
    pub(crate) fn ticked_first(self) -> bool {
        self.ticker.abort();
        self.releaser.join().expect("released")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_name(row: &dyn Columns) -> Result<String> {
        row.text("name")
    }

    const BY_ID: &str = "SELECT name FROM t WHERE id = $1";

    fn file_with_a_row(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("db");
        let conn = Connection::open(&path).expect("test setup");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT NOT NULL); \
             INSERT INTO t VALUES ('a', 'alice');",
        )
        .expect("test setup");
        path
    }

    #[tokio::test]
    async fn a_row_is_read_and_decoded_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reads = Arc::new(InlineReaders::open(&file_with_a_row(&dir)).expect("open"));
        let found = reads
            .row(BY_ID, &[Bind::Text("a")], decode_name)
            .await
            .expect("read");
        assert_eq!(found.as_deref(), Some("alice"));
        let missing = reads
            .row(BY_ID, &[Bind::Text("b")], decode_name)
            .await
            .expect("read");
        assert_eq!(missing, None);
        assert_eq!(reads.idle(), 1, "one connection served both reads");
    }

    #[tokio::test]
    async fn a_missing_file_is_refused_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.db");
        assert!(InlineReaders::open(&path).is_err());
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn the_connections_never_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reads = Arc::new(InlineReaders::open(&file_with_a_row(&dir)).expect("open"));
        let refused = reads
            .row(
                "INSERT INTO t VALUES ($1, 'mallory') RETURNING name",
                &[Bind::Text("m")],
                decode_name,
            )
            .await;
        assert!(matches!(refused, Err(StoreError::Sqlite(_))), "{refused:?}");
        let absent = reads
            .row(BY_ID, &[Bind::Text("m")], decode_name)
            .await
            .expect("read");
        assert_eq!(absent, None);
    }

    #[tokio::test]
    async fn a_decoding_failure_is_an_error_and_the_connection_stays_usable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reads = Arc::new(InlineReaders::open(&file_with_a_row(&dir)).expect("open"));
        fn decode_int(row: &dyn Columns) -> Result<i64> {
            row.int("name")
        }
        assert!(reads
            .row(BY_ID, &[Bind::Text("a")], decode_int)
            .await
            .is_err());
        assert_eq!(reads.idle(), 1);
        let found = reads
            .row(BY_ID, &[Bind::Text("a")], decode_name)
            .await
            .expect("read");
        assert_eq!(found.as_deref(), Some("alice"));
    }

    /// A file held in exclusive locking mode by another connection refuses readers. The read
    /// waits for it on the blocking pool, so the runtime's one thread keeps running other tasks
    /// meanwhile: the lock is released only once a ticker task on that thread has ticked (or,
    /// if it never does, after a deadline, which the test then reports), and the read succeeds
    /// once the lock is gone.
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_meets_a_lock_waits_off_the_runtime_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with_a_row(&dir);
        let reads = Arc::new(InlineReaders::open(&path).expect("open"));
        let holder = Connection::open(&path).expect("holder");
        holder
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE; \
                 UPDATE t SET name = 'alice2' WHERE id = 'a'; COMMIT;",
            )
            .expect("take the file");
        let released = release_once_the_runtime_ticks(move || drop(holder));
        let found = reads
            .row(BY_ID, &[Bind::Text("a")], decode_name)
            .await
            .expect("read after the lock went");
        let ticked_while_locked = released.ticked_first();
        assert_eq!(found.as_deref(), Some("alice2"));
        assert!(
            ticked_while_locked,
            "the runtime's thread was blocked while the read waited for the lock"
        );
        assert_eq!(reads.idle(), 1, "the connection came back after the wait");
    }
}
