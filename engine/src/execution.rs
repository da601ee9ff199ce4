//! The engine switch: which executor runs a planned query, and what it reports back.
//!
//! Every query is planned by DataFusion's SQL front end and logical optimizer (DESIGN.md D1).
//! What runs the optimized plan is chosen here. [`Engine::DataFusion`] runs DataFusion's own
//! physical plan: the baseline every benchmark compares against. [`Engine::Sabot`] is Sabot's
//! executor; until Sabot's own operators land, it hands the whole plan to DataFusion and says so
//! in [`ExecutedQuery::fallback`], so no report can mistake one for the other (DESIGN.md D2).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{ExecutionPlan, collect};

use crate::error::{Result, SabotError};

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
}

/// The engine chosen for a plan, and the physical plan it will run.
pub(crate) struct PreparedQuery {
    physical: Arc<dyn ExecutionPlan>,
    fallbacks: Vec<Fallback>,
}

impl PreparedQuery {
    /// Plans `plan` for `engine`.
    pub(crate) async fn plan(
        state: &SessionState,
        plan: &LogicalPlan,
        engine: Engine,
    ) -> Result<PreparedQuery> {
        let physical = state.create_physical_plan(plan).await?;
        let fallbacks = match engine {
            Engine::DataFusion => Vec::new(),
            Engine::Sabot => vec![Fallback {
                subtree: "whole plan".to_string(),
                reason: "Sabot has no physical operators yet".to_string(),
            }],
        };
        Ok(PreparedQuery {
            physical,
            fallbacks,
        })
    }

    /// Runs the plan to completion.
    pub(crate) async fn run(&self, state: &SessionState) -> Result<ExecutedQuery> {
        let batches = collect(Arc::clone(&self.physical), state.task_ctx()).await?;
        let (rows_scanned, bytes_scanned) = scan_totals(self.physical.as_ref());
        Ok(ExecutedQuery {
            batches,
            rows_scanned,
            bytes_scanned,
            fallbacks: self.fallbacks.clone(),
        })
    }

    /// The plan as text; with `metrics`, each operator's measured rows and time.
    pub(crate) fn display(&self, metrics: bool) -> String {
        let mut text = String::new();
        for fallback in &self.fallbacks {
            text.push_str(&format!("fallback: {fallback}\n"));
        }
        let plan = self.physical.as_ref();
        let shown = if metrics {
            DisplayableExecutionPlan::with_metrics(plan)
        } else {
            DisplayableExecutionPlan::new(plan)
        };
        text.push_str(&shown.indent(false).to_string());
        text
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
