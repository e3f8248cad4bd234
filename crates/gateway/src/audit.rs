//! Audit events for denials: one structured `tracing` event (target `audit`) per refused
//! request, up to a rate; beyond it, events are counted by reason and written as one summary
//! per second, and the dropped count is exposed as a metric. A flood of bad credentials thus
//! costs bounded log volume but stays visible.
//!
//! Events carry the request id, route, method, the precise reason and the client address.
//! They must never carry a credential, a header value or the query string.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::metrics::Metrics;

/// Per-second admission of denial events.
#[derive(Debug)]
pub struct Sampler {
    limit: u32,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    second: u64,
    admitted: u32,
    dropped: BTreeMap<&'static str, u64>,
}

/// What to do with one denial event.
#[derive(Debug, PartialEq, Eq)]
pub struct Admission {
    /// Write this event.
    pub write: bool,
    /// The previous window dropped these (reason, count): write one summary first.
    pub summary: Vec<(&'static str, u64)>,
}

impl Sampler {
    pub fn new(limit_per_second: u32) -> Self {
        Self {
            limit: limit_per_second,
            window: Mutex::new(Window::default()),
        }
    }

    /// Admits or drops one event for `reason` at `second` (any monotonic count of seconds).
    pub fn admit(&self, second: u64, reason: &'static str) -> Admission {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let mut summary = Vec::new();
        if second != w.second {
            summary = std::mem::take(&mut w.dropped).into_iter().collect();
            w.second = second;
            w.admitted = 0;
        }
        if w.admitted < self.limit {
            w.admitted += 1;
            Admission {
                write: true,
                summary,
            }
        } else {
            *w.dropped.entry(reason).or_default() += 1;
            Admission {
                write: false,
                summary,
            }
        }
    }
}

/// One denial, as the audit event describes it.
#[derive(Debug)]
pub struct Denied<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub reason: &'static str,
    pub status: u16,
    pub client_ip: Option<IpAddr>,
    pub mode: &'static str,
}

/// Writes (or counts) one denial event.
pub fn denial(sampler: &Sampler, metrics: &Metrics, second: u64, d: &Denied<'_>) {
    let a = sampler.admit(second, d.reason);
    for (reason, dropped) in &a.summary {
        tracing::warn!(
            target: "audit",
            event = "gateway.denials_suppressed",
            reason,
            dropped,
            "denial events over the audit rate were counted, not written"
        );
    }
    if a.write {
        tracing::info!(
            target: "audit",
            event = "gateway.denied",
            request_id = d.request_id,
            route = d.route,
            method = d.method,
            reason = d.reason,
            status = d.status,
            client_ip = d.client_ip.map(|i| i.to_string()).unwrap_or_default(),
            mode = d.mode,
            "request denied"
        );
        metrics.audit(1, 0);
    } else {
        metrics.audit(0, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_are_counted_and_summarised_per_window() {
        let s = Sampler::new(2);
        assert!(s.admit(10, "a").write);
        assert!(s.admit(10, "b").write);
        let third = s.admit(10, "a");
        assert!(!third.write);
        assert!(third.summary.is_empty());
        assert!(!s.admit(10, "a").write);
        assert!(!s.admit(10, "c").write);
        let next = s.admit(11, "a");
        assert!(next.write);
        assert_eq!(next.summary, vec![("a", 2), ("c", 1)]);
        // The summary is given once.
        assert!(s.admit(11, "a").summary.is_empty());
    }

    #[test]
    fn a_zero_rate_drops_everything() {
        let s = Sampler::new(0);
        assert!(!s.admit(1, "a").write);
        let m = Metrics::new();
        denial(
            &s,
            &m,
            1,
            &Denied {
                request_id: "r",
                route: "x",
                method: "GET",
                reason: "a",
                status: 401,
                client_ip: None,
                mode: "proxy",
            },
        );
        assert_eq!(m.audit_counts(), (0, 1));
    }
}
