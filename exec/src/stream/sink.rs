//! Stream sinks: where a streaming pipeline's output rows go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use crate::error::{ExecError, Result};

/// The end of a streaming pipeline. Sinks that give exactly-once output take part in
/// checkpoints as two-phase commits: `pre_commit` makes what was written durable but not yet
/// visible, `commit` makes it visible once the checkpoint is complete, and `restore` (after a
/// restart) finishes the commit of the restored checkpoint and discards anything later.
pub trait StreamSink: Send {
    /// Takes output rows.
    fn write(&mut self, batch: RecordBatch) -> Result<()>;

    /// Checkpoint `checkpoint` is being taken: make everything written so far durable but
    /// invisible; the returned bytes are saved with the checkpoint.
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Checkpoint `checkpoint` is complete: make what was pre-committed for it visible.
    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// The pipeline restarts from a checkpoint whose pre-commit returned `state`.
    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }

    /// The input has ended; everything written must be out when this returns.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<S: StreamSink + ?Sized> StreamSink for Box<S> {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        (**self).write(batch)
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<u8>> {
        (**self).pre_commit(checkpoint)
    }

    fn commit(&mut self, checkpoint: u64) -> Result<()> {
        (**self).commit(checkpoint)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        (**self).restore(state)
    }

    fn finish(&mut self) -> Result<()> {
        (**self).finish()
    }
}

/// Keeps every output batch in memory, readable through its handle.
#[derive(Clone, Default)]
pub struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl CollectSink {
    /// An empty sink.
    pub fn new() -> CollectSink {
        CollectSink::default()
    }

    /// The batches written so far.
    pub fn batches(&self) -> Result<Vec<RecordBatch>> {
        self.batches
            .lock()
            .map(|batches| batches.clone())
            .map_err(|_| poisoned("collect"))
    }
}

impl StreamSink for CollectSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.batches
            .lock()
            .map_err(|_| poisoned("collect"))?
            .push(batch);
        Ok(())
    }
}

/// Counts output rows and drops them (benchmarks measure the pipeline, not a writer).
#[derive(Clone, Default)]
pub struct CountSink {
    rows: Arc<AtomicU64>,
}

impl CountSink {
    /// A sink that has counted nothing.
    pub fn new() -> CountSink {
        CountSink::default()
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

impl StreamSink for CountSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn poisoned(sink: &str) -> ExecError {
    ExecError::Sink {
        sink: sink.to_string(),
        message: "a thread panicked while writing to it".to_string(),
    }
}
