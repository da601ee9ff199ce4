//! What a streaming operator is: it takes batches and watermarks and pushes out batches and
//! watermarks.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{ExecError, Result};

/// What flows between streaming operators.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// Rows.
    Batch(RecordBatch),
    /// Event time has reached this value: no row with an earlier time is expected any more
    /// (rows that still arrive are late). `i64::MAX` ends the input.
    Watermark(i64),
}

/// A stage of a streaming pipeline.
pub trait StreamOperator: Send {
    /// The schema of the batches it pushes out.
    fn schema(&self) -> SchemaRef;

    /// Takes a batch; pushes what it produces onto `out`.
    fn on_batch(&mut self, batch: RecordBatch, out: &mut Vec<StreamEvent>) -> Result<()>;

    /// Takes a watermark; pushes what it produces onto `out`, then the watermark itself
    /// (operators that hold rows back emit them before passing the watermark on).
    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    /// Rows of state it holds (window groups, buffered rows); 0 for stateless operators.
    fn state_rows(&self) -> usize {
        0
    }

    /// Rows it dropped because they arrived after their window had been emitted.
    fn late_rows(&self) -> u64 {
        0
    }

    /// Its state at a checkpoint, as bytes (empty for stateless operators). Called between
    /// batches: every earlier row has been processed, no later one has.
    fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Takes back a state [`StreamOperator::snapshot`] gave, replacing its own.
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        Err(ExecError::InvalidStream(
            "the checkpoint holds state for an operator that keeps none; was the query changed?"
                .to_string(),
        ))
    }
}
