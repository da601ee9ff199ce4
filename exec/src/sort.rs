//! Sorting a pipeline's output by several keys, and top-k when only the first rows are wanted
//! (`ORDER BY … LIMIT k`): the sort then keeps k row indices instead of ordering every row.
//! A large input is cut into one run per worker; the runs are sorted in parallel (each keeping
//! its own top k) and merged by comparing their keys in Arrow's row format. A run sorted by
//! several keys also orders its rows by their row-format bytes; one key uses Arrow's sort.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::compute::{
    SortColumn, concat_batches, interleave_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalSortExpr;
use sabot_scheduler::Scheduler;

use crate::error::{ExecError, Result};
use crate::memory::{MemoryBudget, Reservation, distinct_buffer_bytes};
use crate::parallel::in_parallel;

const OPERATOR: &str = "Sort";
/// Inputs below this many rows are sorted by one task.
const PARALLEL_SORT_ROWS: usize = 1 << 16;

/// Sorts `batches` (all of `schema`) by `keys`, keeping the first `fetch` rows if given; large
/// inputs are sorted in parallel runs on `scheduler`.
pub(crate) fn sort_batches(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    keys: &[PhysicalSortExpr],
    fetch: Option<usize>,
    budget: &Arc<MemoryBudget>,
    scheduler: &Scheduler,
) -> Result<Vec<RecordBatch>> {
    let mut reservation = Reservation::new(budget, OPERATOR);
    let input_bytes = distinct_buffer_bytes(batches);
    reservation.resize(input_bytes * 2)?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let runs = scheduler.threads().min(batches.len());
    if rows < PARALLEL_SORT_ROWS || runs <= 1 {
        return Ok(vec![sort_run(batches, schema, keys, fetch)?]);
    }
    let sorted_runs = sort_runs_in_parallel(batches, schema, keys, fetch, runs, scheduler)?;
    Ok(vec![merge_runs(&sorted_runs, keys, fetch)?])
}

/// Sorts `batches` as one run.
fn sort_run(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    keys: &[PhysicalSortExpr],
    fetch: Option<usize>,
) -> Result<RecordBatch> {
    let all = concat_batches(schema, batches).map_err(ExecError::arrow(OPERATOR))?;
    let columns = sort_columns(&all, keys)?;
    let indices = if columns.len() == 1 {
        lexsort_to_indices(&columns, fetch).map_err(ExecError::arrow(OPERATOR))?
    } else {
        sorted_by_rows(&columns, fetch)?
    };
    take_record_batch(&all, &indices).map_err(ExecError::arrow(OPERATOR))
}

/// The row order of several sort keys (the first `fetch` positions with it), by their rows in
/// Arrow's row format: one byte comparison per pair of rows, where a comparison column by
/// column dispatches on each key's type (TPC-H Q16's 18K rows by a count and three strings
/// took three times as long).
fn sorted_by_rows(columns: &[SortColumn], fetch: Option<usize>) -> Result<UInt32Array> {
    let rows = key_rows(&row_converter(columns)?, columns)?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    let compare = |a: &u32, b: &u32| rows.row(*a as usize).cmp(&rows.row(*b as usize));
    match fetch {
        Some(fetch) if fetch < order.len() => {
            if fetch > 0 {
                order.select_nth_unstable_by(fetch - 1, compare);
            }
            order.truncate(fetch);
            order.sort_by(compare);
        }
        _ => order.sort_by(compare),
    }
    Ok(UInt32Array::from(order))
}

/// A converter of sort key columns like `columns` into rows that compare as the keys do.
fn row_converter(columns: &[SortColumn]) -> Result<RowConverter> {
    let fields = columns
        .iter()
        .map(|column| {
            SortField::new_with_options(
                column.values.data_type().clone(),
                column.options.unwrap_or_default(),
            )
        })
        .collect();
    RowConverter::new(fields).map_err(ExecError::arrow(OPERATOR))
}

/// The sort key `columns` as rows of `converter`.
fn key_rows(converter: &RowConverter, columns: &[SortColumn]) -> Result<Rows> {
    let values: Vec<_> = columns
        .iter()
        .map(|column| Arc::clone(&column.values))
        .collect();
    converter
        .convert_columns(&values)
        .map_err(ExecError::arrow(OPERATOR))
}

fn sort_columns(batch: &RecordBatch, keys: &[PhysicalSortExpr]) -> Result<Vec<SortColumn>> {
    keys.iter()
        .map(|key| {
            let values = key
                .expr
                .evaluate(batch)
                .and_then(|value| value.into_array(batch.num_rows()))
                .map_err(ExecError::datafusion(OPERATOR))?;
            Ok(SortColumn {
                values,
                options: Some(key.options),
            })
        })
        .collect()
}

/// Sorts consecutive slices of `batches` as `runs` runs, one task each.
fn sort_runs_in_parallel(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    keys: &[PhysicalSortExpr],
    fetch: Option<usize>,
    runs: usize,
    scheduler: &Scheduler,
) -> Result<Vec<RecordBatch>> {
    let per_run = batches.len().div_ceil(runs);
    let pieces = batches.chunks(per_run).map(|chunk| {
        let (chunk, schema, keys) = (chunk.to_vec(), Arc::clone(schema), keys.to_vec());
        move || sort_run(&chunk, &schema, &keys, fetch)
    });
    in_parallel(scheduler, pieces)?.into_iter().collect()
}

/// Merges sorted `runs` into one batch of their first `fetch` rows (all rows without it).
fn merge_runs(
    runs: &[RecordBatch],
    keys: &[PhysicalSortExpr],
    fetch: Option<usize>,
) -> Result<RecordBatch> {
    let run_keys = runs
        .iter()
        .map(|run| sort_columns(run, keys))
        .collect::<Result<Vec<_>>>()?;
    let converter = row_converter(run_keys.first().map_or(&[], Vec::as_slice))?;
    let rows: Vec<Rows> = run_keys
        .iter()
        .map(|columns| key_rows(&converter, columns))
        .collect::<Result<_>>()?;
    let total: usize = runs.iter().map(RecordBatch::num_rows).sum();
    let wanted = fetch.map_or(total, |fetch| fetch.min(total));
    let mut heads = BinaryHeap::with_capacity(runs.len());
    for (run, run_rows) in rows.iter().enumerate() {
        if run_rows.num_rows() > 0 {
            heads.push(Reverse((run_rows.row(0), run, 0usize)));
        }
    }
    let mut order = Vec::with_capacity(wanted);
    while order.len() < wanted {
        let Some(Reverse((_, run, index))) = heads.pop() else {
            break;
        };
        order.push((run, index));
        if index + 1 < rows[run].num_rows() {
            heads.push(Reverse((rows[run].row(index + 1), run, index + 1)));
        }
    }
    let runs: Vec<&RecordBatch> = runs.iter().collect();
    interleave_record_batch(&runs, &order).map_err(ExecError::arrow(OPERATOR))
}

/// Skips `skip` rows of `batches`, then keeps up to `fetch`.
pub(crate) fn limit_batches(
    batches: Vec<RecordBatch>,
    skip: usize,
    fetch: Option<usize>,
) -> Vec<RecordBatch> {
    let mut to_skip = skip;
    let mut remaining = fetch.unwrap_or(usize::MAX);
    let mut kept = Vec::new();
    for batch in batches {
        if remaining == 0 {
            break;
        }
        let rows = batch.num_rows();
        if to_skip >= rows {
            to_skip -= rows;
            continue;
        }
        let length = (rows - to_skip).min(remaining);
        kept.push(batch.slice(to_skip, length));
        remaining -= length;
        to_skip = 0;
    }
    kept
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::col;

    use super::*;

    fn numbers(values: &[i64]) -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(values.to_vec()))],
        )
        .unwrap();
        (schema, batch)
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|batch| {
                let column = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                (0..column.len())
                    .map(|row| column.value(row))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn sorts_descending_across_batches_and_keeps_top_k() {
        let (schema, first) = numbers(&[5, 1, 9]);
        let (_, second) = numbers(&[7, 3]);
        let key = PhysicalSortExpr::new(
            col("n", &schema).unwrap(),
            arrow::compute::SortOptions::new(true, false),
        );
        let budget = Arc::new(MemoryBudget::new(None));
        let scheduler = Scheduler::new(2).unwrap();
        let all = sort_batches(
            &[first.clone(), second.clone()],
            &schema,
            std::slice::from_ref(&key),
            None,
            &budget,
            &scheduler,
        )
        .unwrap();
        assert_eq!(values(&all), [9, 7, 5, 3, 1]);
        let top = sort_batches(
            &[first, second],
            &schema,
            &[key],
            Some(2),
            &budget,
            &scheduler,
        )
        .unwrap();
        assert_eq!(values(&top), [9, 7]);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn a_sort_over_the_memory_limit_names_the_operator() {
        let (schema, batch) = numbers(&[3, 2, 1]);
        let key = PhysicalSortExpr::new(
            col("n", &schema).unwrap(),
            arrow::compute::SortOptions::default(),
        );
        let budget = Arc::new(MemoryBudget::new(Some(16)));
        let scheduler = Scheduler::new(1).unwrap();
        let error = sort_batches(&[batch], &schema, &[key], None, &budget, &scheduler).unwrap_err();
        assert!(error.to_string().starts_with("Sort needs"), "{error}");
    }

    #[test]
    fn large_inputs_sort_in_parallel_runs_and_merge() {
        let batches: Vec<RecordBatch> = (0..8)
            .map(|batch| {
                let values: Vec<i64> = (0..20_000)
                    .map(|row| (batch * 20_000 + row) * 7919 % 100_003)
                    .collect();
                numbers(&values).1
            })
            .collect();
        let schema = batches[0].schema();
        let key = PhysicalSortExpr::new(
            col("n", &schema).unwrap(),
            arrow::compute::SortOptions::new(true, false),
        );
        let mut expected: Vec<i64> = batches
            .iter()
            .flat_map(|batch| values(std::slice::from_ref(batch)))
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        let budget = Arc::new(MemoryBudget::new(None));
        let scheduler = Scheduler::new(4).unwrap();
        let keys = std::slice::from_ref(&key);
        let all = sort_batches(&batches, &schema, keys, None, &budget, &scheduler).unwrap();
        assert_eq!(values(&all), expected);
        let top = sort_batches(&batches, &schema, keys, Some(1_000), &budget, &scheduler).unwrap();
        assert_eq!(values(&top), expected[..1_000]);
    }

    #[test]
    fn limit_skips_then_fetches_across_batches() {
        let (_, first) = numbers(&[1, 2, 3]);
        let (_, second) = numbers(&[4, 5, 6]);
        assert_eq!(
            values(&limit_batches(
                vec![first.clone(), second.clone()],
                2,
                Some(3)
            )),
            [3, 4, 5]
        );
        assert_eq!(values(&limit_batches(vec![first, second], 4, None)), [5, 6]);
    }
}
