//! Running aggregation per key over an endless stream: at every watermark, the keys whose
//! results changed since the last one are emitted with their current results (an upsert
//! stream: a key's latest row is its result so far). State is one row per key ever seen.

use std::collections::BTreeSet;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, SchemaRef};

use super::accumulator::{Accumulator, AggregateCall};
use super::group_index::{GroupIndex, KeyEncoder};
use super::operator::{StreamEvent, StreamOperator};
use super::snapshot;
use super::window_aggregate::{check_state_schema, keyed_output, state_schema};
use crate::error::{ExecError, Result};

const OPERATOR: &str = "running aggregate";

/// Aggregates rows per key since the stream began, emitting updated keys at each watermark.
pub struct RunningAggregate {
    schema: SchemaRef,
    state_schema: SchemaRef,
    keys: KeyEncoder,
    index: GroupIndex,
    accumulators: Vec<Accumulator>,
    changed: BTreeSet<usize>,
}

impl RunningAggregate {
    /// Aggregates `input`'s rows per `key_columns`. Output: the keys, then the aggregates.
    pub fn try_new(
        input: &SchemaRef,
        key_columns: &[usize],
        aggregates: &[AggregateCall],
    ) -> Result<RunningAggregate> {
        let (schema, accumulators) = keyed_output(Vec::new(), input, key_columns, aggregates)?;
        let keys = KeyEncoder::try_new(input, key_columns)?;
        let key_fields: Vec<Field> = schema.fields()[..key_columns.len()]
            .iter()
            .map(|field| field.as_ref().clone())
            .collect();
        Ok(RunningAggregate {
            state_schema: state_schema(Vec::new(), &key_fields, aggregates.len()),
            schema,
            index: keys.new_index(),
            keys,
            accumulators,
            changed: BTreeSet::new(),
        })
    }

    fn key_count(&self) -> usize {
        self.schema.fields().len() - self.accumulators.len()
    }
}

impl StreamOperator for RunningAggregate {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, _out: &mut Vec<StreamEvent>) -> Result<()> {
        let keys = self.keys.encode(&batch)?;
        let rows: Vec<usize> = (0..batch.num_rows()).collect();
        let mut group_ids = Vec::with_capacity(rows.len());
        self.index.intern(&keys, &rows, &mut group_ids)?;
        let groups = self.index.len();
        for accumulator in &mut self.accumulators {
            accumulator.resize(groups);
            accumulator.update(&batch, &group_ids)?;
        }
        self.changed.extend(group_ids);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        if !self.changed.is_empty() {
            let groups: Vec<usize> = std::mem::take(&mut self.changed).into_iter().collect();
            let mut columns = self.keys.key_columns(&self.index, &groups)?;
            for accumulator in &self.accumulators {
                columns.push(accumulator.finish(&groups)?);
            }
            let batch = RecordBatch::try_new(self.schema.clone(), columns)
                .map_err(ExecError::arrow(OPERATOR))?;
            out.push(StreamEvent::Batch(batch));
        }
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.index.len()
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        let groups: Vec<usize> = (0..self.index.len()).collect();
        let mut columns = self.keys.key_columns(&self.index, &groups)?;
        for accumulator in &self.accumulators {
            columns.extend(accumulator.state_columns(&groups));
        }
        let changed: Vec<i64> = self.changed.iter().map(|&group| group as i64).collect();
        let batch = RecordBatch::try_new(self.state_schema.clone(), columns)
            .map_err(ExecError::arrow(OPERATOR))?;
        snapshot::encode(&changed, &batch)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let (changed, batch) = snapshot::decode(state)?;
        check_state_schema(&batch, &self.state_schema, OPERATOR)?;
        let key_count = self.key_count();
        let rows = batch.num_rows();
        let keys = self
            .keys
            .encode_columns(&batch.columns()[..key_count], rows)?;
        self.index = self.keys.new_index();
        let mut group_ids = Vec::with_capacity(rows);
        self.index
            .intern(&keys, &(0..rows).collect::<Vec<_>>(), &mut group_ids)?;
        for (index, accumulator) in self.accumulators.iter_mut().enumerate() {
            *accumulator = accumulator.empty_like();
            let first = key_count + 3 * index;
            accumulator.restore_states(&batch.columns()[first..first + 3], &group_ids)?;
        }
        self.changed = changed.into_iter().map(|group| group as usize).collect();
        Ok(())
    }
}
