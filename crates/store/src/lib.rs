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

mod audit_chain_model;
mod checkpoint;
mod device_model;
mod error;
pub mod export;
mod federation_model;
mod group_commit;
mod head;
mod held;
mod inline_write;
mod logout_model;
mod model;
pub mod page;
mod postgres;
mod request_reads;
mod scope;
mod sign_in_model;
mod sql;
mod sql_api_keys;
mod sql_audit;
mod sql_audit_chain;
mod sql_branding;
mod sql_clients;
mod sql_device;
mod sql_dpop;
mod sql_federation;
mod sql_keys;
mod sql_lifetime;
mod sql_logout;
mod sql_mtls;
mod sql_pushed;
mod sql_revocations;
mod sql_sign_in;
mod sql_tenant_oauth;
mod sql_tenants;
mod sql_users;
mod sql_web_origins;
mod sql_webhooks;
mod sqlite;
mod webhook_model;

pub use audit_chain_model::*;
pub use device_model::*;
pub use error::StoreError;
pub use federation_model::*;
pub use head::DEFAULT_POLL_INTERVAL as DEFAULT_REVOCATION_POLL_INTERVAL;
pub use logout_model::*;
pub use model::*;
pub use page::{
    Archivable, ArchivedFilter, KeyId, Page, PageKey, PageRequest, DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
};
pub use postgres::PgStore;
pub use scope::TenantScope;
pub use sign_in_model::*;
pub use sqlite::{FileCheck, SqliteStore};
pub use webhook_model::*;

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
    /// A page of tenants, oldest first (`system` first of all).
    async fn list_tenants(
        &self,
        page: &PageRequest,
        archived: ArchivedFilter,
    ) -> Result<Page<Archivable<Tenant>>>;
    /// Fails with [`StoreError::NotFound`] if there is no such tenant, or it is archived (an
    /// archived tenant is never enabled again).
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
    /// A page of signing keys, oldest first (for the admin API; the key manager reads them all).
    async fn page_signing_keys(&self, page: &PageRequest) -> Result<Page<StoredSigningKey>>;
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
    /// A page of the tenant's admin and service credentials, oldest first (revoked included).
    async fn list_admin_credentials(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<AdminCredentialRecord>>;
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
    /// A page of the events the query selects, newest first.
    async fn query_audit_events(&self, query: &AuditQuery) -> Result<Page<AuditEvent>>;
}

/// The audit log's hash chain (`portcullis_core::audit_chain`): appends chain in
/// [`AuditStore::append_audit_events`]; these read it, record checkpoints and prune. This trait
/// must never rewrite a chained event or a checkpoint's position or hash.
#[async_trait]
pub trait AuditChainStore {
    /// The last position and hash (position 0 and zeros before the first chained event).
    async fn audit_chain_head(&self) -> Result<(i64, Vec<u8>)>;
    /// Up to `limit` chained events after position `after`, in position order.
    async fn audit_chain_events(&self, after: i64, limit: u32) -> Result<Vec<ChainedEvent>>;
    /// The lowest chained position still stored, if any.
    async fn audit_chain_first(&self) -> Result<Option<i64>>;
    /// Events written before the chain existed (never chained).
    async fn count_unchained_audit_events(&self) -> Result<u64>;
    /// Records a checkpoint; `false` if one exists at that position already.
    async fn insert_audit_checkpoint(&self, cp: &AuditCheckpoint) -> Result<bool>;
    /// Every checkpoint, in position order.
    async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>>;
    /// Replaces the signature of the checkpoint at `pos` if `from_kid` still signs it (a
    /// compare-and-swap: `false`, changing nothing, otherwise). Only for re-signing after
    /// `from_kid` was revoked; the position and hash never change.
    async fn re_sign_audit_checkpoint(
        &self,
        pos: i64,
        from_kid: &str,
        to_kid: &str,
        signature: &str,
    ) -> Result<bool>;
    /// Deletes chained events up to the checkpoint at `at`, which must exist and have been
    /// created before `before` (that checkpoint stays, to start verification of the rest), and
    /// unchained events that occurred before `before`, in one transaction. `None`, deleting
    /// nothing, if there is no such checkpoint. Which checkpoint may be the new start (one
    /// whose signature verified) is the caller's to decide.
    async fn prune_audit_events(&self, at: i64, before: Timestamp) -> Result<Option<AuditPrune>>;
    /// A page of events oldest first, with their insertion position (`seq`), for export.
    async fn export_audit_events(&self, q: &AuditExportQuery) -> Result<Vec<(i64, AuditEvent)>>;
}

#[async_trait]
pub trait AlertStore {
    /// Folds findings into the live (not resolved) alert for the same rule, tenant, subject and
    /// shadow flag: adds `count`, moves `last_seen` forward (never back) and keeps the newest
    /// evidence; or opens a new alert with `alert.id` if there is none. Returns the alert after.
    async fn upsert_alert(&self, alert: &AlertUpsert) -> Result<AlertRecord>;
    /// A page of the alerts `filter` selects, the most recently opened first (by `first_seen`,
    /// which never changes, so pages hold while alerts keep being updated).
    async fn list_alerts(
        &self,
        filter: &AlertFilter,
        page: &PageRequest,
    ) -> Result<Page<AlertRecord>>;
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

/// Webhook endpoints and their delivery queue (issue 19). Endpoint lookups are scoped by tenant
/// (`system` holds the installation-wide endpoints); the queue is shared by every node, which
/// claim due deliveries under a lease so no two nodes run the same attempt at once.
#[async_trait]
pub trait WebhookStore {
    async fn create_webhook_endpoint(&self, endpoint: &WebhookEndpointRecord) -> Result<()>;
    /// A page of `tenant`'s endpoints, the most recently created first.
    async fn list_webhook_endpoints(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpointRecord>>;
    async fn get_webhook_endpoint(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<WebhookEndpointRecord>>;
    /// Deletes the endpoint and its deliveries. `false` if `tenant` has no such endpoint.
    async fn delete_webhook_endpoint(&self, tenant: &TenantId, id: &str) -> Result<bool>;
    /// Replaces the sealed secret. `false` if `tenant` has no such endpoint.
    async fn set_webhook_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        kek_id: &str,
        sealed_secret: &[u8],
        now: Timestamp,
    ) -> Result<bool>;
    /// Every endpoint, for re-sealing under a new KEK.
    async fn all_webhook_endpoints(&self) -> Result<Vec<WebhookEndpointRecord>>;
    /// Re-seals one secret if it is still sealed by `old_kek` (compare-and-swap).
    async fn reseal_webhook_secret(
        &self,
        id: &str,
        old_kek: &str,
        new_kek: &str,
        sealed_secret: &[u8],
    ) -> Result<bool>;
    /// The endpoints that receive `tenant`'s alerts: its own and the installation's.
    async fn webhook_endpoints_for(&self, tenant: &TenantId) -> Result<Vec<WebhookEndpointRecord>>;
    /// Queues deliveries (all or nothing).
    async fn enqueue_webhook_deliveries(&self, deliveries: &[WebhookDeliveryRecord]) -> Result<()>;
    /// Claims up to `limit` pending deliveries due at `now` whose lease is free or expired: sets
    /// the lease to `owner` until `lease_until` and counts the attempt. A row is claimed by one
    /// caller only, however many nodes ask at once.
    async fn claim_webhook_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookDeliveryRecord>>;
    /// Records an attempt's outcome and frees the lease, if `owner` still holds it. `false`
    /// (nothing changed) if the lease was lost.
    async fn finish_webhook_attempt(
        &self,
        id: &str,
        owner: &str,
        outcome: &AttemptOutcome,
        http_status: Option<u16>,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool>;
    /// A page of deliveries, the most recently queued first.
    async fn list_webhook_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDeliveryRecord>>;
    /// `endpoint_tenant`: `None` finds it for any endpoint (global admins).
    async fn get_webhook_delivery(
        &self,
        endpoint_tenant: Option<&TenantId>,
        id: &str,
    ) -> Result<Option<WebhookDeliveryRecord>>;
    /// Moves a dead delivery back to pending, due at `now`, with its attempts reset. `false` if
    /// there is no such dead delivery (in `endpoint_tenant`'s endpoints, when given).
    async fn redeliver_webhook(
        &self,
        endpoint_tenant: Option<&TenantId>,
        id: &str,
        now: Timestamp,
    ) -> Result<bool>;
}

/// Retention of what the detectors leave behind (issue 19): resolved alerts and delivered
/// webhook deliveries past their time. Open and acknowledged alerts, pending deliveries and the
/// dead-letter list are never pruned.
#[async_trait]
pub trait AlertRetentionStore {
    /// Deletes alerts resolved before `before`, and delivered webhook deliveries finished before
    /// it. Returns how many of each.
    async fn prune_alerts(&self, before: Timestamp) -> Result<(u64, u64)>;
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
    /// The tenant's key `id`; another tenant's key is not found (the tenant is in the query).
    async fn get_tenant_api_key(&self, tenant: &TenantId, id: &str)
        -> Result<Option<ApiKeyRecord>>;
    /// A page of a tenant's keys, oldest first.
    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        filter: &ApiKeyFilter,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>>;
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
    /// Disables the key only if it is enabled and unrevoked, and appends an `api_key_changed`
    /// entry in the same transaction: the compare-and-swap a policy sweep uses, so two nodes
    /// sweeping at once disable a key once. Returns `false` if no enabled key was changed.
    async fn disable_api_key_if_enabled(
        &self,
        tenant: &TenantId,
        id: &str,
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
    /// The tenant's resource server, archived or not (for the admin API).
    async fn get_resource_server(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<ResourceServer>>;
    /// The tenant's live resource server for `audience`; an archived one is not found (no token
    /// is issued for its audience any more).
    async fn find_resource_server_by_audience(
        &self,
        tenant: &TenantId,
        audience: &str,
    ) -> Result<Option<ResourceServer>>;
    /// A page of the tenant's resource servers, oldest first.
    async fn list_resource_servers(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
        archived: ArchivedFilter,
    ) -> Result<Page<Archivable<ResourceServer>>>;
    /// Lookup by the globally unique id, whatever its tenant (an introspection caller names no
    /// tenant): the caller decides. An archived resource server is not found (its secrets stop
    /// working).
    async fn find_resource_server(&self, id: &str) -> Result<Option<ResourceServer>>;
    /// Adds `secret` to the tenant's resource server `secret.resource_server_id` and, in the same
    /// transaction, makes every older secret that is still valid at `old_expires_at` expire then.
    /// Returns `false`, changing nothing, if the tenant has no such live resource server.
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
    /// The tenant's client `id`; another tenant's client is not found (the tenant is in the
    /// query).
    async fn get_tenant_client(&self, tenant: &TenantId, id: &str) -> Result<Option<OAuthClient>>;
    /// A page of the tenant's clients, oldest first.
    async fn list_clients(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
        archived: ArchivedFilter,
    ) -> Result<Page<Archivable<OAuthClient>>>;
    /// Writes the mutable registration of `client.id` in `client.tenant`: name, grant types,
    /// scopes, audiences, token lifetime, introspection, redirect and post-logout redirect URIs,
    /// web origins and first party; `updated_at` becomes `now`. The id, tenant, types,
    /// authentication method, keys, status and secrets never change here. Returns `false`,
    /// changing nothing, if the tenant has no such client or it is archived (an archived
    /// client's registration never changes).
    async fn update_client(&self, client: &OAuthClient, now: Timestamp) -> Result<bool>;
    /// Returns `false` if the tenant has no such client, or it is archived (an archived client
    /// stays disabled).
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
    /// such live (unarchived) client.
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
    /// recorded and has not expired (a replay). Other expired records stay until
    /// [`Self::prune_assertion_jtis`].
    async fn record_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Removes every recorded client-assertion id expired at `now`; returns how many.
    async fn prune_assertion_jtis(&self, now: Timestamp) -> Result<u64>;
}

#[async_trait]
pub trait UserStore {
    /// Fails with [`StoreError::Conflict`] if the tenant already has a user with the same
    /// normalised username or email (or the id is taken), [`StoreError::NotFound`] if the tenant
    /// does not exist.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<UserRecord>>;
    /// By normalised username, within the tenant.
    async fn find_user_by_username(
        &self,
        tenant: &TenantId,
        username: &Username,
    ) -> Result<Option<UserRecord>>;
    /// By normalised email, within the tenant.
    async fn find_user_by_email(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Option<UserRecord>>;
    /// A page of a tenant's users matching `filter`, oldest first.
    async fn list_users(
        &self,
        tenant: &TenantId,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<UserRecord>>;
    /// Writes `user`'s username, email, email-verified flag and profile, and sets `updated_at` to
    /// `now`. Returns `false` if the tenant has no such user; fails with
    /// [`StoreError::Conflict`] if the new username or email belongs to another user.
    async fn update_user(&self, user: &UserRecord, now: Timestamp) -> Result<bool>;
    /// Returns `false` if the tenant has no such user.
    async fn set_user_status(
        &self,
        tenant: &TenantId,
        id: &UserId,
        status: UserStatus,
        now: Timestamp,
    ) -> Result<bool>;
    /// Stores a new password hash (a PHC string, which carries its parameters). Returns `false`
    /// if the tenant has no such user.
    async fn set_user_password(
        &self,
        tenant: &TenantId,
        id: &UserId,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Records a sign-in (never moves backwards).
    async fn record_user_login(
        &self,
        tenant: &TenantId,
        id: &UserId,
        now: Timestamp,
    ) -> Result<bool>;
    /// Deletes the user and its one-time tokens in one transaction. Returns `false` if the tenant
    /// has no such user. Sessions and refresh families are not in this store's reach (no foreign
    /// key): the service revokes them.
    async fn delete_user(&self, tenant: &TenantId, id: &UserId) -> Result<bool>;
    /// Stores a one-time token and, in the same transaction, removes the user's earlier unused
    /// tokens of the same purpose (only the newest link works) and expired tokens of any user.
    /// Fails with [`StoreError::NotFound`] if the user does not exist.
    async fn insert_user_token(&self, token: &UserTokenRecord, now: Timestamp) -> Result<()>;
    /// A token that could be used now: of this purpose, unused and unexpired at `now`. Reads
    /// only (the page checks the new password against the user before using the link, so a
    /// refused password does not spend it); [`Self::consume_user_token`] still decides.
    async fn find_user_token(
        &self,
        digest: &[u8],
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<UserTokenRecord>>;
    /// Uses a token: in one conditional update, marks it used if it has this purpose, is unused
    /// and has not expired at `now`, and returns it. `None` (changing nothing) otherwise, so of
    /// two concurrent consumers exactly one succeeds.
    async fn consume_user_token(
        &self,
        digest: &[u8],
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Option<UserTokenRecord>>;
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

/// What archiving found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// Archived now, with the revocation-log entry appended in the same transaction (none for a
    /// resource server: no log entry names an audience).
    Archived(Option<RevocationEntry>),
    /// It was archived before; nothing changed.
    AlreadyArchived,
    /// The tenant has no such object; nothing changed.
    NotFound,
}

/// Archiving tenants, clients and resource servers: final, and each in one transaction with the
/// revocations it implies. The object's row stays (its id is never reused) and is hidden from
/// lists (unless asked for) and from the token service.
#[async_trait]
pub trait ArchiveStore {
    /// Disables the tenant for good, records it archived and appends `revocation` (a `tenant`
    /// entry: its tokens issued until now) in one transaction.
    async fn archive_tenant(
        &self,
        id: &TenantId,
        by: Option<&str>,
        revocation: &NewRevocation,
        now: Timestamp,
    ) -> Result<ArchiveOutcome>;
    /// Disables the tenant's client for good, expires its secrets at `now`, records it archived
    /// and appends `revocation` (a `client` entry: its tokens issued until now) in one
    /// transaction.
    async fn archive_client(
        &self,
        tenant: &TenantId,
        id: &str,
        by: Option<&str>,
        revocation: &NewRevocation,
        now: Timestamp,
    ) -> Result<ArchiveOutcome>;
    /// Expires the tenant's resource server's secrets at `now` and records it archived in one
    /// transaction: its audience is then unknown to issuance and it cannot introspect. Its
    /// audience stays reserved in the tenant.
    async fn archive_resource_server(
        &self,
        tenant: &TenantId,
        id: &str,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<ArchiveOutcome>;
    /// When the object was archived, or `None` if it is live (or unknown).
    async fn archived_at(&self, kind: ArchivedKind, id: &str) -> Result<Option<Timestamp>>;
}

/// Sign-in sessions. Revocations append `session` entries (and `family` entries for the
/// session's refresh-token families) to the revocation log in the same transaction, so a
/// verifier learns of a sign-out as surely as the store does. `token_lifetime` is the longest
/// access-token lifetime: an entry may be forgotten that long after the session or family could
/// last have issued a token.
#[async_trait]
pub trait SessionStore {
    /// Fails with [`StoreError::Conflict`] on a duplicate digest or id, [`StoreError::NotFound`]
    /// if the tenant does not exist.
    async fn insert_session(&self, s: &SessionRecord) -> Result<()>;
    /// By the digest of the cookie secret, whatever its state: the caller decides.
    async fn get_session(&self, digest: &[u8]) -> Result<Option<SessionRecord>>;
    async fn get_session_by_id(
        &self,
        tenant: &TenantId,
        sid: &str,
    ) -> Result<Option<SessionRecord>>;
    /// [`Self::get_session_by_id`] with the status of the session's user (`None`: no such user
    /// in the tenant), in one read: what a code redemption checks.
    async fn get_session_with_user_status(
        &self,
        tenant: &TenantId,
        sid: &str,
    ) -> Result<Option<(SessionRecord, Option<portcullis_core::user::UserStatus>)>>;
    /// Records activity: `last_seen_at` and `idle_expires_at` move forward only, on an
    /// unrevoked session. Returns whether it was found unrevoked.
    async fn touch_session(
        &self,
        digest: &[u8],
        last_seen_at: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool>;
    /// A user's unrevoked sessions, oldest first (expired ones included: the caller decides).
    async fn list_user_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<SessionRecord>>;
    /// Revokes an unrevoked session of the tenant and its refresh-token families, appending a
    /// `session` entry (and a `family` entry per family) in the same transaction. Returns the
    /// `session` entry, or `None` if there is no such unrevoked session.
    async fn revoke_session(
        &self,
        tenant: &TenantId,
        sid: &str,
        reason: &str,
        now: Timestamp,
        token_lifetime: std::time::Duration,
    ) -> Result<Option<RevocationEntry>>;
    /// Revokes every unrevoked session and every refresh-token family of a user (signing out
    /// everywhere, or the user being deleted), with their entries, in one transaction. Returns
    /// the sids revoked, sorted.
    async fn revoke_user_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        reason: &str,
        now: Timestamp,
        token_lifetime: std::time::Duration,
    ) -> Result<Vec<String>>;
    /// Deletes sessions whose absolute deadline is at or before `before`. Returns how many.
    async fn prune_sessions(&self, before: Timestamp) -> Result<u64>;
}

/// Authorization codes: stored by digest, redeemed at most once.
#[async_trait]
pub trait AuthCodeStore {
    /// Fails with [`StoreError::Conflict`] on a duplicate digest, [`StoreError::NotFound`] if
    /// the tenant does not exist.
    async fn insert_code(&self, c: &AuthCodeRecord) -> Result<()>;
    /// Reads a code without redeeming it.
    async fn get_code(&self, digest: &[u8]) -> Result<Option<AuthCodeRecord>>;
    /// Redeems a code atomically: exactly one caller ever gets [`CodeConsumption::Redeemed`],
    /// whichever node it runs on; later callers get [`CodeConsumption::AlreadyUsed`] (and the
    /// code is marked replayed).
    async fn consume_code(&self, digest: &[u8], now: Timestamp) -> Result<CodeConsumption>;
    /// Records what the redemption issued. Returns whether a replay was seen meanwhile (the
    /// caller must then revoke what it just issued itself). Fails with
    /// [`StoreError::NotFound`] if the code is gone.
    async fn record_code_issuance(&self, digest: &[u8], issued: &CodeIssuance) -> Result<bool>;
    /// Deletes codes that expired at or before `before`. Returns how many.
    async fn prune_codes(&self, before: Timestamp) -> Result<u64>;
}

/// Device authorization requests (RFC 8628), stored by digest. Every state change is a
/// compare-and-swap, so nodes sharing the store see one outcome.
#[async_trait]
pub trait DeviceAuthorizationStore {
    /// Fails with [`StoreError::Conflict`] on a duplicate device or user code digest,
    /// [`StoreError::NotFound`] if the tenant does not exist.
    async fn insert_device_authorization(&self, r: &DeviceAuthorizationRecord) -> Result<()>;
    /// The request with this device code digest, whatever its state.
    async fn get_device_authorization(
        &self,
        device_digest: &[u8],
    ) -> Result<Option<DeviceAuthorizationRecord>>;
    /// The pending, unexpired request with this user code digest.
    async fn find_pending_device_authorization(
        &self,
        user_code_digest: &[u8],
        now: Timestamp,
    ) -> Result<Option<DeviceAuthorizationRecord>>;
    /// Records a person's approval or denial of a pending, unexpired request: `true` for the
    /// one caller whose decision took.
    async fn decide_device_authorization(
        &self,
        user_code_digest: &[u8],
        decision: &DeviceDecision,
    ) -> Result<bool>;
    /// Records a poll at `now` with the interval the device must keep from now on, if the last
    /// recorded poll is still `seen_last_poll` (`false`: another poll came in between).
    async fn record_device_poll(
        &self,
        device_digest: &[u8],
        seen_last_poll: Option<Timestamp>,
        now: Timestamp,
        interval_secs: u64,
    ) -> Result<bool>;
    /// Marks an approved, unexpired request used: `true` for exactly one caller.
    async fn use_device_authorization(&self, device_digest: &[u8], now: Timestamp) -> Result<bool>;
    /// Deletes requests that expired at or before `before`. Returns how many.
    async fn prune_device_authorizations(&self, before: Timestamp) -> Result<u64>;
}

/// Admin roles held by users (one per user), by tenant.
#[async_trait]
pub trait UserRoleStore {
    /// Sets (or replaces) the user's role.
    async fn put_user_admin_role(&self, r: &UserAdminRole) -> Result<()>;
    async fn get_user_admin_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserAdminRole>>;
    /// Removes the user's role: `false` if there was none.
    async fn delete_user_admin_role(&self, tenant: &TenantId, user_id: &str) -> Result<bool>;
    /// The tenant's users with a role, by user id.
    async fn list_user_admin_roles(&self, tenant: &TenantId) -> Result<Vec<UserAdminRole>>;
}

/// Pushed authorization requests (RFC 9126), stored by digest: resolved while unexpired and
/// unused, used at most once.
#[async_trait]
pub trait PushedRequestStore {
    /// Fails with [`StoreError::Conflict`] on a duplicate digest, [`StoreError::NotFound`] if
    /// the tenant does not exist.
    async fn insert_pushed_request(&self, r: &PushedRequestRecord) -> Result<()>;
    /// Resolves a request for `client_id` at `now`: `None` unless it exists, belongs to that
    /// client, is unused and unexpired. The first resolution opens it, moving its expiry to
    /// `open_until` (the sign-in window); later ones (page reloads, form posts) keep it.
    async fn open_pushed_request(
        &self,
        digest: &[u8],
        client_id: &str,
        now: Timestamp,
        open_until: Timestamp,
    ) -> Result<Option<PushedRequestRecord>>;
    /// Marks an opened, unexpired request used, atomically: exactly one caller gets `true`,
    /// whichever node it runs on.
    async fn use_pushed_request(&self, digest: &[u8], now: Timestamp) -> Result<bool>;
    /// Deletes requests that expired at or before `before`. Returns how many.
    async fn prune_pushed_requests(&self, before: Timestamp) -> Result<u64>;
}

/// Refresh-token families and their tokens, stored by digest.
#[async_trait]
pub trait RefreshTokenStore {
    /// Inserts a family and its first token in one transaction. Fails with
    /// [`StoreError::Conflict`] on a duplicate id or digest, [`StoreError::NotFound`] if the
    /// tenant does not exist.
    async fn create_refresh_family(
        &self,
        family: &RefreshFamilyRecord,
        first: &RefreshTokenRecord,
    ) -> Result<()>;
    /// A token by digest with its family and the family's user's status, in one read.
    async fn get_refresh_token(&self, digest: &[u8]) -> Result<Option<RefreshTokenRead>>;
    async fn get_refresh_family(&self, id: &str) -> Result<Option<RefreshFamilyRecord>>;
    /// Rotates `presented_digest` to `successor` (same family, next generation) atomically,
    /// under the family row's lock: at most one successor per token, whichever nodes race. The
    /// family's idle deadline moves to `idle_expires_at` (forward only) when one is given; with
    /// `None` the family row is left as it is. Nothing changes unless the outcome is
    /// [`RotateOutcome::Rotated`].
    async fn rotate_refresh_token(
        &self,
        presented_digest: &[u8],
        successor: &RefreshTokenRecord,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<RotateOutcome>;
    /// Revokes an unrevoked family of the tenant and appends a `family` entry in the same
    /// transaction. Returns the entry, or `None` if there is no such unrevoked family.
    async fn revoke_refresh_family(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: &str,
        now: Timestamp,
        token_lifetime: std::time::Duration,
    ) -> Result<Option<RevocationEntry>>;
    /// A user's families, oldest first (revoked and expired ones included).
    async fn list_user_refresh_families(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<RefreshFamilyRecord>>;
}

/// Browser origins registered by clients (`allowed_web_origins`).
#[async_trait]
pub trait WebOriginStore {
    /// Whether an active client registered exactly `origin` (CORS preflights).
    async fn web_origin_registered(&self, origin: &str) -> Result<bool>;
    /// Every origin an active client registered (for a short-lived cache of all of them, so a
    /// preflight costs no query and made-up origins cost nothing).
    async fn registered_web_origins(&self) -> Result<Vec<String>>;
}

/// Consents: which scopes a user granted which client.
#[async_trait]
pub trait ConsentStore {
    /// Creates or replaces the consent of (tenant, user, client). Fails with
    /// [`StoreError::NotFound`] if the tenant does not exist.
    async fn put_consent(&self, c: &ConsentRecord) -> Result<()>;
    async fn get_consent(
        &self,
        tenant: &TenantId,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>>;
    /// A user's consents, by client id.
    async fn list_user_consents(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<ConsentRecord>>;
    /// Withdraws a consent and, in the same transaction, revokes the client's refresh-token
    /// families for that user (with their `family` entries): the app loses access, not only
    /// the permission to ask again. Returns `false` if there was no such consent.
    async fn revoke_consent(
        &self,
        tenant: &TenantId,
        user_id: &str,
        client_id: &str,
        now: Timestamp,
        token_lifetime: std::time::Duration,
    ) -> Result<bool>;
}

/// Back-channel logout: the clients each session issued tokens to, and the queue of logout
/// notifications any node may deliver (claimed by moving `next_attempt_at` past a lease, so a
/// node that dies mid-delivery leaves the delivery to the next claim after the lease).
#[async_trait]
pub trait LogoutStore {
    /// Records that `client_id` redeemed a code issued in session `sid` (idempotent). Fails
    /// with [`StoreError::NotFound`] if the tenant does not exist.
    async fn record_session_client(
        &self,
        tenant: &TenantId,
        sid: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// The clients recorded for a session, sorted.
    async fn session_clients(&self, tenant: &TenantId, sid: &str) -> Result<Vec<String>>;
    /// Queues a delivery, due at `now`, for every client of these sessions of `tenant` that
    /// registered a back-channel logout URI (a session and client already queued are left as
    /// they are). Returns how many were queued.
    async fn enqueue_backchannel_logouts(
        &self,
        tenant: &TenantId,
        sids: &[String],
        now: Timestamp,
    ) -> Result<u64>;
    /// Claims up to `limit` deliveries due at `now`, oldest due first: each one's attempts go
    /// up by one and its `next_attempt_at` moves to `lease_until`, atomically, so two nodes
    /// never claim the same delivery within one lease. Returns them as claimed.
    async fn claim_backchannel_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<BackchannelDelivery>>;
    /// Schedules the next attempt of a delivery after a failure. Returns whether it exists.
    async fn retry_backchannel_delivery(
        &self,
        id: &str,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<bool>;
    /// Removes a delivery (delivered, given up, or its client gone). Returns whether it existed.
    async fn delete_backchannel_delivery(&self, id: &str) -> Result<bool>;
    /// Deletes session-client rows whose session no longer exists (pruned). Returns how many.
    async fn prune_session_clients(&self) -> Result<u64>;
}

/// Sign-in page branding per tenant (`portcullis_core::branding` checks the values).
#[async_trait]
pub trait BrandingStore {
    /// Creates or replaces the tenant's branding. Fails with [`StoreError::NotFound`] if the
    /// tenant does not exist.
    async fn put_branding(&self, b: &BrandingRecord) -> Result<()>;
    async fn get_branding(&self, tenant: &TenantId) -> Result<Option<BrandingRecord>>;
}

/// A tenant's CA sets for mutual-TLS client authentication (RFC 8705 `tls_client_auth`).
#[async_trait]
pub trait CaSetStore {
    /// Fails with [`StoreError::Conflict`] if the tenant already has a set of that name or the
    /// id is taken, [`StoreError::NotFound`] if the tenant does not exist.
    async fn insert_ca_set(&self, r: &CaSetRecord) -> Result<()>;
    /// The tenant's sets, oldest first.
    async fn list_ca_sets(&self, tenant: &TenantId) -> Result<Vec<CaSetRecord>>;
    /// Whether the set existed (in that tenant) and is gone.
    async fn delete_ca_set(&self, tenant: &TenantId, id: &str) -> Result<bool>;
}

/// Tenants' credential lifetime policies (`portcullis_core::lifetime` checks the values and
/// decides compliance) and when trust rules and redirect URIs last matched (for the hygiene
/// report).
#[async_trait]
pub trait LifetimeStore {
    /// Creates or replaces the tenant's policy. Fails with [`StoreError::NotFound`] if the
    /// tenant does not exist.
    async fn put_lifetime_policy(&self, p: &LifetimePolicyRecord) -> Result<()>;
    async fn get_lifetime_policy(&self, tenant: &TenantId) -> Result<Option<LifetimePolicyRecord>>;
    /// The tenants whose policy's `existing` mode is `mode`, by id.
    async fn tenants_with_existing_mode(&self, mode: &str) -> Result<Vec<TenantId>>;
    /// Counts one match of `subject` (`kind` is `trust_rule` or `redirect_uri`) at `now`;
    /// `last_matched_at` never moves backwards.
    async fn record_admission_match(
        &self,
        tenant: &TenantId,
        kind: &str,
        subject: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// Every recorded match of the tenant, by kind and subject.
    async fn admission_matches(&self, tenant: &TenantId) -> Result<Vec<AdmissionMatch>>;
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

/// Workload identity federation: a tenant's trusted external issuers and trust rules, and the
/// subject-token ids already exchanged.
#[async_trait]
pub trait FederationStore {
    /// Fails with [`StoreError::Conflict`] if the tenant already trusts this issuer,
    /// [`StoreError::NotFound`] if the tenant does not exist.
    async fn create_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> Result<()>;
    /// Replaces the preset, key source, algorithms and age bound (`created_at` is kept).
    /// Returns `false` if there is no such issuer in the tenant.
    async fn update_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> Result<bool>;
    async fn get_trusted_issuer(
        &self,
        tenant: &TenantId,
        issuer: &str,
    ) -> Result<Option<TrustedIssuerRecord>>;
    /// The tenant's trusted issuers, by issuer.
    async fn list_trusted_issuers(&self, tenant: &TenantId) -> Result<Vec<TrustedIssuerRecord>>;
    /// Removes an issuer. Fails with [`StoreError::Conflict`] while a rule is on it; returns
    /// `false` if there is no such issuer.
    async fn delete_trusted_issuer(&self, tenant: &TenantId, issuer: &str) -> Result<bool>;
    /// Fails with [`StoreError::Conflict`] on a duplicate id in the tenant,
    /// [`StoreError::NotFound`] if the tenant does not trust the rule's issuer.
    async fn create_trust_rule(&self, rule: &TrustRuleRecord) -> Result<()>;
    /// Replaces everything but the id, issuer and `created_at`, if the stored rule is still the
    /// one the caller read: same `created_at` (not deleted and created again meanwhile) and
    /// `updated_at` still `read_updated_at` (nobody changed it meanwhile). Returns `false` if the
    /// tenant has no such rule on that issuer or it changed since it was read.
    async fn update_trust_rule(
        &self,
        rule: &TrustRuleRecord,
        read_updated_at: Timestamp,
    ) -> Result<bool>;
    async fn get_trust_rule(&self, tenant: &TenantId, id: &str) -> Result<Option<TrustRuleRecord>>;
    /// The tenant's rules (on one issuer, when given), by id.
    async fn list_trust_rules(
        &self,
        tenant: &TenantId,
        issuer: Option<&str>,
    ) -> Result<Vec<TrustRuleRecord>>;
    async fn delete_trust_rule(&self, tenant: &TenantId, id: &str) -> Result<bool>;
    /// Records a subject token's `jti` for `issuer` until `expires_at` (its `exp` plus the
    /// leeway). Returns `false` if it is recorded and not yet expired: a replay, on any node.
    async fn record_subject_jti(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Removes every recorded id expired at `now`; returns how many.
    async fn prune_subject_jtis(&self, now: Timestamp) -> Result<u64>;
}

/// DPoP proofs seen at the token endpoint (RFC 9449 section 11.1): each proof `jti` of a key is
/// accepted once while its `iat` is within the window, on any node sharing the database.
#[async_trait]
pub trait DpopStore {
    /// Records the proof `jti` of the key `jkt` until `expires_at`. Returns `false` if it is
    /// recorded and not yet expired: a replay.
    async fn record_dpop_jti(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Removes every recorded id expired at `now`; returns how many.
    async fn prune_dpop_jtis(&self, now: Timestamp) -> Result<u64>;
}

/// A tenant's OAuth rules for all its clients: a tenant's clients must push their authorization
/// requests (RFC 9126 section 6) when the tenant says so, whatever each client's own setting.
#[async_trait]
pub trait TenantOAuthPolicyStore {
    /// `None`: the tenant never set one (nothing required beyond the clients' own settings).
    async fn get_oauth_policy(&self, tenant: &TenantId) -> Result<Option<OAuthPolicyRecord>>;
    /// Sets the tenant's rules. Fails with [`StoreError::NotFound`] or a write error if the
    /// tenant does not exist.
    async fn put_oauth_policy(
        &self,
        tenant: &TenantId,
        require_pushed_requests: bool,
        now: Timestamp,
    ) -> Result<()>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    TenantStore
    + SigningKeyStore
    + AdminCredentialStore
    + AuditStore
    + AuditChainStore
    + AlertStore
    + WebhookStore
    + AlertRetentionStore
    + ApiKeyStore
    + ResourceServerStore
    + ClientStore
    + ArchiveStore
    + RevocationStore
    + UserStore
    + SessionStore
    + AuthCodeStore
    + PushedRequestStore
    + DeviceAuthorizationStore
    + UserRoleStore
    + RefreshTokenStore
    + ConsentStore
    + LogoutStore
    + BrandingStore
    + LifetimeStore
    + WebOriginStore
    + FederationStore
    + DpopStore
    + TenantOAuthPolicyStore
    + CaSetStore
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
    /// Returns once every request-path write committed before this call is on disk (group
    /// commit, `group_commit.rs`): for a caller about to answer from another request's write
    /// (a refresh token's successor handed out again within the grace window). At once on
    /// PostgreSQL, whose commits are durable when they return.
    async fn await_request_writes(&self) -> Result<()>;
    /// Closes the pool, waiting for in-flight queries.
    async fn close(&self);
}
