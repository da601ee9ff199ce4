//! Data blocks of a table: sorted entries whose keys are stored as the bytes they do not share
//! with the previous key, with a restart point (a key stored whole) every [`RESTART_INTERVAL`]
//! entries. Entry: `[shared varint][unshared varint][value code varint][key suffix][value]`,
//! the value code 0 for a delete and `len + 1` for a value of `len` bytes. The block ends with
//! the restart points' offsets (u32 each) and their count (u32). A point read binary-searches
//! the restart points, then scans at most one interval.

use crate::codec::{Reader, put_varint};
use crate::error::{Result, StorageError};

/// Entries between two keys stored whole.
const RESTART_INTERVAL: usize = 16;

/// A key and its value, `None` for a delete.
pub(crate) type Entry = (Vec<u8>, Option<Vec<u8>>);

/// A data block being filled.
#[derive(Default)]
pub(crate) struct BlockBuilder {
    bytes: Vec<u8>,
    restarts: Vec<u32>,
    entries_since_restart: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    /// Appends an entry; keys must come in ascending order.
    pub(crate) fn add(&mut self, key: &[u8], value: Option<&[u8]>) {
        let shared = if self.entries_since_restart == RESTART_INTERVAL || self.restarts.is_empty() {
            self.restarts.push(self.bytes.len() as u32);
            self.entries_since_restart = 0;
            0
        } else {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(left, right)| left == right)
                .count()
        };
        put_varint(&mut self.bytes, shared as u64);
        put_varint(&mut self.bytes, (key.len() - shared) as u64);
        put_varint(
            &mut self.bytes,
            value.map_or(0, |value| value.len() as u64 + 1),
        );
        self.bytes.extend_from_slice(&key[shared..]);
        if let Some(value) = value {
            self.bytes.extend_from_slice(value);
        }
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.entries_since_restart += 1;
    }

    /// Bytes the finished block would take.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() + 4 * self.restarts.len() + 4
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.restarts.is_empty()
    }

    /// The last key added.
    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the finished block to `out` and empties the builder.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        for restart in &self.restarts {
            out.extend_from_slice(&restart.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.bytes.clear();
        self.restarts.clear();
        self.entries_since_restart = 0;
        self.last_key.clear();
    }
}

/// A decoded view of a block: its entry bytes and restart offsets, checked to lie inside it.
struct Block<'a> {
    entries: &'a [u8],
    restarts: &'a [u8],
}

impl<'a> Block<'a> {
    fn parse(block: &'a [u8]) -> Result<Block<'a>> {
        let malformed = |detail: &str| StorageError::malformed("data block", detail.to_string());
        let count_at = block
            .len()
            .checked_sub(4)
            .ok_or_else(|| malformed("shorter than its restart count"))?;
        let count = u32::from_le_bytes(block[count_at..].try_into().unwrap_or_default()) as usize;
        let restarts_at = count
            .checked_mul(4)
            .and_then(|bytes| count_at.checked_sub(bytes))
            .ok_or_else(|| malformed("more restart points than bytes"))?;
        let block = Block {
            entries: &block[..restarts_at],
            restarts: &block[restarts_at..count_at],
        };
        if (0..count).any(|restart| block.restart(restart) > block.entries.len()) {
            return Err(malformed("a restart point lies outside the block"));
        }
        Ok(block)
    }

    fn restart_count(&self) -> usize {
        self.restarts.len() / 4
    }

    fn restart(&self, index: usize) -> usize {
        let bytes = &self.restarts[4 * index..4 * index + 4];
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
    }

    /// Entries from restart point `index` on.
    fn cursor_at(&self, index: usize) -> Cursor<'a> {
        Cursor {
            reader: Reader::new(&self.entries[self.restart(index)..], "data block"),
            key: Vec::new(),
        }
    }

    /// The key stored whole at restart point `index`.
    fn restart_key(&self, index: usize) -> Result<&'a [u8]> {
        let mut reader = Reader::new(&self.entries[self.restart(index)..], "data block");
        let shared = reader.varint()?;
        if shared != 0 {
            return Err(StorageError::malformed(
                "data block",
                "a restart point shares a prefix",
            ));
        }
        let unshared = reader.varint()?;
        reader.varint()?;
        let len = usize::try_from(unshared)
            .map_err(|_| StorageError::malformed("data block", "key length overflows"))?;
        reader.bytes(len)
    }
}

/// Reads entries one after another, rebuilding each key from the one before.
struct Cursor<'a> {
    reader: Reader<'a>,
    key: Vec<u8>,
}

impl<'a> Cursor<'a> {
    /// The next entry's key (in `self.key`) and value, or `None` at the end.
    fn next_entry(&mut self) -> Result<Option<Option<&'a [u8]>>> {
        if self.reader.is_empty() {
            return Ok(None);
        }
        let to_len = |value: u64| {
            usize::try_from(value)
                .map_err(|_| StorageError::malformed("data block", "length overflows"))
        };
        let shared = to_len(self.reader.varint()?)?;
        let unshared = to_len(self.reader.varint()?)?;
        let value_code = self.reader.varint()?;
        if shared > self.key.len() {
            return Err(StorageError::malformed(
                "data block",
                format!(
                    "an entry shares {shared} bytes of a {}-byte key",
                    self.key.len()
                ),
            ));
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(self.reader.bytes(unshared)?);
        let value = match value_code {
            0 => None,
            code => Some(self.reader.bytes(to_len(code - 1)?)?),
        };
        Ok(Some(value))
    }
}

/// The value of `key` in a block: `Some(None)` for a delete, `None` if absent.
pub(crate) fn search_block(block: &[u8], key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
    let block = Block::parse(block)?;
    // The last restart point whose key is at most `key`.
    let (mut low, mut high) = (0, block.restart_count());
    while low < high {
        let middle = (low + high) / 2;
        if block.restart_key(middle)? <= key {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    let Some(start) = low.checked_sub(1) else {
        return Ok(None);
    };
    let mut cursor = block.cursor_at(start);
    while let Some(value) = cursor.next_entry()? {
        match cursor.key.as_slice().cmp(key) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Ok(Some(value.map(<[u8]>::to_vec))),
            std::cmp::Ordering::Greater => break,
        }
    }
    Ok(None)
}

/// Every entry of a block, in key order.
pub(crate) fn decode_block(block: &[u8]) -> Result<Vec<Entry>> {
    let block = Block::parse(block)?;
    if block.restart_count() == 0 {
        return Ok(Vec::new());
    }
    let mut cursor = block.cursor_at(0);
    let mut entries = Vec::new();
    while let Some(value) = cursor.next_entry()? {
        entries.push((cursor.key.clone(), value.map(<[u8]>::to_vec)));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[Entry]) -> Vec<u8> {
        let mut builder = BlockBuilder::default();
        for (key, value) in entries {
            builder.add(key, value.as_deref());
        }
        let expected_len = builder.len();
        let mut out = Vec::new();
        builder.finish_into(&mut out);
        assert_eq!(out.len(), expected_len);
        out
    }

    #[test]
    fn every_key_is_found_and_shared_prefixes_are_stored_once() {
        let entries: Vec<Entry> = (0..100u32)
            .map(|index| {
                let key = format!("user/{index:06}").into_bytes();
                let value = (index % 7 != 0).then(|| format!("v{index}").into_bytes());
                (key, value)
            })
            .collect();
        let block = build(&entries);
        let raw: usize = entries
            .iter()
            .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
            .sum();
        assert!(block.len() < raw, "{} bytes for {raw} raw", block.len());
        assert_eq!(decode_block(&block).unwrap(), entries);
        for (key, value) in &entries {
            assert_eq!(search_block(&block, key).unwrap(), Some(value.clone()));
        }
        for absent in [&b"a"[..], b"user/000000a", b"user/999999", b"zzz"] {
            assert_eq!(search_block(&block, absent).unwrap(), None, "{absent:?}");
        }
    }

    #[test]
    fn damaged_blocks_are_errors() {
        let block = build(&[(b"key".to_vec(), Some(b"value".to_vec()))]);
        assert!(search_block(&block[..2], b"key").is_err());
        let mut many_restarts = block.clone();
        let count_at = many_restarts.len() - 4;
        many_restarts[count_at..].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decode_block(&many_restarts).is_err());
        let mut shares_too_much = Vec::new();
        for byte in [0u8, 1, 1, b'a', 5, 1, 1, b'b'] {
            shares_too_much.push(byte);
        }
        shares_too_much.extend_from_slice(&0u32.to_le_bytes());
        shares_too_much.extend_from_slice(&1u32.to_le_bytes());
        assert!(decode_block(&shares_too_much).is_err());
    }
}
