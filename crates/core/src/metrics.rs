//! The metric primitives every Portcullis process uses, and their Prometheus text exposition
//! (format 0.0.4): counters in families keyed by label values, latency histograms, and a writer
//! that escapes label values. The gateway (`portcullis-gateway`) and `serve` (`portcullis-server`)
//! both render through [`Text`], so there is one renderer.
//!
//! Hand-written rather than through the `metrics` + `metrics-exporter-prometheus` crates: their
//! global recorder would be shared by every gateway and server a test process starts, and the
//! text format is a few lines. Each owner (a gateway, a node) holds its own values.
//!
//! This module only counts and writes text: it must never do I/O or read the clock (durations
//! come in measured), and never take a label value that a client chose. Callers pass fixed
//! vocabularies or configured names, so cardinality stays bounded and no secret reaches a scrape.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A family of counters keyed by label values, for label sets known only at run time (route
/// names from a configuration). Where the vocabulary is fixed, an array of [`AtomicU64`] indexed
/// by an enum is cheaper and needs no lock.
#[derive(Debug)]
pub struct Family<K> {
    series: RwLock<HashMap<K, Arc<AtomicU64>>>,
}

impl<K: Eq + Hash + Clone + Ord> Default for Family<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone + Ord> Family<K> {
    pub fn new() -> Self {
        Self {
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Adds `n` to the series `key`, creating it at its first use.
    pub fn add(&self, key: &K, n: u64) {
        // A poisoned lock only means a panic elsewhere mid-insert; counts stay usable.
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

    /// Every series and its count, sorted by key (a stable scrape).
    pub fn snapshot(&self) -> Vec<(K, u64)> {
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

/// A latency histogram over [`LATENCY_BUCKETS`]: one atomic add per bucket hit, no lock.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket counts (the last one: above every bound); made cumulative when written.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Observations in bucket `i` alone (not cumulative); `LATENCY_BUCKETS.len()` is +Inf.
    pub fn bucket(&self, i: usize) -> u64 {
        self.buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed))
    }
}

/// The metric type named on a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A label value escaped for the text format: backslash, double quote and newline.
pub fn escape(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// A Prometheus text exposition being written. Write each family's [`Text::header`] once, then
/// its samples.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(4096),
        }
    }

    /// The `# HELP` and `# TYPE` lines of a family.
    pub fn header(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {}",
            kind.as_str()
        );
    }

    /// One sample: `name{labels} value` (no braces without labels).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A header and one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl Display) {
        self.header(name, help, kind);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += h.bucket(i);
            self.histogram_bucket(name, labels, b, cumulative);
        }
        cumulative += h.bucket(LATENCY_BUCKETS.len());
        self.histogram_bucket(name, labels, "+Inf", cumulative);
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(
            self.out,
            " {}",
            h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count());
    }

    fn histogram_bucket(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        le: impl Display,
        cumulative: u64,
    ) {
        let _ = write!(self.out, "{name}_bucket");
        self.labels(labels, Some(&le));
        let _ = writeln!(self.out, " {cumulative}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&dyn Display>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{k}=\"{}\"", escape(v));
        }
        if let Some(le) = le {
            if !labels.is_empty() {
                self.out.push(',');
            }
            let _ = write!(self.out, "le=\"{le}\"");
        }
        self.out.push('}');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(10));
        assert_eq!(h.count(), 3);
        assert_eq!(h.bucket(0), 1);
        assert_eq!(h.bucket(LATENCY_BUCKETS.len()), 1);
        let mut t = Text::new();
        t.header("x_seconds", "X.", Kind::Histogram);
        t.histogram("x_seconds", &[("route", "a")], &h);
        let text = t.finish();
        assert!(text.contains("x_seconds_bucket{route=\"a\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{route=\"a\",le=\"0.025\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum{route=\"a\"} 10.0203\n"));
        assert!(text.contains("x_seconds_count{route=\"a\"} 3\n"));
    }

    #[test]
    fn samples_without_labels_have_no_braces() {
        let mut t = Text::new();
        t.single("up", "Up.", Kind::Gauge, 1);
        assert_eq!(t.finish(), "# HELP up Up.\n# TYPE up gauge\nup 1\n");
    }

    #[test]
    fn family_snapshot_is_sorted_and_counts_per_key() {
        let f: Family<(&str, &str)> = Family::new();
        f.add(&("b", "x"), 1);
        f.add(&("a", "y"), 2);
        f.add(&("b", "x"), 3);
        assert_eq!(f.snapshot(), vec![(("a", "y"), 2), (("b", "x"), 4)]);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut t = Text::new();
        t.sample("m", &[("route", "q\"")], 1);
        assert_eq!(t.finish(), "m{route=\"q\\\"\"} 1\n");
    }
}
