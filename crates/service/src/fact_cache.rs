//! A small bounded map of facts read from storage, trusted for a short time.
//!
//! What it is for: the token endpoint reads the same few rows (a client, its secret digests, its
//! tenant, a resource server; for a workload grant, the trusted issuer and its rules) on every
//! request; keeping them for up to a TTL removes those round trips from the hot path. What it must never do: hold an answer ("this secret is right") rather
//! than a fact, outlive an invalidation made in this process, or grow past its capacity.
//!
//! * Bounded: two generations of at most `capacity / 2` entries each. When the young generation
//!   is full it becomes the old one and the previous old one is dropped, so memory is bounded,
//!   every operation is O(1), and an entry read since the last turnover survives the next one.
//!   Only rows that exist are inserted by the callers, so made-up keys cannot flush the cache.
//! * Fresh: an entry is used only while `now - fetched_at < ttl`, by the injected clock; an entry
//!   stamped in the future (the clock stepped back) counts as expired.
//! * Coherent with local writes: [`FactCache::invalidate`] removes the key and bumps an epoch. A
//!   reader that started its storage read before the invalidation carries the older epoch and its
//!   insert is refused, so a value read before a write can never be cached after it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use portcullis_core::time::Timestamp;

/// A bounded, TTL-limited, invalidatable map. See the module documentation.
#[derive(Debug)]
pub struct FactCache<K, V> {
    ttl_ms: i64,
    generation_size: usize,
    inner: Mutex<Generations<K, V>>,
}

#[derive(Debug)]
struct Generations<K, V> {
    young: HashMap<K, (Timestamp, V)>,
    old: HashMap<K, (Timestamp, V)>,
    epoch: u64,
}

/// Proof of when a storage read started, for [`FactCache::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl<K: Eq + Hash + Clone, V: Clone> FactCache<K, V> {
    /// `capacity` entries at most; a zero `ttl` disables caching (every lookup misses).
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            generation_size: (capacity / 2).max(1),
            inner: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
                epoch: 0,
            }),
        }
    }

    /// The map holds only copies of stored rows; a panic elsewhere while it was locked cannot
    /// leave it in a state worse than stale, which the TTL already bounds.
    fn lock(&self) -> MutexGuard<'_, Generations<K, V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, fetched_at: Timestamp, now: Timestamp) -> bool {
        let age = now.as_millis().saturating_sub(fetched_at.as_millis());
        (0..self.ttl_ms).contains(&age)
    }

    /// The cached value, if one was fetched less than the TTL ago.
    pub fn get<Q>(&self, key: &Q, now: Timestamp) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut g = self.lock();
        if let Some((at, v)) = g.young.get(key) {
            return self.fresh(*at, now).then(|| v.clone());
        }
        let (key, (at, v)) = g.old.remove_entry(key)?;
        if !self.fresh(at, now) {
            return None;
        }
        // Promote: an entry still in use survives the next turnover.
        let value = v.clone();
        self.put(&mut g, key, at, v);
        Some(value)
    }

    /// Call before reading storage; pass the result to [`Self::insert`].
    pub fn epoch(&self) -> Epoch {
        Epoch(self.lock().epoch)
    }

    /// Caches `value`, read from storage at `fetched_at`, unless something was invalidated since
    /// `epoch` was taken (then the value may predate that write). Returns whether it was cached.
    pub fn insert(&self, key: K, value: V, epoch: Epoch, fetched_at: Timestamp) -> bool {
        if self.ttl_ms == 0 {
            return false;
        }
        let mut g = self.lock();
        if g.epoch != epoch.0 {
            return false;
        }
        g.old.remove(&key);
        self.put(&mut g, key, fetched_at, value);
        true
    }

    fn put(&self, g: &mut Generations<K, V>, key: K, at: Timestamp, value: V) {
        if g.young.len() >= self.generation_size && !g.young.contains_key(&key) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, (at, value));
    }

    /// Forgets `key`, and refuses every insert whose read began before this call.
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut g = self.lock();
        g.epoch = g.epoch.wrapping_add(1);
        g.young.remove(key);
        g.old.remove(key);
    }

    /// Forgets every entry matching `pred` (for changes that touch many keys, like a tenant's).
    pub fn invalidate_where(&self, pred: impl Fn(&K) -> bool) {
        let mut g = self.lock();
        g.epoch = g.epoch.wrapping_add(1);
        g.young.retain(|k, _| !pred(k));
        g.old.retain(|k, _| !pred(k));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn entries_expire_after_the_ttl_and_when_the_clock_steps_back() {
        let c = FactCache::new(10, Duration::from_millis(1_000));
        assert!(c.insert("a", 1, c.epoch(), at(5_000)));
        assert_eq!(c.get("a", at(5_000)), Some(1));
        assert_eq!(c.get("a", at(5_999)), Some(1));
        assert_eq!(c.get("a", at(6_000)), None);
        assert_eq!(c.get("a", at(4_999)), None, "stamped in the future");
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let c = FactCache::new(10, Duration::ZERO);
        assert!(!c.insert("a", 1, c.epoch(), at(0)));
        assert_eq!(c.get("a", at(0)), None);
    }

    #[test]
    fn a_read_that_began_before_an_invalidation_is_not_cached() {
        let c = FactCache::new(10, Duration::from_secs(1));
        let before = c.epoch();
        // A write lands and invalidates while the read is in flight.
        c.invalidate("a");
        assert!(!c.insert("a", 1, before, at(0)));
        assert_eq!(c.get("a", at(0)), None);
        assert!(c.insert("a", 2, c.epoch(), at(0)));
        assert_eq!(c.get("a", at(0)), Some(2));
        c.invalidate("a");
        assert_eq!(c.get("a", at(0)), None);
    }

    #[test]
    fn invalidate_where_drops_matching_entries_in_both_generations() {
        let c = FactCache::new(4, Duration::from_secs(1));
        for (k, v) in [("t1/a", 1), ("t1/b", 2), ("t2/a", 3)] {
            assert!(c.insert(k, v, c.epoch(), at(0)));
        }
        c.invalidate_where(|k| k.starts_with("t1/"));
        assert_eq!(c.get("t1/a", at(0)), None);
        assert_eq!(c.get("t1/b", at(0)), None);
        assert_eq!(c.get("t2/a", at(0)), Some(3));
    }

    #[test]
    fn size_stays_bounded_and_entries_in_use_survive_turnover() {
        let c = FactCache::new(100, Duration::from_secs(60));
        assert!(c.insert(0u32, 0u32, c.epoch(), at(0)));
        for i in 1..10_000u32 {
            assert!(c.insert(i, i, c.epoch(), at(0)));
            // The hot entry is read between inserts, as a busy client would be.
            assert_eq!(c.get(&0, at(0)), Some(0), "after {i} inserts");
            assert!(c.len() <= 100, "{}", c.len());
        }
        // Cold entries from long ago are gone.
        assert_eq!(c.get(&1, at(0)), None);
    }
}
