//! Sabot's physical planner: turns DataFusion's optimized `LogicalPlan` into Sabot's physical
//! plan (`sabot_exec::PhysicalNode`). A logical node Sabot has no operator for becomes a
//! fallback: DataFusion plans and runs that subtree, and its output feeds Sabot's operators
//! above it. Every fallback is named in the plan (DESIGN.md D2).

#![deny(unsafe_code)]

mod error;
mod physical;
mod subquery;

pub use error::{PlanError, Result};
pub use physical::PhysicalPlanner;
