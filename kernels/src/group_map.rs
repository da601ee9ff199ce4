//! Group-id assignment for packed group keys (`u64` or `u128`): a whole batch of keys in, one
//! group id per row out, new keys getting the next ids in order of first appearance.
//!
//! While the keys seen span a small enough range (a few times the rows seen, as the ids of most
//! tables' key columns do, or dictionary ids and packed fields of small ranges), a key's id is
//! looked up in an array indexed by `key - base`: no hash, no probe loop — the "perfect hash"
//! aggregation DuckDB runs on statistics. Otherwise keys go into an open-addressing table, whose
//! lookups prefetch their slots a few keys ahead once it outgrows the core's cache (and skip
//! the lookup of a key that repeats the row before it).

use crate::packed_key::PackedKey;
use crate::slots::SlotTable;

/// From this many bytes of slots on, the table is unlikely to sit in the core's cache, and a
/// batch's lookups prefetch their slots a few keys ahead.
const PREFETCH_MIN_TABLE_BYTES: usize = 1 << 18;
/// How many keys ahead a lookup prefetches.
const PREFETCH_DISTANCE: usize = 16;
/// A key range this wide is indexed directly whatever the rows seen (256 KiB of ids).
const DIRECT_SMALL_SPAN: u64 = 1 << 16;
/// The widest key range indexed directly (16 MiB of ids).
const DIRECT_MAX_SPAN: u64 = 1 << 22;
/// A range wider than [`DIRECT_SMALL_SPAN`] is indexed directly while it is at most this many
/// times the rows seen, so the array stays within a small multiple of a hash table's size.
const DIRECT_SPAN_PER_ROW: u64 = 8;
/// Marks an unused entry of the direct array.
const NO_GROUP: u32 = u32::MAX;

/// How the map finds a key's id.
enum Index<K> {
    /// `ids[key - base]` is the key's id; the keys by id are kept beside it.
    Direct {
        base: u64,
        ids: Vec<u32>,
        keys: Vec<K>,
    },
    Hashed(SlotTable<K>),
}

/// The distinct packed group keys seen so far; a key's group id is its index in [`GroupMap::keys`].
pub struct GroupMap<K> {
    index: Index<K>,
    /// The smallest and largest key seen, while every key fits 64 bits.
    range: Option<(u64, u64)>,
    /// Whether a key past 64 bits was seen: the map then always hashes.
    wide_keys_seen: bool,
    rows_seen: u64,
    /// Scratch: the hashes of the batch being interned, when it prefetches.
    hashes: Vec<u64>,
}

impl<K: PackedKey> Default for GroupMap<K> {
    fn default() -> Self {
        GroupMap::new()
    }
}

impl<K: PackedKey> GroupMap<K> {
    /// An empty map.
    pub fn new() -> GroupMap<K> {
        GroupMap::with_expected(0)
    }

    /// An empty map with room for about `groups` groups before it grows, should it hash.
    pub fn with_expected(groups: usize) -> GroupMap<K> {
        GroupMap {
            index: Index::Hashed(SlotTable::with_expected(groups)),
            range: None,
            wide_keys_seen: false,
            rows_seen: 0,
            hashes: Vec::new(),
        }
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        match &self.index {
            Index::Direct { keys, .. } => keys.len(),
            Index::Hashed(table) => table.len(),
        }
    }

    /// Whether no group exists yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether keys are looked up in the directly indexed array (else in the hash table).
    pub fn is_direct(&self) -> bool {
        matches!(self.index, Index::Direct { .. })
    }

    /// The groups' keys, in group-id order.
    pub fn keys(&self) -> Vec<K> {
        match &self.index {
            Index::Direct { keys, .. } => keys.clone(),
            Index::Hashed(table) => {
                let mut keys = vec![K::default(); table.len()];
                for (key, id) in table.occupied() {
                    keys[id as usize] = key;
                }
                keys
            }
        }
    }

    /// Appends the group id of each of `keys` to `group_ids`, adding groups for new keys.
    pub fn intern(&mut self, keys: &[K], group_ids: &mut Vec<usize>) {
        group_ids.reserve(keys.len());
        self.choose_index(keys);
        match &mut self.index {
            Index::Direct {
                base,
                ids,
                keys: by_id,
            } => {
                let base = *base;
                group_ids.extend(keys.iter().map(|&key| {
                    let slot = &mut ids[(low_bits(key) - base) as usize];
                    if *slot == NO_GROUP {
                        *slot = by_id.len() as u32;
                        by_id.push(key);
                    }
                    *slot as usize
                }));
            }
            Index::Hashed(table) if table.memory_size() < PREFETCH_MIN_TABLE_BYTES => {
                group_ids.extend(
                    keys.iter()
                        .map(|&key| table.find_or_insert(key, key.hash()) as usize),
                );
            }
            Index::Hashed(table) => {
                self.hashes.clear();
                self.hashes.extend(keys.iter().map(|key| key.hash()));
                // A key repeating the row before it (input clustered by the key, as `lineitem`
                // is by order) takes that row's id without a probe of the large table.
                let mut previous: Option<(K, usize)> = None;
                for (row, (&key, &hash)) in keys.iter().zip(&self.hashes).enumerate() {
                    if let Some(&ahead) = self.hashes.get(row + PREFETCH_DISTANCE) {
                        table.prefetch(ahead);
                    }
                    let id = match previous {
                        Some((previous_key, id)) if previous_key == key => id,
                        _ => table.find_or_insert(key, hash) as usize,
                    };
                    previous = Some((key, id));
                    group_ids.push(id);
                }
            }
        }
    }

    /// Widens the key range by `keys` and switches to the index it calls for: the direct array
    /// (re-based to cover the range) while the range is narrow enough, else the hash table.
    fn choose_index(&mut self, keys: &[K]) {
        self.rows_seen += keys.len() as u64;
        // The range only widens: past the widest direct span the map hashes for good.
        let hashes_for_good = self.wide_keys_seen
            || self
                .range
                .is_some_and(|(min, max)| max - min >= DIRECT_MAX_SPAN);
        if hashes_for_good {
            return;
        }
        match batch_range(keys) {
            Some((low, high)) => {
                self.range = Some(match self.range {
                    Some((min, max)) => (min.min(low), max.max(high)),
                    None => (low, high),
                })
            }
            None if keys.is_empty() => {}
            None => {
                self.wide_keys_seen = true;
                self.range = None;
            }
        }
        let direct_range = self.range.filter(|&(min, max)| {
            let span = max - min;
            span < DIRECT_SMALL_SPAN
                || (span < DIRECT_MAX_SPAN
                    && span < DIRECT_SPAN_PER_ROW.saturating_mul(self.rows_seen))
        });
        match (direct_range, &mut self.index) {
            (Some((min, max)), Index::Direct { base, ids, .. }) => {
                let end = *base + ids.len() as u64;
                if min < *base || max >= end {
                    // At least double the array, towards the side the keys grew: keys arriving
                    // in order (a sorted column) then re-base it a few times, not every batch.
                    let (old_base, old_ids) = (*base, std::mem::take(ids));
                    let (low, high) = (min.min(old_base), (max + 1).max(end));
                    let span = (high - low).max((2 * old_ids.len() as u64).min(DIRECT_MAX_SPAN));
                    let new_base = if min < old_base {
                        high.saturating_sub(span)
                    } else {
                        low
                    };
                    *ids = vec![NO_GROUP; span as usize];
                    let offset = (old_base - new_base) as usize;
                    ids[offset..offset + old_ids.len()].copy_from_slice(&old_ids);
                    *base = new_base;
                }
            }
            (Some((min, max)), Index::Hashed(_)) => {
                let keys = self.keys();
                let mut ids = vec![NO_GROUP; (max - min + 1) as usize];
                for (id, &key) in keys.iter().enumerate() {
                    ids[(low_bits(key) - min) as usize] = id as u32;
                }
                self.index = Index::Direct {
                    base: min,
                    ids,
                    keys,
                };
            }
            (None, Index::Direct { keys, .. }) => {
                let mut table = SlotTable::with_expected(keys.len());
                for &key in keys.iter() {
                    table.find_or_insert(key, key.hash());
                }
                self.index = Index::Hashed(table);
            }
            (None, Index::Hashed(_)) => {}
        }
    }

    /// Bytes held by the map.
    pub fn memory_size(&self) -> usize {
        let index = match &self.index {
            Index::Direct { ids, keys, .. } => {
                ids.capacity() * size_of::<u32>() + keys.capacity() * size_of::<K>()
            }
            Index::Hashed(table) => table.memory_size(),
        };
        index + self.hashes.capacity() * size_of::<u64>()
    }
}

/// The low 64 bits of a key.
#[inline]
fn low_bits<K: PackedKey>(key: K) -> u64 {
    key.get_field(0, u64::MAX)
}

/// The smallest and largest of `keys`, or `None` when there are none or one needs more than 64
/// bits.
fn batch_range<K: PackedKey>(keys: &[K]) -> Option<(u64, u64)> {
    let (fits, min, max) =
        keys.iter()
            .fold((true, u64::MAX, u64::MIN), |(fits, min, max), &key| {
                let low = low_bits(key);
                (
                    fits & (key.clear_field(0, u64::MAX) == K::default()),
                    min.min(low),
                    max.max(low),
                )
            });
    (fits && !keys.is_empty()).then_some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_first_appearance_across_batches() {
        let mut map = GroupMap::<u64>::new();
        let mut ids = Vec::new();
        map.intern(&[7, 3, 7, 9], &mut ids);
        map.intern(&[9, 1, 3], &mut ids);
        assert_eq!(ids, vec![0, 1, 0, 2, 2, 3, 1]);
        assert_eq!(map.keys(), vec![7, 3, 9, 1]);
    }

    #[test]
    fn keys_arriving_in_order_stay_direct_and_keep_their_ids() {
        let ascending: Vec<u64> = (1_000_000..1_300_000).collect();
        let descending: Vec<u64> = (700_000..1_000_000).rev().collect();
        let mut map = GroupMap::<u64>::new();
        let mut ids = Vec::new();
        for batch in ascending.chunks(1000).chain(descending.chunks(1000)) {
            map.intern(batch, &mut ids);
            assert!(map.is_direct());
        }
        assert!(ids.iter().enumerate().all(|(row, &id)| row == id));
        let mut again = Vec::new();
        map.intern(&ascending, &mut again);
        map.intern(&descending, &mut again);
        assert_eq!(ids, again);
        assert_eq!(map.keys(), [ascending, descending].concat());
    }

    #[test]
    fn grows_past_its_first_capacity() {
        let mut map = GroupMap::<u128>::new();
        let keys: Vec<u128> = (0..100_000).map(|key| ((key * 3) << 64) | key).collect();
        let mut ids = Vec::new();
        map.intern(&keys, &mut ids);
        map.intern(&keys, &mut ids);
        assert_eq!(map.len(), keys.len());
        assert_eq!(ids[..keys.len()], ids[keys.len()..]);
        assert!(
            ids[..keys.len()]
                .iter()
                .enumerate()
                .all(|(row, &id)| row == id)
        );
    }
}
