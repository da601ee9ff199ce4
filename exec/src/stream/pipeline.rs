//! The driver of a streaming pipeline: polls the source, makes watermarks per partition, pushes
//! batches and watermarks through the operators into the sink, until the source finishes or
//! the pipeline is stopped.

use std::time::{Duration, Instant};

use super::checkpoint::{CheckpointConfig, Checkpointer, SavedCheckpoint};
use super::operator::{StreamEvent, StreamOperator};
use super::sink::StreamSink;
use super::source::{SourcePoll, StreamSource};
use super::time::event_times;
use super::watermark::{WatermarkSpec, WatermarkTracker};
use crate::error::{ExecError, Result};
use crate::executor::CancelHandle;

/// How long the driver waits before polling a source that had nothing again.
const PENDING_PAUSE: Duration = Duration::from_millis(1);

/// What a pipeline run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineStats {
    /// Rows the source delivered.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Rows dropped as late, over all operators.
    pub late_rows: u64,
    /// The most rows of state the operators held together, sampled at every watermark.
    pub peak_state_rows: usize,
    /// Rows of state left when the run ended.
    pub final_state_rows: usize,
    /// Whether the run was stopped before its source finished.
    pub stopped: bool,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// The checkpoint the run resumed from.
    pub restored_from: Option<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// A source, its watermark rule, a chain of operators and a sink.
pub struct StreamPipeline {
    source: Box<dyn StreamSource>,
    watermarks: Option<(WatermarkSpec, usize)>,
    operators: Vec<Box<dyn StreamOperator>>,
    sink: Box<dyn StreamSink>,
    checkpoints: Option<CheckpointConfig>,
}

impl StreamPipeline {
    /// A pipeline; `watermarks` makes watermarks from the source's column `.column`
    /// (without it, windows emit only when the source finishes).
    pub fn try_new(
        source: Box<dyn StreamSource>,
        watermarks: Option<WatermarkSpec>,
        operators: Vec<Box<dyn StreamOperator>>,
        sink: Box<dyn StreamSink>,
    ) -> Result<StreamPipeline> {
        let watermarks = match watermarks {
            None => None,
            Some(spec) => {
                let schema = source.schema();
                let index = schema.index_of(&spec.column).map_err(|_| {
                    ExecError::InvalidStream(format!(
                        "watermark column {} is not a column of source {}",
                        spec.column,
                        source.name()
                    ))
                })?;
                Some((spec, index))
            }
        };
        Ok(StreamPipeline {
            source,
            watermarks,
            operators,
            sink,
            checkpoints: None,
        })
    }

    /// Checkpoints the pipeline as `config` says; a run first resumes from the latest complete
    /// checkpoint in `config.dir`, if there is one.
    pub fn with_checkpoints(mut self, config: CheckpointConfig) -> StreamPipeline {
        self.checkpoints = Some(config);
        self
    }

    /// Runs until the source finishes (then every open window is emitted and the sink
    /// finished) or `stop` is cancelled (then open windows are left unemitted).
    pub fn run(mut self, stop: &CancelHandle) -> Result<PipelineStats> {
        let started = Instant::now();
        let mut stats = PipelineStats::default();
        let mut checkpointer = match &self.checkpoints {
            None => None,
            Some(config) => {
                let (checkpointer, saved) = Checkpointer::open(config)?;
                if let Some(saved) = saved {
                    self.restore(&saved)?;
                    stats.restored_from = Some(saved.id);
                }
                Some(checkpointer)
            }
        };
        let mut tracker = self.watermarks.as_ref().map(|(spec, _)| {
            WatermarkTracker::new(
                self.source.partitions(),
                spec.max_out_of_orderness,
                spec.idle_timeout,
                started,
            )
        });
        loop {
            if stop.is_cancelled() {
                stats.stopped = true;
                break;
            }
            match self.source.poll()? {
                SourcePoll::Batch { partition, batch } => {
                    stats.rows_in += batch.num_rows() as u64;
                    let newest = match (&self.watermarks, batch.num_rows()) {
                        (Some((spec, index)), rows) if rows > 0 => {
                            event_times(batch.column(*index), &spec.column)?
                                .iter()
                                .max()
                                .copied()
                        }
                        _ => None,
                    };
                    push(
                        &mut self.operators,
                        StreamEvent::Batch(batch),
                        self.sink.as_mut(),
                        &mut stats,
                    )?;
                    if let (Some(tracker), Some(newest)) = (tracker.as_mut(), newest) {
                        tracker.observe(partition, newest, Instant::now());
                    }
                }
                SourcePoll::Pending => {
                    std::thread::sleep(PENDING_PAUSE);
                    if let Some(tracker) = tracker.as_mut() {
                        tracker.mark_idle(Instant::now());
                    }
                }
                SourcePoll::Finished => {
                    self.emit_watermark(i64::MAX, &mut stats)?;
                    if let Some(checkpointer) = checkpointer.as_mut() {
                        self.checkpoint(checkpointer, &mut stats)?;
                    }
                    self.sink.finish()?;
                    break;
                }
            }
            if let Some(watermark) = tracker.as_mut().and_then(WatermarkTracker::advance) {
                self.emit_watermark(watermark, &mut stats)?;
            }
            if let Some(checkpointer) = checkpointer
                .as_mut()
                .filter(|checkpointer| checkpointer.due())
            {
                self.checkpoint(checkpointer, &mut stats)?;
            }
        }
        stats.final_state_rows = self.state_rows();
        stats.late_rows = self
            .operators
            .iter()
            .map(|operator| operator.late_rows())
            .sum();
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Takes a checkpoint between two batches: source offsets, operator states and the sink's
    /// pre-commit are saved, the checkpoint is marked complete, then the sink commits.
    fn checkpoint(
        &mut self,
        checkpointer: &mut Checkpointer,
        stats: &mut PipelineStats,
    ) -> Result<()> {
        let id = checkpointer.next_id();
        let operators = self
            .operators
            .iter()
            .map(|operator| operator.snapshot())
            .collect::<Result<Vec<_>>>()?;
        let saved = SavedCheckpoint {
            id,
            source_offsets: self.source.offsets(),
            operators,
            sink: self.sink.pre_commit(id)?,
        };
        checkpointer.complete(&saved)?;
        self.sink.commit(id)?;
        stats.checkpoints += 1;
        Ok(())
    }

    fn restore(&mut self, saved: &SavedCheckpoint) -> Result<()> {
        if saved.operators.len() != self.operators.len() {
            return Err(ExecError::InvalidStream(format!(
                "checkpoint {} was taken by a pipeline of {} operators, this one has {}; was the query changed?",
                saved.id,
                saved.operators.len(),
                self.operators.len()
            )));
        }
        self.source.seek(&saved.source_offsets)?;
        for (operator, state) in self.operators.iter_mut().zip(&saved.operators) {
            operator.restore(state)?;
        }
        self.sink.restore(&saved.sink)
    }

    fn emit_watermark(&mut self, watermark: i64, stats: &mut PipelineStats) -> Result<()> {
        push(
            &mut self.operators,
            StreamEvent::Watermark(watermark),
            self.sink.as_mut(),
            stats,
        )?;
        stats.peak_state_rows = stats.peak_state_rows.max(self.state_rows());
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.operators
            .iter()
            .map(|operator| operator.state_rows())
            .sum()
    }
}

fn push(
    operators: &mut [Box<dyn StreamOperator>],
    event: StreamEvent,
    sink: &mut dyn StreamSink,
    stats: &mut PipelineStats,
) -> Result<()> {
    let Some((operator, rest)) = operators.split_first_mut() else {
        if let StreamEvent::Batch(batch) = event {
            stats.rows_out += batch.num_rows() as u64;
            sink.write(batch)?;
        }
        return Ok(());
    };
    let mut out = Vec::new();
    match event {
        StreamEvent::Batch(batch) => operator.on_batch(batch, &mut out)?,
        StreamEvent::Watermark(watermark) => operator.on_watermark(watermark, &mut out)?,
    }
    for event in out {
        push(rest, event, sink, stats)?;
    }
    Ok(())
}
