//! The write-ahead log: one record per write batch, `[payload length u32][crc32c u32][payload]`,
//! appended before the batch reaches the memtable. A synced write calls `fdatasync` before it
//! returns; writes committed together as a group share one write and one `fdatasync`. On reopen the records are replayed in order; a record cut short or failing its
//! checksum at the end of the log is a write that was never acknowledged (the process died
//! while appending it) and is discarded. A damaged record with intact bytes after it is
//! reported as corruption, never skipped.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::WriteBatch;
use crate::codec::Reader;
use crate::error::{Result, StorageError};
use crate::uring::UringLog;

const HEADER_BYTES: usize = 8;

/// An open log file being appended to.
pub(crate) struct WalWriter {
    path: PathBuf,
    file: File,
    /// Bytes written so far: where the next record goes.
    end: u64,
    /// Set when appends go through io_uring.
    uring: Option<UringLog>,
}

impl WalWriter {
    /// Creates (or truncates) the log at `path`; with `io_uring`, synced appends go through a
    /// ring where one can be made (else, said once on stderr, through `write` and
    /// `fdatasync`).
    pub(crate) fn create(path: &Path, io_uring: bool) -> Result<WalWriter> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(StorageError::io(path))?;
        let uring = if io_uring {
            match UringLog::new() {
                Ok(uring) => Some(uring),
                Err(error) => {
                    static REPORTED: std::sync::Once = std::sync::Once::new();
                    REPORTED.call_once(|| {
                        eprintln!(
                            "sabot-storage: io_uring is not available here ({error}); the log uses write and fdatasync"
                        );
                    });
                    None
                }
            }
        } else {
            None
        };
        Ok(WalWriter {
            path: path.to_path_buf(),
            file,
            end: 0,
            uring,
        })
    }

    /// Whether appends go through io_uring.
    pub(crate) fn uses_io_uring(&self) -> bool {
        self.uring.is_some()
    }

    /// Appends one record per payload, in one write; with `sync`, they are on disk (one
    /// `fdatasync` for all) when this returns.
    pub(crate) fn append<'a>(
        &mut self,
        payloads: impl Iterator<Item = &'a [u8]>,
        sync: bool,
    ) -> Result<()> {
        let mut records = Vec::new();
        for payload in payloads {
            records.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            records.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
            records.extend_from_slice(payload);
        }
        // Only synced appends go through the ring: a buffered write to a file is handed to a
        // kernel worker thread there, which made buffered appends many times slower than a
        // plain `write` on this project's machines.
        match &mut self.uring {
            Some(uring) if sync => uring
                .write_at(&self.file, &records, self.end, sync)
                .map_err(StorageError::io(&self.path))?,
            _ => {
                // At the log's end by position, like the ring's writes, which move no cursor.
                self.file
                    .write_all_at(&records, self.end)
                    .map_err(StorageError::io(&self.path))?;
                if sync {
                    self.file
                        .sync_data()
                        .map_err(StorageError::io(&self.path))?;
                }
            }
        }
        self.end += records.len() as u64;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The batches of the log at `path`, in order, with their sequence numbers. A torn last
/// record ends the replay; a damaged record with intact bytes after it is corruption, reported
/// with its offset.
pub(crate) fn replay(path: &Path) -> Result<Vec<(u64, WriteBatch)>> {
    let bytes = std::fs::read(path).map_err(StorageError::io(path))?;
    decode_records(&bytes).map_err(|(offset, error)| error.at(path, offset))
}

/// Every record of `bytes` up to a torn last one; the offset and error of a damaged record that
/// is not the last.
pub(crate) fn decode_records(
    bytes: &[u8],
) -> std::result::Result<Vec<(u64, WriteBatch)>, (u64, StorageError)> {
    let mut batches = Vec::new();
    let mut offset = 0usize;
    while bytes.len() - offset >= HEADER_BYTES {
        let mut header = Reader::new(&bytes[offset..offset + HEADER_BYTES], "log record");
        let (len, crc) = match (header.u32(), header.u32()) {
            (Ok(len), Ok(crc)) => (len as usize, crc),
            _ => break,
        };
        let start = offset + HEADER_BYTES;
        let Some(end) = start.checked_add(len).filter(|&end| end <= bytes.len()) else {
            // The record runs past the end of the log: torn while being appended.
            break;
        };
        let payload = &bytes[start..end];
        if crc32c::crc32c(payload) != crc {
            if end == bytes.len() {
                break;
            }
            return Err((
                offset as u64,
                StorageError::malformed("log record", "checksum mismatch"),
            ));
        }
        batches.push(WriteBatch::decode(payload).map_err(|error| (offset as u64, error))?);
        offset = end;
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(key: &str) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(key, "value");
        batch
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.wal");
        let mut wal = WalWriter::create(&path, true).unwrap();
        for (sequence, key) in ["a", "b", "c"].iter().enumerate() {
            let payload = batch(key).encode(sequence as u64);
            wal.append(std::iter::once(payload.as_slice()), true)
                .unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(decode_records(&whole).unwrap().len(), 3);
        // Cut into the last record: it was never acknowledged.
        assert_eq!(decode_records(&whole[..whole.len() - 3]).unwrap().len(), 2);
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert_eq!(decode_records(&flipped).unwrap().len(), 2);
        assert_eq!(replay(&path).unwrap()[1].1, batch("b"));
        // Damage in the first record, with intact records after it, is corruption.
        let mut damaged = whole.clone();
        damaged[HEADER_BYTES + 2] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        let error = replay(&path).unwrap_err().to_string();
        assert!(error.contains("0.wal at offset 0"), "{error}");
    }
}
