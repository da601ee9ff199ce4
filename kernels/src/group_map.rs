//! Group-id assignment for packed group keys (`u64` or `u128`): a whole batch of keys in, one group id per row
//! out, new keys getting the next ids in order of first appearance.

use crate::packed_key::PackedKey;
use crate::slots::SlotTable;

/// The distinct packed group keys seen so far; a key's group id is its index in [`GroupMap::keys`].
pub struct GroupMap<K> {
    table: SlotTable<K>,
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

    /// An empty map with room for about `groups` groups.
    pub fn with_expected(groups: usize) -> GroupMap<K> {
        GroupMap {
            table: SlotTable::with_expected(groups),
        }
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no group exists yet.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The groups' keys, in group-id order.
    pub fn keys(&self) -> Vec<K> {
        let mut keys = vec![K::default(); self.table.len()];
        for (key, id) in self.table.occupied() {
            keys[id as usize] = key;
        }
        keys
    }

    /// Appends the group id of each of `keys` to `group_ids`, adding groups for new keys.
    pub fn intern(&mut self, keys: &[K], group_ids: &mut Vec<usize>) {
        group_ids.reserve(keys.len());
        for &key in keys {
            group_ids.push(self.table.find_or_insert(key, key.hash()) as usize);
        }
    }

    /// Bytes held by the map.
    pub fn memory_size(&self) -> usize {
        self.table.memory_size()
    }
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
