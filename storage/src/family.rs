//! Column families: named keyspaces of one store. Every key in the store's tree begins with
//! its family's id as two big-endian bytes, so the families share the log, memtables and
//! tables, one batch can write to several of them atomically, and a family's keys form one
//! contiguous range. Id 0 is the default family (what [`crate::Db::put`] and the other
//! methods without `_cf` use); the last id holds the registry of names.

use std::sync::Arc;

/// The family of keys written without one.
pub(crate) const DEFAULT_FAMILY: u16 = 0;
/// The family holding the registry: a family's name → its id.
pub(crate) const REGISTRY_FAMILY: u16 = u16::MAX;
/// Bytes a family's id adds in front of its keys.
pub(crate) const FAMILY_BYTES: usize = 2;

/// A named keyspace of a store, from [`crate::Db::column_family`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnFamily {
    id: u16,
    name: Arc<str>,
}

impl ColumnFamily {
    pub(crate) fn new(id: u16, name: &str) -> ColumnFamily {
        ColumnFamily {
            id,
            name: name.into(),
        }
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn id(&self) -> u16 {
        self.id
    }
}

/// The key `key` of family `family` has in the store's tree.
pub(crate) fn family_key(family: u16, key: &[u8]) -> Vec<u8> {
    let mut internal = Vec::with_capacity(FAMILY_BYTES + key.len());
    internal.extend_from_slice(&family.to_be_bytes());
    internal.extend_from_slice(key);
    internal
}

/// The tree's bounds of family `family`'s keys in `[start, end)` (`end` `None`: to the
/// family's last key).
pub(crate) fn family_bounds(
    family: u16,
    start: &[u8],
    end: Option<&[u8]>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let end = match end {
        Some(end) => Some(family_key(family, end)),
        None => family
            .checked_add(1)
            .map(|next| next.to_be_bytes().to_vec()),
    };
    (family_key(family, start), end)
}
