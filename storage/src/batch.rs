//! Write batches: puts and deletes applied atomically, all or nothing, and their encoding as the
//! payload of one write-ahead-log record (sequence number, count, then each operation).

use crate::codec::{Reader, put_entry};
use crate::error::{Result, StorageError};

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

    /// Adds a put of `value` under `key`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.push(key, Some(value))
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(key.as_ref(), None)
    }

    fn push(&mut self, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        put_entry(&mut self.encoded, key, value);
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

    /// The operations, in order: a key and its value, `None` for a delete.
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
            batch.push(key, value);
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
                (&b"a"[..], Some(&b"1"[..])),
                (&b"b"[..], None),
                (&b""[..], Some(&b""[..]))
            ]
        );
    }
}
