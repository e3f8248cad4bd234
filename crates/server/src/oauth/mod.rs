//! The OAuth 2.0 authorization server for machine clients.
//!
//! Endpoints (paths below the issuer URL):
//!
//! | path | what |
//! |---|---|
//! | `POST /oauth2/token` | client credentials grant (RFC 6749 section 4.4, RFC 8707 `resource`) |
//! | `POST /oauth2/introspect` | RFC 7662, for clients with the introspection permission |
//! | `POST /oauth2/revoke` | RFC 7009, a client revokes its own tokens |
//! | `GET /oauth2/jwks` | public signing keys |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//!
//! Access tokens follow RFC 9068; the tenant is the claim named by
//! [`portcullis_core::oauth::TENANT_CLAIM`] (`tenant`). This module never logs a secret or a
//! token; refusals carry a standard code outside and the precise reason in the audit log.

pub mod assertion;
mod cache;
mod client_auth;
pub mod directory;
mod discovery;
mod endpoints;
pub mod error;
pub mod form;
pub mod jwt;
pub mod remote_jwks;
mod throttle;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::handler::Handler;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use portcullis_core::oauth::TokenLifetimes;

pub use throttle::{Throttle, ThrottleSettings};

use crate::config::OAuthConfig;
use crate::keys::KeySet;
use crate::rotation::Rotation;
use crate::state::AppState;

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const INTROSPECT_PATH: &str = "/oauth2/introspect";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const JWKS_PATH: &str = "/oauth2/jwks";
/// Entries each table of the failure throttle holds at most (sources; client id and source
/// pairs): a few megabytes, whatever a flood of made-up ids and addresses brings.
pub const THROTTLE_MAX_ENTRIES: usize = 100_000;

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
    /// Key rotation; `None` in setups that cannot create keys (no keyring).
    pub rotation: Option<Rotation>,
    /// `Cache-Control: max-age` of JWKS: at most half the pre-publication window, so a cached
    /// JWKS always holds a key before it signs.
    pub jwks_max_age_secs: u64,
}

impl OAuthState {
    pub fn new(issuer: String, config: &OAuthConfig, keys: &KeySet) -> anyhow::Result<Self> {
        let signer = keys
            .active()
            .map(jwt::Signer::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("the active signing key cannot sign: {e}"))?;
        Ok(Self {
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
            }),
            insecure_allow_http_jwks_uri: config.insecure_allow_http_jwks_uri,
            rotation: None,
            jwks_max_age_secs: discovery::JWKS_MAX_AGE_SECS,
        })
    }

    /// Enables rotation (on demand and scheduled) with this keyring and schedule.
    pub fn with_rotation(mut self, rotation: Rotation) -> Self {
        self.jwks_max_age_secs =
            discovery::JWKS_MAX_AGE_SECS.min(rotation.prepublish.as_secs() / 2);
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
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(TOKEN_PATH, form_post(endpoints::token))
        .route(INTROSPECT_PATH, form_post(endpoints::introspect))
        .route(REVOKE_PATH, form_post(endpoints::revoke))
        .route(JWKS_PATH, get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
}

/// POST only; any other method is a 405 in the RFC 6749 error format.
fn form_post<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    post(handler).fallback(endpoints::method_not_allowed)
}
