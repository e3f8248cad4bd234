//! The verifier: configuration, the access-token rules, and the one entry point that turns a
//! request's credential into a [`Principal`] or a [`Denial`].
//!
//! Access-token rules, all on by default (DESIGN.md section 5, invariants 2 and 3): size limit;
//! strict base64url; no repeated JSON members; `alg` must be the algorithm pinned to the key the
//! token names, from the issuer's configured key source only; `none` and every symmetric
//! algorithm refused; unknown `crit` refused; `typ` must be `at+jwt`; `iss` exact; `aud` must
//! contain this resource; `exp` required and in the future; `nbf`/`iat` not in the future beyond
//! the leeway (at most 60 s); `sub`, `jti`, `client_id`, `iat` required (RFC 9068); the lifetime
//! `exp - iat` at most `max_token_lifetime` (so a stolen key cannot mint month-long tokens); the
//! tenant claim, when present, must be a valid tenant id; then revocation. A revoked signing key
//! is dropped from the key cache, and every cached verification of a token it signed with it,
//! the moment its revocation record arrives.
//!
//! The parsing and the claim rules are the access-token profile of `portcullis-jose`
//! (`profile::access_token`); this module looks up the issuer and its keys between its steps.
//!
//! Cheap checks run before the signature so garbage costs little. Nothing read from the token
//! is trusted for anything but choosing the issuer's key set until the signature has verified.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::confirmation::Possession;
use portcullis_core::credential::Environment;
use portcullis_core::revocation::TokenIdentity;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use portcullis_jose::profile::access_token;
use portcullis_jose::Alg;

use crate::api_key::{ApiKeyBackend, ApiKeyRequest, ApiKeys, HttpApiKeys};
use crate::denial::{Denial, Reason};
use crate::feed::{CacheDrop, RevocationSource, Revocations};
use crate::fetch::{Fetch, HttpFetch};
use crate::jwks::{JwksCache, JwksTiming, KeySource};
use crate::policy::{authorize, Policy};
use crate::principal::{CredentialKind, Principal};
use crate::token_cache::{CachedToken, TokenCache};
use crate::ConfigError;

/// Longest leeway a configuration may set (DESIGN.md invariant 2).
pub const MAX_LEEWAY: Duration = portcullis_core::time::MAX_LEEWAY;

/// The default longest access-token lifetime: the Portcullis server's default hard maximum.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// One trusted issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Compared exactly with the token's `iss`.
    pub issuer: String,
    pub keys: KeySource,
    /// Algorithms accepted from this issuer (default ES256, EdDSA, RS256).
    pub algorithms: Vec<Alg>,
}

impl IssuerConfig {
    pub fn new(issuer: impl Into<String>, keys: KeySource) -> Self {
        Self {
            issuer: issuer.into(),
            keys,
            algorithms: vec![Alg::ES256, Alg::EdDSA, Alg::RS256],
        }
    }

    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Alg>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }
}

/// Where API keys are checked.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// Portcullis's HTTP verification endpoint.
    Http {
        base_url: String,
        token: portcullis_core::secret::Secret<String>,
    },
    /// An in-process backend (e.g. the server's own store-backed verifier).
    Backend(Arc<dyn ApiKeyBackend>),
}

#[derive(Debug, Clone)]
pub struct ApiKeyConfig {
    pub source: ApiKeySource,
    /// This verifier's environment: keys of another environment are refused unseen.
    pub environment: String,
    /// How long a successful answer is reused (revocations cut it short through the feed).
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
}

impl ApiKeyConfig {
    pub fn new(source: ApiKeySource, environment: impl Into<String>) -> Self {
        Self {
            source,
            environment: environment.into(),
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub issuers: Vec<IssuerConfig>,
    /// This resource's audience identifier: tokens must name it in `aud`.
    pub audience: String,
    /// Clock skew tolerated for `exp`, `nbf`, `iat` (default 30 s, at most 60 s).
    pub leeway: Duration,
    /// Longest lifetime (`exp - iat`) an access token may claim (default: the server's hard
    /// maximum, [`DEFAULT_MAX_TOKEN_LIFETIME`]).
    pub max_token_lifetime: Duration,
    /// The claim carrying the tenant (Portcullis: `tenant`).
    pub tenant_claim: String,
    /// The claim carrying roles, an array of strings (RFC 9068 section 7.2.1.1: `roles`).
    pub roles_claim: String,
    pub max_token_bytes: usize,
    pub jwks: JwksTiming,
    /// Verified tokens remembered until `exp` (0 disables the cache).
    pub token_cache_capacity: usize,
    pub revocation: RevocationSource,
    pub api_keys: Option<ApiKeyConfig>,
    /// Allow plain HTTP to non-loopback key and API-key endpoints.
    pub insecure_allow_http: bool,
    /// The `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// DPoP proofs (RFC 9449) presented with `Authorization: DPoP` tokens.
    pub dpop: crate::dpop::DpopConfig,
}

impl VerifierConfig {
    pub fn new(
        issuer: IssuerConfig,
        audience: impl Into<String>,
        revocation: RevocationSource,
    ) -> Self {
        Self {
            issuers: vec![issuer],
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            tenant_claim: portcullis_core::oauth::TENANT_CLAIM.to_owned(),
            roles_claim: "roles".to_owned(),
            max_token_bytes: 8 * 1024,
            jwks: JwksTiming::default(),
            token_cache_capacity: 100_000,
            revocation,
            api_keys: None,
            insecure_allow_http: false,
            realm: "api".to_owned(),
            dpop: crate::dpop::DpopConfig::default(),
        }
    }
}

#[derive(Debug)]
struct Issuer {
    name: String,
    algorithms: Vec<Alg>,
    keys: JwksCache,
}

#[derive(Debug)]
struct Inner {
    issuers: HashMap<String, Issuer>,
    audience: String,
    leeway_s: i64,
    max_lifetime_s: i64,
    tenant_claim: String,
    roles_claim: String,
    max_token_bytes: usize,
    tokens: TokenCache,
    revocations: Arc<Revocations>,
    api_keys: Option<Arc<ApiKeys>>,
    clock: Arc<dyn Clock>,
    realm: String,
    dpop: crate::dpop::DpopState,
    /// The revocation feed follower, stopped when the last clone of the verifier goes (so a
    /// program that rebuilds its verifier, e.g. on config reload, does not leak connections).
    feed_task: Option<tokio::task::AbortHandle>,
}

impl Inner {
    /// Forgets what a revocation record made wrong.
    fn drop_cached(&self, drop: CacheDrop<'_>) {
        match drop {
            CacheDrop::ApiKey(id) => {
                if let Some(k) = &self.api_keys {
                    k.invalidate(id);
                }
            }
            CacheDrop::Tenant(tenant) => {
                if let Some(k) = &self.api_keys {
                    k.invalidate_tenant(tenant);
                }
            }
            CacheDrop::SigningKey(kid) => {
                for issuer in self.issuers.values() {
                    issuer.keys.forget(kid);
                }
                self.tokens.forget_kid(kid);
                tracing::warn!(
                    kid,
                    "signing key revoked: dropped from the key cache with every token it signed"
                );
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = &self.feed_task {
            t.abort();
        }
    }
}

/// The embeddable verifier. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(ms)
    }
}

/// The request facts a verification needs beyond the credential.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The tenant of the resource being reached, as the policy's binding found it.
    pub resource_tenant: Option<&'a TenantId>,
    pub client_ip: Option<IpAddr>,
}

/// A credential found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presented<'a> {
    /// `Authorization: Bearer <token>` (RFC 6750).
    AccessToken(&'a str),
    ApiKey(&'a str),
    /// `Authorization: DPoP <token>` with the request's `DPoP` proof, method and absolute URI
    /// (RFC 9449 section 7).
    DpopAccessToken {
        token: &'a str,
        proof: Option<&'a str>,
        method: &'a str,
        uri: &'a str,
    },
}

impl Verifier {
    /// Builds a verifier with the system clock and HTTP key fetching. Must run inside a tokio
    /// runtime when a revocation feed is configured (it starts the follower task).
    pub fn new(cfg: VerifierConfig) -> Result<Self, ConfigError> {
        let fetch = HttpFetch::new(Duration::from_secs(5), cfg.insecure_allow_http)
            .map_err(|e| ConfigError(e.to_string()))?;
        Self::with_parts(cfg, Arc::new(SystemClock), Arc::new(fetch))
    }

    /// Builds a verifier with an injected clock and key fetcher (tests, simulations).
    pub fn with_parts(
        cfg: VerifierConfig,
        clock: Arc<dyn Clock>,
        fetch: Arc<dyn Fetch>,
    ) -> Result<Self, ConfigError> {
        if cfg.leeway > MAX_LEEWAY {
            return Err(ConfigError(format!(
                "leeway {}s exceeds the maximum of {}s",
                cfg.leeway.as_secs(),
                MAX_LEEWAY.as_secs()
            )));
        }
        if cfg.max_token_lifetime.is_zero() {
            return Err(ConfigError(
                "max_token_lifetime must be at least one second".into(),
            ));
        }
        if cfg.issuers.is_empty() && cfg.api_keys.is_none() {
            return Err(ConfigError(
                "configure at least one issuer or an API key source".into(),
            ));
        }
        if cfg.audience.is_empty() {
            return Err(ConfigError("audience must not be empty".into()));
        }
        let mut issuers = HashMap::new();
        for i in cfg.issuers {
            if i.algorithms.is_empty() {
                return Err(ConfigError(format!(
                    "issuer {} allows no algorithm",
                    i.issuer
                )));
            }
            let keys = JwksCache::new(
                i.issuer.clone(),
                i.keys,
                i.algorithms.clone(),
                cfg.jwks,
                fetch.clone(),
            )?;
            let name = i.issuer.clone();
            if issuers
                .insert(
                    name.clone(),
                    Issuer {
                        name,
                        algorithms: i.algorithms,
                        keys,
                    },
                )
                .is_some()
            {
                return Err(ConfigError(format!("issuer {} configured twice", i.issuer)));
            }
        }
        let revocations = Arc::new(match &cfg.revocation {
            RevocationSource::Feed(f) => Revocations::new(
                clock.clone(),
                Some(f.staleness_bound),
                f.insecure_allow_stale,
            ),
            RevocationSource::Embedded { staleness_bound } => {
                Revocations::new(clock.clone(), Some(*staleness_bound), false)
            }
            RevocationSource::InsecureNone => {
                tracing::warn!("INSECURE: no revocation source; revoked credentials stay valid until they expire");
                Revocations::new(clock.clone(), None, false)
            }
        });
        let api_keys = match cfg.api_keys {
            None => None,
            Some(k) => {
                let environment = Environment::parse(&k.environment).map_err(|_| {
                    ConfigError("API key environment must be a lowercase slug".into())
                })?;
                let backend: Arc<dyn ApiKeyBackend> = match k.source {
                    ApiKeySource::Backend(b) => b,
                    ApiKeySource::Http { base_url, token } => Arc::new(HttpApiKeys::new(
                        &base_url,
                        token.into_inner(),
                        cfg.insecure_allow_http,
                    )?),
                };
                Some(Arc::new(ApiKeys::new(
                    backend,
                    environment,
                    k.cache_ttl,
                    k.cache_capacity,
                    clock.clone(),
                )))
            }
        };
        let feed_task = match cfg.revocation {
            RevocationSource::Feed(f) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(ConfigError(
                        "a revocation feed needs a tokio runtime".into(),
                    ));
                }
                Some(revocations.spawn_feed(f)?)
            }
            _ => None,
        };
        let inner = Arc::new(Inner {
            issuers,
            audience: cfg.audience,
            leeway_s: i64::try_from(cfg.leeway.as_secs()).unwrap_or(60),
            max_lifetime_s: i64::try_from(cfg.max_token_lifetime.as_secs()).unwrap_or(i64::MAX),
            tenant_claim: cfg.tenant_claim,
            roles_claim: cfg.roles_claim,
            max_token_bytes: cfg.max_token_bytes,
            tokens: TokenCache::new(cfg.token_cache_capacity),
            revocations,
            api_keys,
            clock,
            realm: cfg.realm,
            dpop: crate::dpop::DpopState::new(cfg.dpop),
            feed_task,
        });
        // Weak: the hook lives in `Revocations`, which `Inner` owns.
        let weak = Arc::downgrade(&inner);
        inner.revocations.on_drop(Box::new(move |drop| {
            if let Some(inner) = weak.upgrade() {
                inner.drop_cached(drop);
            }
        }));
        Ok(Self { inner })
    }

    /// The revocation state (for embedders that apply records themselves, and for metrics).
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.inner.revocations
    }

    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.inner.tokens.len()
    }

    /// Verifies a credential and applies `policy`: the whole decision for one request.
    pub async fn check(
        &self,
        presented: Presented<'_>,
        policy: &Policy,
        facts: RequestFacts<'_>,
    ) -> Result<Arc<Principal>, Denial> {
        self.check_with(presented, policy, facts, &Possession::BEARER)
            .await
    }

    /// [`Self::check`] for a request that proved it holds a key or certificate: a bound
    /// access token passes only when `possession` matches its `cnf` (API keys are never bound).
    pub async fn check_with(
        &self,
        presented: Presented<'_>,
        policy: &Policy,
        facts: RequestFacts<'_>,
        possession: &Possession<'_>,
    ) -> Result<Arc<Principal>, Denial> {
        let kind = match presented {
            Presented::AccessToken(_) | Presented::DpopAccessToken { .. } => {
                CredentialKind::AccessToken
            }
            Presented::ApiKey(_) => CredentialKind::ApiKey,
        };
        // Refuse a kind the route does not take before spending anything on it.
        if !policy.accepts(kind) {
            return Err(Reason::CredentialKindNotAccepted.into());
        }
        let audience = policy.audience.as_deref().unwrap_or(&self.inner.audience);
        let principal = match presented {
            Presented::AccessToken(t) => {
                self.verify_access_token_with(t, audience, possession)
                    .await?
            }
            Presented::DpopAccessToken {
                token,
                proof,
                method,
                uri,
            } => {
                // The proof's key and whatever certificate the connection carried, together:
                // a token bound to both needs both.
                let request = crate::dpop::DpopRequest { method, uri, proof };
                self.verify_dpop(token, &request, audience, possession.client_certificate)
                    .await?
            }
            Presented::ApiKey(k) => {
                let bound = (policy.tenant != crate::policy::TenantBinding::Unbound)
                    .then_some(facts.resource_tenant)
                    .flatten();
                let query = ApiKeyRequest {
                    tenant: bound,
                    client_ip: facts.client_ip,
                    audience,
                    environment: policy.api_key_environment.as_ref(),
                };
                self.api_key(k, &query).await?
            }
        };
        authorize(&principal, policy, facts.resource_tenant)?;
        Ok(principal)
    }

    /// Verifies an API key (format, environment, revocation, backend, cache) for the verifier's
    /// audience and environment.
    pub async fn verify_api_key(
        &self,
        key: &str,
        tenant: Option<&TenantId>,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Principal>, Denial> {
        let query = ApiKeyRequest {
            tenant,
            client_ip,
            audience: &self.inner.audience,
            environment: None,
        };
        self.api_key(key, &query).await
    }

    async fn api_key(&self, key: &str, q: &ApiKeyRequest<'_>) -> Result<Arc<Principal>, Denial> {
        let Some(keys) = &self.inner.api_keys else {
            return Err(Reason::CredentialKindNotAccepted.into());
        };
        self.inner.revocations.check_fresh()?;
        let revocations = &self.inner.revocations;
        Ok(keys
            .verify(key, q, |id| revocations.api_key_revoked(id))
            .await?)
    }

    /// Verifies an access token against every rule in the module docs, for the verifier's
    /// audience.
    pub async fn verify_access_token(&self, token: &str) -> Result<Arc<Principal>, Denial> {
        self.verify_access_token_for(token, &self.inner.audience)
            .await
    }

    /// Verifies a bearer access token that must name `audience` in `aud`. A token bound to a
    /// key (`cnf`) is refused here: it needs [`Self::verify_access_token_with`] and its proof.
    pub async fn verify_access_token_for(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<Arc<Principal>, Denial> {
        self.verify_access_token_with(token, audience, &Possession::BEARER)
            .await
    }

    /// Verifies an access token that must name `audience` in `aud`, presented with what the
    /// request proved it holds (a verified DPoP proof's key, the client certificate). The
    /// binding is checked on every request, cached token or not.
    pub async fn verify_access_token_with(
        &self,
        token: &str,
        audience: &str,
        possession: &Possession<'_>,
    ) -> Result<Arc<Principal>, Denial> {
        let principal = self.verify_unbound(token, audience).await?;
        if let Some(cnf) = &principal.confirmation {
            cnf.check(possession).map_err(Reason::from)?;
        }
        Ok(principal)
    }

    /// Verifies an access token presented as `Authorization: DPoP` (RFC 9449 section 7): the
    /// request's proof first (every rule of the JOSE profile with `ath` of this token and
    /// `htm`/`htu` of this request, then a nonce of this verifier when required, then its `jti`
    /// used once within the window), then the token with the proof's key as the possession,
    /// so a token bound to another key (or to a certificate the request lacks) is refused.
    pub async fn verify_dpop_access_token(
        &self,
        token: &str,
        request: &crate::dpop::DpopRequest<'_>,
        audience: &str,
    ) -> Result<Arc<Principal>, Denial> {
        self.verify_dpop(token, request, audience, None).await
    }

    /// The one DPoP path of [`Self::verify`] and [`Self::verify_dpop_access_token`]: the proof's
    /// rules, then the token with the proof's key (and the connection's certificate, if any) as
    /// the possession, and only then the proof's `jti` recorded. A proof for a token that is
    /// not valid here records nothing, so made-up tokens cannot fill the replay record and lock
    /// real clients out.
    async fn verify_dpop(
        &self,
        token: &str,
        request: &crate::dpop::DpopRequest<'_>,
        audience: &str,
        client_certificate: Option<&portcullis_core::confirmation::Thumbprint>,
    ) -> Result<Arc<Principal>, Denial> {
        let proof = self.check_dpop_proof(token, request)?;
        let possession = Possession {
            scheme: portcullis_core::confirmation::Scheme::Dpop,
            dpop_key: Some(&proof.jkt),
            client_certificate,
        };
        let principal = self
            .verify_access_token_with(token, audience, &possession)
            .await?;
        self.inner
            .dpop
            .record(proof.jkt.as_str(), &proof.jti, proof.until, proof.at)
            .map_err(|r| match r {
                crate::dpop::Replay::Seen => Reason::DpopReplayed,
                crate::dpop::Replay::Full => Reason::DpopReplayCacheFull,
            })?;
        Ok(principal)
    }

    /// The proof rules of [`Self::verify_dpop`] (every rule of the JOSE profile, then this
    /// verifier's nonce when required); the replay record is the caller's, after the token.
    fn check_dpop_proof(
        &self,
        token: &str,
        request: &crate::dpop::DpopRequest<'_>,
    ) -> Result<CheckedProof, Reason> {
        use portcullis_jose::profile::dpop_proof::{self, ProofError, Rules};
        let state = &self.inner.dpop;
        let proof = request.proof.ok_or(Reason::DpopProofMissing)?;
        let now = self.inner.clock.now();
        let rules = Rules {
            method: request.method,
            uri: request.uri,
            allowed: &state.config.algorithms,
            max_age: state.config.max_age,
            leeway: state.config.leeway,
            access_token: Some(token),
            require_nonce: state.config.require_nonce,
        };
        let checked =
            dpop_proof::verify_cached(proof, &rules, now, &state.keys).map_err(|e| match e {
                ProofError::NonceMissing => Reason::DpopNonce,
                other => Reason::DpopProof(other),
            })?;
        if state.config.require_nonce
            && !checked
                .nonce
                .as_deref()
                .is_some_and(|n| state.nonce_ok(n, now))
        {
            return Err(Reason::DpopNonce);
        }
        Ok(CheckedProof {
            until: checked.replay_until(&rules),
            at: now,
            jti: checked.jti,
            jkt: checked.jkt,
        })
    }

    /// A nonce for `DPoP-Nonce` (RFC 9449 section 9): what a proof must carry when this
    /// verifier requires nonces. Accepted by this verifier for two to four minutes.
    pub fn dpop_nonce(&self) -> String {
        self.inner.dpop.nonce(self.inner.clock.now())
    }

    /// The public origin DPoP proofs must name ([`crate::DpopConfig::base_url`]).
    pub fn dpop_base_url(&self) -> Option<&str> {
        self.inner.dpop.config.base_url.as_deref()
    }

    /// The algorithms DPoP proofs may use, space-separated (the challenge's `algs`).
    pub fn dpop_algs(&self) -> &str {
        &self.inner.dpop.algs
    }

    /// Every rule but the binding: format, signature, claims, cache, revocation.
    async fn verify_unbound(&self, token: &str, audience: &str) -> Result<Arc<Principal>, Denial> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(Reason::TooLarge.into());
        }
        let now = inner.clock.now();
        let key = inner.tokens.key_of(token);
        if let Some(hit) = key.and_then(|d| inner.tokens.get(&d, now)) {
            // The cache holds tokens verified for any route's audience: check this one's.
            if !hit.audiences.iter().any(|a| a == audience) {
                return Err(Reason::AudienceMismatch.into());
            }
            self.check_revocation(&hit)?;
            return Ok(hit.principal.clone());
        }
        let cached = self.verify_uncached(token, now, audience).await?;
        self.check_revocation(&cached)?;
        let principal = cached.principal.clone();
        if let Some(d) = key {
            inner.tokens.insert(d, cached, now);
        }
        Ok(principal)
    }

    fn check_revocation(&self, t: &CachedToken) -> Result<(), Reason> {
        let r = &self.inner.revocations;
        r.check_fresh()?;
        let p = &t.principal;
        let id = TokenIdentity {
            tenant: &t.tenant,
            jti: &p.credential_id,
            client_id: p.client_id.as_deref(),
            subject: &p.subject,
            kid: &t.kid,
            family: t.family.as_deref(),
            sid: t.sid.as_deref(),
            exchanged_from: &t.exchanged_from,
            issued_at: t.issued_at,
        };
        match r.token_revoked(&id) {
            Some(by) => Err(Reason::Revoked(by)),
            None => Ok(()),
        }
    }

    async fn verify_uncached(
        &self,
        token: &str,
        now: Timestamp,
        audience: &str,
    ) -> Result<CachedToken, Reason> {
        let inner = &*self.inner;
        // The rules themselves live in the access-token profile of portcullis-jose; the
        // issuer lookup and the (possibly fetching) key lookup happen here, between its steps.
        let u = access_token::parse(token, inner.max_token_bytes)?;
        let c = u.claims()?;
        let iss = access_token::issuer(&c)?;
        let issuer = inner
            .issuers
            .get(iss.as_ref())
            .ok_or(Reason::UnknownIssuer)?;
        if !issuer.algorithms.contains(&u.header.alg) {
            return Err(Reason::AlgNotAllowed);
        }
        let rules = access_token::Rules {
            audience: Some(audience),
            leeway_s: inner.leeway_s,
            max_lifetime_s: inner.max_lifetime_s,
            tenant_claim: &inner.tenant_claim,
            roles_claim: &inner.roles_claim,
        };
        let t = rules.check(&c, now)?;

        let key = match issuer.keys.key(u.header.kid.as_deref()).await {
            Err(Reason::UnknownKid) if u.header.kid.is_none() => return Err(Reason::MissingKid),
            other => other?,
        };
        u.verify_with(&key)?;
        let tenant = t.tenant;
        let (exp, iat) = (t.exp, t.iat);
        let principal = Principal {
            subject: t.sub.into_owned(),
            client_id: Some(t.client_id.into_owned()),
            tenant: tenant.clone(),
            scopes: t.scopes,
            roles: t.roles,
            kind: CredentialKind::AccessToken,
            credential_id: t.jti.into_owned(),
            issuer: Some(issuer.name.clone()),
            environment: None,
            expires_at: Some(Timestamp::from_secs(exp)),
            confirmation: (!t.cnf.is_unbound()).then_some(t.cnf),
        };
        Ok(CachedToken {
            principal: Arc::new(principal),
            // Revocation marks are per tenant; a token without one can only match global marks.
            tenant: tenant.unwrap_or_else(TenantId::system),
            kid: key.kid.clone().unwrap_or_default(),
            sid: t.sid.map(Into::into),
            family: t.family.map(Into::into),
            exchanged_from: t.exchanged_from.into(),
            issued_at: Timestamp::from_secs(iat),
            expires_at: Timestamp::from_secs(exp),
            audiences: t.aud.into_iter().map(|a| a.into_owned()).collect(),
        })
    }
}
/// A proof that passed every rule but the replay record: what [`Verifier::verify_dpop`]
/// records once the token is good.
struct CheckedProof {
    jkt: portcullis_core::confirmation::Thumbprint,
    jti: String,
    until: Timestamp,
    at: Timestamp,
}
