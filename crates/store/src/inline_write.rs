//! The refresh-token rotation's write on a SQLite file, run on the calling thread through
//! rusqlite instead of sqlx's worker thread ([`InlineWriter`]).
//!
//! Why: with the reads already on the calling thread (`request_reads.rs`), the rotation was the
//! last hand-off of a refresh grant to a sqlx worker thread and back. It is a few statements on
//! a connection with `synchronous = NORMAL`: appends to the write-ahead log, no fsync (the
//! caller then waits in `GroupCommit::durable` for a shared one, as before). Done here, it costs
//! less than the two thread switches around it.
//!
//! The connection writes only while its caller holds the request path's one writer
//! (`group_commit.rs`): every [`InlineWriter::run`] takes that writer as proof, so request-path
//! writes still take turns in tokio's fair queue and never meet each other in SQLite's busy
//! handler. Another connection (an admin write on the serving pool) can still hold SQLite's
//! write lock: the connection fails at once on it, rolls back whatever it began, and the whole
//! script is repeated on tokio's blocking pool with the serving busy timeout. The wait never
//! happens on a runtime thread.
//!
//! This module must never wait for a lock on a runtime thread, never leave a transaction open
//! on its connection after a call returns, and never open a database file that does not exist.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, ToSql};

use crate::group_commit::Writer;
use crate::request_reads::{is_lock, lock, open_existing, Bind, Columns, LOCK_WAIT};
use crate::{Result, StoreError};

/// Decodes the `n`th row (counted over all the script's statements) a script returned.
pub(crate) type DecodeNth<T> = fn(usize, &dyn Columns) -> Result<T>;

/// One write connection to a SQLite file, used on the calling thread.
pub(crate) struct InlineWriter {
    path: PathBuf,
    checkpoint_pages: u32,
    /// `None` once a rollback failed: the next call opens a new connection rather than reuse
    /// one that may still be inside a transaction.
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for InlineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl InlineWriter {
    /// Writes to the file at `path`, which must exist and be in WAL mode; the connection is
    /// opened now, so a file that cannot be written fails here rather than at the first request.
    /// Its commits checkpoint the log past `checkpoint_pages` pages, as every other
    /// connection's.
    pub(crate) fn open(path: &Path, checkpoint_pages: u32) -> Result<Self> {
        let conn = connect(path, checkpoint_pages)?;
        Ok(Self {
            path: path.to_path_buf(),
            checkpoint_pages,
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Runs `steps` in order, each statement's `$N` bound to `binds[N - 1]`, and returns every
    /// row they produced, decoded by `decode`. The steps begin and end their own transaction
    /// (`BEGIN IMMEDIATE` ... `COMMIT`); a step that fails rolls the whole script back. Runs on
    /// the calling thread, or on the blocking pool if the write lock is taken (see the
    /// module's comment). `_turn` is the request path's writer, held for the whole call.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        _turn: &Writer<'_, sqlx::Sqlite>,
        steps: &'static [&'static str],
        binds: &[Bind<'_>],
        decode: DecodeNth<T>,
    ) -> Result<Vec<T>> {
        if let Some(done) = self.try_here(steps, binds, decode) {
            return done;
        }
        let owned: Vec<Value> = binds.iter().map(|b| b.owned()).collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = lock(&this.conn);
            this.attempt(&mut slot, steps, &owned, decode, LOCK_WAIT)
        })
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    /// The script on the calling thread, or `None` if it must wait: for the write lock, or
    /// for the connection, held only by an earlier caller's repetition still running on the
    /// blocking pool (its caller went away).
    fn try_here<T>(
        &self,
        steps: &[&str],
        binds: &[Bind<'_>],
        decode: DecodeNth<T>,
    ) -> Option<Result<Vec<T>>> {
        let mut slot = match self.conn.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        match self.attempt(&mut slot, steps, binds, decode, Duration::ZERO) {
            Err(StoreError::Sqlite(e)) if is_lock(&e) => None,
            done => Some(done),
        }
    }

    /// Closes the connection (a later call would open a new one, but none comes: the writer's
    /// turn it needs is closed with the store).
    pub(crate) fn close(&self) {
        *lock(&self.conn) = None;
    }

    /// The integer value of `PRAGMA name` on the connection.
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &str) -> i64 {
        let conn = lock(&self.conn);
        conn.as_ref()
            .expect("open")
            .pragma_query_value(None, name, |row| row.get(0))
            .expect("pragma")
    }

    /// One try of the script with `wait` as the busy timeout, leaving the connection out of
    /// any transaction (or dropped, if it could not be rolled back).
    fn attempt<T, B: ToSql>(
        &self,
        slot: &mut Option<Connection>,
        steps: &[&str],
        binds: &[B],
        decode: DecodeNth<T>,
        wait: Duration,
    ) -> Result<Vec<T>> {
        if slot.is_none() {
            *slot = Some(connect(&self.path, self.checkpoint_pages)?);
        }
        let Some(conn) = slot.as_ref() else {
            return Err(StoreError::Corrupt("write connection missing".into()));
        };
        if !wait.is_zero() {
            conn.busy_timeout(wait)?;
        }
        let mut done = run_steps(conn, steps, binds, decode);
        let mut rolled_back = true;
        if !conn.is_autocommit() {
            rolled_back = conn.execute_batch("ROLLBACK").is_ok();
            if done.is_ok() {
                done = Err(StoreError::Corrupt(
                    "a write script left its transaction open".into(),
                ));
            }
        }
        let fail_fast = wait.is_zero() || conn.busy_timeout(Duration::ZERO).is_ok();
        if !rolled_back || !fail_fast {
            *slot = None;
        }
        done
    }
}

/// A write connection to an existing file: commits append to the log unsynced (the caller
/// waits for the group's fsync), foreign keys enforced as on every other connection, and a lock
/// fails at once.
fn connect(path: &Path, checkpoint_pages: u32) -> Result<Connection> {
    let conn = open_existing(path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint_pages)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "{} is in journal mode {mode}, not WAL",
            path.display()
        )));
    }
    Ok(conn)
}

/// The statements of `steps` one after another (each prepared once per connection), every
/// `$N` bound to `binds[N - 1]`, and the rows they return, decoded in order.
fn run_steps<T, B: ToSql>(
    conn: &Connection,
    steps: &[&str],
    binds: &[B],
    decode: DecodeNth<T>,
) -> Result<Vec<T>> {
    let mut rows_out = Vec::new();
    for sql in steps {
        let mut stmt = conn.prepare_cached(sql)?;
        for index in 1..=stmt.parameter_count() {
            let bind = stmt
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| binds.get(n))
                .ok_or_else(|| StoreError::Corrupt(format!("no value for a parameter of {sql}")))?;
            stmt.raw_bind_parameter(index, bind)?;
        }
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            rows_out.push(decode(rows_out.len(), row)?);
        }
    }
    Ok(rows_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_commit::GroupCommit;
    use crate::request_reads::release_once_the_runtime_ticks;

    const INSERT_AND_COUNT: &[&str] = &[
        "BEGIN IMMEDIATE",
        "INSERT INTO t (id, name) VALUES ($2, $1)",
        "SELECT count(*) AS n FROM t",
        "COMMIT",
    ];

    fn count(_nth: usize, row: &dyn Columns) -> Result<i64> {
        row.int("n")
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        writer: Arc<InlineWriter>,
        turns: GroupCommit<sqlx::Sqlite>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        Connection::open(&path)
            .expect("test setup")
            .execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT NOT NULL); \
                 CREATE TABLE child (parent TEXT NOT NULL REFERENCES t (id));",
            )
            .expect("test setup");
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .expect("test setup");
        Fixture {
            writer: Arc::new(InlineWriter::open(&path, 1_000).expect("open")),
            path,
            _dir: dir,
            turns: GroupCommit::durable_pool(pool),
        }
    }

    /// Inserts (`id`, `name`) in a transaction of its own; the rows in `t` afterwards.
    async fn insert(
        f: &Fixture,
        turn: &Writer<'_, sqlx::Sqlite>,
        name: &str,
        id: &str,
    ) -> Result<Vec<i64>> {
        f.writer
            .run(
                turn,
                INSERT_AND_COUNT,
                &[Bind::Text(name), Bind::Text(id)],
                count,
            )
            .await
    }

    fn names(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).expect("reader");
        let mut stmt = conn
            .prepare("SELECT name FROM t ORDER BY id")
            .expect("prepare");
        let names = stmt
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<String>>>()
            .expect("rows");
        names
    }

    #[tokio::test]
    async fn a_script_binds_by_number_commits_and_returns_its_rows() {
        let f = fixture().await;
        let turn = f.turns.writer().await.expect("turn");
        let rows = insert(&f, &turn, "alice", "a").await.expect("run");
        assert_eq!(rows, vec![1]);
        let rows = insert(&f, &turn, "bob", "b").await.expect("run");
        assert_eq!(rows, vec![2]);
        assert_eq!(
            names(&f.path),
            ["alice", "bob"],
            "committed, visible elsewhere"
        );
    }

    /// A step that fails (here a duplicate key after an insert that succeeded) takes the
    /// whole script back, is reported as the store's conflict, and leaves the connection out of
    /// any transaction for the next call.
    #[tokio::test]
    async fn a_failed_step_rolls_the_whole_script_back() {
        let f = fixture().await;
        let turn = f.turns.writer().await.expect("turn");
        const TWO_INSERTS: &[&str] = &[
            "BEGIN IMMEDIATE",
            "INSERT INTO t (id, name) VALUES ('c', 'carol')",
            "INSERT INTO t (id, name) VALUES ($1, 'dup')",
            "COMMIT",
        ];
        f.writer
            .run(&turn, TWO_INSERTS, &[Bind::Text("x")], count)
            .await
            .expect("first");
        let failed = f
            .writer
            .run(&turn, TWO_INSERTS, &[Bind::Text("y")], count)
            .await
            .map_err(StoreError::from_inline_write);
        assert!(matches!(failed, Err(StoreError::Conflict)), "{failed:?}");
        // 'carol' again fails on its own key before 'y' is inserted: nothing of it stays.
        assert_eq!(names(&f.path), ["carol", "dup"]);
        let rows = insert(&f, &turn, "erin", "e")
            .await
            .expect("the connection is usable again");
        assert_eq!(rows, vec![3]);
    }

    #[tokio::test]
    async fn a_script_that_leaves_its_transaction_open_is_refused_and_rolled_back() {
        let f = fixture().await;
        let turn = f.turns.writer().await.expect("turn");
        const NO_COMMIT: &[&str] = &[
            "BEGIN IMMEDIATE",
            "INSERT INTO t (id, name) VALUES ('o', $1)",
        ];
        let refused = f
            .writer
            .run(&turn, NO_COMMIT, &[Bind::Text("open")], count)
            .await;
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{refused:?}"
        );
        assert!(names(&f.path).is_empty(), "nothing committed");
        insert(&f, &turn, "frank", "f")
            .await
            .expect("a new transaction begins");
        assert_eq!(names(&f.path), ["frank"]);
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced_and_a_missing_bind_is_an_error() {
        let f = fixture().await;
        let turn = f.turns.writer().await.expect("turn");
        const ORPHAN: &[&str] = &["INSERT INTO child (parent) VALUES ($1)"];
        let orphan = f
            .writer
            .run(&turn, ORPHAN, &[Bind::Text("nobody")], count)
            .await
            .map_err(StoreError::from_inline_write);
        assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");
        const SECOND: &[&str] = &["INSERT INTO t (id, name) VALUES ($1, $2)"];
        let unbound = f.writer.run(&turn, SECOND, &[Bind::Text("g")], count).await;
        assert!(
            matches!(unbound, Err(StoreError::Corrupt(_))),
            "{unbound:?}"
        );
        assert!(names(&f.path).is_empty());
    }

    #[test]
    fn a_missing_file_is_refused_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.db");
        assert!(InlineWriter::open(&path, 1_000).is_err());
        assert!(!path.exists());
    }

    /// Another connection holds the write lock. The script waits for it on the blocking pool,
    /// so the runtime's one thread keeps running other tasks meanwhile: the lock is released
    /// only once a ticker on that thread has ticked (or, if it never does, after a deadline,
    /// which the test then reports), and the script then commits.
    #[tokio::test(flavor = "current_thread")]
    async fn a_script_that_meets_the_write_lock_waits_off_the_runtime_thread() {
        let f = fixture().await;
        let holder = Connection::open(&f.path).expect("holder");
        holder
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('h', 'holder');")
            .expect("take the write lock");
        let released = release_once_the_runtime_ticks(move || {
            holder.execute_batch("COMMIT").expect("release");
        });
        let turn = f.turns.writer().await.expect("turn");
        let rows = insert(&f, &turn, "after", "z")
            .await
            .expect("written once the lock went");
        let ticked_while_locked = released.ticked_first();
        assert_eq!(rows, vec![2]);
        assert!(
            ticked_while_locked,
            "the runtime's thread was blocked while the script waited for the lock"
        );
        assert_eq!(names(&f.path), ["holder", "after"]);
        // Back to failing fast: a lock taken now is met at once, not waited for here.
        let conn = lock(&f.writer.conn);
        let conn = conn.as_ref().expect("kept");
        let holder = Connection::open(&f.path).expect("holder");
        holder.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let started = std::time::Instant::now();
        assert!(conn.execute_batch("BEGIN IMMEDIATE").is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
