//! The one error type of the `sabot` crate: every failure a user can cause or meet, with the
//! context (file, table, query) that tells them what to fix.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result alias used throughout the `sabot` crate.
pub type Result<T, E = SabotError> = std::result::Result<T, E>;

/// Everything that can go wrong in a Sabot session.
#[derive(Debug, thiserror::Error)]
pub enum SabotError {
    /// The SQL text does not parse; `message` is the parser's own message.
    #[error("SQL syntax error: {message}")]
    SqlSyntax { message: String },

    /// The query parses but cannot be planned: an unknown table or column, a type mismatch.
    #[error("planning error: {message}")]
    Plan { message: String },

    /// A feature the engine does not support.
    #[error("not supported: {message}")]
    NotSupported { message: String },

    /// A file given to the session does not exist.
    #[error("file not found: {}", path.display())]
    FileNotFound { path: PathBuf },

    /// A file exists but cannot be read as the format it was registered as.
    #[error("cannot read {format} file {}: {message}", path.display())]
    UnreadableFile {
        path: PathBuf,
        format: &'static str,
        message: String,
    },

    /// An operating-system I/O failure on a named path.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A query ran out of the memory the session allows it.
    #[error("memory limit exceeded: {message}")]
    ResourcesExhausted { message: String },

    /// A failure while a query runs.
    #[error("execution error: {message}")]
    Execution { message: String },

    /// An argument given to the API or the CLI is out of range or malformed.
    #[error("invalid argument: {message}")]
    InvalidArgument { message: String },

    /// The query was cancelled before it finished.
    #[error("the query was cancelled")]
    Cancelled,

    /// The session was shut down; no more queries can run on it.
    #[error("the session has been shut down")]
    ShutDown,

    /// A distributed run failed: no live workers, a task that kept failing, a refused token.
    #[error("cluster error: {message}")]
    Cluster { message: String },

    /// A TPC-H data set could not be generated or written.
    #[error("TPC-H generation failed for table {table}: {message}")]
    TpchGeneration { table: String, message: String },
}

impl SabotError {
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        SabotError::InvalidArgument {
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SabotError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<DataFusionError> for SabotError {
    fn from(error: DataFusionError) -> Self {
        let root = error.find_root();
        let message = match root {
            DataFusionError::Plan(message)
            | DataFusionError::Execution(message)
            | DataFusionError::NotImplemented(message)
            | DataFusionError::ResourcesExhausted(message) => message.clone(),
            DataFusionError::ArrowError(arrow_error, _) => arrow_error.to_string(),
            _ => root.strip_backtrace(),
        };
        match root {
            DataFusionError::SQL(parser_error, _) => SabotError::SqlSyntax {
                message: parser_error.to_string(),
            },
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
                SabotError::Plan { message }
            }
            DataFusionError::NotImplemented(_) => SabotError::NotSupported { message },
            DataFusionError::ResourcesExhausted(_) => SabotError::ResourcesExhausted { message },
            _ => SabotError::Execution { message },
        }
    }
}

impl From<arrow::error::ArrowError> for SabotError {
    fn from(error: arrow::error::ArrowError) -> Self {
        SabotError::Execution {
            message: error.to_string(),
        }
    }
}

impl From<sabot_exec::ExecError> for SabotError {
    fn from(error: sabot_exec::ExecError) -> Self {
        use sabot_exec::ExecError;
        match error {
            ExecError::MemoryLimit { .. } => SabotError::ResourcesExhausted {
                message: error.to_string(),
            },
            ExecError::Parquet { path, message } => SabotError::UnreadableFile {
                path,
                format: "Parquet",
                message,
            },
            ExecError::DataFusion { operator, source } => match SabotError::from(source) {
                SabotError::Execution { message } => SabotError::Execution {
                    message: format!("{operator}: {message}"),
                },
                other => other,
            },
            ExecError::Cancelled => SabotError::Cancelled,
            ExecError::InvalidStream(message) => SabotError::InvalidArgument { message },
            ExecError::NoSuchColumn { .. } => SabotError::Plan {
                message: error.to_string(),
            },
            ExecError::Source { .. } | ExecError::Sink { .. } | ExecError::Checkpoint { .. } => {
                SabotError::Execution {
                    message: error.to_string(),
                }
            }
            ExecError::Arrow { .. }
            | ExecError::Kernel { .. }
            | ExecError::Internal { .. }
            | ExecError::Panicked { .. } => SabotError::Execution {
                message: error.to_string(),
            },
        }
    }
}

impl From<sabot_shuffle::ShuffleError> for SabotError {
    fn from(error: sabot_shuffle::ShuffleError) -> Self {
        SabotError::Cluster {
            message: error.to_string(),
        }
    }
}

impl From<sabot_planner::PlanError> for SabotError {
    fn from(error: sabot_planner::PlanError) -> Self {
        match error {
            sabot_planner::PlanError::Fallback { source, .. }
            | sabot_planner::PlanError::Rewrite(source) => SabotError::from(source),
            sabot_planner::PlanError::Exec(error) => SabotError::from(error),
        }
    }
}
