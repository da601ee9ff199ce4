//! Batched point reads ([`crate::Db::multi_get`]). The keys the memtables did not answer are
//! looked up table by table in read order (each level-0 table, then each sorted level): in each
//! round, the blocks the remaining keys need that are not cached are read together, through
//! one io_uring submission per 64 blocks where the kernel allows it (else one `pread` each),
//! then checked, cached and searched.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::block_cache::{BlockCache, BlockId};
use crate::error::{Result, StorageError};
use crate::sstable::Table;
use crate::uring::UringReader;
use crate::version::{LEVELS, Version};

thread_local! {
    /// This thread's ring for batched reads: made on first use (`None` inside when io_uring
    /// is not available here).
    static READER: RefCell<Option<Option<UringReader>>> = const { RefCell::new(None) };
}

/// A key's answer: `Some(Some(value))`, `Some(None)` for a delete, `None` while unknown.
pub(crate) type Answer = Option<Option<Vec<u8>>>;

/// Fills in the answers of `keys` still unknown in `answers` from `version`'s tables.
pub(crate) fn lookup_many(
    version: &Version,
    keys: &[Vec<u8>],
    answers: &mut [Answer],
    cache: &BlockCache,
    io_uring: bool,
) -> Result<()> {
    for table in &version.levels[0] {
        round(keys, answers, cache, io_uring, |key| {
            table.overlaps(key, Some(key)).then_some(table)
        })?;
    }
    for level in 1..LEVELS {
        round(keys, answers, cache, io_uring, |key| {
            version.table_for(level, key)
        })?;
    }
    Ok(())
}

/// Looks each unanswered key up in the table `table_of` gives it.
fn round<'a>(
    keys: &[Vec<u8>],
    answers: &mut [Answer],
    cache: &BlockCache,
    io_uring: bool,
    table_of: impl Fn(&[u8]) -> Option<&'a Arc<Table>>,
) -> Result<()> {
    let wanted: Vec<(usize, &Arc<Table>, usize)> = keys
        .iter()
        .enumerate()
        .filter(|(index, _)| answers[*index].is_none())
        .filter_map(|(index, key)| {
            let table = table_of(key)?;
            Some((index, table, table.block_for(key)?))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut blocks: HashMap<BlockId, Arc<[u8]>> = HashMap::new();
    let mut to_read: Vec<(&Arc<Table>, usize)> = Vec::new();
    for (_, table, block) in &wanted {
        let id = table.cache_key(*block);
        if blocks.contains_key(&id) || to_read.iter().any(|(t, b)| t.cache_key(*b) == id) {
            continue;
        }
        match cache.lookup(id) {
            Some(cached) => {
                blocks.insert(id, cached);
            }
            None => to_read.push((table, *block)),
        }
    }
    let stored = read_blocks(&to_read, io_uring);
    for ((table, block), bytes) in to_read.iter().zip(stored) {
        let bytes = bytes.map_err(StorageError::io(table.path()))?;
        let entries = table.checked_block(*block, &bytes)?;
        cache.insert(table.cache_key(*block), &entries);
        blocks.insert(table.cache_key(*block), entries);
    }
    for (index, table, block) in wanted {
        let entries = &blocks[&table.cache_key(block)];
        if let Some(answer) = table.search(block, entries, &keys[index])? {
            answers[index] = Some(answer);
        }
    }
    Ok(())
}

/// The stored bytes of each block, read through this thread's ring where there is one.
fn read_blocks(blocks: &[(&Arc<Table>, usize)], io_uring: bool) -> Vec<std::io::Result<Vec<u8>>> {
    let locations: Vec<_> = blocks
        .iter()
        .map(|(table, block)| table.block_location(*block))
        .collect();
    if io_uring && blocks.len() > 1 {
        let through_ring = READER.with(|reader| {
            let mut reader = reader.borrow_mut();
            reader
                .get_or_insert_with(|| UringReader::new().ok())
                .as_mut()
                .map(|ring| ring.read_all(&locations))
        });
        if let Some(results) = through_ring {
            return results;
        }
    }
    locations
        .iter()
        .map(|(file, offset, len)| {
            let mut buffer = vec![0u8; *len];
            std::os::unix::fs::FileExt::read_exact_at(*file, &mut buffer, *offset).map(|()| buffer)
        })
        .collect()
}
