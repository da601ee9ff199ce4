//! Translation of logical nodes into Sabot operators, node by node, with a DataFusion fallback
//! for what Sabot cannot run yet.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{DFSchema, DataFusionError, JoinType, NullEquality};
use datafusion::datasource::MemTable;
use datafusion::datasource::TableProvider;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::logical_plan::{Aggregate, Join, Limit, Projection, TableScan};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, FetchType, LogicalPlan, SkipType, TableProviderFilterPushDown,
};
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr, create_physical_sort_exprs};
use futures::future::BoxFuture;
use sabot_exec::{
    AggregateSpec, FallbackSource, JoinKind, JoinSpec, KeyColumn, NodeKind, ParquetScan,
    PhysicalNode, equi_join_selectivity, with_unchecked_decimal_arithmetic,
};

use crate::error::{PlanError, Result};
use crate::join_order::{Edge, JoinGraph, JoinTree};
use crate::join_region::{JoinRegion, join_region};
use crate::key_source::{is_key_scan, key_sources, with_keys_filtered};
use crate::memory_table::MemoryTable;
use crate::semi_join_pushdown::semi_join_pushed_down;
use crate::subquery::scalar_subqueries_as_cross_joins;

/// The largest fraction of its table a filtered scan may keep for its keys to filter an
/// aggregation's input ([`key_source`](crate::key_source)).
const MAX_KEY_SCAN_FRACTION: f64 = 0.1;

/// Plans queries of one session for Sabot's executor.
pub struct PhysicalPlanner<'a> {
    state: &'a SessionState,
    runtime: tokio::runtime::Handle,
    /// The aggregations planned so far: an equal one elsewhere in the query (a view or common
    /// table expression used twice, as in TPC-H Q15) becomes the same node, which the executor
    /// runs once.
    aggregations: Mutex<HashMap<LogicalPlan, Arc<PhysicalNode>>>,
}

/// The fraction of pairs of two relations' rows that a join on their keys keeps
/// ([`equi_join_selectivity`]); a key column whose statistics are unknown counts as a key of
/// its relation's table.
fn key_selectivity(
    region: &JoinRegion<'_>,
    leaves: &[Arc<PhysicalNode>],
    rows: &[f64],
    sides: &[(usize, Vec<&Expr>); 2],
) -> f64 {
    let key_columns = |(relation, keys): &(usize, Vec<&Expr>)| -> Vec<KeyColumn> {
        let table_rows = rows[*relation]
            / leaves[*relation]
                .surviving_fraction()
                .unwrap_or(1.0)
                .clamp(1e-9, 1.0);
        keys.iter()
            .map(|key| {
                let index = match key {
                    Expr::Column(column) => region.relations[*relation]
                        .schema()
                        .index_of_column(column)
                        .ok(),
                    _ => None,
                };
                index
                    .and_then(|index| leaves[*relation].key_column(index))
                    .unwrap_or(KeyColumn {
                        distinct: table_rows,
                        table_rows,
                    })
            })
            .collect()
    };
    equi_join_selectivity(&key_columns(&sides[0]), &key_columns(&sides[1])).unwrap_or(1.0)
}

/// Rows assumed for a relation whose size cannot be estimated.
const UNKNOWN_ROWS: f64 = 1000.0;

/// Why a logical node cannot run on Sabot's operators.
struct Unsupported(String);

impl From<DataFusionError> for Unsupported {
    fn from(error: DataFusionError) -> Self {
        Unsupported(error.strip_backtrace())
    }
}

impl From<sabot_exec::ExecError> for Unsupported {
    fn from(error: sabot_exec::ExecError) -> Self {
        Unsupported(error.to_string())
    }
}

type Native = std::result::Result<Arc<PhysicalNode>, Unsupported>;

impl<'a> PhysicalPlanner<'a> {
    /// A planner for `state`'s queries; fallback subtrees run on `runtime`.
    pub fn new(state: &'a SessionState, runtime: tokio::runtime::Handle) -> Self {
        PhysicalPlanner {
            state,
            runtime,
            aggregations: Mutex::new(HashMap::new()),
        }
    }

    /// Plans an optimized logical plan.
    pub fn plan<'p>(&'p self, plan: &'p LogicalPlan) -> BoxFuture<'p, Result<Arc<PhysicalNode>>> {
        Box::pin(async move {
            let aggregation = matches!(plan, LogicalPlan::Aggregate(_));
            if aggregation {
                let planned = self.planned_aggregations().get(plan).cloned();
                if let Some(node) = planned {
                    return Ok(node);
                }
            }
            let node = match self.native(plan).await? {
                Ok(node) => node,
                Err(Unsupported(reason)) => self.fallback(plan, reason).await?,
            };
            if aggregation {
                self.planned_aggregations()
                    .insert(plan.clone(), Arc::clone(&node));
            }
            Ok(node)
        })
    }

    fn planned_aggregations(&self) -> MutexGuard<'_, HashMap<LogicalPlan, Arc<PhysicalNode>>> {
        self.aggregations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sabot's operator for `plan`, or why there is none.
    async fn native(&self, plan: &LogicalPlan) -> Result<Native> {
        let schema = output_schema(plan);
        let node = |kind| Arc::new(PhysicalNode::new(kind, Arc::clone(&schema)));
        Ok(match plan {
            LogicalPlan::TableScan(scan) => self.table_scan(scan, Arc::clone(&schema)),
            LogicalPlan::Filter(filter) => {
                if let Some(rewritten) = scalar_subqueries_as_cross_joins(filter)? {
                    return Ok(Ok(self.plan(&rewritten).await?));
                }
                let input = self.plan(&filter.input).await?;
                self.expr(&filter.predicate, filter.input.schema())
                    .map(|predicate| node(NodeKind::Filter { input, predicate }))
            }
            LogicalPlan::Projection(projection) => {
                let input = self.plan(&projection.input).await?;
                self.exprs(&projection.expr, projection.input.schema())
                    .map(|exprs| node(NodeKind::Projection { input, exprs }))
            }
            LogicalPlan::Aggregate(aggregate) => {
                let input = self.plan(&aggregate.input).await?;
                self.aggregate_spec(aggregate, &input).map(|spec| {
                    node(NodeKind::Aggregate {
                        input,
                        spec: Arc::new(spec),
                    })
                })
            }
            LogicalPlan::Sort(sort) => {
                let input = self.plan(&sort.input).await?;
                create_physical_sort_exprs(
                    &sort.expr,
                    sort.input.schema(),
                    self.state.execution_props(),
                    &PhysicalPlanningContext::default(),
                )
                .map_err(Unsupported::from)
                .map(|keys| {
                    node(NodeKind::Sort {
                        input,
                        keys,
                        fetch: sort.fetch,
                    })
                })
            }
            LogicalPlan::Limit(limit) => match limit_bounds(limit) {
                Some((skip, fetch)) => {
                    let input = self.plan(&limit.input).await?;
                    Ok(node(NodeKind::Limit { input, skip, fetch }))
                }
                None => Err(Unsupported("LIMIT or OFFSET is not a literal".to_string())),
            },
            LogicalPlan::Join(join) => {
                if let Some(filtered) = self.with_aggregation_keys_filtered(join).await? {
                    return Ok(Ok(self.plan(&filtered).await?));
                }
                if let Some(pushed) = semi_join_pushed_down(join)? {
                    return Ok(Ok(self.plan(&pushed).await?));
                }
                match self.reordered_joins(plan).await? {
                    Some(native) => native,
                    None => self.join(join, Arc::clone(&schema)).await?,
                }
            }
            LogicalPlan::Union(union) => {
                let mut inputs = Vec::with_capacity(union.inputs.len());
                for input in &union.inputs {
                    inputs.push(self.plan(input).await?);
                }
                Ok(node(NodeKind::Union { inputs }))
            }
            // Renaming the qualifier changes nothing in the data: the alias is its input.
            LogicalPlan::SubqueryAlias(alias) => Ok(self.plan(&alias.input).await?),
            other => Err(Unsupported(format!(
                "no Sabot operator for {}",
                node_name(other)
            ))),
        })
    }

    /// `join` with an aggregation below an input grouped only for the keys of a filtered scan
    /// below its other input (`key_source`), where that scan keeps at most
    /// [`MAX_KEY_SCAN_FRACTION`] of its table and the aggregation reads at least as many rows
    /// as the table has: the second scan and the semi join then cost less than the groups they
    /// save.
    async fn with_aggregation_keys_filtered(&self, join: &Join) -> Result<Option<LogicalPlan>> {
        for source in key_sources(join) {
            let keys = self.plan(&source.scan).await?;
            let input = self.plan(&source.aggregation_input).await?;
            let (Some(kept), Some(table_rows), Some(input_rows)) = (
                keys.surviving_fraction(),
                keys.base_rows(),
                input.estimated_rows(),
            ) else {
                continue;
            };
            if kept <= MAX_KEY_SCAN_FRACTION && input_rows >= table_rows {
                return Ok(Some(with_keys_filtered(join, &source)?));
            }
        }
        Ok(None)
    }

    /// The region of inner equi-joins rooted at `plan` (if it is one) joined in the order that
    /// costs least by the relations' estimates, its columns put back in `plan`'s order; `None`
    /// where the region's shape does not allow reordering (a key or filter whose relation is
    /// unclear, a cross product).
    async fn reordered_joins(&self, plan: &LogicalPlan) -> Result<Option<Native>> {
        let Some(region) = join_region(plan) else {
            return Ok(None);
        };
        // Relations in the order of their plans' text, so the query's FROM order changes nothing.
        let mut relations = region.relations.clone();
        relations.sort_by_cached_key(|relation| relation.display_indent().to_string());
        let region = JoinRegion {
            relations,
            ..region
        };
        let mut leaves = Vec::with_capacity(region.relations.len());
        for relation in &region.relations {
            leaves.push(self.plan(relation).await?);
        }
        let rows: Vec<f64> = leaves
            .iter()
            .map(|leaf| leaf.estimated_rows().unwrap_or(UNKNOWN_ROWS).max(1.0))
            .collect();
        let mut keys_between: BTreeMap<(usize, usize), Vec<(&Expr, &Expr)>> = BTreeMap::new();
        for (left, right) in &region.equalities {
            let (Some(left_set), Some(right_set)) =
                (region.relations_of(left), region.relations_of(right))
            else {
                return Ok(None);
            };
            if left_set.count_ones() != 1 || right_set.count_ones() != 1 || left_set == right_set {
                return Ok(None);
            }
            let (left_relation, right_relation) = (
                left_set.trailing_zeros() as usize,
                right_set.trailing_zeros() as usize,
            );
            let pair = if left_relation < right_relation {
                ((left_relation, right_relation), (left, right))
            } else {
                ((right_relation, left_relation), (right, left))
            };
            keys_between.entry(pair.0).or_default().push(pair.1);
        }
        let edges = keys_between
            .into_iter()
            .map(|((first, second), keys)| {
                let sides = [
                    (first, keys.iter().map(|(key, _)| *key).collect::<Vec<_>>()),
                    (second, keys.iter().map(|(_, key)| *key).collect()),
                ];
                let selectivity = key_selectivity(&region, &leaves, &rows, &sides);
                Edge {
                    left: first,
                    right: second,
                    selectivity,
                }
            })
            .collect();
        let all = (1u64 << region.relations.len()) - 1;
        let mut filter_sets = Vec::with_capacity(region.filters.len());
        for filter in &region.filters {
            let Some(set) = region.relations_of(filter) else {
                return Ok(None);
            };
            filter_sets.push(if set == 0 { all } else { set });
        }
        let Some(tree) = JoinGraph::new(rows, edges).best_tree() else {
            return Ok(None);
        };
        let joined = match self.join_tree(&tree, &region, &leaves, &filter_sets) {
            Ok(joined) => joined,
            Err(unsupported) => return Ok(Some(Err(unsupported))),
        };
        let (node, joined_schema) = joined;
        let columns: Vec<Expr> = plan
            .schema()
            .iter()
            .map(|(qualifier, field)| {
                Expr::Column(datafusion::common::Column::new(
                    qualifier.cloned(),
                    field.name(),
                ))
            })
            .collect();
        Ok(Some(self.exprs(&columns, &joined_schema).map(|exprs| {
            let projection = NodeKind::Projection { input: node, exprs };
            Arc::new(PhysicalNode::new(projection, output_schema(plan)))
        })))
    }

    /// The hash joins of `tree` over the planned `leaves` of `region`, and their logical
    /// schema. Each join gets the key equalities between its two sides, and the filters first
    /// covered by its relations.
    fn join_tree(
        &self,
        tree: &JoinTree,
        region: &JoinRegion<'_>,
        leaves: &[Arc<PhysicalNode>],
        filter_sets: &[u64],
    ) -> std::result::Result<(Arc<PhysicalNode>, DFSchema), Unsupported> {
        let (left, right) = match tree {
            JoinTree::Relation(relation) => {
                let schema = region.relations[*relation].schema().as_ref().clone();
                return Ok((Arc::clone(&leaves[*relation]), schema));
            }
            JoinTree::Join(left, right) => (left, right),
        };
        let (left_node, left_schema) = self.join_tree(left, region, leaves, filter_sets)?;
        let (right_node, right_schema) = self.join_tree(right, region, leaves, filter_sets)?;
        let (left_set, right_set) = (left.relations(), right.relations());
        let within = |expr: &Expr, set: u64| {
            region
                .relations_of(expr)
                .is_some_and(|relations| relations & !set == 0)
        };
        let mut on: Vec<(Expr, Expr)> = region
            .equalities
            .iter()
            .filter_map(|(a, b)| {
                if within(a, left_set) && within(b, right_set) {
                    Some((a.clone(), b.clone()))
                } else if within(b, left_set) && within(a, right_set) {
                    Some((b.clone(), a.clone()))
                } else {
                    None
                }
            })
            .collect();
        on.sort_by_cached_key(|(a, b)| format!("{a} = {b}"));
        let union = left_set | right_set;
        let covered_below = |set: u64, side: &JoinTree, side_set: u64| {
            matches!(side, JoinTree::Join(..)) && set & !side_set == 0
        };
        let filters = region
            .filters
            .iter()
            .zip(filter_sets)
            .filter(|(_, set)| {
                **set & !union == 0
                    && !covered_below(**set, left, left_set)
                    && !covered_below(**set, right, right_set)
            })
            .map(|(filter, _)| filter.clone());
        let filter = datafusion::logical_expr::utils::conjunction(filters);
        let joined = left_schema.join(&right_schema)?;
        let schema = Arc::new(joined.as_arrow().clone());
        let node = self.hash_join(
            JoinKind::Inner,
            (left_node, &left_schema),
            (right_node, &right_schema),
            (&on, filter.as_ref()),
            schema,
            false,
        )?;
        Ok((node, joined))
    }

    /// A hash join: build on the right input, or on the left when it looks smaller; the other
    /// side streams through the table.
    async fn join(&self, join: &Join, schema: SchemaRef) -> Result<Native> {
        if matches!(
            join.join_type,
            JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark
        ) {
            return Ok(Ok(self.plan(&with_inputs_swapped(join)?).await?));
        }
        let kind = match join.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::LeftSemi => JoinKind::LeftSemi,
            JoinType::LeftAnti => JoinKind::LeftAnti,
            JoinType::LeftMark => JoinKind::LeftMark,
            JoinType::Full => JoinKind::Full,
            other => return Ok(Err(Unsupported(format!("{other} joins")))),
        };
        if join.null_aware {
            return Ok(Err(Unsupported(
                "null-aware anti joins (NOT IN)".to_string(),
            )));
        }
        if join.null_equality == NullEquality::NullEqualsNull && !join.on.is_empty() {
            return Ok(Err(Unsupported("joins where NULL keys match".to_string())));
        }
        let left = self.plan(&join.left).await?;
        let right = self.plan(&join.right).await?;
        Ok(self.hash_join(
            kind,
            (left, join.left.schema()),
            (right, join.right.schema()),
            (&join.on, join.filter.as_ref()),
            schema,
            is_key_scan(&join.right),
        ))
    }

    /// A hash join of two planned inputs (each with its logical schema) on `on`'s key pairs:
    /// build on the right input, or on the left when it looks smaller; the other side streams
    /// through the table. `key_prefilter`: the join is an aggregation input's semi join with a
    /// key scan (`key_source`).
    fn hash_join(
        &self,
        kind: JoinKind,
        (left, left_schema): (Arc<PhysicalNode>, &DFSchema),
        (right, right_schema): (Arc<PhysicalNode>, &DFSchema),
        (on, filter): (&[(Expr, Expr)], Option<&Expr>),
        schema: SchemaRef,
        key_prefilter: bool,
    ) -> Native {
        let left_keys: Vec<Expr> = on.iter().map(|(left, _)| left.clone()).collect();
        let right_keys: Vec<Expr> = on.iter().map(|(_, right)| right.clone()).collect();
        let joined = left_schema.join(right_schema)?;
        let filter = filter
            .map(|filter| self.expr(filter, &joined))
            .transpose()?;
        let left_keys = self.exprs(&left_keys, left_schema)?;
        let right_keys = self.exprs(&right_keys, right_schema)?;
        let right_nullable = matches!(kind, JoinKind::Left | JoinKind::Full);
        let left_nullable = kind == JoinKind::Full;
        let joined_fields: Vec<Field> = left_schema
            .as_arrow()
            .fields()
            .iter()
            .map(|field| {
                field
                    .as_ref()
                    .clone()
                    .with_nullable(field.is_nullable() || left_nullable)
            })
            .chain(right_schema.as_arrow().fields().iter().map(|field| {
                field
                    .as_ref()
                    .clone()
                    .with_nullable(field.is_nullable() || right_nullable)
            }))
            .collect();
        let build_is_left = matches!((left.estimated_rows(), right.estimated_rows()), (Some(left), Some(right)) if left < right);
        let (probe, build, probe_keys, build_keys) = if build_is_left {
            (right, left, right_keys, left_keys)
        } else {
            (left, right, left_keys, right_keys)
        };
        let spec = JoinSpec {
            kind,
            probe_keys,
            build_keys,
            filter,
            joined_schema: Arc::new(Schema::new(joined_fields)),
            build_is_left,
            key_prefilter,
        };
        let node = NodeKind::HashJoin {
            probe,
            build,
            spec: Arc::new(spec),
        };
        Ok(Arc::new(PhysicalNode::new(node, schema)))
    }

    fn table_scan(&self, scan: &TableScan, schema: SchemaRef) -> Native {
        if scan.fetch.is_some() {
            return Err(Unsupported("a scan with a pushed-down LIMIT".to_string()));
        }
        let provider = source_as_provider(&scan.source)?;
        let projection: Vec<usize> = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..provider.schema().fields().len()).collect());
        let kind = if let Some(listing) = provider.downcast_ref::<ListingTable>() {
            let parquet_scan =
                ParquetScan::try_new(parquet_files(listing)?, projection, Arc::clone(&schema))?;
            let parquet_scan =
                match datafusion::logical_expr::utils::conjunction(scan.filters.iter().cloned()) {
                    Some(predicate) => {
                        let table_schema = provider.schema();
                        let qualified = DFSchema::try_from_qualified_schema(
                            scan.table_name.clone(),
                            &table_schema,
                        )
                        .map_err(|error| Unsupported(format!("the table's schema: {error}")))?;
                        let predicate = self.expr(&predicate, &qualified)?;
                        parquet_scan.with_pruning(predicate, table_schema)
                    }
                    None => parquet_scan,
                };
            NodeKind::ParquetScan(Arc::new(parquet_scan))
        } else if let Some(memory) = provider.downcast_ref::<MemoryTable>() {
            NodeKind::Batches {
                batches: memory_batches(memory.batches(), &projection, &schema)?,
                bounds: projection
                    .iter()
                    .map(|&column| memory.column_bounds(column))
                    .collect(),
            }
        } else if let Some(memory) = provider.downcast_ref::<MemTable>() {
            NodeKind::Batches {
                batches: memory_batches(memory, &projection, &schema)?,
                bounds: Vec::new(),
            }
        } else {
            return Err(Unsupported(format!(
                "tables of type {}",
                std::any::type_name_of_val(provider.as_ref())
            )));
        };
        let scan_node = Arc::new(PhysicalNode::new(kind, Arc::clone(&schema)));
        // Filters the provider takes as inexact stay in a Filter node above the scan; only
        // the exact ones are this scan's to apply.
        let filters: Vec<&Expr> = scan.filters.iter().collect();
        let pushdown = provider
            .supports_filters_pushdown(&filters)
            .map_err(|error| Unsupported(format!("filters on this table: {error}")))?;
        let exact = scan
            .filters
            .iter()
            .zip(pushdown)
            .filter(|(_, pushdown)| *pushdown == TableProviderFilterPushDown::Exact)
            .map(|(filter, _)| filter.clone());
        match datafusion::logical_expr::utils::conjunction(exact) {
            None => Ok(scan_node),
            Some(predicate) => {
                let predicate = self.expr(&predicate, &scan.projected_schema)?;
                let filter = NodeKind::Filter {
                    input: scan_node,
                    predicate,
                };
                Ok(Arc::new(PhysicalNode::new(filter, schema)))
            }
        }
    }

    fn aggregate_spec(
        &self,
        aggregate: &Aggregate,
        input: &PhysicalNode,
    ) -> std::result::Result<AggregateSpec, Unsupported> {
        if aggregate
            .group_expr
            .iter()
            .any(|expr| matches!(expr, Expr::GroupingSet(_)))
        {
            return Err(Unsupported("GROUPING SETS, ROLLUP and CUBE".to_string()));
        }
        let input_schema = aggregate.input.schema();
        let group_exprs = self.exprs(&aggregate.group_expr, input_schema)?;
        let physical_input_schema = input_schema.as_arrow();
        let mut aggregates = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in &aggregate.aggr_expr {
            let lowered = LoweredAggregateBuilder::new(
                expr,
                input_schema,
                physical_input_schema,
                self.state.execution_props(),
                &PhysicalPlanningContext::default(),
            )
            .build()?;
            let function = lowered.aggregate;
            if lowered.filter.is_some() || !lowered.order_bys.is_empty() {
                return Err(Unsupported(format!(
                    "aggregate {expr} has a FILTER or ORDER BY"
                )));
            }
            if !function.groups_accumulator_supported() {
                return Err(Unsupported(format!(
                    "aggregate {} has no vectorized accumulator",
                    function.name()
                )));
            }
            aggregates.push(function);
        }
        // Group keys read straight from Parquet pack into the range their statistics give.
        let key_bounds: Vec<Option<(i64, i64)>> = group_exprs
            .iter()
            .map(|expr| {
                expr.downcast_ref::<Column>()
                    .and_then(|column| input.column_bounds(column.index()))
            })
            .collect();
        Ok(AggregateSpec::try_new(
            group_exprs,
            aggregates,
            physical_input_schema,
            &key_bounds,
        )?)
    }

    fn expr(
        &self,
        expr: &Expr,
        schema: &DFSchema,
    ) -> std::result::Result<Arc<dyn PhysicalExpr>, Unsupported> {
        let physical = create_physical_expr(
            expr,
            schema,
            self.state.execution_props(),
            &PhysicalPlanningContext::default(),
        )?;
        Ok(with_unchecked_decimal_arithmetic(
            physical,
            schema.as_arrow(),
        ))
    }

    fn exprs(
        &self,
        exprs: &[Expr],
        schema: &DFSchema,
    ) -> std::result::Result<Vec<Arc<dyn PhysicalExpr>>, Unsupported> {
        exprs.iter().map(|expr| self.expr(expr, schema)).collect()
    }

    /// Hands `plan` to DataFusion's physical planner.
    async fn fallback(&self, plan: &LogicalPlan, reason: String) -> Result<Arc<PhysicalNode>> {
        let node = node_name(plan);
        let physical = self
            .state
            .query_planner()
            .create_physical_plan(plan, self.state)
            .await
            .map_err(|source| PlanError::Fallback {
                node: node.clone(),
                source,
            })?;
        let source = FallbackSource::new(
            physical,
            self.state.task_ctx(),
            self.runtime.clone(),
            node,
            reason,
        );
        Ok(Arc::new(PhysicalNode::new(
            NodeKind::Fallback(source),
            output_schema(plan),
        )))
    }
}

fn output_schema(plan: &LogicalPlan) -> SchemaRef {
    Arc::new(plan.schema().as_arrow().clone())
}

fn node_name(plan: &LogicalPlan) -> String {
    plan.display().to_string()
}

fn limit_bounds(limit: &Limit) -> Option<(usize, Option<usize>)> {
    let skip = match limit.get_skip_type().ok()? {
        SkipType::Literal(skip) => skip,
        SkipType::UnsupportedExpr => return None,
    };
    let fetch = match limit.get_fetch_type().ok()? {
        FetchType::Literal(fetch) => fetch,
        FetchType::UnsupportedExpr => return None,
    };
    Some((skip, fetch))
}

/// The Parquet files behind `provider` when it is a listing table of Parquet files (the tables
/// `ANALYZE` reads); `None` for other tables; an error names a directory that cannot be listed.
pub fn parquet_table_files(
    provider: &dyn TableProvider,
) -> Option<std::result::Result<Vec<PathBuf>, String>> {
    let listing = provider.downcast_ref::<ListingTable>()?;
    if listing.options().format.get_ext() != "parquet" {
        return None;
    }
    Some(parquet_files(listing).map_err(|Unsupported(message)| message))
}

/// The Parquet files behind a listing table.
fn parquet_files(listing: &ListingTable) -> std::result::Result<Vec<PathBuf>, Unsupported> {
    if listing.options().format.get_ext() != "parquet" {
        return Err(Unsupported(format!(
            "{} files",
            listing.options().format.get_ext()
        )));
    }
    let extension = listing.options().file_extension.clone();
    let mut files = Vec::new();
    for url in listing.table_paths() {
        let path = PathBuf::from(format!("/{}", url.prefix()));
        if path.is_dir() {
            let entries = std::fs::read_dir(&path)
                .map_err(|error| Unsupported(format!("listing {}: {error}", path.display())))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.is_file() && file.to_string_lossy().ends_with(&extension))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// The batches of an in-memory table, projected.
fn memory_batches(
    memory: &MemTable,
    projection: &[usize],
    schema: &SchemaRef,
) -> std::result::Result<Vec<arrow::record_batch::RecordBatch>, Unsupported> {
    let mut batches = Vec::new();
    for partition in &memory.batches {
        let partition = partition
            .try_read()
            .map_err(|_| Unsupported("an in-memory table being written to".to_string()))?;
        for batch in partition.iter() {
            let projected = batch
                .project(projection)
                .and_then(|batch| batch.with_schema(Arc::clone(schema)))
                .map_err(|error| Unsupported(error.to_string()))?;
            batches.push(projected);
        }
    }
    Ok(batches)
}

/// A right (semi, anti, mark) join as the left join of its inputs swapped, its columns put back
/// in the original order.
fn with_inputs_swapped(join: &Join) -> Result<LogicalPlan> {
    let swapped = Join::try_new(
        Arc::clone(&join.right),
        Arc::clone(&join.left),
        join.on
            .iter()
            .map(|(left, right)| (right.clone(), left.clone()))
            .collect(),
        join.filter.clone(),
        join.join_type.swap(),
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?;
    let columns = join
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(LogicalPlan::Join(swapped)),
    )?))
}
