//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Connections to the file: the serving pool (`synchronous = FULL`, every commit synced), the
//! request-path writer of [`GroupCommit`] (one connection, commits synced in groups) and the
//! request path's read-only connections, used on the calling thread (`request_reads.rs`).
//!
//! The revocation log head moves with this process's own appends (published after commit); the
//! follower only polls the head row, which also notices another process writing the same file.
//!
//! Online backups ([`SqliteStore::backup_to`]) are taken with `VACUUM INTO`: copying the file of
//! a running server misses whatever still sits in the write-ahead log. This module must never
//! overwrite an existing backup file.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use crate::checkpoint;
use crate::group_commit::GroupCommit;
use crate::head::{HeadFeed, HeadSink};
use crate::inline_write::InlineWriter;
use crate::request_reads::{InlineReaders, RequestReads};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Request-path writes: one writer connection, fsyncs shared (`group_commit.rs`).
    group: GroupCommit<sqlx::Sqlite>,
    /// Request-path reads (a refresh token, a session): on the calling thread for a file, not
    /// through the pool (`request_reads.rs`).
    readers: RequestReads<sqlx::Sqlite>,
    feed: Arc<HeadFeed>,
    /// On a file, the refresh-token rotation's connection, used on the calling thread
    /// (`inline_write.rs`).
    inline_writer: Option<Arc<InlineWriter>>,
    /// Checkpoints of a file's write-ahead log off the request path (`checkpoint.rs`).
    _checkpoints: Option<checkpoint::Running>,
}

/// The write-ahead log is copied back into the database file (a checkpoint) by whichever
/// connection's commit takes it past this many pages (about 40 MB; SQLite's default is 1,000),
/// and in the background meanwhile (`checkpoint.rs`). A checkpoint run by a commit makes the
/// commit wait for the copy and a sync of the file; with the default, the request path's
/// writer ran one every few hundred refresh grants, and every rotation queued behind it waited.
/// The cost: a log up to about 40 MB on disk, and a longer log to replay after a crash.
pub(crate) const WAL_CHECKPOINT_PAGES: u32 = 10_000;

/// Options of the pools that serve requests. sqlx pings a connection before handing it out by
/// default: for a database in this process that is a round trip to the connection's worker
/// thread on every statement, and it proves nothing a network peer could have broken. A worker
/// that died fails its next statement instead.
fn serving_pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().test_before_acquire(false)
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
            .busy_timeout(Duration::from_secs(5))
            .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
        // Migrations run on a connection of their own, closed before the serving pool opens.
        // A SQLite connection that read the schema before another connection changed it keeps
        // the old column list for `SELECT *` until it steps the statement, and sqlx keeps the
        // columns it saw at prepare time: after `ALTER TABLE ... ADD COLUMN` (0009) such a
        // connection fails every read of that table. Opening the pool after the migration
        // leaves no connection with an old schema.
        let migration = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let migrated = Self::migrate(
            &migration,
            &MIGRATOR,
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '_sqlx_migrations')",
        )
        .await;
        migration.close().await;
        migrated?;
        let pool = serving_pool_options()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        let (group, readers, inline_writer) = Self::request_path(&pool, options).await?;
        let checkpoints = matches!(readers, RequestReads::Inline(_))
            .then(|| checkpoint::start(pool.clone(), checkpoint::EVERY));
        Ok(Self {
            pool,
            group,
            readers,
            inline_writer,
            feed: Arc::new(HeadFeed::new()),
            _checkpoints: checkpoints,
        })
    }

    /// The request path's connections: the writer, one connection that leaves syncing the
    /// write-ahead log to [`GroupCommit::durable`], and the reads on the calling thread
    /// (`request_reads.rs`). An in-memory database (no file, no log) does both through the
    /// serving pool.
    async fn request_path(
        pool: &SqlitePool,
        options: SqliteConnectOptions,
    ) -> crate::Result<(
        GroupCommit<sqlx::Sqlite>,
        RequestReads<sqlx::Sqlite>,
        Option<Arc<InlineWriter>>,
    )> {
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(pool)
                .await?;
        if file.is_empty() {
            return Ok((
                GroupCommit::durable_pool(pool.clone()),
                RequestReads::Pool(pool.clone()),
                None,
            ));
        }
        // The fsync is of the write-ahead log: a file that did not take WAL mode (a file system
        // without shared memory, say) would leave every write unsynced.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(crate::StoreError::Corrupt(format!(
                "{file} is in journal mode {mode}, not WAL"
            )));
        }
        let readers = RequestReads::Inline(Arc::new(InlineReaders::open(Path::new(&file))?));
        let inline_writer = InlineWriter::open(Path::new(&file), WAL_CHECKPOINT_PAGES)?;
        let group = GroupCommit::syncing(
            options.synchronous(SqliteSynchronous::Normal),
            format!("{file}-wal").into(),
        )
        .await?;
        Ok((group, readers, Some(Arc::new(inline_writer))))
    }

    /// The request path's own connections, closed by `Store::close`: the idle readers and the
    /// rotation's writer (which could no longer write anyway: the writer's turn it needs is
    /// closed with the group).
    fn close_request_connections(&self) {
        self.readers.close();
        if let Some(inline) = &self.inline_writer {
            inline.close();
        }
    }

    /// The newest schema version this binary knows.
    pub fn supported_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Writes a consistent copy of the whole database to `dest`, while other connections keep
    /// reading and writing: `VACUUM INTO` reads in one transaction, so the copy holds every
    /// transaction committed before it started and nothing after, WAL contents included. The
    /// copy is a plain (rollback-journal) database file, mode 0600, fsynced before this returns.
    /// Fails, writing nothing, if `dest` exists.
    pub async fn backup_to(&self, dest: &Path) -> crate::Result<()> {
        let Some(target) = dest.to_str() else {
            return Err(crate::StoreError::Corrupt(format!(
                "backup path {} is not valid UTF-8",
                dest.display()
            )));
        };
        // Created empty and private first (VACUUM INTO accepts an empty file): the copy holds
        // credential digests and sealed keys, and is never readable by others, not even while
        // it is written.
        let created = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
        };
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(crate::StoreError::Conflict)
            }
            Err(e) => return Err(crate::StoreError::Database(sqlx::Error::Io(e))),
        }
        if let Err(e) = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
        {
            let _ = std::fs::remove_file(dest);
            return Err(e.into());
        }
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(())
    }

    /// Checks a database file without changing it (opened read-only, no migrations): SQLite's
    /// `PRAGMA integrity_check`, and the schema version its migrations reached.
    pub async fn check_file(path: &Path) -> crate::Result<FileCheck> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&pool)
            .await?;
        let schema_version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&pool)
                .await?;
        pool.close().await;
        Ok(FileCheck {
            problems: problems.into_iter().filter(|p| p != "ok").collect(),
            schema_version: schema_version.unwrap_or(0),
        })
    }
}

/// What [`SqliteStore::check_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// `PRAGMA integrity_check` findings; empty when the file is sound.
    pub problems: Vec<String>,
    /// The newest migration applied to the file.
    pub schema_version: i64,
}

async fn follow_head(pool: SqlitePool, sink: HeadSink) {
    sink.poll(|| {
        let pool = pool.clone();
        async move { read_revocation_head(&pool).await }
    })
    .await;
}

crate::sql::impl_sql_store!(SqliteStore, SqliteRow, "sqlite");
crate::sql_tenants::impl_tenant_store!(SqliteStore, SqliteRow);
crate::sql_keys::impl_key_store!(SqliteStore, SqliteRow);
crate::sql_audit::impl_audit_store!(SqliteStore, SqliteRow);
crate::sql_audit_chain::impl_audit_chain_store!(SqliteStore, SqliteRow);
crate::sql_clients::impl_client_store!(SqliteStore, SqliteRow);
crate::sql_revocations::impl_revocation_store!(SqliteStore, SqliteRow, follow_head);
crate::sql_api_keys::impl_api_key_store!(SqliteStore, SqliteRow);
crate::sql_users::impl_user_store!(SqliteStore, SqliteRow);
crate::sql_sign_in::impl_sign_in_store!(SqliteStore, SqliteRow);

/// The steps of a refresh-token rotation, and the same steps as one multi-statement query
/// (`ROTATE_AT_ONCE`, for sqlx, which runs every statement of it in one call to the
/// connection's worker thread, binding `$n` across them): one SQL text for both drivers.
macro_rules! rotation_steps {
    ($($step:literal;)*) => {
        const ROTATE_STEPS: &[&str] = &[$($step),*];
        const ROTATE_AT_ONCE: &str = concat!($($step, "; "),*);
    };
}

// The presented token marked used, only if it is unused, of the successor's family, and that
// family is not revoked; the successor inserted only if that changed a row (`changes()`: rows
// changed by the last INSERT, UPDATE or DELETE), and whether it was, as the first row; the
// family's idle deadline moved only if the insert happened and a later deadline is given (`$6`,
// NULL to leave the row alone); then the presented token's state, as the second row.
// `BEGIN IMMEDIATE` to `COMMIT`, so all the writes or none; a rotation that changed nothing
// commits nothing.
rotation_steps! {
    "BEGIN IMMEDIATE";
    "UPDATE refresh_tokens SET rotated_at = $1, successor_digest = $2 \
     WHERE digest = $3 AND rotated_at IS NULL AND family_id = $4 \
       AND EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = $4 AND f.revoked_at IS NULL)";
    "INSERT INTO refresh_tokens (digest, family_id, generation, created_at, rotated_at, \
     successor_digest) SELECT $2, $4, $5, $1, NULL, NULL WHERE changes() = 1";
    "SELECT changes() AS rotated";
    "UPDATE refresh_families SET idle_expires_at = $6 \
     WHERE id = $4 AND changes() = 1 AND idle_expires_at < $6";
    "SELECT t.family_id, t.rotated_at, t.successor_digest, f.revoked_at AS family_revoked_at \
     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.digest = $3";
    "COMMIT";
}

/// A row a rotation returns: first whether it rotated, then the presented token's state.
enum RotationRow {
    Rotated(bool),
    State {
        family_id: String,
        rotated_at: Option<i64>,
        successor_digest: Option<Vec<u8>>,
        family_revoked_at: Option<i64>,
    },
}

fn rotation_row(nth: usize, row: &dyn Columns) -> crate::Result<RotationRow> {
    Ok(if nth == 0 {
        RotationRow::Rotated(row.int("rotated")? == 1)
    } else {
        RotationRow::State {
            family_id: row.text("family_id")?,
            rotated_at: row.opt_int("rotated_at")?,
            successor_digest: row.opt_blob("successor_digest")?,
            family_revoked_at: row.opt_int("family_revoked_at")?,
        }
    })
}

/// What a rotation that did not rotate found (`state`: the presented token's, if it exists).
fn not_rotated(
    state: Option<RotationRow>,
    successor: &RefreshTokenRecord,
) -> crate::Result<RotateOutcome> {
    let Some(RotationRow::State {
        family_id,
        rotated_at,
        successor_digest,
        family_revoked_at,
    }) = state
    else {
        return Ok(RotateOutcome::NotFound);
    };
    if family_id != successor.family_id.as_str() {
        return Err(StoreError::Corrupt(format!(
            "successor of a token of family {family_id} names family {}",
            successor.family_id
        )));
    }
    if family_revoked_at.is_some() {
        return Ok(RotateOutcome::FamilyRevoked);
    }
    match (rotated_at, successor_digest) {
        (Some(at), Some(successor_digest)) => Ok(RotateOutcome::AlreadyRotated {
            successor_digest,
            rotated_at: Timestamp::from_millis(at),
        }),
        _ => Err(StoreError::Corrupt(format!(
            "refresh token of family {family_id} neither rotated nor rotatable"
        ))),
    }
}

impl SqliteStore {
    /// [`crate::RefreshTokenStore::rotate_refresh_token`] in one go on the request path's
    /// writer: on a file, on the calling thread (`inline_write.rs`); in memory, in one call to
    /// the writer's worker thread ([`ROTATE_AT_ONCE`]) instead of one per statement. The
    /// conformance suite holds it to the same outcomes as PostgreSQL's step-by-step form.
    async fn rotate_refresh_token_in_dialect(
        &self,
        presented: &[u8],
        successor: &RefreshTokenRecord,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<RotateOutcome> {
        let mut writer = self.group.writer().await?;
        let rows = match &self.inline_writer {
            Some(inline) => {
                let binds = [
                    Bind::Int(successor.created_at.as_millis()),
                    Bind::Blob(&successor.digest),
                    Bind::Blob(presented),
                    Bind::Text(successor.family_id.as_str()),
                    Bind::Int(successor.generation),
                    Bind::OptInt(idle_expires_at.map(Timestamp::as_millis)),
                ];
                inline
                    .run(&writer, ROTATE_STEPS, &binds, rotation_row)
                    .await
                    .map_err(StoreError::from_inline_write)?
            }
            None => {
                writer.begin_in_sql();
                let rows = sqlx::query(ROTATE_AT_ONCE)
                    .bind(successor.created_at.as_millis())
                    .bind(&successor.digest)
                    .bind(presented)
                    .bind(successor.family_id.as_str())
                    .bind(successor.generation)
                    .bind(idle_expires_at.map(Timestamp::as_millis))
                    .fetch_all(&mut *writer)
                    .await;
                // A statement that failed stopped the call before `COMMIT`: the writer stays
                // marked and is replaced, which rolls the transaction back (`held.rs`), as for
                // a cancelled caller.
                let rows = rows.map_err(StoreError::from_write)?;
                writer.ended_in_sql();
                rows.iter()
                    .enumerate()
                    .map(|(nth, row)| rotation_row(nth, row))
                    .collect::<crate::Result<Vec<_>>>()?
            }
        };
        let mut rows = rows.into_iter();
        match rows.next() {
            Some(RotationRow::Rotated(true)) => {
                self.group.durable(writer).await?;
                Ok(RotateOutcome::Rotated)
            }
            Some(RotationRow::Rotated(false)) => {
                drop(writer);
                not_rotated(rows.next(), successor)
            }
            _ => Err(StoreError::Corrupt("rotation read nothing back".into())),
        }
    }
}
crate::sql_pushed::impl_pushed_request_store!(SqliteStore, SqliteRow);
crate::sql_device::impl_device_store!(SqliteStore, SqliteRow);
crate::sql_webhooks::impl_webhook_store!(SqliteStore, SqliteRow);
crate::sql_logout::impl_logout_store!(SqliteStore, SqliteRow);
crate::sql_branding::impl_branding_store!(SqliteStore, SqliteRow);
crate::sql_mtls::impl_ca_set_store!(SqliteStore, SqliteRow);
crate::sql_lifetime::impl_lifetime_store!(SqliteStore, SqliteRow);
crate::sql_web_origins::impl_web_origin_store!(SqliteStore);
crate::sql_federation::impl_federation_store!(SqliteStore, SqliteRow);
crate::sql_dpop::impl_dpop_store!(SqliteStore);
crate::sql_tenant_oauth::impl_tenant_oauth_policy_store!(SqliteStore);
// SQLite: a deferred read transaction already reads one snapshot.
crate::export::impl_transfer!(SqliteStore, SqliteRow, None::<&str>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DpopStore;
    use portcullis_core::time::Timestamp;

    /// A store on a new file `db` in a new directory (kept alive by the returned guard).
    async fn store_in_a_new_file() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("test setup");
        (dir, store)
    }

    async fn synchronous(conn: impl sqlx::SqliteExecutor<'_>) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(conn)
            .await
            .expect("test setup")
    }

    /// A request cancelled between `BEGIN` and `COMMIT` of a transaction begun in SQL (the
    /// rotation's) leaves it open on the writer; sqlx does not know it exists. The next write
    /// must not run inside it (it would never commit, yet be reported durable).
    #[tokio::test]
    async fn a_writer_left_inside_a_transaction_begun_in_sql_is_replaced_not_reused() {
        let (_dir, store) = store_in_a_new_file().await;
        sqlx::query("CREATE TABLE t (v TEXT NOT NULL)")
            .execute(&store.pool)
            .await
            .expect("test setup");
        {
            let mut abandoned = store.group.writer().await.expect("writer");
            abandoned.begin_in_sql();
            sqlx::query("BEGIN IMMEDIATE; INSERT INTO t VALUES ('abandoned')")
                .execute(&mut *abandoned)
                .await
                .expect("test setup");
            // Dropped here without `COMMIT`, as a cancelled request drops it.
        }
        let mut next = store.group.writer().await.expect("writer");
        sqlx::query("INSERT INTO t VALUES ('next')")
            .execute(&mut *next)
            .await
            .expect("write");
        store.group.durable(next).await.expect("durable");
        let seen: Vec<String> = sqlx::query_scalar("SELECT v FROM t")
            .fetch_all(&store.pool)
            .await
            .expect("read");
        assert_eq!(seen, vec!["next".to_owned()], "committed, and alone");
    }

    /// Checkpoints come every [`WAL_CHECKPOINT_PAGES`] pages on the request path's writer and
    /// on the serving pool alike (a connection with SQLite's default would checkpoint ten times
    /// as often whenever its commit crossed 1,000 pages).
    #[tokio::test]
    async fn every_connection_checkpoints_at_the_same_larger_log() {
        let (_dir, store) = store_in_a_new_file().await;
        async fn pages(conn: impl sqlx::SqliteExecutor<'_>) -> i64 {
            sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(conn)
                .await
                .expect("pragma")
        }
        let writer = pages(&mut *store.group.writer().await.expect("writer")).await;
        assert_eq!(writer, i64::from(WAL_CHECKPOINT_PAGES));
        assert_eq!(pages(&store.pool).await, i64::from(WAL_CHECKPOINT_PAGES));
    }

    /// The log is copied into the database file in the background, long before any commit
    /// takes it to [`WAL_CHECKPOINT_PAGES`] (the only other way a checkpoint would happen here).
    #[tokio::test]
    async fn the_log_is_checkpointed_in_the_background() {
        let (dir, store) = store_in_a_new_file().await;
        let path = dir.path().join("db");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&store.pool)
            .await
            .expect("start from an empty log");
        let before = std::fs::metadata(&path).expect("db file").len();
        let (now, later) = (
            Timestamp::from_millis(1_000),
            Timestamp::from_millis(60_000),
        );
        for i in 0..300 {
            let jti = format!("jti-{i:04}-{}", "x".repeat(40));
            assert!(store
                .record_dpop_jti("jkt", &jti, later, now)
                .await
                .expect("write"));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&path).expect("db file").len() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint copied the new pages into the database file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The rotation commits on its own connection on the calling thread, and still only
    /// through the group: it waits for an fsync of the log that began after its commit
    /// (`synchronous = NORMAL` syncs nothing itself), and one that changed nothing (a replay)
    /// waits for none. Removing the wait from the inline path would acknowledge a rotation a
    /// power loss could undo, and leave the successor the client holds unknown.
    #[tokio::test]
    async fn a_rotation_on_a_file_is_acknowledged_only_after_the_group_fsync() {
        use crate::{NewTenant, RefreshFamilyRecord, RefreshTokenRecord, RefreshTokenStore};
        use crate::{RotateOutcome, TenantStore};
        use portcullis_core::refresh::FamilyId;
        use portcullis_core::tenant::TenantId;
        let (_dir, store) = store_in_a_new_file().await;
        let inline = store.inline_writer.as_ref().expect("a file rotates inline");
        assert_eq!(
            inline.pragma("synchronous"),
            1,
            "NORMAL: the group's fsync is the only one"
        );
        let tenant = TenantId::parse("acme").expect("tenant");
        store
            .create_tenant(
                &NewTenant {
                    id: tenant.clone(),
                    display_name: "Acme".into(),
                },
                Timestamp::from_millis(1),
            )
            .await
            .expect("test setup");
        let family = FamilyId::parse("rtf_00000000000000000000000000000001").expect("family");
        let token = |digest: u8, generation: i64| RefreshTokenRecord {
            digest: vec![digest; 32],
            family_id: family.clone(),
            generation,
            created_at: Timestamp::from_millis(100 + generation),
            rotated_at: None,
            successor_digest: None,
        };
        store
            .create_refresh_family(
                &RefreshFamilyRecord {
                    id: family.clone(),
                    tenant,
                    client_id: portcullis_core::client::ClientId::parse("cl_app").expect("id"),
                    user_id: portcullis_core::user::UserId::parse("usr_00000000000000000000000001")
                        .expect("id"),
                    sid: None,
                    scope: vec!["openid".into()],
                    auth_time: Timestamp::from_millis(100),
                    acr: None,
                    amr: vec!["pwd".into()],
                    created_at: Timestamp::from_millis(100),
                    idle_expires_at: Timestamp::from_millis(5_000),
                    absolute_expires_at: Timestamp::from_millis(50_000),
                    revoked_at: None,
                    revoked_reason: None,
                    dpop_jkt: None,
                    cert_x5t: None,
                },
                &token(0, 0),
            )
            .await
            .expect("test setup");
        let before = store.group.counts();
        let rotated = store
            .rotate_refresh_token(&[0; 32], &token(1, 1), None)
            .await
            .expect("rotate");
        assert_eq!(rotated, RotateOutcome::Rotated);
        let (fsyncs, commits) = store.group.counts();
        assert_eq!(
            commits,
            before.1 + 1,
            "the rotation asked to be made durable"
        );
        assert!(
            fsyncs > before.0,
            "and an fsync covered it before it returned"
        );
        let replayed = store
            .rotate_refresh_token(&[0; 32], &token(2, 1), None)
            .await
            .expect("rotate");
        assert!(
            matches!(replayed, RotateOutcome::AlreadyRotated { .. }),
            "{replayed:?}"
        );
        assert_eq!(
            store.group.counts(),
            (fsyncs, commits),
            "a replay waits for none"
        );
    }

    #[tokio::test]
    async fn request_path_writes_leave_the_fsync_to_group_commit_and_the_rest_keep_full() {
        let (dir, store) = store_in_a_new_file().await;
        assert_eq!(
            synchronous(&store.pool).await,
            2,
            "FULL for every other write"
        );
        assert_eq!(
            synchronous(&mut *store.group.writer().await.expect("writer")).await,
            1,
            "NORMAL for the writer"
        );

        let now = Timestamp::from_millis(1_000);
        let later = Timestamp::from_millis(60_000);
        assert!(store
            .record_dpop_jti("jkt", "a", later, now)
            .await
            .expect("test setup"));
        assert!(!store
            .record_dpop_jti("jkt", "a", later, now)
            .await
            .expect("test setup"));
        // The write waited for an fsync of the log SQLite actually writes (the file the group
        // syncs is the one beside the database); the replay wrote nothing and waited for none.
        let (fsyncs, commits) = store.group.counts();
        assert_eq!(commits, 1);
        assert_eq!(fsyncs, 1);
        let log = store
            .group
            .log_path()
            .expect("a file database syncs its log");
        assert_eq!(
            log.canonicalize().expect("test setup"),
            dir.path()
                .join("db-wal")
                .canonicalize()
                .expect("test setup")
        );
    }
}
