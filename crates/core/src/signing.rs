//! Signing keys as the core sees them: algorithms and the key lifecycle.
//!
//! A key is `pending` (published in JWKS, not yet signing), then `active` (the one key that signs),
//! then `retired` (still published until every token it signed has expired), and finally gone
//! from JWKS. `revoked` is the compromise path: unpublished at once. No cryptography happens here.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    ES256,
    RS256,
    EdDSA,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }
}

/// The two lanes of signing keys, each with at most one active key (a unique index in the
/// store): RS256, and every other algorithm. The installation's algorithm signs access tokens;
/// when it is not RS256, the RS256 lane holds a companion key that only signs the ID tokens of
/// clients registered for RS256 (OpenID Connect Core section 15.1 makes RS256 the one algorithm
/// every relying party can check). The lanes rotate on the same schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyLane {
    Rs256,
    Other,
}

impl KeyLane {
    pub fn of(alg: SigningAlgorithm) -> Self {
        match alg {
            SigningAlgorithm::RS256 => Self::Rs256,
            SigningAlgorithm::ES256 | SigningAlgorithm::EdDSA => Self::Other,
        }
    }

    /// The lanes an installation signing with `primary` keeps active keys in: the primary's,
    /// then the RS256 companion's if that is another lane.
    pub fn in_use(primary: SigningAlgorithm) -> Vec<(Self, SigningAlgorithm)> {
        let mut lanes = vec![(Self::of(primary), primary)];
        if Self::of(primary) != Self::Rs256 {
            lanes.push((Self::Rs256, SigningAlgorithm::RS256));
        }
        lanes
    }

    pub fn holds(self, alg: SigningAlgorithm) -> bool {
        Self::of(alg) == self
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Pending,
    Active,
    Retired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }

    /// Whether the key's private half must still be loadable (and so decryptable).
    pub fn needs_private_key(self) -> bool {
        matches!(self, Self::Pending | Self::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::EdDSA,
        ] {
            assert_eq!(SigningAlgorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(SigningAlgorithm::parse("none"), None);
        assert_eq!(SigningAlgorithm::parse("HS256"), None);
        for s in [
            KeyState::Pending,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Revoked,
        ] {
            assert_eq!(KeyState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn rs256_has_a_lane_of_its_own_and_is_always_in_use() {
        assert_eq!(KeyLane::of(SigningAlgorithm::RS256), KeyLane::Rs256);
        assert_eq!(KeyLane::of(SigningAlgorithm::ES256), KeyLane::Other);
        assert_eq!(KeyLane::of(SigningAlgorithm::EdDSA), KeyLane::Other);
        assert_eq!(
            KeyLane::in_use(SigningAlgorithm::ES256),
            [
                (KeyLane::Other, SigningAlgorithm::ES256),
                (KeyLane::Rs256, SigningAlgorithm::RS256)
            ]
        );
        assert_eq!(
            KeyLane::in_use(SigningAlgorithm::RS256),
            [(KeyLane::Rs256, SigningAlgorithm::RS256)]
        );
        assert!(KeyLane::Other.holds(SigningAlgorithm::EdDSA));
        assert!(!KeyLane::Other.holds(SigningAlgorithm::RS256));
    }

    #[test]
    fn only_signing_capable_states_need_the_private_key() {
        assert!(KeyState::Active.needs_private_key());
        assert!(KeyState::Pending.needs_private_key());
        assert!(!KeyState::Retired.needs_private_key());
        assert!(!KeyState::Revoked.needs_private_key());
    }
}
