//! The device authorization grant (RFC 8628): the rules of user codes and of a device's polling.
//!
//! A device (the CLI) asks for a device code and a user code; a person types the user code on
//! the verification page, signs in and approves or denies; meanwhile the device polls the token
//! endpoint with the device code. This module decides what a poll gets ([`decide_poll`]): still
//! pending, too fast (`slow_down`, the interval then grows by five seconds for good), expired,
//! denied, already used, or approved (tokens may be issued once). It also makes and reads user
//! codes: eight letters of an alphabet without vowels or look-alikes (RFC 8628 section 6.1),
//! shown as `XXXX-XXXX`, accepted in any case with or without the dash or spaces.
//!
//! This module must never do I/O nor read the clock; the state it judges is what the store
//! holds, so any node reaches the same answer.

use std::time::Duration;

use rand::Rng;

use crate::time::Timestamp;

/// The grant type of the token request (RFC 8628 section 3.4); defined with the other grant
/// names in `oauth`.
pub use crate::oauth::DEVICE_CODE_GRANT;

/// The user-code alphabet: consonants only (no words, no vowel/digit look-alikes), upper case.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Letters in a user code: 20^8, about 34.6 bits, against a throttled, short-lived guess.
pub const USER_CODE_LEN: usize = 8;

/// How long a device code and its user code live (RFC 8628 section 3.2 `expires_in`).
pub const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// The first polling interval (RFC 8628 section 3.2 `interval`; 5 s is the RFC's default).
pub const INITIAL_INTERVAL: Duration = Duration::from_secs(5);

/// What each `slow_down` adds to the interval (RFC 8628 section 3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The longest interval the server asks for: a device that keeps polling too fast is kept at
/// one poll a minute rather than pushed out indefinitely.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// A user code in its canonical form: eight letters of [`USER_CODE_ALPHABET`].
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A pending user code is a short-lived secret; it is not logged.
        f.write_str("UserCode([redacted])")
    }
}

impl UserCode {
    /// A new code from `rng`, each letter uniform over the alphabet.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let code = (0..USER_CODE_LEN)
            .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
            .collect();
        Self(code)
    }

    /// Reads what a person typed: case, dashes and white space do not matter; anything else
    /// outside the alphabet, or the wrong length, is not a code.
    pub fn parse(typed: &str) -> Option<Self> {
        let mut code = String::with_capacity(USER_CODE_LEN);
        for c in typed.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let upper = c.to_ascii_uppercase();
            if !upper.is_ascii() || !USER_CODE_ALPHABET.contains(&(upper as u8)) {
                return None;
            }
            if code.len() == USER_CODE_LEN {
                return None;
            }
            code.push(upper);
        }
        (code.len() == USER_CODE_LEN).then_some(Self(code))
    }

    /// The form shown to people: `BCDF-GHJK`.
    pub fn display(&self) -> String {
        let (a, b) = self.0.split_at(USER_CODE_LEN / 2);
        format!("{a}-{b}")
    }

    /// The canonical letters (what is hashed for storage).
    pub fn canonical(&self) -> &str {
        &self.0
    }
}

/// A device code: 32 random bytes in base64url, handed to the device once; stored only as
/// [`digest`].
pub fn device_code_from_random(random: [u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// The SHA-256 under which a device code or a user code's canonical letters are stored.
pub fn digest(code: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(code.as_bytes()).into()
}

/// The scope a device authorization asks for (RFC 8628 section 3.1): what the client is
/// registered for when it names none; otherwise a non-empty subset of it, or `invalid_scope`.
pub fn requested_scope(
    client: &crate::oauth::ClientPolicy,
    requested: Option<&str>,
) -> Result<crate::oauth::ScopeSet, crate::oauth::GrantError> {
    use crate::oauth::{GrantError, GrantType, ScopeSet};
    if !client.grant_types.contains(&GrantType::DeviceCode) {
        return Err(GrantError::UnauthorizedClient);
    }
    match requested {
        None => Ok(client.scopes.clone()),
        Some(s) => {
            let asked = ScopeSet::parse_delimited(s).map_err(|_| GrantError::InvalidScope)?;
            if asked.is_empty() || !asked.is_subset(&client.scopes) {
                return Err(GrantError::InvalidScope);
            }
            Ok(asked)
        }
    }
}

/// Where a device authorization stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the person.
    Pending,
    /// The person approved; tokens not yet issued.
    Approved,
    /// The person denied.
    Denied,
    /// Tokens were issued: the device code is spent.
    Used,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Used => "used",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Used]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What a poll sees of the stored authorization.
#[derive(Debug, Clone, Copy)]
pub struct PollFacts {
    pub status: DeviceStatus,
    pub expires_at: Timestamp,
    /// The current interval, in seconds.
    pub interval_secs: u64,
    pub last_polled_at: Option<Timestamp>,
}

/// What a poll gets (RFC 8628 section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollDecision {
    /// `authorization_pending`; the poll is recorded at `now`.
    Pending,
    /// `slow_down`: polled before the interval had passed; the interval becomes
    /// `new_interval_secs` and the poll is recorded.
    SlowDown { new_interval_secs: u64 },
    /// `expired_token`.
    Expired,
    /// `access_denied`.
    Denied,
    /// The device code was already exchanged (`invalid_grant`).
    AlreadyUsed,
    /// Approved: the tokens may be issued, once.
    Issue,
}

impl PollDecision {
    /// Whether the poll must be recorded (its time, and the new interval) before answering.
    pub fn records_poll(self) -> bool {
        matches!(self, Self::Pending | Self::SlowDown { .. })
    }
}

/// Judges a poll at `now`. Expiry comes first (an expired code says only that), then a spent
/// code, then the pace: a poll sooner than the interval after the last one is `slow_down`
/// whatever the person decided, so a device cannot learn faster by polling faster.
pub fn decide_poll(f: &PollFacts, now: Timestamp) -> PollDecision {
    if now >= f.expires_at {
        return PollDecision::Expired;
    }
    if f.status == DeviceStatus::Used {
        return PollDecision::AlreadyUsed;
    }
    let interval = Duration::from_secs(f.interval_secs);
    if f.last_polled_at
        .is_some_and(|last| now < last.saturating_add(interval))
    {
        let raised = (f.interval_secs + SLOW_DOWN_STEP.as_secs()).min(MAX_INTERVAL.as_secs());
        return PollDecision::SlowDown {
            new_interval_secs: raised.max(f.interval_secs),
        };
    }
    match f.status {
        DeviceStatus::Pending => PollDecision::Pending,
        DeviceStatus::Denied => PollDecision::Denied,
        DeviceStatus::Approved => PollDecision::Issue,
        DeviceStatus::Used => PollDecision::AlreadyUsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn facts(status: DeviceStatus, last: Option<i64>) -> PollFacts {
        PollFacts {
            status,
            expires_at: Timestamp::from_secs(600),
            interval_secs: 5,
            last_polled_at: last.map(Timestamp::from_secs),
        }
    }

    #[test]
    fn generated_codes_use_only_the_alphabet_and_parse_back() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..200 {
            let c = UserCode::generate(&mut rng);
            assert_eq!(c.canonical().len(), USER_CODE_LEN);
            assert!(c
                .canonical()
                .bytes()
                .all(|b| USER_CODE_ALPHABET.contains(&b)));
            let shown = c.display();
            assert_eq!(shown.len(), USER_CODE_LEN + 1);
            assert_eq!(UserCode::parse(&shown), Some(c.clone()));
            assert_eq!(UserCode::parse(&shown.to_lowercase()), Some(c));
        }
    }

    #[test]
    fn typed_codes_forgive_case_dashes_and_spaces_but_nothing_else() {
        let want = UserCode::parse("BCDFGHJK").expect("valid");
        for typed in ["bcdf-ghjk", " BCDF GHJK ", "bcdfghjk", "BC-DF-GH-JK"] {
            assert_eq!(UserCode::parse(typed).as_ref(), Some(&want), "{typed}");
        }
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "BCDF-GHJA", // a vowel
            "BCDF-GHJ1", // a digit
            "BCDF_GHJK",
            "BCDF-GHJ\u{0130}",
        ] {
            assert_eq!(UserCode::parse(bad), None, "{bad}");
        }
        assert_eq!(format!("{want:?}"), "UserCode([redacted])");
    }

    #[test]
    fn polls_are_paced_and_slow_down_raises_the_interval() {
        let now = Timestamp::from_secs(100);
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Pending, None), now),
            PollDecision::Pending
        );
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Pending, Some(95)), now),
            PollDecision::Pending
        );
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Pending, Some(97)), now),
            PollDecision::SlowDown {
                new_interval_secs: 10
            }
        );
        // Too fast wins over the decision, so polling fast learns nothing sooner.
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Approved, Some(99)), now),
            PollDecision::SlowDown {
                new_interval_secs: 10
            }
        );
        let mut f = facts(DeviceStatus::Pending, Some(99));
        f.interval_secs = 58;
        assert_eq!(
            decide_poll(&f, now),
            PollDecision::SlowDown {
                new_interval_secs: 60
            }
        );
        f.interval_secs = 60;
        assert_eq!(
            decide_poll(&f, now),
            PollDecision::SlowDown {
                new_interval_secs: 60
            }
        );
        assert!(PollDecision::Pending.records_poll());
        assert!(!PollDecision::Issue.records_poll());
    }

    #[test]
    fn each_status_has_its_answer_and_expiry_comes_first() {
        let now = Timestamp::from_secs(100);
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Denied, None), now),
            PollDecision::Denied
        );
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Approved, Some(10)), now),
            PollDecision::Issue
        );
        assert_eq!(
            decide_poll(&facts(DeviceStatus::Used, Some(99)), now),
            PollDecision::AlreadyUsed
        );
        let late = Timestamp::from_secs(600);
        for s in [
            DeviceStatus::Pending,
            DeviceStatus::Approved,
            DeviceStatus::Denied,
            DeviceStatus::Used,
        ] {
            assert_eq!(
                decide_poll(&facts(s, Some(599)), late),
                PollDecision::Expired
            );
            assert_eq!(DeviceStatus::parse(s.as_str()), Some(s));
        }
    }
}
