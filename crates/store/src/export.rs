//! Export and import: every record that makes up an installation, moved between databases of
//! either backend without re-issuing a single secret.
//!
//! [`TransferStore`] reads all records in one read transaction (a consistent snapshot, even while
//! a server writes) and writes them into an *empty* database in one transaction (a failure
//! changes nothing). [`write_export`] and [`ExportReader`] carry them in a versioned file (JSON
//! Lines, [`FORMAT`] version [`FORMAT_VERSION`], described in `docs/operations.md`): a header
//! line, one line per record in import order, and an `end` line with the record count, so a
//! truncated file is refused instead of half-imported.
//!
//! Exported: tenants, API key policies, signing keys, admin and service credentials, resource
//! servers and their secrets, OAuth clients and their secrets, API keys, the revocation log and
//! the seen client-assertion ids (replay protection outlives the move), users with their password
//! hashes, which tenants, clients and resource servers are archived (an import must not bring
//! them back), users' consents (what a user agreed to is state the user would otherwise be
//! asked again), webhook endpoints with their secrets sealed under the KEK (their delivery
//! queue stays behind, like the alerts it carries), tenants' sign-in page branding, and workload
//! identity federation: trusted issuers, trust rules and the subject-token ids already exchanged
//! (replay protection outlives the move), and the admin roles held by users (who may use the
//! admin API through the CLI's device sign-in). Not exported: users' one-time tokens (short-lived
//! links), the audit log
//! (history, not state, and the largest table: it stays in the old database and its backups),
//! the revocation log head (derived from the log on import), and the sign-in state that lives
//! minutes to days: sessions, authorization codes (at most 60 s), and refresh-token families
//! with their tokens, and the back-channel logout state that follows sessions (which clients a
//! session issued tokens to, notifications still due). A family belongs to a session (its
//! `sid`), and sessions do not move;
//! carrying families without them would leave refresh tokens that the user's account page
//! cannot list or sign out of. After a move users sign in again (apps included), and the export
//! file holds no bearer-token digest that is valid for weeks. Every one of these tables must be
//! empty for an import all the same ([`IMPORT_TABLES`]).
//!
//! This module must never see a plaintext secret or decrypt a signing key: credentials are
//! digests and private keys stay sealed under the KEK, so an export is as sensitive as the
//! database (not more), and the importing installation needs the same KEK file.

use std::io::{BufRead, Write};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::admin::AdminRole;
use portcullis_core::client::ClientId;
use portcullis_core::revocation::RevocationKind;
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::federation_model::{
    KeySourceRecord, SubjectJtiRecord, TrustRuleRecord, TrustedIssuerRecord,
};
use crate::model::*;
use crate::sign_in_model::ConsentRecord;
use crate::{Result, StoreError};

/// The `format` field of an export's header line.
pub const FORMAT: &str = "portcullis-export";
/// The version this binary writes and the newest it reads. Bumped whenever a record gains,
/// loses or changes a field, or a kind of record is added.
/// Version 2: users (with their password hashes), and clients carry their type, application
/// type, redirect and post-logout redirect URIs, web origins and first-party flag (version-1
/// files still read: no users, and every client a machine client).
/// Version 3: webhook endpoints, with their secrets sealed under the KEK; tenants' branding;
/// clients carry their back-channel logout URI and `sid` requirement; trusted issuers, trust
/// rules and subject-token ids (workload identity). Older files still read: none of these.
/// Version 4: clients carry `require_pushed_requests` (RFC 9126; older files: not required)
/// and their `id_token_signed_response_alg` (older files: the installation's algorithm).
/// Version 5: clients carry `require_dpop` (RFC 9449; older files: not required); tenants' OAuth
/// rules (`oauth_policy`: PAR required for every client; older files: none).
/// Pushed requests themselves live a minute and are never exported. The audit chain's
/// checkpoints are history like the audit log, and DPoP proof ids live for the proof window:
/// neither is exported, and an import must find both empty.
/// Version 5 also: tenants' CA sets (RFC 8705 `tls_client_auth` trust anchors); clients carry
/// their registered certificate subject and `certificate_bound_tokens` (older files: none, false).
/// Version 5 also: tenants' credential lifetime policies (older files: none).
/// Version 6: admin roles held by users (`user_admin_role`, after the users; older files: none,
/// grant them again), and trust rules carry the `client_id` they authenticate (older files:
/// none, a rule of the workload grants).
pub const FORMAT_VERSION: u32 = 6;

/// A tenant's API key lifetime policy, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPolicyExport {
    pub tenant: TenantId,
    pub policy: ApiKeyPolicyRecord,
    pub updated_at: Timestamp,
}

/// A tenant's OAuth rules for its clients, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthPolicyExport {
    pub tenant: TenantId,
    pub policy: OAuthPolicyRecord,
}

/// A client-assertion id seen (RFC 7523 replay protection), kept until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionJti {
    pub client_id: String,
    pub jti: String,
    pub expires_at: Timestamp,
}

/// One exported record. An export lists them in this order, so every record's references
/// (tenant, client, resource server) come before it.
#[derive(Debug, Clone, PartialEq, Eq)]
// Records are handled one at a time, or in batches of `IMPORT_BATCH`: boxing the API key (the
// largest) would buy a few hundred kilobytes at most.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Tenant(Tenant),
    ApiKeyPolicy(ApiKeyPolicyExport),
    /// A tenant's OAuth rules (version 5).
    OAuthPolicy(OAuthPolicyExport),
    SigningKey(StoredSigningKey),
    AdminCredential(AdminCredentialRecord),
    ResourceServer(ResourceServer),
    ResourceServerSecret(ResourceServerSecretRecord),
    Client(OAuthClient),
    ClientSecret(ClientSecretRecord),
    ApiKey(ApiKeyRecord),
    Revocation(RevocationEntry),
    AssertionJti(AssertionJti),
    /// A tenant's user, with its password hash (a PHC string: moving it keeps every password
    /// working). Its one-time tokens are not exported: they are short-lived links, and a user
    /// who had one asks again.
    User(UserRecord),
    /// An admin role held by a user (version 6): what the CLI's device sign-in tokens of that
    /// user may do at the admin API. After the users.
    UserAdminRole(crate::UserAdminRole),
    Archived(ArchivedObject),
    Consent(ConsentRecord),
    /// A webhook endpoint with its secret sealed under the KEK (as stored). Its delivery queue
    /// is not exported: deliveries carry alerts, which are not either.
    WebhookEndpoint(crate::WebhookEndpointRecord),
    /// A tenant's sign-in page branding.
    Branding(crate::BrandingRecord),
    /// A tenant's credential lifetime policy (client secrets, mode for existing credentials).
    LifetimePolicy(crate::LifetimePolicyRecord),
    TrustedIssuer(TrustedIssuerRecord),
    /// After its issuer.
    TrustRule(TrustRuleRecord),
    SubjectJti(SubjectJtiRecord),
    /// A tenant's CA set for mutual-TLS client authentication.
    CaSet(crate::CaSetRecord),
}

impl Record {
    /// The record's kind as named in the file and in progress output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tenant(_) => "tenant",
            Self::ApiKeyPolicy(_) => "api_key_policy",
            Self::OAuthPolicy(_) => "oauth_policy",
            Self::SigningKey(_) => "signing_key",
            Self::AdminCredential(_) => "admin_credential",
            Self::ResourceServer(_) => "resource_server",
            Self::ResourceServerSecret(_) => "resource_server_secret",
            Self::Client(_) => "client",
            Self::ClientSecret(_) => "client_secret",
            Self::ApiKey(_) => "api_key",
            Self::Revocation(_) => "revocation",
            Self::AssertionJti(_) => "assertion_jti",
            Self::User(_) => "user",
            Self::UserAdminRole(_) => "user_admin_role",
            Self::Archived(_) => "archived",
            Self::Consent(_) => "consent",
            Self::WebhookEndpoint(_) => "webhook_endpoint",
            Self::Branding(_) => "branding",
            Self::LifetimePolicy(_) => "lifetime_policy",
            Self::TrustedIssuer(_) => "trusted_issuer",
            Self::TrustRule(_) => "trust_rule",
            Self::SubjectJti(_) => "subject_jti",
            Self::CaSet(_) => "ca_set",
        }
    }
}

/// How many records of each kind an import wrote, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportCounts(pub Vec<(&'static str, u64)>);

impl ImportCounts {
    pub fn add(&mut self, kind: &'static str, n: u64) {
        match self.0.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.0.push((kind, n)),
        }
    }

    pub fn get(&self, kind: &str) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, c)| *c)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }
}

/// Moving every record out of and into a database.
#[async_trait]
pub trait TransferStore {
    /// Passes every record to `sink`, in [`Record`] order, all read in one read transaction, so
    /// the records are one consistent snapshot even while other connections write. Stops at
    /// the first error `sink` returns.
    async fn export_records(
        &self,
        sink: &mut (dyn FnMut(Record) -> Result<()> + Send),
    ) -> Result<()>;

    /// The tables holding anything an import would have to merge with (the `system` tenant,
    /// created by the migrations, does not count). Empty means an import may proceed.
    async fn import_blockers(&self) -> Result<Vec<&'static str>>;

    /// Writes `records` (in [`Record`] order) in one transaction, after checking in it that the
    /// database is empty ([`StoreError::NotEmpty`] otherwise). Any failure, including an error
    /// item from `records`, rolls everything back. The revocation log must be complete
    /// (positions 1, 2, 3, ... with no gap); its head is set to the last position. `progress`
    /// is called after each batch is written, with the kind and the running count of that kind.
    async fn import_records(
        &self,
        records: &mut (dyn Iterator<Item = Result<Record>> + Send),
        progress: &mut (dyn FnMut(&'static str, u64) + Send),
    ) -> Result<ImportCounts>;
}

/// Writes a whole export of `store` to `out`: header, records, end line. `progress` is called
/// every `every` records and at the end with the running total. Returns the record count.
pub async fn write_export(
    store: &(dyn crate::Store + '_),
    out: &mut (dyn Write + Send),
    exported_at: Timestamp,
    every: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64> {
    let header = Line::Header {
        format: FORMAT.to_owned(),
        version: FORMAT_VERSION,
        exported_at: exported_at.as_millis(),
        source_backend: store.backend().to_owned(),
    };
    write_line(out, &header)?;
    let mut n = 0u64;
    let mut next_report = every;
    store
        .export_records(&mut |record| {
            write_line(out, &Line::from(record))?;
            n += 1;
            if every > 0 && n == next_report {
                progress(n);
                next_report += every;
            }
            Ok(())
        })
        .await?;
    write_line(out, &Line::End { records: n })?;
    out.flush().map_err(io_error)?;
    progress(n);
    Ok(n)
}

fn write_line(out: &mut (dyn Write + Send), line: &Line) -> Result<()> {
    serde_json::to_writer(&mut *out, line)
        .map_err(|e| StoreError::Export(format!("could not encode a record: {e}")))?;
    out.write_all(b"\n").map_err(io_error)
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Export(format!("reading or writing the file failed: {e}"))
}

/// What an export's header line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHeader {
    pub version: u32,
    pub exported_at: Timestamp,
    pub source_backend: String,
}

/// Reads an export: checks the header on construction, then yields its records, and fails on a
/// malformed line, a record after the end line, or a file that stops before its end line or
/// whose end line counts a different number of records.
#[derive(Debug)]
pub struct ExportReader<R> {
    lines: std::io::Lines<R>,
    header: ExportHeader,
    line_no: u64,
    records: u64,
    done: bool,
    failed: bool,
}

impl<R: BufRead> ExportReader<R> {
    pub fn new(reader: R) -> Result<Self> {
        let mut lines = reader.lines();
        let first = lines
            .next()
            .ok_or_else(|| StoreError::Export("the file is empty".into()))?
            .map_err(io_error)?;
        let header = match serde_json::from_str::<serde_json::Value>(&first) {
            Ok(v) if v.get("format").and_then(|f| f.as_str()) == Some(FORMAT) => {
                let version = v.get("version").and_then(|n| n.as_u64()).unwrap_or(0);
                if version == 0 || version > u64::from(FORMAT_VERSION) {
                    return Err(StoreError::Export(format!(
                        "export format version {version} is not supported by this binary \
                         (reads up to {FORMAT_VERSION}); import with the Portcullis that wrote it \
                         or a newer one"
                    )));
                }
                match serde_json::from_value::<Line>(v) {
                    Ok(Line::Header {
                        version,
                        exported_at,
                        source_backend,
                        ..
                    }) => ExportHeader {
                        version,
                        exported_at: Timestamp::from_millis(exported_at),
                        source_backend,
                    },
                    _ => return Err(StoreError::Export("line 1: malformed header".into())),
                }
            }
            _ => {
                return Err(StoreError::Export(format!(
                    "not a Portcullis export (the first line has no \"format\": \"{FORMAT}\")"
                )))
            }
        };
        Ok(Self {
            lines,
            header,
            line_no: 1,
            records: 0,
            done: false,
            failed: false,
        })
    }

    pub fn header(&self) -> &ExportHeader {
        &self.header
    }

    fn read_next(&mut self) -> Result<Option<Record>> {
        loop {
            let Some(line) = self.lines.next() else {
                if self.done {
                    return Ok(None);
                }
                return Err(StoreError::Export(format!(
                    "the file ends after line {} without its end line: truncated",
                    self.line_no
                )));
            };
            let line = line.map_err(io_error)?;
            self.line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            if self.done {
                return Err(StoreError::Export(format!(
                    "line {}: data after the end line",
                    self.line_no
                )));
            }
            let parsed: Line = serde_json::from_str(&line)
                .map_err(|e| StoreError::Export(format!("line {}: {e}", self.line_no)))?;
            return match parsed {
                Line::Header { .. } => Err(StoreError::Export(format!(
                    "line {}: a second header",
                    self.line_no
                ))),
                Line::End { records } if records == self.records => {
                    self.done = true;
                    continue;
                }
                Line::End { records } => Err(StoreError::Export(format!(
                    "line {}: the end line counts {records} records but the file holds {}",
                    self.line_no, self.records
                ))),
                other => {
                    let record = other.into_record().map_err(|what| {
                        StoreError::Export(format!("line {}: invalid {what}", self.line_no))
                    })?;
                    self.records += 1;
                    Ok(Some(record))
                }
            };
        }
    }
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.read_next().transpose();
        // One error ends the stream: the import rolls back.
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

// The file format: one JSON object per line, tagged by `type`. Timestamps are Unix milliseconds,
// digests and sealed keys base64url without padding, lists JSON arrays (the store's
// space-separated columns are split and joined back).

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Header {
        format: String,
        version: u32,
        exported_at: i64,
        source_backend: String,
    },
    Tenant {
        id: String,
        display_name: String,
        status: String,
        created_at: i64,
        updated_at: i64,
    },
    ApiKeyPolicy {
        tenant_id: String,
        default_ttl_secs: Option<i64>,
        max_ttl_secs: Option<i64>,
        allow_never: bool,
        updated_at: i64,
    },
    #[serde(rename = "oauth_policy")]
    OAuthPolicy {
        tenant_id: String,
        #[serde(default)]
        require_pushed_requests: bool,
        updated_at: i64,
    },
    SigningKey {
        kid: String,
        algorithm: String,
        state: String,
        public_jwk: String,
        kek_id: String,
        sealed_private_key: String,
        created_at: i64,
        activates_at: i64,
        retired_at: Option<i64>,
        publish_until: Option<i64>,
    },
    AdminCredential {
        id: String,
        tenant_id: String,
        role: String,
        name: String,
        display_prefix: String,
        secret_digest: String,
        created_at: i64,
        created_by: Option<String>,
        revoked_at: Option<i64>,
        last_used_at: Option<i64>,
    },
    ResourceServer {
        id: String,
        tenant_id: String,
        name: String,
        audience: String,
        scopes: Vec<String>,
        created_at: i64,
        updated_at: i64,
    },
    ResourceServerSecret(SecretLine),
    Client {
        id: String,
        tenant_id: String,
        name: String,
        environment: String,
        auth_method: String,
        grant_types: Vec<String>,
        scopes: Vec<String>,
        audiences: Vec<String>,
        access_token_ttl_secs: i64,
        can_introspect: bool,
        jwks: Option<String>,
        jwks_uri: Option<String>,
        status: String,
        created_at: i64,
        updated_at: i64,
        last_used_at: Option<i64>,
        // Version 2 (browser and native app clients). A version-1 file lacks them and reads
        // as the machine client every version-1 client was, as migration 0009 does.
        #[serde(default = "confidential")]
        client_type: String,
        #[serde(default = "web")]
        application_type: String,
        #[serde(default)]
        redirect_uris: Vec<String>,
        #[serde(default)]
        post_logout_redirect_uris: Vec<String>,
        #[serde(default)]
        allowed_web_origins: Vec<String>,
        #[serde(default)]
        first_party: bool,
        // Version 3 (back-channel logout). Older files read as registering none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backchannel_logout_uri: Option<String>,
        #[serde(default)]
        backchannel_logout_session_required: bool,
        // Version 4 (pushed authorization requests). Older files read as not required.
        #[serde(default)]
        require_pushed_requests: bool,
        // Version 4 (RS256 ID tokens). Older files read as the installation's algorithm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id_token_signed_response_alg: Option<String>,
        // Version 5 (DPoP required). Older files read as not required.
        #[serde(default)]
        require_dpop: bool,
        // Version 5 (mTLS). Older files read as no certificate subject, tokens unbound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_subject_kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_subject_value: Option<String>,
        #[serde(default)]
        certificate_bound_tokens: bool,
    },
    ClientSecret(SecretLine),
    ApiKey(ApiKeyLine),
    Revocation {
        seq: i64,
        tenant_id: String,
        kind: String,
        subject: String,
        revoked_before: Option<i64>,
        expires_at: Option<i64>,
        reason: Option<String>,
        created_at: i64,
    },
    AssertionJti {
        client_id: String,
        jti: String,
        expires_at: i64,
    },
    User(UserLine),
    Archived {
        kind: String,
        id: String,
        tenant_id: String,
        archived_at: i64,
        archived_by: Option<String>,
    },
    Consent {
        tenant_id: String,
        user_id: String,
        client_id: String,
        scopes: Vec<String>,
        granted_at: i64,
    },
    UserAdminRole {
        tenant_id: String,
        user_id: String,
        role: String,
        granted_at: i64,
        granted_by: String,
    },
    WebhookEndpoint {
        id: String,
        tenant_id: String,
        url: String,
        description: String,
        kek_id: String,
        sealed_secret: String,
        created_at: i64,
        secret_rotated_at: i64,
    },
    CaSet {
        id: String,
        tenant_id: String,
        name: String,
        pem: String,
        created_at: i64,
    },
    Branding {
        tenant_id: String,
        display_name: Option<String>,
        logo_url: Option<String>,
        accent_colour: Option<String>,
        updated_at: i64,
    },
    LifetimePolicy {
        tenant_id: String,
        client_secret_max_age_secs: Option<i64>,
        client_secret_expiry_required: bool,
        existing: String,
        updated_at: i64,
    },
    TrustedIssuer {
        tenant_id: String,
        issuer: String,
        preset: String,
        key_source: String,
        key_source_value: Option<String>,
        algorithms: Vec<String>,
        max_token_age_s: i64,
        created_at: i64,
        updated_at: i64,
    },
    TrustRule {
        tenant_id: String,
        id: String,
        issuer: String,
        audience: String,
        conditions: String,
        audiences: Vec<String>,
        scopes: Vec<String>,
        max_lifetime_s: i64,
        max_token_age_s: Option<i64>,
        bound_to_subject_lifetime: bool,
        /// Format 6: the client the rule authenticates; absent (older files) or null: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        created_at: i64,
        updated_at: i64,
    },
    SubjectJti {
        issuer: String,
        jti: String,
        expires_at: i64,
    },
    End {
        records: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserLine {
    id: String,
    tenant_id: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    status: String,
    profile: serde_json::Value,
    password_hash: Option<String>,
    password_changed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
}

fn confidential() -> String {
    ClientType::Confidential.as_str().to_owned()
}

fn web() -> String {
    ApplicationType::Web.as_str().to_owned()
}

/// A client's or resource server's secret: `owner_id` is the client or resource server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretLine {
    id: String,
    owner_id: String,
    display_prefix: String,
    secret_digest: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyLine {
    id: String,
    tenant_id: String,
    environment: String,
    name: String,
    description: String,
    owner: String,
    scopes: String,
    audiences: Option<String>,
    ip_allowlist: Option<String>,
    rate_limit_requests: Option<i64>,
    rate_limit_window_secs: Option<i64>,
    metadata: String,
    display_prefix: String,
    digest: String,
    created_at: i64,
    created_by: Option<String>,
    expires_at: Option<i64>,
    disabled_at: Option<i64>,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    replaced_by: Option<String>,
    rotation_overlap_ends_at: Option<i64>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millis()
}

fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_millis)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl From<Record> for Line {
    fn from(record: Record) -> Self {
        match record {
            Record::Tenant(t) => Line::Tenant {
                id: t.id.as_str().to_owned(),
                display_name: t.display_name,
                status: t.status.as_str().to_owned(),
                created_at: ms(t.created_at),
                updated_at: ms(t.updated_at),
            },
            Record::ApiKeyPolicy(p) => Line::ApiKeyPolicy {
                tenant_id: p.tenant.as_str().to_owned(),
                default_ttl_secs: p.policy.default_ttl_secs,
                max_ttl_secs: p.policy.max_ttl_secs,
                allow_never: p.policy.allow_never,
                updated_at: ms(p.updated_at),
            },
            Record::OAuthPolicy(p) => Line::OAuthPolicy {
                tenant_id: p.tenant.as_str().to_owned(),
                require_pushed_requests: p.policy.require_pushed_requests,
                updated_at: ms(p.policy.updated_at),
            },
            Record::SigningKey(k) => Line::SigningKey {
                kid: k.kid,
                algorithm: k.algorithm.as_str().to_owned(),
                state: k.state.as_str().to_owned(),
                public_jwk: k.public_jwk,
                kek_id: k.kek_id,
                sealed_private_key: b64(&k.sealed_private_key),
                created_at: ms(k.created_at),
                activates_at: ms(k.activates_at),
                retired_at: opt_ms(k.retired_at),
                publish_until: opt_ms(k.publish_until),
            },
            Record::AdminCredential(c) => Line::AdminCredential {
                id: c.id,
                tenant_id: c.tenant.as_str().to_owned(),
                role: c.role.as_str().to_owned(),
                name: c.name,
                display_prefix: c.display_prefix,
                secret_digest: b64(&c.secret_digest),
                created_at: ms(c.created_at),
                created_by: c.created_by,
                revoked_at: opt_ms(c.revoked_at),
                last_used_at: opt_ms(c.last_used_at),
            },
            Record::ResourceServer(rs) => Line::ResourceServer {
                id: rs.id,
                tenant_id: rs.tenant.as_str().to_owned(),
                name: rs.name,
                audience: rs.audience,
                scopes: rs.scopes,
                created_at: ms(rs.created_at),
                updated_at: ms(rs.updated_at),
            },
            Record::ResourceServerSecret(s) => Line::ResourceServerSecret(SecretLine {
                id: s.id,
                owner_id: s.resource_server_id,
                display_prefix: s.display_prefix,
                secret_digest: b64(&s.secret_digest),
                created_at: ms(s.created_at),
                expires_at: opt_ms(s.expires_at),
                last_used_at: opt_ms(s.last_used_at),
            }),
            Record::Client(c) => Line::Client {
                id: c.id,
                tenant_id: c.tenant.as_str().to_owned(),
                name: c.name,
                environment: c.environment,
                auth_method: c.auth_method,
                grant_types: c.grant_types,
                scopes: c.scopes,
                audiences: c.audiences,
                access_token_ttl_secs: c.access_token_ttl_secs,
                can_introspect: c.can_introspect,
                jwks: c.jwks,
                jwks_uri: c.jwks_uri,
                status: c.status.as_str().to_owned(),
                created_at: ms(c.created_at),
                updated_at: ms(c.updated_at),
                last_used_at: opt_ms(c.last_used_at),
                client_type: c.client_type.as_str().to_owned(),
                application_type: c.application_type.as_str().to_owned(),
                redirect_uris: c.redirect_uris,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
                allowed_web_origins: c.allowed_web_origins,
                first_party: c.first_party,
                backchannel_logout_uri: c.backchannel_logout_uri,
                backchannel_logout_session_required: c.backchannel_logout_session_required,
                require_pushed_requests: c.require_pushed_requests,
                id_token_signed_response_alg: c
                    .id_token_signed_response_alg
                    .map(|a| a.as_str().to_owned()),
                require_dpop: c.require_dpop,
                tls_subject_kind: c.tls_subject.as_ref().map(|t| t.kind.clone()),
                tls_subject_value: c.tls_subject.map(|t| t.value),
                certificate_bound_tokens: c.certificate_bound_tokens,
            },
            Record::ClientSecret(s) => Line::ClientSecret(SecretLine {
                id: s.id,
                owner_id: s.client_id,
                display_prefix: s.display_prefix,
                secret_digest: b64(&s.secret_digest),
                created_at: ms(s.created_at),
                expires_at: opt_ms(s.expires_at),
                last_used_at: opt_ms(s.last_used_at),
            }),
            Record::ApiKey(k) => Line::ApiKey(ApiKeyLine {
                id: k.id,
                tenant_id: k.tenant.as_str().to_owned(),
                environment: k.environment,
                name: k.name,
                description: k.description,
                owner: k.owner,
                scopes: k.scopes,
                audiences: k.audiences,
                ip_allowlist: k.ip_allowlist,
                rate_limit_requests: k.rate_limit_requests,
                rate_limit_window_secs: k.rate_limit_window_secs,
                metadata: k.metadata,
                display_prefix: k.display_prefix,
                digest: b64(&k.digest),
                created_at: ms(k.created_at),
                created_by: k.created_by,
                expires_at: opt_ms(k.expires_at),
                disabled_at: opt_ms(k.disabled_at),
                revoked_at: opt_ms(k.revoked_at),
                revoked_reason: k.revoked_reason,
                replaced_by: k.replaced_by,
                rotation_overlap_ends_at: opt_ms(k.rotation_overlap_ends_at),
                last_used_at: opt_ms(k.last_used_at),
                last_used_ip: k.last_used_ip,
            }),
            Record::Revocation(r) => Line::Revocation {
                seq: r.seq,
                tenant_id: r.tenant.as_str().to_owned(),
                kind: r.kind.as_str().to_owned(),
                subject: r.subject,
                revoked_before: opt_ms(r.revoked_before),
                expires_at: opt_ms(r.expires_at),
                reason: r.reason,
                created_at: ms(r.created_at),
            },
            Record::AssertionJti(j) => Line::AssertionJti {
                client_id: j.client_id,
                jti: j.jti,
                expires_at: ms(j.expires_at),
            },
            Record::User(u) => Line::User(UserLine {
                id: u.id.as_str().to_owned(),
                tenant_id: u.tenant.as_str().to_owned(),
                username: u.username.as_str().to_owned(),
                email: u.email.map(|e| e.as_str().to_owned()),
                email_verified: u.email_verified,
                status: u.status.as_str().to_owned(),
                profile: serde_json::to_value(&u.profile).unwrap_or_default(),
                password_hash: u.password_hash,
                password_changed_at: opt_ms(u.password_changed_at),
                created_at: ms(u.created_at),
                updated_at: ms(u.updated_at),
                last_login_at: opt_ms(u.last_login_at),
            }),
            Record::Archived(a) => Line::Archived {
                kind: a.kind.as_str().to_owned(),
                id: a.id,
                tenant_id: a.tenant.to_string(),
                archived_at: ms(a.archived_at),
                archived_by: a.archived_by,
            },
            Record::UserAdminRole(r) => Line::UserAdminRole {
                tenant_id: r.tenant.as_str().to_owned(),
                user_id: r.user_id.as_str().to_owned(),
                role: r.role.as_str().to_owned(),
                granted_at: ms(r.granted_at),
                granted_by: r.granted_by,
            },
            Record::Consent(c) => Line::Consent {
                tenant_id: c.tenant.as_str().to_owned(),
                user_id: c.user_id.as_str().to_owned(),
                client_id: c.client_id.as_str().to_owned(),
                scopes: c.scopes,
                granted_at: ms(c.granted_at),
            },
            Record::WebhookEndpoint(e) => Line::WebhookEndpoint {
                id: e.id,
                tenant_id: e.tenant.as_str().to_owned(),
                url: e.url,
                description: e.description,
                kek_id: e.kek_id,
                sealed_secret: b64(&e.sealed_secret),
                created_at: ms(e.created_at),
                secret_rotated_at: ms(e.secret_rotated_at),
            },
            Record::CaSet(c) => Line::CaSet {
                id: c.id,
                tenant_id: c.tenant.as_str().to_owned(),
                name: c.name,
                pem: c.pem,
                created_at: ms(c.created_at),
            },
            Record::Branding(b) => Line::Branding {
                tenant_id: b.tenant.as_str().to_owned(),
                display_name: b.display_name,
                logo_url: b.logo_url,
                accent_colour: b.accent_colour,
                updated_at: ms(b.updated_at),
            },
            Record::LifetimePolicy(p) => Line::LifetimePolicy {
                tenant_id: p.tenant.as_str().to_owned(),
                client_secret_max_age_secs: p.client_secret_max_age_secs,
                client_secret_expiry_required: p.client_secret_expiry_required,
                existing: p.existing,
                updated_at: ms(p.updated_at),
            },
            Record::TrustedIssuer(i) => Line::TrustedIssuer {
                tenant_id: i.tenant.as_str().to_owned(),
                key_source: i.key_source.kind().to_owned(),
                key_source_value: i.key_source.value().map(str::to_owned),
                issuer: i.issuer,
                preset: i.preset,
                algorithms: i.algorithms,
                max_token_age_s: i.max_token_age_s,
                created_at: ms(i.created_at),
                updated_at: ms(i.updated_at),
            },
            Record::TrustRule(r) => Line::TrustRule {
                tenant_id: r.tenant.as_str().to_owned(),
                id: r.id,
                issuer: r.issuer,
                audience: r.audience,
                conditions: r.conditions,
                audiences: r.audiences,
                scopes: r.scopes,
                max_lifetime_s: r.max_lifetime_s,
                max_token_age_s: r.max_token_age_s,
                bound_to_subject_lifetime: r.bound_to_subject_lifetime,
                client_id: r.client_id,
                created_at: ms(r.created_at),
                updated_at: ms(r.updated_at),
            },
            Record::SubjectJti(j) => Line::SubjectJti {
                issuer: j.issuer,
                jti: j.jti,
                expires_at: ms(j.expires_at),
            },
        }
    }
}

fn tenant(s: &str) -> std::result::Result<TenantId, &'static str> {
    TenantId::parse(s).map_err(|_| "tenant id")
}

fn unb64(s: &str, what: &'static str) -> std::result::Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| what)
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn opt_at(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

impl Line {
    /// The record a line holds, its values parsed as the store would parse them from a row;
    /// `Err` names the field that is not valid.
    fn into_record(self) -> std::result::Result<Record, &'static str> {
        Ok(match self {
            Line::Header { .. } | Line::End { .. } => return Err("record type"),
            Line::Tenant {
                id,
                display_name,
                status,
                created_at,
                updated_at,
            } => Record::Tenant(Tenant {
                id: tenant(&id)?,
                display_name,
                status: TenantStatus::parse(&status).ok_or("tenant status")?,
                created_at: at(created_at),
                updated_at: at(updated_at),
            }),
            Line::ApiKeyPolicy {
                tenant_id,
                default_ttl_secs,
                max_ttl_secs,
                allow_never,
                updated_at,
            } => Record::ApiKeyPolicy(ApiKeyPolicyExport {
                tenant: tenant(&tenant_id)?,
                policy: ApiKeyPolicyRecord {
                    default_ttl_secs,
                    max_ttl_secs,
                    allow_never,
                },
                updated_at: at(updated_at),
            }),
            Line::OAuthPolicy {
                tenant_id,
                require_pushed_requests,
                updated_at,
            } => Record::OAuthPolicy(OAuthPolicyExport {
                tenant: tenant(&tenant_id)?,
                policy: OAuthPolicyRecord {
                    require_pushed_requests,
                    updated_at: at(updated_at),
                },
            }),
            Line::SigningKey {
                kid,
                algorithm,
                state,
                public_jwk,
                kek_id,
                sealed_private_key,
                created_at,
                activates_at,
                retired_at,
                publish_until,
            } => Record::SigningKey(StoredSigningKey {
                kid,
                algorithm: SigningAlgorithm::parse(&algorithm).ok_or("signing algorithm")?,
                state: KeyState::parse(&state).ok_or("signing key state")?,
                public_jwk,
                kek_id,
                sealed_private_key: unb64(&sealed_private_key, "sealed private key")?,
                created_at: at(created_at),
                activates_at: at(activates_at),
                retired_at: opt_at(retired_at),
                publish_until: opt_at(publish_until),
            }),
            Line::AdminCredential {
                id,
                tenant_id,
                role,
                name,
                display_prefix,
                secret_digest,
                created_at,
                created_by,
                revoked_at,
                last_used_at,
            } => Record::AdminCredential(AdminCredentialRecord {
                id,
                tenant: tenant(&tenant_id)?,
                role: AdminRole::parse(&role).ok_or("admin role")?,
                name,
                display_prefix,
                secret_digest: unb64(&secret_digest, "secret digest")?,
                created_at: at(created_at),
                created_by,
                revoked_at: opt_at(revoked_at),
                last_used_at: opt_at(last_used_at),
            }),
            Line::ResourceServer {
                id,
                tenant_id,
                name,
                audience,
                scopes,
                created_at,
                updated_at,
            } => Record::ResourceServer(ResourceServer {
                id,
                tenant: tenant(&tenant_id)?,
                name,
                audience,
                scopes: list(scopes, "scopes")?,
                created_at: at(created_at),
                updated_at: at(updated_at),
            }),
            Line::ResourceServerSecret(s) => {
                Record::ResourceServerSecret(ResourceServerSecretRecord {
                    id: s.id,
                    resource_server_id: s.owner_id,
                    display_prefix: s.display_prefix,
                    secret_digest: unb64(&s.secret_digest, "secret digest")?,
                    created_at: at(s.created_at),
                    expires_at: opt_at(s.expires_at),
                    last_used_at: opt_at(s.last_used_at),
                })
            }
            Line::Client {
                id,
                tenant_id,
                name,
                environment,
                auth_method,
                grant_types,
                scopes,
                audiences,
                access_token_ttl_secs,
                can_introspect,
                jwks,
                jwks_uri,
                status,
                created_at,
                updated_at,
                last_used_at,
                client_type,
                application_type,
                redirect_uris,
                post_logout_redirect_uris,
                allowed_web_origins,
                first_party,
                backchannel_logout_uri,
                backchannel_logout_session_required,
                require_pushed_requests,
                id_token_signed_response_alg,
                require_dpop,
                tls_subject_kind,
                tls_subject_value,
                certificate_bound_tokens,
            } => Record::Client(OAuthClient {
                id,
                tenant: tenant(&tenant_id)?,
                name,
                environment,
                auth_method,
                grant_types: list(grant_types, "grant types")?,
                scopes: list(scopes, "scopes")?,
                audiences: list(audiences, "audiences")?,
                access_token_ttl_secs,
                can_introspect,
                jwks,
                jwks_uri,
                status: ClientStatus::parse(&status).ok_or("client status")?,
                created_at: at(created_at),
                updated_at: at(updated_at),
                last_used_at: opt_at(last_used_at),
                client_type: ClientType::parse(&client_type).ok_or("client type")?,
                application_type: ApplicationType::parse(&application_type)
                    .ok_or("application type")?,
                redirect_uris: list(redirect_uris, "redirect URIs")?,
                post_logout_redirect_uris: list(
                    post_logout_redirect_uris,
                    "post-logout redirect URIs",
                )?,
                allowed_web_origins: list(allowed_web_origins, "web origins")?,
                first_party,
                backchannel_logout_uri,
                backchannel_logout_session_required,
                require_pushed_requests,
                id_token_signed_response_alg: id_token_signed_response_alg
                    .map(|a| SigningAlgorithm::parse(&a).ok_or("ID-token algorithm"))
                    .transpose()?,
                require_dpop,
                tls_subject: match (tls_subject_kind, tls_subject_value) {
                    (Some(kind), Some(value)) => Some(crate::TlsSubjectRecord { kind, value }),
                    (None, None) => None,
                    _ => return Err("client certificate subject"),
                },
                certificate_bound_tokens,
            }),
            Line::ClientSecret(s) => Record::ClientSecret(ClientSecretRecord {
                id: s.id,
                client_id: s.owner_id,
                display_prefix: s.display_prefix,
                secret_digest: unb64(&s.secret_digest, "secret digest")?,
                created_at: at(s.created_at),
                expires_at: opt_at(s.expires_at),
                last_used_at: opt_at(s.last_used_at),
            }),
            Line::ApiKey(k) => Record::ApiKey(ApiKeyRecord {
                id: k.id,
                tenant: tenant(&k.tenant_id)?,
                environment: k.environment,
                name: k.name,
                description: k.description,
                owner: k.owner,
                scopes: k.scopes,
                audiences: k.audiences,
                ip_allowlist: k.ip_allowlist,
                rate_limit_requests: k.rate_limit_requests,
                rate_limit_window_secs: k.rate_limit_window_secs,
                metadata: k.metadata,
                display_prefix: k.display_prefix,
                digest: unb64(&k.digest, "API key digest")?,
                created_at: at(k.created_at),
                created_by: k.created_by,
                expires_at: opt_at(k.expires_at),
                disabled_at: opt_at(k.disabled_at),
                revoked_at: opt_at(k.revoked_at),
                revoked_reason: k.revoked_reason,
                replaced_by: k.replaced_by,
                rotation_overlap_ends_at: opt_at(k.rotation_overlap_ends_at),
                last_used_at: opt_at(k.last_used_at),
                last_used_ip: k.last_used_ip,
            }),
            Line::Revocation {
                seq,
                tenant_id,
                kind,
                subject,
                revoked_before,
                expires_at,
                reason,
                created_at,
            } => Record::Revocation(RevocationEntry {
                seq,
                tenant: tenant(&tenant_id)?,
                kind: RevocationKind::parse(&kind).ok_or("revocation kind")?,
                subject,
                revoked_before: opt_at(revoked_before),
                expires_at: opt_at(expires_at),
                reason,
                created_at: at(created_at),
            }),
            Line::AssertionJti {
                client_id,
                jti,
                expires_at,
            } => Record::AssertionJti(AssertionJti {
                client_id,
                jti,
                expires_at: at(expires_at),
            }),
            Line::User(u) => Record::User(UserRecord {
                id: UserId::parse(&u.id).map_err(|_| "user id")?,
                tenant: tenant(&u.tenant_id)?,
                username: Username::parse(&u.username).map_err(|_| "username")?,
                email: u
                    .email
                    .map(|e| Email::parse(&e).map_err(|_| "email"))
                    .transpose()?,
                email_verified: u.email_verified,
                status: UserStatus::parse(&u.status).map_err(|_| "user status")?,
                profile: serde_json::from_value(u.profile).map_err(|_| "user profile")?,
                password_hash: u.password_hash,
                password_changed_at: opt_at(u.password_changed_at),
                created_at: at(u.created_at),
                updated_at: at(u.updated_at),
                last_login_at: opt_at(u.last_login_at),
            }),
            Line::Archived {
                kind,
                id,
                tenant_id,
                archived_at,
                archived_by,
            } => Record::Archived(ArchivedObject {
                kind: ArchivedKind::parse(&kind).ok_or("archived kind")?,
                id,
                tenant: tenant(&tenant_id)?,
                archived_at: at(archived_at),
                archived_by,
            }),
            Line::UserAdminRole {
                tenant_id,
                user_id,
                role,
                granted_at,
                granted_by,
            } => {
                let tenant = tenant(&tenant_id)?;
                // A role no user of this tenant may hold is refused, as the grant API refuses it.
                let role = AdminRole::parse(&role)
                    .filter(|r| r.exists_in(&tenant))
                    .ok_or("user admin role")?;
                Record::UserAdminRole(crate::UserAdminRole {
                    tenant,
                    user_id: UserId::parse(&user_id).map_err(|_| "user admin role user id")?,
                    role,
                    granted_at: at(granted_at),
                    granted_by,
                })
            }
            Line::Consent {
                tenant_id,
                user_id,
                client_id,
                scopes,
                granted_at,
            } => Record::Consent(ConsentRecord {
                tenant: tenant(&tenant_id)?,
                user_id: UserId::parse(&user_id).map_err(|_| "consent user id")?,
                client_id: ClientId::parse(&client_id).ok_or("consent client id")?,
                scopes: list(scopes, "consent scopes")?,
                granted_at: at(granted_at),
            }),
            Line::WebhookEndpoint {
                id,
                tenant_id,
                url,
                description,
                kek_id,
                sealed_secret,
                created_at,
                secret_rotated_at,
            } => Record::WebhookEndpoint(crate::WebhookEndpointRecord {
                id,
                tenant: tenant(&tenant_id)?,
                url,
                description,
                kek_id,
                sealed_secret: unb64(&sealed_secret, "webhook secret")?,
                created_at: at(created_at),
                secret_rotated_at: at(secret_rotated_at),
            }),
            Line::CaSet {
                id,
                tenant_id,
                name,
                pem,
                created_at,
            } => Record::CaSet(crate::CaSetRecord {
                id,
                tenant: tenant(&tenant_id)?,
                name,
                pem,
                created_at: at(created_at),
            }),
            Line::Branding {
                tenant_id,
                display_name,
                logo_url,
                accent_colour,
                updated_at,
            } => Record::Branding(crate::BrandingRecord {
                tenant: tenant(&tenant_id)?,
                display_name,
                logo_url,
                accent_colour,
                updated_at: at(updated_at),
            }),
            Line::LifetimePolicy {
                tenant_id,
                client_secret_max_age_secs,
                client_secret_expiry_required,
                existing,
                updated_at,
            } => Record::LifetimePolicy(crate::LifetimePolicyRecord {
                tenant: tenant(&tenant_id)?,
                client_secret_max_age_secs,
                client_secret_expiry_required,
                existing,
                updated_at: at(updated_at),
            }),
            Line::TrustedIssuer {
                tenant_id,
                issuer,
                preset,
                key_source,
                key_source_value,
                algorithms,
                max_token_age_s,
                created_at,
                updated_at,
            } => Record::TrustedIssuer(TrustedIssuerRecord {
                tenant: tenant(&tenant_id)?,
                issuer,
                preset,
                key_source: KeySourceRecord::from_parts(&key_source, key_source_value)
                    .ok_or("trusted issuer key source")?,
                algorithms: list(algorithms, "trusted issuer algorithms")?,
                max_token_age_s,
                created_at: at(created_at),
                updated_at: at(updated_at),
            }),
            Line::TrustRule {
                tenant_id,
                id,
                issuer,
                audience,
                conditions,
                audiences,
                scopes,
                max_lifetime_s,
                max_token_age_s,
                bound_to_subject_lifetime,
                client_id,
                created_at,
                updated_at,
            } => Record::TrustRule(TrustRuleRecord {
                tenant: tenant(&tenant_id)?,
                id,
                issuer,
                audience,
                conditions,
                audiences: list(audiences, "trust rule audiences")?,
                scopes: list(scopes, "trust rule scopes")?,
                max_lifetime_s,
                max_token_age_s,
                bound_to_subject_lifetime,
                client_id,
                created_at: at(created_at),
                updated_at: at(updated_at),
            }),
            Line::SubjectJti {
                issuer,
                jti,
                expires_at,
            } => Record::SubjectJti(SubjectJtiRecord {
                issuer,
                jti,
                expires_at: at(expires_at),
            }),
        })
    }
}

/// A list stored space-separated: its items may not be empty or hold spaces, or it would not
/// read back the same.
fn list(items: Vec<String>, what: &'static str) -> std::result::Result<Vec<String>, &'static str> {
    if items.iter().any(|i| i.is_empty() || i.contains(' ')) {
        return Err(what);
    }
    Ok(items)
}

/// Tables an import must find empty, with what does not count. With [`NOT_IMPORT_CHECKED`] this
/// names every table of the schema (a conformance test fails when a migration adds one to
/// neither), so a new table can never be silently merged into by an import.
pub const IMPORT_TABLES: [(&str, &str); 36] = [
    ("tenants", "id <> 'system'"),
    ("api_key_policies", "1 = 1"),
    ("tenant_oauth_policies", "1 = 1"),
    ("signing_keys", "1 = 1"),
    ("admin_credentials", "1 = 1"),
    ("resource_servers", "1 = 1"),
    ("resource_server_secrets", "1 = 1"),
    ("oauth_clients", "1 = 1"),
    ("oauth_client_secrets", "1 = 1"),
    ("api_keys", "1 = 1"),
    ("revocations", "1 = 1"),
    ("client_assertion_jtis", "1 = 1"),
    ("audit_events", "1 = 1"),
    ("users", "1 = 1"),
    // Not exported (short-lived links; a user asks for a new one), but an import must still
    // find it empty.
    ("user_tokens", "1 = 1"),
    ("archived_objects", "1 = 1"),
    // Sign-in state: consents are exported; sessions, codes and refresh families deliberately
    // are not (module docs), but an import still refuses a database that holds any.
    ("consents", "1 = 1"),
    ("tenant_branding", "1 = 1"),
    ("tenant_ca_sets", "1 = 1"),
    ("sign_in_sessions", "1 = 1"),
    ("authorization_codes", "1 = 1"),
    ("pushed_requests", "1 = 1"),
    ("refresh_families", "1 = 1"),
    ("refresh_tokens", "1 = 1"),
    // Endpoints are exported; their delivery queue is not (it carries alerts, which are not),
    // but an import still refuses a database that holds any.
    ("webhook_endpoints", "1 = 1"),
    ("webhook_deliveries", "1 = 1"),
    // Back-channel logout: which clients a session issued tokens to, and notifications still
    // to deliver. Both live and die with sessions, which are not exported either.
    ("session_clients", "1 = 1"),
    ("backchannel_deliveries", "1 = 1"),
    // Workload identity federation: all exported.
    ("trusted_issuers", "1 = 1"),
    ("trust_rules", "1 = 1"),
    ("subject_token_jtis", "1 = 1"),
    // The audit chain's checkpoints: history like the audit log, not exported, but an import
    // still refuses a database that holds any.
    ("audit_checkpoints", "1 = 1"),
    // DPoP proof ids live for the proof window (minutes): not exported, like sessions, but an
    // import still refuses a database that holds any.
    ("dpop_proof_jtis", "1 = 1"),
    // Device sign-in requests live ten minutes: not exported, like sessions, but an import
    // still refuses a database that holds any. Admin roles held by users are exported
    // (version 6).
    ("device_authorizations", "1 = 1"),
    ("user_admin_roles", "1 = 1"),
    // Tenants' credential lifetime policies (issue 19): an import must find none.
    ("tenant_lifetime_policies", "1 = 1"),
];

/// Tables an import does not check: the migrator's own, the log head the import derives, and
/// alerts: `alerts` is operational state about this installation's recent traffic (issue 19): not
/// exported, and an import leaves it alone.
/// `audit_chain_head` always holds its one row (position 0 in a new database).
pub const NOT_IMPORT_CHECKED: [&str; 5] = [
    "_sqlx_migrations",
    "revocation_log_head",
    "alerts",
    "audit_chain_head",
    // When trust rules and redirect URIs last matched: traffic history like `alerts`.
    "admission_matches",
];

/// Records written per multi-row `INSERT`: under SQLite's and PostgreSQL's bind limits for the
/// widest table (API keys, 24 columns).
pub(crate) const IMPORT_BATCH: usize = 500;

/// The SQL side of [`TransferStore`], expanded for each backend beside `impl_sql_store!` (whose
/// row decoders and API key insert it reuses, so each table's columns are listed once for
/// reading and once for writing). `$snapshot` is the statement that makes the export's
/// transaction one snapshot on that backend (SQLite's deferred read transaction already is).
macro_rules! impl_transfer {
    ($store:ty, $row:ty, $snapshot:expr) => {
        use $crate::export::{ApiKeyPolicyExport, AssertionJti, ImportCounts, Record};


        async fn blockers_in(conn: &mut <Db as sqlx::Database>::Connection) -> Result<Vec<&'static str>> {
            let mut found = Vec::new();
            for (table, filter) in $crate::export::IMPORT_TABLES {
                let any: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT CAST(1 AS BIGINT) FROM {table} WHERE {filter} LIMIT 1"
                ))
                .fetch_optional(&mut *conn)
                .await?;
                if any.is_some() {
                    found.push(table);
                }
            }
            Ok(found)
        }

        /// Inserts one batch of records of one kind.
        async fn insert_batch(
            tx: &mut sqlx::Transaction<'_, Db>,
            batch: &[Record],
        ) -> Result<()> {
            macro_rules! each {
                ($variant:ident) => {
                    batch.iter().filter_map(|r| match r {
                        Record::$variant(x) => Some(x),
                        _ => None,
                    })
                };
            }
            let Some(first) = batch.first() else {
                return Ok(());
            };
            let mut q = match first {
                Record::Tenant(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO tenants (id, display_name, status, created_at, updated_at) ",
                    );
                    q.push_values(each!(Tenant), |mut b, t| {
                        b.push_bind(t.id.as_str().to_owned())
                            .push_bind(t.display_name.clone())
                            .push_bind(t.status.as_str())
                            .push_bind(t.created_at.as_millis())
                            .push_bind(t.updated_at.as_millis());
                    });
                    // The migrations create `system`: the export's row replaces it.
                    q.push(
                        " ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
                         status = excluded.status, created_at = excluded.created_at, \
                         updated_at = excluded.updated_at",
                    );
                    q
                }
                Record::ApiKeyPolicy(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO api_key_policies (tenant_id, default_ttl_secs, max_ttl_secs, \
                         allow_never, updated_at) ",
                    );
                    q.push_values(each!(ApiKeyPolicy), |mut b, p: &ApiKeyPolicyExport| {
                        b.push_bind(p.tenant.as_str().to_owned())
                            .push_bind(p.policy.default_ttl_secs)
                            .push_bind(p.policy.max_ttl_secs)
                            .push_bind(i64::from(p.policy.allow_never))
                            .push_bind(p.updated_at.as_millis());
                    });
                    q
                }
                Record::OAuthPolicy(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO tenant_oauth_policies (tenant_id, require_pushed_requests, \
                         updated_at) ",
                    );
                    q.push_values(each!(OAuthPolicy), |mut b, p: &$crate::export::OAuthPolicyExport| {
                        b.push_bind(p.tenant.as_str().to_owned())
                            .push_bind(i64::from(p.policy.require_pushed_requests))
                            .push_bind(p.policy.updated_at.as_millis());
                    });
                    q
                }
                Record::SigningKey(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO signing_keys (kid, algorithm, state, public_jwk, kek_id, \
                         sealed_private_key, created_at, activates_at, retired_at, publish_until) ",
                    );
                    q.push_values(each!(SigningKey), |mut b, k| {
                        b.push_bind(k.kid.clone())
                            .push_bind(k.algorithm.as_str())
                            .push_bind(k.state.as_str())
                            .push_bind(k.public_jwk.clone())
                            .push_bind(k.kek_id.clone())
                            .push_bind(k.sealed_private_key.clone())
                            .push_bind(k.created_at.as_millis())
                            .push_bind(k.activates_at.as_millis())
                            .push_bind(k.retired_at.map(Timestamp::as_millis))
                            .push_bind(k.publish_until.map(Timestamp::as_millis));
                    });
                    q
                }
                Record::AdminCredential(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO admin_credentials (id, tenant_id, role, name, display_prefix, \
                         secret_digest, created_at, created_by, revoked_at, last_used_at) ",
                    );
                    q.push_values(each!(AdminCredential), |mut b, c| {
                        b.push_bind(c.id.clone())
                            .push_bind(c.tenant.as_str().to_owned())
                            .push_bind(c.role.as_str())
                            .push_bind(c.name.clone())
                            .push_bind(c.display_prefix.clone())
                            .push_bind(c.secret_digest.clone())
                            .push_bind(c.created_at.as_millis())
                            .push_bind(c.created_by.clone())
                            .push_bind(c.revoked_at.map(Timestamp::as_millis))
                            .push_bind(c.last_used_at.map(Timestamp::as_millis));
                    });
                    q
                }
                Record::ResourceServer(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO resource_servers (id, tenant_id, name, audience, scopes, \
                         created_at, updated_at) ",
                    );
                    q.push_values(each!(ResourceServer), |mut b, rs| {
                        b.push_bind(rs.id.clone())
                            .push_bind(rs.tenant.as_str().to_owned())
                            .push_bind(rs.name.clone())
                            .push_bind(rs.audience.clone())
                            .push_bind(rs.scopes.join(" "))
                            .push_bind(rs.created_at.as_millis())
                            .push_bind(rs.updated_at.as_millis());
                    });
                    q
                }
                Record::ResourceServerSecret(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO resource_server_secrets (id, resource_server_id, \
                         display_prefix, secret_digest, created_at, expires_at, last_used_at) ",
                    );
                    q.push_values(each!(ResourceServerSecret), |mut b, s| {
                        b.push_bind(s.id.clone())
                            .push_bind(s.resource_server_id.clone())
                            .push_bind(s.display_prefix.clone())
                            .push_bind(s.secret_digest.clone())
                            .push_bind(s.created_at.as_millis())
                            .push_bind(s.expires_at.map(Timestamp::as_millis))
                            .push_bind(s.last_used_at.map(Timestamp::as_millis));
                    });
                    q
                }
                Record::Client(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO oauth_clients (id, tenant_id, name, environment, auth_method, \
                         grant_types, scopes, audiences, access_token_ttl_secs, can_introspect, \
                         jwks, jwks_uri, status, created_at, updated_at, last_used_at, \
                         client_type, application_type, redirect_uris, \
                         post_logout_redirect_uris, allowed_web_origins, first_party, \
                         backchannel_logout_uri, backchannel_logout_session_required, \
                         require_pushed_requests, id_token_signed_response_alg, require_dpop, \
                         tls_subject_kind, tls_subject_value, certificate_bound_tokens) ",
                    );
                    q.push_values(each!(Client), |mut b, c| {
                        b.push_bind(c.id.clone())
                            .push_bind(c.tenant.as_str().to_owned())
                            .push_bind(c.name.clone())
                            .push_bind(c.environment.clone())
                            .push_bind(c.auth_method.clone())
                            .push_bind(c.grant_types.join(" "))
                            .push_bind(c.scopes.join(" "))
                            .push_bind(c.audiences.join(" "))
                            .push_bind(c.access_token_ttl_secs)
                            .push_bind(i64::from(c.can_introspect))
                            .push_bind(c.jwks.clone())
                            .push_bind(c.jwks_uri.clone())
                            .push_bind(c.status.as_str())
                            .push_bind(c.created_at.as_millis())
                            .push_bind(c.updated_at.as_millis())
                            .push_bind(c.last_used_at.map(Timestamp::as_millis))
                            .push_bind(c.client_type.as_str())
                            .push_bind(c.application_type.as_str())
                            .push_bind(c.redirect_uris.join(" "))
                            .push_bind(c.post_logout_redirect_uris.join(" "))
                            .push_bind(c.allowed_web_origins.join(" "))
                            .push_bind(i64::from(c.first_party))
                            .push_bind(c.backchannel_logout_uri.clone())
                            .push_bind(i64::from(c.backchannel_logout_session_required))
                            .push_bind(i64::from(c.require_pushed_requests))
                            .push_bind(c.id_token_signed_response_alg.map(|a| a.as_str()))
                            .push_bind(i64::from(c.require_dpop))
                            .push_bind(c.tls_subject.as_ref().map(|t| t.kind.clone()))
                            .push_bind(c.tls_subject.as_ref().map(|t| t.value.clone()))
                            .push_bind(i64::from(c.certificate_bound_tokens));
                    });
                    q
                }
                Record::ClientSecret(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO oauth_client_secrets (id, client_id, display_prefix, \
                         secret_digest, created_at, expires_at, last_used_at) ",
                    );
                    q.push_values(each!(ClientSecret), |mut b, s| {
                        b.push_bind(s.id.clone())
                            .push_bind(s.client_id.clone())
                            .push_bind(s.display_prefix.clone())
                            .push_bind(s.secret_digest.clone())
                            .push_bind(s.created_at.as_millis())
                            .push_bind(s.expires_at.map(Timestamp::as_millis))
                            .push_bind(s.last_used_at.map(Timestamp::as_millis));
                    });
                    q
                }
                Record::ApiKey(_) => {
                    let keys: Vec<ApiKeyRecord> = each!(ApiKey).cloned().collect();
                    api_key_insert(&keys)
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::from_write)?;
                    return Ok(());
                }
                Record::Revocation(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO revocations (seq, tenant_id, kind, subject, revoked_before, \
                         expires_at, reason, created_at) ",
                    );
                    q.push_values(each!(Revocation), |mut b, r| {
                        b.push_bind(r.seq)
                            .push_bind(r.tenant.as_str().to_owned())
                            .push_bind(r.kind.as_str())
                            .push_bind(r.subject.clone())
                            .push_bind(r.revoked_before.map(Timestamp::as_millis))
                            .push_bind(r.expires_at.map(Timestamp::as_millis))
                            .push_bind(r.reason.clone())
                            .push_bind(r.created_at.as_millis());
                    });
                    q
                }
                Record::WebhookEndpoint(_) => {
                    let endpoints: Vec<$crate::WebhookEndpointRecord> =
                        each!(WebhookEndpoint).cloned().collect();
                    webhook_endpoint_insert(&endpoints)
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::from_write)?;
                    return Ok(());
                }
                Record::TrustedIssuer(_) => {
                    let rows: Vec<$crate::TrustedIssuerRecord> =
                        each!(TrustedIssuer).cloned().collect();
                    trusted_issuer_insert(&rows)
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::from_write)?;
                    return Ok(());
                }
                Record::TrustRule(_) => {
                    let rows: Vec<$crate::TrustRuleRecord> = each!(TrustRule).cloned().collect();
                    trust_rule_insert(&rows)
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::from_write)?;
                    return Ok(());
                }
                Record::SubjectJti(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO subject_token_jtis (issuer, jti, expires_at) ",
                    );
                    q.push_values(each!(SubjectJti), |mut b, j: &$crate::SubjectJtiRecord| {
                        b.push_bind(j.issuer.clone())
                            .push_bind(j.jti.clone())
                            .push_bind(j.expires_at.as_millis());
                    });
                    q
                }
                Record::User(_) => {
                    let users: Vec<UserRecord> = each!(User).cloned().collect();
                    user_insert(&users)
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::from_write)?;
                    return Ok(());
                }
                Record::Archived(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO archived_objects (kind, id, tenant_id, archived_at, \
                         archived_by) ",
                    );
                    q.push_values(each!(Archived), |mut b, a: &ArchivedObject| {
                        b.push_bind(a.kind.as_str())
                            .push_bind(a.id.clone())
                            .push_bind(a.tenant.as_str().to_owned())
                            .push_bind(a.archived_at.as_millis())
                            .push_bind(a.archived_by.clone());
                    });
                    q
                }
                Record::AssertionJti(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) ",
                    );
                    q.push_values(each!(AssertionJti), |mut b, j: &AssertionJti| {
                        b.push_bind(j.client_id.clone())
                            .push_bind(j.jti.clone())
                            .push_bind(j.expires_at.as_millis());
                    });
                    q
                }
                Record::UserAdminRole(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO user_admin_roles (tenant_id, user_id, role, granted_at, \
                         granted_by) ",
                    );
                    q.push_values(each!(UserAdminRole), |mut b, r: &$crate::UserAdminRole| {
                        b.push_bind(r.tenant.as_str().to_owned())
                            .push_bind(r.user_id.as_str().to_owned())
                            .push_bind(r.role.as_str())
                            .push_bind(r.granted_at.as_millis())
                            .push_bind(r.granted_by.clone());
                    });
                    q
                }
                Record::Consent(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO consents (tenant_id, user_id, client_id, scopes, granted_at) ",
                    );
                    q.push_values(each!(Consent), |mut b, c: &$crate::ConsentRecord| {
                        b.push_bind(c.tenant.as_str().to_owned())
                            .push_bind(c.user_id.as_str().to_owned())
                            .push_bind(c.client_id.as_str().to_owned())
                            .push_bind(c.scopes.join(" "))
                            .push_bind(c.granted_at.as_millis());
                    });
                    q
                }
                Record::CaSet(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO tenant_ca_sets (id, tenant_id, name, pem, created_at) ",
                    );
                    q.push_values(each!(CaSet), |mut b, r: &$crate::CaSetRecord| {
                        b.push_bind(r.id.clone())
                            .push_bind(r.tenant.as_str().to_owned())
                            .push_bind(r.name.clone())
                            .push_bind(r.pem.clone())
                            .push_bind(r.created_at.as_millis());
                    });
                    q
                }
                Record::Branding(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO tenant_branding (tenant_id, display_name, logo_url, \
                         accent_colour, updated_at) ",
                    );
                    q.push_values(each!(Branding), |mut b, r: &$crate::BrandingRecord| {
                        b.push_bind(r.tenant.as_str().to_owned())
                            .push_bind(r.display_name.clone())
                            .push_bind(r.logo_url.clone())
                            .push_bind(r.accent_colour.clone())
                            .push_bind(r.updated_at.as_millis());
                    });
                    q
                }
                Record::LifetimePolicy(_) => {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO tenant_lifetime_policies (tenant_id, \
                         client_secret_max_age_secs, client_secret_expiry_required, existing, \
                         updated_at) ",
                    );
                    q.push_values(
                        each!(LifetimePolicy),
                        |mut b, r: &$crate::LifetimePolicyRecord| {
                            b.push_bind(r.tenant.as_str().to_owned())
                                .push_bind(r.client_secret_max_age_secs)
                                .push_bind(i64::from(r.client_secret_expiry_required))
                                .push_bind(r.existing.clone())
                                .push_bind(r.updated_at.as_millis());
                        },
                    );
                    q
                }
            };
            q.build()
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_write)?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::export::TransferStore for $store {
            async fn export_records(
                &self,
                sink: &mut (dyn FnMut(Record) -> Result<()> + Send),
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                if let Some(sql) = $snapshot {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
                macro_rules! table {
                    ($sql:literal, $key:ty, $decode:expr) => {{
                        // Key-set pages: the snapshot keeps them consistent, and memory stays
                        // bounded however many rows a table holds.
                        let mut after: Option<$key> = None;
                        loop {
                            let rows = match &after {
                                None => sqlx::query(concat!($sql, " ORDER BY k LIMIT 1000"))
                                    .fetch_all(&mut *tx)
                                    .await?,
                                Some(k) => sqlx::query(concat!(
                                    "SELECT * FROM (", $sql, ") AS t WHERE k > $1 ORDER BY k LIMIT 1000"
                                ))
                                .bind(k.clone())
                                .fetch_all(&mut *tx)
                                .await?,
                            };
                            let Some(last) = rows.last() else { break };
                            after = Some(last.try_get("k")?);
                            let full = rows.len() == 1000;
                            for row in &rows {
                                sink($decode(row)?)?;
                            }
                            if !full {
                                break;
                            }
                        }
                    }};
                }
                table!("SELECT t.*, t.id AS k FROM tenants t", String, |r| tenant_from_row(r).map(Record::Tenant));
                table!("SELECT t.*, t.tenant_id AS k FROM api_key_policies t", String, |r: &$row| -> Result<Record> {
                    let allow_never: i64 = r.try_get("allow_never")?;
                    Ok(Record::ApiKeyPolicy(ApiKeyPolicyExport {
                        tenant: tenant_id(r.try_get("tenant_id")?)?,
                        policy: ApiKeyPolicyRecord {
                            default_ttl_secs: r.try_get("default_ttl_secs")?,
                            max_ttl_secs: r.try_get("max_ttl_secs")?,
                            allow_never: allow_never == 1,
                        },
                        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
                    }))
                });
                table!("SELECT t.*, t.tenant_id AS k FROM tenant_oauth_policies t", String, |r: &$row| -> Result<Record> {
                    let require_par: i64 = r.try_get("require_pushed_requests")?;
                    Ok(Record::OAuthPolicy($crate::export::OAuthPolicyExport {
                        tenant: tenant_id(r.try_get("tenant_id")?)?,
                        policy: $crate::OAuthPolicyRecord {
                            require_pushed_requests: require_par != 0,
                            updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
                        },
                    }))
                });
                table!("SELECT t.*, t.kid AS k FROM signing_keys t", String, |r| signing_key_from_row(r).map(Record::SigningKey));
                table!("SELECT t.*, t.id AS k FROM admin_credentials t", String, |r| admin_credential_from_row(r).map(Record::AdminCredential));
                table!("SELECT t.*, t.id AS k FROM resource_servers t", String, |r| resource_server_from_row(r).map(Record::ResourceServer));
                table!("SELECT t.*, t.id AS k FROM resource_server_secrets t", String, |r| resource_server_secret_from_row(r).map(Record::ResourceServerSecret));
                table!("SELECT t.*, t.id AS k FROM oauth_clients t", String, |r| client_from_row(r).map(Record::Client));
                table!("SELECT t.*, t.id AS k FROM oauth_client_secrets t", String, |r| client_secret_from_row(r).map(Record::ClientSecret));
                table!("SELECT t.*, t.id AS k FROM api_keys t", String, |r| api_key_from_row(r).map(Record::ApiKey));
                table!(
                    "SELECT t.*, t.seq AS k FROM revocations t",
                    i64,
                    |r| revocation_from_row(r).map(Record::Revocation)
                );
                table!(
                    "SELECT t.*, t.client_id || ' ' || t.jti AS k FROM client_assertion_jtis t",
                    String,
                    |r: &$row| -> Result<Record> {
                        Ok(Record::AssertionJti(AssertionJti {
                            client_id: r.try_get("client_id")?,
                            jti: r.try_get("jti")?,
                            expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
                        }))
                    }
                );
                table!("SELECT t.*, t.id AS k FROM users t", String, |r| user_from_row(r).map(Record::User));
                table!(
                    "SELECT t.*, t.tenant_id || ' ' || t.user_id AS k FROM user_admin_roles t",
                    String,
                    |r| user_role_from_row(r).map(Record::UserAdminRole)
                );
                table!(
                    "SELECT t.*, t.kind || ' ' || t.id AS k FROM archived_objects t",
                    String,
                    |r: &$row| -> Result<Record> {
                        let kind: String = r.try_get("kind")?;
                        Ok(Record::Archived(ArchivedObject {
                            kind: ArchivedKind::parse(&kind)
                                .ok_or_else(|| corrupt("archived kind", &kind))?,
                            id: r.try_get("id")?,
                            tenant: tenant_id(r.try_get("tenant_id")?)?,
                            archived_at: Timestamp::from_millis(r.try_get("archived_at")?),
                            archived_by: r.try_get("archived_by")?,
                        }))
                    }
                );
                table!(
                    "SELECT t.*, t.tenant_id || ' ' || t.user_id || ' ' || t.client_id AS k FROM consents t",
                    String,
                    |r| consent_from_row(r).map(Record::Consent)
                );
                table!("SELECT t.*, t.id AS k FROM webhook_endpoints t", String, |r| webhook_endpoint_from_row(r).map(Record::WebhookEndpoint));
                table!(
                    "SELECT t.*, t.tenant_id AS k FROM tenant_branding t",
                    String,
                    |r| branding_from_row(r).map(Record::Branding)
                );
                table!(
                    "SELECT t.*, t.tenant_id AS k FROM tenant_lifetime_policies t",
                    String,
                    |r| lifetime_policy_from_row(r).map(Record::LifetimePolicy)
                );
                table!(
                    "SELECT t.*, t.tenant_id || ' ' || t.issuer AS k FROM trusted_issuers t",
                    String,
                    |r| trusted_issuer_from_row(r).map(Record::TrustedIssuer)
                );
                table!(
                    "SELECT t.*, t.tenant_id || ' ' || t.id AS k FROM trust_rules t",
                    String,
                    |r| trust_rule_from_row(r).map(Record::TrustRule)
                );
                table!(
                    "SELECT t.*, t.issuer || ' ' || t.jti AS k FROM subject_token_jtis t",
                    String,
                    |r: &$row| -> Result<Record> {
                        Ok(Record::SubjectJti($crate::SubjectJtiRecord {
                            issuer: r.try_get("issuer")?,
                            jti: r.try_get("jti")?,
                            expires_at: Timestamp::from_millis(r.try_get("expires_at")?),
                        }))
                    }
                );
                table!(
                    "SELECT t.*, t.id AS k FROM tenant_ca_sets t",
                    String,
                    |r| ca_set_from_row(r).map(Record::CaSet)
                );
                tx.commit().await?;
                Ok(())
            }

            async fn import_blockers(&self) -> Result<Vec<&'static str>> {
                let mut conn = self.pool.acquire().await?;
                blockers_in(&mut conn).await
            }

            async fn import_records(
                &self,
                records: &mut (dyn Iterator<Item = Result<Record>> + Send),
                progress: &mut (dyn FnMut(&'static str, u64) + Send),
            ) -> Result<ImportCounts> {
                let mut tx = self.pool.begin().await?;
                let blockers = blockers_in(&mut *tx).await?;
                if !blockers.is_empty() {
                    return Err(StoreError::NotEmpty(blockers.join(", ")));
                }
                let mut counts = ImportCounts::default();
                let mut batch: Vec<Record> = Vec::with_capacity($crate::export::IMPORT_BATCH);
                let mut last_seq = 0i64;
                for record in records {
                    let record = record?;
                    if let Record::Revocation(r) = &record {
                        if r.seq != last_seq + 1 {
                            return Err(StoreError::Export(format!(
                                "the revocation log is not complete: position {} follows {last_seq}",
                                r.seq
                            )));
                        }
                        last_seq = r.seq;
                    }
                    let same_kind = batch.first().is_none_or(|b| b.kind() == record.kind());
                    if !same_kind || batch.len() == $crate::export::IMPORT_BATCH {
                        let kind = batch[0].kind();
                        insert_batch(&mut tx, &batch).await?;
                        counts.add(kind, batch.len() as u64);
                        progress(kind, counts.get(kind));
                        batch.clear();
                    }
                    batch.push(record);
                }
                if let Some(first) = batch.first() {
                    let kind = first.kind();
                    insert_batch(&mut tx, &batch).await?;
                    counts.add(kind, batch.len() as u64);
                    progress(kind, counts.get(kind));
                }
                sqlx::query("UPDATE revocation_log_head SET last_seq = $1 WHERE id = 1")
                    .bind(last_seq)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                self.feed.publish(last_seq);
                Ok(counts)
            }
        }
    };
}

pub(crate) use impl_transfer;

#[cfg(test)]
mod tests {
    use super::*;

    /// A client line of a version-1 file (before app clients) reads as the machine client it
    /// was, with the values migration 0009 gives existing rows.
    #[test]
    fn a_version_1_client_reads_as_a_machine_client() {
        let file = concat!(
            r#"{"type":"header","format":"portcullis-export","version":1,"exported_at":1,"source_backend":"sqlite"}"#,
            "\n",
            r#"{"type":"client","id":"cl_1","tenant_id":"acme","name":"n","environment":"live","auth_method":"client_secret_basic","grant_types":["client_credentials"],"scopes":[],"audiences":["a"],"access_token_ttl_secs":600,"can_introspect":false,"jwks":null,"jwks_uri":null,"status":"active","created_at":1,"updated_at":1,"last_used_at":null}"#,
            "\n",
            r#"{"type":"end","records":1}"#,
            "\n"
        );
        let records: Vec<Record> = ExportReader::new(file.as_bytes())
            .expect("header")
            .collect::<Result<_>>()
            .expect("records");
        let [Record::Client(c)] = records.as_slice() else {
            panic!("one client expected: {records:?}");
        };
        assert_eq!(c.client_type, ClientType::Confidential);
        assert_eq!(c.application_type, ApplicationType::Web);
        assert!(c.redirect_uris.is_empty() && c.post_logout_redirect_uris.is_empty());
        assert!(c.allowed_web_origins.is_empty() && !c.first_party);
        // An unknown client type is refused, not guessed.
        let bad = file.replace(
            r#""last_used_at":null}"#,
            r#""last_used_at":null,"client_type":"trusted"}"#,
        );
        let err = ExportReader::new(bad.as_bytes())
            .expect("header")
            .collect::<Result<Vec<_>>>()
            .expect_err("bad type");
        assert!(err.to_string().contains("client type"), "{err}");
    }

    /// A user's admin role (version 6) reads back as written; an unknown role is refused, not
    /// guessed into some authority.
    #[test]
    fn a_user_admin_role_line_reads_and_an_unknown_role_is_refused() {
        let file = concat!(
            r#"{"type":"header","format":"portcullis-export","version":6,"exported_at":1,"source_backend":"sqlite"}"#,
            "\n",
            r#"{"type":"user_admin_role","tenant_id":"acme","user_id":"usr_00000000000000000000000001","role":"auditor","granted_at":5,"granted_by":"admin:adm_1"}"#,
            "\n",
            r#"{"type":"end","records":1}"#,
            "\n"
        );
        let records: Vec<Record> = ExportReader::new(file.as_bytes())
            .expect("header")
            .collect::<Result<_>>()
            .expect("records");
        let [Record::UserAdminRole(r)] = records.as_slice() else {
            panic!("one role expected: {records:?}");
        };
        assert_eq!(
            (r.user_id.as_str(), r.role),
            ("usr_00000000000000000000000001", AdminRole::Auditor)
        );
        // A user id that is not one is refused too (typed ids, read once).
        let bad_id = file.replace("usr_00000000000000000000000001", "usr_1");
        let err = ExportReader::new(bad_id.as_bytes())
            .expect("header")
            .collect::<Result<Vec<_>>>()
            .expect_err("bad user id");
        assert!(err.to_string().contains("user id"), "{err}");
        assert_eq!(r.granted_by, "admin:adm_1");
        let bad = file.replace(r#""role":"auditor""#, r#""role":"superuser""#);
        let err = ExportReader::new(bad.as_bytes())
            .expect("header")
            .collect::<Result<Vec<_>>>()
            .expect_err("bad role");
        assert!(err.to_string().contains("user admin role"), "{err}");
        // A real role that no user of this tenant may hold (global admins live in `system`).
        let global = file.replace(r#""role":"auditor""#, r#""role":"global_admin""#);
        let err = ExportReader::new(global.as_bytes())
            .expect("header")
            .collect::<Result<Vec<_>>>()
            .expect_err("a global admin role in acme");
        assert!(err.to_string().contains("user admin role"), "{err}");
    }
}
