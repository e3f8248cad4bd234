//! The JWS algorithms Portcullis knows: the five it verifies, of which three it signs.
//!
//! Symmetric (`HS*`) algorithms are absent on purpose: every party holds only public keys of the
//! others, so an HMAC token can never be valid here (this is what defeats HS/RS key confusion).
//! `none` is not an algorithm. This module must never grow an algorithm without the vector
//! tests of `tests/it/vectors.rs` covering it.

use std::fmt;

use portcullis_core::signing::SigningAlgorithm;

/// A signature algorithm (RFC 7518 section 3, RFC 8037 for EdDSA over Ed25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    ES256,
    ES384,
    RS256,
    PS256,
    EdDSA,
}

impl Alg {
    /// Every algorithm a verifier may accept.
    pub const ALL: [Self; 5] = [
        Self::ES256,
        Self::ES384,
        Self::RS256,
        Self::PS256,
        Self::EdDSA,
    ];

    /// The algorithms Portcullis signs with (the token service's keys and the gateway's
    /// identity key).
    pub const SIGNING: [Self; 3] = [Self::ES256, Self::EdDSA, Self::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named exactly `s` (case-sensitive, RFC 7515 section 4.1.1).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether Portcullis can sign with this algorithm.
    pub fn can_sign(self) -> bool {
        Self::SIGNING.contains(&self)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SigningAlgorithm> for Alg {
    fn from(a: SigningAlgorithm) -> Self {
        match a {
            SigningAlgorithm::ES256 => Self::ES256,
            SigningAlgorithm::RS256 => Self::RS256,
            SigningAlgorithm::EdDSA => Self::EdDSA,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Alg::ALL {
            assert_eq!(Alg::parse(a.as_str()), Some(a));
        }
        for bad in ["es256", "none", "HS256", "RS384", ""] {
            assert_eq!(Alg::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_signing_set_is_what_the_token_service_and_gateway_sign_with() {
        for s in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::EdDSA,
        ] {
            assert!(Alg::from(s).can_sign(), "{s}");
            assert_eq!(Alg::from(s).as_str(), s.as_str());
        }
        assert!(!Alg::ES384.can_sign());
        assert!(!Alg::PS256.can_sign());
    }
}
