//! Errors of physical planning.

/// Result alias of the `sabot-planner` crate.
pub type Result<T, E = PlanError> = std::result::Result<T, E>;

/// Why a plan could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// DataFusion could not plan a fallback subtree.
    #[error("DataFusion could not plan the fallback subtree {node}: {source}")]
    Fallback {
        node: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// Rewriting the logical plan failed.
    #[error("cannot rewrite the plan: {0}")]
    Rewrite(#[from] datafusion::error::DataFusionError),
    /// A Parquet file of a table could not be opened.
    #[error(transparent)]
    Exec(#[from] sabot_exec::ExecError),
}
