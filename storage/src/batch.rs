//! Write batches: puts and deletes applied atomically, all or nothing, and their encoding as the
//! payload of one write-ahead-log record (sequence number, count, then each operation).

use crate::codec::{Reader, put_entry_parts};
use crate::error::{Result, StorageError};
use crate::family::{ColumnFamily, DEFAULT_FAMILY, FAMILY_BYTES};

/// The largest key the store accepts.
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// The largest value the store accepts.
pub const MAX_VALUE_BYTES: usize = 256 << 20;

/// Puts and deletes that a [`crate::Db::write`] applies atomically, in order. The operations
/// are kept encoded, one after the other, exactly as the write-ahead log stores them, so a
/// batch costs one buffer and goes to the log with one copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    encoded: Vec<u8>,
    count: u32,
    largest_key: usize,
    largest_value: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Adds a put of `value` under `key` (in the default family).
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        self.push(DEFAULT_FAMILY, key.as_ref(), Some(value.as_ref()))
    }

    /// Adds a delete of `key` (in the default family).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(DEFAULT_FAMILY, key.as_ref(), None)
    }

    /// Adds a put of `value` under `key` in `family`.
    pub fn put_cf(
        &mut self,
        family: &ColumnFamily,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> &mut Self {
        self.push(family.id(), key.as_ref(), Some(value.as_ref()))
    }

    /// Adds a delete of `key` in `family`.
    pub fn delete_cf(&mut self, family: &ColumnFamily, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(family.id(), key.as_ref(), None)
    }

    pub(crate) fn push(&mut self, family: u16, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        put_entry_parts(&mut self.encoded, &[&family.to_be_bytes(), key], value);
        self.count += 1;
        self.largest_key = self.largest_key.max(key.len());
        self.largest_value = self.largest_value.max(value.map_or(0, <[u8]>::len));
        self
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The operations, in order: a key as the tree stores it (family id first) and its value,
    /// `None` for a delete.
    pub(crate) fn operations(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let mut reader = Reader::new(&self.encoded, "write batch");
        // The bytes were encoded by `push`, so every entry decodes.
        (0..self.count).map_while(move |_| reader.entry().ok())
    }

    pub(crate) fn check_sizes(&self) -> Result<()> {
        if self.largest_key > MAX_KEY_BYTES {
            return Err(StorageError::TooLarge {
                what: "key",
                len: self.largest_key,
                limit: MAX_KEY_BYTES,
            });
        }
        if self.largest_value > MAX_VALUE_BYTES {
            return Err(StorageError::TooLarge {
                what: "value",
                len: self.largest_value,
                limit: MAX_VALUE_BYTES,
            });
        }
        Ok(())
    }

    /// The log record payload: sequence number, operation count, then the operations.
    pub(crate) fn encode(&self, sequence: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.encoded.len());
        out.extend_from_slice(&sequence.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.encoded);
        out
    }

    /// The sequence number and batch of a log record payload; an error, never a panic, for
    /// bytes that are not one.
    pub(crate) fn decode(payload: &[u8]) -> Result<(u64, WriteBatch)> {
        let mut reader = Reader::new(payload, "write batch");
        let sequence = reader.u64()?;
        let count = reader.u32()?;
        let mut batch = WriteBatch::new();
        for _ in 0..count {
            let (key, value) = reader.entry()?;
            let Some((family, key)) = key.split_first_chunk::<FAMILY_BYTES>() else {
                return Err(StorageError::malformed(
                    "write batch",
                    "a key without its family",
                ));
            };
            batch.push(u16::from_be_bytes(*family), key, value);
        }
        if !reader.is_empty() {
            return Err(StorageError::malformed(
                "write batch",
                "bytes after the last operation",
            ));
        }
        Ok((sequence, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let mut batch = WriteBatch::new();
        batch.put("a", "1").delete("b").put(Vec::new(), Vec::new());
        let (sequence, decoded) = WriteBatch::decode(&batch.encode(42)).unwrap();
        assert_eq!((sequence, &decoded), (42, &batch));
        let operations: Vec<_> = decoded.operations().collect();
        assert_eq!(
            operations,
            vec![
                (&b"\0\0a"[..], Some(&b"1"[..])),
                (&b"\0\0b"[..], None),
                (&b"\0\0"[..], Some(&b""[..]))
            ],
            "keys of the default family start with its id, 0"
        );
    }
}
