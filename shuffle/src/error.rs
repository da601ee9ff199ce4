//! Errors of the exchange layer: transport, authentication, encoding and protocol errors,
//! each naming the peer or the shuffle output concerned.

use thiserror::Error;

pub type Result<T, E = ShuffleError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum ShuffleError {
    /// No connection to a peer (refused, reset, TLS handshake failed).
    #[error("cannot reach {address}: {message}")]
    Unreachable { address: String, message: String },
    /// The peer refused the request: a missing or wrong token.
    #[error("{address} refused the request: {message}")]
    Unauthenticated { address: String, message: String },
    /// The peer does not have what was asked for (a shuffle output it never had or lost when
    /// it restarted).
    #[error("{address} does not have it: {message}")]
    NotFound { address: String, message: String },
    /// The peer answered with an error.
    #[error("{address}: {message}")]
    Remote { address: String, message: String },
    /// A message or batch could not be encoded or decoded.
    #[error("cannot {action}: {message}")]
    Codec {
        action: &'static str,
        message: String,
    },
    /// A shuffle output that this process does not hold.
    #[error("no shuffle output for query {query}, stage {stage}, task {task}")]
    MissingOutput {
        query: u64,
        stage: usize,
        task: usize,
    },
    /// A bad argument: an address, a certificate file.
    #[error("{0}")]
    Invalid(String),
    /// Spilling to or reading from the local disk failed.
    #[error("shuffle spill file {path}: {source}")]
    Spill {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl ShuffleError {
    pub(crate) fn codec(action: &'static str) -> impl FnOnce(serde_json::Error) -> ShuffleError {
        move |error| ShuffleError::Codec {
            action,
            message: error.to_string(),
        }
    }

    /// Whether the error says the peer is gone (its process died or its host is unreachable)
    /// rather than that it refused or failed the request.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ShuffleError::Unreachable { .. })
    }

    /// Whether what was asked for is gone with its process: the peer is unreachable, or it
    /// no longer holds the output (it restarted).
    pub fn is_lost(&self) -> bool {
        matches!(
            self,
            ShuffleError::Unreachable { .. }
                | ShuffleError::NotFound { .. }
                | ShuffleError::MissingOutput { .. }
        )
    }
}
