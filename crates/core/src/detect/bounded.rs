//! A map with a hard cap on its entries that evicts the least recently touched one: the
//! detectors' per-subject state, so an attacker who sends events for endless made-up subjects
//! (client ids, key ids, addresses) costs a fixed amount of memory and pushes out only the
//! quietest subjects, never the busy ones whose baselines matter.
//!
//! Touching and inserting are O(log n). This module must never grow past its cap.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

#[derive(Debug)]
pub struct BoundedMap<K, V> {
    cap: usize,
    seq: u64,
    entries: HashMap<K, (V, u64)>,
    /// Last-touch sequence number -> key, oldest first.
    order: BTreeMap<u64, K>,
    evicted: u64,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// A map holding at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            seq: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries pushed out by the cap so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The entry for `key`, created with `make` if absent (evicting the least recently touched
    /// entry when full), and marked as the most recently touched.
    pub fn touch(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        self.seq += 1;
        let seq = self.seq;
        if let Some((_, old)) = self.entries.get(key) {
            let old = *old;
            self.order.remove(&old);
        } else if self.entries.len() >= self.cap {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
                self.evicted += 1;
            }
        }
        self.order.insert(seq, key.clone());
        let entry = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (make(), seq));
        entry.1 = seq;
        &mut entry.0
    }

    /// Every entry, in no particular order, without touching any.
    pub fn values_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, e)| (k, &mut e.0))
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|e| &e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_the_least_recently_touched_entry_goes() {
        let mut m = BoundedMap::new(3);
        *m.touch(&"a", || 0) += 1;
        *m.touch(&"b", || 0) += 1;
        *m.touch(&"c", || 0) += 1;
        // Touch a again: b is now the oldest.
        *m.touch(&"a", || 0) += 1;
        *m.touch(&"d", || 0) += 1;
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&"a"), Some(&2));
        assert_eq!(m.get(&"b"), None);
        assert_eq!(m.evicted(), 1);
        for i in 0..10_000 {
            m.touch(&"x", || 0);
            let _ = i;
        }
        assert_eq!(m.len(), 3);
    }
}
