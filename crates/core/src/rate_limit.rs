//! Token buckets per caller: the arithmetic behind every rate limit Portcullis enforces (a
//! gateway route's limit, an API key's own limit).
//!
//! Each caller has a bucket holding up to `burst` tokens that refills at `per_second`; a request
//! takes one token or is refused with the number of whole seconds until one is available. The
//! rate is passed with every check, so one table can hold callers with different limits (each
//! API key has its own) and a changed limit applies at once.
//!
//! Time is a [`Timestamp`] the caller passes in (a clock reading or a monotonic count of
//! milliseconds); a reading earlier than the last one counts as no time passed, never as a refill.
//!
//! Memory is bounded: past `max_callers` tracked callers, full (idle) buckets are forgotten; if
//! that frees nothing, the table is cleared, which briefly lets callers burst again but never
//! grows without bound. This module must never be the only defence against unauthenticated
//! floods: callers key it by who a request proved to be, after authentication.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::Timestamp;

/// The default bound on tracked callers.
pub const DEFAULT_MAX_CALLERS: usize = 100_000;

/// A refill rate and a bucket size. Construct with [`Rate::new`], which refuses non-positive or
/// non-finite values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: f64,
}

impl Rate {
    /// `per_second` tokens refilled each second, at most `burst` (at least 1) held.
    pub fn new(per_second: f64, burst: f64) -> Option<Self> {
        let valid = |v: f64| v.is_finite() && v > 0.0;
        (valid(per_second) && valid(burst)).then(|| Self {
            per_second,
            burst: burst.max(1.0),
        })
    }

    /// A rate fixed in the code: used in a `const`, a non-positive, non-finite or under-1 burst
    /// value fails the build instead of a request.
    pub const fn constant(per_second: f64, burst: f64) -> Self {
        assert!(per_second.is_finite() && per_second > 0.0);
        assert!(burst.is_finite() && burst >= 1.0);
        Self { per_second, burst }
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    pub fn burst(&self) -> f64 {
        self.burst
    }
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds (at least 1) until the bucket holds a token again: the `Retry-After` value.
    pub retry_after_secs: u64,
    /// True for the first refusal since the caller's last admitted request: the start of a
    /// limited stretch. Lets callers log or audit a flood once rather than per request.
    pub first: bool,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
    limited: bool,
    /// The rate of the last check, so a sweep judges each bucket by its own limit.
    rate: Rate,
}

/// One bucket per caller; see the module documentation.
#[derive(Debug)]
pub struct Buckets {
    max_callers: usize,
    callers: Mutex<HashMap<String, Bucket>>,
}

impl Default for Buckets {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CALLERS)
    }
}

impl Buckets {
    pub fn new(max_callers: usize) -> Self {
        Self {
            max_callers: max_callers.max(1),
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `caller`'s bucket at `now`, under `rate`.
    pub fn check(&self, caller: &str, rate: Rate, now: Timestamp) -> Result<(), Limited> {
        // A poisoned lock only means a panic mid-update of derived counters; carry on.
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if callers.len() >= self.max_callers && !callers.contains_key(caller) {
            // A bucket that has refilled to its burst cannot be told from a new one: forget it.
            callers.retain(|_, b| b.tokens + refill(b.rate, b.at, now) < b.rate.burst);
            if callers.len() >= self.max_callers {
                callers.clear();
            }
        }
        let b = callers.entry(caller.to_owned()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
            limited: false,
            rate,
        });
        b.rate = rate;
        b.tokens = (b.tokens + refill(rate, b.at, now)).min(rate.burst);
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.limited = false;
            return Ok(());
        }
        let wait = (1.0 - b.tokens) / rate.per_second;
        let first = !b.limited;
        b.limited = true;
        Err(Limited {
            retry_after_secs: (wait.ceil() as u64).max(1),
            first,
        })
    }

    /// How many callers are tracked.
    pub fn len(&self) -> usize {
        self.callers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tokens earned between `from` and `to`; none when time went backwards.
fn refill(rate: Rate, from: Timestamp, to: Timestamp) -> f64 {
    let elapsed_ms = to.as_millis().saturating_sub(from.as_millis()).max(0);
    elapsed_ms as f64 / 1000.0 * rate.per_second
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn rate(per_second: f64, burst: f64) -> Rate {
        Rate::new(per_second, burst).expect("valid rate")
    }

    #[test]
    fn bursts_then_refills_per_caller() {
        let buckets = Buckets::default();
        let r = rate(2.0, 3.0);
        for _ in 0..3 {
            assert_eq!(buckets.check("a", r, at(0)), Ok(()));
        }
        assert_eq!(
            buckets.check("a", r, at(0)),
            Err(Limited {
                retry_after_secs: 1,
                first: true
            })
        );
        // Another caller has its own bucket.
        assert_eq!(buckets.check("b", r, at(0)), Ok(()));
        // Half a second at 2/s refills one token.
        assert_eq!(buckets.check("a", r, at(500)), Ok(()));
        assert!(buckets.check("a", r, at(500)).is_err());
        // Never more than the burst, however long the caller was idle.
        for _ in 0..3 {
            assert_eq!(buckets.check("a", r, at(3_600_000)), Ok(()));
        }
        assert!(buckets.check("a", r, at(3_600_000)).is_err());
    }

    #[test]
    fn only_the_first_refusal_of_a_stretch_is_marked_first() {
        let buckets = Buckets::default();
        let r = rate(1.0, 1.0);
        assert_eq!(buckets.check("k", r, at(0)), Ok(()));
        let first = buckets.check("k", r, at(0)).expect_err("limited");
        let second = buckets.check("k", r, at(10)).expect_err("limited");
        assert!(first.first && !second.first);
        // An admitted request ends the stretch; the next refusal starts a new one.
        assert_eq!(buckets.check("k", r, at(1_000)), Ok(()));
        assert!(buckets.check("k", r, at(1_000)).expect_err("limited").first);
    }

    #[test]
    fn retry_after_is_whole_seconds_until_the_next_token() {
        let buckets = Buckets::default();
        // 10 per minute: one token every 6 seconds.
        let r = rate(10.0 / 60.0, 10.0);
        for _ in 0..10 {
            assert_eq!(buckets.check("k", r, at(0)), Ok(()));
        }
        assert_eq!(
            buckets
                .check("k", r, at(0))
                .expect_err("limited")
                .retry_after_secs,
            6
        );
        assert_eq!(
            buckets
                .check("k", r, at(4_500))
                .expect_err("limited")
                .retry_after_secs,
            2
        );
        assert_eq!(buckets.check("k", r, at(6_000)), Ok(()));
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let buckets = Buckets::default();
        let r = rate(1.0, 1.0);
        assert_eq!(buckets.check("k", r, at(10_000)), Ok(()));
        assert!(buckets.check("k", r, at(0)).is_err());
        // The bucket remembers the latest reading: 10 s back is not 10 s of refill.
        assert!(buckets.check("k", r, at(10_500)).is_err());
        assert_eq!(buckets.check("k", r, at(11_000)), Ok(()));
    }

    #[test]
    fn a_lowered_limit_applies_at_once() {
        let buckets = Buckets::default();
        assert_eq!(buckets.check("k", rate(100.0, 100.0), at(0)), Ok(()));
        // The burst shrinks to 2: the 99 tokens left are clamped to it.
        let low = rate(1.0, 2.0);
        assert_eq!(buckets.check("k", low, at(0)), Ok(()));
        assert_eq!(buckets.check("k", low, at(0)), Ok(()));
        assert!(buckets.check("k", low, at(0)).is_err());
    }

    #[test]
    fn the_table_never_grows_past_its_bound() {
        let buckets = Buckets::new(10);
        let r = rate(1.0, 5.0);
        for i in 0..1_000 {
            let _ = buckets.check(&format!("caller-{i}"), r, at(0));
            assert!(buckets.len() <= 10);
        }
        // Busy (not full) buckets survive a sweep while idle ones are forgotten.
        let small = Buckets::new(3);
        for _ in 0..5 {
            let _ = small.check("busy", r, at(0));
        }
        let _ = small.check("idle-1", r, at(0));
        let _ = small.check("idle-2", r, at(0));
        // "idle-1"/"idle-2" hold 4 of 5 tokens; after 1 s they are full again and forgotten.
        let _ = small.check("new", r, at(1_000));
        assert_eq!(small.len(), 2);
        assert!(small.check("busy", r, at(1_000)).is_ok());
        assert!(
            small.check("busy", r, at(1_000)).is_err(),
            "busy kept its state"
        );
    }

    #[test]
    fn a_sweep_judges_each_bucket_by_its_own_limit() {
        let buckets = Buckets::new(2);
        // A drained bucket with a large burst: 1 of 100 tokens left.
        let big = rate(1.0, 100.0);
        for _ in 0..99 {
            assert_eq!(buckets.check("drained", big, at(0)), Ok(()));
        }
        let _ = buckets.check("other", big, at(0));
        // A second later "other" is full again (forgettable) and "drained" holds 2 tokens. A
        // newcomer with a burst of 1 forces a sweep: "drained" holds more than the newcomer's
        // burst but is far from its own, so it must survive with its state.
        let _ = buckets.check("newcomer", rate(1.0, 1.0), at(1_000));
        assert_eq!(buckets.check("drained", big, at(1_000)), Ok(()));
        assert_eq!(buckets.check("drained", big, at(1_000)), Ok(()));
        assert!(
            buckets.check("drained", big, at(1_000)).is_err(),
            "the drained bucket was reset by the sweep"
        );
    }

    #[test]
    fn invalid_rates_are_refused() {
        for (p, b) in [
            (0.0, 1.0),
            (-1.0, 1.0),
            (f64::NAN, 1.0),
            (1.0, 0.0),
            (1.0, f64::INFINITY),
        ] {
            assert!(Rate::new(p, b).is_none(), "{p} {b}");
        }
        assert_eq!(rate(1.0, 0.5).burst(), 1.0);
    }
}
