//! PKCE (RFC 7636) with `S256` only: the challenge an authorization request carries and the
//! verifier the token request proves it with.
//!
//! `plain` is never accepted, for any client: it protects nothing once the authorization request
//! is seen (RFC 9700 section 2.1.1). The verifier is a secret: it cannot be cloned, prints as
//! `[redacted]`, and is compared only through its digest, in constant time. This module must
//! never compare a verifier or challenge other than in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::secret::{constant_time_eq, Secret};

/// The only `code_challenge_method` accepted.
pub const S256: &str = "S256";

/// Why a PKCE value is refused. Client-facing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge must be the base64url SHA-256 of the code_verifier: 43 characters")]
    BadChallenge,
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    BadVerifier,
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// A `code_challenge` for method `S256`: the unpadded base64url encoding of 32 bytes, in its
/// one canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub fn parse(s: &str) -> Result<Self, PkceError> {
        // The decoder refuses padding, non-alphabet characters and non-zero trailing bits, so
        // one digest has exactly one accepted spelling.
        match URL_SAFE_NO_PAD.decode(s) {
            Ok(bytes) if bytes.len() == 32 && s.len() == 43 => Ok(Self(s.to_owned())),
            _ => Err(PkceError::BadChallenge),
        }
    }

    /// The challenge a verifier produces (what a client computes).
    pub fn of(verifier: &CodeVerifier) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.0.expose().as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` is the one this challenge was made from (constant time).
    pub fn verify(&self, verifier: &CodeVerifier) -> Result<(), PkceError> {
        let expected = Self::of(verifier);
        if constant_time_eq(expected.0.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }
}

/// A `code_verifier` (RFC 7636 section 4.1): 43 to 128 unreserved characters. A secret until
/// the code is redeemed.
pub struct CodeVerifier(Secret<String>);

impl CodeVerifier {
    pub fn parse(s: &str) -> Result<Self, PkceError> {
        let ok = (43..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok {
            Ok(Self(Secret::new(s.to_owned())))
        } else {
            Err(PkceError::BadVerifier)
        }
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier([redacted])")
    }
}

/// The token endpoint's PKCE check of a code bound to `challenge`: the verifier must be present,
/// well formed and match. Every failure is `invalid_grant` there.
pub fn check(challenge: &CodeChallenge, verifier: Option<&str>) -> Result<(), PkceError> {
    let verifier = CodeVerifier::parse(verifier.unwrap_or(""))?;
    challenge.verify(&verifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc7636_example_verifies() {
        let v = CodeVerifier::parse(RFC_VERIFIER).expect("verifier");
        let c = CodeChallenge::parse(RFC_CHALLENGE).expect("challenge");
        assert_eq!(CodeChallenge::of(&v), c);
        assert_eq!(c.verify(&v), Ok(()));
        assert_eq!(check(&c, Some(RFC_VERIFIER)), Ok(()));
    }

    #[test]
    fn a_wrong_missing_or_malformed_verifier_fails() {
        let c = CodeChallenge::parse(RFC_CHALLENGE).expect("challenge");
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl";
        assert_eq!(check(&c, Some(other)), Err(PkceError::Mismatch));
        assert_eq!(check(&c, None), Err(PkceError::BadVerifier));
        assert_eq!(check(&c, Some("")), Err(PkceError::BadVerifier));
        // The plain method: the challenge itself sent as the verifier.
        assert_eq!(check(&c, Some(RFC_CHALLENGE)), Err(PkceError::Mismatch));
        for bad in [
            "a".repeat(42),                 // too short
            "a".repeat(129),                // too long
            format!("{}+", "a".repeat(43)), // not unreserved
            format!("{} ", "a".repeat(43)),
            format!("{}é", "a".repeat(43)),
            format!("{}%41", "a".repeat(43)),
        ] {
            assert_eq!(
                CodeVerifier::parse(&bad).map(|_| ()),
                Err(PkceError::BadVerifier),
                "{bad:?}"
            );
        }
        for ok in ["a".repeat(43), "~".repeat(128), "A-._~9".repeat(8)] {
            assert!(CodeVerifier::parse(&ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn challenges_have_one_canonical_spelling() {
        for bad in [
            "",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", // 42
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=", // padding
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", // standard alphabet
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN", // non-zero trailing bits
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw.cM", // not base64url
        ] {
            assert_eq!(
                CodeChallenge::parse(bad),
                Err(PkceError::BadChallenge),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_verifier_never_prints() {
        let v = CodeVerifier::parse(RFC_VERIFIER).expect("verifier");
        assert!(!format!("{v:?}").contains("dBjf"));
    }
}
