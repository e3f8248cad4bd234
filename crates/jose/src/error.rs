//! Why a token was refused by this crate: one precise, internal reason per rule.
//!
//! Callers map these to their own outside answers (the verify library to RFC 6750, the token
//! service to `invalid_client` / `active: false`). This module must never be sent to a client
//! as is: a reason helps an attacker tune a forgery.

use portcullis_core::oauth::AssertionError;

/// A rule a token broke. Internal only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    #[error("token_too_large")]
    TooLarge,
    /// Not three dot-separated parts, or an empty part.
    #[error("token_malformed")]
    Malformed,
    /// A part is not strict unpadded base64url.
    #[error("token_bad_base64url")]
    BadBase64,
    #[error("header_malformed")]
    MalformedHeader,
    #[error("claims_malformed")]
    MalformedClaims,
    /// A JSON object in the token repeats a member name.
    #[error("duplicate_member")]
    DuplicateMember,
    #[error("alg_none")]
    AlgNone,
    /// `cnf` is not an object of known confirmation methods with well-formed thumbprints.
    #[error("cnf_unsupported")]
    UnsupportedConfirmation,
    #[error("alg_not_allowed")]
    AlgNotAllowed,
    /// The token's `alg` is not the algorithm pinned to the key it names.
    #[error("alg_key_mismatch")]
    AlgKeyMismatch,
    #[error("crit_unsupported")]
    UnsupportedCrit,
    #[error("typ_wrong")]
    WrongTyp,
    /// No key of the set matches the token's `kid` (or the token has none and the set holds
    /// more than one key).
    #[error("kid_unknown")]
    UnknownKid,
    #[error("signature_invalid")]
    BadSignature,
    #[error("claim_missing")]
    MissingClaim(&'static str),
    #[error("token_expired")]
    Expired,
    #[error("token_not_yet_valid")]
    NotYetValid,
    #[error("token_issued_in_future")]
    IssuedInFuture,
    /// `exp - iat` is longer than the profile allows.
    #[error("token_lifetime_too_long")]
    LifetimeTooLong,
    #[error("audience_mismatch")]
    AudienceMismatch,
    #[error("issuer_mismatch")]
    IssuerMismatch,
    #[error("tenant_claim_invalid")]
    InvalidTenantClaim,
    /// ID token: `azp` missing with several audiences, or not the client.
    #[error("azp_mismatch")]
    AuthorizedPartyMismatch,
    /// ID token: the `nonce` sent in the request is missing or different.
    #[error("nonce_mismatch")]
    NonceMismatch,
    /// Logout token: `events` lacks the back-channel logout event (or is not an object).
    #[error("logout_event_missing")]
    LogoutEvent,
    /// Logout token: it carries a `nonce` (forbidden, so an ID token is never taken for one).
    #[error("nonce_forbidden")]
    NonceForbidden,
    /// An external identity token carries a key or key location in its header (`jwk`, `jku`,
    /// `x5u`, `x5c`): never used, and refused outright on tokens from other issuers.
    #[error("key_in_header")]
    KeyInHeader,
    /// A client assertion broke a claim rule of `portcullis_core::oauth::check_assertion`.
    #[error("{0}")]
    Assertion(AssertionError),
}

impl JoseError {
    /// The reason as a stable snake_case code (for logs and audit).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "token_too_large",
            Self::Malformed => "token_malformed",
            Self::BadBase64 => "token_bad_base64url",
            Self::MalformedHeader => "header_malformed",
            Self::MalformedClaims => "claims_malformed",
            Self::DuplicateMember => "duplicate_member",
            Self::AlgNone => "alg_none",
            Self::UnsupportedConfirmation => "cnf_unsupported",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::AlgKeyMismatch => "alg_key_mismatch",
            Self::UnsupportedCrit => "crit_unsupported",
            Self::WrongTyp => "typ_wrong",
            Self::UnknownKid => "kid_unknown",
            Self::BadSignature => "signature_invalid",
            Self::MissingClaim(_) => "claim_missing",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::IssuedInFuture => "token_issued_in_future",
            Self::LifetimeTooLong => "token_lifetime_too_long",
            Self::AudienceMismatch => "audience_mismatch",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::InvalidTenantClaim => "tenant_claim_invalid",
            Self::AuthorizedPartyMismatch => "azp_mismatch",
            Self::NonceMismatch => "nonce_mismatch",
            Self::LogoutEvent => "logout_event_missing",
            Self::NonceForbidden => "nonce_forbidden",
            Self::KeyInHeader => "key_in_header",
            Self::Assertion(e) => match e {
                AssertionError::IssuerMismatch => "assertion_issuer_mismatch",
                AssertionError::WrongAudience => "assertion_wrong_audience",
                AssertionError::Expired => "assertion_expired",
                AssertionError::TooLong => "assertion_lifetime_too_long",
                AssertionError::NotYetValid => "assertion_not_yet_valid",
                AssertionError::BadJti => "assertion_bad_jti",
            },
        }
    }
}
