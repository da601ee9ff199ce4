//! Sabot's task runtime: one worker thread per core, each with its own deque, stealing from the
//! others when idle, in the spirit of HyPer's morsel-driven parallelism and DuckDB's executor.
//! Work is submitted through a [`TaskGroup`], which can be waited on and cancelled as a whole.
//! The runtime knows nothing of SQL or Arrow, and has no async runtime on its hot path.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use sabot_scheduler::Scheduler;
//!
//! let scheduler = Scheduler::new(2).unwrap();
//! let sum = Arc::new(AtomicUsize::new(0));
//! let group = scheduler.group();
//! for morsel in 0..100 {
//!     let sum = Arc::clone(&sum);
//!     group.spawn(move |_| {
//!         sum.fetch_add(morsel, Ordering::Relaxed);
//!     });
//! }
//! group.wait().unwrap();
//! assert_eq!(sum.load(Ordering::Relaxed), 4950);
//! ```

#![deny(unsafe_code)]

mod error;
mod group;
mod pool;

pub use error::SchedulerError;
pub use group::TaskGroup;
pub use pool::{Priority, Scheduler};
