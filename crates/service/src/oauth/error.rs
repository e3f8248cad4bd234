//! RFC 6749 section 5.2 error responses at the token, introspection and revocation endpoints,
//! and the one table ([`Refusal::entry`]) of what each refusal says: a standard `error` code, an
//! `error_description` that helps a legitimate integrator, `Cache-Control: no-store`, and a
//! `WWW-Authenticate: Basic` challenge on 401 where RFC 6749 asks for one. The precise reason
//! travels in `reason`, which is logged (and audited by the caller), never sent.
//!
//! # What a description may say
//!
//! A description may depend only on what the caller sent (the method it used, a missing or
//! repeated parameter, the shape of its secret, the header and claims of its assertion) or on
//! public configuration (the issuer, the allowed algorithms, the 300 s assertion limit). Until
//! authentication has succeeded it must never depend on stored state the caller has not proved:
//! whether the client exists, its registered method, its secrets and keys, whether it or its
//! tenant is disabled, whether an assertion's `jti` was seen. Every refusal decided against
//! stored state is [`Refusal::NotAuthenticated`], which has one answer whatever its reason, so
//! an unknown client, a wrong secret and a method the client is not registered for give
//! byte-identical bodies. Once the client has authenticated, a description may speak of its own
//! registration (scopes, audiences, grants, permissions).
//!
//! This module must never grow a description that names a stored fact before authentication,
//! nor build a description from request text (a description is a fixed string, so it can
//! neither echo a secret nor be used to inject into a log or a client).
//!
//! This is the error value; its HTTP form (body and headers) is written by `portcullis-http`'s
//! `oauth::reply`, so nothing here may depend on a web framework.

use http::StatusCode;
use portcullis_core::oauth::{AssertionError, GrantError};

/// Why an OAuth request was refused. [`Self::entry`] is the table of what each one says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    // The request itself.
    /// The body is not `application/x-www-form-urlencoded`.
    NotForm,
    /// The body is over the form limit.
    TooLarge,
    /// Not a POST.
    NotPost,
    /// A single-valued parameter was sent more than once.
    RepeatedParameter,
    /// More than one `Authorization` header.
    TwoAuthorizationHeaders,
    /// Client credentials in more than one place (Basic and body, secret and assertion).
    TwoAuthMethods,
    /// `client_assertion` without the RFC 7523 `client_assertion_type`.
    WrongAssertionType,
    /// `client_assertion_type` without a `client_assertion`.
    NoAssertion,
    /// A request parameter core's grant rules require (the text is core's).
    GrantRequest(&'static str),
    /// A `grant_type` this server does not offer.
    UnsupportedGrantType,
    /// Introspection or revocation without `token`.
    NoToken,

    // Client authentication, decided from what the caller sent alone.
    /// Neither an `Authorization` header nor a `client_id`.
    NoCredentials,
    /// An `Authorization` header that is not HTTP Basic client credentials.
    NotBasic,
    /// A `client_id` with neither a secret nor an assertion.
    NoSecret,
    /// A secret that is not shaped like the secrets this server issues.
    SecretMalformed,
    /// A resource server (`rs_...` id) presenting something other than its secret.
    ResourceServerNeedsSecret,
    /// A client assertion wrong in itself, before any key is looked at.
    Assertion(AssertionFault),

    // Client authentication, decided against stored state: one answer for every reason.
    /// Refused against stored state (unknown client, wrong or expired secret, method not
    /// registered, disabled client or tenant, unknown key, bad signature, replayed assertion).
    /// The cause goes to the audit log (its reason) and the metrics (its class) only.
    NotAuthenticated(AuthCause),
    /// The failure throttle refused the source before any credential check.
    Throttled,

    // After authentication: the client knows its own registration.
    /// The client is not registered for the grant.
    GrantNotAllowed,
    /// The scope asked for is not granted to the client for the resource.
    InvalidScope,
    /// The `resource`/`audience` names no API the client may reach, or several.
    InvalidTarget,
    /// The client lacks the introspection permission.
    MayNotIntrospect,
    /// Revocation of a token issued to another client.
    TokenOfAnotherClient,
    /// A code or refresh token that does not hold for this client: malformed, unknown, expired,
    /// replayed, revoked, another client's or redirect URI's, a wrong PKCE verifier. One answer
    /// (`invalid_grant`); the sign-in reason goes to the log.
    InvalidGrant(&'static str),
    /// A pushed authorization request (RFC 9126 section 2.3) that the authorization endpoint
    /// would refuse: `code` is the authorization error's (`invalid_request`, `invalid_scope`,
    /// `unauthorized_client`, `unsupported_response_type`...), `reason` the precise rule.
    InvalidPushedRequest {
        code: &'static str,
        reason: &'static str,
    },

    // The device authorization grant (RFC 8628 section 3.5), after the client authenticated.
    /// The person has not decided yet: poll again after the interval.
    DevicePending,
    /// Polled before the interval passed; the interval grew by five seconds.
    DeviceSlowDown,
    /// The device code expired before tokens were issued.
    DeviceExpired,
    /// The person denied the request.
    DeviceDenied,

    // DPoP (RFC 9449), judged from the proof alone or the replay log.
    /// The `DPoP` proof is invalid, replayed, or missing for a client that must send one (the
    /// reason says which).
    DpopProof(&'static str),
    /// The proof lacks a current server nonce: the answer carries one (`DPoP-Nonce`).
    DpopNonce(&'static str),

    // The workload grants (RFC 8693 token exchange, RFC 7523 JWT bearer), decided by the
    // tenant's trust rules: nothing is authenticated, so nothing stored is described.
    /// A workload grant at the installation's token endpoint, which cannot tell the tenant.
    TenantEndpointRequired,
    /// Client authentication, or a client grant, at a tenant's workload token endpoint.
    NotAWorkloadRequest,
    /// A `subject_token_type`, `requested_token_type` or `actor_token` this server does not
    /// take.
    UnsupportedTokenType,
    /// The subject token or assertion is not admitted by any trust rule (the audit reason says
    /// which check failed). One answer for every reason.
    WorkloadNotAdmitted,
    /// The rule admits the token but not the scope asked for.
    WorkloadScope,
    /// The rule admits the token but not the audience asked for.
    WorkloadTarget,

    // Token exchange between services (`tokens::service_exchange`), after the actor
    // authenticated.
    /// The subject access token is not current (expired, revoked, not ours) or may not be
    /// exchanged by this client (`may_act`, bound, another tenant, chain too long). One answer;
    /// the reason goes to the audit log.
    SubjectTokenRefused(&'static str),
}

/// Why a caller was refused against stored state: the audit log's reason and the metrics class
/// follow from it ([`Self::reason`], `client_auth`), the caller's answer never does (every cause
/// is the one [`Refusal::NotAuthenticated`] answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthCause {
    /// No client (or resource server) has the presented id.
    UnknownClient,
    /// The secret matches none of the client's.
    SecretMismatch,
    /// The secret matches one that has expired.
    SecretExpired,
    /// The client is registered for another authentication method.
    MethodMismatch,
    ClientDisabled,
    TenantDisabled,
    /// The assertion, checked against the client's keys and the replay log: unknown key, bad
    /// signature, replayed, or keys that cannot be used (the audit reason says which).
    Assertion(&'static str),
    /// The client certificate, checked against the client's registration (RFC 8705): no
    /// certificate, an untrusted chain, another subject, a key not in the JWKS, no tenant CA
    /// (the audit reason says which).
    Certificate(&'static str),
    /// An external workload token as the `client_assertion`, judged by the tenant's trust
    /// rules bound to the client (`crate::federation::exchange`): not admitted. The refusal's
    /// audited reason is the evaluation's (which check, which rule, which condition).
    Workload,
}

impl AuthCause {
    /// The audit log's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownClient => "client_unknown",
            Self::SecretMismatch => "client_secret_mismatch",
            Self::SecretExpired => "client_secret_expired",
            Self::MethodMismatch => "client_auth_method_mismatch",
            Self::ClientDisabled => "client_disabled",
            Self::TenantDisabled => "tenant_disabled",
            Self::Assertion(reason) | Self::Certificate(reason) => reason,
            Self::Workload => "client_assertion_not_admitted",
        }
    }
}

/// What is wrong with a client assertion, judged from the assertion alone (its size, header and
/// unverified claims) and public configuration. Answered with a description that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionFault {
    TooLong,
    Malformed,
    AlgNotAllowed,
    MissingClaims,
    Claims(AssertionError),
}

impl From<AssertionError> for AssertionFault {
    fn from(e: AssertionError) -> Self {
        Self::Claims(e)
    }
}

impl From<GrantError> for Refusal {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::InvalidRequest(d) => Self::GrantRequest(d),
            GrantError::UnsupportedGrantType => Self::UnsupportedGrantType,
            GrantError::UnauthorizedClient => Self::GrantNotAllowed,
            GrantError::InvalidScope => Self::InvalidScope,
            GrantError::InvalidTarget => Self::InvalidTarget,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The audit log's reason.
    pub reason: &'static str,
    pub status: StatusCode,
    /// The RFC 6749 (or RFC 7009, 8707) `error` code.
    pub code: &'static str,
    /// The `error_description` the caller gets.
    pub description: &'static str,
}

/// The one description of every refusal decided against stored state.
pub const NOT_AUTHENTICATED: &str = "client authentication failed: check the client_id, the \
     client secret or signing key, and that the client is registered for the authentication \
     method used";

impl Refusal {
    /// The table: for every refusal, its audit reason, status, code and description.
    pub fn entry(self) -> Entry {
        use StatusCode as S;
        const BAD: S = S::BAD_REQUEST;
        const UNAUTH: S = S::UNAUTHORIZED;
        let (reason, status, code, description) = match self {
            Self::NotForm => (
                "body_not_form",
                BAD,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ),
            Self::TooLarge => (
                "body_too_large",
                S::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ),
            Self::NotPost => (
                "method_not_allowed",
                S::METHOD_NOT_ALLOWED,
                "invalid_request",
                "use POST with an application/x-www-form-urlencoded body",
            ),
            Self::RepeatedParameter => (
                "parameter_repeated",
                BAD,
                "invalid_request",
                "a parameter was sent more than once",
            ),
            Self::TwoAuthorizationHeaders => (
                "two_authorization_headers",
                BAD,
                "invalid_request",
                "send one Authorization header",
            ),
            Self::TwoAuthMethods => (
                "two_client_auth_methods",
                BAD,
                "invalid_request",
                "use one client authentication method",
            ),
            Self::WrongAssertionType => (
                "assertion_type_wrong",
                BAD,
                "invalid_request",
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            Self::NoAssertion => (
                "assertion_missing",
                BAD,
                "invalid_request",
                "client_assertion is required",
            ),
            Self::GrantRequest(d) => (d, BAD, "invalid_request", d),
            Self::UnsupportedGrantType => (
                "unsupported_grant_type",
                BAD,
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token, client_credentials, \
                 urn:ietf:params:oauth:grant-type:token-exchange, \
                 urn:ietf:params:oauth:grant-type:jwt-bearer or \
                 urn:ietf:params:oauth:grant-type:device_code",
            ),
            Self::NoToken => ("token_missing", BAD, "invalid_request", "token is required"),
            Self::NoCredentials => (
                "no_client_credentials",
                UNAUTH,
                "invalid_client",
                "client authentication is required: HTTP Basic, client_id and client_secret in \
                 the body, or a client_assertion",
            ),
            Self::NotBasic => (
                "authorization_header_not_basic_credentials",
                UNAUTH,
                "invalid_client",
                "the Authorization header must be HTTP Basic with the form-encoded client_id \
                 and client_secret",
            ),
            Self::NoSecret => (
                "no_client_secret",
                UNAUTH,
                "invalid_client",
                "client_id was sent without a client_secret or a client_assertion",
            ),
            Self::SecretMalformed => (
                "client_secret_malformed",
                UNAUTH,
                "invalid_client",
                "client_secret is malformed: secrets issued here start with pcl_cs_ and end in \
                 a checksum",
            ),
            Self::ResourceServerNeedsSecret => (
                "resource_server_needs_a_secret",
                UNAUTH,
                "invalid_client",
                "a resource server authenticates with its secret (client_secret_basic or \
                 client_secret_post)",
            ),
            Self::Assertion(fault) => {
                let (reason, description) = assertion_entry(fault);
                (reason, UNAUTH, "invalid_client", description)
            }
            Self::NotAuthenticated(cause) => (
                cause.reason(),
                UNAUTH,
                "invalid_client",
                NOT_AUTHENTICATED,
            ),
            Self::Throttled => (
                "throttled",
                S::TOO_MANY_REQUESTS,
                "invalid_client",
                "too many failed client authentications: retry after the Retry-After delay",
            ),
            Self::GrantNotAllowed => (
                "unauthorized_client",
                BAD,
                "unauthorized_client",
                "this client is not registered for this grant",
            ),
            Self::InvalidScope => (
                "invalid_scope",
                BAD,
                "invalid_scope",
                "the scope asked for is not granted to this client for this resource",
            ),
            Self::InvalidTarget => (
                "invalid_target",
                BAD,
                "invalid_target",
                "resource or audience must name one API this client may reach",
            ),
            Self::MayNotIntrospect => (
                "client_may_not_introspect",
                S::FORBIDDEN,
                "unauthorized_client",
                "this client may not introspect tokens",
            ),
            Self::TokenOfAnotherClient => (
                "token_of_another_client",
                BAD,
                "unauthorized_client",
                "the token was issued to another client",
            ),
            Self::TenantEndpointRequired => (
                "workload_grant_without_tenant",
                BAD,
                "invalid_request",
                "token exchange and the JWT-bearer grant are served at the tenant's token \
                 endpoint, /oauth2/tenants/{tenant}/token",
            ),
            Self::NotAWorkloadRequest => (
                "client_request_at_tenant_endpoint",
                BAD,
                "invalid_request",
                "the tenant token endpoint serves token exchange and the JWT-bearer grant only, \
                 without client authentication",
            ),
            Self::UnsupportedTokenType => (
                "unsupported_token_type",
                BAD,
                "invalid_request",
                "subject_token_type must be urn:ietf:params:oauth:token-type:jwt or \
                 urn:ietf:params:oauth:token-type:id_token (or access_token for one of this \
                 server's tokens), requested_token_type access_token or jwt, and no actor_token",
            ),
            Self::WorkloadNotAdmitted => (
                "workload_not_admitted",
                BAD,
                "invalid_grant",
                "the token is not accepted by this tenant's trust rules",
            ),
            Self::WorkloadScope => (
                "invalid_scope",
                BAD,
                "invalid_scope",
                "the scope asked for is not granted by the trust rule",
            ),
            Self::WorkloadTarget => (
                "invalid_target",
                BAD,
                "invalid_target",
                "resource or audience must name one API the trust rule grants",
            ),
            Self::SubjectTokenRefused(reason) => (
                reason,
                BAD,
                "invalid_grant",
                "the subject_token is not a current access token of this server that this \
                 client may exchange",
            ),
            Self::InvalidGrant(reason) => (
                reason,
                BAD,
                "invalid_grant",
                "the authorization code or refresh token is invalid, expired, revoked, or was \
                 issued to another client or redirect URI",
            ),
            Self::InvalidPushedRequest { code, reason } => (
                reason,
                BAD,
                code,
                pushed_description(code),
            ),
            Self::DevicePending => (
                "authorization_pending",
                BAD,
                "authorization_pending",
                "the user has not yet approved or denied the request: poll again after the interval",
            ),
            Self::DeviceSlowDown => (
                "slow_down",
                BAD,
                "slow_down",
                "polled too fast: the interval is now five seconds longer",
            ),
            Self::DeviceExpired => (
                "device_code_expired",
                BAD,
                "expired_token",
                "the device code expired: start a new device authorization",
            ),
            Self::DeviceDenied => (
                "device_authorization_denied",
                BAD,
                "access_denied",
                "the user denied the request",
            ),
            Self::DpopProof(reason) => (
                reason,
                BAD,
                "invalid_dpop_proof",
                "the DPoP proof is invalid: send one dpop+jwt signed with an allowed asymmetric \
                 algorithm by the public jwk in its header, naming this method and URI, with a \
                 recent iat and a jti never used before",
            ),
            Self::DpopNonce(reason) => (
                reason,
                BAD,
                "use_dpop_nonce",
                "the DPoP proof must carry the nonce given in the DPoP-Nonce header",
            ),
        };
        Entry {
            reason,
            status,
            code,
            description,
        }
    }
}

/// What a refused push says, by its error code: the authorization endpoint's rules, which the
/// client can read in the documentation; never the request's own text.
fn pushed_description(code: &str) -> &'static str {
    match code {
        "invalid_scope" => "the scope asked for is not granted to this client",
        "unauthorized_client" => "this client is not registered for the authorization code flow",
        "unsupported_response_type" => "response_type must be code",
        "request_not_supported" => "request objects are not supported",
        _ => {
            "the authorization request is not valid for this client: redirect_uri must be \
             registered, PKCE with S256 is required, no parameter may repeat, and request_uri \
             must not be pushed"
        }
    }
}

/// The assertion rows of the table: (audit reason, description).
fn assertion_entry(fault: AssertionFault) -> (&'static str, &'static str) {
    match fault {
        AssertionFault::TooLong => (
            "assertion_too_long",
            "client_assertion is longer than 8192 bytes",
        ),
        AssertionFault::Malformed => (
            "assertion_malformed",
            "client_assertion is not a signed JWT with a known alg",
        ),
        AssertionFault::AlgNotAllowed => (
            "assertion_alg_not_allowed",
            "client_assertion must be signed with ES256, ES384, RS256, PS256 or EdDSA",
        ),
        AssertionFault::MissingClaims => (
            "assertion_claims_missing",
            "client_assertion must carry iss, sub, aud, exp and jti claims",
        ),
        AssertionFault::Claims(e) => (
            claim_reason(e),
            match e {
                AssertionError::IssuerMismatch => {
                    "client_assertion iss and sub must both be the client_id"
                }
                AssertionError::WrongAudience => {
                    "client_assertion aud must be one value: this server's issuer or its token \
                     endpoint"
                }
                AssertionError::Expired => "client_assertion has expired",
                AssertionError::TooLong => "assertion lifetime exceeds 300 s",
                AssertionError::NotYetValid => {
                    "client_assertion is not valid yet (iat or nbf is in the future)"
                }
                AssertionError::BadJti => "client_assertion jti must be 1 to 256 characters",
            },
        ),
    }
}

/// The audit reasons of core's assertion checks.
fn claim_reason(e: AssertionError) -> &'static str {
    match e {
        AssertionError::IssuerMismatch => "assertion_issuer_mismatch",
        AssertionError::WrongAudience => "assertion_wrong_audience",
        AssertionError::Expired => "assertion_expired",
        AssertionError::TooLong => "assertion_lifetime_too_long",
        AssertionError::NotYetValid => "assertion_not_yet_valid",
        AssertionError::BadJti => "assertion_bad_jti",
    }
}

#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    /// Client-facing text, from [`Refusal::entry`]; `None` only for server errors.
    pub description: Option<&'static str>,
    /// Internal reason: logged, never sent.
    pub reason: String,
    pub retry_after_secs: Option<u64>,
    /// Whether a 401 carries `WWW-Authenticate: Basic`: decided once, by client authentication
    /// ([`Self::for_method`]), for every refusal it makes.
    pub basic_challenge: bool,
    /// A fresh DPoP nonce to send in a `DPoP-Nonce` header (RFC 9449 section 8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    /// The answer to a refusal, as the table says.
    pub fn refuse(refusal: Refusal) -> Self {
        let e = refusal.entry();
        Self {
            status: e.status,
            code: e.code,
            description: Some(e.description),
            reason: e.reason.to_owned(),
            retry_after_secs: None,
            basic_challenge: true,
            dpop_nonce: None,
        }
    }

    /// The answer for a client that authenticated with `method`: the `WWW-Authenticate: Basic`
    /// challenge goes only to a client that used the `Authorization` header (RFC 6749 section
    /// 5.2: "matching the authentication scheme used by the client") or sent no credentials;
    /// one that authenticated in the body (`client_secret_post`, `private_key_jwt`) is not told
    /// to try Basic.
    pub fn for_method(mut self, method: super::form::PresentedMethod) -> Self {
        if method != super::form::PresentedMethod::Basic {
            self.basic_challenge = false;
        }
        self
    }

    /// 429 with `Retry-After`: a source refused by the failure throttle before any credential
    /// check. The code is `invalid_client` (the client was not authenticated, RFC 6749 section
    /// 5.2); that the refusal was a throttle is said by the status, `Retry-After` and the
    /// description, and the audit log's reason.
    pub fn throttled(retry_after_secs: u64) -> Self {
        let mut e = Self::refuse(Refusal::Throttled);
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "server_error",
            description: None,
            reason: cause.to_string(),
            retry_after_secs: None,
            basic_challenge: true,
            dpop_nonce: None,
        }
    }
}

impl From<Refusal> for OAuthError {
    fn from(r: Refusal) -> Self {
        Self::refuse(r)
    }
}

impl From<GrantError> for OAuthError {
    fn from(e: GrantError) -> Self {
        Self::refuse(e.into())
    }
}

impl From<crate::sign_in::SignInError> for OAuthError {
    fn from(e: crate::sign_in::SignInError) -> Self {
        match e {
            crate::sign_in::SignInError::Invalid(reason) => {
                Self::refuse(Refusal::InvalidGrant(reason))
            }
            crate::sign_in::SignInError::Store(e) => Self::internal(e),
        }
    }
}

impl From<portcullis_store::StoreError> for OAuthError {
    fn from(e: portcullis_store::StoreError) -> Self {
        Self::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifetime_description_states_the_limit_core_applies() {
        let d = Refusal::Assertion(AssertionError::TooLong.into())
            .entry()
            .description;
        let limit = portcullis_core::oauth::MAX_ASSERTION_LIFETIME.as_secs();
        assert_eq!(d, format!("assertion lifetime exceeds {limit} s"));
    }

    #[test]
    fn the_algorithm_description_lists_the_algorithms_core_allows() {
        let d = Refusal::Assertion(AssertionFault::AlgNotAllowed)
            .entry()
            .description;
        for alg in portcullis_core::oauth::ASSERTION_ALGORITHMS {
            assert!(d.contains(alg), "{alg} missing from {d:?}");
        }
    }

    #[test]
    fn every_stored_state_refusal_has_one_answer() {
        let answers: Vec<_> = [
            (AuthCause::UnknownClient, "client_unknown"),
            (AuthCause::SecretMismatch, "client_secret_mismatch"),
            (AuthCause::SecretExpired, "client_secret_expired"),
            (AuthCause::MethodMismatch, "client_auth_method_mismatch"),
            (AuthCause::ClientDisabled, "client_disabled"),
            (AuthCause::TenantDisabled, "tenant_disabled"),
            (
                AuthCause::Assertion("assertion_bad_signature"),
                "assertion_bad_signature",
            ),
            (
                AuthCause::Assertion("assertion_replayed"),
                "assertion_replayed",
            ),
        ]
        .into_iter()
        .map(|(cause, r)| {
            let e = Refusal::NotAuthenticated(cause).entry();
            assert_eq!(e.reason, r, "the audit log keeps the reason");
            (e.status, e.code, e.description)
        })
        .collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert_eq!(
            answers[0],
            (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                NOT_AUTHENTICATED
            )
        );
    }
}
