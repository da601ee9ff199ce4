//! The write-ahead log: one record per write batch, `[payload length u32][crc32c u32][payload]`,
//! appended before the batch reaches the memtable. The file is reserved on disk ahead of the
//! writes and mapped into memory: a buffered append is a copy into the mapping (in the page
//! cache, so it outlives the process without a system call). A synced append is written with
//! `pwrite` and then the file's data synced (`fdatasync`, through io_uring where the kernel
//! allows it) before it returns; writes committed together as a group share one sync. The
//! unwritten rest of the file is zeros, and an all-zero header ends the log. On reopen the
//! records are replayed in order; a record cut short or failing its checksum with only zeros
//! after it is a write that was never acknowledged (the process died while appending it) and is
//! discarded. A damaged record with written bytes after it is reported as corruption, never
//! skipped.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::WriteBatch;
use crate::codec::Reader;
use crate::error::{Result, StorageError};
use crate::mapped_log::MappedFile;
use crate::uring::UringLog;

const HEADER_BYTES: usize = 8;
/// Space reserved for a new log; it doubles whenever appends reach its end.
const INITIAL_RESERVATION: usize = 4 << 20;

/// An open log file being appended to.
pub(crate) struct WalWriter {
    path: PathBuf,
    file: File,
    mapped: MappedFile,
    /// Bytes written so far: where the next record goes.
    end: usize,
    /// Set when syncs go through io_uring.
    uring: Option<UringLog>,
    /// The records of a synced append, encoded for one `pwrite`.
    encoded: Vec<u8>,
}

impl WalWriter {
    /// Creates (or truncates) the log at `path`; with `io_uring`, syncs go through a ring
    /// where one can be made (else, said once on stderr, through `fdatasync`).
    pub(crate) fn create(path: &Path, io_uring: bool) -> Result<WalWriter> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(StorageError::io(path))?;
        let mapped = MappedFile::reserve_and_map(&file, INITIAL_RESERVATION)
            .map_err(StorageError::io(path))?;
        let uring = if io_uring {
            match UringLog::new() {
                Ok(uring) => Some(uring),
                Err(error) => {
                    static REPORTED: std::sync::Once = std::sync::Once::new();
                    REPORTED.call_once(|| {
                        eprintln!(
                            "sabot-storage: io_uring is not available here ({error}); the log syncs with fdatasync"
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
            mapped,
            end: 0,
            uring,
            encoded: Vec::new(),
        })
    }

    /// Whether syncs go through io_uring.
    pub(crate) fn uses_io_uring(&self) -> bool {
        self.uring.is_some()
    }

    /// Appends one record per payload; with `sync`, they are on disk (one sync for all) when
    /// this returns.
    pub(crate) fn append<'a>(
        &mut self,
        payloads: impl Iterator<Item = &'a [u8]> + Clone,
        sync: bool,
    ) -> Result<()> {
        let bytes: usize = payloads
            .clone()
            .map(|payload| HEADER_BYTES + payload.len())
            .sum();
        self.reserve(self.end + bytes)?;
        if sync {
            // Written with `pwrite`, not copied into the mapping: the sync then finds no mapped
            // page to write-protect, and the next append takes no page fault for it. (A write
            // linked to the sync in one io_uring submission was slower: the kernel hands a
            // buffered write to a worker thread, 0.7 of `pwrite` + `fdatasync` here.)
            self.encoded.clear();
            for payload in payloads {
                self.encoded.extend_from_slice(&record_header(payload));
                self.encoded.extend_from_slice(payload);
            }
            self.file
                .write_all_at(&self.encoded, self.end as u64)
                .and_then(|()| match &mut self.uring {
                    Some(uring) => uring.sync_data(&self.file),
                    None => self.file.sync_data(),
                })
                .map_err(StorageError::io(&self.path))?;
            self.end += bytes;
            return Ok(());
        }
        let mut offset = self.end;
        for payload in payloads {
            self.mapped
                .write(offset, &record_header(payload))
                .and_then(|()| self.mapped.write(offset + HEADER_BYTES, payload))
                .map_err(StorageError::io(&self.path))?;
            offset += HEADER_BYTES + payload.len();
        }
        self.end = offset;
        Ok(())
    }

    /// Makes room for the log to reach `len` bytes: a larger reservation, mapped anew.
    fn reserve(&mut self, len: usize) -> Result<()> {
        if len <= self.mapped.len() {
            return Ok(());
        }
        let mut reservation = self.mapped.len().max(INITIAL_RESERVATION);
        while reservation < len {
            reservation *= 2;
        }
        self.mapped = MappedFile::reserve_and_map(&self.file, reservation)
            .map_err(StorageError::io(&self.path))?;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A record's header: its payload's length and checksum.
fn record_header(payload: &[u8]) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    header
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
        if len == 0 && crc == 0 {
            // The reserved, never-written rest of the log.
            break;
        }
        let start = offset + HEADER_BYTES;
        let Some(end) = start.checked_add(len).filter(|&end| end <= bytes.len()) else {
            // The record runs past the end of the log: torn while being appended.
            break;
        };
        let payload = &bytes[start..end];
        if crc32c::crc32c(payload) != crc {
            if bytes[end..].iter().all(|&byte| byte == 0) {
                // Nothing was written after it: torn while being appended.
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
        let written = wal.end;
        let whole = std::fs::read(&path).unwrap();
        assert!(
            whole.len() > written,
            "the log is reserved ahead of its records"
        );
        assert!(whole[written..].iter().all(|&byte| byte == 0));
        assert_eq!(decode_records(&whole).unwrap().len(), 3);
        // The last record only partly written (its end still zeros), or the file cut into
        // it: it was never acknowledged.
        let mut torn = whole.clone();
        torn[written - 3..written].fill(0);
        assert_eq!(decode_records(&torn).unwrap().len(), 2);
        assert_eq!(decode_records(&whole[..written - 3]).unwrap().len(), 2);
        let mut flipped = whole.clone();
        flipped[written - 1] ^= 0xff;
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
