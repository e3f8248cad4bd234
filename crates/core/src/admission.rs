//! Admission to the password-hashing pool, bounded by the wait a new sign-in can expect rather
//! than by the length of the queue alone.
//!
//! A count-bounded queue admits as many sign-ins when hashes take 300 ms as when they take
//! 30 ms: at three times the sustainable rate, a queue of 64 on a small machine admitted sign-ins
//! whose p99 was 1.2-1.3 s (issue 16). The rule here admits a hash only while the work ahead of
//! it, `(queued + running) x mean hash time / workers`, is below a bound (700 ms by default, so
//! an admitted sign-in's hash starts well within a second); anything beyond is refused at once
//! with the wait to come back after (`Retry-After`). The queue length stays as a hard cap.
//!
//! Pure arithmetic: durations in, a decision out. This module must never read a clock or sleep;
//! the pool measures hash times and feeds them to [`MeanHashTime`].

use std::time::Duration;

/// The smoothing of the moving average: each new hash time weighs 1/8.
const WEIGHT_SHIFT: u32 = 3;

/// An exponentially weighted moving average of how long one hash takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanHashTime {
    micros: u64,
}

impl MeanHashTime {
    /// Starts at `initial` (an estimate until the first hashes are measured).
    pub fn new(initial: Duration) -> Self {
        Self {
            micros: micros(initial),
        }
    }

    pub fn from_micros(micros: u64) -> Self {
        Self { micros }
    }

    pub fn as_micros(self) -> u64 {
        self.micros
    }

    pub fn get(self) -> Duration {
        Duration::from_micros(self.micros)
    }

    /// Folds one measured hash time into the average.
    #[must_use]
    pub fn record(self, took: Duration) -> Self {
        let avg = self.micros;
        Self {
            micros: avg - (avg >> WEIGHT_SHIFT) + (micros(took) >> WEIGHT_SHIFT),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What the pool does with one more hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queue it: the work ahead of it is within the bound.
    Yes,
    /// Refuse it now; come back after this long (whole seconds, at least one).
    No { retry_after: Duration },
}

/// The rule: admit while `in_flight x mean / workers < bound`, where `in_flight` counts the
/// hashes queued and running; refused callers are told to wait until the work ahead drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The largest expected wait before a new hash starts.
    pub max_expected_wait: Duration,
    /// Hashing threads (at least 1 is assumed).
    pub workers: u64,
}

impl Admission {
    /// The wait a hash admitted now can expect before a worker takes it.
    pub fn expected_wait(&self, in_flight: u64, mean: MeanHashTime) -> Duration {
        let workers = self.workers.max(1);
        Duration::from_micros(mean.as_micros().saturating_mul(in_flight) / workers)
    }

    pub fn decide(&self, in_flight: u64, mean: MeanHashTime) -> Admit {
        let wait = self.expected_wait(in_flight, mean);
        if wait < self.max_expected_wait {
            return Admit::Yes;
        }
        Admit::No {
            retry_after: Duration::from_secs(micros(wait).div_ceil(1_000_000).max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Clock, ManualClock, Timestamp};

    /// Hash times as the pool measures them, on a clock the test moves.
    fn measured(clock: &ManualClock, took: Duration) -> Duration {
        let start = clock.now();
        clock.advance(took);
        Duration::from_millis(
            u64::try_from(clock.now().as_millis() - start.as_millis()).expect("forward"),
        )
    }

    #[test]
    fn the_mean_follows_measured_hash_times() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        let mut mean = MeanHashTime::new(Duration::from_millis(50));
        for _ in 0..64 {
            mean = mean.record(measured(&clock, Duration::from_millis(200)));
        }
        let ms = mean.get().as_millis();
        assert!((195..=200).contains(&ms), "{ms}");
    }

    #[test]
    fn admission_is_bounded_by_expected_wait_not_queue_length() {
        let clock = ManualClock::new(Timestamp::from_secs(1_000));
        let rule = Admission {
            max_expected_wait: Duration::from_millis(700),
            workers: 2,
        };
        // Fast hashes (50 ms): 27 in flight is 675 ms of work ahead on two workers, admitted;
        // 28 is 700 ms, refused.
        let fast = MeanHashTime::new(measured(&clock, Duration::from_millis(50)));
        assert_eq!(rule.decide(0, fast), Admit::Yes);
        assert_eq!(rule.decide(27, fast), Admit::Yes);
        assert_eq!(
            rule.decide(28, fast),
            Admit::No {
                retry_after: Duration::from_secs(1)
            }
        );
        // The same queue with slow hashes (300 ms): only 4 fit (600 ms); 5 would wait 750 ms.
        let slow = MeanHashTime::new(measured(&clock, Duration::from_millis(300)));
        assert_eq!(rule.decide(4, slow), Admit::Yes);
        assert!(matches!(rule.decide(5, slow), Admit::No { .. }));
        // Retry-After is the work ahead, rounded up to whole seconds.
        assert_eq!(
            rule.decide(20, slow),
            Admit::No {
                retry_after: Duration::from_secs(3)
            }
        );
        // Hashes slowing down shrink what is admitted, without any setting changing.
        let mut mean = fast;
        for _ in 0..64 {
            mean = mean.record(measured(&clock, Duration::from_millis(300)));
        }
        assert!(matches!(rule.decide(10, mean), Admit::No { .. }));
    }

    #[test]
    fn an_idle_pool_always_admits_and_zero_workers_count_as_one() {
        let rule = Admission {
            max_expected_wait: Duration::from_millis(1),
            workers: 0,
        };
        let huge = MeanHashTime::new(Duration::from_secs(30));
        assert_eq!(rule.decide(0, huge), Admit::Yes);
        assert!(matches!(rule.decide(1, huge), Admit::No { .. }));
    }
}
