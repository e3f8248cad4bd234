//! Gateway metrics, rendered in the Prometheus text format (version 0.0.4) on the admin listener.
//!
//! Hand-written rather than through the `metrics` + `metrics-exporter-prometheus` crates: the
//! gateway needs five counter families and one histogram, the exporter's global recorder would
//! be shared by every gateway a test process starts, and the text format is a few lines. Each
//! [`Metrics`] is owned by one gateway and survives config reloads.
//!
//! Labels hold only names from the configuration (route, upstream) and fixed vocabularies
//! (outcome, reason): never a credential, subject, path or anything else a client chose, so
//! cardinality is bounded and no secret can reach a scrape.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_verify::Verifier;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A family of counters keyed by label values.
#[derive(Debug)]
struct Family<K> {
    series: RwLock<HashMap<K, Arc<AtomicU64>>>,
}

impl<K: Eq + Hash + Clone + Ord> Family<K> {
    fn new() -> Self {
        Self {
            series: RwLock::new(HashMap::new()),
        }
    }

    fn add(&self, key: &K, n: u64) {
        if let Some(c) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, c)| (k.clone(), c.load(Ordering::Relaxed)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// Cumulative counts are computed at render; these are per-bucket (last one: +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        let mut o = String::with_capacity(4096);
        let _ = writeln!(o, "# HELP portcullis_gateway_requests_total Requests by route and outcome.\n# TYPE portcullis_gateway_requests_total counter");
        for ((route, outcome), n) in self.requests.snapshot() {
            let _ = writeln!(
                o,
                "portcullis_gateway_requests_total{{route=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(&route)
            );
        }
        let _ = writeln!(o, "# HELP portcullis_gateway_auth_failures_total Refused credentials by class (the client's answer) and reason (internal).\n# TYPE portcullis_gateway_auth_failures_total counter");
        for ((class, reason), n) in self.auth_failures.snapshot() {
            let _ = writeln!(
                o,
                "portcullis_gateway_auth_failures_total{{class=\"{class}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(o, "# HELP portcullis_gateway_upstream_errors_total Upstream failures by upstream and kind.\n# TYPE portcullis_gateway_upstream_errors_total counter");
        for ((up, kind), n) in self.upstream_errors.snapshot() {
            let _ = writeln!(
                o,
                "portcullis_gateway_upstream_errors_total{{upstream=\"{}\",kind=\"{kind}\"}} {n}",
                escape(&up)
            );
        }
        let _ = writeln!(o, "# HELP portcullis_gateway_request_duration_seconds Time from request head to response head, by route.\n# TYPE portcullis_gateway_request_duration_seconds histogram");
        let mut hs: Vec<(Arc<str>, Arc<Histogram>)> = self
            .latency
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        hs.sort_by(|a, b| a.0.cmp(&b.0));
        for (route, h) in hs {
            let route = escape(&route);
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(o, "portcullis_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cumulative}");
            }
            cumulative += h.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(o, "portcullis_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}");
            let _ = writeln!(
                o,
                "portcullis_gateway_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "portcullis_gateway_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count.load(Ordering::Relaxed)
            );
        }
        let r = verifier.revocations();
        let _ = writeln!(o, "# HELP portcullis_gateway_revocation_feed_lag_seconds Time since the last contact with the revocation feed (-1: never).\n# TYPE portcullis_gateway_revocation_feed_lag_seconds gauge");
        let lag = r.lag().map_or(-1.0, |d| d.as_secs_f64());
        let _ = writeln!(o, "portcullis_gateway_revocation_feed_lag_seconds {lag}");
        let _ = writeln!(o, "# HELP portcullis_gateway_revocation_feed_fresh 1 when verification is not failing closed on a stale feed.\n# TYPE portcullis_gateway_revocation_feed_fresh gauge");
        let _ = writeln!(
            o,
            "portcullis_gateway_revocation_feed_fresh {}",
            u8::from(r.check_fresh().is_ok())
        );
        let _ = writeln!(o, "# HELP portcullis_gateway_revocation_feed_position Last revocation log position applied.\n# TYPE portcullis_gateway_revocation_feed_position gauge");
        let _ = writeln!(
            o,
            "portcullis_gateway_revocation_feed_position {}",
            r.position()
        );
        let _ = writeln!(o, "# HELP portcullis_gateway_audit_denials_emitted_total Denial audit events written.\n# TYPE portcullis_gateway_audit_denials_emitted_total counter");
        let _ = writeln!(
            o,
            "portcullis_gateway_audit_denials_emitted_total {}",
            self.audit_emitted.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP portcullis_gateway_audit_denials_dropped_total Denial audit events not written individually under flood (counted in summaries).\n# TYPE portcullis_gateway_audit_denials_dropped_total counter");
        let _ = writeln!(
            o,
            "portcullis_gateway_audit_denials_dropped_total {}",
            self.audit_dropped.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP portcullis_gateway_config_reloads_total Configuration reloads by result.\n# TYPE portcullis_gateway_config_reloads_total counter");
        for (result, n) in self.reloads.snapshot() {
            let _ = writeln!(
                o,
                "portcullis_gateway_config_reloads_total{{result=\"{result}\"}} {n}"
            );
        }
        let tls = self.tls_reloads.snapshot();
        if !tls.is_empty() {
            let _ = writeln!(o, "# HELP portcullis_gateway_tls_reloads_total TLS certificate reloads by result.\n# TYPE portcullis_gateway_tls_reloads_total counter");
            for (result, n) in tls {
                let _ = writeln!(
                    o,
                    "portcullis_gateway_tls_reloads_total{{result=\"{result}\"}} {n}"
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let m = Metrics::new();
        let r: Arc<str> = "a".into();
        m.request(&r, "proxied", Duration::from_micros(300));
        m.request(&r, "proxied", Duration::from_millis(20));
        m.request(&r, "unauthorized", Duration::from_secs(10));
        let h = m.latency.read().expect("lock").get(&r).cloned().expect("h");
        assert_eq!(h.count.load(Ordering::Relaxed), 3);
        assert_eq!(h.buckets[0].load(Ordering::Relaxed), 1);
        assert_eq!(h.buckets[BUCKETS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(
            m.requests.snapshot(),
            vec![((r.clone(), "proxied"), 2), ((r, "unauthorized"), 1)]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
