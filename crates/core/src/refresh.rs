//! Refresh-token families as rules (RFC 9700 section 4.14.2): what presenting a refresh token
//! may do, given the stored state of the token and its family.
//!
//! A family is born at the code redemption that issued its first refresh token; each refresh
//! rotates: the presented token gets exactly one successor (generation + 1) and is spent.
//! Presenting a spent token again is reuse, the sign of a stolen token: the family is revoked
//! (and a `family` entry written to the revocation log) unless it happens within the short
//! [`RefreshPolicy::grace`] after the rotation, which is two tabs of one browser refreshing at
//! once; those get the same successor. Families end after [`RefreshPolicy::idle`] without a
//! refresh and [`RefreshPolicy::absolute`] after sign-in, whatever happens.
//!
//! A family is named by its [`FamilyId`] (`rtf_...`), which refresh-token revocation entries,
//! access tokens' `family_id` claim and audit events carry; it grants nothing.
//!
//! This module must never read the clock, store anything, or see a token's plaintext.

use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The family id prefix and the length of its random part (lowercase hex, 128 bits).
const FAMILY_ID_PREFIX: &str = "rtf_";
const FAMILY_ID_RANDOM_LEN: usize = 32;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// A refresh-token family's id: `rtf_` and 32 lowercase hex characters (128 random bits).
/// Never reused, never changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FamilyId(String);

impl FamilyId {
    /// A new id; `rng` must be a cryptographically secure generator (ids are not secret, but
    /// must not be guessable in advance either).
    pub fn generate(rng: &mut dyn RngCore) -> Self {
        let mut random = [0u8; FAMILY_ID_RANDOM_LEN / 2];
        rng.fill_bytes(&mut random);
        let mut s = String::with_capacity(FAMILY_ID_PREFIX.len() + FAMILY_ID_RANDOM_LEN);
        s.push_str(FAMILY_ID_PREFIX);
        for b in random {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Self(s)
    }

    /// Parses an untrusted or stored family id: exactly the shape [`Self::generate`] makes.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(FAMILY_ID_PREFIX)?;
        (rest.len() == FAMILY_ID_RANDOM_LEN && rest.bytes().all(|b| HEX.contains(&b)))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FamilyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FamilyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("not a refresh-token family id"))
    }
}

/// The longest grace window that may be configured: beyond it, "two tabs racing" stops being a
/// plausible explanation for a replay.
pub const MAX_GRACE: Duration = Duration::from_secs(60);

/// How long refresh-token families live. Defaults: 14 days idle, 30 days in all, 10 s grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub idle: Duration,
    pub absolute: Duration,
    /// How long after a rotation a replay of the rotated token still gets the same successor.
    /// Capped at [`MAX_GRACE`]; zero turns it off.
    pub grace: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(14 * 86_400),
            absolute: Duration::from_secs(30 * 86_400),
            grace: Duration::from_secs(10),
        }
    }
}

/// A family's deadlines and whether it was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyTimes {
    pub created_at: Timestamp,
    /// Never later than `absolute_expires_at`.
    pub idle_expires_at: Timestamp,
    pub absolute_expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl RefreshPolicy {
    /// The grace window actually applied.
    pub fn effective_grace(&self) -> Duration {
        self.grace.min(MAX_GRACE)
    }

    /// The deadlines of a family started at `now`.
    pub fn start(&self, now: Timestamp) -> FamilyTimes {
        let absolute = now.saturating_add(self.absolute);
        FamilyTimes {
            created_at: now,
            idle_expires_at: now.saturating_add(self.idle).min(absolute),
            absolute_expires_at: absolute,
            revoked_at: None,
        }
    }

    /// The idle deadline to store after a rotation at `now`, or `None` to keep the stored one:
    /// when the new deadline would move it forward by less than [`Self::idle_precision`] (a
    /// family refreshed often then does not rewrite its row at every rotation).
    pub fn idle_after_rotation(&self, f: &FamilyTimes, now: Timestamp) -> Option<Timestamp> {
        let next = now.saturating_add(self.idle).min(f.absolute_expires_at);
        (next >= f.idle_expires_at.saturating_add(self.idle_precision())).then_some(next)
    }

    /// How far a family's stored idle deadline may lag the exact one: 1/64 of the idle lifetime,
    /// at most a minute. A family left unused expires up to this much before its idle lifetime
    /// has passed, never after it.
    pub fn idle_precision(&self) -> Duration {
        (self.idle / 64).min(Duration::from_secs(60))
    }
}

/// The presented token as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    /// The client of its family.
    pub client_id: &'a str,
    /// When it was rotated (its successor issued), if it was.
    pub rotated_at: Option<Timestamp>,
}

/// What presenting a refresh token leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Current token, live family: issue its successor.
    Rotate,
    /// Rotated moments ago (within the grace window): hand out the same successor again.
    WithinGrace,
    /// Rotated before the grace window: a replay. Revoke the family.
    ReusedAfterRotation,
    /// The family was revoked (reuse, sign-out, admin): refuse.
    Revoked,
    IdleExpired,
    AbsoluteExpired,
    /// Presented by a client other than the one it was issued to: refuse, change nothing.
    WrongClient,
}

impl RefreshDecision {
    /// Whether a token is issued (a new successor or the one handed out in the grace window).
    pub fn issues(self) -> bool {
        matches!(self, Self::Rotate | Self::WithinGrace)
    }

    /// The reason recorded in audit events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotate => "rotated",
            Self::WithinGrace => "within_grace",
            Self::ReusedAfterRotation => "reused_after_rotation",
            Self::Revoked => "family_revoked",
            Self::IdleExpired => "family_idle_expired",
            Self::AbsoluteExpired => "family_absolute_expired",
            Self::WrongClient => "wrong_client",
        }
    }
}

/// Decides a refresh by `client_id` at `now`. Order: another client's token changes nothing;
/// a revoked or expired family refuses; a spent token is reuse unless within the grace window.
pub fn decide(
    policy: &RefreshPolicy,
    family: &FamilyTimes,
    token: &PresentedToken<'_>,
    client_id: &str,
    now: Timestamp,
) -> RefreshDecision {
    if token.client_id != client_id {
        return RefreshDecision::WrongClient;
    }
    if family.revoked_at.is_some() {
        return RefreshDecision::Revoked;
    }
    if now >= family.absolute_expires_at {
        return RefreshDecision::AbsoluteExpired;
    }
    if let Some(rotated_at) = token.rotated_at {
        let grace = policy.effective_grace();
        return if !grace.is_zero() && now < rotated_at.saturating_add(grace) {
            RefreshDecision::WithinGrace
        } else {
            RefreshDecision::ReusedAfterRotation
        };
    }
    if now >= family.idle_expires_at {
        return RefreshDecision::IdleExpired;
    }
    RefreshDecision::Rotate
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn family_ids_parse_only_their_own_shape() {
        let id = FamilyId::generate(&mut OsRng);
        assert_eq!(FamilyId::parse(id.as_str()), Some(id.clone()));
        assert!(id.as_str().starts_with("rtf_") && id.as_str().len() == 36);
        assert_ne!(FamilyId::generate(&mut OsRng), id);
        // The ids stored before this type existed (`rtf_` and a simple UUID) still parse.
        assert!(FamilyId::parse("rtf_3f2a7c1e9b8d4f60a1b2c3d4e5f60718").is_some());
        for bad in [
            "",
            "rtf_",
            "rtf_1",
            "ses_3f2a7c1e9b8d4f60a1b2c3d4e5f60718",
            "rtf_3F2A7C1E9B8D4F60A1B2C3D4E5F60718",
            "rtf_3f2a7c1e9b8d4f60a1b2c3d4e5f607189",
        ] {
            assert_eq!(FamilyId::parse(bad), None, "{bad}");
        }
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(
            serde_json::from_str::<FamilyId>(&json).expect("deserialize"),
            id
        );
        assert!(serde_json::from_str::<FamilyId>("\"rtf_1\"").is_err());
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            idle: Duration::from_secs(100),
            absolute: Duration::from_secs(250),
            grace: Duration::from_secs(5),
        }
    }

    const FRESH: PresentedToken<'static> = PresentedToken {
        client_id: "cl_app",
        rotated_at: None,
    };

    #[test]
    fn a_current_token_of_a_live_family_rotates() {
        let p = policy();
        let f = p.start(at(0));
        assert_eq!(
            decide(&p, &f, &FRESH, "cl_app", at(99)),
            RefreshDecision::Rotate
        );
        assert!(RefreshDecision::Rotate.issues());
    }

    #[test]
    fn the_idle_deadline_is_rewritten_only_when_it_moves_by_its_precision() {
        let p = RefreshPolicy::default();
        assert_eq!(
            p.idle_precision(),
            Duration::from_secs(60),
            "at most a minute"
        );
        let f = p.start(at(0));
        assert_eq!(p.idle_after_rotation(&f, at(59)), None);
        assert_eq!(
            p.idle_after_rotation(&f, at(60)),
            Some(at(60).saturating_add(p.idle))
        );
        // A short idle lifetime gets a proportionally short precision.
        assert_eq!(policy().idle_precision(), Duration::from_micros(1_562_500));
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let p = policy();
        let mut f = p.start(at(0));
        assert_eq!(
            decide(&p, &f, &FRESH, "cl_app", at(100)),
            RefreshDecision::IdleExpired
        );
        f.idle_expires_at = p.idle_after_rotation(&f, at(99)).expect("moves");
        assert_eq!(f.idle_expires_at, at(199));
        // Within the precision of the stored deadline: kept, never moved back.
        assert!(p.idle_precision() > Duration::ZERO);
        assert_eq!(p.idle_after_rotation(&f, at(99)), None);
        assert_eq!(p.idle_after_rotation(&f, at(50)), None);
        f.idle_expires_at = p.idle_after_rotation(&f, at(198)).expect("moves");
        assert_eq!(
            f.idle_expires_at,
            at(250),
            "never past the absolute deadline"
        );
        assert_eq!(
            decide(&p, &f, &FRESH, "cl_app", at(249)),
            RefreshDecision::Rotate
        );
        assert_eq!(
            decide(&p, &f, &FRESH, "cl_app", at(250)),
            RefreshDecision::AbsoluteExpired
        );
    }

    #[test]
    fn a_spent_token_is_reuse_outside_the_grace_window_and_the_same_successor_within() {
        let p = policy();
        let f = p.start(at(0));
        let spent = PresentedToken {
            rotated_at: Some(at(10)),
            ..FRESH
        };
        assert_eq!(
            decide(&p, &f, &spent, "cl_app", at(14)),
            RefreshDecision::WithinGrace
        );
        assert_eq!(
            decide(&p, &f, &spent, "cl_app", at(15)),
            RefreshDecision::ReusedAfterRotation
        );
        let off = RefreshPolicy {
            grace: Duration::ZERO,
            ..p
        };
        assert_eq!(
            decide(&off, &f, &spent, "cl_app", at(10)),
            RefreshDecision::ReusedAfterRotation
        );
        let huge = RefreshPolicy {
            grace: Duration::from_secs(3600),
            ..p
        };
        assert_eq!(huge.effective_grace(), MAX_GRACE);
        assert_eq!(
            decide(&huge, &f, &spent, "cl_app", at(71)),
            RefreshDecision::ReusedAfterRotation
        );
    }

    #[test]
    fn revoked_families_and_other_clients_are_refused() {
        let p = policy();
        let mut f = p.start(at(0));
        assert_eq!(
            decide(&p, &f, &FRESH, "cl_other", at(1)),
            RefreshDecision::WrongClient
        );
        f.revoked_at = Some(at(2));
        assert_eq!(
            decide(&p, &f, &FRESH, "cl_app", at(3)),
            RefreshDecision::Revoked
        );
        let spent = PresentedToken {
            rotated_at: Some(at(3)),
            ..FRESH
        };
        assert_eq!(
            decide(&p, &f, &spent, "cl_app", at(4)),
            RefreshDecision::Revoked,
            "no grace once the family is revoked"
        );
        for d in [
            RefreshDecision::ReusedAfterRotation,
            RefreshDecision::Revoked,
            RefreshDecision::IdleExpired,
            RefreshDecision::AbsoluteExpired,
            RefreshDecision::WrongClient,
        ] {
            assert!(!d.issues(), "{}", d.as_str());
        }
    }
}
