//! `Stream`: event-time streaming with a builder API. A stream starts at a source
//! ([`Sabot::stream`](crate::Sabot::stream)), takes its event time and watermarks from a
//! column (`with_watermark`), is filtered, projected and mapped batch by batch, keyed
//! (`key_by`), windowed (tumbling, hop, session) and aggregated with the same aggregate
//! expressions as batch queries, and ends in a sink (`run`, `start`, `collect`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use sabot_exec::CancelHandle;
use sabot_exec::stream::{
    AggregateCall, BinaryStreamOperator, CheckpointConfig, DeadlineAggregate, FilterOperator,
    LookupJoin, MapOperator, MaxRowsWindow, PipelineInput, ProjectOperator, RunningAggregate,
    SessionWindowAggregate, StreamJoin, StreamJoinKind, StreamOperator, StreamPipeline, WINDOW_END,
    WINDOW_START, WatermarkSpec, WindowAggregate, WindowMaxRows, WindowSpec, duration_in_units,
};

pub use sabot_exec::stream::{
    ChannelSender, ChannelSource, CollectSink, CountSink, FileFormat, FileSink, FileSource,
    NexmarkConfig, NexmarkGenerator, NexmarkSource, NexmarkTable, PipelineStats as StreamStats,
    SourceFormat, SourcePoll, StreamSink, StreamSource,
};
/// The error of sources, sinks and map functions (a [`SabotError`] converts from it).
pub use sabot_exec::{ExecError, Result as ExecResult};

use crate::error::{Result, SabotError};

/// How long a source partition may go without rows before it stops holding the watermark back.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The windows of a windowed aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Back-to-back windows of one size.
    Tumbling { size: Duration },
    /// Windows of `size` starting every `slide` (Flink's HOP, Spark's sliding windows).
    Hop { size: Duration, slide: Duration },
    /// Per key, rows less than `gap` apart share a window.
    Session { gap: Duration },
}

impl Window {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: Duration) -> Window {
        Window::Tumbling { size }
    }

    /// Windows of `size` starting every `slide`.
    pub fn hop(size: Duration, slide: Duration) -> Window {
        Window::Hop { size, slide }
    }

    /// Session windows closed by `gap` without rows.
    pub fn session(gap: Duration) -> Window {
        Window::Session { gap }
    }
}

/// A streaming query under construction. Each builder step checks its columns and
/// expressions against the stream's schema and fails with a message naming what is wrong.
pub struct Stream {
    context: SessionContext,
    inputs: Inputs,
    /// The event-time column of the current rows, when they still have one.
    time_column: Option<String>,
    operators: Vec<Box<dyn StreamOperator>>,
    schema: SchemaRef,
    checkpoints: Option<CheckpointConfig>,
    late_rows: Option<Box<dyn StreamSink>>,
}

/// Where a stream's rows come from: one source, or two streams meeting in a join.
enum Inputs {
    One {
        source: Box<dyn StreamSource>,
        watermark: Option<WatermarkSpec>,
    },
    Joined {
        left: PipelineInput,
        right: PipelineInput,
        join: Box<dyn BinaryStreamOperator>,
    },
}

/// How rows of two joined streams must lie in event time to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinTime {
    /// Both streams are windowed aggregations (with `window_start` and `window_end`); rows
    /// of the same window match, and a window's rows are dropped when it closes.
    SameWindow,
    /// Right rows from `before` before to `after` after the left row's time (Flink's
    /// interval join).
    Around { before: Duration, after: Duration },
    /// Right rows from the left row's time to its `column` (an auction's expiry, say).
    Until { column: String },
    /// Any time: every row is kept (or, with a time-to-live, rows match only when at most
    /// that far apart, and are dropped after it).
    Unbounded { ttl: Option<Duration> },
}

impl Stream {
    pub(crate) fn new(context: SessionContext, source: Box<dyn StreamSource>) -> Stream {
        let schema = source.schema();
        Stream {
            context,
            inputs: Inputs::One {
                source,
                watermark: None,
            },
            time_column: None,
            operators: Vec::new(),
            schema,
            checkpoints: None,
            late_rows: None,
        }
    }

    /// Sends the rows that windows drop as late to `sink` as they are dropped (a side
    /// output; it is not part of checkpoints).
    pub fn with_late_rows(mut self, sink: impl StreamSink + 'static) -> Stream {
        self.late_rows = Some(Box::new(sink));
        self
    }

    /// Checkpoints every `interval` into `dir`; a run first resumes from the latest complete
    /// checkpoint there. With a [`FileSink`], output is then exactly once across restarts.
    pub fn with_checkpoints(
        mut self,
        dir: impl Into<std::path::PathBuf>,
        interval: Duration,
    ) -> Stream {
        self.checkpoints = Some(CheckpointConfig {
            dir: dir.into(),
            interval,
        });
        self
    }

    /// The schema of the stream's rows at this step.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Takes event time from the source's `column` (a timestamp, or Int64 milliseconds) and
    /// makes watermarks per source partition: the newest time seen less
    /// `max_out_of_orderness`. Rows older than the watermark when they arrive are late.
    pub fn with_watermark(
        mut self,
        column: &str,
        max_out_of_orderness: Duration,
    ) -> Result<Stream> {
        let Inputs::One { source, watermark } = &mut self.inputs else {
            return Err(SabotError::invalid_argument(
                "set watermarks on each stream before joining them",
            ));
        };
        let source_schema = source.schema();
        let field = source_schema.field_with_name(column).map_err(|_| {
            SabotError::invalid_argument(format!(
                "watermark column {column} is not a column of source {} (columns: {})",
                source.name(),
                column_names(&source_schema)
            ))
        })?;
        let max_out_of_orderness = duration_in_units(max_out_of_orderness, field.data_type())?;
        *watermark = Some(WatermarkSpec {
            column: column.to_string(),
            max_out_of_orderness,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        });
        self.time_column = Some(column.to_string());
        Ok(self)
    }

    /// How long a source partition may go without rows before the watermark moves on
    /// without it (default 5 s).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Result<Stream> {
        let Inputs::One {
            watermark: Some(watermark),
            ..
        } = &mut self.inputs
        else {
            return Err(SabotError::invalid_argument(
                "with_idle_timeout needs with_watermark first",
            ));
        };
        watermark.idle_timeout = timeout;
        Ok(self)
    }

    /// Keeps the rows for which `predicate` is true.
    pub fn filter(mut self, predicate: Expr) -> Result<Stream> {
        let predicate = self.physical(predicate)?;
        let operator = FilterOperator::try_new(self.schema.clone(), predicate)?;
        Ok(self.then(Box::new(operator)))
    }

    /// Computes the listed expressions from every row (name them with `.alias`).
    pub fn select(mut self, expressions: impl IntoIterator<Item = Expr>) -> Result<Stream> {
        let mut physical = Vec::new();
        let mut names = Vec::new();
        for expression in expressions {
            names.push(expression.schema_name().to_string());
            physical.push(self.physical(expression)?);
        }
        let operator = ProjectOperator::try_new(&self.schema, physical, names)?;
        Ok(self.then(Box::new(operator)))
    }

    /// Applies `function` to every batch; it must return batches of `schema`.
    pub fn map(
        self,
        schema: SchemaRef,
        function: impl FnMut(RecordBatch) -> sabot_exec::Result<RecordBatch> + Send + 'static,
    ) -> Stream {
        self.then(Box::new(MapOperator::new(schema, Box::new(function))))
    }

    /// Groups rows by the values of `columns` for a windowed aggregation.
    pub fn key_by(self, columns: &[&str]) -> Result<KeyedStream> {
        let keys = columns
            .iter()
            .map(|column| self.column_index(column))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyedStream { stream: self, keys })
    }

    /// Windows all rows together (no key).
    pub fn window(self, window: Window) -> WindowedStream {
        WindowedStream::new(self, Vec::new(), window)
    }

    /// For rows carrying `window_start` and `window_end` (a windowed aggregation's output),
    /// keeps per window the rows with the largest `column` (ties kept).
    pub fn max_rows_per_window(self, column: &str) -> Result<Stream> {
        let start = self.column_index(WINDOW_START)?;
        let end = self.column_index(WINDOW_END)?;
        let value = self.column_index(column)?;
        let operator = WindowMaxRows::try_new(
            &self.schema,
            MaxRowsWindow::Columns { start, end },
            value,
            0,
        )?;
        Ok(self.then(Box::new(operator)))
    }

    /// Runs the stream into `sink` until the source finishes, on this thread.
    pub fn run(self, sink: impl StreamSink + 'static) -> Result<StreamStats> {
        let pipeline = self.pipeline(Box::new(sink))?;
        Ok(pipeline.run(&CancelHandle::new())?)
    }

    /// Runs the stream into `sink` on a new thread; the job stops when the source finishes or
    /// when asked to.
    pub fn start(self, sink: impl StreamSink + 'static) -> Result<StreamJob> {
        let pipeline = self.pipeline(Box::new(sink))?;
        let stop = CancelHandle::new();
        let stop_signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sabot-stream".to_string())
            .spawn(move || pipeline.run(&stop_signal))
            .map_err(|error| SabotError::Execution {
                message: format!("cannot start a stream thread: {error}"),
            })?;
        Ok(StreamJob { thread, stop })
    }

    /// Runs the stream until its source finishes and returns every output batch.
    pub fn collect(self) -> Result<Vec<RecordBatch>> {
        let sink = CollectSink::new();
        self.run(sink.clone())?;
        Ok(sink.batches()?)
    }

    /// Joins this stream (left) with `other` (right): rows whose `left_keys` equal the other's
    /// `right_keys` and that lie in time as `time` says. Output: this stream's columns, then
    /// the other's (a column named like one of this stream's gets the suffix `_right`).
    pub fn join(
        self,
        other: Stream,
        left_keys: &[&str],
        right_keys: &[&str],
        time: JoinTime,
    ) -> Result<Stream> {
        let left_columns = self.column_indices(left_keys)?;
        let right_columns = other.column_indices(right_keys)?;
        let left_time = self.time_index();
        let right_time = other.time_index();
        let time_type =
            |(index, stream): (usize, &Stream)| stream.schema.field(index).data_type().clone();
        let kind = match &time {
            JoinTime::SameWindow => StreamJoinKind::SameWindow {
                left: (
                    self.column_index(WINDOW_START)?,
                    self.column_index(WINDOW_END)?,
                ),
                right: (
                    other.column_index(WINDOW_START)?,
                    other.column_index(WINDOW_END)?,
                ),
            },
            JoinTime::Around { before, after } => {
                let (left_time, right_time) = (left_time?, right_time?);
                let units = time_type((left_time, &self));
                StreamJoinKind::Interval {
                    left_start: left_time,
                    left_end: left_time,
                    right_time,
                    lower: -duration_in_units(*before, &units)?,
                    upper: duration_in_units(*after, &units)?,
                }
            }
            JoinTime::Until { column } => StreamJoinKind::Interval {
                left_start: left_time?,
                left_end: self.column_index(column)?,
                right_time: right_time?,
                lower: 0,
                upper: 0,
            },
            JoinTime::Unbounded { ttl } => {
                let (left_time, right_time) = (left_time?, right_time?);
                let units = time_type((left_time, &self));
                StreamJoinKind::Unbounded {
                    left_time,
                    right_time,
                    ttl: ttl.map(|ttl| duration_in_units(ttl, &units)).transpose()?,
                }
            }
        };
        let join = StreamJoin::try_new(
            &self.schema,
            &other.schema,
            &left_columns,
            &right_columns,
            kind,
        )?;
        let schema = join.schema();
        let time_column = self.time_column.clone();
        let context = self.context.clone();
        let checkpoints = self.checkpoints.clone();
        if self.late_rows.is_some() || other.late_rows.is_some() {
            return Err(SabotError::invalid_argument(
                "set the late-row side output on the joined stream, not on its inputs",
            ));
        }
        Ok(Stream {
            context,
            inputs: Inputs::Joined {
                left: self.into_input()?,
                right: other.into_input()?,
                join: Box::new(join),
            },
            time_column,
            operators: Vec::new(),
            schema,
            checkpoints,
            late_rows: None,
        })
    }

    /// Joins each row with the rows of `table` (dimension data held in memory) whose
    /// `table_keys` equal its `stream_keys`. Output: the stream's columns, then the table's.
    pub fn lookup_join(
        self,
        table: &[RecordBatch],
        stream_keys: &[&str],
        table_keys: &[&str],
    ) -> Result<Stream> {
        let Some(table_schema) = table.first().map(RecordBatch::schema) else {
            return Err(SabotError::invalid_argument(
                "a lookup join needs at least one table batch",
            ));
        };
        let stream_columns = self.column_indices(stream_keys)?;
        let table_columns = table_keys
            .iter()
            .map(|key| {
                table_schema.index_of(key).map_err(|_| {
                    SabotError::invalid_argument(format!(
                        "column {key} is not in the lookup table (columns: {})",
                        column_names(&table_schema)
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let operator = LookupJoin::try_new(
            &self.schema,
            &table_schema,
            table,
            &stream_columns,
            &table_columns,
        )?;
        Ok(self.then(Box::new(operator)))
    }

    /// This stream as one input of a join.
    fn into_input(self) -> Result<PipelineInput> {
        match self.inputs {
            Inputs::One { source, watermark } => Ok(PipelineInput {
                source,
                watermarks: watermark,
                operators: self.operators,
            }),
            Inputs::Joined { .. } => Err(SabotError::NotSupported {
                message: "joining a stream that is already a join".to_string(),
            }),
        }
    }

    fn time_index(&self) -> Result<usize> {
        let Some(column) = &self.time_column else {
            return Err(SabotError::invalid_argument(
                "this join needs event time on both streams: call with_watermark(column, delay) \
                 on each first (and keep that column in the rows)",
            ));
        };
        self.column_index(column)
    }

    fn column_indices(&self, columns: &[&str]) -> Result<Vec<usize>> {
        columns
            .iter()
            .map(|column| self.column_index(column))
            .collect()
    }

    fn pipeline(self, sink: Box<dyn StreamSink>) -> Result<StreamPipeline> {
        let pipeline = match self.inputs {
            Inputs::One { source, watermark } => {
                StreamPipeline::try_new(source, watermark, self.operators, sink)?
            }
            Inputs::Joined { left, right, join } => {
                StreamPipeline::try_join(left, right, join, self.operators, sink)?
            }
        };
        let pipeline = match self.late_rows {
            Some(sink) => pipeline.with_late_rows(sink),
            None => pipeline,
        };
        Ok(match self.checkpoints {
            Some(config) => pipeline.with_checkpoints(config),
            None => pipeline,
        })
    }

    pub(crate) fn then_all(self, operators: Vec<Box<dyn StreamOperator>>) -> Stream {
        operators.into_iter().fold(self, Stream::then)
    }

    fn then(mut self, operator: Box<dyn StreamOperator>) -> Stream {
        self.schema = operator.schema();
        if let Some(time) = &self.time_column
            && self.schema.field_with_name(time).is_err()
        {
            self.time_column = None;
        }
        self.operators.push(operator);
        self
    }

    fn physical(
        &mut self,
        expression: Expr,
    ) -> Result<Arc<dyn datafusion::physical_plan::PhysicalExpr>> {
        let schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        Ok(self.context.create_physical_expr(expression, &schema)?)
    }

    fn column_index(&self, column: &str) -> Result<usize> {
        self.schema.index_of(column).map_err(|_| {
            SabotError::invalid_argument(format!(
                "column {column} is not in the stream (columns: {})",
                column_names(&self.schema)
            ))
        })
    }
}

/// A stream grouped by key columns, waiting for its window.
pub struct KeyedStream {
    stream: Stream,
    keys: Vec<usize>,
}

impl KeyedStream {
    /// Windows each key's rows.
    pub fn window(self, window: Window) -> WindowedStream {
        WindowedStream::new(self.stream, self.keys, window)
    }

    /// Aggregates each key's rows since the stream began; at every watermark the keys whose
    /// results changed come out with their current results (the latest row of a key is its
    /// result so far). Output: the keys, then the aggregates.
    pub fn aggregate(self, aggregates: impl IntoIterator<Item = Expr>) -> Result<Stream> {
        let calls = self.calls(aggregates)?;
        let operator = RunningAggregate::try_new(&self.stream.schema, &self.keys, &calls)?;
        Ok(self.stream.then(Box::new(operator)))
    }

    /// Aggregates each key's rows until the watermark passes the key's deadline, the largest
    /// value its rows had in `deadline_column` (an auction's expiry); the key's result then
    /// comes out once. Output: the keys, then the aggregates.
    pub fn aggregate_until(
        self,
        deadline_column: &str,
        aggregates: impl IntoIterator<Item = Expr>,
    ) -> Result<Stream> {
        let deadline = self.stream.column_index(deadline_column)?;
        let calls = self.calls(aggregates)?;
        let operator =
            DeadlineAggregate::try_new(&self.stream.schema, &self.keys, deadline, &calls)?;
        Ok(self.stream.then(Box::new(operator)))
    }

    fn calls(&self, aggregates: impl IntoIterator<Item = Expr>) -> Result<Vec<AggregateCall>> {
        aggregates
            .into_iter()
            .map(|aggregate| aggregate_call(&aggregate, &self.stream))
            .collect()
    }
}

/// A windowed stream, waiting for what to compute per window.
pub struct WindowedStream {
    stream: Stream,
    keys: Vec<usize>,
    window: Window,
    allowed_lateness: Duration,
}

impl WindowedStream {
    fn new(stream: Stream, keys: Vec<usize>, window: Window) -> WindowedStream {
        WindowedStream {
            stream,
            keys,
            window,
            allowed_lateness: Duration::ZERO,
        }
    }

    /// Keeps windows open for `lateness` past their end, so rows that late still count;
    /// each window is emitted once, when the watermark passes its end plus `lateness`.
    pub fn allowed_lateness(mut self, lateness: Duration) -> WindowedStream {
        self.allowed_lateness = lateness;
        self
    }

    /// One row per window and key: `window_start`, `window_end`, the keys, then the
    /// aggregates (`count`, `sum`, `min`, `max`, `avg` from [`crate::expr`]).
    pub fn aggregate(self, aggregates: impl IntoIterator<Item = Expr>) -> Result<Stream> {
        let (time, time_type) = self.time()?;
        let stream = self.stream;
        let calls = aggregates
            .into_iter()
            .map(|aggregate| aggregate_call(&aggregate, &stream))
            .collect::<Result<Vec<_>>>()?;
        let units = |duration| duration_in_units(duration, &time_type);
        let lateness = units(self.allowed_lateness)?;
        let operator: Box<dyn StreamOperator> = match self.window {
            Window::Tumbling { size } => Box::new(WindowAggregate::try_new(
                &stream.schema,
                time,
                &self.keys,
                WindowSpec::Tumbling { size: units(size)? },
                &calls,
                lateness,
            )?),
            Window::Hop { size, slide } => Box::new(WindowAggregate::try_new(
                &stream.schema,
                time,
                &self.keys,
                WindowSpec::Hop {
                    size: units(size)?,
                    slide: units(slide)?,
                },
                &calls,
                lateness,
            )?),
            Window::Session { gap } => Box::new(SessionWindowAggregate::try_new(
                &stream.schema,
                time,
                &self.keys,
                units(gap)?,
                &calls,
                lateness,
            )?),
        };
        Ok(stream.then(operator))
    }

    /// The rows with the largest `column` in each tumbling window (ties kept), emitted when
    /// the window closes: the stream's own columns.
    pub fn max_rows(self, column: &str) -> Result<Stream> {
        let Window::Tumbling { size } = self.window else {
            return Err(SabotError::NotSupported {
                message: "max_rows takes tumbling windows; aggregate hop or session windows \
                          and use max_rows_per_window"
                    .to_string(),
            });
        };
        if !self.keys.is_empty() {
            return Err(SabotError::NotSupported {
                message: "max_rows over keyed windows".to_string(),
            });
        }
        let (time, time_type) = self.time()?;
        let size = duration_in_units(size, &time_type)?;
        let lateness = duration_in_units(self.allowed_lateness, &time_type)?;
        let value = self.stream.column_index(column)?;
        let operator = WindowMaxRows::try_new(
            &self.stream.schema,
            MaxRowsWindow::Tumbling {
                time_column: time,
                size,
            },
            value,
            lateness,
        )?;
        Ok(self.stream.then(Box::new(operator)))
    }

    fn time(&self) -> Result<(usize, arrow::datatypes::DataType)> {
        let Some(column) = &self.stream.time_column else {
            return Err(SabotError::invalid_argument(
                "windows need event time: call with_watermark(column, delay) on the stream \
                 first (and keep that column in the rows)",
            ));
        };
        let index = self.stream.column_index(column)?;
        Ok((index, self.stream.schema.field(index).data_type().clone()))
    }
}

/// A stream running on its own thread.
pub struct StreamJob {
    thread: JoinHandle<sabot_exec::Result<StreamStats>>,
    stop: CancelHandle,
}

impl StreamJob {
    /// Stops the stream (open windows are not emitted) and waits for it.
    pub fn stop(self) -> Result<StreamStats> {
        self.stop.cancel();
        self.wait()
    }

    /// A handle that stops the stream when cancelled (from any thread, or a Ctrl-C handler).
    pub fn stop_handle(&self) -> CancelHandle {
        self.stop.clone()
    }

    /// Waits for the stream's source to finish.
    pub fn wait(self) -> Result<StreamStats> {
        match self.thread.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err(SabotError::Execution {
                message: "the stream thread panicked".to_string(),
            }),
        }
    }
}

/// The window aggregate `expression` (possibly aliased) computes over `stream`'s columns.
fn aggregate_call(expression: &Expr, stream: &Stream) -> Result<AggregateCall> {
    let name = match expression {
        Expr::Alias(alias) => alias.name.clone(),
        other => other.schema_name().to_string(),
    };
    let mut column_of = |argument: &Expr| -> sabot_planner::Result<usize> {
        let Expr::Column(column) = argument else {
            return Err(sabot_planner::PlanError::Rewrite(
                datafusion::error::DataFusionError::NotImplemented(format!(
                    "{expression}: an aggregate's argument must be a column; select {argument} \
                     as a column first"
                )),
            ));
        };
        stream.column_index(&column.name).map_err(|error| {
            sabot_planner::PlanError::Rewrite(datafusion::error::DataFusionError::Plan(
                error.to_string(),
            ))
        })
    };
    Ok(sabot_planner::aggregate_call(
        expression,
        &mut column_of,
        name,
    )?)
}

fn column_names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
