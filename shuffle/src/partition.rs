//! Splits batches into the partitions of the next stage by a hash of key expressions. Every
//! process hashes with the same fixed seed, so equal keys meet in the same partition whichever
//! worker produced them.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
use datafusion::physical_plan::PhysicalExpr;

use crate::error::Result;

/// The seed of the shuffle hash; changing it changes which partition a key lands in.
const SHUFFLE_HASH: QualityRandomState = QualityRandomState::with_seed(0x5ab0_7500_5eed);

/// Partitions rows by the hash of `keys` into `partitions` buckets.
#[derive(Debug, Clone)]
pub struct HashPartitioner {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    partitions: usize,
}

impl HashPartitioner {
    /// A partitioner over `keys` (expressions over the batches it will split).
    pub fn new(keys: Vec<Arc<dyn PhysicalExpr>>, partitions: usize) -> HashPartitioner {
        HashPartitioner {
            keys,
            partitions: partitions.max(1),
        }
    }

    /// The rows of `batch` in each partition, in their input order; `None` for a partition
    /// that gets no rows.
    pub fn partition(&self, batch: &RecordBatch) -> Result<Vec<Option<RecordBatch>>> {
        let arrays = self
            .keys
            .iter()
            .map(|key| key.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        let mut hashes = vec![0u64; batch.num_rows()];
        create_hashes(&arrays, &SHUFFLE_HASH, &mut hashes)?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.partitions];
        for (row, hash) in hashes.iter().enumerate() {
            rows[bucket_of(*hash, self.partitions)].push(row as u32);
        }
        rows.into_iter()
            .map(|indices| {
                if indices.is_empty() {
                    return Ok(None);
                }
                let indices = UInt32Array::from(indices);
                Ok(Some(compact_views(take_record_batch(batch, &indices)?)?))
            })
            .collect()
    }
}

/// `batch` with its string and binary view columns holding only the bytes their rows use:
/// taken or sliced rows keep pointing into the whole input's buffers, which Arrow IPC would
/// otherwise send in full with every partition.
pub fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
    let needs_compacting = batch.columns().iter().any(|column| {
        matches!(
            column.data_type(),
            DataType::Utf8View | DataType::BinaryView
        )
    });
    if !needs_compacting {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => Arc::new(column.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(column.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(column),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// The bucket of a hash: its high bits scaled to the bucket count (the low bits pick hash
/// table slots in the operators downstream).
fn bucket_of(hash: u64, partitions: usize) -> usize {
    (((hash >> 32) * partitions as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::col;

    fn batch(keys: Vec<Option<i64>>, names: Vec<&str>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn keys_of(batch: &RecordBatch) -> Vec<Option<i64>> {
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        (0..keys.len())
            .map(|i| keys.is_valid(i).then(|| keys.value(i)))
            .collect()
    }

    #[test]
    fn every_row_lands_in_exactly_one_partition_and_equal_keys_together() {
        let input: Vec<Option<i64>> = (0..1000).map(|i| (i % 7 != 0).then_some(i % 97)).collect();
        let names: Vec<&str> = (0..1000).map(|_| "x").collect();
        let batch = batch(input.clone(), names);
        let partitioner = HashPartitioner::new(vec![col("k", &batch.schema()).unwrap()], 5);
        let parts = partitioner.partition(&batch).unwrap();
        assert_eq!(parts.len(), 5);
        let mut seen: Vec<Option<i64>> = Vec::new();
        let mut owner = std::collections::HashMap::new();
        for (index, part) in parts.iter().enumerate() {
            let Some(part) = part else { continue };
            for key in keys_of(part) {
                assert_eq!(
                    *owner.entry(key).or_insert(index),
                    index,
                    "key {key:?} split"
                );
                seen.push(key);
            }
        }
        let mut expected = input;
        expected.sort();
        seen.sort();
        assert_eq!(seen, expected);
        assert!(parts.iter().filter(|part| part.is_some()).count() > 1);
    }

    #[test]
    fn the_same_key_goes_to_the_same_partition_in_every_batch() {
        let first = batch(vec![Some(1), Some(2), Some(3)], vec!["a", "b", "c"]);
        let second = batch(vec![Some(3), Some(1)], vec!["d", "e"]);
        let partitioner = HashPartitioner::new(vec![col("k", &first.schema()).unwrap()], 8);
        let where_is = |batch: &RecordBatch, key: i64| {
            partitioner
                .partition(batch)
                .unwrap()
                .iter()
                .position(|part| {
                    part.as_ref()
                        .is_some_and(|p| keys_of(p).contains(&Some(key)))
                })
                .unwrap()
        };
        assert_eq!(where_is(&first, 1), where_is(&second, 1));
        assert_eq!(where_is(&first, 3), where_is(&second, 3));
    }
}
