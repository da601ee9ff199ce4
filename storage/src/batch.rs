//! Write batches: puts and deletes applied atomically, all or nothing, and their encoding as the
//! payload of one write-ahead-log record (sequence number, count, then each operation).

use crate::codec::{Reader, put_entry};
use crate::error::{Result, StorageError};

/// The largest key the store accepts.
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// The largest value the store accepts.
pub const MAX_VALUE_BYTES: usize = 256 << 20;

/// One operation of a batch: a value for a key, or `None` to delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
}

/// Puts and deletes that a [`crate::Db::write`] applies atomically, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) operations: Vec<Operation>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.operations.push(Operation {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.operations.push(Operation {
            key: key.into(),
            value: None,
        });
        self
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Refuses keys and values over the limits.
    pub(crate) fn check_sizes(&self) -> Result<()> {
        for operation in &self.operations {
            if operation.key.len() > MAX_KEY_BYTES {
                return Err(StorageError::TooLarge {
                    what: "key",
                    len: operation.key.len(),
                    limit: MAX_KEY_BYTES,
                });
            }
            if let Some(value) = &operation.value
                && value.len() > MAX_VALUE_BYTES
            {
                return Err(StorageError::TooLarge {
                    what: "value",
                    len: value.len(),
                    limit: MAX_VALUE_BYTES,
                });
            }
        }
        Ok(())
    }

    /// The batch as a log record payload, under sequence number `sequence`.
    pub(crate) fn encode(&self, sequence: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            12 + self
                .operations
                .iter()
                .map(|op| 12 + op.key.len() + op.value.as_ref().map_or(0, Vec::len))
                .sum::<usize>(),
        );
        out.extend_from_slice(&sequence.to_le_bytes());
        out.extend_from_slice(&(self.operations.len() as u32).to_le_bytes());
        for operation in &self.operations {
            put_entry(&mut out, &operation.key, operation.value.as_deref());
        }
        out
    }

    /// Decodes a payload into its sequence number and batch.
    pub(crate) fn decode(payload: &[u8]) -> Result<(u64, WriteBatch)> {
        let mut reader = Reader::new(payload, "write batch");
        let sequence = reader.u64()?;
        let count = reader.u32()?;
        let mut operations = Vec::new();
        for _ in 0..count {
            let (key, value) = reader.entry()?;
            operations.push(Operation {
                key: key.to_vec(),
                value: value.map(<[u8]>::to_vec),
            });
        }
        if !reader.is_empty() {
            return Err(StorageError::malformed(
                "write batch",
                "bytes after the last operation",
            ));
        }
        Ok((sequence, WriteBatch { operations }))
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
        assert_eq!((sequence, decoded), (42, batch));
    }
}
