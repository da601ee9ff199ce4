//! Lookup joins: each stream row is matched against a table held in memory (dimension data:
//! categories, customers), keyed once when the operator is built.

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use hashbrown::HashMap;

use super::group_index::{KeyEncoder, OwnedKey};
use super::operator::{StreamEvent, StreamOperator};
use super::stream_join::{join_key_encoder, joined_schema};
use crate::error::{ExecError, Result};

const OPERATOR: &str = "lookup join";

/// An inner join of a stream with a table: stream rows whose `stream_keys` equal a table row's
/// `table_keys` come out with that row's columns after their own (a table column named like a
/// stream column gets the suffix `_right`). Null keys match nothing.
pub struct LookupJoin {
    schema: SchemaRef,
    stream_keys: Vec<usize>,
    encoder: KeyEncoder,
    table: RecordBatch,
    rows_by_key: HashMap<OwnedKey, Vec<u32>>,
}

impl LookupJoin {
    /// Joins rows of `stream` with the rows of `table` (batches of `table_schema`).
    pub fn try_new(
        stream: &SchemaRef,
        table_schema: &SchemaRef,
        table: &[RecordBatch],
        stream_keys: &[usize],
        table_keys: &[usize],
    ) -> Result<LookupJoin> {
        let encoder = join_key_encoder(stream, table_schema, stream_keys, table_keys)?;
        let table = concat_batches(table_schema, table).map_err(ExecError::arrow(OPERATOR))?;
        let key_columns: Vec<ArrayRef> = table_keys
            .iter()
            .map(|&key| table.column(key).clone())
            .collect();
        let keys = encoder.encode_columns(&key_columns, table.num_rows())?;
        let mut rows_by_key: HashMap<OwnedKey, Vec<u32>> = HashMap::new();
        for row in 0..table.num_rows() {
            if key_columns.iter().all(|column| column.is_valid(row)) {
                rows_by_key
                    .entry(encoder.owned_key(&keys, row))
                    .or_default()
                    .push(row as u32);
            }
        }
        Ok(LookupJoin {
            schema: joined_schema(stream, table_schema),
            stream_keys: stream_keys.to_vec(),
            encoder,
            table,
            rows_by_key,
        })
    }
}

impl StreamOperator for LookupJoin {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Vec<StreamEvent>) -> Result<()> {
        let key_columns: Vec<ArrayRef> = self
            .stream_keys
            .iter()
            .map(|&key| batch.column(key).clone())
            .collect();
        let keys = self
            .encoder
            .encode_columns(&key_columns, batch.num_rows())?;
        let mut stream_rows = Vec::new();
        let mut table_rows = Vec::new();
        for row in 0..batch.num_rows() {
            if !key_columns.iter().all(|column| column.is_valid(row)) {
                continue;
            }
            if let Some(matches) = self.rows_by_key.get(&self.encoder.owned_key(&keys, row)) {
                for &table_row in matches {
                    stream_rows.push(row as u32);
                    table_rows.push(table_row);
                }
            }
        }
        if stream_rows.is_empty() {
            return Ok(());
        }
        let left = take_record_batch(&batch, &UInt32Array::from(stream_rows))
            .map_err(ExecError::arrow(OPERATOR))?;
        let right = take_record_batch(&self.table, &UInt32Array::from(table_rows))
            .map_err(ExecError::arrow(OPERATOR))?;
        let mut columns = left.columns().to_vec();
        columns.extend(right.columns().iter().cloned());
        let joined = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(ExecError::arrow(OPERATOR))?;
        out.push(StreamEvent::Batch(joined));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    #[test]
    fn stream_rows_pick_up_every_matching_table_row() {
        let stream = Arc::new(Schema::new(vec![
            Field::new("category", DataType::Int64, true),
            Field::new("price", DataType::Int64, false),
        ]));
        let table_schema = Arc::new(Schema::new(vec![
            Field::new("category", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let table = RecordBatch::try_new(
            table_schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![10, 11, 11])),
                Arc::new(StringArray::from(vec!["books", "games", "toys"])),
            ],
        )
        .unwrap();
        let mut join = LookupJoin::try_new(&stream, &table_schema, &[table], &[0], &[0]).unwrap();
        assert_eq!(join.schema().field(2).name(), "category_right");
        let batch = RecordBatch::try_new(
            stream,
            vec![
                Arc::new(Int64Array::from(vec![Some(11), Some(12), None, Some(10)])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        join.on_batch(batch, &mut out).unwrap();
        let [StreamEvent::Batch(joined)] = out.as_slice() else {
            panic!("one batch expected");
        };
        let prices: Vec<i64> = joined
            .column(1)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let names: Vec<&str> = joined
            .column(3)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(prices, vec![1, 1, 4]);
        assert_eq!(names, vec!["games", "toys", "books"]);
    }
}
