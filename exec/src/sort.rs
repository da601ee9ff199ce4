//! Sorting a pipeline's output by several keys, and top-k when only the first rows are wanted
//! (`ORDER BY … LIMIT k`): the sort then keeps k row indices instead of ordering every row.

use std::sync::Arc;

use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalSortExpr;

use crate::error::{ExecError, Result};
use crate::memory::{MemoryBudget, Reservation};

const OPERATOR: &str = "Sort";

/// Sorts `batches` (all of `schema`) by `keys`, keeping the first `fetch` rows if given.
pub(crate) fn sort_batches(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    keys: &[PhysicalSortExpr],
    fetch: Option<usize>,
    budget: &Arc<MemoryBudget>,
) -> Result<Vec<RecordBatch>> {
    let mut reservation = Reservation::new(budget, OPERATOR);
    let input_bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    reservation.resize(input_bytes * 2)?;
    let all = concat_batches(schema, batches).map_err(ExecError::arrow(OPERATOR))?;
    if all.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let columns = keys
        .iter()
        .map(|key| {
            let values = key
                .expr
                .evaluate(&all)
                .and_then(|value| value.into_array(all.num_rows()))
                .map_err(ExecError::datafusion(OPERATOR))?;
            Ok(SortColumn {
                values,
                options: Some(key.options),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = lexsort_to_indices(&columns, fetch).map_err(ExecError::arrow(OPERATOR))?;
    let sorted = take_record_batch(&all, &indices).map_err(ExecError::arrow(OPERATOR))?;
    Ok(vec![sorted])
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
        let all = sort_batches(
            &[first.clone(), second.clone()],
            &schema,
            std::slice::from_ref(&key),
            None,
            &budget,
        )
        .unwrap();
        assert_eq!(values(&all), [9, 7, 5, 3, 1]);
        let top = sort_batches(&[first, second], &schema, &[key], Some(2), &budget).unwrap();
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
        let error = sort_batches(&[batch], &schema, &[key], None, &budget).unwrap_err();
        assert!(error.to_string().starts_with("Sort needs"), "{error}");
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
