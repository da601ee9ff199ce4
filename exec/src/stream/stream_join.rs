//! Joins of two streams: symmetric hash joins. Each side keeps its rows by key; a row that
//! arrives is matched against the other side's kept rows at once (inner joins over
//! append-only streams produce final rows), then kept itself until the watermark shows it can
//! match nothing more: at its window's end (window joins), past its interval (interval joins),
//! or after a time-to-live (unbounded joins, which otherwise keep every row). An index of
//! rows by expiry time makes dropping them as cheap as keeping them.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::interleave;
use arrow::datatypes::{Field, Schema, SchemaRef};

use super::group_index::{EncodedKeys, KeyEncoder, OwnedKey};
use super::operator::StreamEvent;
use super::snapshot;
use super::time::event_times;
use super::window_aggregate::checked_time_field;
use crate::error::{ExecError, Result};

const OPERATOR: &str = "stream join";

/// One input of a two-input operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinSide {
    Left,
    Right,
}

impl JoinSide {
    fn index(self) -> usize {
        match self {
            JoinSide::Left => 0,
            JoinSide::Right => 1,
        }
    }
}

/// A streaming operator with two inputs.
pub trait BinaryStreamOperator: Send {
    /// The schema of the batches it pushes out.
    fn schema(&self) -> SchemaRef;

    /// Takes a batch from one input; pushes what it produces onto `out`.
    fn on_batch(
        &mut self,
        side: JoinSide,
        batch: RecordBatch,
        out: &mut Vec<StreamEvent>,
    ) -> Result<()>;

    /// Takes the watermark of both inputs together (the smaller of theirs).
    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()>;

    /// Rows of state it holds.
    fn state_rows(&self) -> usize;

    /// Rows that arrived too late to match anything.
    fn late_rows(&self) -> u64;

    /// Its state at a checkpoint.
    fn snapshot(&self) -> Result<Vec<u8>>;

    /// Takes back a state `snapshot` gave.
    fn restore(&mut self, state: &[u8]) -> Result<()>;
}

/// Which rows of the two sides match besides their keys, and how long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamJoinKind {
    /// Rows match on their keys alone, and are kept forever; with `ttl`, rows match only when
    /// their event times (columns `left_time`, `right_time`) are at most `ttl` apart, and are
    /// dropped once the watermark passes their time plus `ttl`.
    Unbounded {
        left_time: usize,
        right_time: usize,
        ttl: Option<i64>,
    },
    /// Both sides carry window bounds (`(start, end)` columns, as window aggregates emit
    /// them); rows match within the same window and are dropped when it ends.
    SameWindow {
        left: (usize, usize),
        right: (usize, usize),
    },
    /// A right row at time `right_time` matches the left rows with
    /// `left_start + lower <= time <= left_end + upper` (Flink's interval join when both
    /// columns are the left's event time; an auction's lifetime when they are its start and
    /// expiry). `left_start` must never be earlier than the left row's event time, so right
    /// rows older than the watermark plus `lower` are dropped; left rows are dropped once the
    /// watermark passes their end plus `upper`.
    Interval {
        left_start: usize,
        left_end: usize,
        right_time: usize,
        lower: i64,
        upper: i64,
    },
}

/// Where a kept row is: (batch, row) of its side.
type RowRef = (u32, u32);

#[derive(Default)]
struct SideState {
    batches: Vec<Option<RecordBatch>>,
    live_per_batch: Vec<usize>,
    by_key: HashMap<OwnedKey, Vec<RowRef>>,
    by_expiry: BTreeMap<i64, Vec<(OwnedKey, RowRef)>>,
    live: usize,
}

/// A symmetric hash join of two streams (inner).
pub struct StreamJoin {
    schema: SchemaRef,
    inputs: [SchemaRef; 2],
    kind: StreamJoinKind,
    keys: [Vec<usize>; 2],
    encoder: KeyEncoder,
    sides: [SideState; 2],
    watermark: i64,
    late_rows: u64,
}

impl StreamJoin {
    /// Joins `left` and `right` rows whose `left_keys` equal their `right_keys` (null keys
    /// match nothing), under `kind`. Output: the left columns, then the right ones (a right
    /// column named like a left one gets the suffix `_right`).
    pub fn try_new(
        left: &SchemaRef,
        right: &SchemaRef,
        left_keys: &[usize],
        right_keys: &[usize],
        kind: StreamJoinKind,
    ) -> Result<StreamJoin> {
        let (left_window, right_window) = match kind {
            StreamJoinKind::SameWindow { left: l, right: r } => (Some(l.0), Some(r.0)),
            _ => (None, None),
        };
        let left_all: Vec<usize> = left_window
            .into_iter()
            .chain(left_keys.iter().copied())
            .collect();
        let right_all: Vec<usize> = right_window
            .into_iter()
            .chain(right_keys.iter().copied())
            .collect();
        let encoder = join_key_encoder(left, right, &left_all, &right_all)?;
        match kind {
            StreamJoinKind::Unbounded {
                left_time,
                right_time,
                ..
            } => {
                checked_time_field(left, left_time)?;
                checked_time_field(right, right_time)?;
            }
            StreamJoinKind::SameWindow { left: l, right: r } => {
                for (schema, column) in [(left, l.0), (left, l.1), (right, r.0), (right, r.1)] {
                    checked_time_field(schema, column)?;
                }
            }
            StreamJoinKind::Interval {
                left_start,
                left_end,
                right_time,
                ..
            } => {
                checked_time_field(left, left_start)?;
                checked_time_field(left, left_end)?;
                checked_time_field(right, right_time)?;
            }
        }
        Ok(StreamJoin {
            schema: joined_schema(left, right),
            inputs: [left.clone(), right.clone()],
            kind,
            keys: [left_all, right_all],
            encoder,
            sides: [SideState::default(), SideState::default()],
            watermark: i64::MIN,
            late_rows: 0,
        })
    }

    /// Each row's expiry (it is dropped once the watermark reaches it) and, for interval
    /// joins, the times its match is decided on.
    fn expiries(&self, side: JoinSide, batch: &RecordBatch) -> Result<Vec<i64>> {
        let times =
            |column: usize| event_times(batch.column(column), "join time").map(<[i64]>::to_vec);
        Ok(match (self.kind, side) {
            (StreamJoinKind::Unbounded { ttl: None, .. }, _) => vec![i64::MAX; batch.num_rows()],
            (
                StreamJoinKind::Unbounded {
                    left_time,
                    right_time,
                    ttl: Some(ttl),
                },
                side,
            ) => {
                let column = if side == JoinSide::Left {
                    left_time
                } else {
                    right_time
                };
                times(column)?
                    .into_iter()
                    .map(|time| time.saturating_add(ttl).saturating_add(1))
                    .collect()
            }
            (StreamJoinKind::SameWindow { left, right }, side) => {
                times(if side == JoinSide::Left {
                    left.1
                } else {
                    right.1
                })?
            }
            (
                StreamJoinKind::Interval {
                    left_end, upper, ..
                },
                JoinSide::Left,
            ) => times(left_end)?
                .into_iter()
                .map(|end| end.saturating_add(upper).saturating_add(1))
                .collect(),
            (
                StreamJoinKind::Interval {
                    right_time, lower, ..
                },
                JoinSide::Right,
            ) => times(right_time)?
                .into_iter()
                .map(|time| time.saturating_sub(lower).saturating_add(1))
                .collect(),
        })
    }

    fn keys_of(&self, side: JoinSide, batch: &RecordBatch) -> Result<(EncodedKeys, Vec<bool>)> {
        let columns: Vec<ArrayRef> = self.keys[side.index()]
            .iter()
            .map(|&index| batch.column(index).clone())
            .collect();
        let usable = (0..batch.num_rows())
            .map(|row| columns.iter().all(|column| column.is_valid(row)))
            .collect();
        Ok((
            self.encoder.encode_columns(&columns, batch.num_rows())?,
            usable,
        ))
    }

    /// Whether left row `left` and right row `right` (with equal keys) match.
    fn matches(&self, left: (&RecordBatch, usize), right: (&RecordBatch, usize)) -> Result<bool> {
        let time_of = |(batch, row): (&RecordBatch, usize), column: usize| -> Result<i64> {
            Ok(event_times(batch.column(column), "join time")?[row])
        };
        match self.kind {
            StreamJoinKind::Interval {
                left_start,
                left_end,
                right_time,
                lower,
                upper,
            } => {
                let time = time_of(right, right_time)?;
                Ok(time_of(left, left_start)?.saturating_add(lower) <= time
                    && time <= time_of(left, left_end)?.saturating_add(upper))
            }
            StreamJoinKind::Unbounded {
                left_time,
                right_time,
                ttl: Some(ttl),
            } => {
                let apart = time_of(left, left_time)?.abs_diff(time_of(right, right_time)?);
                Ok(apart <= ttl.unsigned_abs())
            }
            StreamJoinKind::Unbounded { ttl: None, .. } | StreamJoinKind::SameWindow { .. } => {
                Ok(true)
            }
        }
    }

    fn insert(
        &mut self,
        side: JoinSide,
        batch: RecordBatch,
        keys: &EncodedKeys,
        usable: &[bool],
        expiries: &[i64],
    ) -> u32 {
        let state = &mut self.sides[side.index()];
        let batch_index = state.batches.len() as u32;
        let mut live = 0;
        for row in 0..batch.num_rows() {
            if !usable[row] || expiries[row] <= self.watermark {
                continue;
            }
            let key = self.encoder.owned_key(keys, row);
            let reference = (batch_index, row as u32);
            state.by_key.entry(key.clone()).or_default().push(reference);
            state
                .by_expiry
                .entry(expiries[row])
                .or_default()
                .push((key, reference));
            live += 1;
        }
        state.live += live;
        state.live_per_batch.push(live);
        state.batches.push((live > 0).then_some(batch));
        batch_index
    }

    fn expire(&mut self) {
        for state in &mut self.sides {
            let kept = state.by_expiry.split_off(&self.watermark.saturating_add(1));
            let expired = std::mem::replace(&mut state.by_expiry, kept);
            for (key, reference) in expired.into_values().flatten() {
                if let Some(rows) = state.by_key.get_mut(&key) {
                    rows.retain(|&other| other != reference);
                    if rows.is_empty() {
                        state.by_key.remove(&key);
                    }
                }
                let batch = reference.0 as usize;
                state.live -= 1;
                state.live_per_batch[batch] -= 1;
                if state.live_per_batch[batch] == 0 {
                    state.batches[batch] = None;
                }
            }
        }
    }

    /// The kept rows of one side as one batch.
    fn kept_rows(&self, side: JoinSide) -> Result<RecordBatch> {
        let state = &self.sides[side.index()];
        let mut references: Vec<RowRef> = state.by_key.values().flatten().copied().collect();
        references.sort_unstable();
        gather(
            &self.inputs[side.index()],
            &state.batches,
            None,
            &references,
        )
    }
}

impl JoinSide {
    fn other(self) -> JoinSide {
        match self {
            JoinSide::Left => JoinSide::Right,
            JoinSide::Right => JoinSide::Left,
        }
    }
}

impl BinaryStreamOperator for StreamJoin {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(
        &mut self,
        side: JoinSide,
        batch: RecordBatch,
        out: &mut Vec<StreamEvent>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (keys, usable) = self.keys_of(side, &batch)?;
        let expiries = self.expiries(side, &batch)?;
        let incoming = self.sides[side.index()].batches.len() as u32;
        let other = &self.sides[side.other().index()];
        // (left row, right row) of each match.
        let mut pairs: Vec<(RowRef, RowRef)> = Vec::new();
        for row in 0..batch.num_rows() {
            if !usable[row] {
                continue;
            }
            if expiries[row] <= self.watermark {
                self.late_rows += 1;
                continue;
            }
            let key = self.encoder.owned_key(&keys, row);
            let Some(candidates) = other.by_key.get(&key) else {
                continue;
            };
            let this = (incoming, row as u32);
            for &candidate in candidates {
                let Some(kept) = other.batches[candidate.0 as usize].as_ref() else {
                    continue;
                };
                let (left, right) = match side {
                    JoinSide::Left => (
                        ((&batch, row), this),
                        ((kept, candidate.1 as usize), candidate),
                    ),
                    JoinSide::Right => (
                        ((kept, candidate.1 as usize), candidate),
                        ((&batch, row), this),
                    ),
                };
                if self.matches(left.0, right.0)? {
                    pairs.push((left.1, right.1));
                }
            }
        }
        if !pairs.is_empty() {
            let (left_extra, right_extra) = match side {
                JoinSide::Left => (Some(&batch), None),
                JoinSide::Right => (None, Some(&batch)),
            };
            let left_rows: Vec<RowRef> = pairs.iter().map(|pair| pair.0).collect();
            let right_rows: Vec<RowRef> = pairs.iter().map(|pair| pair.1).collect();
            let left = gather(
                &self.inputs[0],
                &self.sides[0].batches,
                left_extra,
                &left_rows,
            )?;
            let right = gather(
                &self.inputs[1],
                &self.sides[1].batches,
                right_extra,
                &right_rows,
            )?;
            let mut columns = left.columns().to_vec();
            columns.extend(right.columns().iter().cloned());
            let joined = RecordBatch::try_new(self.schema.clone(), columns)
                .map_err(ExecError::arrow(OPERATOR))?;
            out.push(StreamEvent::Batch(joined));
        }
        self.insert(side, batch, &keys, &usable, &expiries);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Vec<StreamEvent>) -> Result<()> {
        if watermark > self.watermark {
            self.watermark = watermark;
            self.expire();
        }
        out.push(StreamEvent::Watermark(watermark));
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.sides.iter().map(|side| side.live).sum()
    }

    fn late_rows(&self) -> u64 {
        self.late_rows
    }

    fn snapshot(&self) -> Result<Vec<u8>> {
        let batches = [
            self.kept_rows(JoinSide::Left)?,
            self.kept_rows(JoinSide::Right)?,
        ];
        snapshot::encode_all(&[self.watermark, self.late_rows as i64], &batches)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let (header, batches) = snapshot::decode_all(state)?;
        let [left, right] = <[RecordBatch; 2]>::try_from(batches).map_err(|_| {
            ExecError::InvalidStream("the checkpoint's join state needs two sides".to_string())
        })?;
        self.watermark = snapshot::header_value(&header, 0, OPERATOR)?;
        self.late_rows = snapshot::header_value(&header, 1, OPERATOR)? as u64;
        self.sides = [SideState::default(), SideState::default()];
        for (side, batch) in [(JoinSide::Left, left), (JoinSide::Right, right)] {
            if batch.schema().fields() != self.inputs[side.index()].fields() {
                return Err(ExecError::InvalidStream(
                    "the checkpoint's join state has other columns; was the query changed?"
                        .to_string(),
                ));
            }
            let (keys, usable) = self.keys_of(side, &batch)?;
            let expiries = self.expiries(side, &batch)?;
            self.insert(side, batch, &keys, &usable, &expiries);
        }
        Ok(())
    }
}

/// One key encoder for both sides of a join on `left_keys` = `right_keys` (same types; any
/// key may be null, so both sides pack alike).
pub(crate) fn join_key_encoder(
    left: &Schema,
    right: &Schema,
    left_keys: &[usize],
    right_keys: &[usize],
) -> Result<KeyEncoder> {
    if left_keys.len() != right_keys.len() {
        return Err(ExecError::InvalidStream(format!(
            "a join needs as many left keys as right keys, got {} and {}",
            left_keys.len(),
            right_keys.len()
        )));
    }
    let mut key_fields = Vec::new();
    for (&l, &r) in left_keys.iter().zip(right_keys) {
        let (Some(left_field), Some(right_field)) = (left.fields().get(l), right.fields().get(r))
        else {
            return Err(ExecError::InvalidStream(format!(
                "join key columns {l} and {r} are not both in their inputs"
            )));
        };
        if left_field.data_type() != right_field.data_type() {
            return Err(ExecError::InvalidStream(format!(
                "join keys {} ({}) and {} ({}) have different types",
                left_field.name(),
                left_field.data_type(),
                right_field.name(),
                right_field.data_type()
            )));
        }
        key_fields.push(Field::new(
            format!("key_{}", key_fields.len()),
            left_field.data_type().clone(),
            true,
        ));
    }
    let key_columns: Vec<usize> = (0..key_fields.len()).collect();
    KeyEncoder::try_new(&Schema::new(key_fields), &key_columns)
}

/// The left columns, then the right ones; a right column named like a left one gets the
/// suffix `_right`.
pub(crate) fn joined_schema(left: &Schema, right: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = left
        .fields()
        .iter()
        .map(|field| field.as_ref().clone())
        .collect();
    for field in right.fields() {
        let taken = fields
            .iter()
            .any(|existing| existing.name() == field.name());
        let name = if taken {
            format!("{}_right", field.name())
        } else {
            field.name().clone()
        };
        fields.push(field.as_ref().clone().with_name(name));
    }
    Arc::new(Schema::new(fields))
}

/// Rows `references` of `batches`, where index `batches.len()` is `extra`, as one batch.
fn gather(
    schema: &SchemaRef,
    batches: &[Option<RecordBatch>],
    extra: Option<&RecordBatch>,
    references: &[RowRef],
) -> Result<RecordBatch> {
    if references.is_empty() {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    // Only the batches referenced take part, renumbered in order of first reference.
    let mut slots: HashMap<u32, usize> = HashMap::new();
    let mut sources: Vec<&RecordBatch> = Vec::new();
    let mut indices = Vec::with_capacity(references.len());
    for &(batch, row) in references {
        let slot = match slots.get(&batch) {
            Some(&slot) => slot,
            None => {
                let source = match batches.get(batch as usize) {
                    Some(Some(kept)) => kept,
                    None if batch as usize == batches.len() => extra.ok_or_else(missing_batch)?,
                    _ => return Err(missing_batch()),
                };
                sources.push(source);
                slots.insert(batch, sources.len() - 1);
                sources.len() - 1
            }
        };
        indices.push((slot, row as usize));
    }
    let columns = (0..schema.fields().len())
        .map(|column| {
            let arrays: Vec<&dyn Array> = sources
                .iter()
                .map(|batch| batch.column(column).as_ref())
                .collect();
            interleave(&arrays, &indices)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(ExecError::arrow(OPERATOR))?;
    RecordBatch::try_new(schema.clone(), columns).map_err(ExecError::arrow(OPERATOR))
}

fn missing_batch() -> ExecError {
    ExecError::Internal {
        operator: OPERATOR,
        message: "a joined row's batch is no longer kept".to_string(),
    }
}
