//! Which admission matches (a redirect URI completing a code flow, a trust rule admitting a
//! workload token) this node recorded lately, so the hygiene report's "last matched" costs one
//! store write per subject per [`MARK_INTERVAL`] instead of one per grant. The report asks "was
//! this matched in the last N days", which an hour's precision answers; a busy client's
//! redirect URI no longer updates the same row on every sign-in. Each subject's mark is a
//! [`UseMark`], the same throttled mark a client's last use goes through.
//!
//! This module must never decide whether a grant is allowed, and never grow without bound: past
//! its capacity ([`MAX_MARKS`] unless [`MatchMarks::with_capacity`] says more) it forgets them
//! all, which only costs one more write for each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::use_mark::UseMark;

/// How long a recorded match stands for the next ones of the same subject.
pub const MARK_INTERVAL: Duration = Duration::from_secs(3600);

/// Subjects remembered before the marks are cleared.
pub const MAX_MARKS: usize = 10_000;

/// When this node last recorded a match, by subject (`kind`, tenant and subject in one key).
#[derive(Debug)]
pub struct MatchMarks {
    marks: Mutex<HashMap<String, UseMark>>,
    capacity: usize,
}

impl Default for MatchMarks {
    /// [`MAX_MARKS`] subjects.
    fn default() -> Self {
        Self::with_capacity(MAX_MARKS)
    }
}

impl MatchMarks {
    /// Marks for up to `capacity` subjects (at least [`MAX_MARKS`]) before they are cleared: a
    /// subsystem with more subjects than that (the API key verifier: keys times their scopes
    /// and networks) would otherwise write them all again after each clearing.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            marks: Mutex::new(HashMap::new()),
            capacity: capacity.max(MAX_MARKS),
        }
    }

    /// Subjects held before they are all forgotten.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The mark of `key` (a new one, never recorded, for a subject not seen since the last
    /// clearing); record through it with [`UseMark::record`] and [`MARK_INTERVAL`].
    pub fn mark(&self, key: &str) -> UseMark {
        // The map holds only marks: a panic elsewhere while it was locked leaves nothing worse
        // than one more write.
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mark) = marks.get(key) {
            return mark.clone();
        }
        if marks.len() >= self.capacity {
            marks.clear();
        }
        let mark = UseMark::new(None);
        marks.insert(key.to_owned(), mark.clone());
        mark
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::time::Timestamp;

    use super::*;

    fn record(marks: &MatchMarks, key: &str, now: Timestamp) -> bool {
        marks
            .mark(key)
            .record(now, MARK_INTERVAL, || std::future::ready(Ok(())))
    }

    #[tokio::test]
    async fn a_subject_is_written_once_per_interval() {
        let marks = MatchMarks::default();
        let start = Timestamp::from_millis(1_000_000);
        assert!(record(&marks, "redirect_uri acme cl_1 https://a/cb", start));
        assert!(!record(
            &marks,
            "redirect_uri acme cl_1 https://a/cb",
            start
        ));
        let almost = start.saturating_add(MARK_INTERVAL - Duration::from_millis(1));
        assert!(!record(
            &marks,
            "redirect_uri acme cl_1 https://a/cb",
            almost
        ));
        assert!(
            record(&marks, "redirect_uri acme cl_1 https://b/cb", almost),
            "another subject is its own"
        );
        assert!(record(
            &marks,
            "redirect_uri acme cl_1 https://a/cb",
            start.saturating_add(MARK_INTERVAL)
        ));
    }

    #[tokio::test]
    async fn past_the_cap_every_subject_is_forgotten() {
        let marks = MatchMarks::default();
        let now = Timestamp::from_millis(5_000);
        for n in 0..MAX_MARKS {
            assert!(record(&marks, &format!("s{n}"), now));
        }
        assert!(!record(&marks, "s0", now));
        assert!(record(&marks, "one more", now));
        assert!(record(&marks, "s0", now), "cleared, so written again");
        assert!(!record(&marks, "one more", now));
    }
}
