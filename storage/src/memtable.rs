//! The memtable: the newest writes, sorted by key, a `None` value marking a delete that must
//! shadow older values in the tables on disk. Keys of up to 32 bytes are stored inline and
//! ordered first by their first eight bytes read as a big-endian word (one integer comparison
//! settles most pairs); values are appended to one arena, so a write allocates nothing of its
//! own and a flush frees everything at once.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::batch::WriteBatch;

const INLINE_KEY_BYTES: usize = 32;

/// A key as the memtable orders it: the same order as the bytes'.
#[derive(Clone)]
struct MemKey {
    /// The first eight bytes, big-endian, zero-padded: comparing these agrees with comparing
    /// the bytes unless they are equal.
    prefix: u64,
    bytes: KeyBytes,
}

#[derive(Clone)]
enum KeyBytes {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Box<[u8]>),
}

impl MemKey {
    fn new(key: &[u8]) -> MemKey {
        let mut word = [0u8; 8];
        let head = key.len().min(8);
        word[..head].copy_from_slice(&key[..head]);
        let bytes = if key.len() <= INLINE_KEY_BYTES {
            let mut inline = [0u8; INLINE_KEY_BYTES];
            inline[..key.len()].copy_from_slice(key);
            KeyBytes::Inline {
                len: key.len() as u8,
                bytes: inline,
            }
        } else {
            KeyBytes::Heap(key.into())
        };
        MemKey {
            prefix: u64::from_be_bytes(word),
            bytes,
        }
    }

    fn as_slice(&self) -> &[u8] {
        match &self.bytes {
            KeyBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBytes::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.as_slice() == other.as_slice()
    }
}

impl Eq for MemKey {}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.as_slice().cmp(other.as_slice()))
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a key's newest value is in the arena; `None` for a delete.
type ValueSlot = Option<(usize, usize)>;

/// Sorted recent writes.
#[derive(Default)]
pub(crate) struct MemTable {
    entries: BTreeMap<MemKey, ValueSlot>,
    values: Vec<u8>,
    bytes: usize,
}

impl MemTable {
    pub(crate) fn apply(&mut self, batch: &WriteBatch) {
        for (key, value) in batch.operations() {
            self.bytes += key.len() + value.map_or(0, <[u8]>::len) + 48;
            let slot = value.map(|value| {
                let start = self.values.len();
                self.values.extend_from_slice(value);
                (start, value.len())
            });
            self.entries.insert(MemKey::new(key), slot);
        }
    }

    fn value(&self, slot: ValueSlot) -> Option<&[u8]> {
        slot.map(|(start, len)| &self.values[start..start + len])
    }

    /// `Some(None)` for a deleted key, `None` when the memtable does not know the key.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.entries
            .get(&MemKey::new(key))
            .map(|&slot| self.value(slot))
    }

    /// About how many bytes the entries take.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries with keys in `[start, end)`, `end` `None` meaning no upper bound.
    pub(crate) fn range<'a>(
        &'a self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
        let upper = end.map_or(Bound::Unbounded, |end| Bound::Excluded(MemKey::new(end)));
        self.entries
            .range((Bound::Included(MemKey::new(start)), upper))
            .map(|(key, &slot)| (key.as_slice(), self.value(slot)))
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|(key, &slot)| (key.as_slice(), self.value(slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_their_bytes_do_and_newest_writes_win() {
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0\0\0\0\0\0\0".to_vec(),
            b"ab".to_vec(),
            vec![b'z'; 40],
            vec![b'z'; 41],
            vec![0xff; 8],
            vec![0xff; 9],
        ];
        let mut table = MemTable::default();
        for key in keys.iter().rev() {
            let mut batch = WriteBatch::new();
            batch.put(key, b"old");
            table.apply(&batch);
        }
        let mut batch = WriteBatch::new();
        batch.put(b"ab", b"new").delete(b"a");
        table.apply(&batch);
        // Batches put keys of the default family: its id (two zero bytes), then the key.
        let stored = |key: &[u8]| [&[0u8, 0][..], key].concat();
        let listed: Vec<&[u8]> = table.entries().map(|(key, _)| key).collect();
        let expected: Vec<Vec<u8>> = keys.iter().map(|key| stored(key)).collect();
        assert_eq!(
            listed,
            expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert_eq!(table.get(&stored(b"ab")), Some(Some(&b"new"[..])));
        assert_eq!(table.get(&stored(b"a")), Some(None));
        assert_eq!(table.get(&stored(b"b")), None);
        let ranged: Vec<&[u8]> = table
            .range(&stored(b"a\0"), Some(&stored(b"b")))
            .map(|(key, _)| key)
            .collect();
        let middle: Vec<&[u8]> = expected[2..5].iter().map(Vec::as_slice).collect();
        assert_eq!(ranged, middle);
    }
}
