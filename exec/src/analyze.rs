//! `ANALYZE`: statistics of a Parquet table's columns from one full read of its files. Per
//! column: null count, a HyperLogLog distinct count, the smallest and largest value and an
//! equi-depth histogram (integer, date and decimal columns). Row groups are read in parallel,
//! each into partial statistics that merge into the table's. The result is cached for the
//! process by the table's files and their versions (a rewritten file drops out of it), and
//! scans of those files give the planner these statistics instead of the samples and footer
//! bounds `column_stats` estimates from.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use ahash::RandomState;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::common::hash_utils::create_hashes_with_hasher;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use sabot_kernels::HyperLogLog;

use crate::aggregate::HASH_SEEDS;
use crate::error::{ExecError, Result};
use crate::file_cache::{FileStamp, footer};
use crate::histogram::Histogram;

/// Values of a column sampled for its histogram (every k-th row, spread over the table).
const HISTOGRAM_SAMPLE: u64 = 1 << 15;
/// Buckets of a histogram.
const HISTOGRAM_BUCKETS: usize = 64;
/// Rows per batch read.
const BATCH_ROWS: usize = 32_768;
/// The hasher of the distinct-count sketches, with fixed seeds: `RandomState::with_seed` mixes
/// in seeds drawn per process, so two runs of ANALYZE over the same files could count a column
/// of 25 values as 24 in one of them (two values sharing a register).
const SKETCH_HASHER: RandomState =
    RandomState::with_seeds(HASH_SEEDS[0], HASH_SEEDS[1], HASH_SEEDS[2], HASH_SEEDS[3]);
/// Largest decimal precision whose unscaled values fit 64 bits.
const MAX_I64_DECIMAL_PRECISION: u8 = 18;

/// What `ANALYZE` found of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSummary {
    /// The column's name in the files.
    pub name: String,
    /// Rows whose value is null.
    pub nulls: u64,
    /// Estimated distinct non-null values (HyperLogLog, at most the non-null rows).
    pub distinct: f64,
    /// Smallest and largest value of an integer, date or decimal column (decimals unscaled).
    pub bounds: Option<(i64, i64)>,
    /// Equi-depth histogram of such a column.
    pub histogram: Option<Arc<Histogram>>,
}

/// What `ANALYZE` found of a table: its rows and, per file column, the column's statistics
/// (`None` for a column not analyzed).
#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    /// Rows in all the table's files.
    pub rows: u64,
    /// Per root column of the files, in file order.
    pub columns: Vec<Option<ColumnSummary>>,
}

impl TableSummary {
    /// The statistics of file column `index`, if it was analyzed.
    pub fn column(&self, index: usize) -> Option<&ColumnSummary> {
        self.columns.get(index)?.as_ref()
    }
}

type SummaryCache = Mutex<HashMap<Vec<FileStamp>, Arc<TableSummary>>>;

fn summaries() -> &'static SummaryCache {
    static CACHE: OnceLock<SummaryCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The statistics `ANALYZE` cached for exactly these file versions, if any.
pub(crate) fn analyzed(files: &[FileStamp]) -> Option<Arc<TableSummary>> {
    summaries()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(files)
        .cloned()
}

/// Reads every row of the Parquet files `paths` (one table) on `threads` threads and returns
/// the statistics of the columns named in `columns` (all columns when `None`), which scans of
/// these files use from then on. Columns analyzed before and not named keep their statistics.
pub fn analyze_parquet(
    paths: &[PathBuf],
    columns: Option<&[String]>,
    threads: usize,
) -> Result<Arc<TableSummary>> {
    let files = paths
        .iter()
        .map(|path| footer(path).map(|(metadata, stamp)| (path.as_path(), metadata, stamp)))
        .collect::<Result<Vec<_>>>()?;
    let Some((first_path, first, _)) = files.first() else {
        return Ok(Arc::new(TableSummary {
            rows: 0,
            columns: Vec::new(),
        }));
    };
    let names: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    for (path, metadata, _) in &files[1..] {
        let theirs: Vec<&String> = metadata
            .schema()
            .fields()
            .iter()
            .map(|field| field.name())
            .collect();
        if theirs.len() != names.len() || theirs.iter().zip(&names).any(|(a, b)| *a != b) {
            return Err(ExecError::Parquet {
                path: path.to_path_buf(),
                message: format!(
                    "its columns differ from those of {}, the table's first file",
                    first_path.display()
                ),
            });
        }
    }
    let selected: Vec<usize> = match columns {
        None => (0..names.len()).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|name| {
                names
                    .iter()
                    .position(|column| column.eq_ignore_ascii_case(name))
                    .ok_or_else(|| ExecError::NoSuchColumn {
                        name: name.clone(),
                        path: first_path.to_path_buf(),
                        columns: names.clone(),
                    })
            })
            .collect::<Result<_>>()?,
    };
    let rows: u64 = files
        .iter()
        .map(|(_, metadata, _)| metadata.metadata().file_metadata().num_rows().max(0) as u64)
        .sum();
    let sample_every = rows.div_ceil(HISTOGRAM_SAMPLE).max(1);
    let morsels: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(file, (_, metadata, _))| {
            (0..metadata.metadata().num_row_groups()).map(move |group| (file, group))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let partials = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, morsels.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut partial: Vec<ColumnPartial> =
                        selected.iter().map(|_| ColumnPartial::default()).collect();
                    loop {
                        let Some(&(file, group)) =
                            morsels.get(next.fetch_add(1, Ordering::Relaxed))
                        else {
                            return Ok(partial);
                        };
                        let (path, metadata, _) = &files[file];
                        read_row_group(
                            path,
                            metadata,
                            group,
                            &selected,
                            sample_every,
                            &mut partial,
                        )?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut merged: Vec<ColumnPartial> =
        selected.iter().map(|_| ColumnPartial::default()).collect();
    for partial in partials {
        for (into, from) in merged.iter_mut().zip(partial) {
            into.merge(from);
        }
    }
    let stamps: Vec<FileStamp> = files.iter().map(|(_, _, stamp)| stamp.clone()).collect();
    let mut cache = summaries().lock().unwrap_or_else(PoisonError::into_inner);
    let mut summary = cache.get(&stamps).map_or_else(
        || TableSummary {
            rows,
            columns: vec![None; names.len()],
        },
        |earlier| earlier.as_ref().clone(),
    );
    for (&column, partial) in selected.iter().zip(merged) {
        summary.columns[column] = Some(partial.finish(names[column].clone(), rows));
    }
    let summary = Arc::new(summary);
    // Statistics of older versions of these files are of no further use.
    cache.retain(|cached, _| {
        !cached
            .iter()
            .any(|old| stamps.iter().any(|new| new.path() == old.path()))
    });
    cache.insert(stamps, Arc::clone(&summary));
    Ok(summary)
}

/// Reads row group `group` of the file at `path` and adds its columns `selected` to `partial`.
fn read_row_group(
    path: &Path,
    metadata: &ArrowReaderMetadata,
    group: usize,
    selected: &[usize],
    sample_every: u64,
    partial: &mut [ColumnPartial],
) -> Result<()> {
    let fail = |error: &dyn std::fmt::Display| ExecError::Parquet {
        path: path.to_path_buf(),
        message: error.to_string(),
    };
    let file = File::open(path).map_err(|error| fail(&error))?;
    let mask = ProjectionMask::roots(metadata.parquet_schema(), selected.iter().copied());
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
        .with_row_groups(vec![group])
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|error| fail(&error))?;
    // The decoder returns the projected columns in file order.
    let mut order: Vec<usize> = (0..selected.len()).collect();
    order.sort_by_key(|&position| selected[position]);
    let mut hashes = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|error| fail(&error))?;
        for (decoded, &position) in order.iter().enumerate() {
            partial[position].add(batch.column(decoded), sample_every, &mut hashes)?;
        }
    }
    Ok(())
}

/// One thread's statistics of one column, over the row groups it read.
#[derive(Debug, Default)]
struct ColumnPartial {
    rows: u64,
    nulls: u64,
    sketch: Option<HyperLogLog>,
    bounds: Option<(i64, i64)>,
    sample: Vec<i64>,
    /// Whether the column is not one whose values read as integers.
    not_integer: bool,
}

impl ColumnPartial {
    fn add(&mut self, values: &ArrayRef, sample_every: u64, hashes: &mut Vec<u64>) -> Result<()> {
        let arrow = ExecError::arrow("ANALYZE");
        let first_row = self.rows;
        self.rows += values.len() as u64;
        self.nulls += values.null_count() as u64;
        hashes.clear();
        hashes.resize(values.len(), 0);
        create_hashes_with_hasher([values.as_ref()], &SKETCH_HASHER, hashes)
            .map_err(ExecError::datafusion("ANALYZE"))?;
        let sketch = self.sketch.get_or_insert_with(HyperLogLog::new);
        match values.nulls() {
            None => sketch.insert_hashes(hashes),
            Some(valid) => valid
                .valid_indices()
                .for_each(|row| sketch.insert_hash(hashes[row])),
        }
        if self.not_integer {
            return Ok(());
        }
        let Some(integers) = integer_values(values).map_err(arrow)? else {
            self.not_integer = true;
            return Ok(());
        };
        let integers = integers.as_primitive::<Int64Type>();
        if let (Some(low), Some(high)) =
            (arrow::compute::min(integers), arrow::compute::max(integers))
        {
            self.bounds = Some(match self.bounds {
                Some((lowest, highest)) => (lowest.min(low), highest.max(high)),
                None => (low, high),
            });
        }
        // Every `sample_every`-th row of the column, counted from the row group's start.
        let offset = (sample_every - first_row % sample_every) % sample_every;
        self.sample.extend(
            (offset as usize..integers.len())
                .step_by(sample_every as usize)
                .filter(|&row| integers.is_valid(row))
                .map(|row| integers.value(row)),
        );
        Ok(())
    }

    fn merge(&mut self, other: ColumnPartial) {
        self.rows += other.rows;
        self.nulls += other.nulls;
        match (&mut self.sketch, other.sketch) {
            (Some(mine), Some(theirs)) => mine.merge(&theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.not_integer |= other.not_integer;
        self.bounds = match (self.bounds, other.bounds) {
            (Some((low, high)), Some((other_low, other_high))) => {
                Some((low.min(other_low), high.max(other_high)))
            }
            (bounds, None) | (None, bounds) => bounds,
        };
        self.sample.extend(other.sample);
    }

    fn finish(mut self, name: String, table_rows: u64) -> ColumnSummary {
        let non_null = table_rows.saturating_sub(self.nulls) as f64;
        let mut distinct = self
            .sketch
            .as_ref()
            .map_or(0.0, HyperLogLog::estimate)
            .min(non_null);
        let (bounds, histogram) = match self.bounds {
            Some((low, high)) if !self.not_integer => {
                distinct = distinct.min(high as f64 - low as f64 + 1.0);
                self.sample.sort_unstable();
                let histogram =
                    Histogram::from_sorted_sample(&self.sample, HISTOGRAM_BUCKETS, (low, high));
                (Some((low, high)), histogram.map(Arc::new))
            }
            _ => (None, None),
        };
        ColumnSummary {
            name,
            nulls: self.nulls,
            distinct: distinct.round(),
            bounds,
            histogram,
        }
    }
}

/// The values of an integer, date, timestamp or decimal (up to 18 digits; unscaled) column as
/// 64-bit integers; `None` for other types.
fn integer_values(
    values: &ArrayRef,
) -> std::result::Result<Option<ArrayRef>, arrow::error::ArrowError> {
    Ok(match values.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::Timestamp(_, _)
        | DataType::Date64 => Some(cast(values, &DataType::Int64)?),
        DataType::Date32 => Some(cast(&cast(values, &DataType::Int32)?, &DataType::Int64)?),
        DataType::Decimal128(precision, _) if *precision <= MAX_I64_DECIMAL_PRECISION => {
            Some(Arc::new(
                values
                    .as_primitive::<Decimal128Type>()
                    .unary::<_, Int64Type>(|unscaled| unscaled as i64),
            ))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::source::ParquetScan;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("k", DataType::Int32, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("price", DataType::Decimal128(12, 2), false),
            Field::new("day", DataType::Date32, false),
        ]))
    }

    /// Rows `ids` of the test table, in row groups of 1,000 rows: `k` is null on every fifth
    /// row and else `id % 300`; `name` takes 50 values; `price` is `id` cents; `day` is `id % 7`.
    fn write(path: &Path, ids: std::ops::Range<i64>) {
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids.clone())),
                Arc::new(Int32Array::from_iter(
                    ids.clone()
                        .map(|id| (id % 5 != 0).then_some((id % 300) as i32)),
                )),
                Arc::new(StringArray::from_iter_values(
                    ids.clone().map(|id| format!("name {}", id % 50)),
                )),
                Arc::new(
                    Decimal128Array::from_iter_values(ids.clone().map(i128::from))
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(Date32Array::from_iter_values(ids.map(|id| (id % 7) as i32))),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_000))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn near(estimate: f64, exact: f64) -> bool {
        (estimate - exact).abs() <= 0.03 * exact
    }

    #[test]
    fn a_full_read_counts_every_file_and_row_group() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().join("a.parquet"), dir.path().join("b.parquet")];
        write(&paths[0], 0..2_500);
        write(&paths[1], 2_500..10_000);
        let summary = analyze_parquet(&paths, None, 3).unwrap();
        assert_eq!(summary.rows, 10_000);
        let id = summary.column(0).unwrap();
        assert_eq!(
            (id.name.as_str(), id.nulls, id.bounds),
            ("id", 0, Some((0, 9_999)))
        );
        assert!(near(id.distinct, 10_000.0), "{}", id.distinct);
        let histogram = id.histogram.as_ref().unwrap();
        assert!((histogram.share(None, Some(2_499)) - 0.25).abs() < 0.02);
        let k = summary.column(1).unwrap();
        assert_eq!((k.nulls, k.bounds), (2_000, Some((1, 299))));
        assert!(near(k.distinct, 240.0), "{}", k.distinct);
        let name = summary.column(2).unwrap();
        assert_eq!(
            (name.nulls, name.bounds, name.histogram.is_none()),
            (0, None, true)
        );
        assert!(near(name.distinct, 50.0), "{}", name.distinct);
        // Decimals by their unscaled values, dates by their days.
        assert_eq!(summary.column(3).unwrap().bounds, Some((0, 9_999)));
        let day = summary.column(4).unwrap();
        assert_eq!((day.bounds, day.distinct), (Some((0, 6)), 7.0));

        // Scans of these files now plan with these statistics.
        let scan = ParquetScan::try_new(
            paths.clone(),
            vec![2, 1],
            Arc::new(Schema::new(vec![
                schema().field(2).clone(),
                schema().field(1).clone(),
            ])),
        )
        .unwrap();
        assert_eq!(scan.column_distinct(0), Some(name.distinct));
        assert_eq!(scan.column_null_fraction(1), Some(0.2));
        assert!(scan.column_histogram(1).is_some());
        assert!(scan.column_histogram(0).is_none());
    }

    #[test]
    fn named_columns_keep_the_others_statistics_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().join("t.parquet")];
        write(&paths[0], 0..3_000);
        let only_id = analyze_parquet(&paths, Some(&["ID".to_string()]), 2).unwrap();
        assert!(only_id.column(0).is_some());
        assert!(only_id.column(2).is_none());
        let then_name = analyze_parquet(&paths, Some(&["name".to_string()]), 2).unwrap();
        assert!(then_name.column(0).is_some());
        assert!(then_name.column(2).is_some());
        let unknown = analyze_parquet(&paths, Some(&["nope".to_string()]), 2).unwrap_err();
        assert!(
            unknown.to_string().contains("no column named nope"),
            "{unknown}"
        );

        // A rewritten file is another version: what was found of the old one no longer applies.
        write(&paths[0], 0..5_000);
        let (_, stamp) = footer(&paths[0]).unwrap();
        assert!(analyzed(&[stamp]).is_none());
        assert_eq!(analyze_parquet(&paths, None, 2).unwrap().rows, 5_000);
    }

    #[test]
    fn files_of_one_table_with_other_columns_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = vec![dir.path().join("a.parquet"), dir.path().join("b.parquet")];
        write(&paths[0], 0..10);
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&other),
            vec![Arc::new(Int64Array::from_iter_values(0..10))],
        )
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&paths[1]).unwrap(), other, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let error = analyze_parquet(&paths, None, 2).unwrap_err().to_string();
        assert!(error.contains("columns differ"), "{error}");
    }
}
