//! OAuth 2.0 rules for machine clients: scope and audience types, the client-credentials grant
//! decision, and the claims of an RFC 9068 access token. No I/O: the server looks things up and
//! signs; this module decides what may be issued and what the token says.
//!
//! The tenant travels in the access token as the private claim [`TENANT_CLAIM`] (`tenant`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;
use crate::time::Timestamp;

/// Name of the access-token claim that carries the tenant id.
pub const TENANT_CLAIM: &str = "tenant";
/// JOSE `typ` of access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The private claim naming the refresh-token family a user access token was minted from (at
/// the code redemption that started the family, or at a refresh of it): what a `family`
/// revocation entry names, so verifiers refuse the family's access tokens once it is revoked.
pub const FAMILY_CLAIM: &str = "family_id";
/// The private claim listing, oldest first, the `jti` of every token a token-exchange token was
/// exchanged from (its subject token's own list, then the subject token): what lets a `token`
/// revocation entry for any of them revoke it too, since its authority came from theirs. At
/// most `crate::delegation::MAX_ACTORS` long, one per exchange.
pub const EXCHANGED_FROM_CLAIM: &str = "exchanged_from";
/// Longest scope token or audience accepted; longer input is refused before anything else.
const MAX_ITEM_LEN: usize = 256;
/// Most scopes one request or one client may name.
const MAX_ITEMS: usize = 64;

/// Why a value is not a valid scope, audience or client setting. Client-facing text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthValueError {
    #[error(
        "a scope is 1 to 256 printable ASCII characters without spaces, quotes or backslashes"
    )]
    BadScope,
    #[error("at most {MAX_ITEMS} scopes")]
    TooManyScopes,
    #[error("an audience is 1 to 256 printable ASCII characters without spaces")]
    BadAudience,
    #[error("unknown grant type")]
    BadGrantType,
    #[error("unknown client authentication method")]
    BadAuthMethod,
}

/// One scope token (RFC 6749 section 3.3: `%x21 / %x23-5B / %x5D-7E`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, OAuthValueError> {
        let ok = (1..=MAX_ITEM_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        ok.then(|| Self(s.to_owned()))
            .ok_or(OAuthValueError::BadScope)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of scopes, ordered so that the `scope` claim is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Parses a space-delimited `scope` parameter. Empty input is the empty set.
    pub fn parse_delimited(s: &str) -> Result<Self, OAuthValueError> {
        Self::from_strs(s.split(' ').filter(|p| !p.is_empty()))
    }

    pub fn from_strs<'a>(
        items: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, OAuthValueError> {
        let mut set = BTreeSet::new();
        for item in items {
            set.insert(Scope::parse(item)?);
            if set.len() > MAX_ITEMS {
                return Err(OAuthValueError::TooManyScopes);
            }
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// The space-delimited form used in `scope` parameters and claims.
    pub fn to_delimited(&self) -> String {
        self.0
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

/// A resource server's audience identifier: a URI or a name such as `payments-api`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Audience(String);

impl Audience {
    pub fn parse(s: &str) -> Result<Self, OAuthValueError> {
        let ok = (1..=MAX_ITEM_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.to_owned()))
            .ok_or(OAuthValueError::BadAudience)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    /// RFC 6749 section 4.1, with PKCE: browser and native apps signing users in.
    AuthorizationCode,
    /// RFC 6749 section 6: rotating refresh tokens of an authorization-code client.
    RefreshToken,
    /// RFC 8693: an external workload token (or one of our access tokens) exchanged for an
    /// access token. Not registrable: the trust rules of the tenant decide, not a client.
    TokenExchange,
    /// RFC 7523 section 2.1: an external workload token presented as an authorization grant.
    /// Not registrable, like [`Self::TokenExchange`].
    JwtBearer,
    /// RFC 8628: a device (the CLI) polls with a device code a person approved in a browser.
    DeviceCode,
}

impl GrantType {
    pub const ALL: [Self; 4] = [
        Self::ClientCredentials,
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::DeviceCode,
    ];

    /// The grants the token endpoint serves: every one a client can be registered for, and the
    /// two workload grants ([`Self::FEDERATED`]). A request naming another is
    /// `unsupported_grant_type`; one naming a grant the client is not registered for is
    /// `unauthorized_client` (RFC 6749 section 5.2).
    pub const SERVED: [Self; 6] = [
        Self::ClientCredentials,
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::TokenExchange,
        Self::JwtBearer,
        Self::DeviceCode,
    ];

    /// The grants decided by the tenant's trust rules rather than a client registration.
    pub const FEDERATED: [Self; 2] = [Self::TokenExchange, Self::JwtBearer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::TokenExchange => TOKEN_EXCHANGE_GRANT,
            Self::JwtBearer => JWT_BEARER_GRANT,
            Self::DeviceCode => DEVICE_CODE_GRANT,
        }
    }

    /// A grant a client may be registered for ([`Self::ALL`]); the workload grants are not.
    pub fn parse(s: &str) -> Result<Self, OAuthValueError> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or(OAuthValueError::BadGrantType)
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 section 2.2: a JWT signed with a key the client registered.
    PrivateKeyJwt,
    /// RFC 8705 section 2.1: a client certificate chaining to one of the tenant's CAs and
    /// carrying the one subject fact the client registered.
    TlsClientAuth,
    /// RFC 8705 section 2.2: a (typically self-signed) client certificate whose key is in the
    /// client's registered JWKS.
    SelfSignedTlsClientAuth,
    /// A public client (RFC 6749 section 2.1): no credential at all. Never matches a presented
    /// credential, so such a client can never authenticate where authentication is required.
    None,
    /// RFC 7523 section 2.2 with a token this server did not see the key of: the
    /// `client_assertion` is a workload's identity token from one of the tenant's trusted
    /// external issuers (a CI job's OIDC token, a pod's service-account token, a JWT-SVID),
    /// admitted by a trust rule bound to this client. No stored secret, no registered key;
    /// client credentials only, at the token endpoint only.
    WorkloadIdentityJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::None => "none",
            Self::WorkloadIdentityJwt => WORKLOAD_IDENTITY_JWT,
        }
    }

    /// A method proved by a shared secret: the only clients that are issued one, and whose
    /// secret may be rotated.
    pub fn has_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }

    /// A method proved by the client certificate of the TLS connection (RFC 8705).
    pub fn is_mtls(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    pub fn parse(s: &str) -> Result<Self, OAuthValueError> {
        match s {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            "tls_client_auth" => Ok(Self::TlsClientAuth),
            "self_signed_tls_client_auth" => Ok(Self::SelfSignedTlsClientAuth),
            "none" => Ok(Self::None),
            WORKLOAD_IDENTITY_JWT => Ok(Self::WorkloadIdentityJwt),
            _ => Err(OAuthValueError::BadAuthMethod),
        }
    }
}

/// The name of [`AuthMethod::WorkloadIdentityJwt`] (registration, discovery).
pub const WORKLOAD_IDENTITY_JWT: &str = "workload_identity_jwt";

/// `client_assertion_type` for JWT client authentication (RFC 7523 section 2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// RFC 8628 section 3.4: the device authorization grant (`crate::device`).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8693 section 2.1's `grant_type`.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 section 2.1's `grant_type`.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 section 3 token type identifiers this server reads or issues.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Longest lifetime a client assertion may claim: assertions are single-use and short.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Signature algorithms accepted on client assertions: asymmetric only. `none` and the HMAC
/// family are never accepted (a client's public key must not work as an HMAC secret).
pub const ASSERTION_ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// `aud` of a JWT: one string or an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn contains(&self, s: &str) -> bool {
        match self {
            Self::One(a) => a == s,
            Self::Many(v) => v.iter().any(|a| a == s),
        }
    }

    /// The one value, when there is exactly one (a string, or an array of one).
    pub fn single(&self) -> Option<&str> {
        match self {
            Self::One(a) => Some(a),
            Self::Many(v) => match v.as_slice() {
                [a] => Some(a),
                _ => None,
            },
        }
    }
}

/// The claims RFC 7523 section 3 requires of a client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: OneOrMany,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub jti: String,
}

/// Why a client assertion is refused. Internal reason codes; the client sees `invalid_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("assertion_issuer_mismatch")]
    IssuerMismatch,
    #[error("assertion_wrong_audience")]
    WrongAudience,
    #[error("assertion_expired")]
    Expired,
    #[error("assertion_lifetime_too_long")]
    TooLong,
    #[error("assertion_not_yet_valid")]
    NotYetValid,
    #[error("assertion_bad_jti")]
    BadJti,
}

/// Checks a client assertion's claims (its signature is the server's job): `iss` and `sub` are
/// the client, `aud` is one value and that value is this issuer or its token endpoint, `exp` is
/// in the future and at most [`MAX_ASSERTION_LIFETIME`] away, and there is a `jti` to record
/// against replay.
///
/// One audience only (draft-ietf-oauth-rfc7523bis, audience injection): an assertion naming
/// this server and another party could have been made for that party and replayed here, or
/// made here and replayed there.
pub fn check_assertion(
    claims: &AssertionClaims,
    client_id: &str,
    accepted_audiences: &[&str],
    now: Timestamp,
    leeway: Duration,
) -> Result<(), AssertionError> {
    if claims.iss != client_id || claims.sub != client_id {
        return Err(AssertionError::IssuerMismatch);
    }
    match claims.aud.single() {
        Some(aud) if accepted_audiences.contains(&aud) => {}
        _ => return Err(AssertionError::WrongAudience),
    }
    let now_s = now.as_secs();
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(0);
    let max = i64::try_from(MAX_ASSERTION_LIFETIME.as_secs()).unwrap_or(0);
    if claims.exp <= now_s.saturating_sub(leeway) {
        return Err(AssertionError::Expired);
    }
    if claims.exp > now_s.saturating_add(max).saturating_add(leeway) {
        return Err(AssertionError::TooLong);
    }
    if let Some(iat) = claims.iat {
        if iat > now_s.saturating_add(leeway) {
            return Err(AssertionError::NotYetValid);
        }
        if claims.exp.saturating_sub(iat) > max {
            return Err(AssertionError::TooLong);
        }
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now_s.saturating_add(leeway))
    {
        return Err(AssertionError::NotYetValid);
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(AssertionError::BadJti);
    }
    Ok(())
}

/// Whether a client assertion is an external workload token ([`AuthMethod::WorkloadIdentityJwt`])
/// rather than one the client signed itself (`private_key_jwt`), read from the assertion's
/// unverified `iss` and the presented client id alone, so the path taken never depends on what
/// is stored: a client signs with `iss` = its own id; a trusted external issuer is always an
/// `http(s)://` URL, which no client id is.
pub fn is_external_assertion(iss: &str, client_id: &str) -> bool {
    iss != client_id && iss.contains("://")
}

/// Whether an external token used as a client assertion names this server, and only it
/// (RFC 7523 section 3, one audience as for [`check_assertion`]: a token also naming another
/// party could have been made for that party and replayed here).
pub fn external_assertion_audience_ok(audiences: &[String], accepted: &[&str]) -> bool {
    matches!(audiences, [aud] if accepted.contains(&aud.as_str()))
}

/// Access-token lifetime limits: the default for new clients and the installation's hard cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub default: Duration,
    pub max: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            default: Duration::from_secs(600),
            max: Duration::from_secs(3600),
        }
    }
}

/// What the grant decision needs to know about the authenticated client.
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    pub client_id: String,
    pub tenant: TenantId,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    /// Allowed audiences; the first is the default.
    pub audiences: Vec<Audience>,
    pub access_token_ttl: Duration,
}

impl ClientPolicy {
    /// This policy narrowed to what a trust rule grants (a client authenticated by a workload
    /// token, RFC 7523 section 2.2): the scopes and audiences in both, and at most `lifetime`.
    /// Never wider than either: an audience only the client lists is not issued.
    pub fn within_rule(
        &self,
        scopes: &ScopeSet,
        audiences: &[Audience],
        lifetime: Duration,
    ) -> Self {
        Self {
            client_id: self.client_id.clone(),
            tenant: self.tenant.clone(),
            grant_types: self.grant_types.clone(),
            scopes: self.scopes.intersection(scopes),
            audiences: self
                .audiences
                .iter()
                .filter(|a| audiences.contains(a))
                .cloned()
                .collect(),
            access_token_ttl: self.access_token_ttl.min(lifetime),
        }
    }
}

/// A resource server as the grant decision sees it.
#[derive(Debug, Clone)]
pub struct ResourcePolicy {
    pub audience: Audience,
    pub scopes: ScopeSet,
}

/// The parameters of a token request, already split from the form.
#[derive(Debug, Clone, Default)]
pub struct GrantRequest<'a> {
    pub grant_type: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// Every `resource` (RFC 8707) and `audience` value sent.
    pub targets: Vec<&'a str>,
}

/// RFC 6749 section 5.2 errors a grant decision can produce (client authentication is decided
/// before this, by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    InvalidRequest(&'static str),
    UnsupportedGrantType,
    UnauthorizedClient,
    InvalidScope,
    InvalidTarget,
}

impl GrantError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
        }
    }
}

/// Checks that a request names a grant type the token endpoint serves ([`GrantType::SERVED`]),
/// before the client is authenticated.
pub fn parse_grant_type(grant_type: Option<&str>) -> Result<GrantType, GrantError> {
    let g = grant_type.ok_or(GrantError::InvalidRequest("grant_type is required"))?;
    GrantType::SERVED
        .into_iter()
        .find(|s| s.as_str() == g)
        .ok_or(GrantError::UnsupportedGrantType)
}

/// Picks the audience a request targets: the one `resource`/`audience` names (all values sent
/// must agree: a token is bound to one resource), else the client's default.
pub fn select_audience(client: &ClientPolicy, targets: &[&str]) -> Result<Audience, GrantError> {
    let mut chosen: Option<&str> = None;
    for t in targets {
        match chosen {
            Some(c) if c != *t => return Err(GrantError::InvalidTarget),
            _ => chosen = Some(t),
        }
    }
    match chosen {
        None => client
            .audiences
            .first()
            .cloned()
            .ok_or(GrantError::InvalidTarget),
        Some(t) => client
            .audiences
            .iter()
            .find(|a| a.as_str() == t)
            .cloned()
            .ok_or(GrantError::InvalidTarget),
    }
}

/// What a client-credentials grant issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantDecision {
    pub audience: Audience,
    pub scopes: ScopeSet,
    pub lifetime: Duration,
}

/// The client-credentials decision (RFC 6749 section 4.4, RFC 8707): the requested scope must be
/// within both the client's allowed scopes and the scopes the audience defines; without a
/// `scope`, the grant is every allowed scope the audience defines.
pub fn decide_client_credentials(
    client: &ClientPolicy,
    resource: &ResourcePolicy,
    requested_scope: Option<&str>,
    lifetimes: TokenLifetimes,
) -> Result<GrantDecision, GrantError> {
    if !client.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(GrantError::UnauthorizedClient);
    }
    if !client.audiences.contains(&resource.audience) {
        return Err(GrantError::InvalidTarget);
    }
    let grantable = client.scopes.intersection(&resource.scopes);
    let scopes = match requested_scope {
        None => grantable,
        Some(s) => {
            let requested = ScopeSet::parse_delimited(s).map_err(|_| GrantError::InvalidScope)?;
            if requested.is_empty() || !requested.is_subset(&grantable) {
                return Err(GrantError::InvalidScope);
            }
            requested
        }
    };
    Ok(GrantDecision {
        audience: resource.audience.clone(),
        scopes,
        lifetime: client.access_token_ttl.min(lifetimes.max),
    })
}

/// The claims of an RFC 9068 access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// For client credentials, the client itself (RFC 9068 section 2.2).
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Omitted when no scope was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub tenant: String,
    /// User tokens only: when and how the user signed in, and the session (OIDC Core section 2
    /// names; RFC 9068 section 2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The refresh-token family the token was minted from ([`FAMILY_CLAIM`]).
    #[serde(default, rename = "family_id", skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The key the token is bound to (RFC 7800; DPoP or a client certificate); `None` for a
    /// bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::confirmation::Confirmation>,
    /// Workload tokens only: the external identity the token was exchanged for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<ExternalIdentity>,
    /// Tokens from a token exchange between services: the acting client, earlier actors nested
    /// (RFC 8693 section 4.1; decided by `crate::delegation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<ActClaim>,
    /// Tokens from a token exchange between services: the `jti` of every token in the chain it
    /// was exchanged from, oldest first ([`EXCHANGED_FROM_CLAIM`]).
    #[serde(
        default,
        rename = "exchanged_from",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exchanged_from: Vec<String>,
    /// Who may exchange this token, acting for its subject (RFC 8693 section 4.4). Read from a
    /// presented token and honoured; carried over to no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<MayAct>,
}

/// An `act` claim (RFC 8693 section 4.1): who is acting, and who acted before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActClaim {
    /// The acting client's id.
    pub sub: String,
    /// The actor before this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<ActClaim>>,
}

impl ActClaim {
    /// How many actors the chain names.
    pub fn len(&self) -> usize {
        let mut n = 1;
        let mut next = self.act.as_deref();
        while let Some(a) = next {
            n += 1;
            next = a.act.as_deref();
        }
        n
    }

    /// Never true: a chain names at least its current actor (for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The actors' ids, current first.
    pub fn actors(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut next = self.act.as_deref();
        while let Some(a) = next {
            out.push(a.sub.as_str());
            next = a.act.as_deref();
        }
        out
    }
}

/// A `may_act` claim (RFC 8693 section 4.4): who may act for the token's subject. Portcullis
/// actors are clients, named by `sub` or `client_id`; a `may_act` naming neither names nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MayAct {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl MayAct {
    /// Whether it names the client `id` (every identifier it gives must be that client's).
    pub fn names(&self, id: &str) -> bool {
        let given = [self.sub.as_deref(), self.client_id.as_deref()];
        given.iter().any(Option::is_some) && given.iter().flatten().all(|g| *g == id)
    }
}

/// The external identity a workload token was exchanged for (`workload` claim; built by
/// `crate::federation::issued`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The external token's issuer.
    pub iss: String,
    /// The external token's subject, as the issuer wrote it.
    pub sub: String,
    /// The trust rule that admitted it.
    pub rule: String,
}

impl AccessTokenClaims {
    /// Claims for a client-credentials token issued at `now`.
    pub fn for_client(
        issuer: &str,
        client: &ClientPolicy,
        decision: &GrantDecision,
        jti: String,
        now: Timestamp,
    ) -> Self {
        let iat = now.as_secs();
        let lifetime = i64::try_from(decision.lifetime.as_secs()).unwrap_or(i64::MAX);
        Self {
            iss: issuer.to_owned(),
            sub: client.client_id.clone(),
            aud: decision.audience.as_str().to_owned(),
            exp: iat.saturating_add(lifetime),
            iat,
            nbf: iat,
            jti,
            client_id: client.client_id.clone(),
            scope: (!decision.scopes.is_empty()).then(|| decision.scopes.to_delimited()),
            tenant: client.tenant.as_str().to_owned(),
            auth_time: None,
            acr: None,
            amr: Vec::new(),
            sid: None,
            family: None,
            cnf: None,
            workload: None,
            act: None,
            exchanged_from: Vec::new(),
            may_act: None,
        }
    }

    /// Whether the token is within its validity window at `now` (`leeway` for clock skew).
    pub fn is_current(&self, now: Timestamp, leeway: Duration) -> bool {
        let leeway = i64::try_from(leeway.as_secs()).unwrap_or(0);
        let now = now.as_secs();
        self.exp > now.saturating_sub(leeway)
            && self.nbf <= now.saturating_add(leeway)
            && self.iat <= now.saturating_add(leeway)
    }
}

/// Token types as RFC 7009 and RFC 7662 `token_type_hint` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    AccessToken,
    RefreshToken,
}

impl TokenType {
    /// The registered hint values; anything else is not a hint this server knows.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// The order in which to look a presented token up at the introspection and revocation
/// endpoints: the hinted type first if this server issues it, then every other type it issues.
/// A hint names where to look first, never where to stop (RFC 7009 section 2.1, RFC 7662
/// section 2.1: the search MUST extend to all supported types), and an unknown hint value is
/// ignored (RFC 7009 section 2.2), so the answer never depends on the hint.
pub fn token_search_order(hint: Option<&str>, issued: &[TokenType]) -> Vec<TokenType> {
    let hinted = hint
        .and_then(TokenType::parse)
        .filter(|t| issued.contains(t));
    hinted
        .into_iter()
        .chain(issued.iter().copied().filter(|t| Some(*t) != hinted))
        .collect()
}

#[cfg(test)]
mod tests {

    /// The kind of assertion is read from the assertion alone: `iss` the client id is the
    /// client's own; another URL a workload's; anything else stays the client's own (and is
    /// then refused as an issuer mismatch with a description).
    #[test]
    fn an_external_assertion_is_told_by_its_issuer() {
        assert!(!is_external_assertion("cl_1", "cl_1"));
        assert!(is_external_assertion(
            "https://token.actions.githubusercontent.com",
            "cl_1"
        ));
        assert!(!is_external_assertion("cl_2", "cl_1"));
        let here = ["https://auth.example", "https://auth.example/oauth2/token"];
        let one = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(external_assertion_audience_ok(&one(&[here[0]]), &here));
        assert!(external_assertion_audience_ok(&one(&[here[1]]), &here));
        assert!(!external_assertion_audience_ok(&one(&["other"]), &here));
        assert!(!external_assertion_audience_ok(
            &one(&[here[0], "other"]),
            &here
        ));
        assert!(!external_assertion_audience_ok(&[], &here));
        assert_eq!(
            AuthMethod::parse(WORKLOAD_IDENTITY_JWT),
            Ok(AuthMethod::WorkloadIdentityJwt)
        );
    }

    use super::*;

    #[test]
    fn a_token_type_hint_orders_the_search_but_never_narrows_it() {
        use TokenType::*;
        let both = [AccessToken, RefreshToken];
        assert_eq!(
            token_search_order(None, &both),
            vec![AccessToken, RefreshToken]
        );
        assert_eq!(
            token_search_order(Some("refresh_token"), &both),
            vec![RefreshToken, AccessToken]
        );
        // Unknown hints are ignored, including near misses.
        for unknown in ["bogus", "ACCESS_TOKEN", "", "access_token "] {
            assert_eq!(
                token_search_order(Some(unknown), &both),
                vec![AccessToken, RefreshToken],
                "{unknown:?}"
            );
        }
        // A hint for a type this server does not issue still searches what it does issue.
        assert_eq!(
            token_search_order(Some("refresh_token"), &[AccessToken]),
            vec![AccessToken]
        );
        assert_eq!(
            TokenType::parse("refresh_token").map(TokenType::as_str),
            Some("refresh_token")
        );
    }

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse_delimited(s).expect("scopes")
    }

    fn aud(s: &str) -> Audience {
        Audience::parse(s).expect("audience")
    }

    fn client() -> ClientPolicy {
        ClientPolicy {
            client_id: "cl_1".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            grant_types: vec![GrantType::ClientCredentials],
            scopes: scopes("payments:read payments:write ledger:read"),
            audiences: vec![aud("payments-api"), aud("ledger-api")],
            access_token_ttl: Duration::from_secs(600),
        }
    }

    fn payments() -> ResourcePolicy {
        ResourcePolicy {
            audience: aud("payments-api"),
            scopes: scopes("payments:read payments:write payments:admin"),
        }
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        for ok in ["a", "payments:read", "https://x/y", "!#[]~"] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", &"a".repeat(257)] {
            assert_eq!(Scope::parse(bad), Err(OAuthValueError::BadScope), "{bad:?}");
        }
        assert_eq!(scopes("  b a  b ").to_delimited(), "a b");
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert_eq!(
            ScopeSet::from_strs(many.iter().map(String::as_str)),
            Err(OAuthValueError::TooManyScopes)
        );
    }

    #[test]
    fn audiences_are_printable_without_spaces() {
        assert!(Audience::parse("https://api.example/v1").is_ok());
        for bad in ["", "a b", "a\nb", "é"] {
            assert!(Audience::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grant_type_is_required_and_must_be_known() {
        assert_eq!(
            parse_grant_type(None),
            Err(GrantError::InvalidRequest("grant_type is required"))
        );
        assert_eq!(
            parse_grant_type(Some("password")),
            Err(GrantError::UnsupportedGrantType)
        );
        assert_eq!(
            parse_grant_type(Some("client_credentials")),
            Ok(GrantType::ClientCredentials)
        );
        // Every registrable grant is served; whether a client may use it is decided after
        // authentication (`unauthorized_client`).
        for g in GrantType::ALL {
            assert_eq!(parse_grant_type(Some(g.as_str())), Ok(g));
        }
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Ok(g));
        }
    }

    #[test]
    fn audience_defaults_to_the_first_and_must_be_allowed() {
        let c = client();
        assert_eq!(select_audience(&c, &[]), Ok(aud("payments-api")));
        assert_eq!(select_audience(&c, &["ledger-api"]), Ok(aud("ledger-api")));
        assert_eq!(
            select_audience(&c, &["ledger-api", "ledger-api"]),
            Ok(aud("ledger-api"))
        );
        assert_eq!(
            select_audience(&c, &["other-api"]),
            Err(GrantError::InvalidTarget)
        );
        assert_eq!(
            select_audience(&c, &["ledger-api", "payments-api"]),
            Err(GrantError::InvalidTarget),
            "one token, one resource"
        );
        let mut none = client();
        none.audiences.clear();
        assert_eq!(select_audience(&none, &[]), Err(GrantError::InvalidTarget));
    }

    #[test]
    fn scope_must_be_allowed_for_client_and_defined_by_audience() {
        let c = client();
        let l = TokenLifetimes::default();
        let d = decide_client_credentials(&c, &payments(), None, l).expect("default scope");
        assert_eq!(d.scopes.to_delimited(), "payments:read payments:write");
        let d =
            decide_client_credentials(&c, &payments(), Some("payments:read"), l).expect("subset");
        assert_eq!(d.scopes.to_delimited(), "payments:read");
        // Defined by the API but not allowed for the client.
        assert_eq!(
            decide_client_credentials(&c, &payments(), Some("payments:admin"), l),
            Err(GrantError::InvalidScope)
        );
        // Allowed for the client but defined by another API.
        assert_eq!(
            decide_client_credentials(&c, &payments(), Some("ledger:read"), l),
            Err(GrantError::InvalidScope)
        );
        for bad in ["", " ", "pay\"ments"] {
            assert_eq!(
                decide_client_credentials(&c, &payments(), Some(bad), l),
                Err(GrantError::InvalidScope),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn client_without_the_grant_or_audience_is_refused() {
        let mut c = client();
        c.grant_types.clear();
        assert_eq!(
            decide_client_credentials(&c, &payments(), None, TokenLifetimes::default()),
            Err(GrantError::UnauthorizedClient)
        );
        let mut c = client();
        c.audiences = vec![aud("ledger-api")];
        assert_eq!(
            decide_client_credentials(&c, &payments(), None, TokenLifetimes::default()),
            Err(GrantError::InvalidTarget)
        );
    }

    fn assertion(exp: i64) -> AssertionClaims {
        AssertionClaims {
            iss: "cl_1".into(),
            sub: "cl_1".into(),
            aud: OneOrMany::One("https://auth.example/oauth2/token".into()),
            exp,
            iat: Some(1_000),
            nbf: None,
            jti: "j-1".into(),
        }
    }

    #[test]
    fn client_assertions_must_be_for_us_short_and_current() {
        let auds = ["https://auth.example", "https://auth.example/oauth2/token"];
        let now = Timestamp::from_secs(1_000);
        let ok = |c: &AssertionClaims| check_assertion(c, "cl_1", &auds, now, Duration::ZERO);
        assert_eq!(ok(&assertion(1_060)), Ok(()));
        let mut issuer_aud = assertion(1_060);
        issuer_aud.aud = OneOrMany::One("https://auth.example".into());
        assert_eq!(ok(&issuer_aud), Ok(()));
        issuer_aud.aud = OneOrMany::Many(vec!["https://auth.example".into()]);
        assert_eq!(ok(&issuer_aud), Ok(()), "an array of one value");
        // Audience injection: this server and another party, in either order.
        for list in [
            vec!["x", "https://auth.example"],
            vec!["https://auth.example/oauth2/token", "https://other.example"],
            vec!["https://auth.example", "https://auth.example/oauth2/token"],
            vec![],
        ] {
            let mut many = assertion(1_060);
            many.aud = OneOrMany::Many(list.iter().map(|a| a.to_string()).collect());
            assert_eq!(ok(&many), Err(AssertionError::WrongAudience), "{list:?}");
        }
        let mut wrong_aud = assertion(1_060);
        wrong_aud.aud = OneOrMany::One("https://evil.example/oauth2/token".into());
        assert_eq!(ok(&wrong_aud), Err(AssertionError::WrongAudience));
        assert_eq!(ok(&assertion(1_000)), Err(AssertionError::Expired));
        assert_eq!(ok(&assertion(1_301)), Err(AssertionError::TooLong));
        let mut other = assertion(1_060);
        other.sub = "cl_2".into();
        assert_eq!(ok(&other), Err(AssertionError::IssuerMismatch));
        let mut future = assertion(1_060);
        future.nbf = Some(1_010);
        assert_eq!(ok(&future), Err(AssertionError::NotYetValid));
        let mut no_jti = assertion(1_060);
        no_jti.jti.clear();
        assert_eq!(ok(&no_jti), Err(AssertionError::BadJti));
        assert!(!ASSERTION_ALGORITHMS.contains(&"HS256"));
        assert!(!ASSERTION_ALGORITHMS.contains(&"none"));
    }

    #[test]
    fn lifetime_is_capped_by_the_hard_maximum() {
        let mut c = client();
        c.access_token_ttl = Duration::from_secs(86_400);
        let d = decide_client_credentials(&c, &payments(), None, TokenLifetimes::default())
            .expect("ok");
        assert_eq!(d.lifetime, Duration::from_secs(3600));
    }

    #[test]
    fn claims_carry_everything_rfc9068_requires_plus_the_tenant() {
        let c = client();
        let d = decide_client_credentials(&c, &payments(), None, TokenLifetimes::default())
            .expect("ok");
        let claims = AccessTokenClaims::for_client(
            "https://auth.example",
            &c,
            &d,
            "jti-1".into(),
            Timestamp::from_millis(1_000_999),
        );
        let v = serde_json::to_value(&claims).expect("json");
        for k in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "client_id",
            "scope",
            TENANT_CLAIM,
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["iat"], 1000);
        assert_eq!(v["exp"], 1600);
        assert_eq!(v[TENANT_CLAIM], "acme");
        assert_eq!(v["sub"], v["client_id"]);
        assert!(claims.is_current(Timestamp::from_secs(1599), Duration::ZERO));
        assert!(!claims.is_current(Timestamp::from_secs(1600), Duration::ZERO));
        assert!(!claims.is_current(Timestamp::from_secs(999), Duration::ZERO));
        assert!(claims.is_current(Timestamp::from_secs(999), Duration::from_secs(1)));
    }

    #[test]
    fn a_client_narrowed_to_a_rule_gets_only_what_both_grant() {
        let aud = |a: &str| Audience::parse(a).expect("aud");
        let client = ClientPolicy {
            client_id: "cl_1".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            grant_types: vec![GrantType::ClientCredentials],
            scopes: ScopeSet::parse_delimited("deploy read admin").expect("scopes"),
            audiences: vec![aud("deploy-api"), aud("billing-api")],
            access_token_ttl: Duration::from_secs(900),
        };
        let narrowed = client.within_rule(
            &ScopeSet::parse_delimited("deploy write").expect("scopes"),
            &[aud("deploy-api"), aud("other-api")],
            Duration::from_secs(300),
        );
        assert_eq!(narrowed.scopes.to_delimited(), "deploy");
        // billing-api only the client lists, other-api only the rule: neither is issued.
        assert_eq!(narrowed.audiences, vec![aud("deploy-api")]);
        assert_eq!(narrowed.access_token_ttl, Duration::from_secs(300));
        // The rule's lifetime never lengthens the client's.
        let longer =
            client.within_rule(&client.scopes, &client.audiences, Duration::from_secs(3600));
        assert_eq!(longer.access_token_ttl, Duration::from_secs(900));
        assert_eq!(
            (longer.client_id.as_str(), longer.grant_types.len()),
            ("cl_1", 1)
        );
    }
}
