//! Sabot's key-value store, the state store of streaming operators and the base of persistent
//! tables: a write-ahead log with checksummed records ([`Durability`] per write: buffered, or
//! synced before the call returns), a sorted memtable, and immutable sorted tables
//! (checksummed 4 KiB blocks of prefix-compressed keys with restart points, optionally LZ4, an
//! index, a bloom filter, a versioned footer) in levels named by a manifest. Reopening replays
//! the log, drops a torn last record, and reports a damaged block or record as an error naming
//! its file and offset, never as data.
//!
//! Concurrent writers commit in groups that share one log write and one `fdatasync`; synced log
//! appends go through io_uring where the kernel allows it (probed, `Options::io_uring` off
//! forces plain system calls), as do batched point reads ([`Db::multi_get`]) and scan
//! read-ahead. Full memtables are flushed and tables compacted (leveled or size-tiered,
//! [`CompactionStyle`]) by two background threads; writes stall, counted in [`StoreStats`],
//! while they lag. Reads merge memtables and tables, the newest entry of a key winning; point
//! reads go through a block cache. Snapshots, column families and checkpoints (hard links to
//! the immutable tables) read or copy the store as of one moment.
//!
//! The [`StateBackend`]s keep streaming operators' keyed value, list and map state in memory
//! ([`MemoryState`]), in the store ([`LsmState`]) or in Redis ([`RedisState`]), with snapshots
//! at checkpoints.

#![deny(unsafe_code)]

mod background;
mod batch;
mod block;
mod block_cache;
mod bloom;
mod codec;
mod compaction;
mod db;
mod error;
mod family;
mod manifest;
mod mapped_log;
mod memtable;
mod merge;
mod multi_get;
mod read_mapping;
mod redis;
mod sstable;
mod state;
mod uring;
mod version;
mod wal;

pub use batch::{MAX_KEY_BYTES, MAX_VALUE_BYTES, WriteBatch};
pub use compaction::CompactionStyle;
pub use db::{Db, Durability, KeyValues, Options, Snapshot, StoreStats};
pub use error::{Result, StorageError};
pub use family::ColumnFamily;
pub use read_mapping::ReadMapping;
pub use redis::RedisState;
pub use sstable::Compression;
pub use state::{LsmState, MemoryState, StateBackend};

/// Decoders exposed for fuzz and property tests: each takes arbitrary bytes and must return an
/// error, never panic.
#[doc(hidden)]
pub mod decoders {
    use crate::error::Result;

    pub fn write_batch(bytes: &[u8]) -> Result<()> {
        crate::batch::WriteBatch::decode(bytes).map(|_| ())
    }

    pub fn log_records(bytes: &[u8]) -> usize {
        crate::wal::decode_records(bytes).map_or(0, |records| records.len())
    }

    /// Searches the block for `key`, then decodes all of it.
    pub fn data_block(bytes: &[u8], key: &[u8]) -> Result<()> {
        let entries = crate::sstable::verified(bytes, "data block")
            .and_then(crate::sstable::data_block_entries)?;
        crate::sstable::search_block(&entries, key)?;
        crate::sstable::decode_block(&entries).map(|_| ())
    }

    pub fn manifest(bytes: &[u8]) -> Result<()> {
        crate::manifest::decode(bytes).map(|_| ())
    }

    pub fn table_index(bytes: &[u8]) -> Result<()> {
        crate::sstable::decode_index(bytes).map(|_| ())
    }

    pub fn table_footer(bytes: &[u8]) -> Result<()> {
        crate::sstable::Footer::decode(bytes).map(|_| ())
    }

    pub fn bloom_filter(bytes: &[u8], key: &[u8]) -> Result<bool> {
        crate::bloom::BloomFilter::decode(bytes).map(|filter| filter.may_contain(key))
    }
}
