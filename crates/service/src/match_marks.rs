//! Which admission matches (a redirect URI completing a code flow, a trust rule admitting a
//! workload token) this node recorded lately, so the hygiene report's "last matched" costs one
//! store write per subject per [`MARK_INTERVAL`] instead of one per grant. The report asks "was
//! this matched in the last N days", which an hour's precision answers; a busy client's
//! redirect URI no longer updates the same row on every sign-in.
//!
//! This module must never decide whether a grant is allowed, and never grow without bound: past
//! [`MAX_MARKS`] subjects it forgets them all, which only costs one more write for each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use portcullis_core::time::Timestamp;

/// How long a recorded match stands for the next ones of the same subject.
pub const MARK_INTERVAL: Duration = Duration::from_secs(3600);

/// Subjects remembered before the marks are cleared.
pub const MAX_MARKS: usize = 10_000;

/// When this node last recorded a match, by subject (`kind`, tenant and subject in one key).
#[derive(Debug, Default)]
pub struct MatchMarks {
    recorded: Mutex<HashMap<String, Timestamp>>,
}

impl MatchMarks {
    /// Whether a match of `key` at `now` should be written: never recorded here, or the last
    /// record is [`MARK_INTERVAL`] old.
    pub fn due(&self, key: &str, now: Timestamp) -> bool {
        let Ok(recorded) = self.recorded.lock() else {
            return true;
        };
        recorded
            .get(key)
            .is_none_or(|at| at.saturating_add(MARK_INTERVAL) <= now)
    }

    /// Notes that a match of `key` was written at `now`.
    pub fn mark(&self, key: &str, now: Timestamp) {
        if let Ok(mut recorded) = self.recorded.lock() {
            if recorded.len() >= MAX_MARKS && !recorded.contains_key(key) {
                recorded.clear();
            }
            recorded.insert(key.to_owned(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_written_once_per_interval() {
        let marks = MatchMarks::default();
        let start = Timestamp::from_millis(1_000_000);
        assert!(marks.due("redirect_uri acme cl_1 https://a/cb", start));
        marks.mark("redirect_uri acme cl_1 https://a/cb", start);
        assert!(!marks.due("redirect_uri acme cl_1 https://a/cb", start));
        let almost = start.saturating_add(MARK_INTERVAL - Duration::from_millis(1));
        assert!(!marks.due("redirect_uri acme cl_1 https://a/cb", almost));
        assert!(
            marks.due("redirect_uri acme cl_1 https://b/cb", almost),
            "another subject is its own"
        );
        assert!(marks.due(
            "redirect_uri acme cl_1 https://a/cb",
            start.saturating_add(MARK_INTERVAL)
        ));
    }

    #[test]
    fn past_the_cap_every_subject_is_forgotten() {
        let marks = MatchMarks::default();
        let now = Timestamp::from_millis(5_000);
        for n in 0..MAX_MARKS {
            marks.mark(&format!("s{n}"), now);
        }
        assert!(!marks.due("s0", now));
        marks.mark("one more", now);
        assert!(marks.due("s0", now), "cleared, so written again");
        assert!(!marks.due("one more", now));
    }
}
