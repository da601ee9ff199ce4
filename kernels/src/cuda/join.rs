//! A join table kept on the GPU: the distinct build keys in a linear-probing table in device
//! memory, hashed as on the CPU, each with the range of its build rows in a contiguous (CSR)
//! array, also on the device. A probe copies its keys over, and the device finds each key and
//! writes the (probe row, build row) pairs in the CPU table's order: probe rows ascending, each
//! one's build rows ascending. Only the keys and the pairs cross the bus.

use std::sync::atomic::{AtomicU64, Ordering};

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::{Gpu, THREADS_PER_BLOCK, device_error};
use crate::error::{KernelError, Result};
use crate::group_map::GroupMap;
use crate::hash::hash_u64;

/// An empty slot, and a probe key without a match.
const NO_MATCH: u32 = u32::MAX;

/// Probe keys the process has looked up on the device.
static DEVICE_PROBE_ROWS: AtomicU64 = AtomicU64::new(0);

/// How many probe keys this process has looked up on the GPU so far: where a user (or a
/// benchmark) sees whether its joins reached the device.
pub fn device_probe_rows() -> u64 {
    DEVICE_PROBE_ROWS.load(Ordering::Relaxed)
}

/// The build side of a join, on the device.
pub struct DeviceJoinTable {
    gpu: &'static Gpu,
    slot_keys: CudaSlice<u64>,
    slot_ids: CudaSlice<u32>,
    mask: u64,
    /// Key id `d`'s build rows are `rows[starts[d]..starts[d + 1]]`.
    starts: CudaSlice<u32>,
    rows: CudaSlice<u32>,
}

impl DeviceJoinTable {
    /// The table of the usable build `keys` (a null key or one that cannot match is not usable).
    pub fn build(gpu: &'static Gpu, keys: &[u64], usable: &[bool]) -> Result<DeviceJoinTable> {
        if keys.len() >= NO_MATCH as usize {
            return Err(KernelError::TooManyRows {
                rows: keys.len(),
                limit: NO_MATCH as usize - 1,
            });
        }
        let (usable_rows, usable_keys): (Vec<u32>, Vec<u64>) = keys
            .iter()
            .zip(usable)
            .enumerate()
            .filter(|(_, (_, usable))| **usable)
            .map(|(row, (&key, _))| (row as u32, key))
            .unzip();
        let mut distinct = GroupMap::<u64>::new();
        let mut ids = Vec::new();
        distinct.intern(&usable_keys, &mut ids);
        let distinct_keys = distinct.keys();
        let mut starts = vec![0u32; distinct_keys.len() + 1];
        for &id in &ids {
            starts[id + 1] += 1;
        }
        for id in 0..distinct_keys.len() {
            starts[id + 1] += starts[id];
        }
        let mut cursor = starts.clone();
        let mut rows = vec![0u32; usable_rows.len()];
        for (&id, &row) in ids.iter().zip(&usable_rows) {
            rows[cursor[id] as usize] = row;
            cursor[id] += 1;
        }
        // At most half full, so that a probe of a missing key ends after a few slots.
        let capacity = (distinct_keys.len() * 2).next_power_of_two().max(16);
        let mask = capacity - 1;
        let mut slot_keys = vec![0u64; capacity];
        let mut slot_ids = vec![NO_MATCH; capacity];
        for (id, &key) in distinct_keys.iter().enumerate() {
            let mut slot = hash_u64(key) as usize & mask;
            while slot_ids[slot] != NO_MATCH {
                slot = (slot + 1) & mask;
            }
            slot_keys[slot] = key;
            slot_ids[slot] = id as u32;
        }
        let stream = gpu.stream()?;
        let copy = device_error("copy the join table to the device");
        Ok(DeviceJoinTable {
            gpu,
            slot_keys: stream.clone_htod(&slot_keys).map_err(&copy)?,
            slot_ids: stream.clone_htod(&slot_ids).map_err(&copy)?,
            mask: mask as u64,
            starts: stream.clone_htod(&starts).map_err(&copy)?,
            rows: stream.clone_htod(&rows).map_err(&copy)?,
        })
    }

    /// Appends a (probe row, build row) pair for every build row whose key equals a usable
    /// probe key, in the order [`crate::JoinHashTable::probe`] gives them. The first pass finds
    /// each probe row's key and counts each block's pairs, the host adds up the blocks' counts
    /// into their offsets, and the second pass writes the pairs there.
    pub fn probe(
        &self,
        keys: &[u64],
        usable: &[bool],
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows = keys.len();
        let blocks = rows.div_ceil(THREADS_PER_BLOCK as usize);
        let usable: Vec<u8> = usable.iter().map(|&usable| u8::from(usable)).collect();
        let stream = self.gpu.stream()?;
        let (copy, allocate) = (
            device_error("copy probe keys to the device"),
            device_error("allocate"),
        );
        let device_keys = stream.clone_htod(keys).map_err(&copy)?;
        let device_usable = stream.clone_htod(&usable).map_err(&copy)?;
        let mut matches = stream.alloc_zeros::<u32>(rows).map_err(&allocate)?;
        let mut block_pairs = stream.alloc_zeros::<u64>(blocks).map_err(&allocate)?;
        let rows_arg = rows as u64;
        let grid = LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (THREADS_PER_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut count = stream.launch_builder(&self.gpu.join_probe_count);
        count
            .arg(&self.slot_keys)
            .arg(&self.slot_ids)
            .arg(&self.mask)
            .arg(&self.starts)
            .arg(&device_keys)
            .arg(&device_usable)
            .arg(&rows_arg)
            .arg(&mut matches)
            .arg(&mut block_pairs);
        // SAFETY: the arguments are, in order, the kernel's parameters in kernels.cu (u64*, u32*,
        // u64, u32*, u64*, u8*, u64, u32*, u64*); the slot arrays hold `mask + 1` elements with
        // at least one empty slot (the table is at most half full), so every probe loop ends;
        // `starts` holds one more element than there are key ids; the probe arrays and
        // `matches` hold `rows` elements and `block_pairs` one per block of the grid, whose
        // block size is the kernel's THREADS_PER_BLOCK.
        unsafe { count.launch(grid) }.map_err(device_error("launch the join probe"))?;
        let mut offsets = stream
            .clone_dtoh(&block_pairs)
            .map_err(device_error("copy pair counts from the device"))?;
        let mut pairs = 0u64;
        for offset in &mut offsets {
            (*offset, pairs) = (pairs, pairs + *offset);
        }
        if pairs == 0 {
            DEVICE_PROBE_ROWS.fetch_add(rows as u64, Ordering::Relaxed);
            return Ok(());
        }
        let device_offsets = stream.clone_htod(&offsets).map_err(&copy)?;
        let pairs = pairs as usize;
        let mut probe_out = stream.alloc_zeros::<u32>(pairs).map_err(&allocate)?;
        let mut build_out = stream.alloc_zeros::<u32>(pairs).map_err(&allocate)?;
        let mut write = stream.launch_builder(&self.gpu.join_probe_write);
        write
            .arg(&self.starts)
            .arg(&self.rows)
            .arg(&matches)
            .arg(&rows_arg)
            .arg(&device_offsets)
            .arg(&mut probe_out)
            .arg(&mut build_out);
        // SAFETY: the arguments are, in order, the kernel's parameters (u32*, u32*, u32*, u64,
        // u64*, u32*, u32*); `matches` holds a key id or NO_MATCH for each of `rows` rows,
        // `device_offsets` one offset per block of the same grid as the first pass, and the
        // outputs hold the `pairs` pairs those offsets add up to.
        unsafe { write.launch(grid) }.map_err(device_error("launch the join probe"))?;
        let copy_back = device_error("copy pairs from the device");
        let (probe_start, build_start) = (probe_rows.len(), build_rows.len());
        probe_rows.resize(probe_start + pairs, 0);
        build_rows.resize(build_start + pairs, 0);
        stream
            .memcpy_dtoh(&probe_out, &mut probe_rows[probe_start..])
            .map_err(&copy_back)?;
        stream
            .memcpy_dtoh(&build_out, &mut build_rows[build_start..])
            .map_err(&copy_back)?;
        stream.synchronize().map_err(&copy_back)?;
        DEVICE_PROBE_ROWS.fetch_add(rows as u64, Ordering::Relaxed);
        Ok(())
    }
}
