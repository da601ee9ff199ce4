//! The engine switch: which executor runs a planned query, and what it reports back.
//!
//! Every query is planned by DataFusion's SQL front end and logical optimizer (DESIGN.md D1).
//! What runs the optimized plan is chosen here. [`Engine::DataFusion`] runs DataFusion's own
//! physical plan: the baseline every benchmark compares against. [`Engine::Sabot`] plans the
//! query with `sabot-planner` and runs it on Sabot's operators and scheduler; the subtrees it
//! has no operators for run on DataFusion and are listed in [`ExecutedQuery::fallbacks`]
//! (DESIGN.md D2).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect};

use sabot_exec::{CancelHandle, MemoryBudget, NodeKind, PhysicalNode, display_datafusion_plan};
use sabot_planner::PhysicalPlanner;

use crate::error::{Result, SabotError};
use crate::session::SessionInner;

/// Which executor runs a query's optimized logical plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// Sabot's own executor (the default).
    #[default]
    Sabot,
    /// DataFusion's physical planner and operators: the built-in baseline.
    DataFusion,
}

impl Engine {
    /// Both engines, in the order reports list them.
    pub const ALL: [Engine; 2] = [Engine::Sabot, Engine::DataFusion];

    /// The engine's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sabot => "sabot",
            Engine::DataFusion => "datafusion",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = SabotError;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sabot" => Ok(Engine::Sabot),
            "datafusion" | "df" => Ok(Engine::DataFusion),
            other => Err(SabotError::invalid_argument(format!(
                "unknown engine '{other}': expected 'sabot' or 'datafusion'"
            ))),
        }
    }
}

/// A part of a plan that Sabot could not run itself and handed to DataFusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// Which part of the plan fell back.
    pub subtree: String,
    /// Why Sabot could not run it.
    pub reason: String,
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ran on DataFusion: {}", self.subtree, self.reason)
    }
}

/// The result of running one query, with what it scanned.
#[derive(Debug, Clone)]
pub struct ExecutedQuery {
    pub batches: Vec<RecordBatch>,
    /// Rows produced by the plan's scans (after pruning by file statistics).
    pub rows_scanned: u64,
    /// Bytes the scans read from files (0 for in-memory tables).
    pub bytes_scanned: u64,
    /// Parts of the plan that Sabot handed to DataFusion; empty when Sabot ran all of it.
    pub fallbacks: Vec<Fallback>,
    /// Sabot's plans: every join's and aggregation's estimated and actual output rows, in plan
    /// order (top down).
    pub estimates: Vec<RowEstimate>,
}

/// An operator's estimated output rows beside the rows it produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowEstimate {
    /// `HashJoin Inner`, `HashJoin LeftSemi`, …, or `HashAggregate`.
    pub operator: String,
    /// `None` where nothing was known (below a fallback).
    pub estimated_rows: Option<f64>,
    pub actual_rows: u64,
}

impl RowEstimate {
    /// max(estimate / actual, actual / estimate), both counted as at least one row.
    pub fn q_error(&self) -> Option<f64> {
        let estimate = self.estimated_rows?.max(1.0);
        let actual = (self.actual_rows as f64).max(1.0);
        Some((estimate / actual).max(actual / estimate))
    }
}

/// A query planned for one engine, ready to run.
pub(crate) struct PreparedQuery {
    plan: PreparedPlan,
    optimized: LogicalPlan,
    state: SessionState,
}

enum PreparedPlan {
    DataFusion(Arc<dyn ExecutionPlan>),
    Sabot(Arc<PhysicalNode>),
}

impl PreparedQuery {
    /// Plans `plan` for `engine`; DataFusion fallbacks in a Sabot plan will run on `runtime`.
    pub(crate) async fn plan(
        state: SessionState,
        plan: &LogicalPlan,
        engine: Engine,
        runtime: tokio::runtime::Handle,
    ) -> Result<PreparedQuery> {
        let optimized = state.optimize(plan)?;
        let plan = match engine {
            Engine::DataFusion => PreparedPlan::DataFusion(
                state
                    .query_planner()
                    .create_physical_plan(&optimized, &state)
                    .await?,
            ),
            Engine::Sabot => PreparedPlan::Sabot(
                PhysicalPlanner::new(&state, runtime)
                    .plan(&optimized)
                    .await?,
            ),
        };
        Ok(PreparedQuery {
            plan,
            optimized,
            state,
        })
    }

    /// The logical plan after DataFusion's optimizer, which the physical plan was made from.
    pub(crate) fn optimized(&self) -> &LogicalPlan {
        &self.optimized
    }

    /// Runs the plan to completion. Call it outside the session's async runtime: Sabot's
    /// executor blocks the calling thread while its workers run the query.
    pub(crate) fn run(
        &self,
        session: &SessionInner,
        cancel: &CancelHandle,
    ) -> Result<ExecutedQuery> {
        match &self.plan {
            PreparedPlan::DataFusion(physical) => {
                let collected = collect(Arc::clone(physical), self.state.task_ctx());
                let batches =
                    session.block_on(async move { collected.await.map_err(SabotError::from) })?;
                let (rows_scanned, bytes_scanned) = scan_totals(physical.as_ref());
                Ok(ExecutedQuery {
                    batches,
                    rows_scanned,
                    bytes_scanned,
                    fallbacks: Vec::new(),
                    estimates: Vec::new(),
                })
            }
            PreparedPlan::Sabot(root) => {
                let budget = Arc::new(MemoryBudget::new(session.settings().memory_limit_bytes));
                let batches = session.executor().run(root, &budget, cancel)?;
                let (mut rows_scanned, mut bytes_scanned) = (0, 0);
                root.visit(&mut |node| match &node.kind {
                    NodeKind::ParquetScan(scan) => {
                        rows_scanned += node.metrics.rows();
                        bytes_scanned += scan.bytes_read();
                    }
                    NodeKind::Batches { .. } => rows_scanned += node.metrics.rows(),
                    NodeKind::Fallback(fallback) => {
                        let (rows, bytes) = scan_totals(fallback.plan().as_ref());
                        rows_scanned += rows;
                        bytes_scanned += bytes;
                    }
                    _ => {}
                });
                let mut estimates = Vec::new();
                root.visit(&mut |node| {
                    let operator = match &node.kind {
                        NodeKind::HashJoin { spec, .. } => {
                            format!("{} {:?}", spec.algorithm(), spec.kind)
                        }
                        NodeKind::Aggregate { .. } => "HashAggregate".to_string(),
                        _ => return,
                    };
                    estimates.push(RowEstimate {
                        operator,
                        estimated_rows: node.estimated_rows(),
                        actual_rows: node.metrics.rows(),
                    });
                });
                Ok(ExecutedQuery {
                    batches,
                    rows_scanned,
                    bytes_scanned,
                    fallbacks: self.fallbacks(),
                    estimates,
                })
            }
        }
    }

    /// Sabot's physical plan, when the query was planned for Sabot's engine.
    pub(crate) fn sabot_root(&self) -> Option<&Arc<PhysicalNode>> {
        match &self.plan {
            PreparedPlan::Sabot(root) => Some(root),
            PreparedPlan::DataFusion(_) => None,
        }
    }

    /// The subtrees of a Sabot plan that DataFusion runs.
    pub(crate) fn fallbacks(&self) -> Vec<Fallback> {
        match &self.plan {
            PreparedPlan::DataFusion(_) => Vec::new(),
            PreparedPlan::Sabot(root) => root
                .fallbacks()
                .into_iter()
                .map(|fallback| Fallback {
                    subtree: fallback.subtree.clone(),
                    reason: fallback.reason.clone(),
                })
                .collect(),
        }
    }

    /// The plan as text; with `metrics`, each operator's measured rows and time.
    pub(crate) fn display(&self, metrics: bool) -> String {
        match &self.plan {
            PreparedPlan::DataFusion(physical) => {
                display_datafusion_plan(physical.as_ref(), metrics)
            }
            PreparedPlan::Sabot(root) => root.display(metrics),
        }
    }
}

/// Sums rows and bytes read by the leaves (scans) of an executed plan. A scan without row
/// metrics (an in-memory table) counts the rows its statistics say it holds.
fn scan_totals(plan: &dyn ExecutionPlan) -> (u64, u64) {
    let children = plan.children();
    if children.is_empty() {
        let metrics = plan.metrics();
        let rows = metrics
            .as_ref()
            .and_then(|metrics| metrics.output_rows())
            .or_else(|| {
                let source = plan.downcast_ref::<DataSourceExec>()?;
                let statistics = source.data_source().partition_statistics(None).ok()?;
                statistics.num_rows.get_value().copied()
            })
            .unwrap_or(0);
        let bytes = metrics
            .and_then(|metrics| metrics.sum_by_name("bytes_scanned"))
            .map_or(0, |value| value.as_usize());
        return (rows as u64, bytes as u64);
    }
    children.into_iter().fold((0, 0), |(rows, bytes), child| {
        let (child_rows, child_bytes) = scan_totals(child.as_ref());
        (rows + child_rows, bytes + child_bytes)
    })
}
