//! Aggregate states of window groups: COUNT, SUM, MIN, MAX and AVG over integer-like columns
//! (as `i64`) and floating-point or decimal ones (as `f64`), one slot per group, mergeable so
//! windows can be put together from panes and sessions can merge.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;

use crate::error::{ExecError, Result};

const OPERATOR: &str = "window aggregate";

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    /// `count(*)`: rows.
    CountRows,
    /// `count(column)`: non-null values.
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// One aggregate of a window: what it computes, over which input column, under which name.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateCall {
    pub kind: AggregateKind,
    /// The input column's index (none for `count(*)`).
    pub input: Option<usize>,
    /// The output column's name.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Int,
    Float,
}

/// The states of one aggregate for every group of a window (or pane, or set of sessions).
#[derive(Debug, Clone)]
pub(crate) struct Accumulator {
    kind: AggregateKind,
    input: Option<usize>,
    domain: Domain,
    output_type: DataType,
    /// Non-null inputs per group (rows, for `count(*)`).
    counts: Vec<i64>,
    ints: Vec<i64>,
    floats: Vec<f64>,
}

impl AggregateCall {
    /// The column this aggregate produces, given its input's schema.
    pub(crate) fn output_field(&self, input: &Schema) -> Result<Field> {
        let accumulator = Accumulator::try_new(self, input)?;
        let nullable = !matches!(self.kind, AggregateKind::CountRows | AggregateKind::Count);
        Ok(Field::new(
            &self.name,
            accumulator.output_type.clone(),
            nullable,
        ))
    }
}

impl Accumulator {
    pub(crate) fn try_new(call: &AggregateCall, input: &Schema) -> Result<Accumulator> {
        let (domain, output_type) = match (call.kind, call.input) {
            (AggregateKind::CountRows, _) => (Domain::Int, DataType::Int64),
            (_, None) => {
                return Err(ExecError::InvalidStream(format!(
                    "aggregate {} needs an input column",
                    call.name
                )));
            }
            (kind, Some(index)) => {
                let field = input.fields().get(index).ok_or_else(|| {
                    ExecError::InvalidStream(format!(
                        "aggregate {} reads column {index}, but the input has {} columns",
                        call.name,
                        input.fields().len()
                    ))
                })?;
                if kind == AggregateKind::Count {
                    return Ok(Accumulator::new(call, Domain::Int, DataType::Int64));
                }
                let domain = domain_of(field.data_type()).ok_or_else(|| {
                    ExecError::InvalidStream(format!(
                        "aggregate {} cannot take column {} of type {}",
                        call.name,
                        field.name(),
                        field.data_type()
                    ))
                })?;
                let output = match (kind, domain) {
                    (AggregateKind::Count, _) => DataType::Int64,
                    (AggregateKind::Avg, _) | (_, Domain::Float) => DataType::Float64,
                    (AggregateKind::Sum, Domain::Int) => DataType::Int64,
                    _ => field.data_type().clone(),
                };
                (domain, output)
            }
        };
        Ok(Accumulator::new(call, domain, output_type))
    }

    fn new(call: &AggregateCall, domain: Domain, output_type: DataType) -> Accumulator {
        Accumulator {
            kind: call.kind,
            input: call.input,
            domain,
            output_type,
            counts: Vec::new(),
            ints: Vec::new(),
            floats: Vec::new(),
        }
    }

    /// The same aggregate with no groups.
    pub(crate) fn empty_like(&self) -> Accumulator {
        Accumulator {
            counts: Vec::new(),
            ints: Vec::new(),
            floats: Vec::new(),
            output_type: self.output_type.clone(),
            ..*self
        }
    }

    /// Makes room for `groups` groups.
    pub(crate) fn resize(&mut self, groups: usize) {
        if self.counts.len() >= groups {
            return;
        }
        self.counts.resize(groups, 0);
        match (self.kind, self.domain) {
            (AggregateKind::CountRows | AggregateKind::Count, _) => {}
            (AggregateKind::Avg, _) | (_, Domain::Float) => self.floats.resize(groups, 0.0),
            (_, Domain::Int) => self.ints.resize(groups, 0),
        }
    }

    /// Folds row `i` of `batch` into group `group_ids[i]`, for every row.
    pub(crate) fn update(&mut self, batch: &RecordBatch, group_ids: &[usize]) -> Result<()> {
        let Some(input) = self.input.filter(|_| self.kind != AggregateKind::CountRows) else {
            for &group in group_ids {
                self.counts[group] += 1;
            }
            return Ok(());
        };
        let column = batch.column(input);
        if self.kind == AggregateKind::Count {
            for (row, &group) in group_ids.iter().enumerate() {
                self.counts[group] += i64::from(column.is_valid(row));
            }
            return Ok(());
        }
        match self.domain {
            Domain::Int => {
                let values = cast(column, &DataType::Int64).map_err(ExecError::arrow(OPERATOR))?;
                let values = values.as_primitive::<Int64Type>();
                for (row, &group) in group_ids.iter().enumerate() {
                    if values.is_valid(row) {
                        self.fold_int(group, values.value(row))?;
                    }
                }
            }
            Domain::Float => {
                let values =
                    cast(column, &DataType::Float64).map_err(ExecError::arrow(OPERATOR))?;
                let values = values.as_primitive::<Float64Type>();
                for (row, &group) in group_ids.iter().enumerate() {
                    if values.is_valid(row) {
                        self.fold_float(group, values.value(row));
                    }
                }
            }
        }
        Ok(())
    }

    fn fold_int(&mut self, group: usize, value: i64) -> Result<()> {
        let first = self.counts[group] == 0;
        self.counts[group] += 1;
        match self.kind {
            AggregateKind::CountRows | AggregateKind::Count => {}
            AggregateKind::Sum => {
                self.ints[group] = self.ints[group]
                    .checked_add(value)
                    .ok_or_else(|| ExecError::InvalidStream("SUM overflowed Int64".to_string()))?;
            }
            AggregateKind::Min if first || value < self.ints[group] => self.ints[group] = value,
            AggregateKind::Max if first || value > self.ints[group] => self.ints[group] = value,
            AggregateKind::Min | AggregateKind::Max => {}
            AggregateKind::Avg => self.floats[group] += value as f64,
        }
        Ok(())
    }

    fn fold_float(&mut self, group: usize, value: f64) {
        let first = self.counts[group] == 0;
        self.counts[group] += 1;
        match self.kind {
            AggregateKind::CountRows | AggregateKind::Count => {}
            AggregateKind::Sum | AggregateKind::Avg => self.floats[group] += value,
            AggregateKind::Min if first || value < self.floats[group] => self.floats[group] = value,
            AggregateKind::Max if first || value > self.floats[group] => self.floats[group] = value,
            AggregateKind::Min | AggregateKind::Max => {}
        }
    }

    /// Folds `other`'s group `from` into this one's group `into`.
    pub(crate) fn merge_group(
        &mut self,
        other: &Accumulator,
        from: usize,
        into: usize,
    ) -> Result<()> {
        let state = other.state_of(from);
        self.merge_state(into, state)
    }

    /// Folds group `from` into group `into` (both of this accumulator).
    pub(crate) fn merge_slots(&mut self, from: usize, into: usize) -> Result<()> {
        let state = self.state_of(from);
        self.merge_state(into, state)
    }

    fn state_of(&self, group: usize) -> (i64, i64, f64) {
        (
            self.counts[group],
            self.ints.get(group).copied().unwrap_or(0),
            self.floats.get(group).copied().unwrap_or(0.0),
        )
    }

    fn merge_state(&mut self, into: usize, (count, int, float): (i64, i64, f64)) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        match (self.kind, self.domain) {
            (AggregateKind::CountRows | AggregateKind::Count, _) => self.counts[into] += count,
            (AggregateKind::Avg, _) | (AggregateKind::Sum, Domain::Float) => {
                self.counts[into] += count;
                self.floats[into] += float;
            }
            (_, Domain::Float) => {
                self.fold_float(into, float);
                self.counts[into] += count - 1;
            }
            (_, Domain::Int) => {
                self.fold_int(into, int)?;
                self.counts[into] += count - 1;
            }
        }
        Ok(())
    }

    /// Forgets group `group`'s state (its slot is reused).
    pub(crate) fn reset(&mut self, group: usize) {
        self.counts[group] = 0;
        if let Some(value) = self.ints.get_mut(group) {
            *value = 0;
        }
        if let Some(value) = self.floats.get_mut(group) {
            *value = 0.0;
        }
    }

    /// The state of groups `groups` as three columns (checkpoints): non-null input counts,
    /// integer partials and floating-point partials.
    pub(crate) fn state_columns(&self, groups: &[usize]) -> [ArrayRef; 3] {
        let states: Vec<(i64, i64, f64)> =
            groups.iter().map(|&group| self.state_of(group)).collect();
        [
            Arc::new(Int64Array::from_iter_values(
                states.iter().map(|state| state.0),
            )),
            Arc::new(Int64Array::from_iter_values(
                states.iter().map(|state| state.1),
            )),
            Arc::new(Float64Array::from_iter_values(
                states.iter().map(|state| state.2),
            )),
        ]
    }

    /// Folds the states in `columns` (made by [`Accumulator::state_columns`]) into groups
    /// `groups`, row `i` into `groups[i]`.
    pub(crate) fn restore_states(&mut self, columns: &[ArrayRef], groups: &[usize]) -> Result<()> {
        let [counts, ints, floats] = columns else {
            return Err(ExecError::InvalidStream(
                "aggregate state needs three columns".to_string(),
            ));
        };
        let (Some(counts), Some(ints), Some(floats)) = (
            counts.as_primitive_opt::<Int64Type>(),
            ints.as_primitive_opt::<Int64Type>(),
            floats.as_primitive_opt::<Float64Type>(),
        ) else {
            return Err(ExecError::InvalidStream(
                "aggregate state columns have the wrong types".to_string(),
            ));
        };
        if let Some(&largest) = groups.iter().max() {
            self.resize(largest + 1);
        }
        for (row, &group) in groups.iter().enumerate() {
            self.merge_state(
                group,
                (counts.value(row), ints.value(row), floats.value(row)),
            )?;
        }
        Ok(())
    }

    /// The results of groups `groups`, in that order.
    pub(crate) fn finish(&self, groups: &[usize]) -> Result<ArrayRef> {
        let counted = |group: usize| self.counts[group] > 0;
        let array: ArrayRef = match (self.kind, self.domain) {
            (AggregateKind::CountRows | AggregateKind::Count, _) => Arc::new(
                Int64Array::from_iter_values(groups.iter().map(|&group| self.counts[group])),
            ),
            (AggregateKind::Avg, _) => {
                Arc::new(Float64Array::from_iter(groups.iter().map(|&group| {
                    counted(group).then(|| self.floats[group] / self.counts[group] as f64)
                })))
            }
            (_, Domain::Float) => Arc::new(Float64Array::from_iter(
                groups
                    .iter()
                    .map(|&group| counted(group).then(|| self.floats[group])),
            )),
            (_, Domain::Int) => Arc::new(Int64Array::from_iter(
                groups
                    .iter()
                    .map(|&group| counted(group).then(|| self.ints[group])),
            )),
        };
        if array.data_type() == &self.output_type {
            return Ok(array);
        }
        cast(&array, &self.output_type).map_err(ExecError::arrow(OPERATOR))
    }
}

fn domain_of(data_type: &DataType) -> Option<Domain> {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _)
        | DataType::Duration(_) => Some(Domain::Int),
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => Some(Domain::Float),
        _ => None,
    }
}
