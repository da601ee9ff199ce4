//! Per-operator measurements shown by `EXPLAIN ANALYZE`: rows and batches out, time spent, and
//! peak memory held.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one operator, updated by every task that runs it.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    rows: AtomicU64,
    batches: AtomicU64,
    time_ns: AtomicU64,
    peak_memory_bytes: AtomicU64,
}

impl OperatorMetrics {
    pub(crate) fn record_output(&self, rows: usize) {
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_time(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.time_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn record_memory(&self, bytes: usize) {
        self.peak_memory_bytes
            .fetch_max(bytes as u64, Ordering::Relaxed);
    }

    /// Rows the operator produced.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Batches the operator produced.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Time spent in the operator, summed over threads.
    pub fn time(&self) -> Duration {
        Duration::from_nanos(self.time_ns.load(Ordering::Relaxed))
    }

    /// Most memory the operator held at once.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.peak_memory_bytes.load(Ordering::Relaxed)
    }
}

impl fmt::Display for OperatorMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rows={}, batches={}, time={:.3}ms, peak_mem={}B",
            self.rows(),
            self.batches(),
            self.time().as_secs_f64() * 1e3,
            self.peak_memory_bytes()
        )
    }
}
