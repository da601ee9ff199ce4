//! The rows holding a window's largest value of a column (ties kept): per window it keeps only
//! the current maximum and the rows that reach it, and emits them when the watermark passes the
//! window's end. Nexmark's "highest bid" (q7) and "hot items" (q5) are this operator.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, UInt32Array};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::operator::{LateRows, StreamEvent, StreamOperator};
use super::snapshot;
use super::time::event_times;
use super::window_aggregate::{check_state_schema, checked_time_field};
use crate::error::{ExecError, Result};

const OPERATOR: &str = "window max rows";

/// Which window a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRowsWindow {
    /// Tumbling windows of `size` over event-time column `time_column`.
    Tumbling { time_column: usize, size: i64 },
    /// The window named by the row's own start and end columns (rows a window aggregate
    /// emitted).
    Columns { start: usize, end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Value {
    Int(i64),
    Float(f64),
}

struct Best {
    end: i64,
    value: Value,
    rows: Vec<RecordBatch>,
    row_count: usize,
}

/// Keeps, per window, the rows with the largest value of a column.
pub struct WindowMaxRows {
    schema: SchemaRef,
    state_schema: SchemaRef,
    window: MaxRowsWindow,
    value_column: usize,
    float_values: bool,
    allowed_lateness: i64,
    windows: BTreeMap<i64, Best>,
    emitted_through: i64,
    late: LateRows,
}

impl WindowMaxRows {
    /// Keeps the rows of `input` whose `value_column` is the largest in their `window`.
    /// Output: the input's columns.
    pub fn try_new(
        input: &SchemaRef,
        window: MaxRowsWindow,
        value_column: usize,
        allowed_lateness: i64,
    ) -> Result<WindowMaxRows> {
        match window {
            MaxRowsWindow::Tumbling { time_column, size } => {
                checked_time_field(input, time_column)?;
                if size <= 0 {
                    return Err(ExecError::InvalidStream(format!(
                        "a window size must be above 0, got {size}"
                    )));
                }
            }
            MaxRowsWindow::Columns { start, end } => {
                checked_time_field(input, start)?;
                checked_time_field(input, end)?;
            }
        }
        let field = input.fields().get(value_column).ok_or_else(|| {
            ExecError::InvalidStream(format!("value column {value_column} is not in the input"))
        })?;
        let float_values = match field.data_type() {
            data_type if data_type.is_integer() => false,
            data_type
                if data_type.is_floating() || matches!(data_type, DataType::Decimal128(_, _)) =>
            {
                true
            }
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => false,
            other => {
                return Err(ExecError::InvalidStream(format!(
                    "the largest value of column {} of type {other} cannot be taken",
                    field.name()
                )));
            }
        };
        let mut state_fields: Vec<Field> = input
            .fields()
            .iter()
            .map(|field| field.as_ref().clone())
            .collect();
        state_fields.push(Field::new("__window_start", DataType::Int64, false));
        state_fields.push(Field::new("__window_end", DataType::Int64, false));
        Ok(WindowMaxRows {
            state_schema: Arc::new(Schema::new(state_fields)),
            schema: input.clone(),
            window,
            value_column,
            float_values,
            allowed_lateness: allowed_lateness.max(0),
            windows: BTreeMap::new(),
            emitted_through: i64::MIN,
            late: LateRows::default(),
        })
    }

    /// (start, end) of each row's window.
    fn windows_of(&self, batch: &RecordBatch) -> Result<(Vec<i64>, Vec<i64>)> {
        match self.window {
            MaxRowsWindow::Tumbling { time_column, size } => {
                let name = self.schema.field(time_column).name();
                let times = event_times(batch.column(time_column), name)?;
                let starts: Vec<i64> = times
                    .iter()
                    .map(|time| time.div_euclid(size) * size)
                    .collect();
                let ends = starts.iter().map(|start| start + size).collect();
                Ok((starts, ends))
            }
            MaxRowsWindow::Columns { start, end } => {
                let starts = event_times(batch.column(start), self.schema.field(start).name())?;
                let ends = event_times(batch.column(end), self.schema.field(end).name())?;
                Ok((starts.to_vec(), ends.to_vec()))
            }
        }
    }

    fn values(&self, batch: &RecordBatch) -> Result<Vec<Option<Value>>> {
        let column = batch.column(self.value_column);
        let values: Vec<Option<Value>> = if self.float_values {
            let values = cast(column, &DataType::Float64).map_err(ExecError::arrow(OPERATOR))?;
            values
                .as_primitive::<Float64Type>()
                .iter()
                .map(|value| value.map(Value::Float))
                .collect()
        } else {
            let values = cast_to_int(column)?;
            values
                .as_primitive::<Int64Type>()
                .iter()
                .map(|value| value.map(Value::Int))
                .collect()
        };
        Ok(values)
    }

    fn offer(
        &mut self,
        batch: &RecordBatch,
        start: i64,
        end: i64,
        rows: &[usize],
        values: &[Option<Value>],
    ) -> Result<()> {
        if end.saturating_add(self.allowed_lateness) <= self.emitted_through {
            self.late.add(batch, rows)?;
            return Ok(());
        }
        let Some(max) = rows
            .iter()
            .filter_map(|&row| values[row])
            .reduce(|best, value| if value > best { value } else { best })
        else {
            return Ok(());
        };
        let best = self.windows.get(&start).map(|best| best.value);
        if best.is_some_and(|best| best > max) {
            return Ok(());
        }
        let tied = UInt32Array::from_iter_values(
            rows.iter()
                .filter(|&&row| values[row] == Some(max))
                .map(|&row| row as u32),
        );
        let tied_rows = take_record_batch(batch, &tied).map_err(ExecError::arrow(OPERATOR))?;
        let entry = self.windows.entry(start).or_insert_with(|| Best {
            end,
            value: max,
            rows: Vec::new(),
            row_count: 0,
        });
        if entry.value != max {
            entry.value = max;
            entry.rows.clear();
            entry.row_count = 0;
        }
        entry.row_count += tied_rows.num_rows();
        entry.rows.push(tied_rows);
        Ok(())
    }
}

fn cast_to_int(column: &ArrayRef) -> Result<ArrayRef> {
    let target = DataType::Int64;
    match column.data_type() {
        DataType::Timestamp(_, _) | DataType::Date64 => {
            let data = column
                .to_data()
                .into_builder()
                .data_type(target.clone())
                .build()
                .map_err(ExecError::arrow(OPERATOR))?;
            Ok(arrow::array::make_array(data))
        }
        _ => cast(column, &target).map_err(ExecError::arrow(OPERATOR)),
    }
}

impl StreamOperator for WindowMaxRows {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (starts, ends) = self.windows_of(&batch)?;
        let values = self.values(&batch)?;
        let mut rows_per_window: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
        for (row, (&start, &end)) in starts.iter().zip(&ends).enumerate() {
            rows_per_window.entry((start, end)).or_default().push(row);
        }
        for ((start, end), rows) in rows_per_window {
            self.offer(&batch, start, end, &rows, &values)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        let through = watermark.saturating_sub(self.allowed_lateness);
        self.emitted_through = self.emitted_through.max(through);
        let closed: Vec<i64> = self
            .windows
            .iter()
            .filter(|(_, best)| best.end <= through)
            .map(|(&start, _)| start)
            .collect();
        for start in closed {
            if let Some(best) = self.windows.remove(&start) {
                let batch =
                    concat_batches(&self.schema, &best.rows).map_err(ExecError::arrow(OPERATOR))?;
                out.push(StreamEvent::Batch(batch));
            }
        }
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.windows.values().map(|best| best.row_count).sum()
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
        let mut parts: Vec<RecordBatch> = Vec::new();
        for (&start, best) in &self.windows {
            for rows in &best.rows {
                let mut columns = rows.columns().to_vec();
                columns.push(Arc::new(Int64Array::from(vec![start; rows.num_rows()])));
                columns.push(Arc::new(Int64Array::from(vec![best.end; rows.num_rows()])));
                parts.push(
                    RecordBatch::try_new(self.state_schema.clone(), columns)
                        .map_err(ExecError::arrow(OPERATOR))?,
                );
            }
        }
        let batch =
            concat_batches(&self.state_schema, &parts).map_err(ExecError::arrow(OPERATOR))?;
        snapshot::encode(&[self.emitted_through, self.late.count() as i64], &batch)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let (header, batch) = snapshot::decode(state)?;
        check_state_schema(&batch, &self.state_schema, OPERATOR)?;
        self.windows.clear();
        self.emitted_through = i64::MIN;
        let width = self.schema.fields().len();
        let starts = event_times(batch.column(width), "window start")?.to_vec();
        let ends = event_times(batch.column(width + 1), "window end")?.to_vec();
        let rows = RecordBatch::try_new(self.schema.clone(), batch.columns()[..width].to_vec())
            .map_err(ExecError::arrow(OPERATOR))?;
        let values = self.values(&rows)?;
        let mut rows_per_window: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
        for (row, (&start, &end)) in starts.iter().zip(&ends).enumerate() {
            rows_per_window.entry((start, end)).or_default().push(row);
        }
        for ((start, end), window_rows) in rows_per_window {
            self.offer(&rows, start, end, &window_rows, &values)?;
        }
        self.emitted_through = snapshot::header_value(&header, 0, OPERATOR)?;
        self.late
            .set_count(snapshot::header_value(&header, 1, OPERATOR)? as u64);
        Ok(())
    }
}
