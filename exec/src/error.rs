//! Errors of Sabot's operators, with the operator or file they come from.

use std::path::PathBuf;

use sabot_scheduler::SchedulerError;

/// Result alias of the `sabot-exec` crate.
pub type Result<T, E = ExecError> = std::result::Result<T, E>;

/// What can go wrong while a physical plan runs.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// An operator would exceed the query's memory limit.
    #[error(
        "{operator} needs {requested_bytes} more bytes but the memory limit of {limit_bytes} bytes is reached ({used_bytes} in use)"
    )]
    MemoryLimit {
        operator: &'static str,
        requested_bytes: usize,
        used_bytes: usize,
        limit_bytes: usize,
    },
    /// A Parquet file could not be opened or decoded.
    #[error("cannot read Parquet file {}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    /// An Arrow kernel failed inside an operator.
    #[error("{operator}: {source}")]
    Arrow {
        operator: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// DataFusion failed: evaluating an expression or an aggregate, or running a fallback subtree.
    #[error("{operator}: {source}")]
    DataFusion {
        operator: &'static str,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// A kernel (hash table, key packing) refused its input.
    #[error("{operator}: {source}")]
    Kernel {
        operator: &'static str,
        #[source]
        source: sabot_kernels::KernelError,
    },
    /// An operator found its own state inconsistent: a bug in Sabot, reported rather than
    /// panicking.
    #[error("{operator}: internal error: {message}")]
    Internal {
        operator: &'static str,
        message: String,
    },
    /// A column named in a request (`ANALYZE t (column)`) is not one of the table's.
    #[error("no column named {name} in {} (columns: {})", path.display(), columns.join(", "))]
    NoSuchColumn {
        name: String,
        path: PathBuf,
        columns: Vec<String>,
    },
    /// A streaming pipeline was put together wrongly (unknown column, wrong type, bad window).
    #[error("invalid stream: {0}")]
    InvalidStream(String),
    /// A stream's source could not be read.
    #[error("stream source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    /// A checkpoint could not be written or read back.
    #[error("checkpoint in {}: {message}", dir.display())]
    Checkpoint { dir: PathBuf, message: String },
    /// A stream's rows could not be written out.
    #[error("stream sink {sink}: {message}")]
    Sink { sink: String, message: String },
    /// The query was cancelled.
    #[error("the query was cancelled")]
    Cancelled,
    /// A task panicked; the query was stopped.
    #[error("an operator panicked: {message}")]
    Panicked { message: String },
}

impl ExecError {
    pub(crate) fn arrow(
        operator: &'static str,
    ) -> impl FnOnce(arrow::error::ArrowError) -> ExecError {
        move |source| ExecError::Arrow { operator, source }
    }

    pub(crate) fn kernel(
        operator: &'static str,
    ) -> impl FnOnce(sabot_kernels::KernelError) -> ExecError {
        move |source| ExecError::Kernel { operator, source }
    }

    pub(crate) fn datafusion(
        operator: &'static str,
    ) -> impl FnOnce(datafusion::error::DataFusionError) -> ExecError {
        move |source| ExecError::DataFusion { operator, source }
    }
}

impl From<SchedulerError> for ExecError {
    fn from(error: SchedulerError) -> Self {
        match error {
            SchedulerError::TaskPanicked { message } => ExecError::Panicked { message },
            _ => ExecError::Cancelled,
        }
    }
}
