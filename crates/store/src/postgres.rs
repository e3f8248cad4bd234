//! The scale-out backend: PostgreSQL shared by any number of token-service nodes.
//!
//! Nodes learn of each other's revocation-log appends through `LISTEN/NOTIFY`: a trigger on
//! `revocations` (migration 0004) notifies [`NOTIFY_CHANNEL`] when an append commits, and the
//! head follower of every subscribed store listens on a pooled connection, reconnecting with
//! backoff when it is lost. This module must never trust a notification's payload as the head:
//! channels are shared by every schema of the database, so a notification only prompts a read
//! of this schema's head row.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};

use crate::group_commit::GroupCommit;
use crate::head::{HeadFeed, HeadSink};
use crate::request_reads::RequestReads;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel the `revocations` trigger notifies; the payload is the new entry's position.
pub const NOTIFY_CHANNEL: &str = "portcullis_revocations";

/// First and longest wait between attempts to re-establish the listening connection.
const INITIAL_LISTEN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_LISTEN_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Request-path writes: the same pool (PostgreSQL shares WAL flushes itself).
    group: GroupCommit<sqlx::Postgres>,
    /// Request-path reads: the same pool.
    readers: RequestReads<sqlx::Postgres>,
    feed: Arc<HeadFeed>,
}

impl PgStore {
    /// A pooled connection idle at least this long is pinged before it is handed out; one used
    /// more recently is not.
    pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);

    /// Connects to `url` and migrates the database.
    pub async fn connect(url: &str) -> crate::Result<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connects with every session's `search_path` set to `schema` (created if missing), so
    /// independent installations, or parallel tests, can share one database. Sessions carry the
    /// schema as their `application_name`, so `pg_stat_activity` tells installations apart.
    pub async fn connect_in_schema(url: &str, schema: &str) -> crate::Result<Self> {
        if !schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(crate::StoreError::Corrupt(format!(
                "schema name {schema:?} must be lowercase letters, digits and underscores"
            )));
        }
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&pool)
            .await?;
        pool.close().await;
        Self::connect_with(
            options
                .options([("search_path", schema)])
                .application_name(schema),
        )
        .await
    }

    async fn connect_with(options: PgConnectOptions) -> crate::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out by default: a second round trip per
            // statement. Only a connection that sat idle (a server restart or failover may have
            // closed it meanwhile) is pinged; a failed ping discards it and another is used.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= Self::PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_release(|conn, _| Box::pin(Self::fit_for_reuse(conn)))
            .connect_with(options)
            .await?;
        Self::migrate(
            &pool,
            &MIGRATOR,
            "SELECT to_regclass('_sqlx_migrations') IS NOT NULL",
        )
        .await?;
        Ok(Self {
            group: GroupCommit::durable_pool(pool.clone()),
            readers: RequestReads::Pool(pool.clone()),
            pool,
            feed: Arc::new(HeadFeed::new()),
        })
    }

    /// Whether a connection coming back to the pool may be handed out again: not if a
    /// transaction is still open on it. sqlx's `BEGIN` leaves one behind when its future is
    /// dropped while the server runs it (a request cancelled at that moment): its rollback guard
    /// checks a transaction depth it has not raised yet. Reused, such a connection would run
    /// every later statement inside a transaction nobody commits, holding its locks, its writes
    /// acknowledged and then lost. It is closed instead, which rolls the transaction back.
    ///
    /// The check is one statement in the pool's own task, after the request has its answer:
    /// inside a transaction block the transaction began before this statement; outside one,
    /// both times are this statement's own (PostgreSQL: "the same value during the first
    /// command of a transaction"). A pool connection that turns over on every release would
    /// show as a new backend per statement: `pg_pool.rs` holds that it does not.
    async fn fit_for_reuse(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
        // The simple query protocol: with the extended one the statement time is that of the
        // last message (`Execute`), later than the transaction's start even outside a block.
        // (A query without arguments goes as one simple `Query` message.)
        let row = sqlx::Executor::fetch_one(
            &mut *conn,
            "SELECT transaction_timestamp() <> statement_timestamp()",
        )
        .await?;
        let in_block: bool = sqlx::Row::try_get(&row, 0)?;
        if in_block {
            tracing::warn!("closing a pooled connection left inside a transaction");
        }
        Ok(!in_block)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Follows the head: notifications from other nodes, and the fallback poll, side by side (each
/// in its own future, so neither is ever cancelled half-way through reading a message).
async fn follow_head(pool: PgPool, sink: HeadSink) {
    let poll = sink.poll(|| {
        let pool = pool.clone();
        async move { read_revocation_head(&pool).await }
    });
    tokio::join!(listen(&pool, &sink), poll);
}

/// Reads this schema's head and publishes it.
async fn refresh(pool: &PgPool, sink: &HeadSink) {
    match read_revocation_head(pool).await {
        Ok(seq) => sink.publish(seq),
        Err(e) => tracing::warn!(error = %e, "could not read the revocation log head"),
    }
}

async fn listen(pool: &PgPool, sink: &HeadSink) {
    let mut backoff = INITIAL_LISTEN_BACKOFF;
    loop {
        match listen_until_lost(pool, sink, &mut backoff).await {
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(
                error = %e,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "revocation notifications interrupted; the head is still polled"
            ),
            Ok(()) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_LISTEN_BACKOFF);
    }
}

/// Listens until the connection fails for good. `LISTEN` is in place before the head is read,
/// so an append is either seen by the read or notified after it.
async fn listen_until_lost(
    pool: &PgPool,
    sink: &HeadSink,
    backoff: &mut Duration,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    *backoff = INITIAL_LISTEN_BACKOFF;
    refresh(pool, sink).await;
    loop {
        // With eager reconnection (the default) `None` means the connection was lost and is
        // listening again: anything notified in between is gone, so read the head.
        let Some(first) = listener.try_recv().await? else {
            refresh(pool, sink).await;
            continue;
        };
        let mut newest = first.payload().parse::<i64>().ok();
        while let Some(n) = listener.next_buffered() {
            newest = match (newest, n.payload().parse::<i64>().ok()) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        // A payload at or below the known head (this node's own append, or another schema's
        // log) needs no read; an unreadable one does.
        if newest.is_none_or(|seq| seq > sink.current()) {
            refresh(pool, sink).await;
        }
    }
}

crate::sql::impl_sql_store!(PgStore, PgRow, "postgres");
crate::sql_tenants::impl_tenant_store!(PgStore, PgRow);
crate::sql_keys::impl_key_store!(PgStore, PgRow);
crate::sql_audit::impl_audit_store!(PgStore, PgRow);
crate::sql_audit_chain::impl_audit_chain_store!(PgStore, PgRow);
crate::sql_clients::impl_client_store!(PgStore, PgRow);
crate::sql_revocations::impl_revocation_store!(PgStore, PgRow, follow_head);
crate::sql_api_keys::impl_api_key_store!(PgStore, PgRow);
crate::sql_users::impl_user_store!(PgStore, PgRow);
crate::sql_sign_in::impl_sign_in_store!(PgStore, PgRow);

impl PgStore {
    /// The request path's own connections, closed by `Store::close` (here: none beyond the
    /// pool, which `close` closes itself).
    fn close_request_connections(&self) {
        self.readers.close();
    }
}

impl PgStore {
    /// [`crate::RefreshTokenStore::rotate_refresh_token`] on PostgreSQL, one statement per
    /// round trip (the protocol runs one prepared statement at a time): the family row first,
    /// whose lock orders this rotation against a revocation and against another node rotating
    /// the same token, then the token and its successor.
    async fn rotate_refresh_token_in_dialect(
        &self,
        presented: &[u8],
        successor: &RefreshTokenRecord,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<RotateOutcome> {
        let mut writer = self.group.writer().await?;
        let mut tx = writer.begin().await?;
        // The family row first: its lock orders this rotation against a revocation and
        // against another node rotating the same token (without a new idle deadline the
        // CASE keeps the old one: a comparison with NULL is not true).
        let family: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_families SET idle_expires_at = CASE \
             WHEN idle_expires_at < $1 THEN $1 ELSE idle_expires_at END \
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE digest = $2) \
             AND revoked_at IS NULL RETURNING id",
        )
        .bind(idle_expires_at.map(Timestamp::as_millis))
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(family) = family else {
            let known: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM refresh_tokens WHERE digest = $1",
            )
            .bind(presented)
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(if known.is_some() {
                RotateOutcome::FamilyRevoked
            } else {
                RotateOutcome::NotFound
            });
        };
        if family != successor.family_id.as_str() {
            tx.rollback().await?;
            return Err(StoreError::Corrupt(format!(
                "successor of a token of family {family} names family {}",
                successor.family_id
            )));
        }
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1, successor_digest = $2 \
             WHERE digest = $3 AND rotated_at IS NULL",
        )
        .bind(successor.created_at.as_millis())
        .bind(&successor.digest)
        .bind(presented)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            insert_refresh_token_in(&mut tx, successor).await?;
            tx.commit().await?;
            self.group.durable(writer).await?;
            return Ok(RotateOutcome::Rotated);
        }
        let row = sqlx::query(
            "SELECT rotated_at, successor_digest FROM refresh_tokens WHERE digest = $1",
        )
        .bind(presented)
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        let rotated_at: Option<i64> = row.try_get("rotated_at")?;
        let successor_digest: Option<Vec<u8>> = row.try_get("successor_digest")?;
        match (rotated_at, successor_digest) {
            (Some(at), Some(successor_digest)) => Ok(RotateOutcome::AlreadyRotated {
                successor_digest,
                rotated_at: Timestamp::from_millis(at),
            }),
            _ => Err(corrupt(
                "refresh token rotated without a successor",
                &family,
            )),
        }
    }
}
crate::sql_pushed::impl_pushed_request_store!(PgStore, PgRow);
crate::sql_device::impl_device_store!(PgStore, PgRow);
crate::sql_webhooks::impl_webhook_store!(PgStore, PgRow);
crate::sql_logout::impl_logout_store!(PgStore, PgRow);
crate::sql_branding::impl_branding_store!(PgStore, PgRow);
crate::sql_mtls::impl_ca_set_store!(PgStore, PgRow);
crate::sql_lifetime::impl_lifetime_store!(PgStore, PgRow);
crate::sql_web_origins::impl_web_origin_store!(PgStore);
crate::sql_federation::impl_federation_store!(PgStore, PgRow);
crate::sql_dpop::impl_dpop_store!(PgStore);
crate::sql_tenant_oauth::impl_tenant_oauth_policy_store!(PgStore);
// PostgreSQL: the export reads one snapshot, whatever other nodes commit meanwhile.
crate::export::impl_transfer!(
    PgStore,
    PgRow,
    Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
);
