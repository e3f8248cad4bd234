//! API keys as the core sees them: validated attributes, the expiry policy, and the one
//! verification decision.
//!
//! [`decide`] takes a parsed [`Credential`], what storage holds about its id (if anything), and
//! the verifier's context (time, client IP, environment, tenant, scopes) and answers with an
//! [`ApiKeyPrincipal`] or the precise [`Rejection`]. It does no I/O: the caller did the lookup.
//! The rejection reason is internal (audit log, tracing); every one of them is answered to the
//! client with the same `invalid_token`, except [`Rejection::InsufficientScope`] which is a 403
//! `insufficient_scope`.
//!
//! This module never sees a key's plaintext other than through [`Credential`], and never puts it
//! in an error or a principal.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::credential::{Credential, CredentialFormatError, CredentialKind, Environment};
use crate::secret::constant_time_eq;
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// The request header an API key may be sent in (besides `Authorization: Bearer`), spelled as
/// the docs and the `ApiKey` challenge name it. Header names are case-insensitive: look it up
/// with this (`http::HeaderMap` folds case), or compare with `eq_ignore_ascii_case`.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// The `WWW-Authenticate` challenge a route that takes API keys sends after its `Bearer` one,
/// from that challenge's parameters (`realm="api"`, with `error="..."` when a credential was
/// refused): `ApiKey realm="api", header="X-API-Key"` (RFC 9110 section 11.6.1 allows several
/// challenges). The token service and the gateway answer with this one text.
pub fn api_key_challenge(bearer_params: &str) -> String {
    format!("ApiKey {bearer_params}, header=\"{API_KEY_HEADER}\"")
}

/// Actions that detectors must raise an alert for as soon as they are recorded.
pub const ALERT_ACTIONS: &[&str] = &["api_key.leak_revoked"];

/// Longest scope, audience, owner or name accepted.
const MAX_TOKEN_LEN: usize = 128;
/// Most scopes, audiences or CIDRs on one key.
const MAX_ITEMS: usize = 64;

/// Why a presented API key was refused. Internal: never sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("credential_too_long")]
    TooLong,
    #[error("credential_malformed")]
    Malformed,
    #[error("credential_checksum_mismatch")]
    ChecksumMismatch,
    #[error("credential_wrong_kind")]
    WrongKind,
    #[error("api_key_unknown")]
    Unknown,
    #[error("api_key_digest_mismatch")]
    DigestMismatch,
    #[error("api_key_revoked")]
    Revoked,
    #[error("api_key_rotated")]
    RotatedPastWindow,
    #[error("api_key_disabled")]
    Disabled,
    #[error("api_key_expired")]
    Expired,
    #[error("api_key_wrong_environment")]
    WrongEnvironment,
    #[error("api_key_tenant_mismatch")]
    TenantMismatch,
    #[error("api_key_tenant_disabled")]
    TenantDisabled,
    #[error("api_key_ip_not_allowed")]
    IpNotAllowed,
    #[error("api_key_audience_not_allowed")]
    AudienceNotAllowed,
    #[error("api_key_insufficient_scope")]
    InsufficientScope,
    /// The key was sent in the URL query string, where proxies and logs keep it.
    #[error("api_key_in_query_string")]
    InQueryString,
}

impl Rejection {
    /// The internal reason code recorded in the audit log.
    pub fn reason(self) -> String {
        self.to_string()
    }

    /// True for the one rejection answered with 403 `insufficient_scope` instead of 401.
    pub fn is_insufficient_scope(self) -> bool {
        self == Self::InsufficientScope
    }
}

impl From<CredentialFormatError> for Rejection {
    fn from(e: CredentialFormatError) -> Self {
        match e {
            CredentialFormatError::TooLong => Self::TooLong,
            CredentialFormatError::ChecksumMismatch => Self::ChecksumMismatch,
            CredentialFormatError::BadPrefix
            | CredentialFormatError::UnknownKind
            | CredentialFormatError::BadEnvironment
            | CredentialFormatError::BadBody => Self::Malformed,
        }
    }
}

/// Parses a presented string as an API key: format, checksum and kind, with no lookup.
pub fn parse_presented(s: &str) -> Result<Credential, Rejection> {
    let credential = Credential::parse(s)?;
    if credential.kind() != CredentialKind::ApiKey {
        return Err(Rejection::WrongKind);
    }
    Ok(credential)
}

/// A scope or audience: 1 to 128 visible ASCII characters, no space, quote or backslash
/// (RFC 6749 `scope-token`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeToken(String);

impl ScopeToken {
    pub fn parse(s: &str) -> Result<Self, AttributeError> {
        let ok = (1..=MAX_TOKEN_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(AttributeError::BadScope(truncate(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ScopeToken {
    type Error = AttributeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ScopeToken> for String {
    fn from(s: ScopeToken) -> Self {
        s.0
    }
}

/// A set of scope tokens, at most [`MAX_ITEMS`]. Stored space-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ScopeSet(BTreeSet<ScopeToken>);

impl ScopeSet {
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, AttributeError> {
        if items.len() > MAX_ITEMS {
            return Err(AttributeError::TooMany);
        }
        items
            .iter()
            .map(|s| ScopeToken::parse(s.as_ref()))
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// Parses the space-separated storage form.
    pub fn parse_spaced(s: &str) -> Result<Self, AttributeError> {
        let items: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
        Self::parse_list(&items)
    }

    pub fn to_spaced(&self) -> String {
        self.iter().collect::<Vec<_>>().join(" ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(ScopeToken::as_str)
    }

    pub fn contains(&self, scope: &ScopeToken) -> bool {
        self.0.contains(scope)
    }

    pub fn is_superset_of(&self, other: &ScopeSet) -> bool {
        self.0.is_superset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<String>> for ScopeSet {
    type Error = AttributeError;
    fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse_list(&v)
    }
}

impl From<ScopeSet> for Vec<String> {
    fn from(s: ScopeSet) -> Self {
        s.0.into_iter().map(String::from).collect()
    }
}

/// CIDRs a key may be used from. Empty is not allowed: "no allowlist" is `None` on the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAllowlist(Vec<IpNet>);

impl IpAllowlist {
    /// Accepts CIDRs (`10.0.0.0/8`, `2001:db8::/32`) and bare addresses (one host).
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, AttributeError> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            return Err(AttributeError::TooMany);
        }
        items
            .iter()
            .map(|s| {
                let s = s.as_ref();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| AttributeError::BadCidr(truncate(s)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn parse_spaced(s: &str) -> Result<Self, AttributeError> {
        let items: Vec<&str> = s.split(' ').filter(|x| !x.is_empty()).collect();
        Self::parse_list(&items)
    }

    pub fn to_spaced(&self) -> String {
        self.to_strings().join(" ")
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are checked as the IPv4 address they are.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// An optional per-key rate limit: at most `requests` per `window_secs`, as a token bucket of
/// `requests` tokens refilled evenly over the window (so a full burst, then a steady pace).
/// Every verifier enforces it for the requests it admits ([`RateLimit::rate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub window_secs: u32,
}

impl RateLimit {
    pub fn validate(self) -> Result<Self, AttributeError> {
        if self.requests == 0 || self.window_secs == 0 || self.window_secs > 86_400 {
            return Err(AttributeError::BadRateLimit);
        }
        Ok(self)
    }

    /// The token bucket that enforces this limit.
    pub fn rate(self) -> Option<crate::rate_limit::Rate> {
        let requests = f64::from(self.requests);
        crate::rate_limit::Rate::new(requests / f64::from(self.window_secs), requests)
    }
}

/// A free-form label (name, owner): 1 to 128 characters, no control characters.
pub fn parse_label(field: &'static str, s: &str) -> Result<String, AttributeError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > MAX_TOKEN_LEN || t.chars().any(char::is_control) {
        return Err(AttributeError::BadLabel(field));
    }
    Ok(t.to_owned())
}

/// A description: up to 1,000 characters; newlines and tabs allowed, other controls not.
pub fn parse_description(s: &str) -> Result<String, AttributeError> {
    let ok =
        s.chars().count() <= 1_000 && s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t');
    if ok {
        Ok(s.trim().to_owned())
    } else {
        Err(AttributeError::BadLabel("description"))
    }
}

/// Metadata: a JSON object of at most 4 KiB serialised.
pub fn parse_metadata(v: &serde_json::Value) -> Result<String, AttributeError> {
    if !v.is_object() {
        return Err(AttributeError::BadMetadata);
    }
    let s = v.to_string();
    if s.len() > 4_096 {
        return Err(AttributeError::BadMetadata);
    }
    Ok(s)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("scope or audience {0:?} is not 1 to 128 visible ASCII characters without spaces, quotes or backslashes")]
    BadScope(String),
    #[error("{0:?} is not a CIDR (10.0.0.0/8) or an IP address")]
    BadCidr(String),
    #[error("between 1 and 64 entries are allowed")]
    TooMany,
    #[error("rate_limit needs requests >= 1 and window_secs between 1 and 86400")]
    BadRateLimit,
    #[error("{0} must be 1 to 128 characters without control characters")]
    BadLabel(&'static str),
    #[error("metadata must be a JSON object of at most 4096 bytes")]
    BadMetadata,
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A tenant's rules for key lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryPolicy {
    /// Lifetime of a key created without an explicit expiry; `None` means "never expires" and
    /// requires `allow_never`.
    pub default_ttl_secs: Option<u64>,
    /// Longest lifetime a key may be given; `None` = no maximum.
    pub max_ttl_secs: Option<u64>,
    /// Whether keys that never expire may be created at all.
    pub allow_never: bool,
}

impl Default for ExpiryPolicy {
    /// 90 days, no keys that never expire, at most 1 year.
    fn default() -> Self {
        Self {
            default_ttl_secs: Some(90 * 86_400),
            max_ttl_secs: Some(365 * 86_400),
            allow_never: false,
        }
    }
}

/// What the creator of a key asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedExpiry {
    PolicyDefault,
    Never,
    After(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("this tenant's policy does not allow keys that never expire")]
    NeverNotAllowed,
    #[error("the requested lifetime exceeds this tenant's maximum of {0} seconds")]
    TooLong(u64),
    #[error("a key lifetime must be at least one second")]
    TooShort,
    #[error("the policy is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl ExpiryPolicy {
    pub fn validate(self) -> Result<Self, PolicyError> {
        match (self.default_ttl_secs, self.max_ttl_secs) {
            (None, _) if !self.allow_never => Err(PolicyError::Inconsistent(
                "a default of never requires allow_never",
            )),
            (Some(0), _) | (_, Some(0)) => Err(PolicyError::TooShort),
            (Some(d), Some(m)) if d > m => Err(PolicyError::Inconsistent(
                "the default lifetime exceeds the maximum",
            )),
            (None, Some(_)) => Err(PolicyError::Inconsistent(
                "a default of never contradicts a maximum lifetime",
            )),
            _ => Ok(self),
        }
    }

    /// The expiry time of a key created at `now`; `None` = never.
    pub fn resolve(
        &self,
        requested: RequestedExpiry,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, PolicyError> {
        let ttl = match requested {
            RequestedExpiry::PolicyDefault => self.default_ttl_secs.map(Duration::from_secs),
            RequestedExpiry::Never => None,
            RequestedExpiry::After(d) => Some(d),
        };
        match ttl {
            None if !self.allow_never || self.max_ttl_secs.is_some() => {
                Err(PolicyError::NeverNotAllowed)
            }
            None => Ok(None),
            Some(d) if d < Duration::from_secs(1) => Err(PolicyError::TooShort),
            Some(d) => match self.max_ttl_secs {
                Some(max) if d > Duration::from_secs(max) => Err(PolicyError::TooLong(max)),
                _ => Ok(Some(now.saturating_add(d))),
            },
        }
    }
}

/// What storage holds about one key, as far as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyFacts {
    pub id: String,
    pub tenant: TenantId,
    pub tenant_active: bool,
    pub environment: Environment,
    pub digest: Vec<u8>,
    pub name: String,
    pub owner: String,
    pub scopes: ScopeSet,
    pub audiences: Option<ScopeSet>,
    pub ip_allowlist: Option<IpAllowlist>,
    pub rate_limit: Option<RateLimit>,
    pub expires_at: Option<Timestamp>,
    pub disabled: bool,
    pub revoked: bool,
    /// Set when the key was rotated: it keeps working until this time.
    pub rotation_overlap_ends_at: Option<Timestamp>,
}

/// Who the verifier is and what the request needs.
#[derive(Debug, Clone)]
pub struct VerifyContext<'a> {
    pub now: Timestamp,
    /// The environment this verifier serves (`live` refuses `test` keys and the reverse).
    pub environment: &'a Environment,
    /// The tenant whose resource is being reached; `None` accepts any tenant.
    pub tenant: Option<&'a TenantId>,
    /// The end client's address; `None` when unknown (refused by keys with an allowlist).
    pub client_ip: Option<IpAddr>,
    /// The resource being reached; checked when the key is restricted to audiences (a
    /// restricted key with no audience given is refused).
    pub audience: Option<&'a ScopeToken>,
    pub required_scopes: &'a ScopeSet,
}

/// A verified API key: who it was issued to and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyPrincipal {
    pub key_id: String,
    pub tenant: TenantId,
    pub environment: String,
    pub name: String,
    pub owner: String,
    pub scopes: ScopeSet,
    pub audiences: Option<ScopeSet>,
    pub rate_limit: Option<RateLimit>,
    pub expires_at: Option<Timestamp>,
}

/// Checks that need no storage: the verifier's environment. Run before the lookup so a key from
/// the other environment never costs a database query.
pub fn precheck(credential: &Credential, ctx: &VerifyContext<'_>) -> Result<(), Rejection> {
    if credential.environment() != ctx.environment {
        return Err(Rejection::WrongEnvironment);
    }
    Ok(())
}

/// The verification decision. `stored` is what storage returned for `credential.id()`.
///
/// Order: digest (constant time) first, so nothing about a key's state is revealed, even in the
/// audit log, to someone who only knows its id; then revocation, rotation, disabling, expiry,
/// environment, tenant, IP, audience and scope.
pub fn decide(
    credential: &Credential,
    stored: Option<&ApiKeyFacts>,
    ctx: &VerifyContext<'_>,
) -> Result<ApiKeyPrincipal, Rejection> {
    if credential.kind() != CredentialKind::ApiKey {
        return Err(Rejection::WrongKind);
    }
    let presented = credential.digest();
    let Some(key) = stored else {
        // Same comparison work as for a known id.
        let _ = constant_time_eq(&presented, &[0u8; 32]);
        return Err(Rejection::Unknown);
    };
    if !constant_time_eq(&key.digest, &presented) || key.id != credential.id() {
        return Err(Rejection::DigestMismatch);
    }
    if key.revoked {
        return Err(Rejection::Revoked);
    }
    if key
        .rotation_overlap_ends_at
        .is_some_and(|end| ctx.now >= end)
    {
        return Err(Rejection::RotatedPastWindow);
    }
    if key.disabled {
        return Err(Rejection::Disabled);
    }
    if key.expires_at.is_some_and(|exp| ctx.now >= exp) {
        return Err(Rejection::Expired);
    }
    if &key.environment != ctx.environment || credential.environment() != ctx.environment {
        return Err(Rejection::WrongEnvironment);
    }
    if ctx.tenant.is_some_and(|t| *t != key.tenant) {
        return Err(Rejection::TenantMismatch);
    }
    if !key.tenant_active {
        return Err(Rejection::TenantDisabled);
    }
    if let Some(allow) = &key.ip_allowlist {
        if !ctx.client_ip.is_some_and(|ip| allow.allows(ip)) {
            return Err(Rejection::IpNotAllowed);
        }
    }
    if let Some(allowed) = &key.audiences {
        if !ctx.audience.is_some_and(|a| allowed.contains(a)) {
            return Err(Rejection::AudienceNotAllowed);
        }
    }
    if !key.scopes.is_superset_of(ctx.required_scopes) {
        return Err(Rejection::InsufficientScope);
    }
    Ok(ApiKeyPrincipal {
        key_id: key.id.clone(),
        tenant: key.tenant.clone(),
        environment: key.environment.to_string(),
        name: key.name.clone(),
        owner: key.owner.clone(),
        scopes: key.scopes.clone(),
        audiences: key.audiences.clone(),
        rate_limit: key.rate_limit,
        // When this key stops working: its expiry, or the end of its rotation window if that
        // comes first. Verifiers that cache the answer must not outlive either.
        expires_at: match (key.expires_at, key.rotation_overlap_ends_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_key_challenge_names_the_header_after_the_bearer_parameters() {
        assert_eq!(
            super::api_key_challenge("realm=\"api\", error=\"invalid_token\""),
            "ApiKey realm=\"api\", error=\"invalid_token\", header=\"X-API-Key\""
        );
    }

    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).expect("tenant")
    }

    fn env(s: &str) -> Environment {
        Environment::parse(s).expect("env")
    }

    fn key(env_name: &str) -> (Credential, ApiKeyFacts) {
        let c = Credential::generate(
            CredentialKind::ApiKey,
            env(env_name),
            &mut SmallRng::seed_from_u64(7),
        );
        let facts = ApiKeyFacts {
            id: c.id().to_owned(),
            tenant: t("acme"),
            tenant_active: true,
            environment: env(env_name),
            digest: c.digest().to_vec(),
            name: "n".into(),
            owner: "partner".into(),
            scopes: ScopeSet::parse_list(&["orders:read", "orders:write"]).expect("scopes"),
            audiences: None,
            ip_allowlist: None,
            rate_limit: None,
            expires_at: Some(Timestamp::from_secs(1_000)),
            disabled: false,
            revoked: false,
            rotation_overlap_ends_at: None,
        };
        (c, facts)
    }

    type Mutation = dyn Fn(&mut ApiKeyFacts, &mut Ctx);

    struct Ctx {
        env: Environment,
        tenant: Option<TenantId>,
        ip: Option<IpAddr>,
        scopes: ScopeSet,
        audience: Option<ScopeToken>,
        now: Timestamp,
    }

    impl Ctx {
        fn new() -> Self {
            Self {
                env: env("live"),
                tenant: Some(t("acme")),
                ip: Some("192.0.2.10".parse().expect("ip")),
                scopes: ScopeSet::parse_list(&["orders:read"]).expect("scopes"),
                audience: None,
                now: Timestamp::from_secs(500),
            }
        }

        fn run(
            &self,
            c: &Credential,
            f: Option<&ApiKeyFacts>,
        ) -> Result<ApiKeyPrincipal, Rejection> {
            let ctx = VerifyContext {
                now: self.now,
                environment: &self.env,
                tenant: self.tenant.as_ref(),
                client_ip: self.ip,
                audience: self.audience.as_ref(),
                required_scopes: &self.scopes,
            };
            precheck(c, &ctx)?;
            decide(c, f, &ctx)
        }
    }

    #[test]
    fn a_good_key_yields_its_principal() {
        let (c, f) = key("live");
        let p = Ctx::new().run(&c, Some(&f)).expect("accepted");
        assert_eq!(p.key_id, c.id());
        assert_eq!(p.tenant, t("acme"));
        assert_eq!(p.owner, "partner");
    }

    #[test]
    fn each_failed_check_has_its_own_reason() {
        let (c, good) = key("live");
        let ctx = Ctx::new();
        let cases: Vec<(Box<Mutation>, Rejection)> = vec![
            (
                Box::new(|f, _| f.digest = vec![0; 32]),
                Rejection::DigestMismatch,
            ),
            (Box::new(|f, _| f.revoked = true), Rejection::Revoked),
            (Box::new(|f, _| f.disabled = true), Rejection::Disabled),
            (
                Box::new(|_, c| c.now = Timestamp::from_secs(1_000)),
                Rejection::Expired,
            ),
            (
                Box::new(|f, _| f.rotation_overlap_ends_at = Some(Timestamp::from_secs(500))),
                Rejection::RotatedPastWindow,
            ),
            (
                Box::new(|_, c| c.env = env("test")),
                Rejection::WrongEnvironment,
            ),
            (
                Box::new(|f, _| f.environment = env("test")),
                Rejection::WrongEnvironment,
            ),
            (
                Box::new(|_, c| c.tenant = Some(t("globex"))),
                Rejection::TenantMismatch,
            ),
            (
                Box::new(|f, _| f.tenant_active = false),
                Rejection::TenantDisabled,
            ),
            (
                Box::new(|f, _| {
                    f.ip_allowlist = Some(IpAllowlist::parse_list(&["10.0.0.0/8"]).expect("cidr"))
                }),
                Rejection::IpNotAllowed,
            ),
            (
                Box::new(|f, c| {
                    f.ip_allowlist = Some(IpAllowlist::parse_list(&["10.0.0.0/8"]).expect("cidr"));
                    c.ip = None;
                }),
                Rejection::IpNotAllowed,
            ),
            (
                Box::new(|f, _| {
                    f.audiences = Some(ScopeSet::parse_list(&["https://a"]).expect("aud"))
                }),
                Rejection::AudienceNotAllowed,
            ),
            (
                Box::new(|f, c| {
                    f.audiences = Some(ScopeSet::parse_list(&["https://a"]).expect("aud"));
                    c.audience = Some(ScopeToken::parse("https://b").expect("aud"));
                }),
                Rejection::AudienceNotAllowed,
            ),
            (
                Box::new(|_, c| c.scopes = ScopeSet::parse_list(&["admin"]).expect("scope")),
                Rejection::InsufficientScope,
            ),
        ];
        for (i, (mutate, want)) in cases.into_iter().enumerate() {
            let mut f = good.clone();
            let mut ctx = Ctx::new();
            mutate(&mut f, &mut ctx);
            assert_eq!(ctx.run(&c, Some(&f)), Err(want), "case {i}");
        }
        assert!(ctx.run(&c, Some(&good)).is_ok());
        assert_eq!(ctx.run(&c, None), Err(Rejection::Unknown));
    }

    #[test]
    fn rotation_overlap_keeps_the_old_key_working_until_the_window_ends() {
        let (c, mut f) = key("live");
        f.rotation_overlap_ends_at = Some(Timestamp::from_secs(600));
        let mut ctx = Ctx::new();
        let p = ctx.run(&c, Some(&f)).expect("within the window");
        // The answer says when the key stops working, so a cache of it cannot outlive the
        // window (the key's own expiry is later here).
        assert_eq!(p.expires_at, Some(Timestamp::from_secs(600)));
        ctx.now = Timestamp::from_millis(599_999);
        assert!(ctx.run(&c, Some(&f)).is_ok());
        ctx.now = Timestamp::from_secs(600);
        assert_eq!(ctx.run(&c, Some(&f)), Err(Rejection::RotatedPastWindow));
    }

    #[test]
    fn a_test_key_is_refused_by_a_live_verifier_before_any_lookup() {
        let (c, f) = key("test");
        let ctx = Ctx::new();
        let vc = VerifyContext {
            now: ctx.now,
            environment: &ctx.env,
            tenant: None,
            client_ip: None,
            audience: None,
            required_scopes: &ctx.scopes,
        };
        assert_eq!(precheck(&c, &vc), Err(Rejection::WrongEnvironment));
        assert_eq!(decide(&c, Some(&f), &vc), Err(Rejection::WrongEnvironment));
        let test_env = env("test");
        let vc = VerifyContext {
            environment: &test_env,
            ..vc
        };
        assert!(decide(&c, Some(&f), &vc).is_ok());
        let (live, live_facts) = key("live");
        assert_eq!(precheck(&live, &vc), Err(Rejection::WrongEnvironment));
        assert_eq!(
            decide(&live, Some(&live_facts), &vc),
            Err(Rejection::WrongEnvironment)
        );
    }

    #[test]
    fn presented_strings_are_parsed_with_precise_reasons() {
        let (c, _) = key("live");
        assert!(parse_presented(c.expose()).is_ok());
        let mut typo = c.expose().to_owned();
        let last = typo.pop().expect("nonempty");
        typo.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(
            parse_presented(&typo).err(),
            Some(Rejection::ChecksumMismatch)
        );
        assert_eq!(
            parse_presented(&"x".repeat(10_000)).err(),
            Some(Rejection::TooLong)
        );
        assert_eq!(parse_presented("hello").err(), Some(Rejection::Malformed));
        let admin = Credential::generate(
            CredentialKind::AdminToken,
            env("live"),
            &mut SmallRng::seed_from_u64(1),
        );
        assert_eq!(
            parse_presented(admin.expose()).err(),
            Some(Rejection::WrongKind)
        );
    }

    #[test]
    fn ip_allowlist_matches_cidrs_hosts_and_mapped_addresses() {
        let a =
            IpAllowlist::parse_list(&["10.1.0.0/16", "2001:db8::/32", "192.0.2.7"]).expect("parse");
        for ok in ["10.1.200.3", "2001:db8::1", "192.0.2.7", "::ffff:10.1.0.9"] {
            assert!(a.allows(ok.parse().expect("ip")), "{ok}");
        }
        for no in ["10.2.0.1", "2001:db9::1", "192.0.2.8", "::ffff:10.2.0.9"] {
            assert!(!a.allows(no.parse().expect("ip")), "{no}");
        }
        assert!(IpAllowlist::parse_list(&["10.0.0.0/33"]).is_err());
        assert!(IpAllowlist::parse_list(&["nonsense"]).is_err());
        assert!(IpAllowlist::parse_list::<&str>(&[]).is_err());
        let round = IpAllowlist::parse_spaced(&a.to_spaced()).expect("round trip");
        assert_eq!(round, a);
    }

    #[test]
    fn scopes_are_validated_and_round_trip() {
        let s = ScopeSet::parse_list(&["b", "a", "a"]).expect("scopes");
        assert_eq!(s.to_spaced(), "a b");
        assert_eq!(ScopeSet::parse_spaced("a b").expect("parse"), s);
        for bad in ["", "has space", "quo\"te", "back\\slash", "é"] {
            assert!(ScopeToken::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ScopeSet::parse_list(&vec!["a"; 65]).is_err());
    }

    #[test]
    fn expiry_policy_applies_defaults_maximums_and_never() {
        let now = Timestamp::from_secs(1_000);
        let p = ExpiryPolicy::default();
        assert_eq!(
            p.resolve(RequestedExpiry::PolicyDefault, now),
            Ok(Some(Timestamp::from_secs(1_000 + 90 * 86_400)))
        );
        assert_eq!(
            p.resolve(RequestedExpiry::Never, now),
            Err(PolicyError::NeverNotAllowed)
        );
        assert_eq!(
            p.resolve(
                RequestedExpiry::After(Duration::from_secs(400 * 86_400)),
                now
            ),
            Err(PolicyError::TooLong(365 * 86_400))
        );
        assert_eq!(
            p.resolve(RequestedExpiry::After(Duration::from_millis(10)), now),
            Err(PolicyError::TooShort)
        );
        let open = ExpiryPolicy {
            default_ttl_secs: None,
            max_ttl_secs: None,
            allow_never: true,
        }
        .validate()
        .expect("valid");
        assert_eq!(open.resolve(RequestedExpiry::PolicyDefault, now), Ok(None));
        assert_eq!(open.resolve(RequestedExpiry::Never, now), Ok(None));
        assert!(ExpiryPolicy {
            default_ttl_secs: None,
            max_ttl_secs: None,
            allow_never: false
        }
        .validate()
        .is_err());
        assert!(ExpiryPolicy {
            default_ttl_secs: Some(100),
            max_ttl_secs: Some(10),
            allow_never: false
        }
        .validate()
        .is_err());
    }

    #[test]
    fn labels_descriptions_and_metadata_are_bounded() {
        assert_eq!(parse_label("name", "  ci  ").expect("ok"), "ci");
        assert!(parse_label("name", "").is_err());
        assert!(parse_label("name", "a\u{7}b").is_err());
        assert!(parse_description("line\nline").is_ok());
        assert!(parse_description(&"x".repeat(1_001)).is_err());
        assert!(parse_metadata(&serde_json::json!({"team": "x"})).is_ok());
        assert!(parse_metadata(&serde_json::json!([1])).is_err());
        assert!(parse_metadata(&serde_json::json!({"x": "y".repeat(5_000)})).is_err());
        assert!(RateLimit {
            requests: 0,
            window_secs: 1
        }
        .validate()
        .is_err());
        assert!(RateLimit {
            requests: 10,
            window_secs: 60
        }
        .validate()
        .is_ok());
    }
}
