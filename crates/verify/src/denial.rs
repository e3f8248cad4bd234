//! Why a credential was refused: the precise internal [`Reason`] and the concise outside class.
//!
//! Outside, a client only ever learns one of four RFC 6750 answers (no credential, invalid
//! request, invalid token, insufficient scope), or 429 when a good API key is over its own rate
//! limit. The reason is for tracing and tests; it must never be put in a response.

use portcullis_core::confirmation::BindingError;
use portcullis_core::revocation::RevokedBy;
use portcullis_jose::JoseError;

/// The answer a client gets (RFC 6750 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenialClass {
    /// No credential was sent: 401 with a bare `Bearer` challenge.
    NoCredential,
    /// The request itself is malformed (e.g. two credentials): 400 `invalid_request`.
    InvalidRequest,
    /// The credential is not acceptable: 401 `invalid_token`.
    InvalidToken,
    /// The credential is good but does not grant this: 403 `insufficient_scope`.
    InsufficientScope,
    /// The credential is good but over its own rate limit: 429 `rate_limited` with
    /// `Retry-After` and no challenge (retrying with the same credential later will work).
    RateLimited,
    /// The DPoP proof is missing, invalid or replayed: 401 `invalid_dpop_proof` with a
    /// `WWW-Authenticate: DPoP` challenge (RFC 9449 section 7.1).
    InvalidDpopProof,
    /// The DPoP proof lacks a current nonce: 401 `use_dpop_nonce` with a `DPoP-Nonce` header
    /// (RFC 9449 section 9).
    UseDpopNonce,
}

impl DenialClass {
    /// Every class.
    pub const ALL: [Self; 7] = [
        Self::NoCredential,
        Self::InvalidRequest,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::RateLimited,
        Self::InvalidDpopProof,
        Self::UseDpopNonce,
    ];

    /// The class as audit events, metrics and a gateway's denial reports name it: its RFC 6750
    /// code, or `no_credential`.
    pub fn name(self) -> &'static str {
        self.error_code().unwrap_or("no_credential")
    }

    /// The RFC 6750 error code, if the class has one.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::NoCredential => None,
            Self::InvalidRequest => Some("invalid_request"),
            Self::InvalidToken => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::RateLimited => Some("rate_limited"),
            Self::InvalidDpopProof => Some("invalid_dpop_proof"),
            Self::UseDpopNonce => Some("use_dpop_nonce"),
        }
    }

    /// Whether the answer carries a `WWW-Authenticate: Bearer` challenge: every class but
    /// [`Self::RateLimited`], where the credential itself was accepted.
    pub fn challenges(self) -> bool {
        self != Self::RateLimited
    }

    pub fn status(self) -> u16 {
        match self {
            Self::NoCredential
            | Self::InvalidToken
            | Self::InvalidDpopProof
            | Self::UseDpopNonce => 401,
            Self::InvalidRequest => 400,
            Self::InsufficientScope => 403,
            Self::RateLimited => 429,
        }
    }
}

/// The precise reason a credential was refused. Internal only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    MissingCredential,
    /// More than one credential, or a credential in the URL.
    AmbiguousCredential,
    CredentialInQuery,
    TooLarge,
    /// Not three dot-separated parts, or an empty part.
    Malformed,
    /// A part is not strict unpadded base64url.
    BadBase64,
    MalformedHeader,
    MalformedClaims,
    /// A JSON object in the token repeats a member name.
    DuplicateMember,
    AlgNone,
    AlgNotAllowed,
    /// The token's `alg` is not the algorithm pinned to the key it names.
    AlgKeyMismatch,
    UnsupportedCrit,
    WrongTyp,
    MissingKid,
    UnknownIssuer,
    UnknownKid,
    KeysUnavailable,
    BadSignature,
    MissingClaim(&'static str),
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// `exp - iat` is longer than the verifier's maximum token lifetime.
    LifetimeTooLong,
    AudienceMismatch,
    InvalidTenantClaim,
    /// `cnf` names a confirmation method this verifier does not know (or is empty).
    UnsupportedConfirmation,
    /// The token is bound to a key (`cnf`) the request did not prove it holds.
    Binding(BindingError),
    Revoked(RevokedBy),
    RevocationFeedStale,
    /// An API key was refused (format, unknown, revoked, disabled, expired, environment, IP...).
    ApiKeyRejected,
    ApiKeyFormat,
    ApiKeyWrongEnvironment,
    ApiKeysUnavailable,
    /// An API key over its own rate limit; retry after this many seconds.
    ApiKeyRateLimited {
        retry_after_secs: u64,
    },
    CredentialKindNotAccepted,
    TenantMismatch,
    TenantUnresolved,
    MissingScope,
    MissingRole,
    /// `Authorization: DPoP` without a `DPoP` proof header (or with several).
    DpopProofMissing,
    /// The DPoP proof broke a rule of the JOSE profile.
    DpopProof(portcullis_jose::profile::dpop_proof::ProofError),
    /// A nonce is required and the proof's is missing or stale.
    DpopNonce,
    /// The proof's `jti` was already used within its window.
    DpopReplayed,
    /// The replay memory is full of live proof ids: refused rather than remembered loosely.
    DpopReplayCacheFull,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::AmbiguousCredential => "ambiguous_credential",
            Self::CredentialInQuery => "credential_in_query",
            Self::TooLarge => "token_too_large",
            Self::Malformed => "token_malformed",
            Self::BadBase64 => "token_bad_base64url",
            Self::MalformedHeader => "header_malformed",
            Self::MalformedClaims => "claims_malformed",
            Self::DuplicateMember => "duplicate_member",
            Self::AlgNone => "alg_none",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::AlgKeyMismatch => "alg_key_mismatch",
            Self::UnsupportedCrit => "crit_unsupported",
            Self::WrongTyp => "typ_wrong",
            Self::MissingKid => "kid_missing",
            Self::UnknownIssuer => "issuer_unknown",
            Self::UnknownKid => "kid_unknown",
            Self::KeysUnavailable => "keys_unavailable",
            Self::BadSignature => "signature_invalid",
            Self::MissingClaim(_) => "claim_missing",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::IssuedInFuture => "token_issued_in_future",
            Self::LifetimeTooLong => "token_lifetime_too_long",
            Self::AudienceMismatch => "audience_mismatch",
            Self::InvalidTenantClaim => "tenant_claim_invalid",
            Self::UnsupportedConfirmation => "cnf_unsupported",
            Self::Binding(e) => e.as_str(),
            Self::Revoked(by) => by.reason(),
            Self::RevocationFeedStale => "revocation_feed_stale",
            Self::ApiKeyRejected => "api_key_rejected",
            Self::ApiKeyFormat => "api_key_format",
            Self::ApiKeyWrongEnvironment => "api_key_wrong_environment",
            Self::ApiKeysUnavailable => "api_keys_unavailable",
            Self::ApiKeyRateLimited { .. } => "api_key_rate_limited",
            Self::CredentialKindNotAccepted => "credential_kind_not_accepted",
            Self::TenantMismatch => "tenant_mismatch",
            Self::TenantUnresolved => "tenant_unresolved",
            Self::MissingScope => "scope_missing",
            Self::MissingRole => "role_missing",
            Self::DpopProofMissing => "dpop_proof_missing",
            Self::DpopProof(e) => e.as_str(),
            Self::DpopNonce => "dpop_nonce_missing_or_stale",
            Self::DpopReplayed => "dpop_jti_replayed",
            Self::DpopReplayCacheFull => "dpop_replay_cache_full",
        }
    }

    /// The outside answer for this reason.
    pub fn class(self) -> DenialClass {
        match self {
            Self::MissingCredential => DenialClass::NoCredential,
            Self::AmbiguousCredential | Self::CredentialInQuery => DenialClass::InvalidRequest,
            Self::TenantMismatch
            | Self::TenantUnresolved
            | Self::MissingScope
            | Self::MissingRole => DenialClass::InsufficientScope,
            Self::ApiKeyRateLimited { .. } => DenialClass::RateLimited,
            Self::DpopProofMissing
            | Self::DpopProof(_)
            | Self::DpopReplayed
            | Self::DpopReplayCacheFull => DenialClass::InvalidDpopProof,
            Self::DpopNonce => DenialClass::UseDpopNonce,
            _ => DenialClass::InvalidToken,
        }
    }
}

impl From<JoseError> for Reason {
    /// The verifier's reason for a rule of the JOSE crate. Only the access-token profile runs
    /// here; reasons of other profiles cannot arise and fall back to "claims malformed".
    fn from(e: JoseError) -> Self {
        match e {
            JoseError::TooLarge => Self::TooLarge,
            JoseError::Malformed => Self::Malformed,
            JoseError::BadBase64 => Self::BadBase64,
            JoseError::MalformedHeader => Self::MalformedHeader,
            JoseError::MalformedClaims => Self::MalformedClaims,
            JoseError::DuplicateMember => Self::DuplicateMember,
            JoseError::AlgNone => Self::AlgNone,
            JoseError::AlgNotAllowed => Self::AlgNotAllowed,
            JoseError::AlgKeyMismatch => Self::AlgKeyMismatch,
            JoseError::UnsupportedCrit => Self::UnsupportedCrit,
            JoseError::WrongTyp => Self::WrongTyp,
            JoseError::UnknownKid => Self::UnknownKid,
            JoseError::BadSignature => Self::BadSignature,
            JoseError::MissingClaim(c) => Self::MissingClaim(c),
            JoseError::Expired => Self::Expired,
            JoseError::NotYetValid => Self::NotYetValid,
            JoseError::IssuedInFuture => Self::IssuedInFuture,
            JoseError::LifetimeTooLong => Self::LifetimeTooLong,
            JoseError::AudienceMismatch => Self::AudienceMismatch,
            JoseError::IssuerMismatch => Self::UnknownIssuer,
            JoseError::InvalidTenantClaim => Self::InvalidTenantClaim,
            JoseError::UnsupportedConfirmation => Self::UnsupportedConfirmation,
            _ => Self::MalformedClaims,
        }
    }
}

/// A refusal: the reason (internal) and its class (outside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("credential refused: {}", reason.as_str())]
pub struct Denial {
    pub reason: Reason,
}

impl Denial {
    pub fn class(&self) -> DenialClass {
        self.reason.class()
    }
}

impl From<BindingError> for Reason {
    fn from(e: BindingError) -> Self {
        Self::Binding(e)
    }
}

impl From<Reason> for Denial {
    fn from(reason: Reason) -> Self {
        Self { reason }
    }
}

#[cfg(test)]
mod class_tests {
    use super::DenialClass;

    /// `ALL` holds every class once: a new class must be given a position here (the match is
    /// exhaustive in this crate), and that position must exist in `ALL`.
    #[test]
    fn all_lists_every_class_once() {
        let position = |c: DenialClass| match c {
            DenialClass::NoCredential => 0,
            DenialClass::InvalidRequest => 1,
            DenialClass::InvalidToken => 2,
            DenialClass::InsufficientScope => 3,
            DenialClass::RateLimited => 4,
            DenialClass::InvalidDpopProof => 5,
            DenialClass::UseDpopNonce => 6,
        };
        for (i, c) in DenialClass::ALL.into_iter().enumerate() {
            assert_eq!(position(c), i, "{c:?}");
        }
        let names: std::collections::HashSet<_> =
            DenialClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), DenialClass::ALL.len(), "names are distinct");
    }
}
