//! Sabot's exchanges between processes: a hash partitioner that splits a task's output into
//! the partitions of the next stage, a store that keeps those outputs (in memory, spilling to
//! disk over a budget), and one Arrow Flight endpoint per process that serves them (`do_get`)
//! and carries the coordinator/worker control messages (Flight actions), authenticated by a
//! shared token and optionally over TLS.

mod client;
mod endpoint;
mod error;
mod messages;
mod partition;
mod security;
mod store;

pub use client::{Peer, Peers};
pub use endpoint::{Handler, ResultStream, batch_stream, serve};
pub use error::{Result, ShuffleError};
pub use messages::{
    ClusterStatus, QueryRequest, QueryStatus, QuerySummary, TableSource, TaskFailure, TaskInput,
    TaskReport, TaskSpec, TaskStatus, Ticket, WorkerRegistration, WorkerStatus,
};
pub use partition::{HashPartitioner, compact_views};
pub use security::{Security, TlsFiles};
pub use store::OutputStore;

/// For implementing [`Handler`] without naming the transport crates.
pub use bytes::Bytes;
pub use tonic::async_trait;
