//! Tumbling and hopping window aggregation. Rows are folded into panes (slices of event time
//! as long as the greatest common divisor of window size and slide), each pane holding its
//! keys' aggregate states; when the watermark passes a window's end (plus the allowed
//! lateness) the window's panes are merged and emitted, and panes no window needs any more
//! are dropped. A row whose every window has been emitted is late: counted and dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::compute::{concat, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::accumulator::{Accumulator, AggregateCall};
use super::group_index::{GroupIndex, KeyEncoder};
use super::operator::{LateRows, StreamEvent, StreamOperator};
use super::snapshot;
use super::time::{WINDOW_END, WINDOW_START, event_times, is_time_type, time_array};
use crate::error::{ExecError, Result};

const OPERATOR: &str = "window aggregate";

/// The windows rows are grouped into; lengths are in the event-time column's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Back-to-back windows of `size`: `[k*size, (k+1)*size)`.
    Tumbling { size: i64 },
    /// Windows of `size` starting every `slide`: `[k*slide, k*slide + size)`.
    Hop { size: i64, slide: i64 },
    /// Per key, rows less than `gap` apart share a window, from the first row's time to the
    /// last row's time plus `gap`.
    Session { gap: i64 },
}

struct Pane {
    index: GroupIndex,
    accumulators: Vec<Accumulator>,
}

/// Aggregates keyed rows per tumbling or hopping window.
pub struct WindowAggregate {
    schema: SchemaRef,
    state_schema: SchemaRef,
    time_column: usize,
    time_name: String,
    size: i64,
    slide: i64,
    pane: i64,
    allowed_lateness: i64,
    keys: KeyEncoder,
    prototypes: Vec<Accumulator>,
    panes: BTreeMap<i64, Pane>,
    /// Every window ending at or before this has been emitted.
    emitted_through: i64,
    late: LateRows,
}

impl WindowAggregate {
    /// Aggregates `input`'s rows per `window` (tumbling or hop) of event-time column
    /// `time_column`, per distinct value of `key_columns`. Windows emit once the watermark
    /// reaches their end plus `allowed_lateness`. Output columns: `window_start`,
    /// `window_end`, the keys, then one column per aggregate.
    pub fn try_new(
        input: &SchemaRef,
        time_column: usize,
        key_columns: &[usize],
        window: WindowSpec,
        aggregates: &[AggregateCall],
        allowed_lateness: i64,
    ) -> Result<WindowAggregate> {
        let (size, slide) = match window {
            WindowSpec::Tumbling { size } => (size, size),
            WindowSpec::Hop { size, slide } => (size, slide),
            WindowSpec::Session { .. } => {
                return Err(ExecError::InvalidStream(
                    "session windows are aggregated by SessionWindowAggregate".to_string(),
                ));
            }
        };
        if size <= 0 || slide <= 0 || slide > size {
            return Err(ExecError::InvalidStream(format!(
                "a window needs 0 < slide <= size, got size {size} and slide {slide}"
            )));
        }
        let time_field = checked_time_field(input, time_column)?;
        let (schema, prototypes) = window_output(input, time_field, key_columns, aggregates)?;
        let pane_start = Field::new("pane_start", DataType::Int64, false);
        Ok(WindowAggregate {
            state_schema: state_schema(
                vec![pane_start],
                &window_key_fields(&schema, aggregates.len()),
                aggregates.len(),
            ),
            schema,
            time_column,
            time_name: time_field.name().clone(),
            size,
            slide,
            pane: gcd(size, slide),
            allowed_lateness: allowed_lateness.max(0),
            keys: KeyEncoder::try_new(input, key_columns)?,
            prototypes,
            panes: BTreeMap::new(),
            emitted_through: i64::MIN,
            late: LateRows::default(),
        })
    }

    /// The end of the last window that contains pane `pane_start`.
    fn last_end_of(&self, pane_start: i64) -> i64 {
        pane_start.div_euclid(self.slide) * self.slide + self.size
    }

    fn fold(&mut self, batch: &RecordBatch, pane_start: i64, rows: &[usize]) -> Result<()> {
        if self.last_end_of(pane_start) <= self.emitted_through {
            self.late.add(batch, rows)?;
            return Ok(());
        }
        let keys = self.keys.encode(batch)?;
        let pane = self.panes.entry(pane_start).or_insert_with(|| Pane {
            index: self.keys.new_index(),
            accumulators: self
                .prototypes
                .iter()
                .map(Accumulator::empty_like)
                .collect(),
        });
        let mut group_ids = Vec::with_capacity(rows.len());
        pane.index.intern(&keys, rows, &mut group_ids)?;
        let groups = pane.index.len();
        for accumulator in &mut pane.accumulators {
            accumulator.resize(groups);
            accumulator.update(batch, &group_ids)?;
        }
        Ok(())
    }

    /// The window `[end - size, end)` as a batch (none when it has no rows).
    fn window_batch(&self, end: i64) -> Result<Option<RecordBatch>> {
        let start = end - self.size;
        let mut panes = self.panes.range(start..end).map(|(_, pane)| pane);
        let merged;
        let window = if self.pane == self.size {
            match panes.next() {
                Some(pane) => pane,
                None => return Ok(None),
            }
        } else {
            let mut window = Pane {
                index: self.keys.new_index(),
                accumulators: self
                    .prototypes
                    .iter()
                    .map(Accumulator::empty_like)
                    .collect(),
            };
            for pane in panes {
                let mapping = window.index.absorb_keys(&pane.index)?;
                let groups = window.index.len();
                for (into, from) in window.accumulators.iter_mut().zip(&pane.accumulators) {
                    into.resize(groups);
                    for (from_group, &into_group) in mapping.iter().enumerate() {
                        into.merge_group(from, from_group, into_group)?;
                    }
                }
            }
            merged = window;
            &merged
        };
        let groups: Vec<usize> = (0..window.index.len()).collect();
        if groups.is_empty() {
            return Ok(None);
        }
        let time_type = self.schema.field(0).data_type();
        let mut columns: Vec<ArrayRef> = vec![
            time_array(vec![start; groups.len()], time_type),
            time_array(vec![end; groups.len()], time_type),
        ];
        columns.extend(self.keys.key_columns(&window.index, &groups)?);
        for accumulator in &window.accumulators {
            columns.push(accumulator.finish(&groups)?);
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(ExecError::arrow(OPERATOR))
    }
}

impl StreamOperator for WindowAggregate {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = event_times(batch.column(self.time_column), &self.time_name)?;
        let pane = self.pane;
        let first = times[0].div_euclid(pane) * pane;
        if times
            .iter()
            .all(|&time| time.div_euclid(pane) * pane == first)
        {
            let rows: Vec<usize> = (0..batch.num_rows()).collect();
            return self.fold(&batch, first, &rows);
        }
        let mut rows_per_pane: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (row, &time) in times.iter().enumerate() {
            rows_per_pane
                .entry(time.div_euclid(pane) * pane)
                .or_default()
                .push(row);
        }
        for (pane_start, rows) in rows_per_pane {
            let indices = UInt32Array::from_iter_values(rows.iter().map(|&row| row as u32));
            let part = take_record_batch(&batch, &indices).map_err(ExecError::arrow(OPERATOR))?;
            let all: Vec<usize> = (0..part.num_rows()).collect();
            self.fold(&part, pane_start, &all)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        let through = watermark.saturating_sub(self.allowed_lateness);
        if through > self.emitted_through {
            let mut ends = BTreeSet::new();
            for &pane_start in self.panes.keys() {
                let mut start = pane_start.div_euclid(self.slide) * self.slide;
                while start > pane_start - self.size {
                    let end = start + self.size;
                    if end > self.emitted_through && end <= through {
                        ends.insert(end);
                    }
                    start -= self.slide;
                }
            }
            for end in ends {
                if let Some(batch) = self.window_batch(end)? {
                    out.push(StreamEvent::Batch(batch));
                }
            }
            let (size, slide) = (self.size, self.slide);
            self.panes
                .retain(|&start, _| start.div_euclid(slide) * slide + size > through);
            self.emitted_through = through;
        }
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.panes.values().map(|pane| pane.index.len()).sum()
    }

    fn late_rows(&self) -> u64 {
        self.late.count()
    }

    fn keep_late_rows(&mut self) {
        self.late.keep();
    }

    fn take_late_rows(&mut self) -> Vec<RecordBatch> {
        self.late.take()
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); self.state_schema.fields().len()];
        for (&start, pane) in &self.panes {
            let groups: Vec<usize> = (0..pane.index.len()).collect();
            let mut columns = vec![time_array(vec![start; groups.len()], &DataType::Int64)];
            columns.extend(self.keys.key_columns(&pane.index, &groups)?);
            for accumulator in &pane.accumulators {
                columns.extend(accumulator.state_columns(&groups));
            }
            for (part, column) in parts.iter_mut().zip(columns) {
                part.push(column);
            }
        }
        let batch = concat_columns(&self.state_schema, parts)?;
        snapshot::encode(&[self.emitted_through, self.late.count() as i64], &batch)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let (header, batch) = snapshot::decode(state)?;
        check_state_schema(&batch, &self.state_schema, OPERATOR)?;
        self.emitted_through = snapshot::header_value(&header, 0, OPERATOR)?;
        self.late
            .set_count(snapshot::header_value(&header, 1, OPERATOR)? as u64);
        self.panes.clear();
        let starts = event_times(batch.column(0), "pane_start")?.to_vec();
        let key_count = self.schema.fields().len() - 2 - self.prototypes.len();
        let mut row = 0;
        while row < starts.len() {
            let start = starts[row];
            let len = starts[row..]
                .iter()
                .take_while(|&&other| other == start)
                .count();
            let part = batch.slice(row, len);
            let key_columns = &part.columns()[1..1 + key_count];
            let keys = self.keys.encode_columns(key_columns, len)?;
            let mut pane = Pane {
                index: self.keys.new_index(),
                accumulators: self
                    .prototypes
                    .iter()
                    .map(Accumulator::empty_like)
                    .collect(),
            };
            let mut group_ids = Vec::with_capacity(len);
            pane.index
                .intern(&keys, &(0..len).collect::<Vec<_>>(), &mut group_ids)?;
            for (index, accumulator) in pane.accumulators.iter_mut().enumerate() {
                let first = 1 + key_count + 3 * index;
                accumulator.restore_states(&part.columns()[first..first + 3], &group_ids)?;
            }
            self.panes.insert(start, pane);
            row += len;
        }
        Ok(())
    }
}

/// The schema of a keyed aggregate's saved state: `leading` columns, the key columns `keys`,
/// then three state columns per aggregate.
pub(crate) fn state_schema(leading: Vec<Field>, keys: &[Field], aggregates: usize) -> SchemaRef {
    let mut fields = leading;
    fields.extend(keys.iter().cloned());
    for index in 0..aggregates {
        fields.push(Field::new(format!("count_{index}"), DataType::Int64, false));
        fields.push(Field::new(format!("int_{index}"), DataType::Int64, false));
        fields.push(Field::new(
            format!("float_{index}"),
            DataType::Float64,
            false,
        ));
    }
    Arc::new(Schema::new(fields))
}

/// The key fields of a window operator's output (after `window_start` and `window_end`).
pub(crate) fn window_key_fields(output: &Schema, aggregates: usize) -> Vec<Field> {
    let keys = output.fields().len() - 2 - aggregates;
    output.fields()[2..2 + keys]
        .iter()
        .map(|field| field.as_ref().clone())
        .collect()
}

/// One batch of `schema` from each column's parts (an empty batch when there are none).
pub(crate) fn concat_columns(schema: &SchemaRef, parts: Vec<Vec<ArrayRef>>) -> Result<RecordBatch> {
    if parts.first().is_none_or(|part| part.is_empty()) {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let columns = parts
        .iter()
        .map(|part| {
            let arrays: Vec<&dyn arrow::array::Array> =
                part.iter().map(|array| array.as_ref()).collect();
            concat(&arrays)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(ExecError::arrow("state snapshot"))?;
    RecordBatch::try_new(schema.clone(), columns).map_err(ExecError::arrow("state snapshot"))
}

/// Checks that saved state has the columns the operator expects.
pub(crate) fn check_state_schema(
    batch: &RecordBatch,
    expected: &SchemaRef,
    operator: &str,
) -> Result<()> {
    if batch.schema().fields() != expected.fields() {
        return Err(ExecError::InvalidStream(format!(
            "the checkpoint's {operator} state has columns {:?}, not {:?}; was the query changed?",
            batch.schema().fields(),
            expected.fields()
        )));
    }
    Ok(())
}

/// The event-time field `time_column` of `input`, checked to hold times.
pub(crate) fn checked_time_field(input: &Schema, time_column: usize) -> Result<&Field> {
    let field = input.fields().get(time_column).ok_or_else(|| {
        ExecError::InvalidStream(format!("time column {time_column} is not in the input"))
    })?;
    if !is_time_type(field.data_type()) {
        return Err(ExecError::InvalidStream(format!(
            "column {} has type {}; event time must be a timestamp or Int64",
            field.name(),
            field.data_type()
        )));
    }
    Ok(field)
}

/// The output schema of a window aggregation of `input` (`window_start`, `window_end`, the
/// key columns, one column per aggregate) and the aggregates' empty states.
pub(crate) fn window_output(
    input: &Schema,
    time_field: &Field,
    key_columns: &[usize],
    aggregates: &[AggregateCall],
) -> Result<(SchemaRef, Vec<Accumulator>)> {
    keyed_output(window_fields(time_field), input, key_columns, aggregates)
}

/// The output schema of a keyed aggregation of `input` (the `leading` fields, the key
/// columns, one column per aggregate) and the aggregates' empty states.
pub(crate) fn keyed_output(
    leading: Vec<Field>,
    input: &Schema,
    key_columns: &[usize],
    aggregates: &[AggregateCall],
) -> Result<(SchemaRef, Vec<Accumulator>)> {
    let mut fields = leading;
    for &key in key_columns {
        let field = input.fields().get(key).ok_or_else(|| {
            ExecError::InvalidStream(format!("key column {key} is not in the input"))
        })?;
        fields.push(field.as_ref().clone());
    }
    let mut accumulators = Vec::with_capacity(aggregates.len());
    for call in aggregates {
        fields.push(call.output_field(input)?);
        accumulators.push(Accumulator::try_new(call, input)?);
    }
    Ok((Arc::new(Schema::new(fields)), accumulators))
}

/// The `window_start` and `window_end` fields, of the event-time column's type.
pub(crate) fn window_fields(time_field: &Field) -> Vec<Field> {
    vec![
        Field::new(WINDOW_START, time_field.data_type().clone(), false),
        Field::new(WINDOW_END, time_field.data_type().clone(), false),
    ]
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
