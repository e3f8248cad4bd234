//! Gateway metrics, rendered in the Prometheus text format (version 0.0.4) on the admin listener.
//!
//! The counters, the histogram and the text writer are core's (`portcullis_core::metrics`,
//! shared with `serve`); this module says what the gateway counts. Each [`Metrics`] is owned by
//! one gateway (no global recorder: tests start many) and survives config reloads.
//!
//! Labels hold only names from the configuration (route, upstream) and fixed vocabularies
//! (outcome, reason): never a credential, subject, path or anything else a client chose, so
//! cardinality is bounded and no secret can reach a scrape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_core::metrics::{Family, Histogram, Kind, Text};
use portcullis_verify::Verifier;

/// Everything the gateway counts.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<(Arc<str>, &'static str)>,
    auth_failures: Family<(&'static str, &'static str)>,
    upstream_errors: Family<(Arc<str>, &'static str)>,
    latency: RwLock<HashMap<Arc<str>, Arc<Histogram>>>,
    audit_emitted: AtomicU64,
    audit_dropped: AtomicU64,
    reloads: Family<&'static str>,
    tls_reloads: Family<&'static str>,
    /// Denials sent to the server (`[audit.report]`), and those dropped.
    pub(crate) reports: Arc<ReportCounters>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            requests: Family::new(),
            auth_failures: Family::new(),
            upstream_errors: Family::new(),
            latency: RwLock::new(HashMap::new()),
            audit_emitted: AtomicU64::new(0),
            audit_dropped: AtomicU64::new(0),
            reloads: Family::new(),
            tls_reloads: Family::new(),
            reports: Arc::default(),
        }
    }

    /// One finished request: its route (`unmatched` when none), outcome and time in the gateway.
    pub fn request(&self, route: &Arc<str>, outcome: &'static str, took: Duration) {
        self.requests.add(&(route.clone(), outcome), 1);
        let h = self
            .latency
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
            .cloned();
        let h = match h {
            Some(h) => h,
            None => self
                .latency
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(route.clone())
                .or_default()
                .clone(),
        };
        h.observe(took);
    }

    pub fn auth_failure(&self, class: &'static str, reason: &'static str) {
        self.auth_failures.add(&(class, reason), 1);
    }

    pub fn upstream_error(&self, upstream: &Arc<str>, kind: &'static str) {
        self.upstream_errors.add(&(upstream.clone(), kind), 1);
    }

    pub fn audit(&self, emitted: u64, dropped: u64) {
        self.audit_emitted.fetch_add(emitted, Ordering::Relaxed);
        self.audit_dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// (emitted, dropped) denial audit events so far.
    pub fn audit_counts(&self) -> (u64, u64) {
        (
            self.audit_emitted.load(Ordering::Relaxed),
            self.audit_dropped.load(Ordering::Relaxed),
        )
    }

    pub fn reload(&self, result: &'static str) {
        self.reloads.add(&result, 1);
    }

    /// One TLS certificate reload: `ok` or `refused` (the old certificate stays).
    pub fn tls_reload(&self, result: &'static str) {
        self.tls_reloads.add(&result, 1);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, verifier: &Verifier) -> String {
        let mut t = Text::new();
        let name = "portcullis_gateway_requests_total";
        t.header(name, "Requests by route and outcome.", Kind::Counter);
        for ((route, outcome), n) in self.requests.snapshot() {
            t.sample(name, &[("route", &route), ("outcome", outcome)], n);
        }
        let name = "portcullis_gateway_auth_failures_total";
        t.header(
            name,
            "Refused credentials by class (the client's answer) and reason (internal).",
            Kind::Counter,
        );
        for ((class, reason), n) in self.auth_failures.snapshot() {
            t.sample(name, &[("class", class), ("reason", reason)], n);
        }
        let name = "portcullis_gateway_upstream_errors_total";
        t.header(
            name,
            "Upstream failures by upstream and kind.",
            Kind::Counter,
        );
        for ((up, kind), n) in self.upstream_errors.snapshot() {
            t.sample(name, &[("upstream", &up), ("kind", kind)], n);
        }
        let name = "portcullis_gateway_request_duration_seconds";
        t.header(
            name,
            "Time from request head to response head, by route.",
            Kind::Histogram,
        );
        let mut hs: Vec<(Arc<str>, Arc<Histogram>)> = self
            .latency
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        hs.sort_by(|a, b| a.0.cmp(&b.0));
        for (route, h) in hs {
            t.histogram(name, &[("route", &route)], &h);
        }
        let r = verifier.revocations();
        t.single(
            "portcullis_gateway_revocation_feed_lag_seconds",
            "Time since the last contact with the revocation feed (-1: never).",
            Kind::Gauge,
            r.lag().map_or(-1.0, |d| d.as_secs_f64()),
        );
        t.single(
            "portcullis_gateway_revocation_feed_fresh",
            "1 when verification is not failing closed on a stale feed.",
            Kind::Gauge,
            u8::from(r.check_fresh().is_ok()),
        );
        t.single(
            "portcullis_gateway_revocation_feed_position",
            "Last revocation log position applied.",
            Kind::Gauge,
            r.position(),
        );
        t.single(
            "portcullis_gateway_audit_denials_emitted_total",
            "Denial audit events written.",
            Kind::Counter,
            self.audit_emitted.load(Ordering::Relaxed),
        );
        t.single(
            "portcullis_gateway_audit_denials_dropped_total",
            "Denial audit events not written individually under flood (counted in summaries).",
            Kind::Counter,
            self.audit_dropped.load(Ordering::Relaxed),
        );
        t.single(
            "portcullis_gateway_denial_reports_sent_total",
            "Denial events the server accepted ([audit.report]).",
            Kind::Counter,
            self.reports.sent(),
        );
        t.single(
            "portcullis_gateway_denial_reports_queued",
            "Denial events waiting to be sent to the server ([audit.report]); at the queue size, \
             new ones are dropped.",
            Kind::Gauge,
            self.reports.queued(),
        );
        let name = "portcullis_gateway_denial_reports_dropped_total";
        t.header(
            name,
            "Denial events not delivered to the server, by reason (queue_full, refused, unreachable).",
            Kind::Counter,
        );
        for reason in DropReason::ALL {
            t.sample(
                name,
                &[("reason", reason.as_str())],
                self.reports.dropped(reason),
            );
        }
        let name = "portcullis_gateway_config_reloads_total";
        t.header(name, "Configuration reloads by result.", Kind::Counter);
        for (result, n) in self.reloads.snapshot() {
            t.sample(name, &[("result", result)], n);
        }
        let tls = self.tls_reloads.snapshot();
        if !tls.is_empty() {
            let name = "portcullis_gateway_tls_reloads_total";
            t.header(name, "TLS certificate reloads by result.", Kind::Counter);
            for (result, n) in tls {
                t.sample(name, &[("result", result)], n);
            }
        }
        t.finish()
    }
}

/// Why denials meant for the server were lost (`crate::report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was full (the server slow or down for a while, or a flood beyond the batches).
    QueueFull,
    /// The server refused the batch (4xx other than 429): a credential without
    /// `report_denials`, or a tenant it does not reach.
    Refused,
    /// The server could not be reached, or answered 5xx or 429, through every retry.
    Unreachable,
}

impl DropReason {
    pub const ALL: [Self; 3] = [Self::QueueFull, Self::Refused, Self::Unreachable];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
        }
    }
}

/// What sending denials to the server counted (`crate::report`).
#[derive(Debug, Default)]
pub struct ReportCounters {
    sent: AtomicU64,
    dropped: [AtomicU64; 3],
    /// The reporter's queue, for its depth at scrape time; weak, so that the queue closes (and
    /// the sending task ends) when the reporter is dropped.
    queue: std::sync::OnceLock<
        tokio::sync::mpsc::WeakSender<portcullis_core::denial_report::WireReport>,
    >,
}

impl ReportCounters {
    /// Watches `queue`'s depth (set once, by the reporter that owns it).
    pub(crate) fn watch_queue(
        &self,
        queue: &tokio::sync::mpsc::Sender<portcullis_core::denial_report::WireReport>,
    ) {
        let _ = self.queue.set(queue.downgrade());
    }

    /// Denials waiting in the queue to be sent (0 without a reporter).
    pub fn queued(&self) -> u64 {
        self.queue
            .get()
            .and_then(|weak| weak.upgrade())
            .map_or(0, |q| (q.max_capacity() - q.capacity()) as u64)
    }

    pub(crate) fn drop_events(&self, reason: DropReason, n: u64) {
        let total = self.dropped[reason as usize].fetch_add(n, Ordering::Relaxed) + n;
        // One line per doubling: a long outage does not flood the log.
        if (total - n).leading_zeros() != total.leading_zeros() {
            tracing::warn!(
                reason = reason.as_str(),
                dropped = total,
                "denial reports for the server were dropped"
            );
        }
    }

    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Denials the server accepted.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Denials dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_per_route_and_outcome_with_one_histogram_per_route() {
        let m = Metrics::new();
        let r: Arc<str> = "a".into();
        m.request(&r, "proxied", Duration::from_micros(300));
        m.request(&r, "proxied", Duration::from_millis(20));
        m.request(&r, "unauthorized", Duration::from_secs(10));
        let h = m.latency.read().expect("lock").get(&r).cloned().expect("h");
        assert_eq!(h.count(), 3);
        assert_eq!(h.bucket(0), 1);
        assert_eq!(
            m.requests.snapshot(),
            vec![((r.clone(), "proxied"), 2), ((r, "unauthorized"), 1)]
        );
    }
}
