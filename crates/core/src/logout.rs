//! Logout rules (OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0), with no
//! I/O: where a logout may send the browser ([`post_logout_redirect`]), whether to ask the user
//! first ([`needs_confirmation`]), and what to do after a failed back-channel delivery
//! ([`DeliveryPolicy::after_failure`]).
//!
//! This module must never allow a redirect to a URI the client did not register character for
//! character (no prefix, suffix, case or normalisation match: an open redirect through logout),
//! and never retry a delivery forever.

use std::time::Duration;

/// The `post_logout_redirect_uri` to send the browser to, if any: only one the client
/// registered, compared exactly. `None` (show the signed-out page) for no request, no
/// identified client or anything unregistered.
pub fn post_logout_redirect<'a>(
    registered: &[String],
    requested: Option<&'a str>,
) -> Option<&'a str> {
    let requested = requested?;
    registered
        .iter()
        .any(|r| r.as_str() == requested)
        .then_some(requested)
}

/// What RP-initiated logout learnt about the request against the browser's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintMatch {
    /// No `id_token_hint` was sent.
    Missing,
    /// The hint (one of our ID tokens) names the session the browser holds.
    SameSession,
    /// The hint names another session or user (or carries no `sid`).
    OtherSession,
}

/// Whether the user must confirm before the session ends: always unless the request carries
/// one of our ID tokens for the very session the browser holds (otherwise a third-party page
/// could sign the user out by linking here; section 2 of RP-Initiated Logout).
pub fn needs_confirmation(hint: HintMatch) -> bool {
    hint != HintMatch::SameSession
}

/// How back-channel logout deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Attempts in all, the first included; then the delivery is given up.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub first_retry: Duration,
    /// Longest delay between two attempts.
    pub max_retry: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(600),
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this delay.
    RetryIn(Duration),
    /// The last attempt failed: give the delivery up (and record that).
    GiveUp,
}

impl DeliveryPolicy {
    /// After attempt number `attempts` (1 for the first) failed.
    pub fn after_failure(&self, attempts: u32) -> AfterFailure {
        if attempts >= self.max_attempts {
            return AfterFailure::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self
            .first_retry
            .saturating_mul(1u32 << doublings)
            .min(self.max_retry);
        AfterFailure::RetryIn(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exactly_registered_uri_is_a_redirect() {
        let registered = vec![
            "https://app.example/bye".to_owned(),
            "http://127.0.0.1:8400/out".to_owned(),
        ];
        assert_eq!(
            post_logout_redirect(&registered, Some("https://app.example/bye")),
            Some("https://app.example/bye")
        );
        for bad in [
            "https://app.example/bye/",
            "https://app.example/bye?x=1",
            "https://app.example/bye#f",
            "https://app.example/by",
            "https://app.example/byeX",
            "https://APP.example/bye",
            "https://app.example.evil/bye",
            "https://evil.example/?https://app.example/bye",
            "https://user@app.example/bye",
            "http://app.example/bye",
            "https://app.example:443/bye",
            "http://127.0.0.1:8401/out",
            "",
        ] {
            assert_eq!(post_logout_redirect(&registered, Some(bad)), None, "{bad}");
        }
        assert_eq!(post_logout_redirect(&registered, None), None);
        assert_eq!(
            post_logout_redirect(&[], Some("https://app.example/bye")),
            None
        );
    }

    #[test]
    fn confirmation_unless_the_hint_names_this_session() {
        assert!(needs_confirmation(HintMatch::Missing));
        assert!(needs_confirmation(HintMatch::OtherSession));
        assert!(!needs_confirmation(HintMatch::SameSession));
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let p = DeliveryPolicy {
            max_attempts: 4,
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(15),
        };
        assert_eq!(
            p.after_failure(1),
            AfterFailure::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(
            p.after_failure(2),
            AfterFailure::RetryIn(Duration::from_secs(10))
        );
        assert_eq!(
            p.after_failure(3),
            AfterFailure::RetryIn(Duration::from_secs(15))
        );
        assert_eq!(p.after_failure(4), AfterFailure::GiveUp);
        assert_eq!(p.after_failure(u32::MAX), AfterFailure::GiveUp);
        let long = DeliveryPolicy {
            max_attempts: u32::MAX,
            ..p
        };
        assert_eq!(
            long.after_failure(1_000),
            AfterFailure::RetryIn(Duration::from_secs(15))
        );
    }
}
