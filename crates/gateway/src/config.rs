//! `gateway.toml`: the file format (serde, unknown keys refused) and its validation into the
//! compiled form the gateway runs ([`crate::routes::RouteTable`], upstream clients, the verifier).
//!
//! Validation fails closed: a route that names neither accepted credentials nor `public = true`,
//! a route naming an unknown upstream, two routes that would match the same requests, a path
//! pattern that normalisation would change, or a secret given both inline and as a file are all
//! refused at load. Secrets read from the file (`verifier.revocation.token`,
//! `verifier.api_keys.token`) are held as [`Secret`]s from the moment they are parsed, so a
//! `{:?}` of the configuration prints `[redacted]`. This module must never fill a missing policy
//! with a default, nor hold a secret as a plain string.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_core::forwarded::{ForwardedHeader, TrustedProxies};
use portcullis_core::secret::Secret;
use portcullis_verify::{
    Alg, ApiKeyConfig, ApiKeySource, FeedConfig, IssuerConfig, KeySource, RevocationSource,
    VerifierConfig,
};
use serde::Deserialize;

/// Why a configuration was refused. The message names the offending key; it never contains a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Durations are written as `"250ms"`, `"30s"`, `"5m"`.
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where clients (or the proxy in front, for forward-auth) connect.
    pub listen: SocketAddr,
    /// Metrics and health, on a separate address that should not be public.
    pub admin_listen: Option<SocketAddr>,
    /// Threads serving `listen`, each with its own event loop and upstream connections;
    /// default one per CPU. Read at start only (a reload that changes it is refused).
    pub workers: Option<usize>,
    #[serde(default)]
    pub limits: Limits,
    /// How request paths are normalised (safe by default).
    #[serde(default)]
    pub paths: PathsSection,
    /// Needed by `portcullis gateway`; embedders may pass their own verifier instead.
    pub verifier: Option<VerifierSection>,
    /// Addresses (CIDRs or single addresses) of the proxies in front of the gateway: the nginx,
    /// Traefik or Envoy asking forward-auth, a load balancer before the reverse proxy. Only
    /// their forwarding headers are believed ([`portcullis_core::forwarded`]); empty by
    /// default. A list, or one string of entries separated by commas or spaces; `/0` blocks and
    /// blocks with host bits set are refused.
    #[serde(default)]
    pub trusted_proxies: TrustedProxies,
    #[serde(default)]
    pub forward_auth: ForwardAuthSection,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub reload: ReloadSection,
    /// Serve the main listener over TLS (rustls) instead of plain HTTP.
    pub tls: Option<TlsSection>,
    /// Sign the caller's identity as a short-lived JWT for upstreams.
    pub identity_jwt: Option<IdentityJwtSection>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Request line plus headers; more is answered 431.
    #[serde(default = "Limits::default_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "Limits::default_max_headers")]
    pub max_headers: usize,
    /// Time allowed to receive a request's headers (also the keep-alive idle limit).
    #[serde(
        default = "Limits::default_header_read_timeout",
        deserialize_with = "duration::de"
    )]
    pub header_read_timeout: Duration,
}

impl Limits {
    fn default_max_header_bytes() -> usize {
        16 * 1024
    }
    fn default_max_headers() -> usize {
        100
    }
    fn default_header_read_timeout() -> Duration {
        Duration::from_secs(10)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: Self::default_max_header_bytes(),
            max_headers: Self::default_max_headers(),
            header_read_timeout: Self::default_header_read_timeout(),
        }
    }
}

/// Path normalisation rules ([`crate::path`]); both default to the safe choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PathsSection {
    /// `;` path parameters: `false` (default) refuses a path holding one with 400; `true` cuts
    /// each segment at its first `;`, and the stripped path is matched and forwarded.
    #[serde(default)]
    pub strip_parameters: bool,
    /// Let segments end in a dot or a space (`/admin./`, `/admin%20/`), which Windows and IIS
    /// read as `/admin/`. Default `false`: refused with 400.
    #[serde(default)]
    pub insecure_allow_windows_forms: bool,
}

impl PathsSection {
    pub fn rules(&self) -> crate::path::Rules {
        crate::path::Rules {
            strip_parameters: self.strip_parameters,
            insecure_allow_windows_forms: self.insecure_allow_windows_forms,
        }
    }
}

/// The verifier: one audience per gateway (the verify library checks one audience per
/// verifier; run one gateway per resource audience).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierSection {
    pub audience: String,
    #[serde(default)]
    pub issuers: Vec<IssuerSection>,
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub leeway: Option<Duration>,
    /// Longest `exp - iat` an access token may claim (default one hour, the server's default
    /// hard maximum; set it to the issuer's `oauth.max_access_token_ttl_secs` when that is raised).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub max_token_lifetime: Option<Duration>,
    pub tenant_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub realm: Option<String>,
    pub revocation: RevocationSection,
    pub api_keys: Option<ApiKeySection>,
    /// Plain HTTP to non-loopback key, feed and API-key endpoints.
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// DPoP proofs (RFC 9449) with `Authorization: DPoP` tokens.
    #[serde(default)]
    pub dpop: DpopSection,
}

/// `[verifier.dpop]`: how proofs presented with `Authorization: DPoP` tokens are checked.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DpopSection {
    /// Every proof must carry a current server nonce; a request without one is answered 401
    /// `use_dpop_nonce` with a `DPoP-Nonce` header (RFC 9449 section 9).
    #[serde(default)]
    pub require_nonce: bool,
    /// A file holding the secret nonces are derived from (at least 32 bytes, surrounding
    /// whitespace ignored). Give every gateway behind one name the same file and any of them
    /// accepts the others' nonces. Unset: a random key per process.
    pub nonce_secret_file: Option<PathBuf>,
    /// How old a proof's `iat` may be, and how long its `jti` is remembered (default 5m).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub max_age: Option<Duration>,
    /// Algorithms proofs may be signed with (default ES256, ES384, RS256, PS256, EdDSA).
    pub algorithms: Option<Vec<String>>,
}

/// Shortest nonce secret accepted from `nonce_secret_file`.
const MIN_NONCE_SECRET: usize = 32;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    pub issuer: String,
    pub discovery_url: Option<String>,
    pub jwks_url: Option<String>,
    /// A JWKS document, inline.
    pub jwks: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// e.g. `["ES256", "EdDSA"]`; default ES256, EdDSA, RS256.
    pub algorithms: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSection {
    /// The Portcullis server whose `/v1/revocations/stream` is followed.
    pub feed_url: Option<String>,
    pub token: Option<Secret<String>>,
    pub token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub staleness_bound: Option<Duration>,
    #[serde(default)]
    pub insecure_allow_stale: bool,
    /// No revocation checks at all (development only; logged loudly).
    #[serde(default)]
    pub insecure_none: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// The Portcullis server answering `POST /v1/api-keys/verify`.
    pub url: String,
    pub token: Option<Secret<String>>,
    pub token_file: Option<PathBuf>,
    /// Keys of any other environment are refused without a lookup.
    pub environment: String,
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub cache_ttl: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthSection {
    /// Serve `/_portcullis/auth/{nginx,traefik,envoy}` on the main listener.
    #[serde(default)]
    pub enabled: bool,
    /// A header the proxy in front sets to the client's address (`x-forwarded-for`,
    /// `forwarded`, `x-real-ip`, any other name); used for API-key IP allowlists, rate limits
    /// and audit. `forwarded` is read as RFC 7239, any other as a list like `X-Forwarded-For`.
    /// Read only from a peer in `trusted_proxies` (required with it), as the rightmost address
    /// that is not a trusted proxy ([`portcullis_core::forwarded`]). Unset: no client address
    /// is known in forward-auth mode.
    #[serde(default, deserialize_with = "forwarding_header")]
    pub client_ip_header: Option<ForwardedHeader>,
    /// A header the TLS-terminating proxy in front sets to the client certificate as URL-encoded
    /// PEM (nginx `$ssl_client_escaped_cert`), so certificate-bound tokens (`cnf.x5t#S256`)
    /// can be checked. Read only from a peer in `trusted_proxies` (required with it); from
    /// anyone else it is ignored and a bound token is refused.
    #[serde(default)]
    pub client_cert_header: Option<String>,
}

/// Any header name: `forwarded` is RFC 7239, every other name a list of addresses.
fn forwarding_header<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ForwardedHeader>, D::Error> {
    let name = String::deserialize(d)?;
    ForwardedHeader::named(&name)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Denial events written per second; the rest are counted and summarised.
    #[serde(default = "AuditSection::default_rate")]
    pub max_denials_per_second: u32,
    /// Send the denial events (after the rate above) to a Portcullis server, for its detectors
    /// ([`crate::report`]). Read at start only.
    pub report: Option<ReportSection>,
}

/// `[audit.report]`: where and how a standalone gateway sends its denials.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// The Portcullis server (`serve`) whose `POST /v1/gateway/denials` receives the batches,
    /// e.g. `https://auth.example.com`.
    pub url: String,
    /// A `service` credential (it needs `report_denials`); default: `verifier.revocation`'s.
    pub token: Option<Secret<String>>,
    pub token_file: Option<PathBuf>,
    /// Report every denial for this tenant (the credential must reach it); unset: for the
    /// credential's own tenant.
    pub tenant: Option<String>,
    /// Denials held in memory waiting to be sent; more are dropped and counted, never waited
    /// for. Default 10000, at most 1000000.
    #[serde(default = "ReportSection::default_queue")]
    pub queue_size: usize,
    /// Denials per request to the server. Default 100, at most
    /// `portcullis_core::denial_report::MAX_EVENTS` (200).
    #[serde(default = "ReportSection::default_batch")]
    pub batch_size: usize,
    /// Longest a denial waits for its batch to fill. Default 1s; 100ms to 1m.
    #[serde(
        default = "ReportSection::default_interval",
        deserialize_with = "duration::de"
    )]
    pub interval: Duration,
    /// Further attempts at a batch the server did not take (unreachable or 5xx), after 0.5s,
    /// 1s, 2s...; then the batch is dropped and counted. Default 3, at most 10.
    #[serde(default = "ReportSection::default_retries")]
    pub retries: u32,
}

impl ReportSection {
    fn default_queue() -> usize {
        10_000
    }
    fn default_batch() -> usize {
        100
    }
    fn default_interval() -> Duration {
        Duration::from_secs(1)
    }
    fn default_retries() -> u32 {
        3
    }

    /// Checks the bounds and reads the credential (`verifier` for its default).
    pub fn resolve(
        &self,
        verifier: Option<&VerifierSection>,
    ) -> Result<crate::report::ReportConfig, ConfigError> {
        let max_batch = portcullis_core::denial_report::MAX_EVENTS;
        if !(1..=1_000_000).contains(&self.queue_size) {
            return err("audit.report.queue_size: 1 to 1000000");
        }
        if !(1..=max_batch).contains(&self.batch_size) {
            return err(format!("audit.report.batch_size: 1 to {max_batch}"));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&self.interval) {
            return err("audit.report.interval: 100ms to 1m");
        }
        if self.retries > 10 {
            return err("audit.report.retries: at most 10");
        }
        let base = self.url.trim_end_matches('/');
        let insecure_http = verifier.is_some_and(|v| v.insecure_allow_http);
        // The one outbound-URL rule (the verifier's): parsed, so `http://127.0.0.1:x@host` is
        // `host`, not loopback.
        let allowed = reqwest::Url::parse(base)
            .is_ok_and(|u| portcullis_verify::fetch::url_allowed(&u, insecure_http));
        if !allowed {
            return err(
                "audit.report.url: https:// (plain http only to loopback, or with verifier.insecure_allow_http)",
            );
        }
        let token = match (&self.token, &self.token_file, verifier) {
            (None, None, Some(v)) if !v.revocation.insecure_none => {
                secret(&v.revocation.token, &v.revocation.token_file, "verifier.revocation")?
            }
            (None, None, _) => {
                return err(
                    "audit.report: token or token_file is required (no verifier.revocation credential to default to)",
                )
            }
            (t, f, _) => secret(t, f, "audit.report")?,
        };
        let tenant = self
            .tenant
            .as_deref()
            .map(portcullis_core::tenant::TenantId::parse)
            .transpose()
            .map_err(|e| ConfigError(format!("audit.report.tenant: {e}")))?;
        Ok(crate::report::ReportConfig {
            url: format!("{base}{}", portcullis_core::denial_report::PATH),
            token,
            tenant,
            queue_size: self.queue_size,
            batch_size: self.batch_size,
            interval: self.interval,
            retries: self.retries,
        })
    }
}

impl AuditSection {
    fn default_rate() -> u32 {
        100
    }
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            max_denials_per_second: Self::default_rate(),
            report: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReloadSection {
    /// Check the file's modification time this often and reload when it changes (SIGHUP
    /// always reloads).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub watch_interval: Option<Duration>,
}

/// TLS on the main listener. The certificate and key files are re-read on every reload; the
/// section itself (whether TLS is on, which files, the client CAs) takes effect on restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM: the server certificate followed by its chain.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM bundle of the CAs client certificates must chain to. Set: the server asks every
    /// client for a certificate and verifies any presented; routes decide whether one is
    /// required (`client_cert = "required"`).
    pub client_ca_file: Option<PathBuf>,
}

/// The signed identity JWT (`X-Portcullis-Identity`) for upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityJwtSection {
    /// PEM, PKCS#8: an Ed25519 (EdDSA) or P-256 (ES256) private key.
    pub signing_key_file: PathBuf,
    /// `iss` of every identity JWT.
    pub issuer: String,
    /// `exp - iat`; default 30s, at most 5m.
    #[serde(
        default = "IdentityJwtSection::default_lifetime",
        deserialize_with = "duration::de"
    )]
    pub lifetime: Duration,
}

impl IdentityJwtSection {
    fn default_lifetime() -> Duration {
        Duration::from_secs(30)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `http://host:port` with an optional base path prepended to every forwarded path.
    pub url: String,
    #[serde(
        default = "UpstreamSection::default_connect",
        deserialize_with = "duration::de"
    )]
    pub connect_timeout: Duration,
    /// Time allowed until the upstream's response headers arrive.
    #[serde(
        default = "UpstreamSection::default_read",
        deserialize_with = "duration::de"
    )]
    pub read_timeout: Duration,
    /// Speak HTTP/2 with prior knowledge (h2c) to this upstream instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// Send `X-Portcullis-Identity` to this upstream; default: yes when `[identity_jwt]` is
    /// set. `true` without `[identity_jwt]` is refused at load.
    pub identity_jwt: Option<bool>,
    /// `aud` of the identity JWTs this upstream gets; default: the upstream's name.
    pub identity_audience: Option<String>,
}

impl UpstreamSection {
    fn default_connect() -> Duration {
        Duration::from_secs(2)
    }
    fn default_read() -> Duration {
        Duration::from_secs(30)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKindName {
    AccessToken,
    ApiKey,
}

/// Whether a route needs a verified client certificate on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertMode {
    /// A verified certificate, when presented, is passed on; none is needed.
    #[default]
    Optional,
    /// A request on a connection without a verified client certificate is refused (403).
    Required,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Names the route in metrics and logs; defaults to its index.
    pub name: Option<String>,
    /// Exact host (port ignored, case-insensitive); any host when absent.
    pub host: Option<String>,
    /// Segments: literals, `{param}` for one segment, and a final `*` for any remainder.
    pub path: String,
    /// e.g. `["GET", "HEAD"]`; any method when absent.
    pub methods: Option<Vec<String>>,
    /// The upstream (needed unless the gateway only answers forward-auth requests).
    pub upstream: Option<String>,
    /// Credential kinds this route accepts. Either this or `public = true` is required.
    pub accept: Option<Vec<CredentialKindName>>,
    #[serde(default)]
    pub public: bool,
    pub scopes_all: Option<Vec<String>>,
    pub scopes_any: Option<Vec<String>>,
    pub roles_all: Option<Vec<String>>,
    pub roles_any: Option<Vec<String>>,
    /// A `{param}` of `path` holding the resource's tenant.
    pub tenant_from_path: Option<String>,
    /// A request header holding the resource's tenant.
    pub tenant_from_header: Option<String>,
    /// The audience tokens must name (and API keys must be allowed for) on this route; the
    /// verifier's `audience` when absent.
    pub audience: Option<String>,
    /// The environment API keys must belong to on this route (`live`, `test`, ...); the
    /// verifier's `api_keys.environment` when absent.
    pub api_key_environment: Option<String>,
    /// Pass the client's `Authorization` / `X-API-Key` to the upstream.
    #[serde(default)]
    pub forward_authorization: bool,
    /// Let HTTP/1.1 `Upgrade` requests (WebSocket) through to the upstream once authorized, and
    /// tunnel the upgraded connection. Off by default: elsewhere `Upgrade` is stripped and the
    /// request goes on as a plain one. Needs an HTTP/1.1 upstream.
    #[serde(default)]
    pub websocket: bool,
    pub rate_limit: Option<RateLimitSection>,
    /// `"required"`: only connections that presented a certificate verified against
    /// `tls.client_ca_file` (refused at load without one).
    #[serde(default)]
    pub client_cert: ClientCertMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// Sustained requests per second per caller (a token's issuer and subject, an API key, or the
    /// client address on public routes).
    pub per_second: f64,
    /// Requests allowed in a burst (default: `per_second`, at least 1).
    pub burst: Option<f64>,
}

impl GatewayConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(format!("gateway config: {e}")))
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// The parts that cannot change without a restart (sockets and the verifier, whose feed
    /// connection and caches live as long as the process).
    pub fn restart_only_differs(&self, other: &Self) -> Option<&'static str> {
        if self.listen != other.listen {
            Some("listen")
        } else if self.admin_listen != other.admin_listen {
            Some("admin_listen")
        } else if self.workers != other.workers {
            Some("workers")
        } else if self.limits != other.limits {
            Some("limits")
        } else if self.verifier != other.verifier {
            Some("verifier")
        } else if self.tls != other.tls {
            Some("tls")
        } else if self.audit.report != other.audit.report {
            Some("audit.report")
        } else {
            None
        }
    }
}

fn secret(
    inline: &Option<Secret<String>>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<Secret<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => err(format!("{what}: set either token or token_file, not both")),
        (Some(t), None) if !t.expose().is_empty() => Ok(t.clone()),
        (None, Some(p)) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| ConfigError(format!("{what}: reading {}: {e}", p.display())))?;
            let t = t.trim();
            if t.is_empty() {
                return err(format!("{what}: {} is empty", p.display()));
            }
            Ok(Secret::new(t.to_owned()))
        }
        _ => err(format!("{what}: token or token_file is required")),
    }
}

fn parse_alg(s: &str) -> Result<Alg, ConfigError> {
    Ok(match s {
        "ES256" => Alg::ES256,
        "ES384" => Alg::ES384,
        "EdDSA" => Alg::EdDSA,
        "RS256" => Alg::RS256,
        "PS256" => Alg::PS256,
        other => return err(format!("algorithm {other} is not supported")),
    })
}

impl VerifierSection {
    /// The verify library's configuration. Reads `*_file` secrets.
    pub fn to_verifier_config(&self) -> Result<VerifierConfig, ConfigError> {
        let mut issuers = Vec::new();
        for i in &self.issuers {
            let sources = [
                i.discovery_url.is_some(),
                i.jwks_url.is_some(),
                i.jwks.is_some(),
                i.jwks_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return err(format!(
                    "issuer {}: set exactly one of discovery_url, jwks_url, jwks, jwks_file",
                    i.issuer
                ));
            }
            let keys = if let Some(u) = &i.discovery_url {
                KeySource::Discovery(u.clone())
            } else if let Some(u) = &i.jwks_url {
                KeySource::JwksUrl(u.clone())
            } else if let Some(j) = &i.jwks {
                KeySource::Static(j.clone())
            } else if let Some(p) = &i.jwks_file {
                KeySource::Static(std::fs::read_to_string(p).map_err(|e| {
                    ConfigError(format!("issuer {}: reading {}: {e}", i.issuer, p.display()))
                })?)
            } else {
                return err("unreachable: no key source");
            };
            let mut cfg = IssuerConfig::new(i.issuer.clone(), keys);
            if let Some(algs) = &i.algorithms {
                cfg = cfg.algorithms(
                    algs.iter()
                        .map(|a| parse_alg(a))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            issuers.push(cfg);
        }
        let r = &self.revocation;
        let revocation = if r.insecure_none {
            if r.feed_url.is_some() {
                return err("revocation: insecure_none and feed_url are exclusive");
            }
            RevocationSource::InsecureNone
        } else {
            let Some(url) = &r.feed_url else {
                return err("revocation: feed_url is required (or insecure_none = true)");
            };
            let token = secret(&r.token, &r.token_file, "revocation")?;
            let mut feed = FeedConfig::new(url.clone(), token.into_inner());
            if let Some(b) = r.staleness_bound {
                feed.staleness_bound = b;
            }
            feed.insecure_allow_stale = r.insecure_allow_stale;
            feed.insecure_allow_http = self.insecure_allow_http;
            RevocationSource::Feed(feed)
        };
        let mut iter = issuers.into_iter();
        let first = iter.next();
        let mut cfg = match first {
            Some(i) => VerifierConfig::new(i, self.audience.clone(), revocation),
            None => {
                // API keys only: the verify library accepts an empty issuer list with keys.
                let mut c = VerifierConfig::new(
                    IssuerConfig::new("", KeySource::Static(String::new())),
                    self.audience.clone(),
                    revocation,
                );
                c.issuers.clear();
                c
            }
        };
        cfg.issuers.extend(iter);
        if let Some(l) = self.leeway {
            cfg.leeway = l;
        }
        if let Some(l) = self.max_token_lifetime {
            cfg.max_token_lifetime = l;
        }
        if let Some(t) = &self.tenant_claim {
            cfg.tenant_claim = t.clone();
        }
        if let Some(t) = &self.roles_claim {
            cfg.roles_claim = t.clone();
        }
        if let Some(t) = &self.realm {
            cfg.realm = t.clone();
        }
        cfg.insecure_allow_http = self.insecure_allow_http;
        if let Some(k) = &self.api_keys {
            let token = secret(&k.token, &k.token_file, "api_keys")?;
            let mut a = ApiKeyConfig::new(
                ApiKeySource::Http {
                    base_url: k.url.clone(),
                    token,
                },
                k.environment.clone(),
            );
            if let Some(t) = k.cache_ttl {
                a.cache_ttl = t;
            }
            cfg.api_keys = Some(a);
        }
        let d = &self.dpop;
        cfg.dpop.require_nonce = d.require_nonce;
        if let Some(age) = d.max_age {
            cfg.dpop.max_age = age;
        }
        if let Some(algs) = &d.algorithms {
            cfg.dpop.algorithms = algs
                .iter()
                .map(|a| parse_alg(a))
                .collect::<Result<Vec<_>, _>>()?;
            if cfg.dpop.algorithms.is_empty() {
                return err("verifier.dpop: algorithms must name at least one algorithm");
            }
        }
        if let Some(p) = &d.nonce_secret_file {
            cfg.dpop.nonce_secret =
                Some(read_nonce_secret(p).map_err(|e| ConfigError(format!("verifier.dpop: {e}")))?);
        }
        Ok(cfg)
    }
}

/// Reads a DPoP nonce secret file: at least [`MIN_NONCE_SECRET`] bytes once surrounding
/// whitespace is dropped. The one rule for `verifier.dpop.nonce_secret_file` and the embedded
/// gateway's `gateway.dpop_nonce_secret_file`.
pub fn read_nonce_secret(path: &Path) -> Result<Secret<Vec<u8>>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let trimmed = raw.trim_ascii();
    if trimmed.len() < MIN_NONCE_SECRET {
        return Err(format!(
            "{} must hold at least {MIN_NONCE_SECRET} bytes",
            path.display()
        ));
    }
    Ok(Secret::new(trimmed.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
listen = "127.0.0.1:0"
[upstreams.app]
url = "http://127.0.0.1:9"
"#;

    #[test]
    fn workers_change_only_on_restart() {
        let one = GatewayConfig::from_toml(&format!("workers = 1\n{BASE}")).expect("config");
        let two = GatewayConfig::from_toml(&format!("workers = 2\n{BASE}")).expect("config");
        assert_eq!(one.workers, Some(1));
        assert_eq!(one.restart_only_differs(&two), Some("workers"));
        assert_eq!(one.restart_only_differs(&one.clone()), None);
    }

    #[test]
    fn the_denial_report_url_follows_the_outbound_rule_and_bounds_hold() {
        let section = |url: &str, extra: &str| {
            let text = format!("{BASE}\n[audit.report]\nurl = \"{url}\"\ntoken = \"t\"\n{extra}");
            GatewayConfig::from_toml(&text)
                .expect("config")
                .audit
                .report
                .expect("report section")
                .resolve(None)
        };
        for ok in [
            "https://auth.example.com",
            "http://127.0.0.1:8080",
            "http://localhost:1/",
            "http://[::1]:9",
        ] {
            assert!(section(ok, "").is_ok(), "{ok}");
        }
        for refused in [
            // Looks like loopback as text; the host is evil.example.
            "http://127.0.0.1:x@evil.example",
            "http://127.0.0.1.evil.example",
            "http://auth.example.com",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(section(refused, "").is_err(), "{refused}");
        }
        assert!(section("https://a.example", "queue_size = 0").is_err());
        assert!(section("https://a.example", "batch_size = 201").is_err());
        assert!(section("https://a.example", "interval = \"10ms\"").is_err());
        assert!(section("https://a.example", "retries = 11").is_err());
        // No token and no verifier credential to default to.
        let text = format!("{BASE}\n[audit.report]\nurl = \"https://a.example\"\n");
        let bare = GatewayConfig::from_toml(&text).expect("config");
        assert!(bare.audit.report.expect("section").resolve(None).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = format!("{BASE}\nsurprise = 1\n");
        assert!(GatewayConfig::from_toml(&text).is_err());
        let text = format!("{BASE}\n[[routes]]\npath = \"/a\"\npublic = true\npolicy = 1\n");
        assert!(GatewayConfig::from_toml(&text).is_err());
    }

    #[test]
    fn durations_parse() {
        let text = format!("{BASE}connect_timeout = \"250ms\"\nread_timeout = \"3s\"\n");
        let c = GatewayConfig::from_toml(&text).expect("config");
        let u = &c.upstreams["app"];
        assert_eq!(u.connect_timeout, Duration::from_millis(250));
        assert_eq!(u.read_timeout, Duration::from_secs(3));
        assert!(GatewayConfig::from_toml(&format!("{BASE}read_timeout = \"soon\"\n")).is_err());
    }

    #[test]
    fn secrets_come_from_exactly_one_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("tok");
        std::fs::write(&f, "from-file\n").expect("write");
        assert_eq!(
            secret(&None, &Some(f.clone()), "t").expect("file").expose(),
            "from-file"
        );
        let inline = |t: &str| Some(Secret::new(t.to_owned()));
        assert_eq!(
            secret(&inline("x"), &None, "t").expect("inline").expose(),
            "x"
        );
        assert!(secret(&inline("x"), &Some(f), "t").is_err());
        assert!(secret(&None, &None, "t").is_err());
        assert!(secret(&inline(""), &None, "t").is_err());
    }

    /// Invariant 4: a parsed configuration printed with `{:?}` (a log line, a panic message)
    /// shows no token.
    #[test]
    fn debug_output_never_shows_a_token() {
        let text = format!(
            r#"{BASE}
[verifier]
audience = "api"
[verifier.revocation]
feed_url = "https://auth.example.com"
token = "feed-token-s3cret"
[verifier.api_keys]
url = "https://auth.example.com"
token = "api-keys-token-s3cret"
environment = "live"
"#
        );
        let c = GatewayConfig::from_toml(&text).expect("config");
        let printed = format!("{c:?} {c:#?}");
        for token in ["feed-token-s3cret", "api-keys-token-s3cret"] {
            assert!(!printed.contains(token), "{token} in {printed}");
        }
        assert!(printed.contains("[redacted]"), "{printed}");
        let v = c.verifier.as_ref().expect("verifier");
        let token = v.revocation.token.as_ref().expect("token");
        assert_eq!(token.expose(), "feed-token-s3cret");
        let cfg = v.to_verifier_config().expect("verifier config");
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn verifier_section_requires_a_revocation_choice() {
        let v = VerifierSection {
            audience: "api".into(),
            issuers: vec![],
            leeway: None,
            max_token_lifetime: None,
            tenant_claim: None,
            roles_claim: None,
            realm: None,
            revocation: RevocationSection {
                feed_url: None,
                token: None,
                token_file: None,
                staleness_bound: None,
                insecure_allow_stale: false,
                insecure_none: false,
            },
            api_keys: None,
            insecure_allow_http: false,
            dpop: DpopSection::default(),
        };
        assert!(v.to_verifier_config().is_err());
    }

    #[test]
    fn the_dpop_section_reads_a_shared_nonce_secret_and_refuses_a_short_one() {
        let dir = std::env::temp_dir().join(format!("pc-dpop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("nonce.key");
        std::fs::write(&good, format!("{}\n", "k".repeat(40))).expect("write");
        let short = dir.join("short.key");
        std::fs::write(&short, "too-short\n").expect("write");
        let toml = |extra: &str| {
            format!(
                r#"{BASE}
[verifier]
audience = "api"
revocation = {{ insecure_none = true }}
[verifier.dpop]
{extra}
"#
            )
        };
        let read = |extra: &str| {
            GatewayConfig::from_toml(&toml(extra))
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    c.verifier
                        .expect("verifier")
                        .to_verifier_config()
                        .map_err(|e| e.to_string())
                })
        };
        let cfg = read(&format!(
            "require_nonce = true\nmax_age = \"90s\"\nalgorithms = [\"ES256\"]\nnonce_secret_file = {:?}",
            good.display().to_string()
        ))
        .expect("valid");
        assert!(cfg.dpop.require_nonce);
        assert_eq!(cfg.dpop.max_age, Duration::from_secs(90));
        assert_eq!(cfg.dpop.algorithms, [Alg::ES256]);
        assert_eq!(
            cfg.dpop.nonce_secret.as_ref().map(|s| s.expose().clone()),
            Some(b"k".repeat(40)),
            "surrounding whitespace is not part of the secret"
        );
        assert!(
            !format!("{cfg:?}").contains("kkkk"),
            "the secret is redacted"
        );
        // Defaults: no nonce, a per-process key.
        let plain = read("").expect("defaults");
        assert!(!plain.dpop.require_nonce && plain.dpop.nonce_secret.is_none());
        let e = read(&format!(
            "nonce_secret_file = {:?}",
            short.display().to_string()
        ))
        .expect_err("short secret");
        assert!(
            e.contains("at least 32 bytes") && !e.contains("too-short"),
            "{e}"
        );
        assert!(read("algorithms = [\"HS256\"]").is_err());
        assert!(read("algorithms = []").is_err());
        assert!(read("nonce_secret = \"inline\"").is_err(), "unknown key");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
