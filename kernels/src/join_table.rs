//! The join hash table over packed keys. Build rows are split by the high bits of their key's
//! hash into partitions that are built independently (in parallel by the caller), each one a
//! [`SlotTable`] of distinct keys plus the build rows of every key stored contiguously (a CSR
//! layout), so a probe that matches walks one short slice instead of a chain.

use crate::error::{KernelError, Result};
use crate::hash::hash_u64;
use crate::slots::SlotTable;

/// Build sides below this many rows are built as one partition.
const PARALLEL_BUILD_ROWS: usize = 1 << 16;
/// The most partitions a table is split into.
const MAX_PARTITIONS: usize = 64;

/// One hash partition of a join table.
pub struct JoinPartition {
    table: SlotTable<u64>,
    /// `rows[starts[id]..starts[id + 1]]` are the build rows of the key with id `id`, ascending.
    starts: Vec<u32>,
    rows: Vec<u32>,
}

/// A join table: build row ids by packed key, in hash partitions.
pub struct JoinHashTable {
    partitions: Vec<JoinPartition>,
    partition_bits: u32,
}

#[inline]
fn partition_of(hash: u64, partition_bits: u32) -> usize {
    if partition_bits == 0 {
        0
    } else {
        (hash >> (64 - partition_bits)) as usize
    }
}

impl JoinPartition {
    /// The partition `partition` of `partitions` (a power of two) for build rows with packed
    /// `keys` and their `hashes`; rows that are not `usable` (null keys) are left out.
    pub fn build(
        keys: &[u64],
        hashes: &[u64],
        usable: &[bool],
        partition: usize,
        partitions: usize,
    ) -> Result<JoinPartition> {
        if keys.len() >= u32::MAX as usize {
            return Err(KernelError::TooManyRows {
                rows: keys.len(),
                limit: u32::MAX as usize - 1,
            });
        }
        let partition_bits = partitions.trailing_zeros();
        let members: Vec<u32> = (0..keys.len())
            .filter(|&row| usable[row] && partition_of(hashes[row], partition_bits) == partition)
            .map(|row| row as u32)
            .collect();
        let mut table = SlotTable::with_expected(members.len() / 2);
        let member_ids: Vec<u32> = members
            .iter()
            .map(|&row| table.find_or_insert(keys[row as usize], hashes[row as usize]))
            .collect();
        let mut starts = vec![0u32; table.len() + 1];
        for &id in &member_ids {
            starts[id as usize + 1] += 1;
        }
        for id in 0..table.len() {
            starts[id + 1] += starts[id];
        }
        let mut cursor = starts.clone();
        let mut rows = vec![0u32; members.len()];
        for (&row, &id) in members.iter().zip(&member_ids) {
            rows[cursor[id as usize] as usize] = row;
            cursor[id as usize] += 1;
        }
        Ok(JoinPartition {
            table,
            starts,
            rows,
        })
    }

    /// The build rows whose key is `key` (with hash `hash`).
    #[inline]
    fn matches(&self, key: u64, hash: u64) -> &[u32] {
        match self.table.find(key, hash) {
            Some(id) => {
                let id = id as usize;
                &self.rows[self.starts[id] as usize..self.starts[id + 1] as usize]
            }
            None => &[],
        }
    }

    fn memory_size(&self) -> usize {
        self.table.memory_size() + (self.starts.capacity() + self.rows.capacity()) * 4
    }
}

impl JoinHashTable {
    /// How many partitions to build a table of `rows` build rows in with `threads` workers
    /// (always a power of two).
    pub fn partition_count(rows: usize, threads: usize) -> usize {
        if rows < PARALLEL_BUILD_ROWS || threads <= 1 {
            1
        } else {
            (threads * 2).next_power_of_two().min(MAX_PARTITIONS)
        }
    }

    /// The table made of `partitions`, in partition order (their number a power of two).
    pub fn from_partitions(partitions: Vec<JoinPartition>) -> JoinHashTable {
        debug_assert!(partitions.len().is_power_of_two());
        JoinHashTable {
            partition_bits: partitions.len().trailing_zeros(),
            partitions,
        }
    }

    /// Builds the whole table on the calling thread.
    pub fn build(keys: &[u64], usable: &[bool]) -> Result<JoinHashTable> {
        let mut hashes = Vec::new();
        crate::hash::hash_u64_slice(keys, &mut hashes);
        Ok(JoinHashTable::from_partitions(vec![JoinPartition::build(
            keys, &hashes, usable, 0, 1,
        )?]))
    }

    /// Appends a (probe row, build row) pair for every build row whose key equals a usable
    /// probe key; for each probe row its build rows come in ascending order.
    pub fn probe(
        &self,
        keys: &[u64],
        usable: &[bool],
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) {
        for (row, (&key, &usable)) in keys.iter().zip(usable).enumerate() {
            if !usable {
                continue;
            }
            let hash = hash_u64(key);
            let matches =
                self.partitions[partition_of(hash, self.partition_bits)].matches(key, hash);
            for &build_row in matches {
                probe_rows.push(row as u32);
                build_rows.push(build_row);
            }
        }
    }

    /// Whether each usable probe key has a match, written over `found`.
    pub fn contains(&self, keys: &[u64], usable: &[bool], found: &mut Vec<bool>) {
        found.clear();
        found.extend(keys.iter().zip(usable).map(|(&key, &usable)| {
            usable && {
                let hash = hash_u64(key);
                self.partitions[partition_of(hash, self.partition_bits)]
                    .table
                    .find(key, hash)
                    .is_some()
            }
        }));
    }

    /// Bytes held by the table.
    pub fn memory_size(&self) -> usize {
        self.partitions.iter().map(JoinPartition::memory_size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_match_every_build_row_in_order() {
        let keys = [5, 1, 5, 2, 5];
        let table = JoinHashTable::build(&keys, &[true; 5]).unwrap();
        let (mut probe, mut build) = (Vec::new(), Vec::new());
        table.probe(&[5, 3, 2], &[true; 3], &mut probe, &mut build);
        assert_eq!(probe, vec![0, 0, 0, 2]);
        assert_eq!(build, vec![0, 2, 4, 3]);
    }

    #[test]
    fn unusable_rows_neither_build_nor_probe() {
        let table = JoinHashTable::build(&[1, 2], &[false, true]).unwrap();
        let mut found = Vec::new();
        table.contains(&[1, 2, 2], &[true, true, false], &mut found);
        assert_eq!(found, vec![false, true, false]);
    }
}
