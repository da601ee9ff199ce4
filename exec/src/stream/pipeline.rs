//! The driver of a streaming pipeline: one input (a source and its operators), or two inputs
//! meeting in a two-input operator (a join), then more operators and a sink. It polls the
//! sources (the one whose rows are oldest first, so the inputs advance together), makes
//! watermarks per source partition, pushes batches and watermarks through the operators,
//! takes checkpoints between batches, and stops when every source has finished or it is told
//! to.

use std::time::{Duration, Instant};

use super::checkpoint::{CheckpointConfig, Checkpointer, SavedCheckpoint};
use super::operator::{StreamEvent, StreamOperator};
use super::sink::StreamSink;
use super::source::{SourcePoll, StreamSource};
use super::stream_join::{BinaryStreamOperator, JoinSide};
use super::time::event_times;
use super::watermark::{WatermarkSpec, WatermarkTracker};
use crate::error::{ExecError, Result};
use crate::executor::CancelHandle;

/// How long the driver waits when no source has rows ready.
const PENDING_PAUSE: Duration = Duration::from_millis(1);

/// What a pipeline run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineStats {
    /// Rows the sources delivered.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Rows dropped as late, over all operators.
    pub late_rows: u64,
    /// The most rows of state the operators held together, sampled at every watermark.
    pub peak_state_rows: usize,
    /// Rows of state left when the run ended.
    pub final_state_rows: usize,
    /// Whether the run was stopped before its sources finished.
    pub stopped: bool,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// The checkpoint the run resumed from.
    pub restored_from: Option<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// One input of a pipeline: a source, how its watermarks are made (without a rule, windows
/// emit only when the source finishes) and the operators its rows go through first.
pub struct PipelineInput {
    pub source: Box<dyn StreamSource>,
    pub watermarks: Option<WatermarkSpec>,
    pub operators: Vec<Box<dyn StreamOperator>>,
}

struct Input {
    source: Box<dyn StreamSource>,
    watermarks: Option<(WatermarkSpec, usize)>,
    tracker: Option<WatermarkTracker>,
    operators: Vec<Box<dyn StreamOperator>>,
    newest: Option<i64>,
    watermark: i64,
    pending: bool,
    finished: bool,
}

impl Input {
    fn try_new(input: PipelineInput) -> Result<Input> {
        let watermarks = match input.watermarks {
            None => None,
            Some(spec) => {
                let index = input.source.schema().index_of(&spec.column).map_err(|_| {
                    ExecError::InvalidStream(format!(
                        "watermark column {} is not a column of source {}",
                        spec.column,
                        input.source.name()
                    ))
                })?;
                Some((spec, index))
            }
        };
        Ok(Input {
            source: input.source,
            watermarks,
            tracker: None,
            operators: input.operators,
            newest: None,
            watermark: i64::MIN,
            pending: false,
            finished: false,
        })
    }
}

/// Sources, operators and a sink, ready to run.
pub struct StreamPipeline {
    inputs: Vec<Input>,
    join: Option<Box<dyn BinaryStreamOperator>>,
    operators: Vec<Box<dyn StreamOperator>>,
    sink: Box<dyn StreamSink>,
    late_rows: Option<Box<dyn StreamSink>>,
    checkpoints: Option<CheckpointConfig>,
    watermark: i64,
}

impl StreamPipeline {
    /// A pipeline of one source; `watermarks` makes watermarks from the source's column
    /// `.column`.
    pub fn try_new(
        source: Box<dyn StreamSource>,
        watermarks: Option<WatermarkSpec>,
        operators: Vec<Box<dyn StreamOperator>>,
        sink: Box<dyn StreamSink>,
    ) -> Result<StreamPipeline> {
        let input = Input::try_new(PipelineInput {
            source,
            watermarks,
            operators,
        })?;
        Ok(StreamPipeline {
            inputs: vec![input],
            join: None,
            operators: Vec::new(),
            sink,
            late_rows: None,
            checkpoints: None,
            watermark: i64::MIN,
        })
    }

    /// A pipeline whose two inputs meet in `join` (left, right), followed by `operators`.
    pub fn try_join(
        left: PipelineInput,
        right: PipelineInput,
        join: Box<dyn BinaryStreamOperator>,
        operators: Vec<Box<dyn StreamOperator>>,
        sink: Box<dyn StreamSink>,
    ) -> Result<StreamPipeline> {
        Ok(StreamPipeline {
            inputs: vec![Input::try_new(left)?, Input::try_new(right)?],
            join: Some(join),
            operators,
            sink,
            late_rows: None,
            checkpoints: None,
            watermark: i64::MIN,
        })
    }

    /// Sends the rows windows drop as late to `sink` (a side output, written as they are
    /// dropped and not part of checkpoints).
    pub fn with_late_rows(mut self, sink: Box<dyn StreamSink>) -> StreamPipeline {
        self.late_rows = Some(sink);
        self
    }

    /// Checkpoints the pipeline as `config` says; a run first resumes from the latest complete
    /// checkpoint in `config.dir`, if there is one.
    pub fn with_checkpoints(mut self, config: CheckpointConfig) -> StreamPipeline {
        self.checkpoints = Some(config);
        self
    }

    /// Runs until every source finishes (then every open window is emitted and the sink
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
        if self.late_rows.is_some() {
            for input in &mut self.inputs {
                input
                    .operators
                    .iter_mut()
                    .for_each(|operator| operator.keep_late_rows());
            }
            self.operators
                .iter_mut()
                .for_each(|operator| operator.keep_late_rows());
        }
        for input in &mut self.inputs {
            input.tracker = input.watermarks.as_ref().map(|(spec, _)| {
                WatermarkTracker::new(
                    input.source.partitions(),
                    spec.max_out_of_orderness,
                    spec.idle_timeout,
                    started,
                )
            });
        }
        loop {
            if stop.is_cancelled() {
                stats.stopped = true;
                break;
            }
            self.write_late_rows()?;
            let Some(index) = self.next_input() else {
                if let Some(checkpointer) = checkpointer.as_mut() {
                    self.checkpoint(checkpointer, &mut stats)?;
                }
                self.sink.finish()?;
                if let Some(late_rows) = self.late_rows.as_mut() {
                    late_rows.finish()?;
                }
                break;
            };
            match self.inputs[index].source.poll()? {
                SourcePoll::Batch { partition, batch } => {
                    stats.rows_in += batch.num_rows() as u64;
                    let input = &mut self.inputs[index];
                    input.pending = false;
                    let newest = match (&input.watermarks, batch.num_rows()) {
                        (Some((spec, column)), rows) if rows > 0 => {
                            event_times(batch.column(*column), &spec.column)?
                                .iter()
                                .max()
                                .copied()
                        }
                        _ => None,
                    };
                    if newest.is_some() {
                        input.newest = input.newest.max(newest);
                    }
                    self.push_input(index, StreamEvent::Batch(batch), &mut stats)?;
                    if let (Some(tracker), Some(newest)) =
                        (self.inputs[index].tracker.as_mut(), newest)
                    {
                        tracker.observe(partition, newest, Instant::now());
                    }
                }
                SourcePoll::Pending => {
                    let input = &mut self.inputs[index];
                    input.pending = true;
                    if let Some(tracker) = input.tracker.as_mut() {
                        tracker.mark_idle(Instant::now());
                    }
                    if self
                        .inputs
                        .iter()
                        .all(|input| input.pending || input.finished)
                    {
                        std::thread::sleep(PENDING_PAUSE);
                        for input in &mut self.inputs {
                            input.pending = false;
                        }
                    }
                }
                SourcePoll::Finished => {
                    self.inputs[index].finished = true;
                    self.push_input(index, StreamEvent::Watermark(i64::MAX), &mut stats)?;
                    continue;
                }
            }
            if let Some(watermark) = self.inputs[index]
                .tracker
                .as_mut()
                .and_then(WatermarkTracker::advance)
            {
                self.push_input(index, StreamEvent::Watermark(watermark), &mut stats)?;
            }
            if let Some(checkpointer) = checkpointer
                .as_mut()
                .filter(|checkpointer| checkpointer.due())
            {
                self.checkpoint(checkpointer, &mut stats)?;
            }
        }
        stats.final_state_rows = self.state_rows();
        stats.late_rows = self.late_rows();
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    fn write_late_rows(&mut self) -> Result<()> {
        let Some(late_rows) = self.late_rows.as_mut() else {
            return Ok(());
        };
        let operators = self
            .inputs
            .iter_mut()
            .flat_map(|input| input.operators.iter_mut())
            .chain(self.operators.iter_mut());
        for operator in operators {
            for batch in operator.take_late_rows() {
                late_rows.write(batch)?;
            }
        }
        Ok(())
    }

    /// The unfinished input to poll next: one with rows pending if any, the one whose rows are
    /// oldest first; `None` once every input has finished.
    fn next_input(&self) -> Option<usize> {
        (0..self.inputs.len())
            .filter(|&index| !self.inputs[index].finished)
            .min_by_key(|&index| {
                let input = &self.inputs[index];
                (input.pending, input.newest.unwrap_or(i64::MIN))
            })
    }

    /// Pushes `event` through input `index`'s operators, then into the join (or the rest of
    /// the pipeline).
    fn push_input(
        &mut self,
        index: usize,
        event: StreamEvent,
        stats: &mut PipelineStats,
    ) -> Result<()> {
        let mut events = Vec::new();
        push_through(&mut self.inputs[index].operators, event, &mut events)?;
        for event in events {
            match event {
                StreamEvent::Batch(batch) => match self.join.as_mut() {
                    Some(join) => {
                        let side = if index == 0 {
                            JoinSide::Left
                        } else {
                            JoinSide::Right
                        };
                        let mut joined = Vec::new();
                        join.on_batch(side, batch, &mut joined)?;
                        self.push_tail(joined, stats)?;
                    }
                    None => self.push_tail(vec![StreamEvent::Batch(batch)], stats)?,
                },
                StreamEvent::Watermark(watermark) => {
                    self.inputs[index].watermark = watermark;
                    let combined = self
                        .inputs
                        .iter()
                        .map(|input| input.watermark)
                        .min()
                        .unwrap_or(watermark);
                    if combined > self.watermark {
                        self.watermark = combined;
                        let mut out = Vec::new();
                        match self.join.as_mut() {
                            Some(join) => join.on_watermark(combined, &mut out)?,
                            None => out.push(StreamEvent::Watermark(combined)),
                        }
                        self.push_tail(out, stats)?;
                        stats.peak_state_rows = stats.peak_state_rows.max(self.state_rows());
                    }
                }
            }
        }
        Ok(())
    }

    fn push_tail(&mut self, events: Vec<StreamEvent>, stats: &mut PipelineStats) -> Result<()> {
        for event in events {
            let mut out = Vec::new();
            push_through(&mut self.operators, event, &mut out)?;
            for event in out {
                if let StreamEvent::Batch(batch) = event {
                    stats.rows_out += batch.num_rows() as u64;
                    self.sink.write(batch)?;
                }
            }
        }
        Ok(())
    }

    /// Every single-input operator, inputs' first.
    fn operators(&self) -> impl Iterator<Item = &Box<dyn StreamOperator>> {
        self.inputs
            .iter()
            .flat_map(|input| input.operators.iter())
            .chain(self.operators.iter())
    }

    fn state_rows(&self) -> usize {
        self.operators()
            .map(|operator| operator.state_rows())
            .sum::<usize>()
            + self.join.as_ref().map_or(0, |join| join.state_rows())
    }

    fn late_rows(&self) -> u64 {
        self.operators()
            .map(|operator| operator.late_rows())
            .sum::<u64>()
            + self.join.as_ref().map_or(0, |join| join.late_rows())
    }

    /// Takes a checkpoint between two batches: source offsets, operator states (inputs'
    /// operators, the join, the rest) and the sink's pre-commit are saved, the checkpoint is
    /// marked complete, then the sink commits.
    fn checkpoint(
        &mut self,
        checkpointer: &mut Checkpointer,
        stats: &mut PipelineStats,
    ) -> Result<()> {
        let id = checkpointer.next_id();
        let mut operators = Vec::new();
        for input in &self.inputs {
            for operator in &input.operators {
                operators.push(operator.snapshot()?);
            }
        }
        if let Some(join) = &self.join {
            operators.push(join.snapshot()?);
        }
        for operator in &self.operators {
            operators.push(operator.snapshot()?);
        }
        let saved = SavedCheckpoint {
            id,
            source_offsets: self
                .inputs
                .iter()
                .flat_map(|input| input.source.offsets())
                .collect(),
            operators,
            sink: self.sink.pre_commit(id)?,
        };
        checkpointer.complete(&saved)?;
        self.sink.commit(id)?;
        stats.checkpoints += 1;
        Ok(())
    }

    fn restore(&mut self, saved: &SavedCheckpoint) -> Result<()> {
        let operator_count = self.operators().count() + usize::from(self.join.is_some());
        let offset_count: usize = self
            .inputs
            .iter()
            .map(|input| input.source.offsets().len())
            .sum();
        if saved.operators.len() != operator_count || saved.source_offsets.len() != offset_count {
            return Err(ExecError::InvalidStream(format!(
                "checkpoint {} was taken by a pipeline of {} operators and {} source offsets, \
                 this one has {operator_count} and {offset_count}; was the query changed?",
                saved.id,
                saved.operators.len(),
                saved.source_offsets.len(),
            )));
        }
        let mut offsets = saved.source_offsets.as_slice();
        let mut states = saved.operators.iter();
        for input in &mut self.inputs {
            let (own, rest) = offsets.split_at(input.source.offsets().len());
            input.source.seek(own)?;
            offsets = rest;
            for (operator, state) in input.operators.iter_mut().zip(states.by_ref()) {
                operator.restore(state)?;
            }
        }
        if let (Some(join), Some(state)) = (self.join.as_mut(), states.next()) {
            join.restore(state)?;
        }
        for (operator, state) in self.operators.iter_mut().zip(states) {
            operator.restore(state)?;
        }
        self.sink.restore(&saved.sink)
    }
}

/// Pushes `event` through `operators` in turn; what comes out of the last goes to `out`.
fn push_through(
    operators: &mut [Box<dyn StreamOperator>],
    event: StreamEvent,
    out: &mut Vec<StreamEvent>,
) -> Result<()> {
    let Some((operator, rest)) = operators.split_first_mut() else {
        out.push(event);
        return Ok(());
    };
    let mut produced = Vec::new();
    match event {
        StreamEvent::Batch(batch) => operator.on_batch(batch, &mut produced)?,
        StreamEvent::Watermark(watermark) => operator.on_watermark(watermark, &mut produced)?,
    }
    for event in produced {
        push_through(rest, event, out)?;
    }
    Ok(())
}
