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
//! With `[tls]` the main listener speaks TLS only ([`tls`]); routes may require a verified
//! client certificate. With `[identity_jwt]` upstreams also get the caller's identity as a
//! short-lived signed JWT ([`identity`]), whose public key is served at
//! `/_portcullis/identity/jwks.json`. Routes with `websocket = true` tunnel authorized HTTP/1.1
//! WebSocket upgrades to their upstream; without TLS, clients may also speak HTTP/2 with prior
//! knowledge (h2c).
//!
//! This crate must never forward a request whose route it could not determine, or that the
//! upstream could read as another path or host than the one its route was chosen by; never pass
//! a client-sent `X-Portcullis-*` header upstream, in any spelling; and never tell a client why
//! it was refused beyond the RFC 6750 code.

pub mod audit;
pub mod config;
pub mod forward_auth;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod proxy;
pub mod ratelimit;
pub mod routes;
mod server;
pub mod tls;
mod upgrade;
pub mod workers;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use portcullis_verify::{Denial, Principal, RequestFacts, Verifier};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{ConfigError, GatewayConfig};
pub use server::Conn;

use crate::audit::Sampler;
use crate::config::ClientCertMode;
use crate::host::HostError;
use crate::identity::IdentitySigner;
use crate::metrics::Metrics;
use crate::path::{NormalPath, PathError};
use crate::proxy::Upstream;
use crate::routes::{Access, Matched, RouteTable};
use crate::tls::Tls;

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
    current: RwLock<Arc<Snapshot>>,
    config_path: Option<PathBuf>,
    /// The main listener's TLS state, when `[tls]` is set (fixed at start; its certificate
    /// reloads).
    pub tls: Option<Arc<Tls>>,
    started: Instant,
}

impl Shared {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        let shared = Arc::new(Shared {
            verifier,
            metrics: Metrics::new(),
            current: RwLock::new(Arc::new(snap)),
            config_path,
            tls: tls.clone(),
            started: Instant::now(),
        });
        let s = shared.clone();
        let (l, t) = (limits.clone(), tls.clone());
        let workers = workers::spawn(listeners, move |listener| {
            let s = s.clone();
            server::serve(listener, l.clone(), t.clone(), move |req, conn| {
                proxy::handle(s.clone(), req, conn)
            })
        })?;
        let mut tasks = Vec::new();
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

async fn admin_handle(
    shared: Arc<Shared>,
    req: http::Request<hyper::body::Incoming>,
) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => {
            let text = shared.metrics.render(&shared.verifier);
            let mut r = Response::new(Body::from(text));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/healthz" => Response::new(Body::from("ok\n")),
        identity::JWKS_PATH => jwks_response(&shared.snapshot()),
        // Ready when verification is not failing closed on a stale revocation feed.
        "/readyz" => {
            if shared.verifier.revocations().check_fresh().is_ok() {
                Response::new(Body::from("ready\n"))
            } else {
                simple(StatusCode::SERVICE_UNAVAILABLE, "not_ready")
            }
        }
        _ => simple(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// The identity JWT public key set (`/_portcullis/identity/jwks.json`); 404 when identity JWTs
/// are not configured.
pub fn jwks_response(snap: &Snapshot) -> Response<Body> {
    let Some(signer) = &snap.identity else {
        return simple(StatusCode::NOT_FOUND, "not_found");
    };
    let mut r = Response::new(Body::from(signer.jwks().to_owned()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short: a rotated key must reach upstreams within an identity JWT's lifetime or so.
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    r
}

/// A concise JSON error answer: `{"error": code}`, never more.
pub fn simple(status: StatusCode, code: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{{\"error\":\"{code}\"}}")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// The request id shared by the response, tracing and audit: the client's `x-request-id` when it
/// is a short token, otherwise a fresh one.
pub fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(proxy::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    BadPath(PathError),
    /// The request's host is malformed or ambiguous ([`host`]).
    BadHost(HostError),
    NotFound,
    Denied(Denial),
    /// The route requires a verified client certificate and the connection presented none.
    ClientCertRequired,
    RateLimited {
        retry_after: u64,
    },
}

impl Refusal {
    /// The label used for metrics `outcome`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::BadPath(_) | Self::BadHost(_) => "bad_request",
            Self::NotFound => "not_found",
            Self::ClientCertRequired => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Denied(d) => match d.class().status() {
                400 => "bad_request",
                403 => "forbidden",
                429 => "rate_limited",
                _ => "unauthorized",
            },
        }
    }

    /// The answer a client gets (RFC 6750 for credential problems).
    pub fn response(&self, verifier: &Verifier) -> Response<Body> {
        match self {
            Self::BadPath(_) | Self::BadHost(_) => {
                simple(StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::NotFound => simple(StatusCode::NOT_FOUND, "not_found"),
            // 403, not 401: no bearer credential would help, only a new connection with a
            // certificate. RFC 6749's `access_denied`, without a WWW-Authenticate challenge.
            Self::ClientCertRequired => simple(StatusCode::FORBIDDEN, "access_denied"),
            Self::RateLimited { retry_after } => {
                let mut r = simple(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after));
                r
            }
            Self::Denied(d) => portcullis_verify::denial_response(*d, verifier.realm()),
        }
    }
}

/// A request let through: its route and, for protected routes, who is calling.
#[derive(Debug)]
pub struct Allowed<'a> {
    pub matched: Matched<'a>,
    pub principal: Option<Arc<Principal>>,
}

/// The request facts a decision needs, from the proxied request or a forward-auth description.
#[derive(Debug)]
pub struct Facts<'a> {
    /// Method, URI (its query is checked for credentials) and headers of the original request.
    pub parts: &'a Parts,
    /// The host name routes are matched by: the one the upstream is told ([`host`]).
    pub host: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// The fingerprint of the client certificate verified on this connection; always `None`
    /// in forward-auth mode (the connection is the proxy's, not the client's).
    pub client_cert: Option<&'a str>,
    pub request_id: &'a str,
    /// `proxy`, `nginx`, `traefik` or `envoy`, for the audit event.
    pub mode: &'static str,
}

/// Decides one request: route, credential, policy, rate limit. Denials are counted and audited
/// here, so every mode reports them the same way.
pub async fn decide<'a>(
    shared: &Shared,
    snap: &'a Snapshot,
    path: &'a Result<NormalPath, PathError>,
    f: &Facts<'_>,
) -> Result<Allowed<'a>, (Option<Arc<str>>, Refusal)> {
    let path = match path {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(request_id = f.request_id, error = %e, "path refused");
            return Err((None, Refusal::BadPath(*e)));
        }
    };
    let Some(matched) = snap.routes.find(f.host, path, &f.parts.method) else {
        return Err((None, Refusal::NotFound));
    };
    let route = matched.route;
    if route.client_cert == ClientCertMode::Required && f.client_cert.is_none() {
        shared
            .metrics
            .auth_failure("access_denied", "client_cert_missing");
        audit::denial(
            &snap.sampler,
            &shared.metrics,
            shared.second(),
            &audit::Denied {
                request_id: f.request_id,
                route: &route.name,
                method: f.parts.method.as_str(),
                reason: "client_cert_missing",
                status: 403,
                client_ip: f.client_ip,
                mode: f.mode,
            },
        );
        return Err((Some(route.name.clone()), Refusal::ClientCertRequired));
    }
    let principal = match &route.access {
        Access::Public => None,
        Access::Protected(policy) => {
            let tenant = matched.resource_tenant(&f.parts.headers);
            let result = match portcullis_verify::http::presented_credential(f.parts) {
                Err(reason) => Err(Denial::from(reason)),
                Ok(presented) => {
                    shared
                        .verifier
                        .check(
                            presented,
                            policy,
                            RequestFacts {
                                resource_tenant: tenant.as_ref(),
                                client_ip: f.client_ip,
                            },
                        )
                        .await
                }
            };
            match result {
                Ok(p) => Some(p),
                Err(denial) => {
                    let class = denial.class();
                    shared.metrics.auth_failure(
                        class.error_code().unwrap_or("no_credential"),
                        denial.reason.as_str(),
                    );
                    audit::denial(
                        &snap.sampler,
                        &shared.metrics,
                        shared.second(),
                        &audit::Denied {
                            request_id: f.request_id,
                            route: &route.name,
                            method: f.parts.method.as_str(),
                            reason: denial.reason.as_str(),
                            status: class.status(),
                            client_ip: f.client_ip,
                            mode: f.mode,
                        },
                    );
                    return Err((Some(route.name.clone()), Refusal::Denied(denial)));
                }
            }
        }
    };
    if let Some(limit) = &route.rate_limit {
        // Tokens count per issuer and subject, not per token: a client could otherwise mint a
        // fresh token to start a fresh bucket. An API key counts per key.
        let caller = match (&principal, f.client_ip) {
            (Some(p), _) if p.kind == portcullis_verify::CredentialKind::AccessToken => format!(
                "token:{}:{}",
                p.issuer.as_deref().unwrap_or_default(),
                p.subject
            ),
            (Some(p), _) => format!("{}:{}", p.kind.as_str(), p.credential_id),
            (None, Some(ip)) => format!("ip:{ip}"),
            (None, None) => "unknown".to_owned(),
        };
        if let Err(retry_after) = limit.check(&caller, Instant::now()) {
            tracing::info!(
                request_id = f.request_id,
                route = &*route.name,
                "rate limited"
            );
            return Err((
                Some(route.name.clone()),
                Refusal::RateLimited { retry_after },
            ));
        }
    }
    Ok(Allowed { matched, principal })
}

/// The identity headers set for upstreams (proxy) or returned to the proxy (forward-auth).
pub const IDENTITY_HEADERS: [HeaderName; 6] = [
    HeaderName::from_static("x-portcullis-subject"),
    HeaderName::from_static("x-portcullis-client"),
    HeaderName::from_static("x-portcullis-tenant"),
    HeaderName::from_static("x-portcullis-scopes"),
    HeaderName::from_static("x-portcullis-credential-kind"),
    HeaderName::from_static("x-portcullis-credential-id"),
];

/// The identity header values for a principal, in [`IDENTITY_HEADERS`] order; `None` where the
/// principal has no such fact. `None` when a value cannot be a header value (refuse, never
/// forward a truncated identity).
pub fn identity_values(p: &Principal) -> Option<[Option<HeaderValue>; 6]> {
    let v = |s: &str| HeaderValue::from_str(s).map_err(|_| ());
    Some([
        Some(v(&p.subject).ok()?),
        p.client_id.as_deref().map(v).transpose().ok()?,
        p.tenant.as_ref().map(|t| v(t.as_str())).transpose().ok()?,
        Some(v(&p.scopes.join(" ")).ok()?),
        Some(HeaderValue::from_static(p.kind.as_str())),
        Some(v(&p.credential_id).ok()?),
    ])
}
