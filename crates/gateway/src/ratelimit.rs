//! Per-route rate limits: a token bucket per caller (credential id, or client address on
//! public routes). Pure arithmetic over a time the caller passes in, so it is unit-testable.
//!
//! Memory is bounded: past `MAX_CALLERS` tracked callers, full (idle) buckets are forgotten;
//! if that frees nothing, the table is cleared, which briefly lets callers burst again but never
//! grows without bound. This module must never be the only defence against unauthenticated
//! floods: it runs after authentication, keyed by who the caller proved to be.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const MAX_CALLERS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    callers: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst: burst.max(1.0),
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `caller` at `now`; `Err(seconds)` says when one will be available.
    pub fn check(&self, caller: &str, now: Instant) -> Result<(), u64> {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if callers.len() >= MAX_CALLERS && !callers.contains_key(caller) {
            let (rate, burst) = (self.per_second, self.burst);
            callers.retain(|_, b| b.tokens + rate * now.duration_since(b.at).as_secs_f64() < burst);
            if callers.len() >= MAX_CALLERS {
                callers.clear();
            }
        }
        let b = callers.entry(caller.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_per_caller() {
        let l = RateLimiter::new(2.0, 3.0);
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
    }
}
