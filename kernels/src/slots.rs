//! The open-addressing core both hash tables share: linear probing over slots that hold a packed
//! key (a `u64` or `u128`) next to its id, so a lookup touches one cache line in the common
//! case. The table keeps its load at most three quarters and doubles when it would pass it.

use crate::packed_key::PackedKey;
use crate::prefetch::prefetch;

const EMPTY: u32 = u32::MAX;
/// The fewest slots a table has: a few distinct keys then seldom share a slot, so that a lookup
/// almost always ends at its first slot and the branch that ends a probe stays predictable.
const MIN_CAPACITY: usize = 256;

/// A key and its id. Packed to 8-byte alignment so that a `u128` slot takes 24 bytes, not 32.
#[derive(Clone, Copy)]
#[repr(C, packed(8))]
struct Slot<K> {
    key: K,
    id: u32,
}

/// Distinct packed keys, each with the id it was given when first inserted (0, 1, 2, …).
pub(crate) struct SlotTable<K> {
    slots: Vec<Slot<K>>,
    mask: usize,
    len: usize,
}

impl<K: PackedKey> SlotTable<K> {
    /// A table sized for about `expected` distinct keys.
    pub(crate) fn with_expected(expected: usize) -> SlotTable<K> {
        let capacity = (expected.saturating_mul(4) / 3 + 1)
            .next_power_of_two()
            .max(MIN_CAPACITY);
        SlotTable {
            slots: vec![
                Slot {
                    key: K::default(),
                    id: EMPTY
                };
                capacity
            ],
            mask: capacity - 1,
            len: 0,
        }
    }

    /// The number of distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the slots.
    pub(crate) fn memory_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K>>()
    }

    /// The id of `key`, whose hash is `hash`, if it is in the table.
    /// Starts loading the slot a lookup of `hash` begins at.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(hash as usize & self.mask));
    }

    #[inline]
    pub(crate) fn find(&self, key: K, hash: u64) -> Option<u32> {
        let mut slot = hash as usize & self.mask;
        loop {
            let Slot { key: held, id } = self.slots[slot];
            if id == EMPTY {
                return None;
            }
            if held == key {
                return Some(id);
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// The id of `key`, whose hash is `hash`; a key not yet in the table gets the next id.
    #[inline]
    pub(crate) fn find_or_insert(&mut self, key: K, hash: u64) -> u32 {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mut slot = hash as usize & self.mask;
        loop {
            let Slot { key: held, id } = self.slots[slot];
            if id == EMPTY {
                let id = self.len as u32;
                self.slots[slot] = Slot { key, id };
                self.len += 1;
                return id;
            }
            if held == key {
                return id;
            }
            slot = (slot + 1) & self.mask;
        }
    }

    /// The occupied slots: key and id.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = (K, u32)> + '_ {
        self.slots
            .iter()
            .filter(|slot| slot.id != EMPTY)
            .map(|&Slot { key, id }| (key, id))
    }

    fn grow(&mut self) {
        let capacity = self.slots.len() * 2;
        let empty = Slot {
            key: K::default(),
            id: EMPTY,
        };
        let old = std::mem::replace(&mut self.slots, vec![empty; capacity]);
        self.mask = capacity - 1;
        for Slot { key, id } in old.into_iter().filter(|slot| slot.id != EMPTY) {
            let mut slot = key.hash() as usize & self.mask;
            while self.slots[slot].id != EMPTY {
                slot = (slot + 1) & self.mask;
            }
            self.slots[slot] = Slot { key, id };
        }
    }
}
