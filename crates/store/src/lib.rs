//! Portcullis storage: narrow async traits and two backends behind them.
//!
//! * [`SqliteStore`]: the embedded default (WAL mode, `synchronous=FULL`).
//! * [`PgStore`]: PostgreSQL, for running many token-service nodes.
//!
//! Both implement [`Store`] from a single SQL body (see `sql.rs`); dialect differences live in
//! the per-backend migration directories, not in runtime branches. Migrations are embedded in the
//! binary and applied on open; a database whose schema is newer than the binary is refused.
//!
//! Besides storing, a store tells its process when the revocation log grows
//! ([`RevocationStore::watch_revocation_head`]): after its own appends at once, after another
//! node's through PostgreSQL `LISTEN/NOTIFY`, and through a slow poll as the safety net
//! (`head.rs`).
//!
//! This crate stores and fetches. It never decides whether a credential is valid, never sees a
//! plaintext secret (only digests and sealed blobs), and never reads the clock: callers pass time.

mod error;
pub mod export;
mod head;
mod model;
mod postgres;
mod sql;
mod sqlite;

pub use error::StoreError;
pub use head::DEFAULT_POLL_INTERVAL as DEFAULT_REVOCATION_POLL_INTERVAL;
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::{FileCheck, SqliteStore};

use async_trait::async_trait;
use portcullis_core::audit::AuditEvent;
use portcullis_core::signing::KeyState;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait TenantStore {
    /// Fails with [`StoreError::Conflict`] if the id is taken.
    async fn create_tenant(&self, tenant: &NewTenant, now: Timestamp) -> Result<Tenant>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// Fails with [`StoreError::NotFound`] if there is no such tenant.
    async fn set_tenant_status(
        &self,
        id: &TenantId,
        status: TenantStatus,
        now: Timestamp,
    ) -> Result<Tenant>;
}

#[async_trait]
pub trait SigningKeyStore {
    async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>>;
    /// Inserts a key. Returns `false`, changing nothing, if the key is `active` and another
    /// active key already exists (two nodes racing on first start).
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<bool>;
    /// Replaces a key's sealed private half if it is still sealed under `expected_kek_id`
    /// (compare-and-swap, so a concurrent re-encryption is never overwritten). Returns whether
    /// the row changed.
    async fn reseal_signing_key(
        &self,
        kid: &str,
        expected_kek_id: &str,
        new_kek_id: &str,
        sealed_private_key: &[u8],
    ) -> Result<bool>;
    /// Makes the pending key `kid` the active one and, in the same transaction, retires the
    /// previously active key, publishing it until `retired_publish_until`. Returns `false`,
    /// changing nothing, if `kid` is not pending (another node did it first).
    async fn activate_signing_key(
        &self,
        kid: &str,
        now: Timestamp,
        retired_publish_until: Timestamp,
    ) -> Result<bool>;
    /// Marks a key revoked (unpublished at once). Returns its state before, or `None` if there
    /// is no such key or it was already revoked.
    async fn revoke_signing_key(&self, kid: &str, now: Timestamp) -> Result<Option<KeyState>>;
}

#[async_trait]
pub trait AdminCredentialStore {
    /// Fails with [`StoreError::Conflict`] on a duplicate id, [`StoreError::NotFound`] if the
    /// tenant does not exist.
    async fn insert_admin_credential(&self, cred: &AdminCredentialRecord) -> Result<()>;
    async fn get_admin_credential(&self, id: &str) -> Result<Option<AdminCredentialRecord>>;
    async fn list_admin_credentials(&self, tenant: &TenantId)
        -> Result<Vec<AdminCredentialRecord>>;
    /// Revokes a credential of `tenant`. Returns `false` if there is no such unrevoked credential
    /// in that tenant.
    async fn revoke_admin_credential(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<bool>;
    async fn count_active_global_admins(&self) -> Result<u64>;
    async fn touch_admin_credential(&self, id: &str, now: Timestamp) -> Result<()>;
}

#[async_trait]
pub trait AuditStore {
    /// Appends a batch in one transaction. Events whose id is already stored are skipped, so a
    /// retried batch does not duplicate.
    async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<()>;
    /// Newest first.
    async fn query_audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>>;
}

#[async_trait]
pub trait AlertStore {
    /// Folds findings into the live (not resolved) alert for the same rule, tenant, subject and
    /// shadow flag: adds `count`, moves `last_seen` forward (never back) and keeps the newest
    /// evidence; or opens a new alert with `alert.id` if there is none. Returns the alert after.
    async fn upsert_alert(&self, alert: &AlertUpsert) -> Result<AlertRecord>;
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>>;
    /// `tenant`: `None` finds the alert in any tenant (global admins); `Some` only in that one.
    async fn get_alert(&self, tenant: Option<&TenantId>, id: &str) -> Result<Option<AlertRecord>>;
    /// Moves an alert from `from` to `to` (compare-and-swap on the status), recording who and
    /// when. Returns `false`, changing nothing, if there is no such alert in `tenant` with
    /// status `from`. Which moves are allowed is `AlertStatus::may_become`'s to say.
    async fn set_alert_status(
        &self,
        tenant: Option<&TenantId>,
        id: &str,
        from: portcullis_core::alert::AlertStatus,
        to: portcullis_core::alert::AlertStatus,
        by: &str,
        now: Timestamp,
    ) -> Result<bool>;
}

#[async_trait]
pub trait ApiKeyStore {
    /// Fails with [`StoreError::Conflict`] on a duplicate id, [`StoreError::NotFound`] if the
    /// tenant does not exist.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// Inserts many keys in one transaction, all or none (multi-row statements, so an import or
    /// the benchmark's million keys take seconds, not hours of per-row commits). Fails like
    /// [`Self::insert_api_key`] if any key would.
    async fn insert_api_keys(&self, keys: &[ApiKeyRecord]) -> Result<()>;
    /// Lookup by the id embedded in a presented key, whatever its tenant: the caller decides.
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    /// A tenant's keys, oldest first.
    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        filter: &ApiKeyFilter,
    ) -> Result<Vec<ApiKeyRecord>>;
    /// Writes the mutable attributes (name, description, scopes, audiences, IP allowlist, rate
    /// limit, metadata) of `key.id` in `key.tenant` and, in the same transaction, appends an
    /// `api_key_changed` entry to the revocation log. Returns `false` if there is no such key.
    async fn update_api_key_attributes(&self, key: &ApiKeyRecord, now: Timestamp) -> Result<bool>;
    /// Disables (`Some(now)`) or enables (`None`) an unrevoked key and appends an
    /// `api_key_changed` entry in the same transaction. Returns `false` if there is no such
    /// unrevoked key in the tenant.
    async fn set_api_key_disabled(
        &self,
        tenant: &TenantId,
        id: &str,
        disabled_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool>;
    /// Revokes an unrevoked key and appends an `api_key` entry in the same transaction. Returns
    /// `false` if there is none with that id in the tenant.
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Revokes every unrevoked key of `owner` in the tenant, appending one `api_key` entry per
    /// key in the same transaction; returns the ids revoked.
    async fn revoke_api_keys_by_owner(
        &self,
        tenant: &TenantId,
        owner: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<String>>;
    /// In one transaction: marks `old_id` replaced by `new_key.id`, working until
    /// `overlap_ends_at`, inserts `new_key`, and appends an `api_key_changed` entry for `old_id`
    /// (created at `new_key.created_at`). Returns `false`, changing nothing, if `old_id` is not
    /// an unrevoked, not yet rotated key of `new_key.tenant`.
    async fn rotate_api_key(
        &self,
        old_id: &str,
        overlap_ends_at: Timestamp,
        new_key: &ApiKeyRecord,
    ) -> Result<bool>;
    /// Records uses in one transaction; `last_used_at` never moves backwards.
    async fn record_api_key_uses(&self, uses: &[ApiKeyUse]) -> Result<()>;
    async fn get_api_key_policy(&self, tenant: &TenantId) -> Result<Option<ApiKeyPolicyRecord>>;
    /// Fails with [`StoreError::NotFound`] if the tenant does not exist.
    async fn put_api_key_policy(
        &self,
        tenant: &TenantId,
        policy: &ApiKeyPolicyRecord,
        now: Timestamp,
    ) -> Result<()>;
}

#[async_trait]
pub trait ResourceServerStore {
    /// Fails with [`StoreError::Conflict`] if the tenant already has this audience (or the id is
    /// taken), [`StoreError::NotFound`] if the tenant does not exist.
    async fn create_resource_server(&self, rs: &ResourceServer) -> Result<()>;
    async fn get_resource_server(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ResourceServer>>;
    async fn find_resource_server_by_audience(
        &self,
        tenant: &TenantId,
        audience: &str,
    ) -> Result<Option<ResourceServer>>;
    async fn list_resource_servers(&self, tenant: &TenantId) -> Result<Vec<ResourceServer>>;
    /// Lookup by the globally unique id, whatever its tenant (an introspection caller names no
    /// tenant): the caller decides.
    async fn find_resource_server(&self, id: &str) -> Result<Option<ResourceServer>>;
    /// Adds `secret` to the tenant's resource server `secret.resource_server_id` and, in the same
    /// transaction, makes every older secret that is still valid at `old_expires_at` expire then.
    /// Returns `false`, changing nothing, if the tenant has no such resource server.
    async fn rotate_resource_server_secret(
        &self,
        tenant: &TenantId,
        secret: &ResourceServerSecretRecord,
        old_expires_at: Timestamp,
    ) -> Result<bool>;
    /// Every secret of a resource server, newest first (expired ones included).
    async fn list_resource_server_secrets(
        &self,
        resource_server_id: &str,
    ) -> Result<Vec<ResourceServerSecretRecord>>;
    /// Records that a resource-server secret was used at `now` (never moves backwards).
    async fn touch_resource_server_secret(&self, secret_id: &str, now: Timestamp) -> Result<()>;
}

#[async_trait]
pub trait ClientStore {
    /// Inserts a client and its first secret (if any) in one transaction.
    async fn create_client(
        &self,
        client: &OAuthClient,
        secret: Option<&ClientSecretRecord>,
    ) -> Result<()>;
    /// Looks a client up by its globally unique id (the token endpoint does not know the tenant).
    async fn get_client(&self, id: &str) -> Result<Option<OAuthClient>>;
    async fn list_clients(&self, tenant: &TenantId) -> Result<Vec<OAuthClient>>;
    /// Returns `false` if the tenant has no such client.
    async fn set_client_status(
        &self,
        tenant: &TenantId,
        id: &str,
        status: ClientStatus,
        now: Timestamp,
    ) -> Result<bool>;
    /// Every secret of a client, newest first (expired ones included).
    async fn list_client_secrets(&self, client_id: &str) -> Result<Vec<ClientSecretRecord>>;
    /// Adds `secret` and, in the same transaction, makes every older secret that is still valid
    /// at `old_expires_at` expire then. Returns `false`, changing nothing, if the tenant has no
    /// such client.
    async fn rotate_client_secret(
        &self,
        tenant: &TenantId,
        secret: &ClientSecretRecord,
        old_expires_at: Timestamp,
    ) -> Result<bool>;
    /// Records that a client (and the secret it used, if any) authenticated at `now`.
    async fn touch_client(
        &self,
        client_id: &str,
        secret_id: Option<&str>,
        now: Timestamp,
    ) -> Result<()>;
    /// Records a client-assertion `jti` until `expires_at`. Returns `false` if it was already
    /// recorded and has not expired (a replay). Expired records are pruned on the way.
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
}

#[async_trait]
pub trait RevocationStore {
    /// Appends to the revocation log and returns the entry with its position. Positions are
    /// assigned under one row lock, so they are gapless and visible in order.
    async fn append_revocation(&self, r: &NewRevocation, now: Timestamp)
        -> Result<RevocationEntry>;
    /// Entries after position `after`, oldest first, at most `limit`.
    async fn revocations_after(&self, after: i64, limit: u32) -> Result<Vec<RevocationEntry>>;
    /// The position of the newest committed entry (0 while the log is empty). Every entry at
    /// or before it is visible.
    async fn revocation_head(&self) -> Result<i64>;
    /// The entries with `after < seq <= through` that `range` selects, oldest first. The log is
    /// gapless, so a range of positions is a page whatever the filters leave out.
    async fn revocations_in_range(&self, range: &RevocationRange) -> Result<Vec<RevocationEntry>>;
    /// The newest log position this process knows of: raised right after this store's own
    /// appends commit, after other nodes' appends where the backend can tell (PostgreSQL
    /// `LISTEN/NOTIFY`), and by a poll of the head row every [`DEFAULT_REVOCATION_POLL_INTERVAL`]
    /// (or as set on the store) in case a notification is lost. It only moves forward, never
    /// past a committed entry, and starts at 0 until the first read: a hint to fetch with
    /// [`Self::revocations_in_range`], not the log itself.
    fn watch_revocation_head(&self) -> tokio::sync::watch::Receiver<i64>;
    /// The entries that name one of `candidates` (a token's
    /// [`portcullis_core::revocation::TokenIdentity::candidates`]), oldest first. Whether they
    /// revoke the token is for [`portcullis_core::revocation::RevocationSet`] to say: storage
    /// only finds them, so introspection and every verifier decide by one rule.
    async fn revocations_naming(
        &self,
        candidates: &[portcullis_core::revocation::Candidate<'_>],
    ) -> Result<Vec<RevocationEntry>>;
}

/// A connection pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (idle or in use).
    pub size: u32,
    /// Open connections waiting for a query.
    pub idle: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

impl PoolStats {
    /// Connections running a query (or held by a transaction or the revocation-head follower).
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    TenantStore
    + SigningKeyStore
    + AdminCredentialStore
    + AuditStore
    + AlertStore
    + ApiKeyStore
    + ResourceServerStore
    + ClientStore
    + RevocationStore
    + export::TransferStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// A round trip to the database, for readiness checks.
    async fn ping(&self) -> Result<()>;
    fn backend(&self) -> &'static str;
    /// The connection pool now, for metrics.
    fn pool_stats(&self) -> PoolStats;
    /// Closes the pool, waiting for in-flight queries.
    async fn close(&self);
}
