//! How sign-in attempts are slowed down after failures (issue 16 item 10), as a rule: given what
//! is known about recent failures of the account and of the source address, may this attempt
//! check a password now, or must it wait?
//!
//! * Per source (an IPv4 address or an IPv6 /64): after `free_per_source` failures within the
//!   window, each further attempt must wait a delay that doubles with every further failure, from
//!   `base_delay` up to `max_delay`, counted from the source's last failure.
//! * Per account (the login name as typed, normalised, so an unknown name is throttled exactly
//!   like a real one and the throttle tells nothing about which accounts exist): after
//!   `free_per_account` failures the same growing delay applies, **but only to sources that have
//!   failed themselves within the window**. A source with no recent failure is never delayed by
//!   the account's count, so an attacker hammering an account cannot lock its owner out: the
//!   owner's browser, which has not been failing, still gets to try its correct password.
//!   An attacker spread over many addresses gets one free attempt per address and window
//!   before the account's delay applies to that address too.
//!
//! A delay is never a sleep: the attempt is refused with how long to wait, so throttling holds
//! no connection and no hashing worker. This module must never read the clock (times come in)
//! or keep state (the service keeps the counters).

use std::time::Duration;

use crate::time::Timestamp;

/// The throttle's settings; defaults are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures a source may have within the window before it is delayed.
    pub free_per_source: u32,
    /// Failures an account may have within the window before failing sources are delayed.
    pub free_per_account: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// How long a failure counts (a counter with no failure for this long starts over).
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_per_source: 10,
            free_per_account: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            window: Duration::from_secs(900),
        }
    }
}

/// Recent failures of one key (an account or a source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    pub count: u32,
    pub last: Option<Timestamp>,
}

impl Failures {
    /// These failures as of `now`: none if the last one is older than the window.
    pub fn current(self, policy: &ThrottlePolicy, now: Timestamp) -> Self {
        match self.last {
            Some(last) if now.saturating_sub(policy.window) < last => self,
            _ => Self::default(),
        }
    }

    /// One more failure at `now` (a stale count starts over).
    pub fn add(self, policy: &ThrottlePolicy, now: Timestamp) -> Self {
        let cur = self.current(policy, now);
        Self {
            count: cur.count.saturating_add(1),
            last: Some(now),
        }
    }
}

/// What an attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Check the password.
    Attempt,
    /// Refuse without checking; try again after this long.
    Wait(Duration),
}

impl ThrottlePolicy {
    /// The delay after `count` failures when `free` are allowed: none below `free`, then
    /// `base_delay` doubling per further failure, capped at `max_delay`.
    pub fn delay(&self, count: u32, free: u32) -> Duration {
        if count < free.max(1) {
            return Duration::ZERO;
        }
        let doublings = (count - free.max(1)).min(30);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Whether an attempt from a source with `source` failures on an account with `account`
    /// failures may check the password at `now`.
    pub fn decide(&self, source: Failures, account: Failures, now: Timestamp) -> Decision {
        let source = source.current(self, now);
        let account = account.current(self, now);
        let mut wait = Duration::ZERO;
        if let Some(last) = source.last {
            wait = wait.max(remaining(
                last,
                self.delay(source.count, self.free_per_source),
                now,
            ));
            // Only a failing source is held back by the account's failures.
            if let Some(acc_last) = account.last {
                wait = wait.max(remaining(
                    acc_last,
                    self.delay(account.count, self.free_per_account),
                    now,
                ));
            }
        }
        if wait.is_zero() {
            Decision::Attempt
        } else {
            Decision::Wait(wait)
        }
    }
}

fn remaining(last: Timestamp, delay: Duration, now: Timestamp) -> Duration {
    let until = last.saturating_add(delay);
    let ms = until.as_millis().saturating_sub(now.as_millis());
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    fn failures(n: u32, last: i64) -> Failures {
        Failures {
            count: n,
            last: Some(at(last)),
        }
    }

    #[test]
    fn delays_grow_from_the_first_failure_past_the_free_ones_and_stop_at_the_cap() {
        let p = ThrottlePolicy::default();
        assert_eq!(p.delay(4, 5), Duration::ZERO);
        assert_eq!(p.delay(5, 5), Duration::from_secs(1));
        assert_eq!(p.delay(6, 5), Duration::from_secs(2));
        assert_eq!(p.delay(8, 5), Duration::from_secs(8));
        assert_eq!(p.delay(60, 5), Duration::from_secs(300));
        assert_eq!(p.delay(u32::MAX, 5), Duration::from_secs(300));
    }

    #[test]
    fn a_failing_source_waits_and_a_clean_source_never_waits_for_the_account() {
        let p = ThrottlePolicy::default();
        let hammered = failures(50, 100);
        // The owner's browser has not failed: it may try.
        assert_eq!(
            p.decide(Failures::default(), hammered, at(100)),
            Decision::Attempt
        );
        // A source that failed once is held back by the account's count.
        assert_eq!(
            p.decide(failures(1, 99), hammered, at(100)),
            Decision::Wait(Duration::from_secs(300))
        );
        // A source over its own allowance waits whatever the account.
        assert_eq!(
            p.decide(failures(10, 100), Failures::default(), at(100)),
            Decision::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            p.decide(failures(9, 100), Failures::default(), at(100)),
            Decision::Attempt
        );
        assert_eq!(
            p.decide(failures(10, 100), Failures::default(), at(101)),
            Decision::Attempt
        );
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let p = ThrottlePolicy::default();
        let old = failures(50, 0);
        assert_eq!(old.current(&p, at(900)), Failures::default());
        assert_eq!(old.add(&p, at(900)).count, 1);
        assert_eq!(failures(3, 100).add(&p, at(200)).count, 4);
        assert_eq!(p.decide(old, old, at(901)), Decision::Attempt);
    }
}
