//! A join table kept on the GPU: the distinct build keys in a linear-probing table in device
//! memory, hashed as on the CPU, each with the id of its build rows; the rows themselves stay on
//! the host in a contiguous (CSR) array. A probe copies its keys over, the device finds each
//! key's id, and the host expands the ids into (probe row, build row) pairs in the CPU table's
//! order: probe rows ascending, each one's build rows ascending.

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::{Gpu, device_error};
use crate::error::{KernelError, Result};
use crate::group_map::GroupMap;
use crate::hash::hash_u64;

/// An empty slot, and a probe key without a match.
const NO_MATCH: u32 = u32::MAX;

/// The build side of a join, its key table on the device.
pub struct DeviceJoinTable {
    gpu: &'static Gpu,
    slot_keys: CudaSlice<u64>,
    slot_ids: CudaSlice<u32>,
    mask: u64,
    /// Key id `d`'s build rows are `rows[starts[d]..starts[d + 1]]`.
    starts: Vec<u32>,
    rows: Vec<u32>,
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
            starts,
            rows,
        })
    }

    /// Appends a (probe row, build row) pair for every build row whose key equals a usable
    /// probe key, as [`crate::JoinHashTable::probe`] does.
    pub fn probe(
        &self,
        keys: &[u64],
        usable: &[bool],
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) -> Result<()> {
        for (row, id) in self.matching_ids(keys, usable)?.into_iter().enumerate() {
            if id == NO_MATCH {
                continue;
            }
            let id = id as usize;
            for &build_row in &self.rows[self.starts[id] as usize..self.starts[id + 1] as usize] {
                probe_rows.push(row as u32);
                build_rows.push(build_row);
            }
        }
        Ok(())
    }

    /// For each probe key, the id of its build key, or [`NO_MATCH`].
    fn matching_ids(&self, keys: &[u64], usable: &[bool]) -> Result<Vec<u32>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let usable: Vec<u8> = usable.iter().map(|&usable| u8::from(usable)).collect();
        let stream = self.gpu.stream()?;
        let copy = device_error("copy probe keys to the device");
        let device_keys = stream.clone_htod(keys).map_err(&copy)?;
        let device_usable = stream.clone_htod(&usable).map_err(&copy)?;
        let mut matches = stream
            .alloc_zeros::<u32>(keys.len())
            .map_err(device_error("allocate"))?;
        let rows = keys.len() as u64;
        let mut launch = stream.launch_builder(&self.gpu.join_probe);
        launch
            .arg(&self.slot_keys)
            .arg(&self.slot_ids)
            .arg(&self.mask)
            .arg(&device_keys)
            .arg(&device_usable)
            .arg(&rows)
            .arg(&mut matches);
        // SAFETY: the arguments are, in order, the kernel's parameters in kernels.cu (u64*, u32*,
        // u64, u64*, u8*, u64, u32*); the slot arrays hold `mask + 1` elements and at least one
        // empty slot (the table is at most half full), so every probe loop ends; the probe
        // arrays and `matches` hold `rows` elements.
        unsafe { launch.launch(self.gpu.launch_config(keys.len(), 0)) }
            .map_err(device_error("launch the join probe"))?;
        stream
            .clone_dtoh(&matches)
            .map_err(device_error("copy matches from the device"))
    }

    /// Bytes the table holds on the host (its device memory is about twelve bytes per slot).
    pub fn memory_size(&self) -> usize {
        (self.starts.capacity() + self.rows.capacity()) * 4
    }
}
