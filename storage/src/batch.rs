//! Write batches: puts and deletes applied atomically, all or nothing, and their encoding as the
//! payload of one write-ahead-log record (sequence number, count, then each operation).

use crate::codec::{Reader, put_varint};
use crate::error::{Result, StorageError};

/// The largest key the store accepts.
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// The largest value the store accepts.
pub const MAX_VALUE_BYTES: usize = 256 << 20;

const PUT: u8 = 0;
const DELETE: u8 = 1;

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
            match &operation.value {
                Some(value) => {
                    out.push(PUT);
                    put_varint(&mut out, operation.key.len() as u64);
                    out.extend_from_slice(&operation.key);
                    put_varint(&mut out, value.len() as u64);
                    out.extend_from_slice(value);
                }
                None => {
                    out.push(DELETE);
                    put_varint(&mut out, operation.key.len() as u64);
                    out.extend_from_slice(&operation.key);
                }
            }
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
            let kind = reader.u8()?;
            let key = reader.length_prefixed()?.to_vec();
            let value = match kind {
                PUT => Some(reader.length_prefixed()?.to_vec()),
                DELETE => None,
                other => {
                    return Err(StorageError::malformed(
                        "write batch",
                        format!("unknown operation {other}"),
                    ));
                }
            };
            operations.push(Operation { key, value });
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
