//! Distinct-count estimates of Parquet columns, for the planner's row estimates until full
//! statistics arrive (issue 5). An estimate reads a sample, the first 64K values of the column in
//! the file's first row group, and counts its distinct values twice: in the sample's first half
//! and in all of it. When the second half brings few new values, the column has saturated and
//! its distinct count is the sample's (a low-cardinality column such as a type, a flag or a
//! nation); otherwise the sample's share of distinct values is scaled up to the file's rows. An
//! integer column's count is capped by its value range from the row-group statistics. Estimates
//! are cached for the process by file version and column (`file_cache`), and so are the
//! samples, from which filters' selectivities for `LIKE` patterns are measured too.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use ahash::RandomState;

use arrow::array::{Array, ArrayRef};
use datafusion::common::hash_utils::create_hashes_with_hasher;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::file::statistics::Statistics;

use crate::file_cache::{ColumnCache, FileStamp, cached};

/// Values sampled per column.
const SAMPLE_ROWS: usize = 1 << 16;
/// A sample whose second half adds less than this share of new distinct values has saturated.
const SATURATION: f64 = 1.1;

fn distinct_cache() -> &'static ColumnCache<Option<f64>> {
    static CACHE: OnceLock<ColumnCache<Option<f64>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn sample_cache() -> &'static ColumnCache<Option<ArrayRef>> {
    static CACHE: OnceLock<ColumnCache<Option<ArrayRef>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The first values (up to 64K, from the first row group) of file column `column` of the
/// Parquet file at `path`: the sample that distinct counts and pattern selectivities are
/// estimated from. Cached for the process.
pub(crate) fn column_sample(
    file: &FileStamp,
    metadata: &ArrowReaderMetadata,
    column: usize,
) -> Option<ArrayRef> {
    cached(sample_cache(), file, column, || {
        read_sample(file.path(), metadata, column)
    })
}

fn read_sample(path: &Path, metadata: &ArrowReaderMetadata, column: usize) -> Option<ArrayRef> {
    if metadata.metadata().num_row_groups() == 0 {
        return None;
    }
    let file = File::open(path).ok()?;
    let mask = ProjectionMask::roots(metadata.parquet_schema(), [column]);
    let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
        .with_projection(mask)
        .with_row_groups(vec![0])
        .with_batch_size(SAMPLE_ROWS)
        .build()
        .ok()?;
    let sample = reader.next()?.ok()?;
    Some(Arc::clone(sample.column(0)))
}

/// The estimated number of distinct values of file column `column` (a root column index) of
/// the Parquet file `file`, whose footer is `metadata`, when the file's values stand for
/// `total_rows` rows; `None` where the file cannot be sampled.
pub(crate) fn distinct_estimate(
    file: &FileStamp,
    metadata: &ArrowReaderMetadata,
    column: usize,
    total_rows: u64,
) -> Option<f64> {
    cached(distinct_cache(), file, column, || {
        sample_distinct(file, metadata, column, total_rows)
    })
}

fn sample_distinct(
    file: &FileStamp,
    metadata: &ArrowReaderMetadata,
    column: usize,
    total_rows: u64,
) -> Option<f64> {
    let values = column_sample(file, metadata, column)?;
    let rows = values.len();
    if rows == 0 {
        return None;
    }
    let mut hashes = vec![0u64; rows];
    create_hashes_with_hasher(
        [values.as_ref() as &dyn Array],
        &RandomState::with_seed(7),
        &mut hashes,
    )
    .ok()?;
    let mut seen = HashSet::with_capacity(rows);
    seen.extend(hashes[..rows / 2].iter().copied());
    let first_half = seen.len().max(1);
    seen.extend(hashes[rows / 2..].iter().copied());
    let distinct = seen.len() as f64;
    let estimate = if distinct < first_half as f64 * SATURATION || rows as u64 >= total_rows {
        distinct
    } else {
        distinct / rows as f64 * total_rows as f64
    };
    Some(match integer_bounds(metadata, column) {
        Some((low, high)) => estimate.min(high as f64 - low as f64 + 1.0),
        None => estimate,
    })
}

/// The smallest and largest value of file column `column` over all row groups, when it is an
/// integer column (dates and small decimals included) and the statistics give both.
pub(crate) fn integer_bounds(metadata: &ArrowReaderMetadata, column: usize) -> Option<(i64, i64)> {
    let schema = metadata.parquet_schema();
    let leaf =
        (0..schema.num_columns()).find(|&leaf| schema.get_column_root_idx(leaf) == column)?;
    let mut bounds: Option<(i64, i64)> = None;
    for row_group in metadata.metadata().row_groups() {
        let (low, high) = match row_group.column(leaf).statistics()? {
            Statistics::Int32(stats) => {
                (i64::from(*stats.min_opt()?), i64::from(*stats.max_opt()?))
            }
            Statistics::Int64(stats) => (*stats.min_opt()?, *stats.max_opt()?),
            _ => return None,
        };
        bounds = Some(match bounds {
            Some((lowest, highest)) => (lowest.min(low), highest.max(high)),
            None => (low, high),
        });
    }
    bounds
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ArrowReaderOptions;

    use super::*;

    #[test]
    fn estimates_low_cardinality_exactly_and_scales_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let rows = 200_000i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("sorted", DataType::Int64, false),
            Field::new("random", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|row| format!("kind {}", (row * 7) % 150)),
                )),
                Arc::new(Int64Array::from_iter_values(1..=rows)),
                Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|row| (row * 2_654_435_761) % 1_000_000_007),
                )),
            ],
        )
        .unwrap();
        let mut writer = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let metadata =
            ArrowReaderMetadata::load(&File::open(&path).unwrap(), ArrowReaderOptions::new())
                .unwrap();
        let file = FileStamp::of(&path).unwrap();
        let estimate = |column| distinct_estimate(&file, &metadata, column, rows as u64).unwrap();
        assert_eq!(estimate(0), 150.0);
        // A sorted key: the sample's second half is all new, so it scales, capped by its range.
        assert_eq!(estimate(1), rows as f64);
        let random = estimate(2);
        assert!(
            (0.9 * rows as f64..=rows as f64).contains(&random),
            "{random}"
        );
        assert_eq!(integer_bounds(&metadata, 1), Some((1, rows)));
        assert_eq!(integer_bounds(&metadata, 0), None);
    }
}
