//! Little helpers every on-disk format here uses: LEB128 varints, fixed-width little-endian
//! integers, key-value entries (`[kind][key][value]`, the value left out for a delete, as in
//! log records), and a reader over a byte slice that returns an error, never
//! panics, when the bytes run out.

use crate::error::{Result, StorageError};

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

const PUT: u8 = 0;
const DELETE: u8 = 1;

/// Appends the entry of the key made of `key_parts` one after the other: its value, or `None`
/// for a delete.
pub(crate) fn put_entry_parts(out: &mut Vec<u8>, key_parts: &[&[u8]], value: Option<&[u8]>) {
    out.push(if value.is_some() { PUT } else { DELETE });
    put_varint(out, key_parts.iter().map(|part| part.len() as u64).sum());
    for part in key_parts {
        out.extend_from_slice(part);
    }
    if let Some(value) = value {
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
}

/// Reads from a byte slice, failing with a `Malformed` error naming `what` on short input.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.bytes.len() {
            return Err(StorageError::malformed(
                self.what,
                format!("needs {len} more bytes, {} left", self.bytes.len()),
            ));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let bytes = self.bytes(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let bytes = self.bytes(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(StorageError::malformed(
            self.what,
            "varint longer than 10 bytes",
        ))
    }

    /// An entry written by [`put_entry_parts`]: the key, and the value or `None` for a delete.
    pub(crate) fn entry(&mut self) -> Result<(&'a [u8], Option<&'a [u8]>)> {
        let kind = self.u8()?;
        let key = self.length_prefixed()?;
        match kind {
            PUT => Ok((key, Some(self.length_prefixed()?))),
            DELETE => Ok((key, None)),
            other => Err(StorageError::malformed(
                self.what,
                format!("unknown entry kind {other}"),
            )),
        }
    }

    /// A varint length followed by that many bytes.
    pub(crate) fn length_prefixed(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| StorageError::malformed(self.what, "length overflows"))?;
        self.bytes(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_short_input_is_an_error() {
        let mut out = Vec::new();
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            out.clear();
            put_varint(&mut out, value);
            assert_eq!(Reader::new(&out, "test").varint().unwrap(), value);
        }
        assert!(Reader::new(&[0x80], "test").varint().is_err());
        assert!(Reader::new(&[1, 2], "test").u32().is_err());
    }
}
