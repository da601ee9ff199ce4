//! Parallel hash aggregation. Each task folds its morsels into a thread-local partial table
//! (group keys in Arrow's row format, interned through a hash table; aggregate states in
//! DataFusion's vectorized `GroupsAccumulator`s). When the input is done, the partial tables are
//! split by key hash into partitions that are merged and finalized in parallel.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use ahash::RandomState;
use arrow::array::{ArrayRef, UInt32Array, new_empty_array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::PhysicalExpr;
use hashbrown::HashTable;
use sabot_scheduler::Scheduler;

use crate::error::{ExecError, Result};
use crate::memory::{MemoryBudget, Reservation};
use crate::plan::PhysicalNode;

const OPERATOR: &str = "HashAggregate";
/// Below this many groups in all partial tables, one task merges them all.
const GROUPS_PER_MERGE_PARTITION: usize = 16_384;
/// Fixed seeds: every partial table must hash a key the same way, so partitions line up.
const HASH_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// What a hash aggregation computes.
#[derive(Debug)]
pub struct AggregateSpec {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    state_types: Vec<Vec<DataType>>,
    converter: Option<RowConverter>,
}

impl AggregateSpec {
    /// Groups by `group_exprs` and computes `aggregates` over rows of `input_schema`. Every
    /// aggregate must support DataFusion's `GroupsAccumulator`.
    pub fn try_new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Vec<Arc<AggregateFunctionExpr>>,
        input_schema: &Schema,
    ) -> Result<AggregateSpec> {
        let key_types = group_exprs
            .iter()
            .map(|expr| expr.data_type(input_schema))
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(ExecError::datafusion(OPERATOR))?;
        let converter = if key_types.is_empty() {
            None
        } else {
            let fields = key_types.into_iter().map(SortField::new).collect();
            Some(RowConverter::new(fields).map_err(ExecError::arrow(OPERATOR))?)
        };
        let state_types = aggregates
            .iter()
            .map(|aggregate| {
                aggregate.state_fields().map(|fields| {
                    fields
                        .iter()
                        .map(|field| field.data_type().clone())
                        .collect()
                })
            })
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(ExecError::datafusion(OPERATOR))?;
        Ok(AggregateSpec {
            arguments: aggregates
                .iter()
                .map(|aggregate| aggregate.expressions())
                .collect(),
            group_exprs,
            aggregates,
            state_types,
            converter,
        })
    }

    fn new_accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.aggregates
            .iter()
            .map(|aggregate| aggregate.create_groups_accumulator())
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(ExecError::datafusion(OPERATOR))
    }
}

impl fmt::Display for AggregateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.group_exprs.iter().map(ToString::to_string).collect();
        let aggregates: Vec<&str> = self
            .aggregates
            .iter()
            .map(|aggregate| aggregate.name())
            .collect();
        write!(
            f,
            "groups=[{}], aggregates=[{}]",
            groups.join(", "),
            aggregates.join(", ")
        )
    }
}

/// Groups seen by one task (or one merge partition) and their aggregate states.
struct GroupTable {
    keys: Option<Rows>,
    hashes: Vec<u64>,
    map: HashTable<u32>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    group_count: usize,
    group_ids: Vec<usize>,
    reservation: Reservation,
}

impl GroupTable {
    fn new(spec: &AggregateSpec, budget: &Arc<MemoryBudget>) -> Result<GroupTable> {
        let keys = spec
            .converter
            .as_ref()
            .map(|converter| converter.empty_rows(0, 0));
        Ok(GroupTable {
            // Without keys there is exactly one group, whether or not rows arrive.
            group_count: if keys.is_none() { 1 } else { 0 },
            keys,
            hashes: Vec::new(),
            map: HashTable::new(),
            accumulators: spec.new_accumulators()?,
            group_ids: Vec::new(),
            reservation: Reservation::new(budget, OPERATOR),
        })
    }

    /// Assigns a group id to each (row of `batch_keys`, hash) in `rows`, adding new groups.
    fn intern(&mut self, batch_keys: &Rows, rows: impl Iterator<Item = (usize, u64)>) {
        let GroupTable {
            keys,
            hashes,
            map,
            group_count,
            group_ids,
            ..
        } = self;
        let Some(keys) = keys else {
            group_ids.extend(rows.map(|_| 0));
            return;
        };
        for (row_index, hash) in rows {
            let row = batch_keys.row(row_index);
            let found = map.find(hash, |&group| {
                hashes[group as usize] == hash && keys.row(group as usize) == row
            });
            let group = match found {
                Some(&group) => group as usize,
                None => {
                    let group = *group_count;
                    keys.push(row);
                    hashes.push(hash);
                    map.insert_unique(hash, group as u32, |&existing| hashes[existing as usize]);
                    *group_count += 1;
                    group
                }
            };
            group_ids.push(group);
        }
    }

    /// Folds `batch` into the table.
    fn update(
        &mut self,
        spec: &AggregateSpec,
        hasher: &RandomState,
        batch: &RecordBatch,
    ) -> Result<()> {
        let rows = batch.num_rows();
        self.group_ids.clear();
        match &spec.converter {
            Some(converter) => {
                let key_columns = evaluate_all(OPERATOR, &spec.group_exprs, batch)?;
                let batch_keys = converter
                    .convert_columns(&key_columns)
                    .map_err(ExecError::arrow(OPERATOR))?;
                let hashed =
                    (0..rows).map(|row| (row, hasher.hash_one(batch_keys.row(row).as_ref())));
                self.intern(&batch_keys, hashed);
            }
            None => self.group_ids.resize(rows, 0),
        }
        for (accumulator, arguments) in self.accumulators.iter_mut().zip(&spec.arguments) {
            let values = evaluate_all(OPERATOR, arguments, batch)?;
            accumulator
                .update_batch(&values, &self.group_ids, None, self.group_count)
                .map_err(ExecError::datafusion(OPERATOR))?;
        }
        self.account()
    }

    /// Brings the memory reservation up to date with the table's size.
    fn account(&mut self) -> Result<()> {
        let keys = self.keys.as_ref().map_or(0, Rows::size);
        let accumulators: usize = self
            .accumulators
            .iter()
            .map(|accumulator| accumulator.size())
            .sum();
        let index =
            self.hashes.capacity() * 8 + self.map.capacity() * 5 + self.group_ids.capacity() * 8;
        self.reservation.resize(keys + accumulators + index)
    }

    /// Gives up the table's groups: their keys, hashes and intermediate states.
    fn into_partial(mut self) -> Result<PartialGroups> {
        let states = self
            .accumulators
            .iter_mut()
            .map(|accumulator| accumulator.state(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(ExecError::datafusion(OPERATOR))?;
        Ok(PartialGroups {
            keys: self.keys.take(),
            hashes: std::mem::take(&mut self.hashes),
            states,
            group_count: self.group_count,
            _reservation: self.reservation,
        })
    }

    /// The table's groups as a batch of `schema`: keys, then final aggregate values.
    fn into_batch(mut self, spec: &AggregateSpec, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = match (&spec.converter, &self.keys) {
            (Some(converter), Some(keys)) => converter
                .convert_rows(keys.iter())
                .map_err(ExecError::arrow(OPERATOR))?,
            _ => Vec::new(),
        };
        for accumulator in &mut self.accumulators {
            columns.push(
                accumulator
                    .evaluate(EmitTo::All)
                    .map_err(ExecError::datafusion(OPERATOR))?,
            );
        }
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(ExecError::arrow(OPERATOR))
    }
}

/// The output of one partial table, waiting to be merged.
struct PartialGroups {
    keys: Option<Rows>,
    hashes: Vec<u64>,
    states: Vec<Vec<ArrayRef>>,
    group_count: usize,
    _reservation: Reservation,
}

/// The sink of a pipeline that ends in a hash aggregation.
pub(crate) struct AggregateSink {
    node: Arc<PhysicalNode>,
    spec: Arc<AggregateSpec>,
    budget: Arc<MemoryBudget>,
    hasher: RandomState,
    idle_tables: Mutex<Vec<GroupTable>>,
}

impl AggregateSink {
    /// A sink computing `spec` for aggregate `node`.
    pub(crate) fn new(
        node: Arc<PhysicalNode>,
        spec: Arc<AggregateSpec>,
        budget: Arc<MemoryBudget>,
    ) -> AggregateSink {
        let [first, second, third, fourth] = HASH_SEEDS;
        AggregateSink {
            node,
            spec,
            budget,
            hasher: RandomState::with_seeds(first, second, third, fourth),
            idle_tables: Mutex::new(Vec::new()),
        }
    }

    /// Folds `batch` into a partial table no other task is using.
    pub(crate) fn consume(&self, batch: &RecordBatch) -> Result<()> {
        let table = self
            .idle_tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut table = match table {
            Some(table) => table,
            None => GroupTable::new(&self.spec, &self.budget)?,
        };
        table.update(&self.spec, &self.hasher, batch)?;
        self.node.metrics.record_memory(self.budget.used_bytes());
        self.idle_tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(table);
        Ok(())
    }

    /// Merges the partial tables and returns the aggregated rows.
    pub(crate) fn finish(self: Arc<Self>, scheduler: &Scheduler) -> Result<Vec<RecordBatch>> {
        let tables = std::mem::take(
            &mut *self
                .idle_tables
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let partials = tables
            .into_iter()
            .map(GroupTable::into_partial)
            .collect::<Result<Vec<_>>>()?;
        let total_groups: usize = partials.iter().map(|partial| partial.group_count).sum();
        let partitions = if self.spec.converter.is_none() {
            1
        } else {
            total_groups
                .div_ceil(GROUPS_PER_MERGE_PARTITION)
                .clamp(1, scheduler.threads())
        };
        let partials = Arc::new(partials);
        let results: Arc<Mutex<Vec<Result<RecordBatch>>>> = Arc::new(Mutex::new(Vec::new()));
        let group = scheduler.group();
        for partition in 0..partitions {
            let (sink, partials, results) = (
                Arc::clone(&self),
                Arc::clone(&partials),
                Arc::clone(&results),
            );
            group.spawn(move |_| {
                let merged = sink.merge_partition(&partials, partition, partitions);
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(merged);
            });
        }
        group.wait()?;
        let results = std::mem::take(&mut *results.lock().unwrap_or_else(PoisonError::into_inner));
        results.into_iter().collect()
    }

    /// Merges the groups whose hash falls in `partition` and finalizes them.
    fn merge_partition(
        &self,
        partials: &[PartialGroups],
        partition: usize,
        partitions: usize,
    ) -> Result<RecordBatch> {
        let spec = &self.spec;
        let mut table = GroupTable::new(spec, &self.budget)?;
        for partial in partials {
            let (states, rows): (Vec<Vec<ArrayRef>>, Vec<(usize, u64)>) = match &partial.keys {
                Some(_) => {
                    let selected: Vec<u32> = (0..partial.group_count as u32)
                        .filter(|&group| {
                            partial.hashes[group as usize] as usize % partitions == partition
                        })
                        .collect();
                    if selected.is_empty() {
                        continue;
                    }
                    let indices = UInt32Array::from(selected.clone());
                    let states = partial
                        .states
                        .iter()
                        .map(|columns| {
                            columns
                                .iter()
                                .map(|column| take(column.as_ref(), &indices, None))
                                .collect::<std::result::Result<Vec<_>, _>>()
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(ExecError::arrow(OPERATOR))?;
                    let rows = selected
                        .iter()
                        .map(|&group| (group as usize, partial.hashes[group as usize]))
                        .collect();
                    (states, rows)
                }
                None => (partial.states.clone(), vec![(0, 0)]),
            };
            table.group_ids.clear();
            match &partial.keys {
                Some(keys) => table.intern(keys, rows.into_iter()),
                None => table.group_ids.push(0),
            }
            for (accumulator, states) in table.accumulators.iter_mut().zip(&states) {
                accumulator
                    .merge_batch(states, &table.group_ids, table.group_count)
                    .map_err(ExecError::datafusion(OPERATOR))?;
            }
            table.account()?;
        }
        if partials.is_empty() && spec.converter.is_none() {
            // No input at all: the single group still needs sized (empty) states.
            for (accumulator, types) in table.accumulators.iter_mut().zip(&spec.state_types) {
                let empty: Vec<ArrayRef> = types.iter().map(new_empty_array).collect();
                accumulator
                    .merge_batch(&empty, &[], 1)
                    .map_err(ExecError::datafusion(OPERATOR))?;
            }
        }
        let batch = table.into_batch(spec, &self.node.schema)?;
        self.node.metrics.record_output(batch.num_rows());
        Ok(batch)
    }
}

/// Evaluates each expression over `batch` into a full-length column, for `operator`.
pub(crate) fn evaluate_all(
    operator: &'static str,
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|expr| {
            expr.evaluate(batch)
                .and_then(|value| value.into_array(batch.num_rows()))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()
        .map_err(ExecError::datafusion(operator))
}
