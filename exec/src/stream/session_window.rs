//! Session windows: per key, rows less than a gap apart share a window that runs from its first
//! row's time to its last row's time plus the gap. A row that bridges two sessions merges them.
//! A session is emitted once the watermark passes its end (plus the allowed lateness) and its
//! state is dropped then.

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use hashbrown::HashMap;

use super::accumulator::{Accumulator, AggregateCall};
use super::group_index::{KeyEncoder, OwnedKey};
use super::operator::{LateRows, StreamEvent, StreamOperator};
use super::snapshot;
use super::time::{event_times, time_array};
use super::window_aggregate::{
    check_state_schema, checked_time_field, state_schema, window_key_fields, window_output,
};
use crate::error::{ExecError, Result};

const OPERATOR: &str = "session window";

#[derive(Debug, Clone, Copy)]
struct Session {
    start: i64,
    /// The last row's time plus the gap.
    end: i64,
    /// The session's slot in the accumulators.
    slot: usize,
}

/// Aggregates keyed rows per session window.
pub struct SessionWindowAggregate {
    schema: SchemaRef,
    state_schema: SchemaRef,
    time_column: usize,
    time_name: String,
    gap: i64,
    allowed_lateness: i64,
    keys: KeyEncoder,
    sessions: HashMap<OwnedKey, Vec<Session>, ahash::RandomState>,
    accumulators: Vec<Accumulator>,
    free_slots: Vec<usize>,
    slots: usize,
    open_sessions: usize,
    /// The earliest end of an open session (none when there is none).
    earliest_end: Option<i64>,
    emitted_through: i64,
    late: LateRows,
}

impl SessionWindowAggregate {
    /// Aggregates `input`'s rows per key of `key_columns` and session of event-time column
    /// `time_column` with gap `gap`. Output columns: `window_start`, `window_end`, the keys,
    /// then one column per aggregate.
    pub fn try_new(
        input: &SchemaRef,
        time_column: usize,
        key_columns: &[usize],
        gap: i64,
        aggregates: &[AggregateCall],
        allowed_lateness: i64,
    ) -> Result<SessionWindowAggregate> {
        if gap <= 0 {
            return Err(ExecError::InvalidStream(format!(
                "a session gap must be above 0, got {gap}"
            )));
        }
        let time_field = checked_time_field(input, time_column)?;
        let (schema, accumulators) = window_output(input, time_field, key_columns, aggregates)?;
        let bounds = vec![
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
        ];
        Ok(SessionWindowAggregate {
            state_schema: state_schema(
                bounds,
                &window_key_fields(&schema, aggregates.len()),
                aggregates.len(),
            ),
            schema,
            time_column,
            time_name: time_field.name().clone(),
            gap,
            allowed_lateness: allowed_lateness.max(0),
            keys: KeyEncoder::try_new(input, key_columns)?,
            sessions: HashMap::default(),
            accumulators,
            free_slots: Vec::new(),
            slots: 0,
            open_sessions: 0,
            earliest_end: None,
            emitted_through: i64::MIN,
            late: LateRows::default(),
        })
    }

    fn new_slot(&mut self) -> usize {
        if let Some(slot) = self.free_slots.pop() {
            return slot;
        }
        self.slots += 1;
        for accumulator in &mut self.accumulators {
            accumulator.resize(self.slots);
        }
        self.slots - 1
    }

    /// The slot of the session row time `time` of key `key` falls in, after merging the
    /// sessions it bridges; merged-away slots are recorded in `forward` and `released`.
    fn place(
        &mut self,
        key: OwnedKey,
        time: i64,
        forward: &mut HashMap<usize, usize>,
        released: &mut Vec<usize>,
    ) -> Result<usize> {
        let end = time.saturating_add(self.gap);
        let sessions = self.sessions.remove(&key).unwrap_or_default();
        let (overlapping, mut others): (Vec<Session>, Vec<Session>) = sessions
            .into_iter()
            .partition(|session| session.start < end && time < session.end);
        let session = match overlapping.split_first() {
            None => {
                self.open_sessions += 1;
                Session {
                    start: time,
                    end,
                    slot: self.new_slot(),
                }
            }
            Some((first, rest)) => {
                let mut merged = Session {
                    start: first.start.min(time),
                    end: first.end.max(end),
                    slot: first.slot,
                };
                for other in rest {
                    merged.start = merged.start.min(other.start);
                    merged.end = merged.end.max(other.end);
                    for accumulator in &mut self.accumulators {
                        accumulator.merge_slots(other.slot, merged.slot)?;
                        accumulator.reset(other.slot);
                    }
                    forward.insert(other.slot, merged.slot);
                    released.push(other.slot);
                    self.open_sessions -= 1;
                }
                merged
            }
        };
        self.earliest_end = Some(
            self.earliest_end
                .map_or(session.end, |e| e.min(session.end)),
        );
        let slot = session.slot;
        others.push(session);
        others.sort_by_key(|session| session.start);
        self.sessions.insert(key, others);
        Ok(slot)
    }
}

impl StreamOperator for SessionWindowAggregate {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, _out: &mut Vec<StreamEvent>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = event_times(batch.column(self.time_column), &self.time_name)?.to_vec();
        let keys = self.keys.encode(&batch)?;
        let mut forward = HashMap::new();
        let mut released = Vec::new();
        let mut slots = Vec::with_capacity(times.len());
        let mut on_time = Vec::with_capacity(times.len());
        let mut late_rows = Vec::new();
        for (row, &time) in times.iter().enumerate() {
            let late = time
                .saturating_add(self.gap)
                .saturating_add(self.allowed_lateness)
                <= self.emitted_through;
            on_time.push(!late);
            if late {
                late_rows.push(row);
                continue;
            }
            let key = self.keys.owned_key(&keys, row);
            slots.push(self.place(key, time, &mut forward, &mut released)?);
        }
        for slot in &mut slots {
            while let Some(&next) = forward.get(slot) {
                *slot = next;
            }
        }
        self.late.add(&batch, &late_rows)?;
        let rows = if on_time.iter().all(|&keep| keep) {
            batch
        } else {
            filter_record_batch(&batch, &BooleanArray::from(on_time))
                .map_err(ExecError::arrow(OPERATOR))?
        };
        for accumulator in &mut self.accumulators {
            accumulator.update(&rows, &slots)?;
        }
        self.free_slots.extend(released);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        let through = watermark.saturating_sub(self.allowed_lateness);
        self.emitted_through = self.emitted_through.max(through);
        if self.earliest_end.is_some_and(|end| end <= through) {
            let mut closed: Vec<(Session, OwnedKey)> = Vec::new();
            let mut earliest_end = None;
            self.sessions.retain(|key, sessions| {
                sessions.retain(|session| {
                    if session.end <= through {
                        closed.push((*session, key.clone()));
                        return false;
                    }
                    earliest_end =
                        Some(earliest_end.map_or(session.end, |e: i64| e.min(session.end)));
                    true
                });
                !sessions.is_empty()
            });
            self.earliest_end = earliest_end;
            closed.sort_by_key(|(session, _)| (session.end, session.start));
            if let Some(batch) = self.closed_batch(&closed)? {
                out.push(StreamEvent::Batch(batch));
            }
            for (session, _) in &closed {
                for accumulator in &mut self.accumulators {
                    accumulator.reset(session.slot);
                }
                self.free_slots.push(session.slot);
            }
            self.open_sessions -= closed.len();
        }
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.open_sessions
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
        let mut open: Vec<(Session, OwnedKey)> = self
            .sessions
            .iter()
            .flat_map(|(key, sessions)| sessions.iter().map(|session| (*session, key.clone())))
            .collect();
        open.sort_by_key(|(session, _)| (session.end, session.start));
        let starts = open.iter().map(|(session, _)| session.start).collect();
        let ends = open.iter().map(|(session, _)| session.end).collect();
        let mut columns = vec![
            time_array(starts, &DataType::Int64),
            time_array(ends, &DataType::Int64),
        ];
        let keys: Vec<OwnedKey> = open.iter().map(|(_, key)| key.clone()).collect();
        columns.extend(self.keys.columns_of(&keys)?);
        let slots: Vec<usize> = open.iter().map(|(session, _)| session.slot).collect();
        for accumulator in &self.accumulators {
            columns.extend(accumulator.state_columns(&slots));
        }
        let batch = RecordBatch::try_new(self.state_schema.clone(), columns)
            .map_err(ExecError::arrow(OPERATOR))?;
        snapshot::encode(&[self.emitted_through, self.late.count() as i64], &batch)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let (header, batch) = snapshot::decode(state)?;
        check_state_schema(&batch, &self.state_schema, OPERATOR)?;
        self.emitted_through = snapshot::header_value(&header, 0, OPERATOR)?;
        self.late
            .set_count(snapshot::header_value(&header, 1, OPERATOR)? as u64);
        self.sessions.clear();
        self.free_slots.clear();
        self.slots = 0;
        self.open_sessions = 0;
        self.earliest_end = None;
        for accumulator in &mut self.accumulators {
            *accumulator = accumulator.empty_like();
        }
        let rows = batch.num_rows();
        let starts = event_times(batch.column(0), "start")?;
        let ends = event_times(batch.column(1), "end")?;
        let key_count = self.state_schema.fields().len() - 2 - 3 * self.accumulators.len();
        let keys = self
            .keys
            .encode_columns(&batch.columns()[2..2 + key_count], rows)?;
        let slots: Vec<usize> = (0..rows).map(|_| self.new_slot()).collect();
        for (index, accumulator) in self.accumulators.iter_mut().enumerate() {
            let first = 2 + key_count + 3 * index;
            accumulator.restore_states(&batch.columns()[first..first + 3], &slots)?;
        }
        for row in 0..rows {
            let session = Session {
                start: starts[row],
                end: ends[row],
                slot: slots[row],
            };
            self.earliest_end = Some(
                self.earliest_end
                    .map_or(session.end, |end| end.min(session.end)),
            );
            self.open_sessions += 1;
            let key = self.keys.owned_key(&keys, row);
            let sessions = self.sessions.entry(key).or_default();
            sessions.push(session);
            sessions.sort_by_key(|session| session.start);
        }
        Ok(())
    }
}

impl SessionWindowAggregate {
    fn closed_batch(&self, closed: &[(Session, OwnedKey)]) -> Result<Option<RecordBatch>> {
        if closed.is_empty() {
            return Ok(None);
        }
        let time_type = self.schema.field(0).data_type();
        let starts = closed.iter().map(|(session, _)| session.start).collect();
        let ends = closed.iter().map(|(session, _)| session.end).collect();
        let mut columns: Vec<ArrayRef> =
            vec![time_array(starts, time_type), time_array(ends, time_type)];
        let keys: Vec<OwnedKey> = closed.iter().map(|(_, key)| key.clone()).collect();
        columns.extend(self.keys.columns_of(&keys)?);
        let slots: Vec<usize> = closed.iter().map(|(session, _)| session.slot).collect();
        for accumulator in &self.accumulators {
            columns.push(accumulator.finish(&slots)?);
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(ExecError::arrow(OPERATOR))
    }
}
