//! Aggregation per key that closes at a deadline carried by the rows (an auction's expiry):
//! a key's result is emitted once, when the watermark passes its deadline (the latest its
//! rows gave), and its state is dropped then. Rows for a key already closed are late.

use std::collections::BTreeMap;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, SchemaRef};
use hashbrown::HashMap;

use super::accumulator::{Accumulator, AggregateCall};
use super::group_index::{KeyEncoder, OwnedKey};
use super::operator::{StreamEvent, StreamOperator};
use super::snapshot;
use super::time::{event_times, time_array};
use super::window_aggregate::{check_state_schema, checked_time_field, keyed_output, state_schema};
use crate::error::{ExecError, Result};

const OPERATOR: &str = "deadline aggregate";

#[derive(Debug, Clone, Copy)]
struct Open {
    slot: usize,
    deadline: i64,
}

/// Aggregates rows per key until the key's deadline passes.
pub struct DeadlineAggregate {
    schema: SchemaRef,
    state_schema: SchemaRef,
    deadline_column: usize,
    keys: KeyEncoder,
    open: HashMap<OwnedKey, Open>,
    by_deadline: BTreeMap<i64, Vec<OwnedKey>>,
    accumulators: Vec<Accumulator>,
    free_slots: Vec<usize>,
    slots: usize,
    watermark: i64,
    late_rows: u64,
}

impl DeadlineAggregate {
    /// Aggregates `input`'s rows per `key_columns`, each key closing when the watermark passes
    /// the largest value its rows had in `deadline_column`. Output: the keys, then the
    /// aggregates.
    pub fn try_new(
        input: &SchemaRef,
        key_columns: &[usize],
        deadline_column: usize,
        aggregates: &[AggregateCall],
    ) -> Result<DeadlineAggregate> {
        checked_time_field(input, deadline_column)?;
        let (schema, accumulators) = keyed_output(Vec::new(), input, key_columns, aggregates)?;
        let key_fields: Vec<Field> = schema.fields()[..key_columns.len()]
            .iter()
            .map(|field| field.as_ref().clone())
            .collect();
        let deadline = Field::new("deadline", DataType::Int64, false);
        let state_schema = state_schema(vec![deadline], &key_fields, aggregates.len());
        Ok(DeadlineAggregate {
            schema,
            state_schema,
            deadline_column,
            keys: KeyEncoder::try_new(input, key_columns)?,
            open: HashMap::new(),
            by_deadline: BTreeMap::new(),
            accumulators,
            free_slots: Vec::new(),
            slots: 0,
            watermark: i64::MIN,
            late_rows: 0,
        })
    }

    fn slot_for(&mut self, key: OwnedKey, deadline: i64) -> usize {
        if let Some(open) = self.open.get_mut(&key) {
            if deadline > open.deadline {
                open.deadline = deadline;
                self.by_deadline.entry(deadline).or_default().push(key);
            }
            return open.slot;
        }
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots += 1;
            for accumulator in &mut self.accumulators {
                accumulator.resize(self.slots);
            }
            self.slots - 1
        });
        self.by_deadline
            .entry(deadline)
            .or_default()
            .push(key.clone());
        self.open.insert(key, Open { slot, deadline });
        slot
    }

    /// The closed keys' rows: keys, then aggregates.
    fn output(&self, closed: &[(OwnedKey, Open)]) -> Result<RecordBatch> {
        let keys: Vec<OwnedKey> = closed.iter().map(|(key, _)| key.clone()).collect();
        let slots: Vec<usize> = closed.iter().map(|(_, open)| open.slot).collect();
        let mut columns: Vec<ArrayRef> = self.keys.columns_of(&keys)?;
        for accumulator in &self.accumulators {
            columns.push(accumulator.finish(&slots)?);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(ExecError::arrow(OPERATOR))
    }
}

impl StreamOperator for DeadlineAggregate {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let deadlines = event_times(batch.column(self.deadline_column), "deadline")?.to_vec();
        let keys = self.keys.encode(&batch)?;
        let mut slots = Vec::with_capacity(deadlines.len());
        let mut on_time = Vec::with_capacity(deadlines.len());
        for (row, &deadline) in deadlines.iter().enumerate() {
            let key = self.keys.owned_key(&keys, row);
            let late = deadline < self.watermark && !self.open.contains_key(&key);
            on_time.push(!late);
            if late {
                self.late_rows += 1;
                continue;
            }
            slots.push(self.slot_for(key, deadline));
        }
        let rows = if on_time.iter().all(|&keep| keep) {
            batch
        } else {
            filter_record_batch(&batch, &BooleanArray::from(on_time))
                .map_err(ExecError::arrow(OPERATOR))?
        };
        for accumulator in &mut self.accumulators {
            accumulator.update(&rows, &slots)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        let open_after = self.by_deadline.split_off(&self.watermark);
        let due = std::mem::replace(&mut self.by_deadline, open_after);
        let mut closed = Vec::new();
        for key in due.into_values().flatten() {
            if let Some(&open) = self.open.get(&key)
                && open.deadline < self.watermark
            {
                self.open.remove(&key);
                closed.push((key, open));
            }
        }
        if !closed.is_empty() {
            out.push(StreamEvent::Batch(self.output(&closed)?));
            for (_, open) in closed {
                for accumulator in &mut self.accumulators {
                    accumulator.reset(open.slot);
                }
                self.free_slots.push(open.slot);
            }
        }
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.open.len()
    }

    fn late_rows(&self) -> u64 {
        self.late_rows
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        let open: Vec<(OwnedKey, Open)> = self
            .open
            .iter()
            .map(|(key, open)| (key.clone(), *open))
            .collect();
        let keys: Vec<OwnedKey> = open.iter().map(|(key, _)| key.clone()).collect();
        let slots: Vec<usize> = open.iter().map(|(_, open)| open.slot).collect();
        let mut columns = vec![time_array(
            open.iter().map(|(_, open)| open.deadline).collect(),
            &DataType::Int64,
        )];
        columns.extend(self.keys.columns_of(&keys)?);
        for accumulator in &self.accumulators {
            columns.extend(accumulator.state_columns(&slots));
        }
        let batch = RecordBatch::try_new(self.state_schema.clone(), columns)
            .map_err(ExecError::arrow(OPERATOR))?;
        snapshot::encode(&[self.watermark, self.late_rows as i64], &batch)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let (header, batch) = snapshot::decode(state)?;
        check_state_schema(&batch, &self.state_schema, OPERATOR)?;
        self.watermark = snapshot::header_value(&header, 0, OPERATOR)?;
        self.late_rows = snapshot::header_value(&header, 1, OPERATOR)? as u64;
        self.open.clear();
        self.by_deadline.clear();
        self.free_slots.clear();
        self.slots = 0;
        for accumulator in &mut self.accumulators {
            *accumulator = accumulator.empty_like();
        }
        let rows = batch.num_rows();
        let deadlines = event_times(batch.column(0), "deadline")?.to_vec();
        let key_count = self.schema.fields().len() - self.accumulators.len();
        let keys = self
            .keys
            .encode_columns(&batch.columns()[1..1 + key_count], rows)?;
        let mut slots = Vec::with_capacity(rows);
        for (row, &deadline) in deadlines.iter().enumerate() {
            slots.push(self.slot_for(self.keys.owned_key(&keys, row), deadline));
        }
        for (index, accumulator) in self.accumulators.iter_mut().enumerate() {
            let first = 1 + key_count + 3 * index;
            accumulator.restore_states(&batch.columns()[first..first + 3], &slots)?;
        }
        Ok(())
    }
}
