//! Pipeline sources: the morsels a pipeline starts from. A Parquet scan yields one morsel per
//! row group (or per range of a row group's rows, where it has too few row groups for the
//! threads), read with the `parquet` crate's Arrow reader from the file's memory mapping
//! (`file_cache`; projection pushed into the decoder),
//! skipping the row groups whose min/max statistics rule out the query's filters (DataFusion's
//! `PruningPredicate` decides) and, where a join gives it a few keys, the pages whose min/max
//! hold none of them (`page_pruning`); a scan of files `ANALYZE` read gives the planner its
//! statistics. A fallback runs a DataFusion subtree and yields its batches.
//!
//! Decimals of up to 18 digits stored as 64-bit integers can be read as `Decimal64`
//! ([`ParquetScan::narrow_schema`]) instead of the `Decimal128` the plan types them as: the
//! decoder then hands over its values as they are, and a filter or join probe right after the
//! scan widens only the rows it keeps or joins.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, AsArray, PrimitiveArray};
use arrow::datatypes::{DataType, Decimal64Type, Decimal128Type, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::datasource::physical_plan::parquet::{
    ParquetAccessPlan, ParquetFileMetrics, RowGroupAccessPlanFilter,
};
use datafusion::execution::TaskContext;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::basic::Type as PhysicalType;

use crate::analyze::{ColumnSummary, TableSummary};
use crate::error::{ExecError, Result};
use crate::executor::CancelHandle;
use crate::file_cache::FileStamp;
use crate::histogram::Histogram;
use crate::page_pruning::{KeyPages, intersect, rows_with_keys};

/// Rows per batch decoded from Parquet.
const PARQUET_BATCH_ROWS: usize = 32_768;

/// A scan of Parquet files with the columns a plan needs.
#[derive(Debug)]
pub struct ParquetScan {
    files: Vec<ScannedFile>,
    /// Indices of the file columns to read, in output order.
    projection: Vec<usize>,
    /// Schema of the scan's output (the projected columns, as the plan types them).
    schema: SchemaRef,
    /// `schema` with the decimals every file stores as 64-bit integers typed `Decimal64`, where
    /// there are any.
    narrow_schema: Option<SchemaRef>,
    /// Compressed bytes of the column chunks read so far.
    bytes_read: AtomicU64,
    /// What `ANALYZE` found of these files' columns, when it ran on exactly these versions.
    analyzed: Option<Arc<TableSummary>>,
}

#[derive(Debug, Clone)]
struct ScannedFile {
    path: PathBuf,
    /// The version of the file the footer was read from.
    stamp: FileStamp,
    metadata: ArrowReaderMetadata,
    /// `metadata` reading the scan's narrow decimals as `Decimal64`, where it has any.
    narrow_metadata: Option<ArrowReaderMetadata>,
    /// The row groups to read, ascending.
    row_groups: Vec<usize>,
}

/// Scans of fewer row groups than this many per thread split their row groups.
const MORSELS_PER_THREAD: usize = 2;
/// The fewest rows of a split beyond one per thread. Each split decodes its column chunks'
/// dictionary pages again (up to 1 MiB each): at 16K rows, TPC-H's one-group `customer` read in
/// four splits by two threads took about 75% more thread time than in two; from 16K to 64K,
/// TPC-H SF 1 on 2 threads went from 1.219–1.252 to 1.175–1.239 s (Q10 0.098–0.103 to
/// 0.086–0.092 s).
const MIN_SPLIT_ROWS: usize = 65_536;
/// The fewest rows of a split while there are fewer splits than threads: with many threads,
/// idle ones cost more than decoding dictionaries again (TPC-H SF 1 Q22 on 16 threads: 0.025 s
/// with `customer` in nine splits, 0.035 s in two).
const MIN_THREAD_SPLIT_ROWS: usize = 16_384;

/// One unit of scan work: a row group of a file, or a range of its rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowGroupMorsel {
    file: usize,
    row_group: usize,
    /// The first row (within the row group) and the number of rows read; `None` for all.
    rows: Option<(usize, usize)>,
}

impl ParquetScan {
    /// Opens `paths` (reading each footer once per process and file version) to scan columns `projection` (indices into the
    /// files' schema), producing `schema`.
    pub fn try_new(
        paths: Vec<PathBuf>,
        projection: Vec<usize>,
        schema: SchemaRef,
    ) -> Result<ParquetScan> {
        let files = paths
            .into_iter()
            .map(|path| {
                let (metadata, stamp) = crate::file_cache::footer(&path)?;
                let row_groups = (0..metadata.metadata().num_row_groups()).collect();
                Ok(ScannedFile {
                    path,
                    stamp,
                    metadata,
                    narrow_metadata: None,
                    row_groups,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let stamps: Vec<FileStamp> = files.iter().map(|file| file.stamp.clone()).collect();
        let mut scan = ParquetScan {
            analyzed: crate::analyze::analyzed(&stamps),
            files,
            projection,
            schema,
            narrow_schema: None,
            bytes_read: AtomicU64::new(0),
        };
        scan.narrow_decimals();
        Ok(scan)
    }

    /// Finds the output decimals of at most 18 digits that every file stores as 64-bit
    /// integers, and readers that hand them over as `Decimal64`.
    fn narrow_decimals(&mut self) {
        let narrow: Vec<usize> = (0..self.projection.len())
            .filter(|&output| {
                let column = self.projection[output];
                let wanted = self.schema.field(output).data_type();
                matches!(wanted, DataType::Decimal128(precision, _) if *precision <= 18)
                    && self.files.iter().all(|file| {
                        let parquet = file.metadata.parquet_schema();
                        let flat =
                            parquet.num_columns() == parquet.root_schema().get_fields().len();
                        flat && column < parquet.num_columns()
                            && parquet.column(column).physical_type() == PhysicalType::INT64
                            && file.metadata.schema().field(column).data_type() == wanted
                    })
            })
            .collect();
        if narrow.is_empty() {
            return;
        }
        let narrowed = |field: &Field| match field.data_type() {
            DataType::Decimal128(precision, scale) => field
                .clone()
                .with_data_type(DataType::Decimal64(*precision, *scale)),
            _ => field.clone(),
        };
        let mut readers = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let file_schema = file.metadata.schema();
            let mut fields: Vec<Field> = file_schema
                .fields()
                .iter()
                .map(|field| field.as_ref().clone())
                .collect();
            for &output in &narrow {
                let column = self.projection[output];
                fields[column] = narrowed(&fields[column]);
            }
            let hint = Arc::new(Schema::new_with_metadata(
                fields,
                file_schema.metadata().clone(),
            ));
            let options = ArrowReaderOptions::new().with_schema(hint);
            match ArrowReaderMetadata::try_new(Arc::clone(file.metadata.metadata()), options) {
                Ok(reader) => readers.push(reader),
                // A file the decoder cannot read narrow: every file is read as the plan types it.
                Err(_) => return,
            }
        }
        for (file, reader) in self.files.iter_mut().zip(readers) {
            file.narrow_metadata = Some(reader);
        }
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(output, field)| {
                if narrow.contains(&output) {
                    narrowed(field)
                } else {
                    field.as_ref().clone()
                }
            })
            .collect();
        self.narrow_schema = Some(Arc::new(Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        )));
    }

    /// The scan's output schema when read narrow (see [`ParquetScan::read`]): the plan's,
    /// with the decimals stored as 64-bit integers typed `Decimal64`; `None` where there are
    /// none.
    pub fn narrow_schema(&self) -> Option<&SchemaRef> {
        self.narrow_schema.as_ref()
    }

    /// Leaves out the row groups whose statistics prove that no row satisfies `predicate` (an
    /// expression over `table_schema`, the columns of the files as the plan types them). A
    /// predicate the statistics cannot decide prunes nothing.
    pub fn with_pruning(
        mut self,
        predicate: Arc<dyn PhysicalExpr>,
        table_schema: SchemaRef,
    ) -> ParquetScan {
        let Some(pruning) = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&table_schema))
            .build(predicate)
        else {
            return self;
        };
        let metrics = ExecutionPlanMetricsSet::new();
        for scanned in &mut self.files {
            let groups = scanned.metadata.metadata().row_groups();
            let mut filter =
                RowGroupAccessPlanFilter::new(ParquetAccessPlan::new_all(groups.len()));
            let file_metrics =
                ParquetFileMetrics::new(0, &scanned.path.display().to_string(), &metrics);
            filter.prune_by_statistics(
                &table_schema,
                scanned.metadata.parquet_schema(),
                groups,
                &pruning,
                &file_metrics,
            );
            scanned.row_groups = filter.row_group_indexes().collect();
        }
        self
    }

    /// Row groups in all the files, and those left out by statistics.
    pub fn row_groups_pruned(&self) -> (usize, usize) {
        self.files.iter().fold((0, 0), |(total, pruned), file| {
            let count = file.metadata.metadata().num_row_groups();
            (total + count, pruned + count - file.row_groups.len())
        })
    }

    /// The scan's output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows in all the scanned files.
    pub fn total_rows(&self) -> u64 {
        self.files
            .iter()
            .map(|file| file.metadata.metadata().file_metadata().num_rows().max(0) as u64)
            .sum()
    }

    /// What `ANALYZE` found of output column `index`, if it ran on these files.
    fn analyzed_column(&self, index: usize) -> Option<&ColumnSummary> {
        self.analyzed.as_ref()?.column(*self.projection.get(index)?)
    }

    /// The estimated number of distinct values of output column `index`: `ANALYZE`'s count,
    /// else one sampled from the first file (see `column_stats`).
    pub fn column_distinct(&self, index: usize) -> Option<f64> {
        if let Some(analyzed) = self.analyzed_column(index) {
            return Some(analyzed.distinct);
        }
        let file = self.files.first()?;
        crate::column_stats::distinct_estimate(
            &file.stamp,
            &file.metadata,
            *self.projection.get(index)?,
            self.total_rows(),
        )
    }

    /// A sample of output column `index`: the first values of the first file (see
    /// `column_stats`).
    pub fn column_sample(&self, index: usize) -> Option<arrow::array::ArrayRef> {
        let file = self.files.first()?;
        crate::column_stats::column_sample(
            &file.stamp,
            &file.metadata,
            *self.projection.get(index)?,
        )
    }

    /// The smallest and largest value of output column `index` in every file, from `ANALYZE`
    /// or else the files' statistics, when it is an integer column whose statistics give both.
    pub fn column_bounds(&self, index: usize) -> Option<(i64, i64)> {
        if let Some(analyzed) = self.analyzed_column(index) {
            return analyzed.bounds;
        }
        let column = *self.projection.get(index)?;
        sabot_kernels::union_of_ranges(
            self.files
                .iter()
                .map(|file| crate::column_stats::integer_bounds(&file.metadata, column)),
        )
    }

    /// The equi-depth histogram `ANALYZE` made of output column `index`.
    pub fn column_histogram(&self, index: usize) -> Option<Arc<Histogram>> {
        self.analyzed_column(index)?.histogram.clone()
    }

    /// The share of null values in output column `index`, where `ANALYZE` counted them.
    pub fn column_null_fraction(&self, index: usize) -> Option<f64> {
        let analyzed = self.analyzed_column(index)?;
        let rows = self.analyzed.as_ref()?.rows;
        Some(if rows == 0 {
            0.0
        } else {
            analyzed.nulls as f64 / rows as f64
        })
    }

    /// The share `index` of `count` of this scan: every `count`-th of its row groups (across
    /// all its files), starting at the `index`-th. The `count` shares together read each row
    /// group once.
    pub fn partition(&self, index: usize, count: usize) -> ParquetScan {
        let mut position = 0;
        let files = self
            .files
            .iter()
            .map(|file| {
                let row_groups = file
                    .row_groups
                    .iter()
                    .filter(|_| {
                        let mine = position % count.max(1) == index;
                        position += 1;
                        mine
                    })
                    .copied()
                    .collect();
                ScannedFile {
                    row_groups,
                    ..file.clone()
                }
            })
            .collect();
        ParquetScan {
            files,
            projection: self.projection.clone(),
            schema: Arc::clone(&self.schema),
            narrow_schema: self.narrow_schema.clone(),
            bytes_read: AtomicU64::new(0),
            analyzed: self.analyzed.clone(),
        }
    }

    /// Compressed bytes of the column chunks read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// The files scanned.
    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.iter().map(|file| &file.path)
    }

    /// The scan's work for `threads` threads, in file and row order: a morsel per row group,
    /// or where the scan has fewer than `MORSELS_PER_THREAD` row groups per thread (a table of
    /// one large row group), each row group split into equal row ranges so that every thread
    /// has some to read; splits read pages their neighbours also read (and each its column
    /// chunks' dictionaries), so they are no smaller than `MIN_SPLIT_ROWS`, except that a row
    /// group may split into one range per thread of at least `MIN_THREAD_SPLIT_ROWS`.
    pub(crate) fn morsels(&self, threads: usize) -> Vec<RowGroupMorsel> {
        let groups: Vec<(usize, usize)> = self
            .files
            .iter()
            .enumerate()
            .flat_map(|(file, scanned)| {
                scanned
                    .row_groups
                    .iter()
                    .map(move |&row_group| (file, row_group))
            })
            .collect();
        let wanted = threads.max(1) * MORSELS_PER_THREAD;
        let splits = if groups.is_empty() || groups.len() >= wanted {
            1
        } else {
            wanted.div_ceil(groups.len())
        };
        let mut morsels = Vec::with_capacity(groups.len() * splits);
        for (file, row_group) in groups {
            let rows = self.files[file]
                .metadata
                .metadata()
                .row_group(row_group)
                .num_rows()
                .max(0) as usize;
            let parts = splits
                .min((rows / MIN_SPLIT_ROWS).max(threads.min(rows / MIN_THREAD_SPLIT_ROWS)))
                .max(1);
            if parts == 1 {
                morsels.push(RowGroupMorsel {
                    file,
                    row_group,
                    rows: None,
                });
                continue;
            }
            morsels.extend((0..parts).map(|part| {
                let (first, end) = (rows * part / parts, rows * (part + 1) / parts);
                RowGroupMorsel {
                    file,
                    row_group,
                    rows: Some((first, end - first)),
                }
            }));
        }
        morsels
    }

    /// Decodes one row group or range of its rows, calling `emit` with each batch; only the
    /// pages that may hold one of `key_pages`' keys in its column, where the file's page index
    /// tells. With `narrow`, the batches have the [`ParquetScan::narrow_schema`] where there
    /// is one.
    pub(crate) fn read(
        &self,
        morsel: RowGroupMorsel,
        key_pages: &[KeyPages],
        narrow: bool,
        mut emit: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let scanned = &self.files[morsel.file];
        let (metadata, schema) = match (&scanned.narrow_metadata, &self.narrow_schema) {
            (Some(metadata), Some(schema)) if narrow => (metadata, schema),
            _ => (&scanned.metadata, &self.schema),
        };
        let fail = |error: &dyn std::fmt::Display| parquet_error(&scanned.path, error);
        let file = crate::file_cache::mapped(&scanned.stamp)?;
        let parquet_schema = scanned.metadata.parquet_schema();
        let mask = ProjectionMask::roots(parquet_schema, self.projection.iter().copied());
        let group_rows = scanned
            .metadata
            .metadata()
            .row_group(morsel.row_group)
            .num_rows()
            .max(0) as usize;
        let (first, count) = morsel.rows.unwrap_or((0, group_rows));
        let mut rows: Vec<Range<usize>> = std::iter::once(first..first + count).collect();
        // Leaf and root columns are one where the schema is flat.
        let flat = parquet_schema.num_columns() == parquet_schema.root_schema().get_fields().len();
        for filter in key_pages.iter().filter(|_| flat) {
            if let Some(kept) = rows_with_keys(
                scanned.metadata.metadata(),
                morsel.row_group,
                self.projection[filter.column],
                &filter.keys,
            ) {
                rows = intersect(&rows, &kept);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let selected_rows: usize = rows.iter().map(ExactSizeIterator::len).sum();
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
                .with_row_groups(vec![morsel.row_group])
                .with_projection(mask)
                .with_batch_size(PARQUET_BATCH_ROWS);
        if rows.len() != 1 || rows[0] != (0..group_rows) {
            // The offset index (read with the footer) lets the decoder skip the pages outside.
            builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
                rows.into_iter(),
                group_rows,
            ));
        }
        let reader = builder.build().map_err(|error| fail(&error))?;
        // The decoder returns columns in file order; the plan may want another order or types.
        let file_order = self.file_order();
        let row_group = scanned.metadata.metadata().row_group(morsel.row_group);
        let chunk_bytes: i64 = self
            .projection
            .iter()
            .filter_map(|&column| row_group.columns().get(column))
            .map(|chunk| chunk.compressed_size())
            .sum();
        let share = selected_rows as f64 / group_rows.max(1) as f64;
        self.bytes_read.fetch_add(
            (chunk_bytes.max(0) as f64 * share) as u64,
            Ordering::Relaxed,
        );
        for batch in reader {
            let batch = batch.map_err(|error| fail(&error))?;
            let columns = file_order
                .iter()
                .zip(schema.fields())
                .map(|(&position, field)| {
                    let column = batch.column(position);
                    if column.data_type() == field.data_type() {
                        Ok(Arc::clone(column))
                    } else {
                        arrow::compute::cast(column, field.data_type())
                            .map_err(ExecError::arrow("ParquetScan"))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            // A scan of no columns (`count(*)`) still has its rows.
            let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            let batch = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &rows)
                .map_err(ExecError::arrow("ParquetScan"))?;
            emit(batch)?;
        }
        Ok(())
    }

    /// For each output column, its position among the decoded (file-ordered) columns.
    fn file_order(&self) -> Vec<usize> {
        let mut sorted = self.projection.clone();
        sorted.sort_unstable();
        self.projection
            .iter()
            .map(|index| sorted.binary_search(index).unwrap_or_default())
            .collect()
    }
}

/// `batch` (read narrow) as a batch of `schema`, the plan's: its `Decimal64` columns widened to
/// the `Decimal128` the schema gives.
pub(crate) fn widened(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| widened_column(column, field.data_type()))
        .collect::<Result<Vec<_>>>()?;
    let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &rows)
        .map_err(ExecError::arrow("ParquetScan"))
}

/// `column` as `data_type`: a `Decimal64` column widened to the `Decimal128` of the same
/// precision and scale; any other column as it is.
pub(crate) fn widened_column(column: &ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    match (column.data_type(), data_type) {
        (DataType::Decimal64(..), DataType::Decimal128(precision, scale)) => {
            let narrow = column.as_primitive::<Decimal64Type>();
            let wide: PrimitiveArray<Decimal128Type> = narrow.unary(i128::from);
            Ok(Arc::new(
                wide.with_precision_and_scale(*precision, *scale)
                    .map_err(ExecError::arrow("ParquetScan"))?,
            ))
        }
        _ => Ok(Arc::clone(column)),
    }
}

fn parquet_error(path: &std::path::Path, error: impl std::fmt::Display) -> ExecError {
    ExecError::Parquet {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// A subtree Sabot cannot run yet, run by DataFusion; its output feeds Sabot's pipelines.
pub struct FallbackSource {
    plan: Arc<dyn ExecutionPlan>,
    task_context: Arc<TaskContext>,
    runtime: tokio::runtime::Handle,
    /// The logical subtree, in one line.
    pub subtree: String,
    /// Why Sabot could not run it.
    pub reason: String,
}

impl std::fmt::Debug for FallbackSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackSource")
            .field("reason", &self.reason)
            .finish()
    }
}

impl FallbackSource {
    /// A fallback that runs `plan` (DataFusion's plan of `subtree`) on `runtime`.
    pub fn new(
        plan: Arc<dyn ExecutionPlan>,
        task_context: Arc<TaskContext>,
        runtime: tokio::runtime::Handle,
        subtree: String,
        reason: String,
    ) -> FallbackSource {
        FallbackSource {
            plan,
            task_context,
            runtime,
            subtree,
            reason,
        }
    }

    /// DataFusion's physical plan of the subtree.
    pub fn plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }

    /// DataFusion's plan of the subtree, with its metrics once it ran.
    pub fn display(&self, with_metrics: bool) -> String {
        display_datafusion_plan(self.plan.as_ref(), with_metrics)
    }

    /// Runs the subtree to completion, or until `cancel` is cancelled (DataFusion's tasks are
    /// dropped within a few milliseconds). Safe from any thread, inside an async runtime or not.
    pub(crate) fn collect(&self, cancel: &CancelHandle) -> Result<Vec<RecordBatch>> {
        let (plan, context, cancel) = (
            Arc::clone(&self.plan),
            Arc::clone(&self.task_context),
            cancel.clone(),
        );
        let task = self.runtime.spawn(async move {
            tokio::select! {
                collected = datafusion::physical_plan::collect(plan, context) => {
                    collected.map_err(ExecError::datafusion("Fallback"))
                }
                () = cancelled(&cancel) => Err(ExecError::Cancelled),
            }
        });
        futures::executor::block_on(task).map_err(|error| ExecError::Panicked {
            message: format!("fallback task: {error}"),
        })?
    }
}

/// Resolves once `cancel` is cancelled, looking every few milliseconds.
async fn cancelled(cancel: &CancelHandle) {
    const POLL: std::time::Duration = std::time::Duration::from_millis(5);
    while !cancel.is_cancelled() {
        tokio::time::sleep(POLL).await;
    }
}

/// A DataFusion physical plan as indented text; with `metrics`, each operator's measurements.
pub fn display_datafusion_plan(plan: &dyn ExecutionPlan, metrics: bool) -> String {
    let shown = if metrics {
        DisplayableExecutionPlan::with_metrics(plan)
    } else {
        DisplayableExecutionPlan::new(plan)
    };
    shown.indent(false).to_string()
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use arrow::array::{Decimal128Array, Int64Array};
    use arrow::datatypes::Int64Type;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A file of `ids` in row groups of `group_rows` rows and pages of 1,000 rows.
    fn write(path: &std::path::Path, ids: std::ops::Range<i64>, group_rows: usize) -> SchemaRef {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(ids))],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .set_data_page_row_count_limit(1_000)
            .set_write_batch_size(1_000)
            .build();
        let file = File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        schema
    }

    fn read_all(scan: &ParquetScan, morsels: &[RowGroupMorsel]) -> Vec<i64> {
        let mut ids = Vec::new();
        for &morsel in morsels {
            scan.read(morsel, &[], false, |batch| {
                ids.extend(batch.column(0).as_primitive::<Int64Type>().values());
                Ok(())
            })
            .unwrap();
        }
        ids
    }

    #[test]
    fn a_scan_of_few_row_groups_splits_them_and_still_reads_each_row_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one_group.parquet");
        let schema = write(&path, 0..400_000, 400_000);
        let scan = ParquetScan::try_new(vec![path], vec![0], schema).unwrap();
        // One row group for 4 threads: 8 splits wanted, 6 of at least `MIN_SPLIT_ROWS` rows.
        let morsels = scan.morsels(4);
        assert_eq!(morsels.len(), 400_000 / MIN_SPLIT_ROWS);
        assert_eq!(morsels.len(), 6);
        assert_eq!(read_all(&scan, &morsels), (0..400_000).collect::<Vec<_>>());
        // One thread: two splits.
        assert_eq!(scan.morsels(1).len(), 2);
        // 16 threads: 32 splits wanted, 24 of at least `MIN_THREAD_SPLIT_ROWS`, but one per
        // thread at most where they are shorter than `MIN_SPLIT_ROWS`.
        assert_eq!(scan.morsels(16).len(), 16);
        assert_eq!(
            read_all(&scan, &scan.morsels(16)),
            (0..400_000).collect::<Vec<_>>()
        );
        assert!(scan.bytes_read() > 0);
    }

    #[test]
    fn small_decimals_stored_as_integers_read_narrow_and_widen_to_what_the_plan_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decimals.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Decimal128(15, 2), true),
            Field::new("large", DataType::Decimal128(30, 2), true),
        ]));
        let small: Decimal128Array = (0..1000)
            .map(|row: i128| (row % 9 != 0).then_some(row * 1_000_003 - 400_000_000))
            .collect::<Decimal128Array>()
            .with_precision_and_scale(15, 2)
            .unwrap();
        let large = Decimal128Array::from_iter_values((0..1000).map(|row: i128| row << 70))
            .with_precision_and_scale(30, 2)
            .unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..1000)),
                Arc::new(small),
                Arc::new(large),
            ],
        )
        .unwrap();
        let file = File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        // Read in another order: `small` alone turns narrow (`large` needs more than 64 bits).
        let plan_schema = Arc::new(schema.project(&[1, 2, 0]).unwrap());
        let scan =
            ParquetScan::try_new(vec![path], vec![1, 2, 0], Arc::clone(&plan_schema)).unwrap();
        let narrow_schema = scan.narrow_schema().unwrap();
        let types: Vec<&DataType> = narrow_schema
            .fields()
            .iter()
            .map(|field| field.data_type())
            .collect();
        assert_eq!(
            types,
            [
                &DataType::Decimal64(15, 2),
                &DataType::Decimal128(30, 2),
                &DataType::Int64
            ]
        );
        let read = |narrow: bool| {
            let mut batches = Vec::new();
            for morsel in scan.morsels(1) {
                scan.read(morsel, &[], narrow, |batch| {
                    batches.push(batch);
                    Ok(())
                })
                .unwrap();
            }
            batches
        };
        let wide = read(false);
        let narrow = read(true);
        assert_eq!(narrow[0].schema(), *narrow_schema);
        let widened: Vec<RecordBatch> = narrow
            .iter()
            .map(|batch| widened(batch, &plan_schema).unwrap())
            .collect();
        assert_eq!(widened, wide);
        assert_eq!(wide[0], batch.project(&[1, 2, 0]).unwrap());
    }

    #[test]
    fn a_scan_of_enough_row_groups_reads_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.parquet");
        let schema = write(&path, 0..40_000, 5_000);
        let scan = ParquetScan::try_new(vec![path], vec![0], schema).unwrap();
        let morsels = scan.morsels(2);
        assert_eq!(morsels.len(), 8);
        assert!(morsels.iter().all(|morsel| morsel.rows.is_none()));
        assert_eq!(read_all(&scan, &morsels), (0..40_000).collect::<Vec<_>>());
        // Small row groups are not split however many threads there are.
        assert_eq!(scan.morsels(16).len(), 8);
    }
}
