//! Session statistics: how many queries ran, what they scanned and how long they took.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::execution::ExecutedQuery;

/// A snapshot of a session's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Queries that ran to completion.
    pub queries_run: u64,
    /// Queries that ended in an error.
    pub queries_failed: u64,
    /// Rows produced by table scans.
    pub rows_scanned: u64,
    /// Bytes read from files by table scans.
    pub bytes_scanned: u64,
    /// Rows returned to the caller.
    pub rows_returned: u64,
    /// Wall time spent running queries.
    pub query_time: Duration,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queries run: {}, failed: {}, rows scanned: {}, bytes scanned: {}, rows returned: {}, query time: {:.3} s",
            self.queries_run,
            self.queries_failed,
            self.rows_scanned,
            self.bytes_scanned,
            self.rows_returned,
            self.query_time.as_secs_f64()
        )
    }
}

/// The live counters behind [`Stats`]; updated once per query.
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    queries_run: AtomicU64,
    queries_failed: AtomicU64,
    rows_scanned: AtomicU64,
    bytes_scanned: AtomicU64,
    rows_returned: AtomicU64,
    query_time_ns: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn record_success(&self, query: &ExecutedQuery, elapsed: Duration) {
        let rows_returned: usize = query.batches.iter().map(|batch| batch.num_rows()).sum();
        self.queries_run.fetch_add(1, Ordering::Relaxed);
        self.rows_scanned
            .fetch_add(query.rows_scanned, Ordering::Relaxed);
        self.bytes_scanned
            .fetch_add(query.bytes_scanned, Ordering::Relaxed);
        self.rows_returned
            .fetch_add(rows_returned as u64, Ordering::Relaxed);
        self.add_time(elapsed);
    }

    pub(crate) fn record_failure(&self, elapsed: Duration) {
        self.queries_failed.fetch_add(1, Ordering::Relaxed);
        self.add_time(elapsed);
    }

    fn add_time(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.query_time_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            queries_run: self.queries_run.load(Ordering::Relaxed),
            queries_failed: self.queries_failed.load(Ordering::Relaxed),
            rows_scanned: self.rows_scanned.load(Ordering::Relaxed),
            bytes_scanned: self.bytes_scanned.load(Ordering::Relaxed),
            rows_returned: self.rows_returned.load(Ordering::Relaxed),
            query_time: Duration::from_nanos(self.query_time_ns.load(Ordering::Relaxed)),
        }
    }
}
