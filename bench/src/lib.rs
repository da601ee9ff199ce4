//! Inputs for Sabot's micro-benchmarks: in-memory tables with a chosen number of key columns
//! and distinct keys, registered in a [`Sabot`] session so that the same SQL runs on Sabot's
//! operators and on DataFusion's (see `benches/operators.rs`).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use sabot::{Sabot, SabotError};

/// An in-memory table: its schema and its batches.
pub type Table = (Arc<Schema>, Vec<RecordBatch>);

/// Rows per registered batch (a morsel of the in-memory scan).
const BATCH_ROWS: usize = 32_768;
/// A prime that divides no group count used here, so `group * STRIDE % groups` is a permutation.
const STRIDE: u64 = 1_000_003;

/// A table of `rows` rows: `keys` BIGINT columns `k1..kN` whose combinations take `groups`
/// distinct values (each about equally often, consecutive rows in far-apart groups), and a
/// BIGINT value column `v`.
pub fn keyed_table(rows: usize, keys: usize, groups: usize) -> Table {
    let mut fields: Vec<Field> = (1..=keys)
        .map(|key| Field::new(format!("k{key}"), DataType::Int64, false))
        .collect();
    fields.push(Field::new("v", DataType::Int64, false));
    let schema = Arc::new(Schema::new(fields));
    // Each key column holds one "digit" of the group number, so the combinations of all key
    // columns are exactly the groups.
    let radix = (groups as f64).powf(1.0 / keys as f64).ceil().max(1.0) as u64;
    let batches = (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let end = (start + BATCH_ROWS).min(rows);
            let group_of = |row: usize| (row % groups) as u64 * STRIDE % groups as u64;
            let mut columns: Vec<ArrayRef> = (0..keys as u32)
                .map(|key| {
                    Arc::new(Int64Array::from_iter_values((start..end).map(|row| {
                        let group = group_of(row);
                        let digit = if key + 1 == keys as u32 {
                            group / radix.pow(key)
                        } else {
                            group / radix.pow(key) % radix
                        };
                        digit as i64
                    }))) as ArrayRef
                })
                .collect();
            columns.push(Arc::new(Int64Array::from_iter_values(
                (start..end).map(|row| (row % 1000) as i64),
            )));
            RecordBatch::try_new(Arc::clone(&schema), columns).expect("columns match the schema")
        })
        .collect();
    (schema, batches)
}

/// A session with `tables` registered, on `threads` workers.
pub fn session(threads: usize, tables: Vec<(&str, Table)>) -> Result<Sabot, SabotError> {
    let sabot = Sabot::builder().threads(threads).build()?;
    for (name, (schema, batches)) in tables {
        sabot.register_batches(name, schema, batches)?;
    }
    Ok(sabot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_combinations_take_the_requested_number_of_groups() {
        for (keys, groups) in [(1, 10), (2, 10_000), (4, 10_000)] {
            let (_, batches) = keyed_table(100_000, keys, groups);
            let mut seen = std::collections::HashSet::new();
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    let key: Vec<i64> = (0..keys)
                        .map(|column| {
                            batch
                                .column(column)
                                .as_any()
                                .downcast_ref::<Int64Array>()
                                .expect("BIGINT keys")
                                .value(row)
                        })
                        .collect();
                    seen.insert(key);
                }
            }
            assert_eq!(seen.len(), groups, "{keys} keys");
        }
    }
}
