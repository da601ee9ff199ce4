//! The per-query memory budget that hash tables and sorts reserve from. Exceeding it ends the
//! query with an error naming the operator (spilling comes later) instead of an OOM kill.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{ExecError, Result};

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
}
