//! Per-route rate limits: one token bucket per caller (a token's issuer and subject, an API
//! key, or the client address on public routes) at the route's fixed rate, over core's [`Buckets`]. Time is the monotonic
//! clock, counted from when the limiter was built, so wall-clock jumps neither refill nor drain.
//!
//! This module must never be the only defence against unauthenticated floods: it runs after
//! authentication, keyed by who the caller proved to be (see [`portcullis_core::rate_limit`]).

use std::time::Instant;

use portcullis_core::rate_limit::{Buckets, Rate};
use portcullis_core::time::Timestamp;

#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    origin: Instant,
    buckets: Buckets,
}

impl RateLimiter {
    /// `None` unless both figures are positive and finite.
    pub fn new(per_second: f64, burst: f64) -> Option<Self> {
        Some(Self {
            rate: Rate::new(per_second, burst)?,
            origin: Instant::now(),
            buckets: Buckets::default(),
        })
    }

    /// Takes one token for `caller` at `now`; `Err(seconds)` says when one will be available.
    pub fn check(&self, caller: &str, now: Instant) -> Result<(), u64> {
        let ms = now.saturating_duration_since(self.origin).as_millis();
        let now = Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
        self.buckets
            .check(caller, self.rate, now)
            .map_err(|l| l.retry_after_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_per_caller() {
        let l = RateLimiter::new(2.0, 3.0).expect("valid");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check("a", t0), Ok(()));
        }
        assert_eq!(l.check("a", t0), Err(1));
        // Another caller has its own bucket.
        assert_eq!(l.check("b", t0), Ok(()));
        // Half a second at 2/s refills one token.
        assert_eq!(l.check("a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.check("a", t0 + Duration::from_millis(500)).is_err());
        // Never more than the burst, however long the caller was idle.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check("a", later), Ok(()));
        }
        assert!(l.check("a", later).is_err());
        assert!(RateLimiter::new(0.0, 1.0).is_none());
    }
}
