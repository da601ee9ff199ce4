//! What a streaming operator is: it takes batches and watermarks and pushes out batches and
//! watermarks.

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
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

    /// From now on, keeps the late rows it drops for [`StreamOperator::take_late_rows`].
    fn keep_late_rows(&mut self) {}

    /// The late rows kept since the last call.
    fn take_late_rows(&mut self) -> Vec<RecordBatch> {
        Vec::new()
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

/// The rows a window operator dropped as late: counted, and kept for a side output when asked.
#[derive(Debug, Default)]
pub(crate) struct LateRows {
    count: u64,
    kept: Option<Vec<RecordBatch>>,
}

impl LateRows {
    /// Rows `rows` of `batch` were late.
    pub(crate) fn add(&mut self, batch: &RecordBatch, rows: &[usize]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.count += rows.len() as u64;
        if let Some(kept) = self.kept.as_mut() {
            let indices = UInt32Array::from_iter_values(rows.iter().map(|&row| row as u32));
            kept.push(take_record_batch(batch, &indices).map_err(ExecError::arrow("late rows"))?);
        }
        Ok(())
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn set_count(&mut self, count: u64) {
        self.count = count;
    }

    pub(crate) fn keep(&mut self) {
        self.kept.get_or_insert_with(Vec::new);
    }

    pub(crate) fn take(&mut self) -> Vec<RecordBatch> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
