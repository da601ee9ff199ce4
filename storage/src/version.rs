//! The tables a store reads at one moment, by level. Level 0 holds flushed memtables, newest
//! first, whose key ranges may overlap; each deeper level holds tables sorted by key with
//! disjoint ranges, and older data than the levels above it. A version never changes: flushes
//! and compactions install a new one, and readers keep reading the one they started with
//! (its tables stay open, even once their files are deleted).

use std::sync::Arc;

use crate::block_cache::BlockCache;
use crate::error::Result;
use crate::merge::Entries;
use crate::sstable::{Entry, Table, TableEntries, TableEntriesBackwards};

/// Levels a store has: level 0 and six sorted levels.
pub(crate) const LEVELS: usize = 7;

#[derive(Clone)]
pub(crate) struct Version {
    /// `levels[0]` newest first; `levels[1..]` sorted by key.
    pub(crate) levels: Vec<Vec<Arc<Table>>>,
    /// The newest write flushed into a table (every older one was too, even where a
    /// compaction has since dropped it).
    pub(crate) flushed_sequence: u64,
}

impl Default for Version {
    fn default() -> Self {
        Version {
            levels: vec![Vec::new(); LEVELS],
            flushed_sequence: 0,
        }
    }
}

impl Version {
    /// Every table, level 0 first.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.levels.iter().flatten()
    }

    pub(crate) fn table_count(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels[level]
            .iter()
            .map(|table| table.file_bytes())
            .sum()
    }

    /// The tables of `level` that may hold keys in `[start, end]` (`None`: unbounded).
    pub(crate) fn overlapping(
        &self,
        level: usize,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Vec<Arc<Table>> {
        self.levels[level]
            .iter()
            .filter(|table| table.overlaps(start, end))
            .cloned()
            .collect()
    }

    /// The deepest level holding a table, if any does.
    pub(crate) fn deepest_level(&self) -> Option<usize> {
        (0..LEVELS)
            .rev()
            .find(|&level| !self.levels[level].is_empty())
    }

    /// A sorted level's table that may hold `key`.
    pub(crate) fn table_for(&self, level: usize, key: &[u8]) -> Option<&Arc<Table>> {
        let tables = &self.levels[level];
        let position = tables.partition_point(|table| table.last_key() < key);
        tables
            .get(position)
            .filter(|table| table.first_key() <= key)
    }

    /// The tables that may hold `key`, in the order they must be asked (newest data first).
    pub(crate) fn candidates<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = &'a Arc<Table>> {
        let sorted = (1..LEVELS).filter_map(move |level| self.table_for(level, key));
        self.levels[0]
            .iter()
            .filter(move |table| table.overlaps(key, Some(key)))
            .chain(sorted)
    }

    /// The value of `key`: `Some(None)` when the newest table knowing it deletes it.
    pub(crate) fn get(&self, key: &[u8], cache: &BlockCache) -> Result<Option<Option<Vec<u8>>>> {
        for table in self.candidates(key) {
            if let Some(value) = table.get(key, cache)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Entry streams over `[start, end)`, newest first: one per level-0 table, one per sorted
    /// level (its tables read one after another).
    pub(crate) fn streams(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        backwards: bool,
    ) -> Vec<Entries> {
        let mut streams: Vec<Entries> = Vec::new();
        for table in &self.levels[0] {
            streams.push(table_stream(Arc::clone(table), start, end, backwards));
        }
        for level in &self.levels[1..] {
            let tables: Vec<Arc<Table>> = level
                .iter()
                .filter(|table| {
                    table.last_key() >= start && end.is_none_or(|end| table.first_key() < end)
                })
                .cloned()
                .collect();
            if !tables.is_empty() {
                streams.push(Box::new(LevelEntries::new(tables, start, end, backwards)));
            }
        }
        streams
    }

    /// This version with `removed` tables taken out and `added` put into `level`: sorted in
    /// by key for a sorted level; for level 0, where the first removed level-0 table was (or
    /// in front, when none was removed).
    pub(crate) fn replaced(
        &self,
        removed: &[Arc<Table>],
        level: usize,
        added: Vec<Arc<Table>>,
    ) -> Version {
        let is_removed = |table: &Arc<Table>| removed.iter().any(|gone| Arc::ptr_eq(gone, table));
        let mut next = self.clone();
        let level_zero_position = next.levels[0].iter().position(is_removed).unwrap_or(0);
        for tables in &mut next.levels {
            tables.retain(|table| !is_removed(table));
        }
        if level == 0 {
            let position = level_zero_position.min(next.levels[0].len());
            next.levels[0].splice(position..position, added);
        } else {
            next.levels[level].extend(added);
            next.levels[level].sort_by(|left, right| left.first_key().cmp(right.first_key()));
        }
        next
    }
}

fn table_stream(table: Arc<Table>, start: &[u8], end: Option<&[u8]>, backwards: bool) -> Entries {
    if backwards {
        Box::new(TableEntriesBackwards::before_key(table, end))
    } else {
        Box::new(TableEntries::from_key(table, start))
    }
}

/// The entries of a sorted level's tables (given in key order), one table after another, each
/// opened when the one before is used up.
struct LevelEntries {
    /// Tables not started yet, in the order they are read.
    tables: std::vec::IntoIter<Arc<Table>>,
    current: Option<Entries>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    backwards: bool,
}

impl LevelEntries {
    fn new(
        mut tables: Vec<Arc<Table>>,
        start: &[u8],
        end: Option<&[u8]>,
        backwards: bool,
    ) -> LevelEntries {
        if backwards {
            tables.reverse();
        }
        LevelEntries {
            tables: tables.into_iter(),
            current: None,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            backwards,
        }
    }
}

impl Iterator for LevelEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(entry) = self.current.as_mut().and_then(Iterator::next) {
                return Some(entry);
            }
            let table = self.tables.next()?;
            self.current = Some(table_stream(
                table,
                &self.start,
                self.end.as_deref(),
                self.backwards,
            ));
        }
    }
}
