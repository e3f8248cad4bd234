//! The gateway embedded in `portcullis serve` (`[gateway] config = "gateway.toml"`): the same
//! reverse proxy and forward-auth as `portcullis gateway`, verifying against this server in
//! process instead of over the network.
//!
//! - Signing keys: this server's JWKS, read through the server's own router (no socket), so
//!   rotation reaches the gateway exactly as it reaches any other verifier.
//! - API keys: this server's store-backed verifier (`ApiKeyBackend`) on every request, with its
//!   cache only (so local changes such as a tenant disabled apply at once, and every use is
//!   recorded).
//! - Revocations: this server's revocation log, followed in process from the start of the log;
//!   the storage head is confirmed every `revocations.heartbeat_interval_ms`, and with storage
//!   unreachable for `gateway.staleness_bound_ms` every verification fails closed.
//!
//! - Audit: every denial the gateway's own audit sampler admits (at most its
//!   `audit.max_denials_per_second`, default 100) becomes a `gateway.denied` event in this
//!   server's audit log (tenant `system`, actor `gateway`, reason `<class>:<precise reason>`,
//!   target the route name, the client address); what the sampler counts instead becomes one
//!   `gateway.denials_suppressed` event per reason and second (reason `<reason>:<count>`). So a
//!   flood of denials costs storage at most that rate plus one row per reason per second, and
//!   the audit queue never blocks a request (a full queue drops and counts, as for every event).
//!
//! - DPoP nonces (`gateway.dpop_require_nonce`): derived from `gateway.dpop_nonce_secret_file`
//!   when set, otherwise from the installation's KEK (label `gateway/dpop-nonce`), so every node
//!   of one installation issues and accepts the same nonces without a file to hand out, and
//!   another installation's nonces are refused.
//!
//! The gateway file must not have a `[verifier]` section (the verifier is this server) nor an
//! `[audit.report]` one (its denials are this server's audit events already); its
//! routes, upstreams, limits and listeners are reloaded on SIGHUP or file change as usual.
//! This module must never let the embedded gateway verify against anything but this server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use axum::body::Body;
use axum::Router;
use portcullis_core::secret::Secret;
use portcullis_core::time::{Clock, Timestamp};
use portcullis_gateway::{Gateway, GatewayConfig};
use portcullis_service::kek::Keyring;
use portcullis_store::{RevocationEntry, Store, StoreError};
use portcullis_verify::fetch::{self, Fetch, FetchError, Fetched};
use portcullis_verify::{
    ApiKeyConfig, ApiKeySource, DpopConfig, IssuerConfig, KeySource, RevocationSource, Revocations,
    Verifier, VerifierConfig,
};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::config::{Config, GatewayEmbedConfig};
use portcullis_core::audit::Actor;
use portcullis_core::tenant::TenantId;
use portcullis_gateway::audit::{DenialHook, Denied};
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_service::audit::AuditSink;
use portcullis_service::gateway_denials;
use portcullis_service::revocations::follow::{follow, LogFollower, OnReadError, Start};

/// The URL the embedded verifier is given for this server's JWKS. Only its path is used: the
/// request never leaves the process.
const LOCAL_JWKS_URL: &str = "http://127.0.0.1/oauth2/jwks";

/// What the embedded gateway needs from the running server.
#[derive(Debug, Clone)]
pub struct Parts {
    pub issuer: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub api_keys: Arc<ApiKeyVerifier>,
    /// The server's router, for reading its JWKS in process.
    pub router: Router,
    /// This server's audit log, which receives the gateway's denials.
    pub audit: AuditSink,
    /// How DPoP proofs are checked, nonce key included ([`dpop_config`]).
    pub dpop: DpopConfig,
}

/// The label of the KEK-derived DPoP nonce key of the embedded gateway: its own, so its nonces
/// say nothing about the token endpoint's (`oauth/dpop-nonce`).
const DPOP_NONCE_LABEL: &str = "gateway/dpop-nonce";

/// The embedded gateway's DPoP settings: the defaults, `gateway.dpop_require_nonce`, and the
/// nonce key: the contents of `gateway.dpop_nonce_secret_file` when set, otherwise a key derived
/// from the primary KEK, the same on every node that holds the same KEK file.
pub fn dpop_config(config: &GatewayEmbedConfig, keyring: &Keyring) -> anyhow::Result<DpopConfig> {
    let secret = match &config.dpop_nonce_secret_file {
        Some(path) => portcullis_gateway::config::read_nonce_secret(path)
            .map_err(|e| anyhow::anyhow!("gateway.dpop_nonce_secret_file: {e}"))?,
        None => Secret::new(
            keyring
                .derive_primary_key(DPOP_NONCE_LABEL)
                .expose()
                .to_vec(),
        ),
    };
    Ok(DpopConfig {
        require_nonce: config.dpop_require_nonce,
        nonce_secret: Some(secret),
        ..DpopConfig::default()
    })
}

/// A running embedded gateway and its helper tasks; stopped when dropped.
#[derive(Debug)]
pub struct Embedded {
    pub gateway: Gateway,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the embedded gateway if `[gateway] config` is set.
pub async fn start(config: &Config, parts: Parts) -> anyhow::Result<Option<Embedded>> {
    let GatewayEmbedConfig {
        config: Some(path),
        audience,
        staleness_bound_ms,
        ..
    } = &config.gateway
    else {
        return Ok(None);
    };
    let gateway_config = GatewayConfig::load(path)?;
    if gateway_config.verifier.is_some() {
        bail!(
            "{}: an embedded gateway verifies against this server; remove its [verifier] section",
            path.display()
        );
    }
    let Some(audience) = audience.as_deref() else {
        bail!("gateway.audience is required with gateway.config");
    };
    let staleness_bound = Duration::from_millis(*staleness_bound_ms);
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(&parts.issuer, KeySource::JwksUrl(LOCAL_JWKS_URL.into())),
        audience,
        RevocationSource::Embedded { staleness_bound },
    );
    // Nothing this server issues lives longer than its hard maximum: neither may what the
    // gateway accepts (a stolen signing key must not mint month-long tokens).
    cfg.max_token_lifetime = Duration::from_secs(config.oauth.max_access_token_ttl_secs);
    let mut api_keys = ApiKeyConfig::new(
        ApiKeySource::Backend(Arc::new(crate::api_key_backend::StoreApiKeys(
            parts.api_keys.clone(),
        ))),
        parts.api_keys.environment().as_str(),
    );
    // No second cache in front of the server's own: every request reaches the store-backed
    // verifier, whose cache every local change (a tenant disabled, say) clears at once and
    // which records each use for last_used_at.
    api_keys.cache_ttl = Duration::ZERO;
    cfg.api_keys = Some(api_keys);
    cfg.dpop = parts.dpop.clone();
    let verifier = Verifier::with_parts(
        cfg,
        parts.clock.clone(),
        Arc::new(LocalFetch {
            router: parts.router.clone(),
        }),
    )
    .map_err(|e| anyhow::anyhow!("embedded gateway verifier: {e}"))?;
    let follower = VerifierFollower {
        revocations: verifier.revocations().clone(),
        clock: parts.clock.clone(),
    };
    let head = parts.store.watch_revocation_head();
    let confirm = Duration::from_millis(config.revocations.heartbeat_interval_ms);
    let mut tasks = vec![tokio::spawn(follow(
        parts.store.clone(),
        head,
        Start::After(0),
        Some(confirm),
        follower,
    ))];
    let hook: Arc<dyn DenialHook> = Arc::new(AuditDenials(parts.audit.clone()));
    let gateway =
        Gateway::start_with_denial_hook(gateway_config, verifier, Some(path.clone()), Some(hook))
            .await
            .with_context(|| format!("could not start the gateway of {}", path.display()))?;
    tasks.push(tokio::spawn(reload_on_hangup(gateway.shared.clone())));
    Ok(Some(Embedded { gateway, tasks }))
}

async fn reload_on_hangup(shared: Arc<portcullis_gateway::Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the gateway reloads on file change only");
        return;
    };
    while hup.recv().await.is_some() {
        let _ = shared.reload();
    }
}

/// Turns the gateway's sampled denial events into this server's audit events (see the module
/// docs for the fields and the rate).
#[derive(Debug)]
struct AuditDenials(AuditSink);

impl DenialHook for AuditDenials {
    fn denied(&self, d: &Denied<'_>) {
        gateway_denials::record_denied(
            &self.0,
            TenantId::system(),
            Actor::gateway(),
            d.class,
            d.reason,
            d.route.to_owned(),
            Some(d.request_id.to_owned()),
            d.client_ip,
        );
    }

    fn suppressed(&self, reason: &'static str, dropped: u64) {
        gateway_denials::record_suppressed(
            &self.0,
            TenantId::system(),
            Actor::gateway(),
            reason,
            dropped,
        );
    }
}

/// Reads documents from this server's own router: `GET <path of url>`, no socket.
#[derive(Debug)]
struct LocalFetch {
    router: Router,
}

#[async_trait]
impl Fetch for LocalFetch {
    async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let path = reqwest::Url::parse(url)
            .map_err(|_| FetchError::BadUrl)?
            .path()
            .to_owned();
        let request = axum::http::Request::get(path)
            .body(Body::empty())
            .map_err(|_| FetchError::BadUrl)?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get(axum::http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(fetch::max_age);
        let body = axum::body::to_bytes(response.into_body(), fetch::MAX_DOCUMENT_BYTES)
            .await
            .map_err(|_| FetchError::TooLarge)?;
        Ok(Fetched {
            body: body.to_vec(),
            max_age,
        })
    }
}

/// Applies the revocation log to the embedded verifier. A failed read is retried, never skipped:
/// until it succeeds the verifier hears nothing and fails closed after its staleness bound.
#[derive(Debug)]
struct VerifierFollower {
    revocations: Arc<Revocations>,
    clock: Arc<dyn Clock>,
}

impl LogFollower for VerifierFollower {
    fn apply(&mut self, entries: Vec<RevocationEntry>, _through: i64) {
        for e in entries {
            self.revocations.apply(&e.into_record());
        }
    }

    fn read_failed(&mut self, error: &StoreError) -> OnReadError {
        tracing::warn!(error = %error, "embedded gateway cannot read the revocation log; retrying");
        OnReadError::Retry
    }

    fn caught_up(&mut self, position: i64) {
        self.revocations.touch(position);
    }

    fn live_at(&self) -> Option<Timestamp> {
        Some(portcullis_core::revocation::needed_if_expiring_after(
            self.clock.now(),
        ))
    }
}
