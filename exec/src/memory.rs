//! The per-query memory budget that hash tables and sorts reserve from. Exceeding it ends the
//! query with an error naming the operator (spilling comes later) instead of an OOM kill.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, ArrayData};
use arrow::record_batch::RecordBatch;

use crate::error::{ExecError, Result};

/// The bytes `batches` hold, each buffer counted once however many of their columns share it.
/// Summing `RecordBatch::get_array_memory_size` counts a buffer once per array: string-view
/// columns taken from one dictionary's values all name that dictionary's whole data buffers,
/// so a sort of a few thousand such rows in many batches counted those buffers once per batch.
pub(crate) fn distinct_buffer_bytes(batches: &[RecordBatch]) -> usize {
    fn add(data: &ArrayData, seen: &mut HashSet<usize>, total: &mut usize) {
        let nulls = data.nulls().map(|nulls| nulls.buffer());
        for buffer in data.buffers().iter().chain(nulls) {
            if seen.insert(buffer.as_ptr() as usize) {
                *total += buffer.capacity();
            }
        }
        for child in data.child_data() {
            add(child, seen, total);
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    for batch in batches {
        for column in batch.columns() {
            add(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}

/// Bytes a query may hold in operator state, shared by all its operators.
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: usize,
    used_bytes: AtomicUsize,
    peak_bytes: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit_bytes`; `None` is unlimited.
    pub fn new(limit_bytes: Option<usize>) -> MemoryBudget {
        MemoryBudget {
            limit_bytes: limit_bytes.unwrap_or(usize::MAX),
            used_bytes: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
        }
    }

    /// Reserves `bytes` for `operator`, or fails naming it when the limit would be passed.
    pub fn reserve(&self, operator: &'static str, bytes: usize) -> Result<()> {
        let mut used = self.used_bytes.load(Ordering::Relaxed);
        loop {
            let wanted = used.saturating_add(bytes);
            if wanted > self.limit_bytes {
                return Err(ExecError::MemoryLimit {
                    operator,
                    requested_bytes: bytes,
                    used_bytes: used,
                    limit_bytes: self.limit_bytes,
                });
            }
            match self.used_bytes.compare_exchange_weak(
                used,
                wanted,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak_bytes.fetch_max(wanted, Ordering::Relaxed);
                    return Ok(());
                }
                Err(actual) => used = actual,
            }
        }
    }

    /// Gives back `bytes` reserved earlier.
    pub fn release(&self, bytes: usize) {
        self.used_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes reserved now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Acquire)
    }

    /// Most bytes reserved at once so far.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Ordering::Relaxed)
    }
}

/// Memory an operator holds, reserved from a budget and given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    operator: &'static str,
    bytes: usize,
}

impl Reservation {
    pub(crate) fn new(budget: &Arc<MemoryBudget>, operator: &'static str) -> Self {
        Reservation {
            budget: Arc::clone(budget),
            operator,
            bytes: 0,
        }
    }

    /// Grows or shrinks the reservation to `bytes`.
    pub(crate) fn resize(&mut self, bytes: usize) -> Result<()> {
        if bytes > self.bytes {
            self.budget.reserve(self.operator, bytes - self.bytes)?;
        } else {
            self.budget.release(self.bytes - bytes);
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fail_past_the_limit_and_name_the_operator() {
        let budget = Arc::new(MemoryBudget::new(Some(100)));
        let mut table = Reservation::new(&budget, "HashAggregate");
        table.resize(60).unwrap();
        let mut sort = Reservation::new(&budget, "Sort");
        let error = sort.resize(50).unwrap_err();
        assert!(
            error.to_string().starts_with("Sort needs 50 more bytes"),
            "{error}"
        );
        table.resize(10).unwrap();
        sort.resize(50).unwrap();
        assert_eq!(budget.used_bytes(), 60);
        drop(table);
        drop(sort);
        assert_eq!(budget.used_bytes(), 0);
        assert_eq!(budget.peak_bytes(), 60);
    }

    #[test]
    fn buffers_shared_by_batches_count_once() {
        use arrow::array::{StringViewArray, UInt32Array};
        use arrow::compute::take;
        use arrow::datatypes::{DataType, Field, Schema};

        let long: Vec<String> = (0..10_000)
            .map(|row| format!("a long string, row {row}"))
            .collect();
        let values = StringViewArray::from_iter_values(&long);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batches: Vec<RecordBatch> = (0..4u32)
            .map(|batch| {
                let picked =
                    take(&values, &UInt32Array::from(vec![batch, batch + 4]), None).unwrap();
                RecordBatch::try_new(Arc::clone(&schema), vec![picked]).unwrap()
            })
            .collect();
        let shared = distinct_buffer_bytes(&batches);
        let per_batch: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        let strings: usize = values
            .data_buffers()
            .iter()
            .map(|buffer| buffer.capacity())
            .sum();
        assert!(shared >= strings, "{shared} < {strings}");
        assert!(
            shared < 2 * strings,
            "{shared} counts the shared buffers twice"
        );
        assert!(per_batch >= 4 * strings, "{per_batch}");
    }
}
