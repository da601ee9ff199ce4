//! The memtable: the newest writes, sorted by key, a `None` value marking a delete that must
//! shadow older values in the tables on disk.

use std::collections::BTreeMap;

use crate::batch::WriteBatch;

/// Sorted recent writes.
#[derive(Default)]
pub(crate) struct MemTable {
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

impl MemTable {
    pub(crate) fn apply(&mut self, batch: &WriteBatch) {
        for operation in &batch.operations {
            self.bytes += operation.key.len() + operation.value.as_ref().map_or(0, Vec::len) + 32;
            self.entries
                .insert(operation.key.clone(), operation.value.clone());
        }
    }

    /// `Some(None)` for a deleted key, `None` when the memtable does not know the key.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.entries.get(key).map(Option::as_deref)
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
        end: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
        use std::ops::Bound;
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        self.entries
            .range::<[u8], _>((Bound::Included(start), upper))
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }
}
