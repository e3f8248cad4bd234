//! Audit events for denials: one structured `tracing` event (target `audit`) per refused
//! request, up to a rate; beyond it, events are counted by reason and written as one summary
//! per second, and the dropped count is exposed as a metric. A flood of bad credentials thus
//! costs bounded log volume but stays visible.
//!
//! Events carry the request id, route, method, the denial class, the precise reason and the
//! client address. They must never carry a credential, a header value or the query string.
//!
//! An embedding program (the gateway inside `portcullis serve`) connects a [`DenialHook`]
//! ([`crate::Gateway::start_with_denial_hook`]): it receives exactly what is written here, after the
//! same sampling, so a flood costs the embedder at most `audit.max_denials_per_second` events
//! plus one summary per reason per second.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::metrics::Metrics;

/// Receives the denial events this module writes (after sampling), for an embedder's own audit
/// log. Called on the request path: it must not block or wait (queue and return).
pub trait DenialHook: Send + Sync + std::fmt::Debug {
    /// One admitted denial.
    fn denied(&self, denial: &Denied<'_>);
    /// `dropped` denials for `reason` over the rate in the previous second, counted only.
    fn suppressed(&self, reason: &'static str, dropped: u64);
}

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
    /// The denial class (`invalid_token`, `insufficient_scope`, `access_denied`, ...).
    pub class: &'static str,
    pub reason: &'static str,
    pub status: u16,
    pub client_ip: Option<IpAddr>,
    pub mode: &'static str,
}

/// Writes (or counts) one denial event.
pub fn denial(
    sampler: &Sampler,
    metrics: &Metrics,
    hook: Option<&dyn DenialHook>,
    second: u64,
    d: &Denied<'_>,
) {
    let a = sampler.admit(second, d.reason);
    for (reason, dropped) in &a.summary {
        if let Some(h) = hook {
            h.suppressed(reason, *dropped);
        }
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
            class = d.class,
            reason = d.reason,
            status = d.status,
            client_ip = d.client_ip.map(|i| i.to_string()).unwrap_or_default(),
            mode = d.mode,
            "request denied"
        );
        if let Some(h) = hook {
            h.denied(d);
        }
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
            None,
            1,
            &Denied {
                request_id: "r",
                route: "x",
                method: "GET",
                class: "invalid_token",
                reason: "a",
                status: 401,
                client_ip: None,
                mode: "proxy",
            },
        );
        assert_eq!(m.audit_counts(), (0, 1));
    }

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl DenialHook for Recorder {
        fn denied(&self, d: &Denied<'_>) {
            self.0.lock().expect("lock").push(format!(
                "{} {} {} {:?}",
                d.route, d.class, d.reason, d.client_ip
            ));
        }
        fn suppressed(&self, reason: &'static str, dropped: u64) {
            self.0
                .lock()
                .expect("lock")
                .push(format!("suppressed {reason} {dropped}"));
        }
    }

    #[test]
    fn the_hook_receives_what_the_sampler_admits_and_the_summaries() {
        let s = Sampler::new(1);
        let m = Metrics::new();
        let hook = Recorder::default();
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let d = |reason| Denied {
            request_id: "r",
            route: "orders",
            method: "GET",
            class: "invalid_token",
            reason,
            status: 401,
            client_ip: Some(ip),
            mode: "proxy",
        };
        denial(&s, &m, Some(&hook), 1, &d("token_expired"));
        for _ in 0..5 {
            denial(&s, &m, Some(&hook), 1, &d("token_expired"));
        }
        denial(&s, &m, Some(&hook), 2, &d("bad_signature"));
        assert_eq!(
            *hook.0.lock().expect("lock"),
            [
                "orders invalid_token token_expired Some(192.0.2.7)",
                "suppressed token_expired 5",
                "orders invalid_token bad_signature Some(192.0.2.7)",
            ]
        );
        assert_eq!(m.audit_counts(), (2, 5));
    }
}
