//! A windowed counter with a baseline: counts events in fixed windows of time and remembers the
//! counts of the last few complete windows, so a rule can ask "how many now, against how many
//! usually" for one subject. Windows that passed with no event count as zero.
//!
//! Pure arithmetic over timestamps handed in by the caller; this module never reads a clock.

use std::collections::VecDeque;

use crate::time::Timestamp;

/// Event ids kept per window as evidence.
pub const SAMPLES: usize = 5;

/// A window's count crossing its threshold ([`WindowedCounter::spike`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub count: u64,
    pub threshold: u64,
    pub baseline: f64,
}

#[derive(Debug, Clone)]
pub struct WindowedCounter {
    window_ms: i64,
    /// Start of the current window (a multiple of `window_ms`).
    start: i64,
    current: u64,
    /// Counts of the most recent complete windows, newest last.
    history: VecDeque<u64>,
    history_len: usize,
    /// Whether the current window already produced a finding.
    pub fired: bool,
    /// The first few event ids of the current window.
    pub samples: Vec<String>,
}

impl WindowedCounter {
    /// A counter over windows of `window_ms` keeping `history_len` complete windows.
    pub fn new(window_ms: i64, history_len: usize, now: Timestamp) -> Self {
        let window_ms = window_ms.max(1);
        Self {
            window_ms,
            start: now.as_millis().div_euclid(window_ms) * window_ms,
            current: 0,
            history: VecDeque::with_capacity(history_len),
            history_len,
            fired: false,
            samples: Vec::new(),
        }
    }

    /// Moves the window forward to `now`, closing the windows in between.
    fn roll(&mut self, now: Timestamp) {
        let t = now.as_millis();
        if t < self.start + self.window_ms {
            return;
        }
        let elapsed = (t - self.start).div_euclid(self.window_ms);
        self.push_history(self.current);
        // Windows with no event at all, up to the history length (older ones fall out anyway).
        let empty = usize::try_from(elapsed - 1)
            .unwrap_or(usize::MAX)
            .min(self.history_len);
        for _ in 0..empty {
            self.push_history(0);
        }
        self.start += elapsed * self.window_ms;
        self.current = 0;
        self.fired = false;
        self.samples.clear();
    }

    fn push_history(&mut self, n: u64) {
        if self.history_len == 0 {
            return;
        }
        if self.history.len() == self.history_len {
            self.history.pop_front();
        }
        self.history.push_back(n);
    }

    /// Counts one event at `now` (with its id as a possible sample) and returns the count of the
    /// current window.
    pub fn add(&mut self, now: Timestamp, event_id: &str) -> u64 {
        self.roll(now);
        self.current = self.current.saturating_add(1);
        if self.samples.len() < SAMPLES {
            self.samples.push(event_id.to_owned());
        }
        self.current
    }

    /// The one spike rule of the windowed detectors: counts the event, and the first time in
    /// this window the count reaches the larger of `floor` and `factor` times the subject's own
    /// baseline, marks the window fired and returns what crossed. `None` otherwise (below the
    /// threshold, or already fired in this window).
    pub fn spike(
        &mut self,
        now: Timestamp,
        event_id: &str,
        floor: u64,
        factor: f64,
    ) -> Option<Spike> {
        let count = self.add(now, event_id);
        let baseline = self.baseline();
        let threshold = floor.max((factor * baseline).ceil() as u64);
        if count < threshold || self.fired {
            return None;
        }
        self.fired = true;
        Some(Spike {
            count,
            threshold,
            baseline,
        })
    }

    /// The mean count of the complete windows remembered (0 before the first one closes).
    pub fn baseline(&self) -> f64 {
        if self.history.is_empty() {
            return 0.0;
        }
        self.history.iter().sum::<u64>() as f64 / self.history.len() as f64
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    pub fn window_start(&self) -> Timestamp {
        Timestamp::from_millis(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_window_and_averages_the_complete_ones() {
        let t0 = Timestamp::from_secs(1_000);
        let mut c = WindowedCounter::new(60_000, 4, t0);
        for _ in 0..10 {
            c.add(t0, "e");
        }
        assert_eq!(c.baseline(), 0.0);
        // Next window: the 10 are history.
        let t1 = Timestamp::from_secs(1_060);
        assert_eq!(c.add(t1, "e"), 1);
        assert_eq!(c.baseline(), 10.0);
        // Skip two empty windows: they count as zeros.
        let t4 = Timestamp::from_secs(1_240);
        assert_eq!(c.add(t4, "e"), 1);
        assert_eq!(c.baseline(), (10.0 + 1.0) / 4.0);
        // A long silence forgets everything.
        let later = Timestamp::from_secs(100_000);
        c.add(later, "e");
        assert_eq!(c.baseline(), 0.0);
        assert_eq!(c.samples.len(), 1);
    }
}
