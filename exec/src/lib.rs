//! Sabot's physical operators. A [`PhysicalNode`] tree is cut into pipelines at its breakers
//! (aggregation, sort, limit, materialized fallbacks); each pipeline reads morsels from a source
//! (a Parquet row group, a slice of in-memory batches), pushes them through its streaming
//! operators (filter, projection) and into its sink, one task per morsel on the
//! `sabot-scheduler` pool (DESIGN.md D3). Scalar expressions are DataFusion's `PhysicalExpr`s
//! (decimal `+`, `-` and `*` on Sabot's unchecked 64-bit kernel where the operands allow), and
//! aggregate states sit behind DataFusion's `GroupsAccumulator` interface (Sabot's own
//! accumulators for COUNT, SUM, MIN and MAX of primitive columns and AVG of float and decimal
//! ones, DataFusion's for the rest); the pipelines, hash tables, sorting and scheduling are
//! ours.

#![deny(unsafe_code)]

mod accumulators;
mod aggregate;
mod analyze;
mod column_stats;
mod concurrent;
mod decimal_expr;
mod error;
mod executor;
mod file_cache;
mod filter;
mod histogram;
mod join;
mod join_estimate;
mod memory;
mod metrics;
mod page_pruning;
mod parallel;
mod plan;
mod sample;
mod selectivity;
mod sort;
mod source;
pub mod stream;

pub use aggregate::{AggregateMode, AggregateSpec};
pub use analyze::{ColumnSummary, TableSummary, analyze_parquet};
pub use decimal_expr::with_unchecked_decimal_arithmetic;
pub use error::{ExecError, Result};
pub use executor::{CancelHandle, Executor};
pub use histogram::Histogram;
pub use join::{JoinKind, JoinSpec};
pub use join_estimate::{KeyColumn, equi_join_selectivity};
pub use memory::MemoryBudget;
pub use metrics::OperatorMetrics;
pub use plan::{NodeKind, PhysicalNode};
/// The GPU the `cuda` feature's kernels run on, for callers that report on it.
#[cfg(feature = "cuda")]
pub use sabot_kernels::cuda;
pub use source::{FallbackSource, ParquetScan, display_datafusion_plan};
