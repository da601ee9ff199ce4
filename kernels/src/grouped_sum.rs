//! Grouped SUM and COUNT over group ids: each row's value is added to its group's sum and its
//! group's count of non-null values, nulls skipped. The CPU path is one pass of scalar adds (a
//! scatter-add, which no SIMD instruction set on x86 or Arm does faster); with the `cuda`
//! feature, inputs of at least [`GPU_MIN_ROWS`] rows into at least [`GPU_MIN_GROUPS`] groups
//! run on the GPU when one is present.
//! Integer sums wrap on overflow on both paths, as DataFusion's `SUM` over `Int64` does.

use arrow::array::{Array, Float64Array, Int64Array, PrimitiveArray};
use arrow::datatypes::{ArrowNativeTypeOp, ArrowPrimitiveType};

use crate::error::{KernelError, Result};

/// The fewest rows a grouped sum runs on the GPU for: below it, launching and copying cost more
/// than the CPU takes (measured in `benches/device.rs`).
pub const GPU_MIN_ROWS: usize = 1 << 21;
/// The fewest groups a grouped sum runs on the GPU for. The operators that call these kernels
/// keep every CPU core busy, so the GPU must beat all of them, not one: with few groups the sums
/// stay in each core's cache and the CPU cores outrun the copy over the bus; with many the CPU
/// misses its caches on every row and the GPU wins (measured in `benches/device.rs`).
pub const GPU_MIN_GROUPS: usize = 1 << 18;

/// Per-group results of a grouped sum: `sums[g]` and `counts[g]` are group `g`'s sum and number
/// of non-null values (a group with count 0 has sum 0).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedSums<N> {
    pub sums: Vec<N>,
    pub counts: Vec<u64>,
}

/// Where a kernel ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Gpu,
}

/// Grouped SUM and COUNT of 64-bit integers into `groups` groups: on the GPU for large inputs
/// where one is present, else on the CPU. Returns the results and where they were computed.
pub fn grouped_sum_i64(
    groups: usize,
    group_ids: &[u32],
    values: &Int64Array,
) -> Result<(GroupedSums<i64>, Backend)> {
    #[cfg(feature = "cuda")]
    if let Some(gpu) = gpu_for(values.len(), groups) {
        return Ok((
            gpu.grouped_sum_i64(groups, group_ids, values)?,
            Backend::Gpu,
        ));
    }
    Ok((grouped_sum_on_cpu(groups, group_ids, values)?, Backend::Cpu))
}

/// Grouped SUM and COUNT of doubles; see [`grouped_sum_i64`]. On the GPU the order of the
/// additions varies, so sums can differ from the CPU's in the last bits.
pub fn grouped_sum_f64(
    groups: usize,
    group_ids: &[u32],
    values: &Float64Array,
) -> Result<(GroupedSums<f64>, Backend)> {
    #[cfg(feature = "cuda")]
    if let Some(gpu) = gpu_for(values.len(), groups) {
        return Ok((
            gpu.grouped_sum_f64(groups, group_ids, values)?,
            Backend::Gpu,
        ));
    }
    Ok((grouped_sum_on_cpu(groups, group_ids, values)?, Backend::Cpu))
}

/// Grouped SUM and COUNT on the CPU whatever the input's size: the CPU path of the dispatching
/// kernels, and the baseline the device benchmark compares the GPU with.
pub fn grouped_sum_on_cpu<T: ArrowPrimitiveType>(
    groups: usize,
    group_ids: &[u32],
    values: &PrimitiveArray<T>,
) -> Result<GroupedSums<T::Native>> {
    check_group_ids(groups, group_ids, values.len())?;
    Ok(grouped_sum_cpu(groups, group_ids, values))
}

/// The GPU, when one is present and the input is large enough to gain from it.
#[cfg(feature = "cuda")]
fn gpu_for(rows: usize, groups: usize) -> Option<&'static crate::cuda::Gpu> {
    if rows < GPU_MIN_ROWS || groups < GPU_MIN_GROUPS {
        return None;
    }
    crate::cuda::Gpu::shared().ok()
}

/// Checks that there is one group id per value and that each names one of `groups` groups (a
/// device kernel would otherwise write outside its output).
pub(crate) fn check_group_ids(groups: usize, group_ids: &[u32], values: usize) -> Result<()> {
    if group_ids.len() != values {
        return Err(KernelError::GroupIdCount {
            values,
            group_ids: group_ids.len(),
        });
    }
    match group_ids.iter().copied().max() {
        Some(id) if id as usize >= groups => Err(KernelError::GroupId { id, groups }),
        _ => Ok(()),
    }
}

/// The CPU path; `group_ids` have been checked against `groups` and the values' length.
fn grouped_sum_cpu<T: ArrowPrimitiveType>(
    groups: usize,
    group_ids: &[u32],
    values: &PrimitiveArray<T>,
) -> GroupedSums<T::Native> {
    let mut sums = vec![T::Native::ZERO; groups];
    let mut counts = vec![0u64; groups];
    let raw = values.values();
    match values.nulls().filter(|nulls| nulls.null_count() > 0) {
        None => {
            for (&id, &value) in group_ids.iter().zip(raw.iter()) {
                let id = id as usize;
                sums[id] = sums[id].add_wrapping(value);
                counts[id] += 1;
            }
        }
        Some(nulls) => {
            for row in nulls.valid_indices() {
                let id = group_ids[row] as usize;
                sums[id] = sums[id].add_wrapping(raw[row]);
                counts[id] += 1;
            }
        }
    }
    GroupedSums { sums, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_counts_skip_nulls() {
        let values = Int64Array::from(vec![Some(5), None, Some(-2), Some(7), None]);
        let (result, backend) = grouped_sum_i64(3, &[0, 0, 1, 0, 2], &values).unwrap();
        assert_eq!(backend, Backend::Cpu);
        assert_eq!(result.sums, vec![12, -2, 0]);
        assert_eq!(result.counts, vec![2, 1, 0]);
    }

    #[test]
    fn integer_sums_wrap() {
        let values = Int64Array::from(vec![i64::MAX, 1]);
        let (result, _) = grouped_sum_i64(1, &[0, 0], &values).unwrap();
        assert_eq!(result.sums, vec![i64::MIN]);
    }

    #[test]
    fn bad_group_ids_are_errors() {
        let values = Float64Array::from(vec![1.0, 2.0]);
        let error = grouped_sum_f64(2, &[0, 2], &values).unwrap_err();
        assert_eq!(error.to_string(), "group id 2 is outside the 2 groups");
        let error = grouped_sum_f64(2, &[0], &values).unwrap_err();
        assert_eq!(error.to_string(), "2 values but 1 group ids");
    }
}
