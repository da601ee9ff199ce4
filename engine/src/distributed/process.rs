//! What the coordinator and worker processes share when they start: their RPC runtime and
//! their listening socket.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::{Result, SabotError};

/// The async runtime that serves a process's endpoint (two threads: the work itself runs on
/// the query sessions' own threads).
pub(super) fn rpc_runtime(role: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("sabot-{role}-rpc"))
        .enable_all()
        .build()
        .map_err(|error| SabotError::Execution {
            message: format!("cannot start the {role}'s runtime: {error}"),
        })
}

/// Listens on `address`; returns the listener and the address it is bound to.
pub(super) async fn listen(address: &str) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| {
            SabotError::invalid_argument(format!("cannot listen on {address}: {error}"))
        })?;
    let bound = listener
        .local_addr()
        .map_err(|error| SabotError::io(PathBuf::from(address), error))?;
    Ok((listener, bound))
}
