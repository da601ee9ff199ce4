//! Distributed mode (DESIGN D7): a coordinator process and worker processes. A query is
//! planned in every process from its SQL and table locations, the same way, and cut into the
//! same stages (`sabot_planner::StagePlan`); the coordinator runs each stage's tasks on worker
//! slots, the workers keep their tasks' outputs partitioned for the next stage and serve them
//! over Arrow Flight, and lost workers' tasks and outputs are recomputed.

mod client;
mod coordinator;
mod local;
mod planning;
mod process;
mod worker;

pub use client::{cluster_status, run_remote};
pub use coordinator::{CoordinatorOptions, run_coordinator};
pub use local::{LocalCluster, LocalClusterConfig};
pub use sabot_shuffle::{ClusterStatus, QuerySummary, Security, TlsFiles};
pub use worker::{WorkerOptions, run_worker};
