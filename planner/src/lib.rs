//! Sabot's physical planner: turns DataFusion's optimized `LogicalPlan` into Sabot's physical
//! plan (`sabot_exec::PhysicalNode`). A logical node Sabot has no operator for becomes a
//! fallback: DataFusion plans and runs that subtree, and its output feeds Sabot's operators
//! above it. Every fallback is named in the plan (DESIGN.md D2). Queries over stream tables
//! become chains of streaming operators instead ([`plan_stream`]).

#![deny(unsafe_code)]

mod error;
mod join_order;
mod join_region;
mod key_source;
mod memory_table;
mod physical;
mod semi_join_pushdown;
mod stages;
mod stream;
mod subquery;
mod window_functions;

pub use error::{PlanError, Result};
pub use memory_table::MemoryTable;
pub use physical::{PhysicalPlanner, parquet_table_files};
pub use stages::{Exchange, Stage, StagePlan};
pub use stream::{StreamPlan, aggregate_call, plan_stream, reads_stream};
pub use window_functions::{WindowFunctionKind, window_functions};
