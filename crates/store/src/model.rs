//! Records as stored. Secrets never appear here in plaintext: credentials are digests, private
//! keys are sealed blobs.

use portcullis_core::admin::AdminRole;
pub use portcullis_core::client::{ApplicationType, ClientType};
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub id: TenantId,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub display_name: String,
    pub status: TenantStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub state: KeyState,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// Id of the key-encryption key that sealed `sealed_private_key`.
    pub kek_id: String,
    /// AEAD envelope of the private key; opaque to storage.
    pub sealed_private_key: Vec<u8>,
    pub created_at: Timestamp,
    pub activates_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// After this time the key may leave JWKS (every token it signed has expired).
    pub publish_until: Option<Timestamp>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .field("kek_id", &self.kek_id)
            .field("sealed_private_key", &"[sealed]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCredentialRecord {
    /// The lookup id embedded in the token.
    pub id: String,
    pub tenant: TenantId,
    pub role: AdminRole,
    pub name: String,
    /// Non-secret prefix for listings (`pcl_adm_live_<id>`).
    pub display_prefix: String,
    /// SHA-256 of the whole token.
    pub secret_digest: Vec<u8>,
    pub created_at: Timestamp,
    pub created_by: Option<String>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub tenant: TenantId,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub action: Option<String>,
    /// Which page, keyed by `(occurred_at, position in the log)`, newest first.
    pub page: crate::page::PageRequest,
}

/// An API key as stored: attributes and the SHA-256 digest of the key, never the key itself.
///
/// Scopes, audiences and the IP allowlist are kept space-separated and validated by the server
/// before they are written (and by the core when read back for a decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The lookup id embedded in the key.
    pub id: String,
    pub tenant: TenantId,
    pub environment: String,
    pub name: String,
    pub description: String,
    /// The partner or consumer the key was issued to.
    pub owner: String,
    /// Space-separated scope tokens.
    pub scopes: String,
    /// Space-separated audiences; `None` = not restricted.
    pub audiences: Option<String>,
    /// Space-separated CIDRs; `None` = any address.
    pub ip_allowlist: Option<String>,
    pub rate_limit_requests: Option<i64>,
    pub rate_limit_window_secs: Option<i64>,
    /// A JSON object as text.
    pub metadata: String,
    /// Non-secret prefix for listings (`pcl_key_live_<id>`).
    pub display_prefix: String,
    /// SHA-256 of the whole key.
    pub digest: Vec<u8>,
    pub created_at: Timestamp,
    pub created_by: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub disabled_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked (`admin`, `owner_offboarded`, `leaked`).
    pub revoked_reason: Option<String>,
    /// The key that replaced this one in a rotation.
    pub replaced_by: Option<String>,
    /// After a rotation, the end of the window in which this key still works.
    pub rotation_overlap_ends_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
}

/// Filters for listing a tenant's keys; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiKeyFilter {
    pub environment: Option<String>,
    pub owner: Option<String>,
}

/// One key's most recent use, written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyUse {
    pub id: String,
    pub at: Timestamp,
    pub ip: Option<String>,
}

/// A tenant's stored expiry policy for new keys (seconds; `None` = never / no maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyPolicyRecord {
    pub default_ttl_secs: Option<i64>,
    pub max_ttl_secs: Option<i64>,
    pub allow_never: bool,
}

/// An API (resource server) of a tenant: the audience tokens are bound to and the scopes it
/// defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServer {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A resource server's credential for the introspection endpoint, as stored: its digest, never
/// the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServerSecretRecord {
    /// The credential's embedded lookup id.
    pub id: String,
    pub resource_server_id: String,
    pub display_prefix: String,
    /// SHA-256 of the whole secret.
    pub secret_digest: Vec<u8>,
    pub created_at: Timestamp,
    /// End of the overlap window once a newer secret exists.
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Active,
    Disabled,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// An OAuth client of a tenant. Lists are stored as given; the server validates them on the way
/// in and parses them again on the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub environment: String,
    pub auth_method: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// The first is the default audience.
    pub audiences: Vec<String>,
    pub access_token_ttl_secs: i64,
    pub can_introspect: bool,
    /// For `private_key_jwt`: the client's public keys as JWKS JSON.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub status: ClientStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// Confidential (machine clients, web apps) or public (single-page and native apps).
    pub client_type: ClientType,
    pub application_type: ApplicationType,
    /// Registered exactly as given; compared character for character at authorization.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Exact origins a single-page app may call the token endpoint from (CORS).
    pub allowed_web_origins: Vec<String>,
    /// Trusted by the tenant: no consent screen.
    pub first_party: bool,
    /// Where logout tokens are POSTed when a session this client got tokens in ends
    /// (OpenID Connect Back-Channel Logout 1.0); `None`: not notified.
    pub backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in logout tokens (we always send it; recorded and published).
    pub backchannel_logout_session_required: bool,
    /// Every authorization request of this client must come through the PAR endpoint
    /// (RFC 9126 `require_pushed_authorization_requests`).
    pub require_pushed_requests: bool,
    /// Every token request of this client must carry a valid DPoP proof (RFC 9449): tokens it
    /// gets are always bound to a key it holds.
    pub require_dpop: bool,
    /// The algorithm of this client's ID tokens (OpenID Connect Registration
    /// `id_token_signed_response_alg`); `None`: the installation's signing algorithm.
    pub id_token_signed_response_alg: Option<SigningAlgorithm>,
    /// A `tls_client_auth` client's one registered certificate fact (RFC 8705 section 2.1.2);
    /// `None` for every other method.
    pub tls_subject: Option<TlsSubjectRecord>,
    /// RFC 8705 `tls_client_certificate_bound_access_tokens` for a client that authenticates
    /// otherwise: its tokens are bound to a client certificate it presents.
    pub certificate_bound_tokens: bool,
}

/// The one certificate fact a `tls_client_auth` client is registered with, as stored: the
/// metadata parameter's name (`tls_client_auth_san_dns`, ...) and its value, both checked by
/// the service (`portcullis_service::mtls::TlsSubject`) before they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSubjectRecord {
    pub kind: String,
    pub value: String,
}

/// One of a tenant's CA sets (RFC 8705 `tls_client_auth` trust anchors): PEM text of one or
/// more CA certificates, checked by the admin API before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSetRecord {
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub pem: String,
    pub created_at: Timestamp,
}

/// A tenant's OAuth rules for all its clients ([`crate::TenantOAuthPolicyStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthPolicyRecord {
    /// Every authorization request of the tenant's clients must be pushed first (RFC 9126).
    pub require_pushed_requests: bool,
    pub updated_at: Timestamp,
}

/// A client secret as stored: its digest, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecretRecord {
    /// The credential's embedded lookup id.
    pub id: String,
    pub client_id: String,
    pub display_prefix: String,
    /// SHA-256 of the whole secret.
    pub secret_digest: Vec<u8>,
    pub created_at: Timestamp,
    /// End of the overlap window once a newer secret exists.
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

pub use portcullis_core::revocation::{RevocationKind, RevocationRecord};

/// A revocation to append to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevocation {
    pub tenant: TenantId,
    pub kind: RevocationKind,
    pub subject: String,
    pub revoked_before: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub reason: Option<String>,
}

/// An entry of the revocation log, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEntry {
    /// Position in the log: 1, 2, 3, ... with no gaps, in commit order.
    pub seq: i64,
    pub tenant: TenantId,
    pub kind: RevocationKind,
    pub subject: String,
    pub revoked_before: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

impl RevocationEntry {
    /// The entry as verifiers receive it: the internal `reason` stays behind.
    pub fn into_record(self) -> RevocationRecord {
        RevocationRecord {
            seq: self.seq,
            tenant: self.tenant,
            kind: self.kind,
            subject: self.subject,
            revoked_before: self.revoked_before,
            expires_at: self.expires_at,
            created_at: self.created_at,
        }
    }
}

/// A range of log positions to read, with the filters a reader may apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRange {
    /// Exclusive lower bound.
    pub after: i64,
    /// Inclusive upper bound.
    pub through: i64,
    /// Leave out entries that expired at or before this time.
    pub live_at: Option<Timestamp>,
    /// Only this tenant's entries and signing-key entries (which concern every tenant).
    pub tenant: Option<TenantId>,
}

/// An alert as stored (issue 19). `evidence` is the JSON the detector task wrote for the latest
/// finding; storage does not read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub id: String,
    pub tenant: TenantId,
    pub rule: String,
    pub subject: String,
    pub status: portcullis_core::alert::AlertStatus,
    /// Recorded by a rule in shadow mode: what would have fired.
    pub shadow: bool,
    pub evidence: String,
    /// Findings folded into this alert.
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
}

/// Findings to fold into the live alert for (rule, tenant, subject, shadow), or to open one with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertUpsert {
    /// The id the alert gets if this opens it.
    pub id: String,
    pub tenant: TenantId,
    pub rule: String,
    pub subject: String,
    pub shadow: bool,
    pub evidence: String,
    /// Findings added (at least 1).
    pub count: i64,
    pub seen_at: Timestamp,
}

/// Which alerts to list, newest `last_seen` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFilter {
    /// `None`: every tenant (global admins only; the caller decides).
    pub tenant: Option<TenantId>,
    pub status: Option<portcullis_core::alert::AlertStatus>,
    pub rule: Option<String>,
}
pub use portcullis_core::user::{Email, TokenPurpose, UserId, UserProfile, UserStatus, Username};

/// A user of a tenant as stored. `password_hash` is an Argon2id PHC string (never a password)
/// and prints redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub tenant: TenantId,
    pub username: Username,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub status: UserStatus,
    pub profile: UserProfile,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("status", &self.status)
            .field("profile", &self.profile)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("password_changed_at", &self.password_changed_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// Which of a tenant's users to list. The page itself is a [`crate::PageRequest`]: users are
/// listed oldest first by `(created_at, id)`, like every admin list (see `page.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub status: Option<UserStatus>,
    /// Users whose normalised username or email starts with this (already normalised by the
    /// caller: lowercase).
    pub prefix: Option<String>,
}

/// A one-time user token as stored: its digest, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokenRecord {
    pub digest: Vec<u8>,
    pub tenant: TenantId,
    pub user_id: UserId,
    pub purpose: TokenPurpose,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// What kind of object an archive record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchivedKind {
    Tenant,
    Client,
    ResourceServer,
}

impl ArchivedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Client => "client",
            Self::ResourceServer => "resource_server",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tenant" => Some(Self::Tenant),
            "client" => Some(Self::Client),
            "resource_server" => Some(Self::ResourceServer),
            _ => None,
        }
    }
}

/// An archived tenant, client or resource server, as stored (and exported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedObject {
    pub kind: ArchivedKind,
    pub id: String,
    pub tenant: TenantId,
    pub archived_at: Timestamp,
    pub archived_by: Option<String>,
}

/// A tenant's stored lifetime policy for client secrets (`existing`: `ignore`, `report` or
/// `disable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifetimePolicyRecord {
    pub tenant: TenantId,
    pub client_secret_max_age_secs: Option<i64>,
    pub client_secret_expiry_required: bool,
    pub existing: String,
    pub updated_at: Timestamp,
}

/// How often, and when last, a trust rule or redirect URI matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionMatch {
    /// `trust_rule` or `redirect_uri`.
    pub kind: String,
    pub subject: String,
    pub match_count: i64,
    pub last_matched_at: Timestamp,
}
