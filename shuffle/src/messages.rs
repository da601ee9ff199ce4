//! The messages processes exchange, as JSON in Flight action bodies and tickets.

use serde::{Deserialize, Serialize};

/// A table a query reads, by location, so that every process can open it itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSource {
    pub name: String,
    /// An absolute path to a Parquet file or a directory of them.
    pub path: String,
}

/// A client's query: its SQL and the tables it reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryRequest {
    pub sql: String,
    pub tables: Vec<TableSource>,
}

/// What a `do_get` ticket asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ticket {
    /// Run a query and stream its result (sent to the coordinator).
    Query(QueryRequest),
    /// One partition (`bucket`) of one task's shuffle output (sent to a worker).
    Shuffle {
        query: u64,
        stage: usize,
        task: usize,
        bucket: usize,
    },
}

/// A worker announcing itself to the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// The URL other processes reach the worker's endpoint at.
    pub address: String,
    /// How many tasks it runs at once.
    pub slots: usize,
}

/// Where the outputs of one input stage of a task are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskInput {
    pub stage: usize,
    /// Per map task of that stage, in task order, the worker address that holds its output.
    pub locations: Vec<String>,
}

/// One task: partition `task` of stage `stage` of the query `sql` over `tables`, planned
/// with `partitions` partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    pub query: u64,
    pub sql: String,
    pub tables: Vec<TableSource>,
    pub partitions: usize,
    pub stage: usize,
    pub task: usize,
    /// A digest of the coordinator's plan, which the worker's plan must match.
    pub fingerprint: u64,
    pub inputs: Vec<TaskInput>,
}

/// What a finished task produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskReport {
    pub rows: u64,
    /// Bytes (Arrow in memory) per output partition.
    pub bucket_bytes: Vec<u64>,
}

/// Why a task failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TaskFailure {
    /// An input could not be fetched from the worker at `address`: its outputs are lost.
    FetchFailed { address: String, message: String },
    /// The task itself failed.
    Failed { message: String },
}

/// One worker as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub address: String,
    pub slots: usize,
    pub alive: bool,
    pub running_tasks: usize,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms: u64,
}

/// One running query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryStatus {
    pub id: u64,
    pub sql: String,
    pub stages: usize,
    pub tasks_done: usize,
    pub tasks_total: usize,
    pub retries: usize,
}

/// A task running on a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatus {
    pub query: u64,
    pub stage: usize,
    pub task: usize,
    pub worker: String,
    /// Milliseconds since it started.
    pub running_ms: u64,
}

/// A query that finished, and what it moved between processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuerySummary {
    pub id: u64,
    pub sql: String,
    pub millis: u64,
    pub stages: usize,
    /// Bytes (Arrow in memory) the stages wrote for the stages that read them.
    pub shuffle_bytes_written: u64,
    /// Bytes tasks read from other tasks' outputs (a broadcast counts once per reading task,
    /// though each worker fetches it once for all its tasks).
    pub shuffle_bytes_read: u64,
    pub retries: usize,
}

/// The coordinator's answer to a status request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub workers: Vec<WorkerStatus>,
    pub queries: Vec<QueryStatus>,
    pub tasks: Vec<TaskStatus>,
    /// The most recent finished queries, oldest first.
    pub finished: Vec<QuerySummary>,
}
