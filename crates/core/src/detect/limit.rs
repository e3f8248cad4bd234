//! Alert rate limiting: at most one alert update per rule, tenant, subject and mode in each
//! `alert_interval`. Findings in between are suppressed but counted, and handed out with the
//! next update ([`Limiter::admit`] or, if no finding comes, [`Limiter::due`]), so an alert storm
//! becomes one stored update per interval with its true count, and nothing is lost.
//!
//! Bounded like the detectors (least recently seen key forgotten, with its pending count: a
//! flood can cost counts, never memory). Time comes from the findings; no I/O.

use crate::tenant::TenantId;
use crate::time::Timestamp;

use super::bounded::BoundedMap;
use super::{Finding, Rule, Subject};

type Key = (Rule, TenantId, Subject, bool);

#[derive(Debug, Default)]
struct Slot {
    last_emit: Option<Timestamp>,
    /// Findings suppressed since the last update.
    pending: u64,
    /// The newest suppressed finding (its evidence goes with the next update).
    latest: Option<Finding>,
}

/// One alert update to store: the newest finding and how many findings it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub finding: Finding,
    pub count: u64,
}

#[derive(Debug)]
pub struct Limiter {
    interval_ms: i64,
    slots: BoundedMap<Key, Slot>,
}

impl Limiter {
    pub fn new(interval_secs: u64, max_keys: usize) -> Self {
        Self {
            interval_ms: i64::try_from(interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            slots: BoundedMap::new(max_keys),
        }
    }

    /// The update to store for `finding` now, or `None` if it is suppressed (counted into the
    /// next one).
    pub fn admit(&mut self, finding: Finding) -> Option<Update> {
        let key = (
            finding.rule,
            finding.tenant.clone(),
            finding.subject.clone(),
            finding.shadow,
        );
        let interval = self.interval_ms;
        let slot = self.slots.touch(&key, Slot::default);
        let open = slot
            .last_emit
            .is_none_or(|t| finding.at.as_millis().saturating_sub(t.as_millis()) >= interval);
        if open {
            let count = slot.pending + 1;
            slot.pending = 0;
            slot.latest = None;
            slot.last_emit = Some(finding.at);
            Some(Update { finding, count })
        } else {
            slot.pending += 1;
            slot.latest = Some(finding);
            None
        }
    }

    /// Updates for suppressed findings whose interval has passed by `now`.
    pub fn due(&mut self, now: Timestamp) -> Vec<Update> {
        let interval = self.interval_ms;
        let mut out = Vec::new();
        for (_, slot) in self.slots.values_mut() {
            let passed = slot
                .last_emit
                .is_none_or(|t| now.as_millis().saturating_sub(t.as_millis()) >= interval);
            if slot.pending > 0 && passed {
                if let Some(finding) = slot.latest.take() {
                    out.push(Update {
                        finding,
                        count: slot.pending,
                    });
                    slot.pending = 0;
                    slot.last_emit = Some(now);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::SubjectKind;
    use super::*;

    fn finding(at_secs: i64, subject: &str) -> Finding {
        Finding {
            rule: Rule::InactiveCredentialUse,
            shadow: false,
            tenant: TenantId::system(),
            subject: Subject::new(SubjectKind::ApiKey, subject),
            at: Timestamp::from_secs(at_secs),
            window_start: Timestamp::from_secs(at_secs),
            window_secs: 0,
            count: 1,
            threshold: 1,
            baseline: None,
            detail: None,
            samples: vec![format!("ev{at_secs}")],
        }
    }

    #[test]
    fn a_storm_becomes_one_update_per_interval_with_its_true_count() {
        let mut l = Limiter::new(60, 100);
        assert_eq!(l.admit(finding(0, "k")).map(|u| u.count), Some(1));
        for s in 1..=30 {
            assert!(l.admit(finding(s, "k")).is_none());
        }
        // Another subject is not limited by the first.
        assert!(l.admit(finding(5, "other")).is_some());
        // Not yet due.
        assert!(l.due(Timestamp::from_secs(59)).is_empty());
        let due = l.due(Timestamp::from_secs(60));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count, 30);
        assert_eq!(due[0].finding.samples, vec!["ev30"]);
        assert!(l.due(Timestamp::from_secs(500)).is_empty());
        // After the interval a finding goes straight through again.
        assert_eq!(l.admit(finding(200, "k")).map(|u| u.count), Some(1));
        assert!(l.admit(finding(201, "k")).is_none());
        assert_eq!(l.admit(finding(300, "k")).map(|u| u.count), Some(2));
    }

    #[test]
    fn memory_stays_capped() {
        let mut l = Limiter::new(60, 10);
        for i in 0..10_000 {
            l.admit(finding(0, &format!("k{i}")));
        }
        assert_eq!(l.slots.len(), 10);
    }
}
