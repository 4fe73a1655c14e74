//! A fixed-capacity map whose entries carry a rank; when full, inserting evicts the entry with
//! the lowest rank. The tables that hold per-source or per-nonce state from the network (nonce
//! counts, failed-auth counters, bans, rate-limit buckets) use it so a flood cannot grow memory,
//! and each chooses what its rank means (issue time, last activity, ban end).
//!
//! Lookups, inserts and evictions are O(log n): a flood that evicts on every packet must not
//! turn each packet into a scan of the whole table.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

struct Slot<V, R> {
    value: V,
    rank: (R, u64),
}

/// Map of at most `capacity` entries, evicting the lowest rank (ties: the oldest insert).
pub(crate) struct BoundedMap<K, V, R = u64> {
    capacity: usize,
    entries: HashMap<K, Slot<V, R>>,
    order: BTreeMap<(R, u64), K>,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone, V, R: Ord + Copy> BoundedMap<K, V, R> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|s| &s.value)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|s| &mut s.value)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// Inserts or replaces `key`; when a new key finds the map full, the lowest-ranked entry is
    /// evicted first and returned with its rank.
    pub(crate) fn insert(&mut self, key: K, value: V, rank: R) -> Option<(K, V, R)> {
        let seq = self.seq();
        if let Some(slot) = self.entries.get_mut(&key) {
            let old = std::mem::replace(&mut slot.rank, (rank, seq));
            slot.value = value;
            self.order.remove(&old);
            self.order.insert((rank, seq), key);
            return None;
        }
        let evicted = if self.entries.len() >= self.capacity {
            self.pop_lowest()
        } else {
            None
        };
        self.entries.insert(
            key.clone(),
            Slot {
                value,
                rank: (rank, seq),
            },
        );
        self.order.insert((rank, seq), key);
        evicted
    }

    /// Changes the rank of an existing entry (no-op for an absent key).
    pub(crate) fn set_rank(&mut self, key: &K, rank: R) {
        let seq = self.seq();
        if let Some(slot) = self.entries.get_mut(key) {
            let old = std::mem::replace(&mut slot.rank, (rank, seq));
            if let Some(k) = self.order.remove(&old) {
                self.order.insert((rank, seq), k);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.order.remove(&slot.rank);
        Some(slot.value)
    }

    /// The lowest rank held.
    pub(crate) fn lowest_rank(&self) -> Option<R> {
        self.order.keys().next().map(|(rank, _)| *rank)
    }

    /// Removes and returns the lowest-ranked entry with its rank.
    pub(crate) fn pop_lowest(&mut self) -> Option<(K, V, R)> {
        let ((rank, _), key) = self.order.pop_first()?;
        let slot = self.entries.remove(&key)?;
        Some((key, slot.value, rank))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, s)| (k, &s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_lowest_rank_when_full() {
        let mut m = BoundedMap::new(2);
        assert!(m.insert("a", 1, 10).is_none());
        assert!(m.insert("b", 2, 5).is_none());
        assert_eq!(m.insert("c", 3, 20), Some(("b", 2, 5)));
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&"a"), Some(&1));
        assert_eq!(m.get(&"c"), Some(&3));
    }

    #[test]
    fn replacing_a_key_does_not_evict() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1, 1);
        m.insert("b", 2, 2);
        assert!(m.insert("a", 9, 3).is_none());
        assert_eq!(m.len(), 2);
        assert_eq!(m.lowest_rank(), Some(2));
    }

    #[test]
    fn set_rank_moves_entry_in_eviction_order() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1, 1);
        m.insert("b", 2, 2);
        m.set_rank(&"a", 5);
        assert_eq!(m.pop_lowest(), Some(("b", 2, 2)));
        assert_eq!(m.lowest_rank(), Some(5));
    }

    #[test]
    fn equal_ranks_evict_oldest_insert_first() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1, 7);
        m.insert("b", 2, 7);
        assert_eq!(m.insert("c", 3, 7), Some(("a", 1, 7)));
    }

    #[test]
    fn remove_keeps_order_consistent() {
        let mut m = BoundedMap::new(3);
        m.insert("a", 1, 1);
        m.insert("b", 2, 2);
        assert_eq!(m.remove(&"a"), Some(1));
        assert_eq!(m.lowest_rank(), Some(2));
        assert_eq!(m.pop_lowest(), Some(("b", 2, 2)));
        assert_eq!(m.pop_lowest(), None);
    }
}
