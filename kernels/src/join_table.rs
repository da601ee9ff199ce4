//! The join hash table over packed keys. Build rows are scattered by the high bits of their key's
//! hash into partitions small enough for their table to stay in cache while it is built (the
//! radix-partitioned build of DuckDB and of Balkesen et al.), and each partition is built on its
//! own (in parallel by the caller). A partition is an open-addressing table whose slot holds the
//! key, its build row when the key is unique, or else the range of its build rows in a
//! contiguous (CSR) array: a probe of a unique key touches one cache line. A bitmap of the
//! build keys answers most misses before any hashing: one bit per key value where the keys are
//! below 2^23, else one per value of a hash of the key, 16 bits per build row (a one-hash Bloom
//! filter). When at most a quarter of a probe's keys are in it (judged on its first 1,024), the
//! bitmap is read for all of them in one branch-free pass and only those are looked up. When
//! the packed build keys are dense (their largest is at most a few times the number of rows, as
//! for the key columns of most tables) or small (below 2^18), the table is instead a plain array
//! indexed by the key itself: no hashing, and four bytes per key. Probes prefetch the slot of
//! the key a few rows ahead. Such an array whose keys are unique is probed without a branch per
//! row.

use arrow::buffer::BooleanBuffer;

use crate::error::{KernelError, Result};
use crate::hash::hash_u64;
use crate::prefetch::prefetch;
use crate::slots::SlotTable;

/// How many probe keys ahead a probe asks for the cache line it will need.
const PREFETCH_DISTANCE: usize = 16;
/// A probe of a table with a key bitmap looks up only the keys the bitmap holds when they are
/// at most one in this many.
const SPARSE_PROBE_SHARE: usize = 4;
/// The probe keys whose share in the bitmap decides whether the whole batch is read against it.
const SPARSE_SAMPLE_KEYS: usize = 1024;
/// Tables smaller than this many bytes stay in the core's L2 cache: their probes do not prefetch.
const PREFETCH_MIN_TABLE_BYTES: usize = 1 << 20;
/// About how many build rows one partition holds.
const ROWS_PER_PARTITION: usize = 1 << 14;
/// The most partitions a table is split into.
const MAX_PARTITIONS: usize = 1 << 10;

/// One slot of a built partition: `count` 0 is empty; with `count` 1 `first` is the key's build
/// row, otherwise `rows[first..first + count]` are.
#[derive(Clone, Copy, Default)]
struct JoinSlot {
    key: u64,
    first: u32,
    count: u32,
}

/// One hash partition of a join table.
pub struct JoinPartition {
    slots: Vec<JoinSlot>,
    mask: usize,
    /// The build rows of keys with duplicates, grouped by key, ascending within a key.
    rows: Vec<u32>,
}

/// A join table: build row ids by packed key, in hash partitions or in a direct array.
pub struct JoinHashTable {
    partitions: Vec<JoinPartition>,
    partition_bits: u32,
    /// Set instead of `partitions` for dense keys.
    direct: Option<DirectTable>,
    /// With `partitions`: a bitmap of the build keys, which a probe reads before it hashes.
    key_bits: Option<KeyBits>,
    /// A copy on the GPU, which large probes use.
    #[cfg(feature = "cuda")]
    device: Option<crate::cuda::DeviceJoinTable>,
}

/// The fewest usable build rows for which [`JoinHashTable::offload`] copies a table to the GPU.
#[cfg(feature = "cuda")]
pub const GPU_MIN_BUILD_ROWS: usize = 1 << 20;
/// The fewest probe keys a probe of an offloaded table sends to the GPU, unless
/// [`GPU_MIN_PROBE_ROWS_VARIABLE`] says otherwise.
#[cfg(feature = "cuda")]
pub const GPU_MIN_PROBE_ROWS: usize = 1 << 18;
/// The environment variable that replaces [`GPU_MIN_PROBE_ROWS`] with its number of rows, for a
/// machine whose GPU and CPU cores balance otherwise than the one it was measured on.
#[cfg(feature = "cuda")]
pub const GPU_MIN_PROBE_ROWS_VARIABLE: &str = "SABOT_GPU_MIN_PROBE_ROWS";

/// The fewest probe keys sent to the GPU in this process: [`GPU_MIN_PROBE_ROWS_VARIABLE`]'s
/// value, read once, or [`GPU_MIN_PROBE_ROWS`] (saying on stderr why, where the value is not a
/// number).
#[cfg(feature = "cuda")]
fn gpu_min_probe_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        let value = std::env::var(GPU_MIN_PROBE_ROWS_VARIABLE).ok();
        min_probe_rows_from(value.as_deref()).unwrap_or_else(|message| {
            eprintln!("sabot: {message}");
            GPU_MIN_PROBE_ROWS
        })
    })
}

/// The threshold an override's `value` sets: none keeps the default; text that is no number of
/// rows is an error saying so.
#[cfg(feature = "cuda")]
fn min_probe_rows_from(value: Option<&str>) -> std::result::Result<usize, String> {
    match value {
        None => Ok(GPU_MIN_PROBE_ROWS),
        Some(text) => text.trim().parse().map_err(|_| {
            format!(
                "ignoring {GPU_MIN_PROBE_ROWS_VARIABLE}={text:?}, which is not a number of rows; \
                 probes of at least {GPU_MIN_PROBE_ROWS} rows go to the GPU"
            )
        }),
    }
}

/// A hashed table whose build keys are all below this keeps a bitmap of them (at most 1 MiB):
/// a probe key whose bit is clear misses without hashing or touching a slot, so a probe side
/// that mostly misses (TPC-H Q3's lines of orders not placed before its day) reads a bitmap
/// that stays in cache.
const KEY_BITS_LIMIT: u64 = 1 << 23;
/// A larger table keeps the bitmap while its keys are below this many times its rows: the
/// bitmap then takes at most 16 bytes per build row, half of what the table's slots take
/// (TPC-H SF 10 Q4: 573K orders with keys up to 60M, whose bitmap lets the lines be filtered by
/// key before their date comparison).
const KEY_BITS_PER_ROW: u64 = 128;
/// Bits per build row of the hashed bitmap of keys past both bounds above (2 bytes a row): at
/// most one bit in this many is set, so about as few probe keys without a match pass it.
const HASHED_KEY_BITS_PER_ROW: u64 = 16;
/// The hashed bitmap takes from 2^16 bits (8 KiB) ...
const MIN_HASHED_KEY_BITS_LOG: u32 = 16;
/// ... to 2^26 bits (8 MiB).
const MAX_HASHED_KEY_BITS_LOG: u32 = 26;
/// 2^64 divided by the golden ratio: multiplying by it spreads keys over the top bits
/// (Fibonacci hashing), so keys that share their low bits still set different bits.
const FIBONACCI_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// Build rows indexed by packed key: `entries[key]` is [`DIRECT_EMPTY`], a build row (high bit
/// clear), or `DUPLICATES | d` for the rows `rows[starts[d]..starts[d + 1]]`.
struct DirectTable {
    entries: Vec<u32>,
    starts: Vec<u32>,
    rows: Vec<u32>,
}

const DIRECT_EMPTY: u32 = u32::MAX;
const DUPLICATES: u32 = 1 << 31;
/// A direct table may have this many entries per build row at most (4 bytes each: then it
/// takes less memory than a hash table of the same rows: 16-byte slots, at most half full).
const DIRECT_ENTRIES_PER_ROW: u64 = 8;
/// Up to this many entries (1 MiB) a direct table is always taken, however few its rows: a small
/// build side with keys up to 2^18 (TPC-H Q11's and Q21's suppliers of one nation, probed by
/// 0.8M and 3.8M rows) is then probed with one load per key, not a hash and a slot compare.
const DIRECT_MIN_ENTRIES: u64 = 1 << 18;
/// The most entries of a direct table (512 MiB).
const DIRECT_MAX_ENTRIES: u64 = 1 << 27;

impl DirectTable {
    /// The table of usable build `keys`, if they are dense enough.
    fn try_build(keys: &[u64], usable: &[bool]) -> Option<DirectTable> {
        let usable_rows = usable.iter().filter(|&&usable| usable).count() as u64;
        let largest = keys
            .iter()
            .zip(usable)
            .filter(|(_, usable)| **usable)
            .map(|(&key, _)| key)
            .max()
            .unwrap_or(0);
        let entries = largest.checked_add(1)?;
        let limit = (usable_rows * DIRECT_ENTRIES_PER_ROW).max(DIRECT_MIN_ENTRIES);
        if entries > limit
            || entries > DIRECT_MAX_ENTRIES
            || keys.len() as u64 >= u64::from(DUPLICATES)
        {
            return None;
        }
        // First the number of rows per key, then each key's entry.
        let mut counts = vec![0u32; entries as usize];
        for (&key, _) in keys.iter().zip(usable).filter(|(_, usable)| **usable) {
            counts[key as usize] += 1;
        }
        let mut starts = vec![0u32];
        let mut entries = counts;
        for entry in &mut entries {
            *entry = match *entry {
                0 | 1 => DIRECT_EMPTY,
                count => {
                    let duplicate = (starts.len() - 1) as u32;
                    starts.push(starts[starts.len() - 1] + count);
                    DUPLICATES | duplicate
                }
            };
        }
        let mut cursor = starts.clone();
        let mut rows = vec![0u32; *starts.last().unwrap_or(&0) as usize];
        for (row, (&key, _)) in keys
            .iter()
            .zip(usable)
            .enumerate()
            .filter(|(_, (_, usable))| **usable)
        {
            let entry = &mut entries[key as usize];
            if *entry == DIRECT_EMPTY {
                *entry = row as u32;
            } else {
                let duplicate = (*entry & !DUPLICATES) as usize;
                rows[cursor[duplicate] as usize] = row as u32;
                cursor[duplicate] += 1;
            }
        }
        Some(DirectTable {
            entries,
            starts,
            rows,
        })
    }

    /// The build rows of `key`.
    #[inline]
    fn matches(&self, key: u64) -> Matches<'_> {
        match self.entries.get(key as usize) {
            None | Some(&DIRECT_EMPTY) => Matches::None,
            Some(&entry) if entry & DUPLICATES == 0 => Matches::One(entry),
            Some(&entry) => {
                let duplicate = (entry & !DUPLICATES) as usize;
                Matches::Many(
                    &self.rows
                        [self.starts[duplicate] as usize..self.starts[duplicate + 1] as usize],
                )
            }
        }
    }

    fn memory_size(&self) -> usize {
        (self.entries.capacity() + self.starts.capacity() + self.rows.capacity()) * 4
    }

    /// Starts loading the entry of `key`.
    #[inline]
    fn prefetch(&self, key: u64) {
        prefetch(self.entries.as_ptr().wrapping_add(key as usize));
    }

    /// Whether every key has at most one build row.
    fn has_unique_keys(&self) -> bool {
        self.rows.is_empty()
    }

    /// [`JoinHashTable::probe`] of a table whose keys are unique, without a branch per row: each
    /// row's pair is written in place and kept by advancing the output length when it matched,
    /// so a probe side that matches at random costs no mispredicted branches.
    fn probe_unique(
        &self,
        keys: &[u64],
        usable: &[bool],
        prefetching: bool,
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) {
        let (probe_start, build_start) = (probe_rows.len(), build_rows.len());
        probe_rows.resize(probe_start + keys.len(), 0);
        build_rows.resize(build_start + keys.len(), 0);
        let (probe_out, build_out) = (
            &mut probe_rows[probe_start..],
            &mut build_rows[build_start..],
        );
        let mut matched = 0;
        for (row, (&key, &usable)) in keys.iter().zip(usable).enumerate() {
            if prefetching && let Some(&ahead) = keys.get(row + PREFETCH_DISTANCE) {
                self.prefetch(ahead);
            }
            let entry = match self.entries.get(key as usize) {
                Some(&entry) if usable => entry,
                _ => DIRECT_EMPTY,
            };
            probe_out[matched] = row as u32;
            build_out[matched] = entry;
            matched += usize::from(entry != DIRECT_EMPTY);
        }
        probe_rows.truncate(probe_start + matched);
        build_rows.truncate(build_start + matched);
    }
}

/// The build rows a probe key matches.
#[derive(Clone, Copy)]
enum Matches<'a> {
    None,
    One(u32),
    Many(&'a [u32]),
}

/// Build rows grouped by partition.
pub struct PartitionedRows {
    rows: Vec<u32>,
    /// `rows[offsets[p]..offsets[p + 1]]` are partition `p`'s rows, ascending.
    offsets: Vec<usize>,
}

impl PartitionedRows {
    /// The usable build rows whose hash falls in `partition` of `partitions` (a power of two),
    /// ascending.
    pub fn scatter(hashes: &[u64], usable: &[bool], partitions: usize) -> Result<PartitionedRows> {
        if hashes.len() >= u32::MAX as usize {
            return Err(KernelError::TooManyRows {
                rows: hashes.len(),
                limit: u32::MAX as usize - 1,
            });
        }
        let partition_bits = partitions.trailing_zeros();
        let mut offsets = vec![0usize; partitions + 1];
        for (&hash, _) in hashes.iter().zip(usable).filter(|(_, usable)| **usable) {
            offsets[partition_of(hash, partition_bits) + 1] += 1;
        }
        for partition in 0..partitions {
            offsets[partition + 1] += offsets[partition];
        }
        let mut cursor = offsets.clone();
        let mut rows = vec![0u32; offsets[partitions]];
        for (row, (&hash, _)) in hashes
            .iter()
            .zip(usable)
            .enumerate()
            .filter(|(_, (_, usable))| **usable)
        {
            let partition = partition_of(hash, partition_bits);
            rows[cursor[partition]] = row as u32;
            cursor[partition] += 1;
        }
        Ok(PartitionedRows { rows, offsets })
    }

    /// Partition `partition`'s rows.
    pub fn partition(&self, partition: usize) -> &[u32] {
        &self.rows[self.offsets[partition]..self.offsets[partition + 1]]
    }
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
    /// The partition holding build rows `members` (ascending), whose packed keys and hashes are
    /// `keys[row]` and `hashes[row]`.
    pub fn build(keys: &[u64], hashes: &[u64], members: &[u32]) -> JoinPartition {
        let mut ids = SlotTable::with_expected(members.len() / 2);
        let member_ids: Vec<u32> = members
            .iter()
            .map(|&row| ids.find_or_insert(keys[row as usize], hashes[row as usize]))
            .collect();
        let mut starts = vec![0u32; ids.len() + 1];
        for &id in &member_ids {
            starts[id as usize + 1] += 1;
        }
        for id in 0..ids.len() {
            starts[id + 1] += starts[id];
        }
        let mut cursor = starts.clone();
        let mut grouped = vec![0u32; members.len()];
        for (&row, &id) in members.iter().zip(&member_ids) {
            grouped[cursor[id as usize] as usize] = row;
            cursor[id as usize] += 1;
        }
        // At most half full: a probe of a missing key, the common case of a selective join,
        // then ends after about two slots instead of about eight at three quarters.
        let capacity = (ids.len() * 2).next_power_of_two().max(16);
        let mask = capacity - 1;
        let mut slots = vec![JoinSlot::default(); capacity];
        let mut rows = Vec::new();
        for (key, id) in ids.occupied() {
            let matches = &grouped[starts[id as usize] as usize..starts[id as usize + 1] as usize];
            let mut position = hashes[matches[0] as usize] as usize & mask;
            while slots[position].count != 0 {
                position = (position + 1) & mask;
            }
            slots[position] = match matches {
                [row] => JoinSlot {
                    key,
                    first: *row,
                    count: 1,
                },
                _ => {
                    let first = rows.len() as u32;
                    rows.extend_from_slice(matches);
                    JoinSlot {
                        key,
                        first,
                        count: matches.len() as u32,
                    }
                }
            };
        }
        JoinPartition { mask, slots, rows }
    }

    /// The build rows of `key` (with hash `hash`).
    #[inline]
    fn matches(&self, key: u64, hash: u64) -> Matches<'_> {
        match self.find(key, hash) {
            None => Matches::None,
            Some(&JoinSlot {
                first, count: 1, ..
            }) => Matches::One(first),
            Some(&JoinSlot { first, count, .. }) => {
                Matches::Many(&self.rows[first as usize..(first + count) as usize])
            }
        }
    }

    /// The slot of `key` (with hash `hash`), if the key is in the partition.
    #[inline]
    fn find(&self, key: u64, hash: u64) -> Option<&JoinSlot> {
        let mut position = hash as usize & self.mask;
        loop {
            let slot = &self.slots[position];
            if slot.count == 0 {
                return None;
            }
            if slot.key == key {
                return Some(slot);
            }
            position = (position + 1) & self.mask;
        }
    }

    fn memory_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<JoinSlot>() + self.rows.capacity() * 4
    }
}

impl JoinHashTable {
    /// How many partitions to build a table of `rows` build rows in (a power of two).
    pub fn partition_count(rows: usize) -> usize {
        (rows / ROWS_PER_PARTITION)
            .next_power_of_two()
            .clamp(1, MAX_PARTITIONS)
    }

    /// The table made of `partitions`, in partition order (their number a power of two), built
    /// from the usable build `keys`.
    pub fn from_partitions(
        partitions: Vec<JoinPartition>,
        keys: &[u64],
        usable: &[bool],
    ) -> JoinHashTable {
        debug_assert!(partitions.len().is_power_of_two());
        JoinHashTable {
            partition_bits: partitions.len().trailing_zeros(),
            partitions,
            direct: None,
            key_bits: KeyBits::build(keys, usable),
            #[cfg(feature = "cuda")]
            device: None,
        }
    }

    /// A table indexed directly by the usable build `keys`, if they are dense: their largest is
    /// at most 8 times the number of usable rows (or below 2^18).
    pub fn try_direct(keys: &[u64], usable: &[bool]) -> Option<JoinHashTable> {
        DirectTable::try_build(keys, usable).map(|direct| JoinHashTable {
            partitions: Vec::new(),
            partition_bits: 0,
            direct: Some(direct),
            key_bits: None,
            #[cfg(feature = "cuda")]
            device: None,
        })
    }

    /// The build rows of `key`.
    #[inline]
    fn matches(&self, key: u64) -> Matches<'_> {
        match &self.direct {
            Some(direct) => direct.matches(key),
            None if !self.may_hold(key) => Matches::None,
            None => {
                let hash = hash_u64(key);
                self.partitions[partition_of(hash, self.partition_bits)].matches(key, hash)
            }
        }
    }

    /// Builds the whole table on the calling thread: direct when the keys are dense, else
    /// hash-partitioned.
    pub fn build(keys: &[u64], usable: &[bool]) -> Result<JoinHashTable> {
        if let Some(direct) = JoinHashTable::try_direct(keys, usable) {
            return Ok(direct);
        }
        let mut hashes = Vec::new();
        crate::hash::hash_u64_slice(keys, &mut hashes);
        let partitions = JoinHashTable::partition_count(keys.len());
        let scattered = PartitionedRows::scatter(&hashes, usable, partitions)?;
        Ok(JoinHashTable::from_partitions(
            (0..partitions)
                .map(|partition| {
                    JoinPartition::build(keys, &hashes, scattered.partition(partition))
                })
                .collect(),
            keys,
            usable,
        ))
    }

    /// Whether `key` may be a build key: false when the key bitmap says it is not.
    #[inline]
    fn may_hold(&self, key: u64) -> bool {
        self.key_bits.as_ref().is_none_or(|bits| bits.may_hold(key))
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
        #[cfg(feature = "cuda")]
        if let Some(device) = self
            .device
            .as_ref()
            .filter(|_| keys.len() >= gpu_min_probe_rows())
        {
            let (probe_start, build_start) = (probe_rows.len(), build_rows.len());
            match device.probe(keys, usable, probe_rows, build_rows) {
                Ok(()) => return,
                Err(error) => {
                    report_device_failure(&error);
                    probe_rows.truncate(probe_start);
                    build_rows.truncate(build_start);
                }
            }
        }
        if let Some(direct) = self
            .direct
            .as_ref()
            .filter(|direct| direct.has_unique_keys())
        {
            // A table that fits the core's cache needs no prefetch.
            let prefetching = self.memory_size() >= PREFETCH_MIN_TABLE_BYTES;
            direct.probe_unique(keys, usable, prefetching, probe_rows, build_rows);
            return;
        }
        // A hashed table with a key bitmap whose probe keys mostly miss it (a semi join's
        // probe of every line against a few orders) reads the bitmap for all keys in one
        // branch-free pass, then looks up only the keys it holds.
        if let Some(rows) = self.sparse_candidates(keys, usable) {
            let row_at = |position: usize| rows.get(position).map(|&row| row as usize);
            self.probe_rows(keys, rows.len(), row_at, probe_rows, build_rows);
            return;
        }
        let row_at = |row: usize| usable.get(row).is_some_and(|&usable| usable).then_some(row);
        self.probe_rows(keys, keys.len(), row_at, probe_rows, build_rows);
    }

    /// The rows whose key the key bitmap holds, where the table has one and they are at most
    /// one in [`SPARSE_PROBE_SHARE`] of `keys`: a probe then looks up only those.
    fn sparse_candidates(&self, keys: &[u64], usable: &[bool]) -> Option<Vec<u32>> {
        let bits = self.key_bits.as_ref()?;
        // The first keys tell whether the pass over all of them is likely to pay.
        let sample = keys.len().min(SPARSE_SAMPLE_KEYS);
        let sampled = (0..sample)
            .filter(|&row| usable[row] && bits.may_hold(keys[row]))
            .count();
        if sampled * SPARSE_PROBE_SHARE > sample {
            return None;
        }
        let candidates = self.may_match(keys, usable);
        (candidates.count_set_bits() * SPARSE_PROBE_SHARE <= keys.len())
            .then(|| candidates.set_indices().map(|row| row as u32).collect())
    }

    /// Probes the keys of the rows `row_at(0..count)` gives (`None`: a row to skip), appending
    /// their pairs in that order.
    fn probe_rows(
        &self,
        keys: &[u64],
        count: usize,
        row_at: impl Fn(usize) -> Option<usize>,
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) {
        // A table that fits the core's cache needs no prefetch.
        let prefetching = self.memory_size() >= PREFETCH_MIN_TABLE_BYTES;
        // A key repeating the row before it (probe input clustered by the key, as `lineitem`
        // is by order) takes that row's matches without a lookup.
        let mut previous: Option<(u64, Matches<'_>)> = None;
        for position in 0..count {
            if prefetching && let Some(ahead) = row_at(position + PREFETCH_DISTANCE) {
                self.prefetch(keys[ahead]);
            }
            let Some(row) = row_at(position) else {
                continue;
            };
            let key = keys[row];
            let matches = match previous {
                Some((previous_key, matches)) if previous_key == key => matches,
                _ => self.matches(key),
            };
            previous = Some((key, matches));
            match matches {
                Matches::None => {}
                Matches::One(build_row) => {
                    probe_rows.push(row as u32);
                    build_rows.push(build_row);
                }
                Matches::Many(matches) => {
                    for &build_row in matches {
                        probe_rows.push(row as u32);
                        build_rows.push(build_row);
                    }
                }
            }
        }
    }

    /// Also keeps a copy of the table on the GPU when a GPU is present and the build has at
    /// least [`GPU_MIN_BUILD_ROWS`] usable rows; probes of at least [`GPU_MIN_PROBE_ROWS`] keys
    /// (or [`GPU_MIN_PROBE_ROWS_VARIABLE`]'s number) then run there. `keys` and `usable` are the ones the table was built from. Returns
    /// whether the table is on the GPU; where the copy fails, the table stays on the CPU and the
    /// failure is reported once on stderr.
    #[cfg(feature = "cuda")]
    pub fn offload(&mut self, keys: &[u64], usable: &[bool]) -> bool {
        if usable.iter().filter(|&&usable| usable).count() < GPU_MIN_BUILD_ROWS {
            return false;
        }
        let Ok(gpu) = crate::cuda::Gpu::shared() else {
            return false;
        };
        match crate::cuda::DeviceJoinTable::build(gpu, keys, usable) {
            Ok(device) => {
                self.device = Some(device);
                true
            }
            Err(error) => {
                report_device_failure(&error);
                false
            }
        }
    }

    /// Whether the table can tell cheaply, without a lookup per key, which keys have no match:
    /// a table indexed by key, or a hashed one that keeps a key bitmap.
    pub fn has_key_filter(&self) -> bool {
        self.direct.is_some() || self.key_bits.is_some()
    }

    /// Whether each usable key may have a match, one bit per key: exact for a table
    /// indexed by key; the key bitmap's answer for a hashed table (a key it keeps may still
    /// miss, a key it drops always misses); `true` for every usable key where the table has
    /// neither (see [`JoinHashTable::has_key_filter`]).
    pub fn may_match(&self, keys: &[u64], usable: &[bool]) -> BooleanBuffer {
        BooleanBuffer::collect_bool(keys.len(), |row| {
            usable[row]
                && match &self.direct {
                    Some(direct) => !matches!(direct.matches(keys[row]), Matches::None),
                    None => self.may_hold(keys[row]),
                }
        })
    }

    /// Whether each usable probe key has a match, written over `found`.
    pub fn contains(&self, keys: &[u64], usable: &[bool], found: &mut Vec<bool>) {
        found.clear();
        if let Some(rows) = self.sparse_candidates(keys, usable) {
            found.resize(keys.len(), false);
            for (position, &row) in rows.iter().enumerate() {
                if let Some(&ahead) = rows.get(position + PREFETCH_DISTANCE) {
                    self.prefetch(keys[ahead as usize]);
                }
                found[row as usize] = !matches!(self.matches(keys[row as usize]), Matches::None);
            }
            return;
        }
        found.extend(
            keys.iter()
                .zip(usable)
                .enumerate()
                .map(|(row, (&key, &usable))| {
                    if let Some(&ahead) = keys.get(row + PREFETCH_DISTANCE) {
                        self.prefetch(ahead);
                    }
                    usable && !matches!(self.matches(key), Matches::None)
                }),
        );
    }

    /// Starts loading the cache line `key`'s lookup begins at.
    #[inline]
    fn prefetch(&self, key: u64) {
        match &self.direct {
            Some(direct) => direct.prefetch(key),
            None if !self.may_hold(key) => {}
            None => {
                let hash = hash_u64(key);
                let partition = &self.partitions[partition_of(hash, self.partition_bits)];
                prefetch(
                    partition
                        .slots
                        .as_ptr()
                        .wrapping_add(hash as usize & partition.mask),
                );
            }
        }
    }

    /// Bytes held by the table in host memory (a copy on the GPU takes none).
    pub fn memory_size(&self) -> usize {
        self.partitions
            .iter()
            .map(JoinPartition::memory_size)
            .sum::<usize>()
            + self
                .key_bits
                .as_ref()
                .map_or(0, |bits| bits.words.len() * 8)
            + self.direct.as_ref().map_or(0, DirectTable::memory_size)
    }
}

/// A bitmap of a table's build keys, read before a probe key is hashed: one bit per key value
/// where the keys are below [`KEY_BITS_LIMIT`] or [`KEY_BITS_PER_ROW`] times their number
/// (exact), else one bit per value of a multiplicative hash of the key into
/// [`HASHED_KEY_BITS_PER_ROW`] bits per build row (a one-hash Bloom filter: a clear bit still
/// means no match, a set one may be another key's).
struct KeyBits {
    words: Vec<u64>,
    /// For the hashed bitmap, the shift that leaves the hash's top bits as the bit index.
    hash_shift: Option<u32>,
}

impl KeyBits {
    /// The bitmap of the usable build `keys`, `None` where none is usable.
    fn build(keys: &[u64], usable: &[bool]) -> Option<KeyBits> {
        let usable_keys = || {
            keys.iter()
                .zip(usable)
                .filter(|(_, usable)| **usable)
                .map(|(&key, _)| key)
        };
        let largest = usable_keys().max()?;
        let rows = usable_keys().count() as u64;
        let exact = largest < KEY_BITS_LIMIT.max(rows.saturating_mul(KEY_BITS_PER_ROW));
        let mut bits = if exact {
            KeyBits {
                words: vec![0; (largest / 64 + 1) as usize],
                hash_shift: None,
            }
        } else {
            let width = rows
                .saturating_mul(HASHED_KEY_BITS_PER_ROW)
                .clamp(1 << MIN_HASHED_KEY_BITS_LOG, 1 << MAX_HASHED_KEY_BITS_LOG)
                .next_power_of_two();
            KeyBits {
                words: vec![0; (width / 64) as usize],
                hash_shift: Some(u64::BITS - width.trailing_zeros()),
            }
        };
        for key in usable_keys() {
            let bit = bits.bit(key);
            bits.words[bit / 64] |= 1 << (bit % 64);
        }
        Some(bits)
    }

    /// The bit of `key`: the key itself, or its hash's top bits.
    #[inline]
    fn bit(&self, key: u64) -> usize {
        match self.hash_shift {
            None => key as usize,
            Some(shift) => (key.wrapping_mul(FIBONACCI_MULTIPLIER) >> shift) as usize,
        }
    }

    /// Whether `key` may be a build key: false when its bit is clear.
    #[inline]
    fn may_hold(&self, key: u64) -> bool {
        let bit = self.bit(key);
        self.words
            .get(bit / 64)
            .is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }
}

/// Says once per process on stderr that the GPU failed and the CPU took over: results stay
/// right, but the user should know the device is not doing the work.
#[cfg(feature = "cuda")]
fn report_device_failure(error: &KernelError) {
    static REPORTED: std::sync::Once = std::sync::Once::new();
    REPORTED.call_once(|| eprintln!("sabot: {error}; joins run on the CPU instead"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "cuda")]
    #[test]
    fn the_probe_threshold_override_takes_a_number_of_rows() {
        assert_eq!(min_probe_rows_from(None), Ok(GPU_MIN_PROBE_ROWS));
        assert_eq!(min_probe_rows_from(Some(" 32768")), Ok(32768));
        let error = min_probe_rows_from(Some("lots")).unwrap_err();
        assert!(
            error.contains("SABOT_GPU_MIN_PROBE_ROWS=\"lots\""),
            "{error}"
        );
    }

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

    /// Whether the table of `keys` (all usable) is a direct array.
    fn is_direct(keys: &[u64]) -> bool {
        JoinHashTable::build(keys, &vec![true; keys.len()])
            .unwrap()
            .direct
            .is_some()
    }

    #[test]
    fn dense_keys_index_a_direct_table_and_sparse_ones_hash() {
        let dense: Vec<u64> = (0..10_000).map(|row| row % 9_000).collect();
        assert!(is_direct(&dense));
        let sparse: Vec<u64> = (0..10_000).map(|row| row * 100).collect();
        assert!(!is_direct(&sparse));
        // A few hundred keys below 2^18: an array of at most 1 MiB.
        let small: Vec<u64> = (0..400).map(|row| row * 600).collect();
        assert!(is_direct(&small));
    }

    #[test]
    fn a_hashed_table_of_keys_below_2_pow_23_answers_misses_from_its_bitmap() {
        let keys: Vec<u64> = (0..10_000).map(|row| row * 100 + 7).collect();
        let table = JoinHashTable::build(&keys, &vec![true; keys.len()]).unwrap();
        assert!(table.direct.is_none() && table.key_bits.is_some());
        let probes = [7, 8, 107, 999_907, 999_908, 5_000_000, 1 << 40];
        let (mut probe, mut build) = (Vec::new(), Vec::new());
        table.probe(&probes, &[true; 7], &mut probe, &mut build);
        assert_eq!((probe, build), (vec![0, 2, 3], vec![0, 1, 9_999]));
        let mut found = Vec::new();
        table.contains(&probes, &[true; 7], &mut found);
        assert_eq!(found, [true, false, true, true, false, false, false]);

        // Keys far past 2^23 and their rows: a hashed bitmap, which still finds every match.
        let wide: Vec<u64> = (0..1_000).map(|row| row << 30).collect();
        let table = JoinHashTable::build(&wide, &vec![true; wide.len()]).unwrap();
        let bits = table.key_bits.as_ref().expect("a hashed bitmap");
        assert_eq!(bits.words.len() * 64, 1 << MIN_HASHED_KEY_BITS_LOG);
        assert!(bits.hash_shift.is_some());
        table.contains(&[0, 1 << 30, 5], &[true; 3], &mut found);
        assert_eq!(found, [true, true, false]);
    }

    #[test]
    fn only_probes_whose_first_keys_mostly_miss_read_the_bitmap_first() {
        let keys: Vec<u64> = (0..10_000).map(|row| row * 100).collect();
        let table = JoinHashTable::build(&keys, &vec![true; keys.len()]).unwrap();
        assert!(table.direct.is_none() && table.key_bits.is_some());
        let usable = vec![true; 4_096];
        let hits: Vec<u64> = (0..4_096).map(|row| row * 100).collect();
        assert!(table.sparse_candidates(&hits, &usable).is_none());
        let misses: Vec<u64> = (0..4_096).map(|row| row * 100 + 1).collect();
        assert_eq!(table.sparse_candidates(&misses, &usable), Some(Vec::new()));
        // One hit in eight after the first keys: the matches are found among the candidates.
        let mixed: Vec<u64> = (0..4_096)
            .map(|row| {
                if row % 8 == 0 {
                    row * 100
                } else {
                    row * 100 + 1
                }
            })
            .collect();
        let candidates = table.sparse_candidates(&mixed, &usable).unwrap();
        assert_eq!(candidates, (0..4_096).step_by(8).collect::<Vec<u32>>());
    }

    #[test]
    fn a_hashed_key_bitmap_answers_most_misses_and_never_drops_a_match() {
        // Keys that share their low 20 bits: a bitmap of the low bits would set one bit.
        let keys: Vec<u64> = (1..=50_000).map(|row| row << 20).collect();
        let table = JoinHashTable::build(&keys, &vec![true; keys.len()]).unwrap();
        assert!(
            table
                .key_bits
                .as_ref()
                .is_some_and(|bits| bits.hash_shift.is_some())
        );
        let probes: Vec<u64> = (1..=200_000).map(|row| row << 19).collect();
        let usable = vec![true; probes.len()];
        let kept = table.may_match(&probes, &usable);
        // Every even probe up to the last key is a build key; few others pass.
        let is_key = |probe: u64| (probe >> 19).is_multiple_of(2) && probe >> 20 <= 50_000;
        assert!(
            probes
                .iter()
                .enumerate()
                .all(|(row, &probe)| !is_key(probe) || kept.value(row))
        );
        let false_positives = probes
            .iter()
            .enumerate()
            .filter(|&(row, &probe)| kept.value(row) && !is_key(probe))
            .count();
        assert!(false_positives < 150_000 / 12, "{false_positives}");
        let (mut probe, mut build) = (Vec::new(), Vec::new());
        table.probe(&probes, &usable, &mut probe, &mut build);
        assert_eq!(probe.len(), keys.len());
        assert!(
            probe
                .iter()
                .zip(&build)
                .all(|(&p, &b)| probes[p as usize] == keys[b as usize])
        );
    }

    #[test]
    fn a_large_hashed_table_keeps_its_bitmap_while_its_keys_are_below_128_per_row() {
        // 100K keys up to 9.9M (past 2^23) at 1 in 100: below 128 times the rows.
        let keys: Vec<u64> = (0..100_000).map(|row| row * 100).collect();
        assert!(keys[keys.len() - 1] >= KEY_BITS_LIMIT);
        let table = JoinHashTable::build(&keys, &vec![true; keys.len()]).unwrap();
        assert!(table.direct.is_none() && table.key_bits.is_some());
        let probes = [0, 1, 9_999_900, 9_999_901, 8_400_000, 8_400_050, 1 << 40];
        let mut found = Vec::new();
        table.contains(&probes, &[true; 7], &mut found);
        assert_eq!(found, [true, false, true, false, true, false, false]);
        // Half the keys over the same range: past 128 per row, the bitmap is hashed.
        let sparser: Vec<u64> = (0..50_000).map(|row| row * 200).collect();
        let table = JoinHashTable::build(&sparser, &vec![true; sparser.len()]).unwrap();
        assert!(
            table
                .key_bits
                .as_ref()
                .is_some_and(|bits| bits.hash_shift.is_some())
        );
    }

    #[test]
    fn key_filters_drop_only_keys_without_a_match() {
        let probes: Vec<u64> = (0..100_000).collect();
        let usable: Vec<bool> = probes.iter().map(|&key| key != 300).collect();
        let mut found = Vec::new();
        let may_match = |table: &JoinHashTable| -> Vec<bool> {
            table.may_match(&probes, &usable).iter().collect()
        };
        // Indexed by key: exact.
        let dense: Vec<u64> = (0..1_000).map(|key| key * 3).collect();
        let direct = JoinHashTable::build(&dense, &vec![true; dense.len()]).unwrap();
        assert!(direct.has_key_filter());
        direct.contains(&probes, &usable, &mut found);
        assert_eq!(may_match(&direct), found);
        // Hashed with a bitmap: every match kept, no false positive below 2^23.
        let sparse: Vec<u64> = (0..10_000).map(|key| key * 100 + 7).collect();
        let hashed = JoinHashTable::build(&sparse, &vec![true; sparse.len()]).unwrap();
        assert!(hashed.direct.is_none() && hashed.has_key_filter());
        hashed.contains(&probes, &usable, &mut found);
        assert_eq!(may_match(&hashed), found);
        // Hashed with a hashed bitmap: every match kept.
        let wide: Vec<u64> = (0..100).map(|key| key << 30).collect();
        let hashed = JoinHashTable::build(&wide, &vec![true; wide.len()]).unwrap();
        assert!(hashed.has_key_filter());
        hashed.contains(&probes, &usable, &mut found);
        assert!(
            found
                .iter()
                .zip(may_match(&hashed))
                .all(|(&found, kept)| kept || !found)
        );
    }

    #[test]
    fn many_partitions_find_every_key() {
        let keys: Vec<u64> = (0..100_000).map(|key| key * 3 % 70_000 * 1_000).collect();
        let table = JoinHashTable::build(&keys, &vec![true; keys.len()]).unwrap();
        assert!(table.partitions.len() > 1);
        let (mut probe, mut build) = (Vec::new(), Vec::new());
        table.probe(&keys, &vec![true; keys.len()], &mut probe, &mut build);
        assert!(
            build
                .iter()
                .zip(&probe)
                .all(|(&b, &p)| keys[b as usize] == keys[p as usize])
        );
        let mut counts = std::collections::HashMap::new();
        for &key in &keys {
            *counts.entry(key).or_insert(0usize) += 1;
        }
        let pairs: usize = counts.values().map(|count| count * count).sum();
        assert_eq!(probe.len(), pairs);
    }
}
