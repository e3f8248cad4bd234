//! Workload identity federation as stored: trusted issuers, trust rules, seen subject-token ids.
//!
//! Stored as the service hands them over: names, URLs, the conditions' JSON. Reading them into
//! core's types (and refusing what core would refuse) is the service's job; this module must
//! never decide whether a rule admits a token. Key material here is public only (an uploaded
//! JWKS or SPIFFE bundle).

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

/// Where an issuer's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySourceRecord {
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
    /// A fixed JWKS URL.
    JwksUri(String),
    /// An uploaded JWKS (JSON), for issuers whose endpoints are not reachable (clusters).
    Jwks(String),
    /// A SPIFFE trust bundle (JSON, a JWKS with `use: jwt-svid` keys).
    SpiffeBundle(String),
}

impl KeySourceRecord {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::JwksUri(_) => "jwks_uri",
            Self::Jwks(_) => "jwks",
            Self::SpiffeBundle(_) => "spiffe_bundle",
        }
    }

    pub fn value(&self) -> Option<&str> {
        match self {
            Self::Discovery => None,
            Self::JwksUri(v) | Self::Jwks(v) | Self::SpiffeBundle(v) => Some(v),
        }
    }

    /// Reads the stored pair back; `None` if they do not fit together.
    pub fn from_parts(kind: &str, value: Option<String>) -> Option<Self> {
        match (kind, value) {
            ("discovery", None) => Some(Self::Discovery),
            ("jwks_uri", Some(v)) => Some(Self::JwksUri(v)),
            ("jwks", Some(v)) => Some(Self::Jwks(v)),
            ("spiffe_bundle", Some(v)) => Some(Self::SpiffeBundle(v)),
            _ => None,
        }
    }
}

/// An external issuer a tenant trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuerRecord {
    pub tenant: TenantId,
    pub issuer: String,
    /// Core's preset name (`github_actions`, `kubernetes`, ...).
    pub preset: String,
    pub key_source: KeySourceRecord,
    pub algorithms: Vec<String>,
    pub max_token_age_s: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A trust rule of a tenant, on one of its trusted issuers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRuleRecord {
    pub tenant: TenantId,
    pub id: String,
    pub issuer: String,
    /// The audience the subject token must carry.
    pub audience: String,
    /// The conditions as a JSON array (core's wire form).
    pub conditions: String,
    pub audiences: Vec<String>,
    pub scopes: Vec<String>,
    pub max_lifetime_s: i64,
    pub max_token_age_s: Option<i64>,
    pub bound_to_subject_lifetime: bool,
    /// The client this rule authenticates (an external token as its `client_assertion`);
    /// `None` for a rule of the workload grants.
    pub client_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A subject-token id already exchanged, kept until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectJtiRecord {
    pub issuer: String,
    pub jti: String,
    pub expires_at: Timestamp,
}
