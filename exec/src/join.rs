//! Hash join. The build side is materialized into a join table (fixed-width keys packed into one
//! word per row and indexed by `sabot-kernels`' partitioned join table, built in parallel; other
//! keys in Arrow's row format, one hash-table entry per distinct key, duplicate rows chained);
//! the probe side streams through
//! the table inside its own pipeline, one morsel per task. Inner, left outer, semi, anti and mark
//! joins (the last is what DataFusion plans for `EXISTS` inside `OR`), with an optional residual
//! filter over the joined columns; a join without keys pairs every row (a cross join).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ahash::RandomState;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, UInt32Array, new_empty_array, new_null_array,
};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_plan::PhysicalExpr;
use hashbrown::HashTable;
use sabot_kernels::{JoinHashTable, JoinPartition, KeyPacking, PartitionedRows, hash_u64_slice};
use sabot_scheduler::Scheduler;

use crate::aggregate::evaluate_all;
use crate::error::{ExecError, Result};
use crate::memory::{MemoryBudget, Reservation};
use crate::page_pruning::distinct_keys;
use crate::parallel::in_parallel;
use crate::source::{widened, widened_column};

const OPERATOR: &str = "HashJoin";
/// Marks the end of a chain of build rows with the same key.
const CHAIN_END: u32 = u32::MAX;

/// Which rows a join keeps. The probe side is the logical left input unless the spec says
/// the build side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    /// Every probe (left) row; build columns null where nothing matches.
    Left,
    /// Probe rows with a match.
    LeftSemi,
    /// Probe rows without a match.
    LeftAnti,
    /// Every probe row, plus a boolean column saying whether it has a match.
    LeftMark,
    /// Every row of both inputs; the other input's columns null where nothing matches.
    Full,
}

/// What a hash join computes.
#[derive(Debug)]
pub struct JoinSpec {
    pub kind: JoinKind,
    /// Key expressions over the probe input.
    pub probe_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Key expressions over the build input, pairwise equal to `probe_keys`.
    pub build_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Residual condition over the joined columns (logical left columns, then right).
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// Schema of the joined columns, logical left then right (the side that may find no match
    /// nullable: right for left joins, both for full joins).
    pub joined_schema: SchemaRef,
    /// Whether the build side is the logical left input.
    pub build_is_left: bool,
    /// Whether this is a semi join that drops only rows a join above drops anyway (an
    /// aggregation's input filtered by the keys that join can match): the nodes above it
    /// estimate their share of their base table as if it kept every row.
    pub key_prefilter: bool,
}

impl JoinSpec {
    /// How the join finds its pairs: `HashJoin` (a hash table of the build side's keys) or,
    /// for a join without equality keys, `NestedLoopJoin` (every probe row against every build
    /// row, the filter deciding).
    pub fn algorithm(&self) -> &'static str {
        if self.probe_keys.is_empty() {
            "NestedLoopJoin"
        } else {
            "HashJoin"
        }
    }

    /// Whether the join must emit build rows after the probe side is done: a full join, or a
    /// left, semi, anti or mark join that builds on the logical left input. Its probe pipeline
    /// marks the build rows it matches (left and full joins also emit their pairs as they go).
    pub fn emits_build_side(&self) -> bool {
        self.kind == JoinKind::Full || (self.build_is_left && self.kind != JoinKind::Inner)
    }
}

impl fmt::Display for JoinSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .probe_keys
            .iter()
            .zip(&self.build_keys)
            .map(|(probe, build)| format!("{probe} = {build}"))
            .collect();
        write!(f, "{:?}, on=[{}]", self.kind, keys.join(", "))?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter={filter}")?;
        }
        let build = if self.build_is_left { "left" } else { "right" };
        write!(f, ", build={build}")
    }
}

/// The materialized build side.
pub(crate) struct JoinTable {
    batch: RecordBatch,
    index: JoinIndex,
    /// One bit per build row, set when a probe row matches it (joins that emit the build side).
    matched_build_rows: Vec<AtomicU64>,
    _reservation: Reservation,
}

/// How the build rows are found by key.
enum JoinIndex {
    /// No keys: every probe row pairs with every build row.
    Cross,
    /// Fixed-width keys packed into one word per row (`sabot-kernels`).
    Packed {
        packing: KeyPacking,
        table: JoinHashTable,
    },
    /// Any other keys, in Arrow's row format.
    Rows(RowIndex),
}

/// Build rows by key in Arrow's row format: one hash-table entry per distinct key, duplicate
/// rows chained.
struct RowIndex {
    converter: RowConverter,
    keys: Rows,
    key_hashes: Vec<u64>,
    key_first_row: Vec<u32>,
    map: HashTable<u32>,
    next_row: Vec<u32>,
    hasher: RandomState,
}

impl JoinTable {
    /// Builds the table from the build side's batches, building a large packed table's hash
    /// partitions in parallel on `scheduler`.
    pub(crate) fn build(
        spec: &JoinSpec,
        batches: &[RecordBatch],
        schema: &SchemaRef,
        budget: &Arc<MemoryBudget>,
        scheduler: &Scheduler,
    ) -> Result<JoinTable> {
        let mut reservation = Reservation::new(budget, OPERATOR);
        let batch = concat_compacted(schema, batches, scheduler)?;
        let input_bytes = batch.get_array_memory_size();
        reservation.resize(input_bytes)?;
        let rows = batch.num_rows();
        if rows >= CHAIN_END as usize {
            return Err(ExecError::Arrow {
                operator: OPERATOR,
                source: arrow::error::ArrowError::InvalidArgumentError(format!(
                    "a build side of {rows} rows"
                )),
            });
        }
        let matched_build_rows = if spec.emits_build_side() {
            (0..rows.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()
        } else {
            Vec::new()
        };
        let (index, index_bytes) = if spec.build_keys.is_empty() {
            (JoinIndex::Cross, 0)
        } else {
            let key_columns = evaluate_all(OPERATOR, &spec.build_keys, &batch)?;
            match KeyPacking::for_join_build(&key_columns) {
                Some(packing) => {
                    let table = build_packed(&packing, &key_columns, scheduler)?;
                    let bytes = table.memory_size();
                    (JoinIndex::Packed { packing, table }, bytes)
                }
                None => {
                    let index = RowIndex::build(&key_columns)?;
                    let bytes = index.memory_size();
                    (JoinIndex::Rows(index), bytes)
                }
            }
        };
        reservation.resize(input_bytes + index_bytes)?;
        Ok(JoinTable {
            batch,
            index,
            matched_build_rows,
            _reservation: reservation,
        })
    }

    /// Every (probe row, build row) pair with equal keys.
    fn candidate_pairs(
        &self,
        spec: &JoinSpec,
        probe: &RecordBatch,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let (mut probe_rows, mut build_rows) = (Vec::new(), Vec::new());
        match &self.index {
            JoinIndex::Cross => {
                for probe_row in 0..probe.num_rows() as u32 {
                    for build_row in 0..self.batch.num_rows() as u32 {
                        probe_rows.push(probe_row);
                        build_rows.push(build_row);
                    }
                }
            }
            JoinIndex::Packed { packing, table } => {
                let (keys, usable) = packed_probe_keys(packing, spec, probe)?;
                probe_rows.reserve(probe.num_rows());
                build_rows.reserve(probe.num_rows());
                table.probe(&keys, &usable, &mut probe_rows, &mut build_rows);
            }
            JoinIndex::Rows(index) => {
                let key_columns = evaluate_all(OPERATOR, &spec.probe_keys, probe)?;
                index.probe(&key_columns, &mut probe_rows, &mut build_rows)?;
            }
        }
        Ok((probe_rows, build_rows))
    }

    /// Whether rows can be filtered by key alone before they reach the probe (see
    /// [`JoinTable::key_filter`]): one key packed into a table with a cheap membership test.
    pub(crate) fn has_key_filter(&self) -> bool {
        match &self.index {
            JoinIndex::Packed { packing, table } => {
                packing.key_columns() == 1 && table.has_key_filter()
            }
            _ => false,
        }
    }

    /// The build side's distinct non-null key values, ascending (`page_pruning`), where the
    /// join has one key column of a type that prunes pages and at most `max_rows` build rows.
    pub(crate) fn build_key_values(
        &self,
        spec: &JoinSpec,
        max_rows: usize,
    ) -> Result<Option<Vec<i64>>> {
        let [key] = spec.build_keys.as_slice() else {
            return Ok(None);
        };
        if self.batch.num_rows() > max_rows {
            return Ok(None);
        }
        let column = key
            .evaluate(&self.batch)
            .and_then(|value| value.into_array(self.batch.num_rows()))
            .map_err(ExecError::datafusion(OPERATOR))?;
        Ok(distinct_keys(&column))
    }

    /// The rows of `key` (values of the join's one probe key) that may find a build row:
    /// exact for a table indexed by key, by the key bitmap for a hashed one. A row it drops has
    /// no match, so a join that drops unmatched probe rows may drop it earlier.
    pub(crate) fn key_filter(&self, key: &ArrayRef) -> Result<BooleanArray> {
        let JoinIndex::Packed { packing, table } = &self.index else {
            return Ok(BooleanArray::from(vec![true; key.len()]));
        };
        let (mut keys, mut usable) = (Vec::new(), Vec::new());
        packing
            .pack(std::slice::from_ref(key), &mut keys, &mut usable)
            .map_err(ExecError::kernel(OPERATOR))?;
        Ok(BooleanArray::new(table.may_match(&keys, &usable), None))
    }

    /// Whether each probe row has a build row with an equal key that passes the residual filter.
    fn probe_matched(&self, spec: &JoinSpec, probe: &RecordBatch) -> Result<Vec<bool>> {
        if let (JoinIndex::Packed { packing, table }, None) = (&self.index, &spec.filter) {
            let (keys, usable) = packed_probe_keys(packing, spec, probe)?;
            let mut found = Vec::new();
            table.contains(&keys, &usable, &mut found);
            return Ok(found);
        }
        let (probe_rows, _) = self.matching_pairs(spec, probe)?;
        let mut matched = vec![false; probe.num_rows()];
        for &row in &probe_rows {
            matched[row as usize] = true;
        }
        Ok(matched)
    }

    /// The (probe row, build row) pairs with equal keys that pass the residual filter.
    fn matching_pairs(&self, spec: &JoinSpec, probe: &RecordBatch) -> Result<(Vec<u32>, Vec<u32>)> {
        let (probe_rows, build_rows) = self.candidate_pairs(spec, probe)?;
        let Some(filter) = &spec.filter else {
            return Ok((probe_rows, build_rows));
        };
        let joined = self.joined(spec, probe, probe_rows.clone(), build_rows.clone())?;
        let keep = filter
            .evaluate(&joined)
            .and_then(|value| value.into_array(joined.num_rows()))
            .map_err(ExecError::datafusion(OPERATOR))?;
        let keep = as_mask(&keep)?;
        let kept = |rows: &[u32]| -> Vec<u32> {
            rows.iter()
                .enumerate()
                .filter(|(pair, _)| keep.is_valid(*pair) && keep.value(*pair))
                .map(|(_, &row)| row)
                .collect()
        };
        Ok((kept(&probe_rows), kept(&build_rows)))
    }

    /// Marks the build rows that rows of `probe` match (joins that emit the build side); a left
    /// join also returns the matched pairs, a full join the pairs and the unmatched probe rows,
    /// as rows of `output_schema`.
    pub(crate) fn probe_marking(
        &self,
        spec: &JoinSpec,
        probe: &RecordBatch,
        output_schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>> {
        let (probe_rows, build_rows) = self.matching_pairs(spec, probe)?;
        for &row in &build_rows {
            let row = row as usize;
            let (word, bit) = (&self.matched_build_rows[row / 64], 1 << (row % 64));
            // A read first: most rows are marked already, and a read leaves the word's cache
            // line shared where an atomic write would pull it from the other threads.
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
        let rows = match spec.kind {
            JoinKind::Full => {
                self.with_unmatched_probe_rows(spec, probe, probe_rows, build_rows)?
            }
            JoinKind::Left if !probe_rows.is_empty() => {
                self.joined(spec, probe, probe_rows, build_rows)?
            }
            _ => return Ok(None),
        };
        with_schema(rows, output_schema).map(Some)
    }

    /// The build rows a left, semi, anti, mark or full join adds once every probe row was seen.
    pub(crate) fn emit_build_side(
        &self,
        spec: &JoinSpec,
        output_schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let matched: Vec<bool> = (0..self.batch.num_rows())
            .map(|row| {
                self.matched_build_rows[row / 64].load(Ordering::Relaxed) & (1 << (row % 64)) != 0
            })
            .collect();
        match spec.kind {
            JoinKind::Left | JoinKind::Full => {
                let unmatched: Vec<u32> = (0..matched.len() as u32)
                    .filter(|&row| !matched[row as usize])
                    .collect();
                let unmatched_count = unmatched.len();
                let indices = UInt32Array::from(unmatched);
                let build_columns = self
                    .batch
                    .columns()
                    .iter()
                    .map(|column| {
                        take(column.as_ref(), &indices, None).map_err(ExecError::arrow(OPERATOR))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let fields = spec.joined_schema.fields();
                let build_width = self.batch.num_columns();
                let probe_fields = if spec.build_is_left {
                    &fields[build_width..]
                } else {
                    &fields[..fields.len() - build_width]
                };
                let probe_nulls = probe_fields
                    .iter()
                    .map(|field| new_null_array(field.data_type(), unmatched_count));
                let columns: Vec<ArrayRef> = if spec.build_is_left {
                    build_columns.into_iter().chain(probe_nulls).collect()
                } else {
                    probe_nulls.chain(build_columns).collect()
                };
                let options =
                    arrow::array::RecordBatchOptions::new().with_row_count(Some(unmatched_count));
                RecordBatch::try_new_with_options(Arc::clone(output_schema), columns, &options)
                    .map_err(ExecError::arrow(OPERATOR))
            }
            JoinKind::LeftMark => {
                let mut columns = self.batch.columns().to_vec();
                columns.push(Arc::new(BooleanArray::from(matched)) as ArrayRef);
                RecordBatch::try_new(Arc::clone(output_schema), columns)
                    .map_err(ExecError::arrow(OPERATOR))
            }
            kind => {
                let keep = kind == JoinKind::LeftSemi;
                let mask = BooleanArray::from(
                    matched
                        .into_iter()
                        .map(|matched| matched == keep)
                        .collect::<Vec<_>>(),
                );
                filter_record_batch(&self.batch, &mask).map_err(ExecError::arrow(OPERATOR))
            }
        }
    }

    /// Joins one probe batch, producing rows of `output_schema`.
    pub(crate) fn probe(
        &self,
        spec: &JoinSpec,
        probe: &RecordBatch,
        output_schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let output = match spec.kind {
            JoinKind::Inner => {
                let (probe_rows, build_rows) = self.matching_pairs(spec, probe)?;
                self.joined(spec, probe, probe_rows, build_rows)?
            }
            JoinKind::Left | JoinKind::Full => {
                let (probe_rows, build_rows) = self.matching_pairs(spec, probe)?;
                self.with_unmatched_probe_rows(spec, probe, probe_rows, build_rows)?
            }
            JoinKind::LeftSemi | JoinKind::LeftAnti => {
                let keep = spec.kind == JoinKind::LeftSemi;
                let matched = self.probe_matched(spec, probe)?;
                let mask = BooleanArray::new(
                    BooleanBuffer::collect_bool(matched.len(), |row| matched[row] == keep),
                    None,
                );
                let kept = filter_record_batch(probe, &mask).map_err(ExecError::arrow(OPERATOR))?;
                widened(&kept, output_schema)?
            }
            JoinKind::LeftMark => {
                let mut columns = probe
                    .columns()
                    .iter()
                    .zip(output_schema.fields())
                    .map(|(column, field)| widened_column(column, field.data_type()))
                    .collect::<Result<Vec<_>>>()?;
                let matched = self.probe_matched(spec, probe)?;
                let marks = BooleanBuffer::collect_bool(matched.len(), |row| matched[row]);
                columns.push(Arc::new(BooleanArray::new(marks, None)) as ArrayRef);
                RecordBatch::try_new(Arc::clone(output_schema), columns)
                    .map_err(ExecError::arrow(OPERATOR))?
            }
        };
        match spec.kind {
            JoinKind::Inner | JoinKind::Left | JoinKind::Full => with_schema(output, output_schema),
            _ => Ok(output),
        }
    }

    /// The joined pairs, then each probe row without a pair joined with nulls.
    fn with_unmatched_probe_rows(
        &self,
        spec: &JoinSpec,
        probe: &RecordBatch,
        probe_rows: Vec<u32>,
        build_rows: Vec<u32>,
    ) -> Result<RecordBatch> {
        let mut matched = vec![false; probe.num_rows()];
        for &row in &probe_rows {
            matched[row as usize] = true;
        }
        let mut probe_all: Vec<u32> = probe_rows;
        let mut build_all: Vec<Option<u32>> = build_rows.into_iter().map(Some).collect();
        for (row, _) in matched.iter().enumerate().filter(|(_, matched)| !**matched) {
            probe_all.push(row as u32);
            build_all.push(None);
        }
        self.assemble(
            spec,
            probe,
            &UInt32Array::from(probe_all),
            &UInt32Array::from(build_all),
        )
    }

    fn joined(
        &self,
        spec: &JoinSpec,
        probe: &RecordBatch,
        probe_rows: Vec<u32>,
        build_rows: Vec<u32>,
    ) -> Result<RecordBatch> {
        let probe_indices = UInt32Array::from(probe_rows);
        let build_indices = UInt32Array::from(build_rows);
        self.assemble(spec, probe, &probe_indices, &build_indices)
    }

    /// The joined columns (logical left, then right) for pairs of probe and build rows; a null
    /// build index gives nulls.
    fn assemble(
        &self,
        spec: &JoinSpec,
        probe: &RecordBatch,
        probe_indices: &UInt32Array,
        build_indices: &UInt32Array,
    ) -> Result<RecordBatch> {
        let gather = |batch: &RecordBatch, indices: &UInt32Array| -> Result<Vec<ArrayRef>> {
            batch
                .columns()
                .iter()
                .map(|column| {
                    take(column.as_ref(), indices, None).map_err(ExecError::arrow(OPERATOR))
                })
                .collect()
        };
        // Every probe row matched once (a foreign key into a table the build side holds
        // whole): the probe's columns are the output's as they are.
        let probe_columns = if is_identity(probe_indices, probe.num_rows()) {
            probe.columns().to_vec()
        } else {
            gather(probe, probe_indices)?
        };
        // A probe read narrow has its joined rows' decimals widened here, after the gather.
        let first_probe_column = if spec.build_is_left {
            self.batch.num_columns()
        } else {
            0
        };
        let probe_columns = probe_columns
            .iter()
            .zip(spec.joined_schema.fields().iter().skip(first_probe_column))
            .map(|(column, field)| widened_column(column, field.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let build_columns = gather(&self.batch, build_indices)?;
        let columns = if spec.build_is_left {
            build_columns.into_iter().chain(probe_columns).collect()
        } else {
            probe_columns.into_iter().chain(build_columns).collect()
        };
        let options =
            arrow::array::RecordBatchOptions::new().with_row_count(Some(probe_indices.len()));
        RecordBatch::try_new_with_options(Arc::clone(&spec.joined_schema), columns, &options)
            .map_err(ExecError::arrow(OPERATOR))
    }
}

/// Whether `indices` are `0, 1, …, rows - 1`, without nulls.
fn is_identity(indices: &UInt32Array, rows: usize) -> bool {
    indices.len() == rows
        && indices.null_count() == 0
        && indices
            .values()
            .iter()
            .enumerate()
            .all(|(position, &row)| row as usize == position)
}

impl RowIndex {
    /// Indexes the build rows by their (non-null) key columns.
    fn build(key_columns: &[ArrayRef]) -> Result<RowIndex> {
        let rows = key_columns.first().map_or(0, |column| column.len());
        let fields = key_columns
            .iter()
            .map(|column| SortField::new(column.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(ExecError::arrow(OPERATOR))?;
        let batch_keys = converter
            .convert_columns(key_columns)
            .map_err(ExecError::arrow(OPERATOR))?;
        let valid = all_valid(key_columns);
        let mut index = RowIndex {
            keys: converter.empty_rows(0, 0),
            converter,
            key_hashes: Vec::new(),
            key_first_row: Vec::new(),
            map: HashTable::new(),
            next_row: vec![CHAIN_END; rows],
            hasher: RandomState::with_seeds(0x5851_f42d, 0x4c95_7f2d, 0x1405_7b7e, 0xf767_814f),
        };
        for row in (0..rows).rev() {
            if !valid.as_ref().is_none_or(|valid| valid.value(row)) {
                continue;
            }
            let key = batch_keys.row(row);
            let hash = index.hasher.hash_one(key.as_ref());
            let RowIndex {
                keys,
                key_hashes,
                key_first_row,
                map,
                next_row,
                ..
            } = &mut index;
            match map.find(hash, |&id| {
                key_hashes[id as usize] == hash && keys.row(id as usize) == key
            }) {
                Some(&id) => {
                    next_row[row] = key_first_row[id as usize];
                    key_first_row[id as usize] = row as u32;
                }
                None => {
                    let id = key_hashes.len() as u32;
                    keys.push(key);
                    key_hashes.push(hash);
                    key_first_row.push(row as u32);
                    map.insert_unique(hash, id, |&existing| key_hashes[existing as usize]);
                }
            }
        }
        Ok(index)
    }

    /// Appends a (probe row, build row) pair for every build row whose key equals a probe row's.
    fn probe(
        &self,
        key_columns: &[ArrayRef],
        probe_rows: &mut Vec<u32>,
        build_rows: &mut Vec<u32>,
    ) -> Result<()> {
        let probe_keys = self
            .converter
            .convert_columns(key_columns)
            .map_err(ExecError::arrow(OPERATOR))?;
        let valid = all_valid(key_columns);
        for probe_row in 0..probe_keys.num_rows() {
            if !valid.as_ref().is_none_or(|valid| valid.value(probe_row)) {
                continue;
            }
            let key = probe_keys.row(probe_row);
            let hash = self.hasher.hash_one(key.as_ref());
            let found = self.map.find(hash, |&id| {
                self.key_hashes[id as usize] == hash && self.keys.row(id as usize) == key
            });
            if let Some(&id) = found {
                let mut build_row = self.key_first_row[id as usize];
                while build_row != CHAIN_END {
                    probe_rows.push(probe_row as u32);
                    build_rows.push(build_row);
                    build_row = self.next_row[build_row as usize];
                }
            }
        }
        Ok(())
    }

    fn memory_size(&self) -> usize {
        self.keys.size()
            + self.key_hashes.capacity() * 12
            + self.map.capacity() * 5
            + self.next_row.len() * 4
    }
}

/// Build sides of at least this many rows are concatenated a column per task.
const PARALLEL_CONCAT_ROWS: usize = 1 << 16;

/// The build side's `batches` as one batch, each string or binary view column's strings in
/// buffers of their own (see [`compacted_views`]). Large build sides are concatenated a column
/// per task on `scheduler`: the copy (and the page faults of its fresh buffers) would otherwise
/// run on one thread while the others wait for the table.
fn concat_compacted(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    scheduler: &Scheduler,
) -> Result<RecordBatch> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let width = schema.fields().len();
    let columns: Vec<ArrayRef> = if rows < PARALLEL_CONCAT_ROWS || width < 2 {
        (0..width)
            .map(|column| concat_column(schema, batches, column))
            .collect::<Result<_>>()?
    } else {
        let shared = Arc::new((Arc::clone(schema), batches.to_vec()));
        in_parallel(
            scheduler,
            (0..width).map(|column| {
                let shared = Arc::clone(&shared);
                move || concat_column(&shared.0, &shared.1, column)
            }),
        )?
        .into_iter()
        .collect::<Result<_>>()?
    };
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(ExecError::arrow(OPERATOR))
}

/// Column `column` of `batches` as one array, its view strings compacted.
fn concat_column(schema: &SchemaRef, batches: &[RecordBatch], column: usize) -> Result<ArrayRef> {
    let concatenated = match batches {
        [] => new_empty_array(schema.field(column).data_type()),
        [single] => Arc::clone(single.column(column)),
        _ => {
            let arrays: Vec<&dyn Array> = batches
                .iter()
                .map(|batch| batch.column(column).as_ref())
                .collect();
            arrow::compute::concat(&arrays).map_err(ExecError::arrow(OPERATOR))?
        }
    };
    Ok(compacted_views(&concatenated).unwrap_or(concatenated))
}

/// `column` with its strings in buffers of its own, if it is a string or binary view column
/// that lists more than one buffer. A column concatenated from batches that each `take` from one
/// shared buffer lists that buffer once per batch (hundreds of times for a build side of TPC-H's
/// `orders` at SF 1). Every `take` of the column then clones all those references, atomics that
/// every probing thread contends on, and every memory count counts the shared buffer once per
/// reference. Copying out the long strings (those of up to 12 bytes live in the views) costs one
/// pass.
fn compacted_views(column: &ArrayRef) -> Option<ArrayRef> {
    if let Some(strings) = column.as_string_view_opt()
        && strings.data_buffers().len() > 1
    {
        return Some(Arc::new(strings.gc()));
    }
    if let Some(bytes) = column.as_binary_view_opt()
        && bytes.data_buffers().len() > 1
    {
        return Some(Arc::new(bytes.gc()));
    }
    None
}

/// The packed join table of `key_columns`: a direct array when the keys are dense, else its
/// rows scattered into hash partitions, which tasks on `scheduler` build in parallel. With the
/// `cuda` feature a large table is also copied to the GPU, where large probes then run.
fn build_packed(
    packing: &KeyPacking,
    key_columns: &[ArrayRef],
    scheduler: &Scheduler,
) -> Result<JoinHashTable> {
    let (mut keys, mut usable) = (Vec::new(), Vec::new());
    packing
        .pack(key_columns, &mut keys, &mut usable)
        .map_err(ExecError::kernel(OPERATOR))?;
    let keys = Arc::new(keys);
    let table = build_packed_table(&keys, &usable, scheduler)?;
    #[cfg(feature = "cuda")]
    let table = {
        let mut table = table;
        table.offload(&keys, &usable);
        table
    };
    Ok(table)
}

/// The table of the packed build `keys` on the CPU.
fn build_packed_table(
    keys: &Arc<Vec<u64>>,
    usable: &[bool],
    scheduler: &Scheduler,
) -> Result<JoinHashTable> {
    let mut hashes = Vec::new();
    if let Some(direct) = JoinHashTable::try_direct(keys, usable) {
        return Ok(direct);
    }
    hash_u64_slice(keys, &mut hashes);
    let partitions = JoinHashTable::partition_count(keys.len());
    let scattered = PartitionedRows::scatter(&hashes, usable, partitions)
        .map_err(ExecError::kernel(OPERATOR))?;
    let tasks = partitions.min(scheduler.threads() * 2);
    if tasks <= 1 {
        return Ok(JoinHashTable::from_partitions(
            (0..partitions)
                .map(|partition| {
                    JoinPartition::build(keys, &hashes, scattered.partition(partition))
                })
                .collect(),
            keys,
            usable,
        ));
    }
    let inputs = Arc::new((hashes, scattered));
    let builds = (0..tasks).map(|task| {
        let (keys, inputs) = (Arc::clone(keys), Arc::clone(&inputs));
        move || {
            let (hashes, scattered) = &*inputs;
            (task..partitions)
                .step_by(tasks)
                .map(|partition| {
                    let rows = scattered.partition(partition);
                    (partition, JoinPartition::build(&keys, hashes, rows))
                })
                .collect::<Vec<_>>()
        }
    });
    let mut built: Vec<(usize, JoinPartition)> = in_parallel(scheduler, builds)?
        .into_iter()
        .flatten()
        .collect();
    built.sort_unstable_by_key(|(partition, _)| *partition);
    Ok(JoinHashTable::from_partitions(
        built.into_iter().map(|(_, partition)| partition).collect(),
        keys,
        usable,
    ))
}

/// The probe side's packed keys; rows with a null key or a key outside the build side's range
/// are not usable (they match nothing).
fn packed_probe_keys(
    packing: &KeyPacking,
    spec: &JoinSpec,
    probe: &RecordBatch,
) -> Result<(Vec<u64>, Vec<bool>)> {
    let key_columns = evaluate_all(OPERATOR, &spec.probe_keys, probe)?;
    let (mut keys, mut usable) = (Vec::new(), Vec::new());
    packing
        .pack(&key_columns, &mut keys, &mut usable)
        .map_err(ExecError::kernel(OPERATOR))?;
    Ok((keys, usable))
}

/// `batch`'s columns as rows of `schema` (the join's output schema, whose names and
/// nullability come from the logical plan).
fn with_schema(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), batch.columns().to_vec(), &options)
        .map_err(ExecError::arrow(OPERATOR))
}

/// Rows where every key column is non-null (`None` when no key column has nulls).
fn all_valid(columns: &[ArrayRef]) -> Option<BooleanArray> {
    let with_nulls: Vec<&ArrayRef> = columns
        .iter()
        .filter(|column| column.null_count() > 0)
        .collect();
    if with_nulls.is_empty() {
        return None;
    }
    let rows = columns.first().map_or(0, |column| column.len());
    Some(BooleanArray::from(
        (0..rows)
            .map(|row| with_nulls.iter().all(|column| column.is_valid(row)))
            .collect::<Vec<_>>(),
    ))
}

fn as_mask(values: &ArrayRef) -> Result<&BooleanArray> {
    match values.data_type() {
        DataType::Boolean => values
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| ExecError::Arrow {
                operator: OPERATOR,
                source: arrow::error::ArrowError::InvalidArgumentError("join filter".to_string()),
            }),
        other => Err(ExecError::Arrow {
            operator: OPERATOR,
            source: arrow::error::ArrowError::InvalidArgumentError(format!(
                "the join filter gives {other}, not booleans"
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringViewArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn only_every_probe_row_once_in_order_is_the_identity() {
        let indices = |rows: Vec<Option<u32>>| UInt32Array::from(rows);
        assert!(is_identity(&indices(vec![Some(0), Some(1), Some(2)]), 3));
        assert!(is_identity(&indices(vec![]), 0));
        assert!(!is_identity(&indices(vec![Some(0), Some(1), Some(2)]), 4));
        assert!(!is_identity(&indices(vec![Some(0), Some(0), Some(2)]), 3));
        assert!(!is_identity(&indices(vec![Some(1), Some(0), Some(2)]), 3));
        assert!(!is_identity(&indices(vec![Some(0), None, Some(2)]), 3));
    }

    #[test]
    fn a_build_side_keeps_one_copy_of_a_shared_string_buffer() {
        let names = StringViewArray::from(vec![
            Some("a string longer than twelve bytes"),
            Some("short"),
            None,
            Some("another string past the inline length"),
        ]);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "name",
            DataType::Utf8View,
            true,
        )]));
        let batches: Vec<RecordBatch> = [[0u32, 1], [3, 2], [0, 3]]
            .iter()
            .map(|rows| {
                let taken = take(&names, &UInt32Array::from(rows.to_vec()), None).unwrap();
                RecordBatch::try_new(Arc::clone(&schema), vec![taken]).unwrap()
            })
            .collect();
        let concatenated = concat_batches(&schema, &batches).unwrap();
        assert_eq!(
            concatenated.column(0).as_string_view().data_buffers().len(),
            3
        );

        let scheduler = Scheduler::new(2).unwrap();
        let compact = concat_compacted(&schema, &batches, &scheduler).unwrap();
        let compact_names = compact.column(0).as_string_view();
        assert_eq!(compact_names.data_buffers().len(), 1);
        assert_eq!(compact_names, concatenated.column(0).as_string_view());
        assert!(compact.get_array_memory_size() < concatenated.get_array_memory_size());
    }

    #[test]
    fn a_large_build_side_concatenated_a_column_per_task_equals_arrows_concatenation() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("name", DataType::Utf8View, true),
        ]));
        let batches: Vec<RecordBatch> = (0..5i64)
            .map(|batch| {
                let keys =
                    Int64Array::from_iter_values((0..20_000).map(|row| batch * 20_000 + row));
                let names = StringViewArray::from_iter((0..20_000).map(|row| {
                    (row % 7 != 0).then(|| format!("name number {row} of batch {batch}"))
                }));
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(keys), Arc::new(names)])
                    .unwrap()
            })
            .collect();
        const { assert!(100_000 >= PARALLEL_CONCAT_ROWS) };
        let scheduler = Scheduler::new(2).unwrap();
        let ours = concat_compacted(&schema, &batches, &scheduler).unwrap();
        assert_eq!(ours, concat_batches(&schema, &batches).unwrap());
        assert_eq!(ours.column(1).as_string_view().data_buffers().len(), 1);
        let empty = concat_compacted(&schema, &[], &scheduler).unwrap();
        assert_eq!((empty.num_rows(), empty.num_columns()), (0, 2));
    }
}
