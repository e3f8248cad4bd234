//! The gateway's running state: the configuration in force as an immutable [`Snapshot`]
//! (routes, upstream clients, audit sampler, identity signer), swapped whole on reload, and the
//! [`Shared`] state every request reads (verifier, metrics, the current snapshot, TLS).
//!
//! This module must never apply a configuration that failed validation, nor change one that
//! only takes effect on restart; and never swap a snapshot piecemeal (requests in flight finish
//! on the one they started with).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use portcullis_verify::Verifier;

use crate::audit::{DenialHook, Sampler};
use crate::config::{ClientCertMode, ConfigError, GatewayConfig};
use crate::identity::IdentitySigner;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::tls::Tls;
use crate::upstream::Upstream;
use crate::workers;

/// The configuration in force: routes, upstream clients and the audit sampler, swapped whole.
#[derive(Debug)]
pub struct Snapshot {
    pub config: GatewayConfig,
    pub routes: RouteTable,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub sampler: Sampler,
    /// The identity JWT signer, when `[identity_jwt]` is set (its key file is re-read on
    /// reload).
    pub identity: Option<Arc<IdentitySigner>>,
}

impl Snapshot {
    /// Validates `config` and builds clients; an upstream whose settings did not change keeps
    /// its client (and so its pooled connections) from `previous`.
    pub fn build(config: GatewayConfig, previous: Option<&Snapshot>) -> Result<Self, ConfigError> {
        if config.workers.is_some_and(|n| !(1..=1024).contains(&n)) {
            return Err(ConfigError("workers must be between 1 and 1024".into()));
        }
        let mut upstreams = HashMap::new();
        for (name, section) in &config.upstreams {
            let reuse = previous
                .and_then(|p| p.upstreams.get(name))
                .filter(|u| u.section == *section)
                .cloned();
            let u = match reuse {
                Some(u) => u,
                None => Arc::new(Upstream::new(
                    name,
                    section.clone(),
                    workers::count(config.workers) + 1,
                )?),
            };
            upstreams.insert(name.clone(), u);
        }
        let routes = RouteTable::compile(&config.routes, |u| upstreams.contains_key(u))?;
        if !config.forward_auth.enabled {
            if let Some(r) = routes.routes().iter().find(|r| r.upstream.is_none()) {
                return Err(ConfigError(format!(
                    "route {}: no upstream (only forward-auth routes may omit it, and forward_auth is not enabled)",
                    r.name
                )));
            }
        }
        // Fail closed: an upgrade can only be tunnelled to an HTTP/1.1 upstream.
        if let Some(r) = routes.routes().iter().find(|r| {
            r.websocket
                && r.upstream
                    .as_ref()
                    .and_then(|u| upstreams.get(u))
                    .is_none_or(|u| u.section.http2)
        }) {
            return Err(ConfigError(format!(
                "route {}: websocket = true needs an upstream that is not http2",
                r.name
            )));
        }
        if config.forward_auth.client_ip_header.is_some() {
            // Fail loudly: the header is read only from a trusted proxy, so without any it
            // would silently never be read.
            if config.trusted_proxies.is_empty() {
                return Err(ConfigError(
                    "forward_auth.client_ip_header needs trusted_proxies: the addresses of the proxies that set it".into(),
                ));
            }
        }
        if let Some(name) = &config.forward_auth.client_cert_header {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError(format!(
                    "forward_auth.client_cert_header: {name:?} is not a header name"
                )));
            }
            if config.trusted_proxies.is_empty() {
                return Err(ConfigError(
                    "forward_auth.client_cert_header needs trusted_proxies: the addresses of the proxies that set it".into(),
                ));
            }
        }
        let l = &config.limits;
        if l.max_header_bytes < 1024 || l.max_header_bytes > 1024 * 1024 {
            return Err(ConfigError(
                "limits.max_header_bytes must be between 1024 and 1048576".into(),
            ));
        }
        if l.header_read_timeout.is_zero() {
            return Err(ConfigError("limits.header_read_timeout must be > 0".into()));
        }
        // Fail closed: a route that requires client certificates on a listener that cannot
        // verify any would refuse everything, or worse, suggest a protection that is not there.
        let verifies_client_certs = config
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some());
        if let Some(r) = config
            .routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.client_cert == ClientCertMode::Required)
        {
            if !verifies_client_certs {
                let name = r.1.name.clone().unwrap_or_else(|| format!("route{}", r.0));
                return Err(ConfigError(format!(
                    "route {name}: client_cert = \"required\" needs [tls] with client_ca_file"
                )));
            }
        }
        let identity = match &config.identity_jwt {
            Some(section) => Some(Arc::new(IdentitySigner::load(section)?)),
            None => None,
        };
        for (name, u) in &config.upstreams {
            if u.identity_jwt == Some(true) && identity.is_none() {
                return Err(ConfigError(format!(
                    "upstream {name}: identity_jwt = true needs an [identity_jwt] section"
                )));
            }
            if u.identity_audience.as_deref() == Some("") {
                return Err(ConfigError(format!(
                    "upstream {name}: identity_audience is empty"
                )));
            }
        }
        let sampler = Sampler::new(config.audit.max_denials_per_second);
        Ok(Self {
            config,
            routes,
            upstreams,
            sampler,
            identity,
        })
    }
}

/// State shared by every request for the life of the gateway.
#[derive(Debug)]
pub struct Shared {
    pub verifier: Verifier,
    pub metrics: Metrics,
    pub(crate) current: RwLock<Arc<Snapshot>>,
    pub(crate) config_path: Option<PathBuf>,
    /// The main listener's TLS state, when `[tls]` is set (fixed at start; its certificate
    /// reloads).
    pub tls: Option<Arc<Tls>>,
    pub(crate) started: Instant,
    /// The embedder's receiver of denial events, if one was connected.
    pub(crate) denial_hook: Option<Arc<dyn DenialHook>>,
}

impl Shared {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn denial_hook(&self) -> Option<&dyn DenialHook> {
        self.denial_hook.as_deref()
    }

    /// Whole seconds since start: the audit sampler's clock.
    pub(crate) fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn swap(&self, new: GatewayConfig) -> Result<(), ConfigError> {
        let current = self.snapshot();
        if let Some(what) = current.config.restart_only_differs(&new) {
            return Err(ConfigError(format!(
                "{what} changed; it only takes effect on restart"
            )));
        }
        let snap = Snapshot::build(new, Some(&current))?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        Ok(())
    }

    /// Re-reads the TLS certificate and key; an invalid pair keeps the served one and is
    /// logged. `Ok` without TLS.
    pub fn reload_tls(&self) -> Result<(), ConfigError> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        let result = tls.reload();
        match &result {
            Ok(()) => {
                self.metrics.tls_reload("ok");
                tracing::info!(
                    certificate_sha256 = tls.certs().fingerprint().as_deref().unwrap_or(""),
                    "TLS certificate reloaded"
                );
            }
            Err(e) => {
                self.metrics.tls_reload("refused");
                tracing::error!(error = %e, "TLS certificate reload refused; the previous certificate stays in use");
            }
        }
        result
    }

    /// Applies `new` if it is valid; otherwise keeps the running configuration and says why.
    /// Either way the TLS certificate and key files are re-read ([`Shared::reload_tls`]).
    pub fn reload_with(&self, new: Result<GatewayConfig, ConfigError>) -> Result<(), ConfigError> {
        let _ = self.reload_tls();
        let result = new.and_then(|c| self.swap(c));
        match &result {
            Ok(()) => {
                self.metrics.reload("ok");
                tracing::info!("gateway configuration reloaded");
            }
            Err(e) => {
                self.metrics.reload("refused");
                tracing::error!(error = %e, "gateway configuration reload refused; the previous configuration stays in force");
            }
        }
        result
    }

    /// Re-reads the file the gateway was started from.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.config_path else {
            return self.reload_with(Err(ConfigError(
                "the gateway was not started from a file".into(),
            )));
        };
        self.reload_with(GatewayConfig::load(path))
    }
}
