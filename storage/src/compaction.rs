//! Which tables to merge next, and the merge itself.
//!
//! Leveled (the default): once level 0 has [`LEVEL_ZERO_TRIGGER`] tables, all of them merge with
//! the level-1 tables they overlap into level 1. A sorted level over its size budget
//! ([`Options::level_one_bytes`](crate::Options), ten times more per level below) passes one
//! table (taken round-robin
//! through the key space) down, merged with the tables it overlaps there, or just moved when it
//! overlaps none. Outputs are split at [`Options::table_bytes`](crate::Options).
//!
//! Size-tiered: every table stays in level 0, and a run of at least [`TIER_WIDTH`] tables of
//! similar size, adjacent in age, merges into one table in their place (fewer rewrites, more
//! tables to read).
//!
//! A merge drops deletes and overwritten values when no older table outside it may hold the key.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Result, StorageError};
use crate::merge::{Entries, Merged};
use crate::sstable::{Compression, Table, TableBuilder, TableEntries};
use crate::version::{LEVELS, Version};

/// Level-0 tables that start a leveled compaction into level 1.
pub(crate) const LEVEL_ZERO_TRIGGER: usize = 4;
/// Tables of similar size merged at once by size-tiered compaction.
pub(crate) const TIER_WIDTH: usize = 4;
/// Size-tiered: past this many tables, all of them merge.
const TIER_MAX_TABLES: usize = 16;

/// How tables are merged as they accumulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactionStyle {
    /// Sorted levels, each ten times the one above: little space and few tables to read.
    #[default]
    Leveled,
    /// Runs of similar-sized tables merged together: fewer bytes rewritten per write.
    SizeTiered,
}

/// One merge: its input tables (newest data first) and where the output goes.
pub(crate) struct Compaction {
    pub(crate) inputs: Vec<Arc<Table>>,
    pub(crate) output_level: usize,
    /// The inputs are a single table with nothing to merge with: it moves without a rewrite.
    pub(crate) is_move: bool,
    /// No table outside the inputs can hold an older value of their keys.
    pub(crate) drops_deletes: bool,
}

/// Level `level`'s size budget: each level ten times its parent's.
fn level_budget(level_one_bytes: u64, level: usize) -> u64 {
    level_one_bytes.saturating_mul(10u64.saturating_pow(level.saturating_sub(1) as u32))
}

/// The compaction the store needs next, if any. `cursors` holds, per level, the last key a
/// leveled compaction passed down from it (advanced here).
pub(crate) fn pick(
    version: &Version,
    style: CompactionStyle,
    level_one_bytes: u64,
    cursors: &mut [Vec<u8>],
) -> Option<Compaction> {
    match style {
        CompactionStyle::Leveled => pick_leveled(version, level_one_bytes, cursors),
        CompactionStyle::SizeTiered => pick_tiered(version),
    }
}

fn pick_leveled(
    version: &Version,
    level_one_bytes: u64,
    cursors: &mut [Vec<u8>],
) -> Option<Compaction> {
    if version.levels[0].len() >= LEVEL_ZERO_TRIGGER {
        return Some(level_merge(version, version.levels[0].clone(), 0));
    }
    let (level, _) = (1..LEVELS - 1)
        .map(|level| {
            (
                level,
                version.level_bytes(level) as f64 / level_budget(level_one_bytes, level) as f64,
            )
        })
        .filter(|(_, score)| *score >= 1.0)
        .max_by(|left, right| left.1.total_cmp(&right.1))?;
    let tables = &version.levels[level];
    let cursor = &mut cursors[level];
    let table = tables
        .iter()
        .find(|table| table.first_key() > cursor.as_slice())
        .unwrap_or(&tables[0]);
    cursor.clear();
    cursor.extend_from_slice(table.last_key());
    Some(level_merge(version, vec![Arc::clone(table)], level))
}

/// Merges `inputs` of `level` with the tables of the next level they overlap.
pub(crate) fn level_merge(version: &Version, inputs: Vec<Arc<Table>>, level: usize) -> Compaction {
    let output_level = level + 1;
    let (low, high) = key_span(&inputs);
    let below = version.overlapping(output_level, &low, Some(&high));
    let is_move = level > 0 && inputs.len() == 1 && below.is_empty();
    let mut all = inputs;
    all.extend(below);
    // The tables merged in from below may reach past the inputs' keys: the deletes of the
    // whole merge go only if nothing deeper overlaps any of it.
    let (low, high) = key_span(&all);
    let drops_deletes = ((output_level + 1)..LEVELS)
        .all(|deeper| version.overlapping(deeper, &low, Some(&high)).is_empty());
    Compaction {
        inputs: all,
        output_level,
        is_move,
        drops_deletes,
    }
}

/// The smallest and largest key of `tables`.
pub(crate) fn key_span(tables: &[Arc<Table>]) -> (Vec<u8>, Vec<u8>) {
    let low = tables
        .iter()
        .map(|table| table.first_key())
        .min()
        .unwrap_or_default();
    let high = tables
        .iter()
        .map(|table| table.last_key())
        .max()
        .unwrap_or_default();
    (low.to_vec(), high.to_vec())
}

fn pick_tiered(version: &Version) -> Option<Compaction> {
    let tables = &version.levels[0];
    if tables.len() > TIER_MAX_TABLES {
        return Some(tiered_merge(version, tables.clone()));
    }
    // Runs of adjacent tables each within 2× of the run's mean size, newest first.
    let mut start = 0;
    while start < tables.len() {
        let mut end = start + 1;
        let mut total = tables[start].file_bytes();
        while end < tables.len() {
            let size = tables[end].file_bytes();
            let mean = total / (end - start) as u64;
            if size > mean.saturating_mul(2) || size.saturating_mul(2) < mean {
                break;
            }
            total += size;
            end += 1;
        }
        if end - start >= TIER_WIDTH {
            return Some(tiered_merge(version, tables[start..end].to_vec()));
        }
        start = end;
    }
    None
}

/// Merges a run of adjacent level-0 tables into one in their place.
pub(crate) fn tiered_merge(version: &Version, inputs: Vec<Arc<Table>>) -> Compaction {
    let oldest = version.levels[0].last();
    let drops_deletes = inputs
        .last()
        .zip(oldest)
        .is_some_and(|(last, oldest)| Arc::ptr_eq(last, oldest));
    Compaction {
        inputs,
        output_level: 0,
        is_move: false,
        drops_deletes,
    }
}

/// What a merge needs from its store.
pub(crate) struct MergeTarget<'a> {
    /// Numbers a new table file (`<number>.sst` in the store's directory).
    pub(crate) new_table: &'a mut dyn FnMut() -> Result<(std::path::PathBuf, std::path::PathBuf)>,
    pub(crate) compression: Compression,
    /// An output table is finished once it reaches this size (`u64::MAX`: never split).
    pub(crate) table_bytes: u64,
    /// Set when the store is closing: the merge stops and its outputs are removed.
    pub(crate) cancel: &'a AtomicBool,
    /// The outputs' scans read ahead through io_uring.
    pub(crate) io_uring: bool,
}

/// Runs `compaction`'s merge into new tables, renamed into place and opened.
pub(crate) fn merge(compaction: &Compaction, target: MergeTarget<'_>) -> Result<Vec<Arc<Table>>> {
    let streams: Vec<Entries> = compaction
        .inputs
        .iter()
        .map(|table| Box::new(TableEntries::from_key(Arc::clone(table), &[])) as Entries)
        .collect();
    let max_sequence = compaction
        .inputs
        .iter()
        .map(|table| table.footer.max_sequence)
        .max()
        .unwrap_or(0);
    let mut outputs: Vec<(std::path::PathBuf, std::path::PathBuf)> = Vec::new();
    let io_uring = target.io_uring;
    let result = write_outputs(compaction, streams, max_sequence, target, &mut outputs);
    if let Err(error) = result {
        for (temporary, path) in &outputs {
            let _ = std::fs::remove_file(temporary);
            let _ = std::fs::remove_file(path);
        }
        return Err(error);
    }
    outputs
        .iter()
        .map(|(_, path)| Table::open(path, io_uring).map(Arc::new))
        .collect()
}

fn write_outputs(
    compaction: &Compaction,
    streams: Vec<Entries>,
    max_sequence: u64,
    target: MergeTarget<'_>,
    outputs: &mut Vec<(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<()> {
    let mut builder: Option<TableBuilder> = None;
    let finish = |builder: TableBuilder,
                  outputs: &[(std::path::PathBuf, std::path::PathBuf)]|
     -> Result<()> {
        builder.finish(max_sequence)?;
        let (temporary, path) = outputs.last().expect("a builder has its output named");
        std::fs::rename(temporary, path).map_err(StorageError::io(path))
    };
    for (count, entry) in Merged::new(streams)?.enumerate() {
        let (key, value) = entry?;
        if value.is_none() && compaction.drops_deletes {
            continue;
        }
        if count % 4096 == 0 && target.cancel.load(Ordering::Relaxed) {
            return Err(StorageError::Closed);
        }
        let current = match &mut builder {
            Some(current) => current,
            None => {
                let (temporary, path) = (target.new_table)()?;
                outputs.push((temporary.clone(), path));
                builder.insert(TableBuilder::create(&temporary, target.compression)?)
            }
        };
        current.add(&key, value.as_deref())?;
        if current.written_bytes() >= target.table_bytes
            && let Some(full) = builder.take()
        {
            finish(full, outputs)?;
        }
    }
    if let Some(last) = builder.take() {
        finish(last, outputs)?;
    }
    Ok(())
}
