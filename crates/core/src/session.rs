//! Sign-in sessions as rules: the session's two names (the secret cookie value and the public
//! `sid`), and when a session counts as alive (idle and absolute timeouts).
//!
//! A session has two identifiers on purpose. The cookie carries [`SessionSecret`], 256 random
//! bits that only the browser and (as a SHA-256 digest) storage ever see; tokens, the revocation
//! log, audit events and account pages carry [`SessionId`] (`sid`), which grants nothing. A new
//! pair is made at every sign-in, so a cookie planted before sign-in never becomes a signed-in
//! session (fixation).
//!
//! This module must never read the clock (times come in), store anything, or print a secret.

use std::time::Duration;

use rand::RngCore;

use crate::base62;
use crate::secret::Secret;
use crate::time::Timestamp;

/// Characters of a session secret: 43 base62 characters carry ~256 bits.
const SECRET_LEN: usize = 43;
/// The `sid` prefix and the length of its random part (lowercase letters and digits, ~134 bits).
const SID_PREFIX: &str = "ses_";
const SID_RANDOM_LEN: usize = 26;

/// The cookie value of a session. Debug prints `[redacted]`; storage keeps only [`Self::digest`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(Secret<String>);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}

impl SessionSecret {
    /// A fresh secret. `rng` must be a cryptographically secure generator.
    pub fn generate(rng: &mut dyn RngCore) -> Self {
        Self(Secret::new(base62::random(rng, SECRET_LEN)))
    }

    /// Parses an untrusted cookie value: exactly the shape [`Self::generate`] makes, or nothing
    /// (so garbage never reaches storage).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == SECRET_LEN && base62::is_base62(s)).then(|| Self(Secret::new(s.to_owned())))
    }

    /// SHA-256 of the secret: what storage keys the session by.
    pub fn digest(&self) -> [u8; 32] {
        crate::credential::digest(self.0.expose())
    }

    /// The cookie value, for the `Set-Cookie` header only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A session's public id (`sid` in tokens, the subject of `session` revocation records).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub fn generate(rng: &mut dyn RngCore) -> Self {
        Self(format!("{SID_PREFIX}{}", lower_random(rng, SID_RANDOM_LEN)))
    }

    /// Parses an untrusted or stored `sid`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(SID_PREFIX)?;
        (rest.len() == SID_RANDOM_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `len` characters from `[0-9a-z]`, uniformly (rejection sampling).
pub(crate) fn lower_random(rng: &mut dyn RngCore, len: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            // 252 = 7 * 36: bytes at or above it would bias the first characters.
            if b < 252 {
                out.push(char::from(ALPHABET[usize::from(b % 36)]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

/// How long sessions live. Defaults: 30 minutes idle, 10 hours in all (Keycloak's SSO defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session not seen for this long is over.
    pub idle: Duration,
    /// A session is over this long after sign-in, however active.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(10 * 3600),
        }
    }
}

/// A session's clock: when it began, was last seen, and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// Never later than `absolute_expires_at`.
    pub idle_expires_at: Timestamp,
    pub absolute_expires_at: Timestamp,
}

/// Whether a session is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    IdleExpired,
    AbsoluteExpired,
    Revoked,
}

impl SessionPolicy {
    /// The times of a session signed in at `now`.
    pub fn start(&self, now: Timestamp) -> SessionTimes {
        let absolute = now.saturating_add(self.absolute);
        SessionTimes {
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now.saturating_add(self.idle).min(absolute),
            absolute_expires_at: absolute,
        }
    }

    /// Whether seeing the session at `now` is worth a write: at most one a minute (or per tenth
    /// of the idle timeout, if shorter), so a busy session costs no write per request. The idle
    /// deadline is therefore exact to within that interval, never extended beyond it.
    pub fn touch_due(&self, t: &SessionTimes, now: Timestamp) -> bool {
        let every = (self.idle / 10).min(Duration::from_secs(60));
        now >= t.last_seen_at.saturating_add(every)
    }

    /// The times after the session was seen at `now`: the idle deadline moves, never past the
    /// absolute one, never backwards.
    pub fn touch(&self, t: &SessionTimes, now: Timestamp) -> SessionTimes {
        SessionTimes {
            last_seen_at: t.last_seen_at.max(now),
            idle_expires_at: now
                .saturating_add(self.idle)
                .min(t.absolute_expires_at)
                .max(t.idle_expires_at),
            ..*t
        }
    }
}

impl SessionTimes {
    /// The session's state at `now` (`revoked_at`: when it was ended, if it was).
    pub fn state(&self, revoked_at: Option<Timestamp>, now: Timestamp) -> SessionState {
        if revoked_at.is_some() {
            SessionState::Revoked
        } else if now >= self.absolute_expires_at {
            SessionState::AbsoluteExpired
        } else if now >= self.idle_expires_at {
            SessionState::IdleExpired
        } else {
            SessionState::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    const MIN: Duration = Duration::from_secs(60);

    fn at(min: i64) -> Timestamp {
        Timestamp::from_millis(min * 60_000)
    }

    #[test]
    fn idle_and_absolute_timeouts() {
        let p = SessionPolicy {
            idle: 10 * MIN,
            absolute: 25 * MIN,
        };
        let t = p.start(at(0));
        assert_eq!(t.state(None, at(9)), SessionState::Active);
        assert_eq!(t.state(None, at(10)), SessionState::IdleExpired);
        let t = p.touch(&t, at(9));
        assert_eq!(t.idle_expires_at, at(19));
        assert_eq!(t.state(None, at(18)), SessionState::Active);
        let t = p.touch(&p.touch(&t, at(18)), at(24));
        assert_eq!(
            t.idle_expires_at,
            at(25),
            "never past the absolute deadline"
        );
        assert_eq!(t.state(None, at(25)), SessionState::AbsoluteExpired);
        assert_eq!(t.state(Some(at(1)), at(2)), SessionState::Revoked);
        assert!(p.touch_due(&t, at(25)));
        let minute = t.last_seen_at.saturating_add(Duration::from_secs(60));
        assert!(!p.touch_due(&t, minute.saturating_sub(Duration::from_millis(1))));
        assert!(p.touch_due(&t, minute));
        // A touch from a node with a slower clock never shortens the session.
        let back = p.touch(&t, at(3));
        assert_eq!(back.idle_expires_at, t.idle_expires_at);
        assert_eq!(back.last_seen_at, t.last_seen_at);
    }

    #[test]
    fn secrets_and_ids_parse_only_their_own_shape_and_never_print() {
        let s = SessionSecret::generate(&mut OsRng);
        assert_eq!(SessionSecret::parse(s.expose()), Some(s.clone()));
        assert!(!format!("{s:?}").contains(s.expose()));
        assert_ne!(SessionSecret::generate(&mut OsRng), s);
        for bad in ["", "short", &format!("{}!", &s.expose()[..42])] {
            assert!(SessionSecret::parse(bad).is_none(), "{bad}");
        }
        let id = SessionId::generate(&mut OsRng);
        assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
        assert!(id.as_str().starts_with("ses_") && id.as_str().len() == 30);
        for bad in [
            "ses_",
            "usr_0123456789abcdefghijklmnop",
            "ses_0123456789ABCDEFGHIJKLMNOP",
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad}");
        }
    }
}
