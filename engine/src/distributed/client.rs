//! The client side of distributed mode: submit a query to a coordinator and read its result;
//! ask a coordinator for its status.

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use sabot_shuffle::{ClusterStatus, Peer, QueryRequest, Security, Ticket};

use crate::error::{Result, SabotError};

fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| SabotError::Execution {
            message: format!("cannot start the client's runtime: {error}"),
        })
}

/// Runs `request` on the cluster of the coordinator at `coordinator` and returns its result.
/// Blocks the calling thread; do not call it from inside an async runtime.
pub fn run_remote(
    coordinator: &str,
    security: &Security,
    request: QueryRequest,
) -> Result<Vec<RecordBatch>> {
    client_runtime()?.block_on(async {
        let mut peer = Peer::connect(coordinator, security).await?;
        let batches = peer.stream(&Ticket::Query(request)).await?;
        Ok(batches.try_collect().await?)
    })
}

/// The coordinator's workers and running queries.
pub fn cluster_status(coordinator: &str, security: &Security) -> Result<ClusterStatus> {
    client_runtime()?.block_on(async {
        let mut peer = Peer::connect(coordinator, security).await?;
        Ok(peer.action("status", &()).await?)
    })
}
