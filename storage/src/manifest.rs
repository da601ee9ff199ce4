//! The `MANIFEST` file: which table files make up the store, at which level, in read order.
//! Rewritten whole on every flush and compaction (written under a temporary name, synced,
//! renamed into place, directory synced), so it is always the old list or the new one. Table
//! files it does not name are leftovers of an interrupted flush or compaction. Layout: magic,
//! version, the newest sequence number flushed, count, then `(level u8, file number u64)` per
//! table, then a CRC-32C of all of it.

use std::path::Path;

use crate::codec::Reader;
use crate::error::{Result, StorageError};

pub(crate) const MANIFEST: &str = "MANIFEST";
const MAGIC: u64 = u64::from_le_bytes(*b"SABOTMAN");
const VERSION: u32 = 1;

/// A table of the store: its level and file number.
pub(crate) type TableRecord = (u8, u64);

/// What a manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The newest write flushed into a table: the logs' older records are not replayed.
    pub(crate) flushed_sequence: u64,
    /// In read order: level 0 newest first, then each sorted level by key.
    pub(crate) tables: Vec<TableRecord>,
}

pub(crate) fn encode(manifest: &Manifest) -> Vec<u8> {
    let tables = &manifest.tables;
    let mut out = Vec::with_capacity(28 + 9 * tables.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&manifest.flushed_sequence.to_le_bytes());
    out.extend_from_slice(&(tables.len() as u32).to_le_bytes());
    for (level, number) in tables {
        out.push(*level);
        out.extend_from_slice(&number.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest> {
    let checked = crate::sstable::verified(bytes, "manifest")?;
    let mut reader = Reader::new(checked, "manifest");
    if reader.u64()? != MAGIC {
        return Err(StorageError::malformed("manifest", "bad magic"));
    }
    let version = reader.u32()?;
    if version != VERSION {
        return Err(StorageError::malformed(
            "manifest",
            format!("version {version}, this build reads {VERSION}"),
        ));
    }
    let flushed_sequence = reader.u64()?;
    let count = reader.u32()?;
    let mut tables = Vec::new();
    for _ in 0..count {
        tables.push((reader.u8()?, reader.u64()?));
    }
    if !reader.is_empty() {
        return Err(StorageError::malformed(
            "manifest",
            "bytes after the last table",
        ));
    }
    Ok(Manifest {
        flushed_sequence,
        tables,
    })
}

/// Replaces `dir`'s manifest with `manifest`, durably.
pub(crate) fn write(dir: &Path, manifest: &Manifest) -> Result<()> {
    let temporary = dir.join(format!("{MANIFEST}.tmp"));
    let path = dir.join(MANIFEST);
    std::fs::write(&temporary, encode(manifest)).map_err(StorageError::io(&temporary))?;
    std::fs::File::open(&temporary)
        .and_then(|file| file.sync_all())
        .map_err(StorageError::io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
    crate::db::sync_dir(dir)
}

/// `dir`'s manifest, if it has one.
pub(crate) fn read(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|error| error.at(&path, 0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StorageError::Io {
            path,
            source: error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let manifest = Manifest {
            flushed_sequence: 1234,
            tables: vec![(0, 9), (0, 7), (1, 3), (2, 1)],
        };
        let bytes = encode(&manifest);
        assert_eq!(decode(&bytes).unwrap(), manifest);
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x10;
            assert!(decode(&damaged).is_err(), "byte {index}");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
