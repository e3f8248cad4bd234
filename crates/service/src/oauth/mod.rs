//! The OAuth 2.0 authorization server for machine clients, as the service sees it: the state
//! the endpoints share ([`OAuthState`]: issuer, token lifetimes, the active signer, the failure
//! throttle, the client directory and the fetched client JWKS), its `[oauth]` configuration
//! section, client-registration checks (`assertion::validate_client_jwks`,
//! `remote_jwks::validate_jwks_uri`), client assertions, the form and credential parsing, and
//! the RFC 6749 error values. The endpoints themselves are `portcullis-http`'s `oauth`; client
//! authentication is [`crate::client_auth`].
//!
//! Paths (below the issuer URL) are named here because tokens and metadata carry them:
//! `POST /oauth2/token`, `POST /oauth2/introspect`, `POST /oauth2/revoke`, `GET /oauth2/jwks`.
//! Access tokens follow RFC 9068; the tenant is the claim named by
//! [`portcullis_core::oauth::TENANT_CLAIM`] (`tenant`). This module never logs a secret or a
//! token, and never depends on a web framework.

pub mod assertion;
pub mod directory;
pub mod dpop;
pub mod error;
pub mod form;
pub use crate::remote_jwks;
mod throttle;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_core::oauth::TokenLifetimes;
use portcullis_core::time::Clock;
use portcullis_store::Store;
use serde::{Deserialize, Serialize};

pub use throttle::{Throttle, ThrottleSettings};

use crate::audit::AuditSink;
use crate::keys::jwt;
use crate::keys::{KeySet, Rotation};

pub const TOKEN_PATH: &str = "/oauth2/token";
/// A tenant's token endpoint for the workload grants (token exchange, JWT bearer): the path
/// names the tenant whose trust rules judge the token (`crate::tokens`' `workload`).
pub const TENANT_TOKEN_PATH: &str = "/oauth2/tenants/{tenant}/token";
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
/// The pushed authorization request endpoint (RFC 9126).
pub const PAR_PATH: &str = "/oauth2/par";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const JWKS_PATH: &str = "/oauth2/jwks";
/// The authorization endpoint (browser sign-in, `response_type=code`).
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
/// The OpenID Connect userinfo endpoint.
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
/// The RP-initiated logout endpoint (`end_session_endpoint`).
pub const END_SESSION_PATH: &str = "/oauth2/logout";
/// Entries each table of the failure throttle holds at most (sources; client id and source
/// pairs): a few megabytes, whatever a flood of made-up ids and addresses brings.
/// Longest time verifiers may cache JWKS. With rotation on, the server uses at most half the
/// pre-publication window, so a cached JWKS always knows a key before it signs.
pub const JWKS_MAX_AGE_SECS: u64 = 300;
pub const THROTTLE_MAX_ENTRIES: usize = 100_000;

/// Longest `oauth.cache_ttl_ms` accepted: beyond a minute, "a change on another node" would stop
/// meaning "soon".
pub const MAX_OAUTH_CACHE_TTL_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// The issuer URL (`iss` of every token, base of the discovery document). Defaults to
    /// `http://<listen>`; set it to the public `https://` URL in production.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Access-token lifetime of new clients, in seconds.
    pub default_access_token_ttl_secs: u64,
    /// Hard maximum access-token lifetime, in seconds, whatever a client is configured with.
    pub max_access_token_ttl_secs: u64,
    /// Failed client authentications allowed from one source (an IPv4 address or an IPv6 /64,
    /// whatever ids they name) within `throttle_window_secs`; then the source is refused until
    /// the window ends.
    pub max_failures_per_source: u32,
    /// Failed authentications naming one client (or resource server) id allowed from one source
    /// within `throttle_window_secs`; then that source is refused for that id. Failures are never
    /// counted per id alone: ids are not secret, and such a count would let anyone lock a
    /// client out.
    pub max_failures_per_client_id_and_source: u32,
    pub throttle_window_secs: u64,
    /// How long facts read for client authentication (a client and its secret digests, its
    /// tenant's status, a resource server) are reused before storage is read again, in
    /// milliseconds. Writes made through this node take effect on the next request whatever
    /// this is; it bounds how long a change made on another node takes to be seen. 0 = no cache;
    /// at most 60000.
    pub cache_ttl_ms: u64,
    /// Entries kept in each of those caches at most (clients, tenants, resource servers).
    pub cache_capacity: usize,
    /// `private_key_jwt` clients with a registered `jwks_uri`: how long fetched keys are used
    /// before they are fetched again, in seconds. A key the client removes from its JWKS stops
    /// working within this.
    pub jwks_uri_cache_ttl_secs: u64,
    /// Least time between two fetches of one JWKS URI, in seconds: an assertion naming a `kid`
    /// the cached JWKS lacks triggers a refetch at most this often, and so does a failed fetch.
    pub jwks_uri_min_refetch_secs: u64,
    /// Time limit of one JWKS fetch (connect, request and body), in milliseconds.
    pub jwks_uri_timeout_ms: u64,
    /// Largest JWKS document accepted, in bytes.
    pub jwks_uri_max_bytes: usize,
    /// Allow `http://` JWKS URIs (registration and fetch). For tests and closed networks only:
    /// keys fetched over plain HTTP can be replaced by anyone on the path.
    pub insecure_allow_http_jwks_uri: bool,
    /// Allow JWKS URIs that resolve to private, loopback, link-local or other non-public
    /// addresses. For closed networks and tests only: otherwise a client registration could make
    /// this server read internal services (cloud metadata endpoints, admin consoles).
    pub insecure_allow_private_jwks_uri: bool,
    /// Every DPoP proof at the token endpoint must carry a current server nonce (RFC 9449
    /// section 8).
    pub dpop_require_nonce: bool,
    /// How old a DPoP proof's `iat` may be, in seconds (and how long its `jti` is remembered).
    pub dpop_proof_max_age_secs: u64,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            default_access_token_ttl_secs: 600,
            max_access_token_ttl_secs: 3600,
            max_failures_per_source: 50,
            max_failures_per_client_id_and_source: 10,
            throttle_window_secs: 60,
            cache_ttl_ms: 1_000,
            cache_capacity: 10_000,
            jwks_uri_cache_ttl_secs: 300,
            jwks_uri_min_refetch_secs: 30,
            jwks_uri_timeout_ms: 3_000,
            jwks_uri_max_bytes: 64 * 1024,
            insecure_allow_http_jwks_uri: false,
            insecure_allow_private_jwks_uri: false,
            dpop_require_nonce: false,
            dpop_proof_max_age_secs: 300,
        }
    }
}

/// What the OAuth endpoints share, built once at start.
#[derive(Debug)]
pub struct OAuthState {
    pub issuer: String,
    pub lifetimes: TokenLifetimes,
    /// The active key, ready to sign; `None` only if no key is active (readiness fails then).
    /// Swapped by the key task when rotation activates another key.
    signer: RwLock<Option<Arc<jwt::Signer>>>,
    pub throttle: Throttle,
    /// Cached clients, tenants and resource servers; admin writes invalidate it.
    pub directory: directory::Directory,
    /// JWKS of `private_key_jwt` clients that registered a `jwks_uri`.
    pub remote_jwks: remote_jwks::RemoteJwks,
    /// Whether clients may register `http://` JWKS URIs.
    pub insecure_allow_http_jwks_uri: bool,
    /// Keys of the external issuers tenants trust (workload identity).
    pub issuer_keys: crate::federation::keys::IssuerKeys,
    /// The tenants' trusted issuers with their rules and uploaded keys, parsed once per fill
    /// (same capacity and TTL as `directory`); admin writes invalidate it.
    pub trusted_issuers: crate::federation::facts::TrustedIssuers,
    /// Key rotation; `None` in setups that cannot create keys (no keyring).
    pub rotation: Option<Rotation>,
    /// `Cache-Control: max-age` of JWKS: at most half the pre-publication window, so a cached
    /// JWKS always holds a key before it signs.
    pub jwks_max_age_secs: u64,
    /// Tokens issued and client-authentication failures, for metrics.
    pub metrics: crate::metrics::OAuthMetrics,
    /// DPoP proof rules and server nonces (`dpop`).
    pub dpop: dpop::DpopState,
    /// The audiences a client assertion may name: the issuer and the token endpoint, built once.
    assertion_audiences: [String; 2],
    /// The pushed authorization request endpoint's public URI (a DPoP proof's `htu` there).
    par_endpoint: String,
    /// Whether client certificates can reach the OAuth endpoints (`[tls] client_certificates =
    /// "request"`, or `http.client_certificate_header` behind a trusted proxy): discovery then
    /// lists the RFC 8705 methods and certificate-bound tokens.
    pub client_certificates: bool,
    /// Admission matches this node recorded lately (`match_marks`): one write per subject and
    /// hour for the hygiene report, not one per grant.
    pub match_marks: crate::match_marks::MatchMarks,
}

impl OAuthState {
    pub fn new(issuer: String, config: &OAuthConfig, keys: &KeySet) -> anyhow::Result<Self> {
        let signer = jwt::Signer::for_keys(keys)
            .map_err(|e| anyhow::anyhow!("the active signing key cannot sign: {e}"))?;
        let token_endpoint = format!("{issuer}{TOKEN_PATH}");
        Ok(Self {
            assertion_audiences: [issuer.clone(), token_endpoint],
            par_endpoint: format!("{issuer}{PAR_PATH}"),
            client_certificates: false,
            match_marks: crate::match_marks::MatchMarks::default(),
            issuer,
            lifetimes: TokenLifetimes {
                default: Duration::from_secs(config.default_access_token_ttl_secs),
                max: Duration::from_secs(config.max_access_token_ttl_secs),
            },
            signer: RwLock::new(signer.map(Arc::new)),
            throttle: Throttle::new(ThrottleSettings {
                window: Duration::from_secs(config.throttle_window_secs),
                max_per_source: config.max_failures_per_source,
                max_per_id_and_source: config.max_failures_per_client_id_and_source,
                max_entries: THROTTLE_MAX_ENTRIES,
            }),
            directory: directory::Directory::new(directory::DirectorySettings {
                capacity: config.cache_capacity,
                ttl: Duration::from_millis(config.cache_ttl_ms),
            }),
            remote_jwks: remote_jwks::RemoteJwks::new(remote_jwks::RemoteJwksSettings {
                ttl: Duration::from_secs(config.jwks_uri_cache_ttl_secs),
                min_refetch: Duration::from_secs(config.jwks_uri_min_refetch_secs),
                timeout: Duration::from_millis(config.jwks_uri_timeout_ms),
                max_bytes: config.jwks_uri_max_bytes,
                allow_http: config.insecure_allow_http_jwks_uri,
                addresses: Some(crate::outbound::AddressPolicy {
                    private: config.insecure_allow_private_jwks_uri,
                    loopback: false,
                }),
            }),
            insecure_allow_http_jwks_uri: config.insecure_allow_http_jwks_uri,
            issuer_keys: crate::federation::keys::IssuerKeys::new(&Default::default()),
            trusted_issuers: crate::federation::facts::TrustedIssuers::new(
                config.cache_capacity,
                Duration::from_millis(config.cache_ttl_ms),
            ),
            rotation: None,
            jwks_max_age_secs: JWKS_MAX_AGE_SECS,
            metrics: crate::metrics::OAuthMetrics::default(),
            dpop: dpop::DpopState::new(
                dpop::DpopSettings {
                    max_age: Duration::from_secs(config.dpop_proof_max_age_secs),
                    require_nonce: config.dpop_require_nonce,
                    ..dpop::DpopSettings::default()
                },
                dpop::Nonces::random(),
            ),
        })
    }

    /// The token endpoint's public URI (what a DPoP proof's `htu` names), built once at start
    /// (it is also the second assertion audience), so a DPoP request formats nothing.
    pub fn token_endpoint(&self) -> &str {
        &self.assertion_audiences[1]
    }

    /// The pushed authorization request endpoint's public URI (what a DPoP proof sent with a
    /// pushed request names as `htu`).
    pub fn par_endpoint(&self) -> &str {
        &self.par_endpoint
    }

    /// Fetches external issuers' keys under these `[federation]` settings.
    pub fn with_federation(
        mut self,
        settings: &crate::federation::keys::FederationSettings,
    ) -> Self {
        self.issuer_keys = crate::federation::keys::IssuerKeys::new(settings);
        self
    }

    /// Says whether client certificates reach the OAuth endpoints (see the field).
    pub fn with_client_certificates(mut self, available: bool) -> Self {
        self.client_certificates = available;
        self
    }

    /// Enables rotation (on demand and scheduled) with this keyring and schedule.
    pub fn with_rotation(mut self, rotation: Rotation) -> Self {
        self.jwks_max_age_secs = JWKS_MAX_AGE_SECS.min(rotation.prepublish.as_secs() / 2);
        // Nonces from the KEK: any node of the installation accepts another's.
        self.dpop.nonces = dpop::nonces_from_keyring(&rotation.keyring);
        self.rotation = Some(rotation);
        self
    }

    pub fn signer(&self) -> Option<Arc<jwt::Signer>> {
        self.signer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_signer(&self, signer: Arc<jwt::Signer>) {
        *self.signer.write().unwrap_or_else(|p| p.into_inner()) = Some(signer);
    }

    /// The audiences a client assertion may name (RFC 7523 section 3): this server's issuer
    /// and its token endpoint.
    pub fn assertion_audiences(&self) -> [&str; 2] {
        let [issuer, token_endpoint] = &self.assertion_audiences;
        [issuer.as_str(), token_endpoint.as_str()]
    }
}

/// The OAuth subsystem as its endpoints use it: the shared [`OAuthState`] and the storage,
/// clock and audit sink it works with. Cheap to clone; the token, introspection and revocation
/// operations (`crate::tokens`) and client authentication (`crate::client_auth`) take it, and
/// the HTTP surface holds it as its router state instead of the whole `AppState`.
#[derive(Debug, Clone)]
pub struct OAuthService {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub oauth: Arc<OAuthState>,
    /// Codes and refresh-token families, for the user grants (and sessions, for userinfo).
    pub sign_in: Arc<crate::sign_in::SignIn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token endpoint is the issuer plus the token path, and every call hands back the one
    /// string built at start (no allocation per DPoP request).
    #[test]
    fn the_token_endpoint_is_built_once() {
        let oauth = OAuthState::new(
            "https://auth.test".into(),
            &OAuthConfig::default(),
            &KeySet {
                keys: vec![],
                primary: portcullis_core::signing::SigningAlgorithm::ES256,
            },
        )
        .expect("oauth");
        assert_eq!(oauth.token_endpoint(), "https://auth.test/oauth2/token");
        assert!(std::ptr::eq(oauth.token_endpoint(), oauth.token_endpoint()));
        assert!(std::ptr::eq(
            oauth.token_endpoint(),
            oauth.assertion_audiences()[1]
        ));
    }
}
