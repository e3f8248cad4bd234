//! Failed client authentications counted per source and per (client id, source), so that a
//! source that keeps failing is slowed while nobody can lock a client or resource server out by
//! failing with its id (invariant 10: ids are not secret).
//!
//! A *source* is the request's client address as the HTTP edge resolved it (behind a trusted
//! proxy, the address it forwarded): an IPv4 address, or the /64 an IPv6 address belongs to (one
//! subscriber's allocation, so hopping between the addresses of one network buys nothing).
//! Requests with no known address share one source, "unknown": in-process callers, and requests
//! from a trusted proxy whose forwarding header names no usable address (the edge never
//! substitutes the proxy's own address, which every client behind it would share anyway).
//!
//! Two fixed-window counters, each window `window` long from the first failure it counts:
//!
//! * per source: at `max_per_source` failures the source is refused, before any credential
//!   check, until the window ends, whichever id it names;
//! * per (id, source): at `max_per_id_and_source` failures the source is refused for that id
//!   only, so one address cannot keep guessing one client's secret within its source budget.
//!
//! Nothing is counted per id alone. A correct credential from a source that has not been failing
//! therefore always reaches the credential check. Spreading guesses over many sources gains an
//! attacker nothing real: secrets carry at least 128 bits and assertions are signed.
//!
//! The counters live in memory, per node: an attacker spreading attempts over `n` nodes gets at
//! most `n` times the limits per window. Memory is bounded under a flood of made-up ids and
//! addresses: each table holds at most `max_entries`; when one fills, entries whose window has
//! ended are dropped, then (if it is still half full) entries below their limit, and if even that
//! leaves it half full it is cleared. A sweep leaves a table under half full and the next one
//! waits until it has doubled, so sweeping costs amortised O(1) per failure. Ids are kept as keyed
//! hashes, never as text, so an entry's size does not depend on what an attacker sends.
//!
//! This module must never count failures per id alone, see a secret, or refuse a source it has
//! not seen fail.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use portcullis_core::time::Timestamp;

/// Sweeps never run on tables smaller than this.
const SWEEP_MIN: usize = 10_000;

/// Limits of a [`Throttle`].
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    pub window: Duration,
    /// Failures from one source, whatever ids they name, before it is refused.
    pub max_per_source: u32,
    /// Failures naming one id from one source before that source is refused for that id.
    pub max_per_id_and_source: u32,
    /// Entries each table (sources; id and source pairs) holds at most.
    pub max_entries: usize,
}

/// Who failed, as far as the throttle cares: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Unknown,
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Net([u8; 8]),
}

impl Source {
    fn of(ip: Option<IpAddr>) -> Self {
        match ip.map(|ip| ip.to_canonical()) {
            None => Self::Unknown,
            Some(IpAddr::V4(v4)) => Self::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => {
                let mut net = [0u8; 8];
                net.copy_from_slice(&v6.octets()[..8]);
                Self::V6Net(net)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    failures: u32,
}

/// One table of fixed-window counters, with the sweep described in the module documentation.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, Window>,
    limit: u32,
    /// Size at which the next sweep runs.
    sweep_at: usize,
}

impl<K: std::hash::Hash + Eq> Table<K> {
    fn new(limit: u32, max_entries: usize) -> Self {
        Self {
            map: HashMap::new(),
            limit,
            sweep_at: SWEEP_MIN.min(max_entries),
        }
    }

    /// Seconds until `key` may try again, if it is at its limit.
    fn wait(&self, key: &K, window: Duration, now: Timestamp) -> Option<u64> {
        let w = self.map.get(key)?;
        let end = w.start.saturating_add(window);
        if w.failures < self.limit || end <= now {
            return None;
        }
        let ms = end.as_millis().saturating_sub(now.as_millis());
        Some(
            u64::try_from(ms.saturating_add(999) / 1000)
                .unwrap_or(1)
                .max(1),
        )
    }

    fn record(&mut self, key: K, window: Duration, now: Timestamp, max_entries: usize) {
        if !self.map.contains_key(&key) && self.map.len() >= self.sweep_at {
            self.sweep(window, now, max_entries);
        }
        let w = self.map.entry(key).or_insert(Window {
            start: now,
            failures: 0,
        });
        if w.start.saturating_add(window) <= now {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    fn sweep(&mut self, window: Duration, now: Timestamp, max_entries: usize) {
        self.map.retain(|_, w| w.start.saturating_add(window) > now);
        if self.map.len() >= max_entries / 2 {
            let limit = self.limit;
            self.map.retain(|_, w| w.failures >= limit);
        }
        if self.map.len() >= max_entries / 2 {
            tracing::warn!(
                entries = self.map.len(),
                "authentication throttle full of refused sources; forgetting them all"
            );
            self.map.clear();
        }
        self.sweep_at = (self.map.len() * 2).clamp(SWEEP_MIN.min(max_entries), max_entries);
    }
}

#[derive(Debug)]
struct Tables {
    sources: Table<Source>,
    pairs: Table<(Source, u64)>,
}

/// Fixed-window counters of failed authentications; see the module documentation.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    /// Keys the hash an id is kept as, so nobody can choose ids that collide.
    id_hasher: RandomState,
    tables: Mutex<Tables>,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Self {
        let settings = ThrottleSettings {
            max_entries: settings.max_entries.max(2),
            ..settings
        };
        Self {
            tables: Mutex::new(Tables {
                sources: Table::new(settings.max_per_source, settings.max_entries),
                pairs: Table::new(settings.max_per_id_and_source, settings.max_entries),
            }),
            id_hasher: RandomState::new(),
            settings,
        }
    }

    fn keys(&self, id: &str, ip: Option<IpAddr>) -> (Source, (Source, u64)) {
        let source = Source::of(ip);
        (source, (source, self.id_hasher.hash_one(id)))
    }

    /// Seconds until a request from `ip` naming `id` may be tried, if it must wait: its source
    /// is at the per-source limit, or at the per-id limit for this id.
    pub fn blocked(&self, id: &str, ip: Option<IpAddr>, now: Timestamp) -> Option<u64> {
        let (source, pair) = self.keys(id, ip);
        let window = self.settings.window;
        // A poisoned lock only means a panic mid-update of counters; carry on.
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let by_source = tables.sources.wait(&source, window, now);
        let by_pair = tables.pairs.wait(&pair, window, now);
        by_source.max(by_pair)
    }

    /// Counts a failed authentication from `ip` naming `id`.
    pub fn record_failure(&self, id: &str, ip: Option<IpAddr>, now: Timestamp) {
        let (source, pair) = self.keys(id, ip);
        let ThrottleSettings {
            window,
            max_entries,
            ..
        } = self.settings;
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        tables.sources.record(source, window, now, max_entries);
        tables.pairs.record(pair, window, now, max_entries);
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        (tables.sources.map.len(), tables.pairs.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    fn throttle(max_per_source: u32, max_per_id_and_source: u32) -> Throttle {
        Throttle::new(ThrottleSettings {
            window: Duration::from_secs(60),
            max_per_source,
            max_per_id_and_source,
            max_entries: 100_000,
        })
    }

    const NOW: Timestamp = Timestamp::from_secs(1_000);

    #[test]
    fn failures_naming_an_id_never_block_it_from_another_source() {
        let t = throttle(50, 3);
        for _ in 0..10 {
            t.record_failure("cl_a", ip("203.0.113.1"), NOW);
        }
        assert_eq!(t.blocked("cl_a", ip("198.51.100.2"), NOW), None);
        assert_eq!(t.blocked("cl_a", None, NOW), None);
        // The failing source waits for that id, not for others (below its own limit).
        assert_eq!(t.blocked("cl_a", ip("203.0.113.1"), NOW), Some(60));
        assert_eq!(t.blocked("cl_b", ip("203.0.113.1"), NOW), None);
    }

    #[test]
    fn a_source_at_its_limit_waits_for_every_id_until_the_window_ends() {
        let t = throttle(3, 100);
        for id in ["cl_a", "cl_b", "cl_c"] {
            assert_eq!(t.blocked(id, ip("203.0.113.1"), NOW), None);
            t.record_failure(id, ip("203.0.113.1"), NOW);
        }
        assert_eq!(t.blocked("cl_new", ip("203.0.113.1"), NOW), Some(60));
        assert_eq!(
            t.blocked(
                "cl_new",
                ip("203.0.113.1"),
                Timestamp::from_millis(1_058_500)
            ),
            Some(2)
        );
        assert_eq!(
            t.blocked("cl_new", ip("203.0.113.1"), Timestamp::from_secs(1_060)),
            None
        );
        assert_eq!(t.blocked("cl_new", ip("203.0.113.2"), NOW), None);
    }

    #[test]
    fn a_window_restarts_after_it_ends() {
        let t = throttle(2, 100);
        t.record_failure("cl_a", ip("203.0.113.1"), NOW);
        // The first failure's window is over: this one starts a new window on its own.
        let later = Timestamp::from_secs(1_061);
        t.record_failure("cl_a", ip("203.0.113.1"), later);
        assert_eq!(t.blocked("cl_a", ip("203.0.113.1"), later), None);
        t.record_failure("cl_a", ip("203.0.113.1"), later);
        assert_eq!(t.blocked("cl_a", ip("203.0.113.1"), later), Some(60));
    }

    #[test]
    fn an_ipv6_source_is_its_slash_64() {
        let t = throttle(2, 100);
        t.record_failure("cl_a", ip("2001:db8:1:2::1"), NOW);
        t.record_failure("cl_b", ip("2001:db8:1:2:ffff::9"), NOW);
        assert!(t.blocked("cl_c", ip("2001:db8:1:2::77"), NOW).is_some());
        assert_eq!(t.blocked("cl_c", ip("2001:db8:1:3::1"), NOW), None);
        // An IPv4-mapped address is its IPv4 address.
        t.record_failure("cl_a", ip("::ffff:203.0.113.1"), NOW);
        t.record_failure("cl_a", ip("203.0.113.1"), NOW);
        assert!(t.blocked("cl_c", ip("203.0.113.1"), NOW).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_made_up_ids() {
        let t = throttle(1_000_000, 3);
        t.record_failure(&"x".repeat(100_000), ip("203.0.113.1"), NOW);
        for i in 0..120_000 {
            t.record_failure(&format!("cl_{i}"), ip("203.0.113.1"), NOW);
            let (sources, pairs) = t.sizes();
            assert!(sources == 1 && pairs <= 100_000, "{sources} {pairs}");
        }
        // The source's own counter saw every failure, and blocks at its limit.
        let t = throttle(100_000, 3);
        for i in 0..120_000 {
            t.record_failure(&format!("cl_{i}"), ip("203.0.113.1"), NOW);
        }
        assert!(t.sizes().1 <= 100_000);
        assert_eq!(t.blocked("cl_real", ip("203.0.113.1"), NOW), Some(60));
        assert_eq!(t.blocked("cl_real", ip("203.0.113.2"), NOW), None);
    }

    fn small(max_per_source: u32) -> Throttle {
        Throttle::new(ThrottleSettings {
            window: Duration::from_secs(60),
            max_per_source,
            max_per_id_and_source: 1_000,
            max_entries: 1_000,
        })
    }

    fn nth(i: u32) -> Option<IpAddr> {
        let [_, b, c, d] = i.to_be_bytes();
        Some(IpAddr::from([10, b, c, d]))
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses_and_refused_sources_survive() {
        let t = small(3);
        for _ in 0..3 {
            t.record_failure("cl_a", ip("198.51.100.9"), NOW);
        }
        for i in 0..50_000 {
            t.record_failure("cl_a", nth(i), NOW);
            let (sources, pairs) = t.sizes();
            assert!(sources <= 1_000 && pairs <= 1_000, "{sources} {pairs}");
        }
        assert_eq!(
            t.blocked("cl_b", ip("198.51.100.9"), NOW),
            Some(60),
            "a refused source was forgotten though room could be made without it"
        );
    }

    #[test]
    fn a_sweep_drops_ended_windows_before_live_counts() {
        let t = small(3);
        for i in 0..600 {
            t.record_failure("cl_a", nth(i), NOW);
        }
        let later = Timestamp::from_secs(1_061);
        for i in 600..1_000 {
            t.record_failure("cl_a", nth(i), later);
        }
        // The next new source makes the table sweep: the 600 ended windows make the room.
        t.record_failure("cl_a", nth(5_000), later);
        assert_eq!(t.sizes().0, 401);
        // A live count survived: two more failures reach the limit of three.
        t.record_failure("cl_a", nth(700), later);
        t.record_failure("cl_a", nth(700), later);
        assert_eq!(t.blocked("cl_a", nth(700), later), Some(60));
    }

    #[test]
    fn a_table_full_of_refused_sources_is_cleared_rather_than_grown() {
        let t = small(1);
        for i in 0..5_000 {
            t.record_failure("cl_a", nth(i), NOW);
            assert!(t.sizes().0 <= 1_000);
        }
        // Every source is refused; the table forgot the oldest ones to stay bounded, never
        // the newest.
        assert_eq!(t.blocked("cl_a", nth(4_999), NOW), Some(60));
    }
}
