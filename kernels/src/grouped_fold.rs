//! Running per-group aggregates over group ids, fed one batch at a time: SUM, MIN and MAX of a
//! primitive column ([`GroupedFold`]; integers, floats, dates and decimals), COUNT
//! ([`GroupedCount`]), and the sums and counts AVG divides ([`GroupedMean`], a group's sum and
//! count side by side, so a row touches one cache line where two columns would each take a miss
//! once the groups outgrow the cache: TPC-H Q17 averages over 200K parts). A group with no
//! non-null value yet has a null result. While no batch has had a null (or added groups without
//! rows), nothing tracks which groups have values (every group was made by a row that had one),
//! so the common non-null batch is one pass of loads and adds per row. With few groups that pass
//! folds into [`LANES`] copies of the states, merged after the batch (see [`fold_rows`]).
//! Integer and decimal sums wrap on overflow, as DataFusion's `SUM` does; MIN and MAX order
//! floats totally (NaN above every number), as DataFusion's do.

use arrow::array::{Array, Int64Array, PrimitiveArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{ArrowNativeTypeOp, ArrowPrimitiveType, DataType};

use crate::error::{KernelError, Result};

/// What a [`GroupedFold`] keeps per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    Sum,
    Min,
    Max,
}

/// Per-group SUM, MIN or MAX of a primitive column.
#[derive(Debug)]
pub struct GroupedFold<T: ArrowPrimitiveType> {
    fold: Fold,
    values: Vec<T::Native>,
    /// Whether each group has had a non-null value; `None` while every group has.
    seen: Option<Vec<bool>>,
}

impl<T: ArrowPrimitiveType> GroupedFold<T> {
    /// No groups yet.
    pub fn new(fold: Fold) -> GroupedFold<T> {
        GroupedFold {
            fold,
            values: Vec::new(),
            seen: None,
        }
    }

    /// The value a group starts from.
    fn start(&self) -> T::Native {
        match self.fold {
            Fold::Sum => T::Native::ZERO,
            Fold::Min => T::Native::MAX_TOTAL_ORDER,
            Fold::Max => T::Native::MIN_TOTAL_ORDER,
        }
    }

    /// Folds row `i` of `column` into group `group_ids[i]`, for a total of `groups` groups
    /// (which every id must be below). Nulls are skipped.
    pub fn update(
        &mut self,
        group_ids: &[usize],
        column: &PrimitiveArray<T>,
        groups: usize,
    ) -> Result<()> {
        check_ids(group_ids, column.len())?;
        let known = self.values.len();
        self.values.resize(groups, self.start());
        let nulls = column.nulls().filter(|nulls| nulls.null_count() > 0);
        // New groups without a row (an empty batch sizing the groups) have no value either.
        let groups_without_rows = column.is_empty() && groups > known;
        if let Some(seen) = &mut self.seen {
            seen.resize(groups, false);
        } else if nulls.is_some() || groups_without_rows {
            let mut seen = vec![true; known];
            seen.resize(groups, false);
            self.seen = Some(seen);
        }
        match self.fold {
            Fold::Sum => self.fold_with(group_ids, column, nulls, |sum, value| {
                *sum = sum.add_wrapping(value)
            }),
            Fold::Min => self.fold_with(group_ids, column, nulls, |min, value| {
                if value.is_lt(*min) {
                    *min = value
                }
            }),
            Fold::Max => self.fold_with(group_ids, column, nulls, |max, value| {
                if value.is_gt(*max) {
                    *max = value
                }
            }),
        }
        Ok(())
    }

    fn fold_with(
        &mut self,
        group_ids: &[usize],
        column: &PrimitiveArray<T>,
        nulls: Option<&NullBuffer>,
        step: impl Fn(&mut T::Native, T::Native),
    ) {
        let values = column.values();
        match (nulls, &mut self.seen) {
            (Some(nulls), Some(seen)) => {
                for row in nulls.valid_indices() {
                    let group = group_ids[row];
                    step(&mut self.values[group], values[row]);
                    seen[group] = true;
                }
            }
            (None, Some(seen)) => {
                for (&group, &value) in group_ids.iter().zip(values.iter()) {
                    step(&mut self.values[group], value);
                    seen[group] = true;
                }
            }
            (_, None) => {
                let start = self.start();
                fold_rows(
                    &mut self.values,
                    start,
                    group_ids,
                    |row| values[row],
                    &step,
                    |state, lane| step(state, lane),
                );
            }
        }
    }

    /// The groups' results as a column of `data_type` (the column's type, or a decimal of
    /// another precision for a sum), null where a group had no value; the groups start over.
    pub fn finish(&mut self, data_type: &DataType) -> Result<PrimitiveArray<T>> {
        let values = std::mem::take(&mut self.values);
        let nulls = self.seen.take().map(NullBuffer::from);
        Ok(PrimitiveArray::<T>::try_new(values.into(), nulls)?.with_data_type(data_type.clone()))
    }

    /// Bytes held.
    pub fn memory_size(&self) -> usize {
        self.values.capacity() * size_of::<T::Native>()
            + self.seen.as_ref().map_or(0, Vec::capacity)
    }
}

/// Per-group COUNT: of rows, of a column's non-null values, or the sum of partial counts.
#[derive(Debug, Default)]
pub struct GroupedCount {
    counts: Vec<i64>,
}

impl GroupedCount {
    /// No groups yet.
    pub fn new() -> GroupedCount {
        GroupedCount::default()
    }

    /// Counts each row into its group (`COUNT(*)`), or only rows valid in `nulls` when given.
    pub fn update(
        &mut self,
        group_ids: &[usize],
        nulls: Option<&NullBuffer>,
        groups: usize,
    ) -> Result<()> {
        let rows = nulls.map_or(group_ids.len(), NullBuffer::len);
        check_ids(group_ids, rows)?;
        self.counts.resize(groups, 0);
        match nulls.filter(|nulls| nulls.null_count() > 0) {
            None => fold_rows(
                &mut self.counts,
                0,
                group_ids,
                |_| (),
                |count, ()| *count += 1,
                |count, lane| *count += lane,
            ),
            Some(nulls) => {
                for row in nulls.valid_indices() {
                    self.counts[group_ids[row]] += 1;
                }
            }
        }
        Ok(())
    }

    /// Adds partial counts (nulls count as 0) into their groups.
    pub fn merge(
        &mut self,
        group_ids: &[usize],
        partial: &Int64Array,
        groups: usize,
    ) -> Result<()> {
        check_ids(group_ids, partial.len())?;
        self.counts.resize(groups, 0);
        let counts = partial.values();
        match partial.nulls().filter(|nulls| nulls.null_count() > 0) {
            None => {
                for (&group, &count) in group_ids.iter().zip(counts.iter()) {
                    self.counts[group] += count;
                }
            }
            Some(nulls) => {
                for row in nulls.valid_indices() {
                    self.counts[group_ids[row]] += counts[row];
                }
            }
        }
        Ok(())
    }

    /// The groups' counts; the groups start over.
    pub fn finish(&mut self) -> Int64Array {
        Int64Array::from(std::mem::take(&mut self.counts))
    }

    /// Bytes held.
    pub fn memory_size(&self) -> usize {
        self.counts.capacity() * size_of::<i64>()
    }
}

/// Per-group sum and count of a primitive column's non-null values.
#[derive(Debug)]
pub struct GroupedMean<T: ArrowPrimitiveType> {
    groups: Vec<(T::Native, i64)>,
}

impl<T: ArrowPrimitiveType> Default for GroupedMean<T> {
    fn default() -> Self {
        GroupedMean { groups: Vec::new() }
    }
}

impl<T: ArrowPrimitiveType> GroupedMean<T> {
    /// No groups yet.
    pub fn new() -> GroupedMean<T> {
        GroupedMean::default()
    }

    /// Adds row `i` of `column` to group `group_ids[i]`, for a total of `groups` groups (which
    /// every id must be below). Nulls are skipped.
    pub fn update(
        &mut self,
        group_ids: &[usize],
        column: &PrimitiveArray<T>,
        groups: usize,
    ) -> Result<()> {
        check_ids(group_ids, column.len())?;
        self.groups.resize(groups, (T::Native::ZERO, 0));
        let values = column.values();
        match column.nulls().filter(|nulls| nulls.null_count() > 0) {
            None => fold_rows(
                &mut self.groups,
                (T::Native::ZERO, 0),
                group_ids,
                |row| values[row],
                |(sum, count), value| {
                    *sum = sum.add_wrapping(value);
                    *count += 1;
                },
                |(sum, count), (lane_sum, lane_count)| {
                    *sum = sum.add_wrapping(lane_sum);
                    *count += lane_count;
                },
            ),
            Some(nulls) => {
                for row in nulls.valid_indices() {
                    let (sum, count) = &mut self.groups[group_ids[row]];
                    *sum = sum.add_wrapping(values[row]);
                    *count += 1;
                }
            }
        }
        Ok(())
    }

    /// Adds partial sums and their counts into their groups; a null sum adds nothing to its
    /// group's sum.
    pub fn merge(
        &mut self,
        group_ids: &[usize],
        sums: &PrimitiveArray<T>,
        counts: &Int64Array,
        groups: usize,
    ) -> Result<()> {
        check_ids(group_ids, sums.len())?;
        check_ids(group_ids, counts.len())?;
        self.groups.resize(groups, (T::Native::ZERO, 0));
        let has_sum = |row: usize| sums.is_valid(row);
        for (row, &group) in group_ids.iter().enumerate() {
            let (sum, count) = &mut self.groups[group];
            if has_sum(row) {
                *sum = sum.add_wrapping(sums.value(row));
            }
            *count += counts.value(row);
        }
        Ok(())
    }

    /// The groups' sums as a column of `data_type` (null where a group counted no value) and
    /// their counts; the groups start over.
    pub fn finish(&mut self, data_type: &DataType) -> Result<(PrimitiveArray<T>, Int64Array)> {
        let groups = std::mem::take(&mut self.groups);
        let counted = NullBuffer::from_iter(groups.iter().map(|&(_, count)| count > 0));
        let sums = groups.iter().map(|&(sum, _)| sum).collect::<Vec<_>>();
        let counts = groups.iter().map(|&(_, count)| count).collect::<Vec<_>>();
        let nulls = (counted.null_count() > 0).then_some(counted);
        let sums =
            PrimitiveArray::<T>::try_new(sums.into(), nulls)?.with_data_type(data_type.clone());
        Ok((sums, Int64Array::from(counts)))
    }

    /// Bytes held.
    pub fn memory_size(&self) -> usize {
        self.groups.capacity() * size_of::<(T::Native, i64)>()
    }
}

/// Groups up to this many fold a batch through [`LANES`] copies of their states.
const LANED_MAX_GROUPS: usize = 64;
/// Copies of the states a batch of few groups folds into.
const LANES: usize = 4;

/// Folds row `i`'s value (`value_of(i)`) into the state of group `group_ids[i]` with `step`.
/// With at most [`LANED_MAX_GROUPS`] groups, row `i` goes into copy `i % LANES` of the states,
/// and the copies are merged into `states` with `combine` after the batch: with few groups,
/// consecutive rows often update the same group, and each update would wait for the one before
/// it to reach memory; four copies let four updates run at once.
fn fold_rows<S: Copy, V>(
    states: &mut [S],
    identity: S,
    group_ids: &[usize],
    value_of: impl Fn(usize) -> V,
    step: impl Fn(&mut S, V),
    combine: impl Fn(&mut S, S),
) {
    let rows = group_ids.len();
    if states.len() > LANED_MAX_GROUPS || rows < LANES * states.len() {
        for (row, &group) in group_ids.iter().enumerate() {
            step(&mut states[group], value_of(row));
        }
        return;
    }
    let mut lanes: [Vec<S>; LANES] = std::array::from_fn(|_| vec![identity; states.len()]);
    let laned = rows / LANES * LANES;
    for start in (0..laned).step_by(LANES) {
        for (lane, states) in lanes.iter_mut().enumerate() {
            let row = start + lane;
            step(&mut states[group_ids[row]], value_of(row));
        }
    }
    for row in laned..rows {
        step(&mut states[group_ids[row]], value_of(row));
    }
    for lane in &lanes {
        for (state, &part) in states.iter_mut().zip(lane) {
            combine(state, part);
        }
    }
}

/// Checks that there is one group id per row. Ids come from the caller's group map, so each is
/// below `groups` by contract; one that is not panics on the bounds check of its group's slot.
fn check_ids(group_ids: &[usize], rows: usize) -> Result<()> {
    if group_ids.len() != rows {
        return Err(KernelError::GroupIdCount {
            values: rows,
            group_ids: group_ids.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Float64Array, Int32Array};
    use arrow::datatypes::{Float64Type, Int32Type};

    use super::*;

    #[test]
    fn groups_without_values_are_null_after_a_batch_with_nulls() {
        let mut sums = GroupedFold::<Int32Type>::new(Fold::Sum);
        sums.update(&[0, 1], &Int32Array::from(vec![4, 5]), 2)
            .unwrap();
        sums.update(
            &[2, 0, 3],
            &Int32Array::from(vec![None, Some(6), Some(1)]),
            4,
        )
        .unwrap();
        let result = sums.finish(&DataType::Int32).unwrap();
        assert_eq!(
            result.iter().collect::<Vec<_>>(),
            vec![Some(10), Some(5), None, Some(1)]
        );
    }

    #[test]
    fn groups_sized_by_an_empty_batch_are_null() {
        let mut sums = GroupedFold::<Int32Type>::new(Fold::Sum);
        sums.update(&[], &Int32Array::from(Vec::<i32>::new()), 1)
            .unwrap();
        let result = sums.finish(&DataType::Int32).unwrap();
        assert_eq!(result.iter().collect::<Vec<_>>(), vec![None]);
    }

    #[test]
    fn float_extremes_order_nan_above_numbers() {
        let column = Float64Array::from(vec![1.5, f64::NAN, -2.0]);
        let mut max = GroupedFold::<Float64Type>::new(Fold::Max);
        max.update(&[0, 0, 0], &column, 1).unwrap();
        assert!(max.finish(&DataType::Float64).unwrap().value(0).is_nan());
        let mut min = GroupedFold::<Float64Type>::new(Fold::Min);
        min.update(&[0, 0, 0], &column, 1).unwrap();
        assert_eq!(min.finish(&DataType::Float64).unwrap().value(0), -2.0);
    }

    #[test]
    fn counts_skip_nulls_and_merge_partials() {
        let mut counts = GroupedCount::new();
        counts.update(&[0, 1, 1], None, 2).unwrap();
        let column = Int32Array::from(vec![None, Some(1), Some(2)]);
        counts.update(&[1, 1, 0], column.nulls(), 2).unwrap();
        counts
            .merge(&[0], &Int64Array::from(vec![Some(10)]), 2)
            .unwrap();
        assert_eq!(counts.finish().values().to_vec(), vec![12, 3]);
        let error = counts.update(&[0], column.nulls(), 2).unwrap_err();
        assert_eq!(error.to_string(), "3 values but 1 group ids");
    }
}
