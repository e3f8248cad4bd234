//! Configuration: defaults, then a TOML file, then `PORTCULLIS_*` environment variables, then
//! command-line flags. Unknown keys are an error naming the key and where it came from.
//!
//! Secrets (`database_url`) have a `*_file` variant so they can come from a mounted file, and are
//! held in [`Secret`] so printing the effective config redacts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use portcullis_core::secret::Secret;
use portcullis_core::signing::SigningAlgorithm;
use serde::{Deserialize, Serialize};

// Sections owned by the subsystem they configure, re-exported so the file's layout reads whole.
pub use portcullis_http::app::HttpConfig;
pub use portcullis_service::audit::AuditConfig;
pub use portcullis_service::mail::{SmtpConfig, SmtpTls};
pub use portcullis_service::oauth::{OAuthConfig, MAX_OAUTH_CACHE_TTL_MS};
pub use portcullis_service::passwords::Argon2Settings;
pub use portcullis_service::users::UsersConfig;

/// Environment variables with the `PORTCULLIS_` prefix that are not server settings: they belong
/// to the CLI client or the test harness, and must not trip the unknown-key check.
const NON_CONFIG_ENV: &[&str] = &[
    "url",
    "admin_token",
    "test_database_url",
    "insecure_crash_point",
];

/// Keys that were replaced, and why: refused with this message rather than as merely unknown, so
/// an upgrade tells the operator what to write instead.
const REPLACED_KEYS: &[(&str, &str)] = &[
    (
        "oauth.max_failures_per_client",
        "failures are no longer counted per client id alone (anyone could lock a client out by \
         failing with its id); use oauth.max_failures_per_client_id_and_source, counted per \
         client id and source address (see docs/token-service.md)",
    ),
    (
        "oauth.max_failures_per_ip",
        "renamed oauth.max_failures_per_source (a source is an IPv4 address or an IPv6 /64, \
         behind http.trusted_proxies the forwarded one)",
    ),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the embedded database, the generated KEK and the bootstrap credential live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; defaults to `<data_dir>/portcullis.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<Secret<String>>,
    /// File holding the database URL (for URLs with passwords).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url_file: Option<PathBuf>,
    /// Key-encryption key file; defaults to `<data_dir>/kek`, generated on a fresh directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kek_file: Option<PathBuf>,
    pub log: LogConfig,
    pub signing: SigningConfig,
    pub audit: AuditConfig,
    pub http: HttpConfig,
    pub api_keys: ApiKeysConfig,
    pub oauth: OAuthConfig,
    pub revocations: RevocationsConfig,
    pub gateway: GatewayEmbedConfig,
    pub metrics: crate::metrics::MetricsConfig,
    /// The detectors and alerts (issue 19; `docs/alerts.md`): on by default.
    pub detect: portcullis_core::detect::DetectConfig,
    /// Webhook delivery of alerts (`docs/alerts.md`).
    pub webhooks: portcullis_service::webhooks::WebhookSettings,
    /// Users: the new-password rule and one-time link lifetimes (`docs/users.md`).
    pub users: UsersConfig,
    /// Argon2id parameters (never below OWASP's) and the hashing pool.
    pub passwords: Argon2Settings,
    /// Sessions, refresh-token families and authorization codes (`docs/browser-apps.md`).
    pub sign_in: portcullis_service::sign_in::SignInSettings,
    /// Logout: back-channel logout delivery and its outbound rules (`docs/browser-apps.md`).
    pub logout: portcullis_service::logout::LogoutSettings,
    /// Workload identity: fetching trusted issuers' keys and its outbound rules
    /// (`docs/workload-identity.md`).
    pub federation: portcullis_service::federation::keys::FederationSettings,
    /// Sign-in throttling and the credential-stuffing / password-spraying detectors.
    pub login: portcullis_service::login::LoginSettings,
    /// Outgoing mail; without it, mail goes to `<data_dir>/outbox` (development).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    /// TLS on the main listener (`docs/mtls.md`); plain HTTP without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServeTlsConfig>,
}

/// `[tls]`: the listener's certificate (reloaded on SIGHUP without dropping connections) and
/// whether clients are asked for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeTlsConfig {
    /// PEM: the server certificate followed by its chain.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// `"off"` (default) or `"request"`: ask every client for a certificate, never require
    /// one. A presented certificate is accepted at the handshake when its key signed it; who
    /// issued it is judged by client authentication (the tenant's CA set, or the client's
    /// registered keys), and tokens are bound to it (RFC 8705).
    #[serde(default)]
    pub client_certificates: ClientCertificates,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificates {
    #[default]
    Off,
    Request,
}

impl ServeTlsConfig {
    /// The gateway's TLS section for the same files (one listener implementation).
    pub fn section(&self) -> portcullis_gateway::config::TlsSection {
        portcullis_gateway::config::TlsSection {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            client_ca_file: None,
        }
    }
}

/// The gateway embedded in `serve` (`docs/gateway.md`): off unless `config` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayEmbedConfig {
    /// The gateway's TOML file (routes, upstreams, listeners), without a `[verifier]` section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// The default audience of its routes (tokens must name it in `aud`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// With storage unreachable this long, every verification fails closed.
    pub staleness_bound_ms: u64,
    /// Every DPoP proof must carry a current server nonce (RFC 9449 section 9); a request
    /// without one is answered 401 `use_dpop_nonce` with a `DPoP-Nonce` header.
    pub dpop_require_nonce: bool,
    /// A file holding the secret DPoP nonces are derived from (at least 32 bytes). Unset: a key
    /// derived from the installation's KEK, so every node holding the same KEK file issues and
    /// accepts the same nonces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_nonce_secret_file: Option<PathBuf>,
}

impl Default for GatewayEmbedConfig {
    fn default() -> Self {
        Self {
            config: None,
            audience: None,
            staleness_bound_ms: 30_000,
            dpop_require_nonce: false,
            dpop_nonce_secret_file: None,
        }
    }
}

impl GatewayEmbedConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.config.is_some() && self.audience.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::Invalid(
                "gateway.audience is required with gateway.config".into(),
            ));
        }
        if !(1_000..=300_000).contains(&self.staleness_bound_ms) {
            return Err(ConfigError::Invalid(
                "gateway.staleness_bound_ms must be 1000 to 300000".into(),
            ));
        }
        Ok(())
    }
}

/// The revocation feed (`GET /v1/revocations`, `GET /v1/revocations/stream`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationsConfig {
    /// How often an open stream sends a heartbeat carrying its position, so a verifier can
    /// tell a quiet feed from a dead one.
    pub heartbeat_interval_ms: u64,
    /// How often each node reads the log head in case a change notification was lost (another
    /// node's append is normally learnt at once through PostgreSQL `LISTEN/NOTIFY`).
    pub poll_interval_ms: u64,
}

impl Default for RevocationsConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 1_000,
            poll_interval_ms: 5_000,
        }
    }
}

impl RevocationsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval_ms < 10 || self.poll_interval_ms < 10 {
            return Err(ConfigError::Invalid(
                "revocations.heartbeat_interval_ms and revocations.poll_interval_ms must be at \
                 least 10"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `portcullis_server=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Algorithm of newly generated signing keys: ES256 (default), RS256 or EdDSA.
    pub algorithm: SigningAlgorithm,
    /// How long a new key is published in JWKS before it signs. JWKS is cached for at most
    /// half of this.
    pub prepublish_secs: u64,
    /// Scheduled rotation: a new key every this many seconds (0 = only on demand).
    pub rotation_interval_secs: u64,
    /// How often each node checks for due rotations and for a new active key.
    pub check_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeysConfig {
    /// The environment this server verifies keys for when a caller does not name one: a `live`
    /// verifier refuses `test` keys and the reverse.
    pub environment: String,
    /// Verified keys kept in memory at most.
    pub cache_capacity: usize,
    /// How long a cached key is trusted before storage is read again. Changes made in this
    /// process invalidate the cache at once, changes made on other nodes as soon as the
    /// revocation log tells this node; this is the backstop should the log fall behind.
    pub cache_ttl_ms: u64,
    /// How often last-used times are written (one batch, not one write per request).
    pub usage_flush_interval_ms: u64,
    /// How often each node applies the tenants' lifetime policies in mode `disable` (the first
    /// time at a random point of the first period): 60 to 86400 seconds.
    pub lifetime_sweep_interval_secs: u64,
    /// Shared HMAC-SHA256 key of the secret scanner that posts leak reports. When set, a report
    /// without a valid `X-Portcullis-Signature: sha256=<hex>` over its body is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_report_hmac_key: Option<Secret<String>>,
    /// File holding `leak_report_hmac_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_report_hmac_key_file: Option<PathBuf>,
    /// The scanner's ECDSA P-256 public key (PEM `PUBLIC KEY`), as GitHub secret scanning
    /// publishes. When set, a report signed in `Github-Public-Key-Signature` (base64 DER
    /// ECDSA-SHA256 over the body) is accepted. Not secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_report_ecdsa_public_key: Option<String>,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        Self {
            environment: "live".into(),
            cache_capacity: 100_000,
            cache_ttl_ms: 30_000,
            usage_flush_interval_ms: 5_000,
            lifetime_sweep_interval_secs: 3_600,
            leak_report_hmac_key: None,
            leak_report_hmac_key_file: None,
            leak_report_ecdsa_public_key: None,
        }
    }
}

impl ApiKeysConfig {
    /// The scanner's HMAC key, read from the file if configured that way.
    pub fn leak_report_key(&self) -> Result<Option<Secret<Vec<u8>>>, ConfigError> {
        let raw = match (&self.leak_report_hmac_key, &self.leak_report_hmac_key_file) {
            (Some(k), _) => k.expose().trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        if raw.len() < 16 {
            return Err(ConfigError::Invalid(
                "api_keys.leak_report_hmac_key must be at least 16 characters".into(),
            ));
        }
        Ok(Some(Secret::new(raw.into_bytes())))
    }

    /// The scanner's ECDSA public key as SubjectPublicKeyInfo DER, checked to be a P-256 key.
    pub fn leak_report_ecdsa_key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        use base64::Engine;
        let Some(pem) = &self.leak_report_ecdsa_public_key else {
            return Ok(None);
        };
        let invalid = || {
            ConfigError::Invalid(
                "api_keys.leak_report_ecdsa_public_key must be a PEM P-256 PUBLIC KEY".into(),
            )
        };
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| invalid())?;
        aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            &der,
        )
        .map_err(|_| invalid())?;
        Ok(Some(der))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.leak_report_ecdsa_key()?;
        portcullis_core::credential::Environment::parse(&self.environment).map_err(|_| {
            ConfigError::Invalid(format!(
                "api_keys.environment {:?} must be a lowercase slug of 1 to 16 characters",
                self.environment
            ))
        })?;
        if self.cache_capacity == 0 || self.usage_flush_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "api_keys.cache_capacity and api_keys.usage_flush_interval_ms must be at least 1"
                    .into(),
            ));
        }
        if !(60..=86_400).contains(&self.lifetime_sweep_interval_secs) {
            return Err(ConfigError::Invalid(
                "api_keys.lifetime_sweep_interval_secs must be 60 to 86400 (seconds)".into(),
            ));
        }
        if self.leak_report_hmac_key.is_some() && self.leak_report_hmac_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "set api_keys.leak_report_hmac_key or leak_report_hmac_key_file, not both".into(),
            ));
        }
        if self.leak_report_hmac_key.is_some() {
            self.leak_report_key()?;
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./portcullis-data"),
            database_url: None,
            database_url_file: None,
            kek_file: None,
            log: LogConfig::default(),
            signing: SigningConfig::default(),
            audit: AuditConfig::default(),
            http: HttpConfig::default(),
            api_keys: ApiKeysConfig::default(),
            oauth: OAuthConfig::default(),
            revocations: RevocationsConfig::default(),
            gateway: GatewayEmbedConfig::default(),
            metrics: crate::metrics::MetricsConfig::default(),
            detect: portcullis_core::detect::DetectConfig::default(),
            webhooks: Default::default(),
            users: UsersConfig::default(),
            passwords: Argon2Settings::default(),
            sign_in: Default::default(),
            logout: Default::default(),
            federation: Default::default(),
            login: Default::default(),
            smtp: None,
            tls: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::ES256,
            prepublish_secs: 600,
            rotation_interval_secs: 30 * 24 * 3600,
            check_interval_secs: 10,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOverrides>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LogOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        // figment's messages name the key, the expected type and the source (file or env);
        // collect every error, not only the first.
        Self::Invalid(
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// Where the database lives, decided once from the config.
#[derive(Debug, Clone)]
pub enum DatabaseLocation {
    SqliteFile(PathBuf),
    SqliteUrl(Secret<String>),
    Postgres(Secret<String>),
}

impl Config {
    /// Loads defaults, the optional TOML file, `PORTCULLIS_*` environment variables and flags.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        Self::load_from(file, flags, Env::prefixed("PORTCULLIS_"))
    }

    fn load_from(
        file: Option<&Path>,
        flags: &FlagOverrides,
        env: Env,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = env.ignore(NON_CONFIG_ENV).split("__");
        let figment = figment.merge(env).merge(Serialized::defaults(flags));
        for (key, why) in REPLACED_KEYS {
            if figment.find_value(key).is_ok() {
                // Where it was set: the file, or the provider (the environment).
                let from = figment
                    .find_metadata(key)
                    .map(|m| match &m.source {
                        Some(source) => format!(" (in {source})"),
                        None => format!(" (from {})", m.name),
                    })
                    .unwrap_or_default();
                return Err(ConfigError::Invalid(format!(
                    "{key}{from} is no longer a setting: {why}"
                )));
            }
        }
        let config: Config = figment.extract()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.http.client_certificate_header {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "http.client_certificate_header: {name:?} is not a header name"
                )));
            }
            // Fail loudly: the header is read only from a trusted proxy.
            if self.http.trusted_proxies.is_empty() {
                return Err(ConfigError::Invalid(
                    "http.client_certificate_header needs http.trusted_proxies: the addresses of the proxies that set it".into(),
                ));
            }
        }
        self.users.validate().map_err(ConfigError::Invalid)?;
        self.sign_in.validate().map_err(ConfigError::Invalid)?;
        self.logout.validate().map_err(ConfigError::Invalid)?;
        self.federation.validate().map_err(ConfigError::Invalid)?;
        self.login.validate().map_err(ConfigError::Invalid)?;
        self.passwords
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.database_url.is_some() && self.database_url_file.is_some() {
            return Err(ConfigError::Invalid(
                "set database_url or database_url_file, not both".into(),
            ));
        }
        if self.audit.batch_size == 0
            || self.audit.queue_capacity == 0
            || self.audit.subscriber_capacity == 0
        {
            return Err(ConfigError::Invalid(
                "audit.batch_size, audit.queue_capacity and audit.subscriber_capacity must be at least 1".into(),
            ));
        }
        if self.audit.checkpoint_interval_secs == 0 || self.audit.retention_days > 36_500 {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_interval_secs must be at least 1 and audit.retention_days at most 36500 (0 keeps the log forever)".into(),
            ));
        }
        if self.metrics.listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError::Invalid(
                "metrics.listen must differ from listen: the metrics listener is separate".into(),
            ));
        }
        let mut detect = self.detect.problems();
        detect.extend(self.webhooks.problems());
        if !detect.is_empty() {
            return Err(ConfigError::Invalid(detect.join("; ")));
        }
        self.api_keys.validate()?;
        self.revocations.validate()?;
        self.gateway.validate()?;
        if self.gateway.config.is_some()
            && self.revocations.heartbeat_interval_ms.saturating_mul(2)
                > self.gateway.staleness_bound_ms
        {
            // The embedded gateway learns it is current once per heartbeat interval; a bound
            // shorter than two of them would fail every request closed between confirmations.
            return Err(ConfigError::Invalid(
                "gateway.staleness_bound_ms must be at least twice \
                 revocations.heartbeat_interval_ms"
                    .into(),
            ));
        }
        if let Some(issuer) = &self.oauth.issuer {
            let ok = (issuer.starts_with("https://") || issuer.starts_with("http://"))
                && !issuer.contains(['?', '#'])
                && !issuer.ends_with('/');
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "oauth.issuer {issuer:?} must be an http(s) URL without query, fragment or \
                     trailing slash"
                )));
            }
            if !issuer_is_reachable(issuer) {
                return Err(ConfigError::Invalid(format!(
                    "oauth.issuer {issuer:?} is not a URL clients can reach: it needs a host \
                     name or a specific address (not 0.0.0.0 or [::]) and no user info"
                )));
            }
        }
        if self.oauth.cache_ttl_ms > MAX_OAUTH_CACHE_TTL_MS || self.oauth.cache_capacity == 0 {
            return Err(ConfigError::Invalid(format!(
                "oauth.cache_ttl_ms must be at most {MAX_OAUTH_CACHE_TTL_MS} and \
                 oauth.cache_capacity at least 1"
            )));
        }
        let o = &self.oauth;
        if o.jwks_uri_timeout_ms == 0
            || o.jwks_uri_timeout_ms > 30_000
            || !(1_024..=1_048_576).contains(&o.jwks_uri_max_bytes)
            || o.jwks_uri_min_refetch_secs == 0
            || o.jwks_uri_cache_ttl_secs < o.jwks_uri_min_refetch_secs
        {
            return Err(ConfigError::Invalid(
                "oauth.jwks_uri_timeout_ms must be 1 to 30000, oauth.jwks_uri_max_bytes 1024 to \
                 1048576, oauth.jwks_uri_min_refetch_secs at least 1 and at most \
                 oauth.jwks_uri_cache_ttl_secs"
                    .into(),
            ));
        }
        if !(10..=3_600).contains(&o.dpop_proof_max_age_secs) {
            return Err(ConfigError::Invalid(
                "oauth.dpop_proof_max_age_secs must be 10 to 3600".into(),
            ));
        }
        if self.signing.check_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "signing.check_interval_secs must be at least 1".into(),
            ));
        }
        let o = &self.oauth;
        if o.default_access_token_ttl_secs == 0
            || o.max_access_token_ttl_secs == 0
            || o.default_access_token_ttl_secs > o.max_access_token_ttl_secs
            || o.throttle_window_secs == 0
        {
            return Err(ConfigError::Invalid(
                "oauth: token lifetimes and the throttle window must be at least 1 second, and \
                 the default lifetime at most the maximum"
                    .into(),
            ));
        }
        if o.max_failures_per_source == 0 || o.max_failures_per_client_id_and_source == 0 {
            return Err(ConfigError::Invalid(
                "oauth.max_failures_per_source and oauth.max_failures_per_client_id_and_source \
                 must be at least 1"
                    .into(),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            ConfigError::Invalid(format!(
                "log.level {:?} is not a filter: {e}",
                self.log.level
            ))
        })?;
        Ok(())
    }

    /// Resolves the database location, reading `database_url_file` if set.
    pub fn database(&self) -> Result<DatabaseLocation, ConfigError> {
        let url = match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => Some(url.expose().trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        match url {
            None => Ok(DatabaseLocation::SqliteFile(
                self.data_dir.join("portcullis.db"),
            )),
            Some(u) if u.starts_with("sqlite:") => Ok(DatabaseLocation::SqliteUrl(Secret::new(u))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(DatabaseLocation::Postgres(Secret::new(u)))
            }
            Some(_) => Err(ConfigError::Invalid(
                "database_url must start with sqlite:, postgres:// or postgresql://".into(),
            )),
        }
    }

    /// The issuer URL: `oauth.issuer`, or `http://<listen>` (see [`Self::issuer_at`]).
    pub fn issuer(&self) -> Result<String, ConfigError> {
        self.issuer_at(self.listen)
    }

    /// The issuer URL once the listener is bound: `oauth.issuer`, or `http://<bound>` (so
    /// `--listen 127.0.0.1:0` yields the real port, not `:0`).
    ///
    /// The default is refused where it cannot be the one issuer clients see (DESIGN.md
    /// invariant 11): on PostgreSQL, where several nodes would each present their own listen
    /// address, and on an unspecified listen address (`0.0.0.0`, `[::]`), which no client can
    /// reach.
    pub fn issuer_at(&self, bound: SocketAddr) -> Result<String, ConfigError> {
        if let Some(issuer) = &self.oauth.issuer {
            return Ok(issuer.clone());
        }
        if matches!(self.database(), Ok(DatabaseLocation::Postgres(_))) {
            return Err(ConfigError::Invalid(
                "oauth.issuer (PORTCULLIS_OAUTH__ISSUER) is required on PostgreSQL: every node \
                 must present the same issuer, the public URL clients reach, not its own listen \
                 address"
                    .into(),
            ));
        }
        if bound.ip().is_unspecified() {
            return Err(ConfigError::Invalid(format!(
                "oauth.issuer (PORTCULLIS_OAUTH__ISSUER) is required when listening on {bound}: \
                 http://{bound} is not a URL clients can reach; set the public URL"
            )));
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{bound}"))
    }

    /// The KEK file in force: the configured one, or `<data_dir>/kek`.
    pub fn kek_path(&self) -> (PathBuf, bool) {
        match &self.kek_file {
            Some(p) => (p.clone(), true),
            None => (self.data_dir.join("kek"), false),
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        // Secrets serialise as "[redacted]"; serialising this plain data cannot fail, but fall
        // back to Debug (also redacted) rather than panic.
        toml::to_string(self).unwrap_or_else(|_| format!("{self:#?}"))
    }
}

/// Whether an issuer URL names a host clients can reach: it parses, has a host that is not an
/// unspecified address, and carries no user info.
fn issuer_is_reachable(issuer: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(issuer) else {
        return false;
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return false;
    };
    let unspecified = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    !unspecified && url.username().is_empty() && url.password().is_none()
}

#[cfg(test)]
// figment::Jail's closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use portcullis_core::forwarded::ForwardedHeader;
    use std::io::Write;

    fn no_env() -> Env {
        Env::prefixed("PORTCULLIS_NO_SUCH_PREFIX_IN_TESTS_")
    }

    /// Whether an error message names the configuration file `f`. figment writes the path
    /// relative to the working directory, which another test's `figment::Jail` changes while
    /// tests run in parallel, so the file's (random, unique) name is what is compared.
    fn names_file(message: &str, f: &tempfile::NamedTempFile) -> bool {
        f.path()
            .file_name()
            .is_some_and(|n| message.contains(n.to_string_lossy().as_ref()))
    }

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("tempfile");
        f.write_all(contents.as_bytes()).expect("write");
        f
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.signing.algorithm, SigningAlgorithm::ES256);
        assert!(
            matches!(c.database().expect("db"), DatabaseLocation::SqliteFile(p) if p.ends_with("portcullis.db"))
        );
    }

    #[test]
    fn an_embedded_gateway_needs_an_audience_and_a_bound_above_two_heartbeats() {
        let load = |text: &str| {
            let f = file(text);
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
                .map_err(|e| e.to_string())
        };
        let ok = "[gateway]\nconfig = \"/etc/g.toml\"\naudience = \"orders-api\"\n";
        load(ok).expect("valid");
        let e = load("[gateway]\nconfig = \"/etc/g.toml\"\n").expect_err("no audience");
        assert!(e.contains("gateway.audience is required"), "{e}");
        let e = load(&format!(
            "{ok}staleness_bound_ms = 5000\n[revocations]\nheartbeat_interval_ms = 3000\n"
        ))
        .expect_err("bound below two heartbeats");
        assert!(e.contains("at least twice"), "{e}");
        load(&format!(
            "{ok}staleness_bound_ms = 6000\n[revocations]\nheartbeat_interval_ms = 3000\n"
        ))
        .expect("exactly two heartbeats");
        // Without an embedded gateway the heartbeat is not bounded by it.
        load("[revocations]\nheartbeat_interval_ms = 60000\n").expect("no gateway");
    }

    #[test]
    fn file_then_env_then_flags() {
        let f = file("listen = \"127.0.0.1:9000\"\n[signing]\nalgorithm = \"EdDSA\"\n[log]\nlevel = \"debug\"\n");
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_LOG__LEVEL", "warn");
            jail.set_env("PORTCULLIS_LISTEN", "127.0.0.1:9001");
            jail.set_env("PORTCULLIS_ADMIN_TOKEN", "not a config key");
            let flags = FlagOverrides {
                listen: Some("127.0.0.1:9002".parse().expect("addr")),
                ..Default::default()
            };
            let c = Config::load_from(Some(f.path()), &flags, Env::prefixed("PORTCULLIS_"))
                .expect("load");
            assert_eq!(c.listen.to_string(), "127.0.0.1:9002", "flag wins");
            assert_eq!(c.log.level, "warn", "env beats file");
            assert_eq!(
                c.signing.algorithm,
                SigningAlgorithm::EdDSA,
                "file beats default"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_key_and_file() {
        let f = file("listen = \"127.0.0.1:9000\"\nlisten_adress = \"x\"\n");
        let err = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("listen_adress"), "{msg}");
        assert!(names_file(&msg, &f), "{msg}");
    }

    #[test]
    fn the_metrics_listener_is_off_by_default_and_set_by_file_or_env() {
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.metrics.listen, None);
        let f = file("[metrics]\nlisten = \"127.0.0.1:9464\"\n");
        let c = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect("metrics");
        assert_eq!(
            c.metrics.listen,
            Some("127.0.0.1:9464".parse().expect("addr"))
        );
        let same = file("listen = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n");
        let e = Config::load_from(Some(same.path()), &FlagOverrides::default(), no_env())
            .expect_err("same address")
            .to_string();
        assert!(e.contains("metrics.listen must differ"), "{e}");
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_METRICS__LISTEN", "127.0.0.1:9465");
            let c = Config::load_from(
                None,
                &FlagOverrides::default(),
                Env::prefixed("PORTCULLIS_"),
            )
            .expect("env");
            assert_eq!(
                c.metrics.listen,
                Some("127.0.0.1:9465".parse().expect("addr"))
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_env_key_is_an_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_LISTN", "127.0.0.1:1");
            let err = Config::load_from(
                None,
                &FlagOverrides::default(),
                Env::prefixed("PORTCULLIS_"),
            )
            .expect_err("unknown env key");
            assert!(err.to_string().contains("listn"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn wrong_type_names_key_expected_type_and_file() {
        let f = file("[audit]\nbatch_size = \"lots\"\n");
        let msg = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect_err("wrong type")
            .to_string();
        assert!(msg.contains("batch_size"), "{msg}");
        assert!(msg.contains("usize") || msg.contains("integer"), "{msg}");
        assert!(names_file(&msg, &f), "{msg}");
    }

    #[test]
    fn unsupported_algorithm_and_bad_values_are_rejected() {
        for body in [
            "[signing]\nalgorithm = \"HS256\"\n",
            "[signing]\nalgorithm = \"none\"\n",
            "listen = \"not an address\"\n",
            "[log]\nformat = \"xml\"\n",
            "[audit]\nbatch_size = 0\n",
            "[audit]\ncheckpoint_interval_secs = 0\n",
            "[audit]\nretention_days = 99999\n",
            "[detect.thresholds]\nrefresh_factor = 0.5\n",
            "[detect.rules]\nbreak_glass_use = \"sometimes\"\n",
            "database_url = \"mysql://x\"\ndatabase_url_file = \"/x\"\n",
            "[oauth]\ncache_ttl_ms = 60001\n",
            "[oauth]\ncache_capacity = 0\n",
            "[oauth]\njwks_uri_timeout_ms = 0\n",
            "[oauth]\njwks_uri_max_bytes = 100\n",
            "[oauth]\njwks_uri_min_refetch_secs = 600\n",
            "[oauth]\nmax_failures_per_source = 0\n",
            "[oauth]\nmax_failures_per_client_id_and_source = 0\n",
            "[detect]\nmax_subjects = 0\n",
            "[detect.thresholds]\nfailed_auth_floor = 0\n",
            "[detect.thresholds]\nfailed_auth_factor = 0.5\n",
            "[detect.rules]\nnew_network = \"sometimes\"\n",
            "[detect.rules]\nno_such_rule = \"on\"\n",
            "[detect.tenants.\"Not A Tenant\"]\nfailed_auth_floor = 5\n",
            "[detect.tenant_rules.\"Not A Tenant\"]\nnew_network = \"off\"\n",
            "[detect.tenant_rules.acme]\nnew_network = \"sometimes\"\n",
            "[webhooks]\nmax_attempts = 0\n",
            "[detect]\nalert_retention_days = 99999\n",
            "[webhooks]\nlease_secs = 1\n",
            "[webhooks]\nno_such_key = 1\n",
        ] {
            let f = file(body);
            assert!(
                Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn detect_defaults_are_on_and_a_section_sets_modes_and_per_tenant_thresholds() {
        use portcullis_core::detect::{Mode, Rule};
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert!(c.detect.enabled);
        assert!(Rule::ALL.iter().all(|r| c.detect.rules.of(*r) == Mode::On));
        let f = file(
            "[detect]\nalert_interval_secs = 30\n[detect.rules]\nnew_network = \"shadow\"\n\
             [detect.thresholds]\nfailed_auth_floor = 50\n[detect.tenants.acme]\nfailed_auth_floor = 5\n",
        );
        let c = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect("detect section");
        assert_eq!(c.detect.rules.new_network, Mode::Shadow);
        assert_eq!(c.detect.rules.failed_auth_spike, Mode::On);
        assert_eq!(c.detect.alert_interval_secs, 30);
        assert_eq!(c.detect.thresholds.failed_auth_floor, 50);
        let acme = portcullis_core::tenant::TenantId::parse("acme").expect("tenant");
        assert_eq!(c.detect.thresholds_for(&acme).failed_auth_floor, 5);
        assert_eq!(c.detect.thresholds_for(&acme).failed_auth_window_secs, 300);
        let f = file(
            "[detect.tenant_rules.acme]\nfailed_auth_spike = \"shadow\"\n\
             [webhooks]\nmax_attempts = 5\ninsecure_allow_http = true\n",
        );
        let c = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect("tenant rules and webhooks");
        assert_eq!(
            c.detect.mode_for(Rule::FailedAuthSpike, &acme),
            Mode::Shadow
        );
        let other = portcullis_core::tenant::TenantId::parse("other").expect("tenant");
        assert_eq!(c.detect.mode_for(Rule::FailedAuthSpike, &other), Mode::On);
        assert_eq!(c.webhooks.max_attempts, 5);
        assert!(c.webhooks.insecure_allow_http);
        assert!(!c.webhooks.insecure_allow_private_addresses);
    }

    #[test]
    fn issuer_defaults_to_the_listen_address_and_is_validated() {
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.issuer().expect("issuer"), "http://127.0.0.1:8080");
        // No default where it cannot be the one issuer clients see.
        for unreachable in ["0.0.0.0:8080", "[::]:8080"] {
            let e = c
                .issuer_at(unreachable.parse().expect("addr"))
                .expect_err(unreachable);
            assert!(e.to_string().contains("not a URL clients can reach"), "{e}");
        }
        let pg = file("database_url = \"postgres://db/portcullis\"\n");
        let c = Config::load_from(Some(pg.path()), &FlagOverrides::default(), no_env())
            .expect("postgres");
        let e = c.issuer().expect_err("postgres needs an issuer");
        assert!(e.to_string().contains("required on PostgreSQL"), "{e}");
        let pg = file(
            "database_url = \"postgres://db/portcullis\"\n[oauth]\nissuer = \"https://auth.example.com\"\n",
        );
        let c = Config::load_from(Some(pg.path()), &FlagOverrides::default(), no_env())
            .expect("postgres");
        assert_eq!(
            c.issuer_at("0.0.0.0:8080".parse().expect("addr"))
                .expect("explicit"),
            "https://auth.example.com"
        );
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.oauth.default_access_token_ttl_secs, 600);
        assert_eq!(c.oauth.max_access_token_ttl_secs, 3600);
        let f = file("[oauth]\nissuer = \"https://auth.example.com\"\n");
        let c =
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).expect("issuer");
        assert_eq!(c.issuer().expect("issuer"), "https://auth.example.com");
        for bad in [
            "[oauth]\nissuer = \"http://0.0.0.0:8080\"\n",
            "[oauth]\nissuer = \"https://[::]\"\n",
            "[oauth]\nissuer = \"https://user:pw@auth.example.com\"\n",
            "[oauth]\nissuer = \"https://\"\n",
            "[oauth]\nissuer = \"auth.example.com\"\n",
            "[oauth]\nissuer = \"https://auth.example.com/\"\n",
            "[oauth]\nissuer = \"https://auth.example.com/?x=1\"\n",
            "[oauth]\nmax_access_token_ttl_secs = 60\n",
            "[oauth]\nissuer_url = \"https://x\"\n",
        ] {
            let f = file(bad);
            assert!(
                Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Config::load_from(
            Some(Path::new("/nonexistent/portcullis.toml")),
            &FlagOverrides::default(),
            no_env(),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/portcullis.toml"));
    }

    #[test]
    fn database_url_file_is_read_and_redacted_when_printed() {
        let secret_file = file("postgres://user:s3cret@db/portcullis\n");
        let f = file(&format!(
            "database_url_file = {:?}\n",
            secret_file.path().display().to_string()
        ));
        let c =
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).expect("load");
        match c.database().expect("db") {
            DatabaseLocation::Postgres(url) => {
                assert_eq!(url.expose(), "postgres://user:s3cret@db/portcullis")
            }
            other => panic!("{other:?}"),
        }
        let inline = file("database_url = \"postgres://user:s3cret@db/p\"\n");
        let c = Config::load_from(Some(inline.path()), &FlagOverrides::default(), no_env())
            .expect("load");
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn users_passwords_sign_in_and_smtp_sections_refuse_anything_weaker_than_the_floor() {
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.passwords.memory_kib, 19456);
        assert_eq!(c.users.password_min_chars, 12);
        assert_eq!(c.sign_in.code_lifetime_secs, 60);
        assert_eq!(
            c.login.free_failures_per_account, 5,
            "throttling is on by default"
        );
        assert!(c.smtp.is_none(), "no SMTP: the development outbox");
        for (toml, names) in [
            ("[passwords]\nmemory_kib = 4096\n", "19456"),
            ("[passwords]\niterations = 1\n", "minimum is 2"),
            ("[users]\npassword_min_chars = 6\n", "at least 8"),
            ("[users]\npassword_max_chars = 32\n", "at least 64"),
            ("[users]\nreset_ttl_secs = 604800\n", "reset_ttl_secs"),
            ("[sign_in]\ncode_lifetime_secs = 61\n", "code_lifetime_secs"),
            ("[sign_in]\nrefresh_grace_secs = 61\n", "refresh_grace_secs"),
            ("[sign_in]\nsession_idle_secs = 0\n", "session_idle_secs"),
            (
                "[sign_in]\nsession_idle_secs = 7200\nsession_absolute_secs = 3600\n",
                "session_absolute_secs",
            ),
            (
                "[sign_in]\nrefresh_idle_secs = 99\nrefresh_absolute_secs = 98\n",
                "refresh_absolute_secs",
            ),
            ("[login]\nwindow_secs = 0\n", "window_secs"),
            ("[login]\nspraying_accounts = 1\n", "spraying_accounts"),
            ("[login]\nlockout = true\n", "lockout"),
        ] {
            let f = file(toml);
            let err = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
                .expect_err(toml)
                .to_string();
            assert!(err.contains(names), "{toml}: {err}");
        }
        let f = file(
            "[passwords]\nmemory_kib = 65536\niterations = 3\n[smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\npassword_file = \"/run/secrets/smtp\"\nusername = \"u\"\n",
        );
        let c = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect("stronger is fine");
        assert_eq!(c.passwords.memory_kib, 65536);
        let smtp = c.smtp.expect("smtp");
        assert_eq!(
            (smtp.port, smtp.tls),
            (587, SmtpTls::Starttls),
            "TLS by default"
        );
        let f = file("[smtp]\nhost = \"x\"\nfrom = \"a@example.com\"\npasword_file = \"/x\"\n");
        assert!(Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).is_err());
    }

    #[test]
    fn api_keys_section_defaults_file_env_and_validation() {
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.api_keys.environment, "live");
        assert_eq!(c.api_keys.lifetime_sweep_interval_secs, 3600);
        assert!(c.api_keys.leak_report_key().expect("key").is_none());
        let f = file("[api_keys]\nlifetime_sweep_interval_secs = 600\n");
        let c = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
            .expect("a ten-minute sweep");
        assert_eq!(c.api_keys.lifetime_sweep_interval_secs, 600);

        let f = file("[api_keys]\nenvironment = \"test\"\nleak_report_hmac_key = \"0123456789abcdef-scanner\"\n");
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_API_KEYS__CACHE_TTL_MS", "1000");
            let c = Config::load_from(
                Some(f.path()),
                &FlagOverrides::default(),
                Env::prefixed("PORTCULLIS_"),
            )
            .expect("load");
            assert_eq!(c.api_keys.environment, "test");
            assert_eq!(c.api_keys.cache_ttl_ms, 1000);
            let key = c.api_keys.leak_report_key().expect("ok").expect("some");
            assert_eq!(key.expose(), b"0123456789abcdef-scanner");
            let printed = c.to_redacted_toml();
            assert!(!printed.contains("0123456789abcdef"), "{printed}");
            Ok(())
        });

        let key_file = file("from-a-file-0123456789\n");
        let f = file(&format!(
            "[api_keys]\nleak_report_hmac_key_file = {:?}\n",
            key_file.path().display().to_string()
        ));
        let c =
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).expect("load");
        assert_eq!(
            c.api_keys
                .leak_report_key()
                .expect("ok")
                .expect("some")
                .expose(),
            b"from-a-file-0123456789"
        );

        for body in [
            "[api_keys]\nenvironment = \"LIVE\"\n",
            "[api_keys]\nenvironment = \"\"\n",
            "[api_keys]\ncache_capacity = 0\n",
            "[api_keys]\nlifetime_sweep_interval_secs = 59\n",
            "[api_keys]\nlifetime_sweep_interval_secs = 86401\n",
            "[api_keys]\nleak_report_hmac_key = \"short\"\n",
            "[api_keys]\nleak_report_hmac_key = \"0123456789abcdef-x\"\nleak_report_hmac_key_file = \"/x\"\n",
            "[api_keys]\nno_such_key = 1\n",
            "[api_keys]\nleak_report_ecdsa_public_key = \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\"\n",
        ] {
            let f = file(body);
            assert!(
                Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn revocations_section_defaults_env_and_validation() {
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(c.revocations.heartbeat_interval_ms, 1_000);
        assert_eq!(c.revocations.poll_interval_ms, 5_000);
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_REVOCATIONS__HEARTBEAT_INTERVAL_MS", "250");
            let c = Config::load_from(
                None,
                &FlagOverrides::default(),
                Env::prefixed("PORTCULLIS_"),
            )
            .expect("load");
            assert_eq!(c.revocations.heartbeat_interval_ms, 250);
            Ok(())
        });
        for body in [
            "[revocations]\nheartbeat_interval_ms = 0\n",
            "[revocations]\npoll_interval_ms = 5\n",
            "[revocations]\nheartbeat = 1000\n",
        ] {
            let f = file(body);
            assert!(
                Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn trusted_proxies_come_from_file_or_env_and_bad_entries_name_the_key() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert!(c.http.trusted_proxies.is_empty());
        assert_eq!(c.http.forwarded_header, ForwardedHeader::XForwardedFor);

        let f = file(
            "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n\
             forwarded_header = \"forwarded\"\n",
        );
        let c =
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).expect("load");
        assert!(c.http.trusted_proxies.contains(ip("10.20.30.40")));
        assert!(c.http.trusted_proxies.contains(ip("192.0.2.7")));
        assert!(!c.http.trusted_proxies.contains(ip("192.0.2.8")));
        assert_eq!(c.http.forwarded_header, ForwardedHeader::Forwarded);
        let printed = c.to_redacted_toml();
        assert!(
            printed.contains("trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7/32\"]"),
            "{printed}"
        );

        for value in ["10.0.0.0/8, 192.0.2.7", "[\"10.0.0.0/8\", \"192.0.2.7\"]"] {
            figment::Jail::expect_with(|jail| {
                jail.set_env("PORTCULLIS_HTTP__TRUSTED_PROXIES", value);
                let c = Config::load_from(
                    None,
                    &FlagOverrides::default(),
                    Env::prefixed("PORTCULLIS_"),
                )
                .expect("load");
                assert!(c.http.trusted_proxies.contains(ip("10.1.1.1")), "{value}");
                assert!(c.http.trusted_proxies.contains(ip("192.0.2.7")), "{value}");
                Ok(())
            });
        }

        for (body, says) in [
            (
                "[http]\ntrusted_proxies = [\"10.1.2.3/8\"]\n",
                "did you mean 10.0.0.0/8",
            ),
            (
                "[http]\ntrusted_proxies = [\"0.0.0.0/0\"]\n",
                "every address",
            ),
            (
                "[http]\ntrusted_proxies = [\"proxy.internal\"]\n",
                "not an IP address",
            ),
            ("[http]\nforwarded_header = \"x-real-ip\"\n", "forwarded"),
        ] {
            let f = file(body);
            let e = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
                .expect_err(body)
                .to_string();
            assert!(e.contains(says), "{body}: {e}");
            assert!(names_file(&e, &f), "{body}: {e}");
        }
    }

    #[test]
    fn replaced_throttle_keys_are_refused_naming_their_replacement() {
        for (body, replacement) in [
            (
                "[oauth]\nmax_failures_per_client = 3\n",
                "oauth.max_failures_per_client_id_and_source",
            ),
            (
                "[oauth]\nmax_failures_per_ip = 30\n",
                "oauth.max_failures_per_source",
            ),
        ] {
            let f = file(body);
            let e = Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env())
                .expect_err(body)
                .to_string();
            assert!(e.contains("is no longer a setting"), "{e}");
            assert!(e.contains(replacement), "{e}");
            assert!(names_file(&e, &f), "{e}");
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("PORTCULLIS_OAUTH__MAX_FAILURES_PER_IP", "30");
            let e = Config::load_from(
                None,
                &FlagOverrides::default(),
                Env::prefixed("PORTCULLIS_"),
            )
            .expect_err("replaced env key")
            .to_string();
            assert!(e.contains("oauth.max_failures_per_ip"), "{e}");
            assert!(e.contains("environment"), "{e}");
            assert!(e.contains("oauth.max_failures_per_source"), "{e}");
            Ok(())
        });
        let f = file(
            "[oauth]\nmax_failures_per_source = 7\nmax_failures_per_client_id_and_source = 2\n",
        );
        let c =
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).expect("load");
        assert_eq!(
            (
                c.oauth.max_failures_per_source,
                c.oauth.max_failures_per_client_id_and_source
            ),
            (7, 2)
        );
        let c = Config::load_from(None, &FlagOverrides::default(), no_env()).expect("defaults");
        assert_eq!(
            (
                c.oauth.max_failures_per_source,
                c.oauth.max_failures_per_client_id_and_source,
                c.oauth.throttle_window_secs
            ),
            (50, 10, 60)
        );
    }

    #[test]
    fn an_ecdsa_scanner_key_is_read_from_pem() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        use base64::Engine;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        let der = pair.public_key().as_der().expect("der").as_ref().to_vec();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
            &b64[..40],
            &b64[40..]
        );
        let f = file(&format!(
            "[api_keys]\nleak_report_ecdsa_public_key = {pem:?}\n"
        ));
        let c =
            Config::load_from(Some(f.path()), &FlagOverrides::default(), no_env()).expect("load");
        assert_eq!(c.api_keys.leak_report_ecdsa_key().expect("ok"), Some(der));
    }
}
