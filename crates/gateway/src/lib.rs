//! Portcullis gateway: puts the verify library's rules in front of any HTTP service, as a
//! reverse proxy ([`proxy`]) or as the forward-auth endpoint of an nginx, Traefik or Envoy the
//! user already runs ([`forward_auth`]).
//!
//! Every request is decided the same way ([`decide`]): parse the host ([`host`]) and normalise
//! the path ([`path`]), pick the most specific route ([`routes`]), and either let it through
//! (`public = true`) or verify its credential against the route's policy; then the per-route
//! rate limit. Anything unmatched is 404; anything that fails is refused (fail closed). A client
//! address comes from forwarding headers only by the one rule in
//! [`portcullis_core::forwarded`] (trusted proxies only; see [`forward_auth`]).
//!
//! The running configuration is an immutable [`Snapshot`] swapped whole on reload (SIGHUP, file
//! change, or [`Gateway::reload`]); requests in flight finish on the snapshot they started with
//! and connections are never dropped. Sockets, limits and the verifier are fixed at start.
//!
//! With `[audit.report]` the denials it audits are also sent, in batches, to a Portcullis
//! server for its detectors ([`report`]).
//!
//! With `[tls]` the main listener speaks TLS only ([`tls`]); routes may require a verified
//! client certificate. With `[identity_jwt]` upstreams also get the caller's identity as a
//! short-lived signed JWT ([`identity`]), whose public key is served at
//! `/_portcullis/identity/jwks.json`. Routes with `websocket = true` tunnel authorized HTTP/1.1
//! WebSocket upgrades to their upstream; without TLS, clients may also speak HTTP/2 with prior
//! knowledge (h2c).
//!
//! Modules depend one way (`.ci/module-cycles` checks it): `headers` (header rules, request id)
//! and `upstream` (one upstream and its pool) need nothing request-level; `state` ([`Snapshot`],
//! [`Shared`]) builds on upstreams; `decision` ([`decide`], [`Refusal`]) reads the state;
//! `endpoints` (admin listener, JWKS), [`forward_auth`], `upgrade` and [`proxy`] use those; the
//! crate root only declares the modules, starts the gateway ([`Gateway`], [`run`]) and
//! re-exports.
//!
//! This crate must never forward a request whose route it could not determine, or that the
//! upstream could read as another path or host than the one its route was chosen by; never pass
//! a client-sent `X-Portcullis-*` header upstream, in any spelling; and never tell a client why
//! it was refused beyond the RFC 6750 code.

pub mod audit;
pub mod config;
mod decision;
mod endpoints;
pub mod forward_auth;
mod headers;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod proxy;
pub mod ratelimit;
pub mod report;
pub mod routes;
mod server;
mod state;
pub mod tls;
mod upgrade;
mod upstream;
pub mod workers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use portcullis_verify::Verifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{ConfigError, GatewayConfig};
pub use decision::{decide, simple, Allowed, Facts, Refusal};
pub use endpoints::jwks_response;
pub use headers::{identity_values, request_id, IDENTITY_HEADERS};
pub use server::Conn;
pub use state::{Shared, Snapshot};

use crate::endpoints::admin_handle;
use crate::metrics::Metrics;
use crate::tls::Tls;

/// A started gateway: its bound addresses and tasks.
#[derive(Debug)]
pub struct Gateway {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    /// The main listener's worker threads; dropped with the gateway, which stops them.
    _workers: workers::Workers,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Gateway {
    /// Starts from a file: builds the verifier from its `[verifier]` section.
    pub async fn start_from_file(path: &Path) -> Result<Self, StartError> {
        let config = GatewayConfig::load(path)?;
        let Some(v) = &config.verifier else {
            return Err(ConfigError("[verifier] section is required".into()).into());
        };
        let verifier =
            Verifier::new(v.to_verifier_config()?).map_err(|e| ConfigError(e.to_string()))?;
        Self::start(config, verifier, Some(path.to_owned())).await
    }

    /// Starts with a verifier the caller built (embedding, tests). `config_path` is what
    /// [`Shared::reload`] re-reads.
    pub async fn start(
        config: GatewayConfig,
        verifier: Verifier,
        config_path: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        Self::start_with_denial_hook(config, verifier, config_path, None).await
    }

    /// [`Gateway::start`] with an embedder's receiver of (sampled) denial events, connected
    /// before the first connection is accepted, so no denial escapes it.
    pub async fn start_with_denial_hook(
        config: GatewayConfig,
        verifier: Verifier,
        config_path: Option<PathBuf>,
        denial_hook: Option<Arc<dyn audit::DenialHook>>,
    ) -> Result<Self, StartError> {
        let snap = Snapshot::build(config, None)?;
        let (listeners, addr) =
            workers::bind(snap.config.listen, workers::count(snap.config.workers))?;
        let admin = match snap.config.admin_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
        let limits = snap.config.limits.clone();
        let watch = snap.config.reload.watch_interval;
        let tls = snap
            .config
            .tls
            .as_ref()
            .map(Tls::new)
            .transpose()?
            .map(Arc::new);
        let mut watched: Vec<PathBuf> = config_path.iter().cloned().collect();
        if let (Some(t), Some(_)) = (&snap.config.tls, &config_path) {
            watched.push(t.cert_file.clone());
            watched.push(t.key_file.clone());
        }
        let metrics = Metrics::new();
        let mut tasks = Vec::new();
        let denial_hook =
            match (&snap.config.audit.report, denial_hook) {
                (None, hook) => hook,
                (Some(_), Some(_)) => return Err(ConfigError(
                    "audit.report: this gateway's denials already go to its embedder's audit log"
                        .into(),
                )
                .into()),
                (Some(section), None) => {
                    let cfg = section.resolve(snap.config.verifier.as_ref())?;
                    let (reporter, task) = report::start(cfg, metrics.reports.clone())
                        .map_err(|e| ConfigError(format!("audit.report: {e}")))?;
                    tasks.push(task);
                    Some(reporter as Arc<dyn audit::DenialHook>)
                }
            };
        let shared = Arc::new(Shared {
            verifier,
            metrics,
            current: RwLock::new(Arc::new(snap)),
            config_path,
            tls: tls.clone(),
            started: Instant::now(),
            denial_hook,
        });
        let s = shared.clone();
        let (l, t) = (limits.clone(), tls.clone());
        let workers = workers::spawn(listeners, move |listener| {
            let s = s.clone();
            server::serve(listener, l.clone(), t.clone(), move |req, conn| {
                proxy::handle(s.clone(), req, conn)
            })
        })?;
        if let Some(l) = admin {
            let s = shared.clone();
            tasks.push(tokio::spawn(server::serve(
                l,
                limits,
                None,
                move |req, _| admin_handle(s.clone(), req),
            )));
        }
        if let (Some(every), false) = (watch, watched.is_empty()) {
            // The baseline is taken now, not when the task first runs, so a change made right
            // after start is not mistaken for the starting state.
            let seen = stamps(&watched);
            tasks.push(tokio::spawn(watch_files(
                shared.clone(),
                watched,
                every,
                seen,
            )));
        }
        tracing::info!(%addr, ?admin_addr, tls = tls.is_some(), "gateway listening");
        Ok(Self {
            shared,
            addr,
            admin_addr,
            tasks,
            _workers: workers,
        })
    }

    pub fn reload(&self) -> Result<(), ConfigError> {
        self.shared.reload()
    }
}

/// A start-up failure: configuration or I/O (binding a listener), with a message for the
/// operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn mtime(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(paths: &[PathBuf]) -> Stamps {
    paths.iter().map(|p| mtime(p)).collect()
}

/// Reloads when any watched file (the configuration, the TLS certificate and key) changes.
async fn watch_files(shared: Arc<Shared>, paths: Vec<PathBuf>, every: Duration, mut last: Stamps) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        let now = stamps(&paths);
        // A file missing mid-replace is not a change yet: wait until it is back. Only the
        // configuration file (first) must be present: a missing certificate or key is the
        // reload's to refuse (keeping the old pair), and must not stop config changes.
        if now != last && now.first().is_some_and(Option::is_some) {
            last = now;
            let _ = shared.reload();
        }
    }
}

/// Runs `portcullis gateway`: starts from `path`, reloads on SIGHUP, stops on SIGINT/SIGTERM.
pub async fn run(path: &Path) -> Result<(), StartError> {
    let gw = Gateway::start_from_file(path).await?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = gw.reload(); }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("gateway stopping");
    drop(gw);
    Ok(())
}
