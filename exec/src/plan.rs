//! The physical plan Sabot runs: a tree of operators, each with its output schema and its
//! measurements, and its rendering for `EXPLAIN`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, Literal};
use datafusion::physical_expr::{PhysicalSortExpr, ScalarFunctionExpr};
use datafusion::physical_plan::PhysicalExpr;

use crate::aggregate::AggregateSpec;
use crate::join::{JoinKind, JoinSpec};
use crate::join_estimate::{KeyColumn, equi_join_selectivity};
use crate::metrics::OperatorMetrics;
use crate::sample::{having_selectivity, sampled_join_correlation};
use crate::selectivity::{ColumnStatistics, filter_selectivity};
use crate::source::{FallbackSource, ParquetScan};

/// One operator of a physical plan.
#[derive(Debug)]
pub struct PhysicalNode {
    pub kind: NodeKind,
    /// The operator's output schema.
    pub schema: SchemaRef,
    /// What the operator did, filled in as it runs.
    pub metrics: OperatorMetrics,
    /// The estimated output rows, once asked for.
    estimate: OnceLock<Option<f64>>,
}

/// The operators.
#[derive(Debug)]
pub enum NodeKind {
    /// Reads Parquet row groups.
    ParquetScan(Arc<ParquetScan>),
    /// Reads in-memory batches; `bounds` may give, per column, the smallest and largest value
    /// (an in-memory table's statistics).
    Batches {
        batches: Vec<RecordBatch>,
        bounds: Vec<Option<(i64, i64)>>,
    },
    /// A subtree run by DataFusion.
    Fallback(FallbackSource),
    /// Keeps the rows for which `predicate` is true.
    Filter {
        input: Arc<PhysicalNode>,
        predicate: Arc<dyn PhysicalExpr>,
    },
    /// Computes one output column per expression.
    Projection {
        input: Arc<PhysicalNode>,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
    },
    /// Hash aggregation.
    Aggregate {
        input: Arc<PhysicalNode>,
        spec: Arc<AggregateSpec>,
    },
    /// Sorts by `keys`; with `fetch`, keeps only the first rows (top-k).
    Sort {
        input: Arc<PhysicalNode>,
        keys: Vec<PhysicalSortExpr>,
        fetch: Option<usize>,
    },
    /// Joins each probe row with the materialized build side.
    HashJoin {
        probe: Arc<PhysicalNode>,
        build: Arc<PhysicalNode>,
        spec: Arc<JoinSpec>,
    },
    /// Skips `skip` rows, then keeps up to `fetch`.
    Limit {
        input: Arc<PhysicalNode>,
        skip: usize,
        fetch: Option<usize>,
    },
    /// All rows of every input, input after input (`UNION ALL`).
    Union { inputs: Vec<Arc<PhysicalNode>> },
}

impl PhysicalNode {
    /// A node producing `schema`.
    pub fn new(kind: NodeKind, schema: SchemaRef) -> PhysicalNode {
        PhysicalNode {
            kind,
            schema,
            metrics: OperatorMetrics::default(),
            estimate: OnceLock::new(),
        }
    }

    /// The node's inputs.
    pub fn inputs(&self) -> Vec<&Arc<PhysicalNode>> {
        match &self.kind {
            NodeKind::ParquetScan(_) | NodeKind::Batches { .. } | NodeKind::Fallback(_) => {
                Vec::new()
            }
            NodeKind::Filter { input, .. }
            | NodeKind::Projection { input, .. }
            | NodeKind::Aggregate { input, .. }
            | NodeKind::Sort { input, .. }
            | NodeKind::Limit { input, .. } => vec![input],
            NodeKind::HashJoin { probe, build, .. } => vec![probe, build],
            NodeKind::Union { inputs } => inputs.iter().collect(),
        }
    }

    /// This operator over `inputs` in place of its own (in the order of
    /// [`PhysicalNode::inputs`]), with fresh metrics; a leaf is returned as it is.
    pub fn with_inputs(self: &Arc<Self>, inputs: Vec<Arc<PhysicalNode>>) -> Arc<PhysicalNode> {
        match self.kind_with_inputs(inputs) {
            Some(kind) => Arc::new(PhysicalNode::new(kind, Arc::clone(&self.schema))),
            None => Arc::clone(self),
        }
    }

    /// This node's operator over `inputs`; `None` for a leaf.
    fn kind_with_inputs(&self, mut inputs: Vec<Arc<PhysicalNode>>) -> Option<NodeKind> {
        let mut next = || inputs.remove(0);
        let kind = match &self.kind {
            NodeKind::ParquetScan(_) | NodeKind::Batches { .. } | NodeKind::Fallback(_) => {
                return None;
            }
            NodeKind::Filter { predicate, .. } => NodeKind::Filter {
                input: next(),
                predicate: Arc::clone(predicate),
            },
            NodeKind::Projection { exprs, .. } => NodeKind::Projection {
                input: next(),
                exprs: exprs.clone(),
            },
            NodeKind::Aggregate { spec, .. } => NodeKind::Aggregate {
                input: next(),
                spec: Arc::clone(spec),
            },
            NodeKind::Sort { keys, fetch, .. } => NodeKind::Sort {
                input: next(),
                keys: keys.clone(),
                fetch: *fetch,
            },
            NodeKind::HashJoin { spec, .. } => NodeKind::HashJoin {
                probe: next(),
                build: next(),
                spec: Arc::clone(spec),
            },
            NodeKind::Limit { skip, fetch, .. } => NodeKind::Limit {
                input: next(),
                skip: *skip,
                fetch: *fetch,
            },
            NodeKind::Union { .. } => NodeKind::Union {
                inputs: std::mem::take(&mut inputs),
            },
        };
        Some(kind)
    }

    /// A rough count of the rows this node produces, from file metadata, sampled distinct
    /// counts and selectivities by predicate shape (`selectivity`); `None` where nothing is
    /// known (a fallback subtree). An equi-join pairs each key value's rows on both sides over
    /// the larger key domain when both sides' keys trace to scanned columns, else keeps the
    /// probe rows matching the surviving fraction of the build side's base table (the
    /// key/foreign-key case). Computed once per node.
    pub fn estimated_rows(&self) -> Option<f64> {
        *self.estimate.get_or_init(|| self.estimate_rows())
    }

    fn estimate_rows(&self) -> Option<f64> {
        const GROUPS_PER_ROW: f64 = 0.1;
        match &self.kind {
            NodeKind::ParquetScan(scan) => Some(scan.total_rows() as f64),
            NodeKind::Batches { batches, .. } => {
                Some(batches.iter().map(RecordBatch::num_rows).sum::<usize>() as f64)
            }
            NodeKind::Fallback(_) => None,
            NodeKind::Filter { input, predicate } => input.estimated_rows().map(|rows| {
                rows * having_selectivity(input, predicate.as_ref())
                    .unwrap_or_else(|| filter_selectivity(predicate.as_ref(), input.as_ref()))
            }),
            NodeKind::Projection { input, .. } => input.estimated_rows(),
            NodeKind::Aggregate { input, spec } => {
                let rows = input.estimated_rows()?;
                let groups = spec
                    .group_columns()
                    .map(|columns| {
                        columns
                            .iter()
                            .map(|&column| input.column_distinct(column))
                            .try_fold(1.0f64, |product, distinct| Some(product * distinct?))
                    })
                    .unwrap_or(None);
                Some(
                    groups
                        .map_or(rows * GROUPS_PER_ROW, |groups| groups.min(rows))
                        .max(1.0),
                )
            }
            NodeKind::Sort { input, fetch, .. } => {
                let rows = input.estimated_rows()?;
                Some(fetch.map_or(rows, |fetch| rows.min(fetch as f64)))
            }
            NodeKind::Limit { input, fetch, .. } => {
                let rows = input.estimated_rows()?;
                Some(fetch.map_or(rows, |fetch| rows.min(fetch as f64)))
            }
            NodeKind::Union { inputs } => inputs.iter().map(|input| input.estimated_rows()).sum(),
            NodeKind::HashJoin { probe, build, spec } => {
                // The logical left input, whose rows a left, semi, anti or mark join emits, and
                // the other one.
                let (left, right) = if spec.build_is_left {
                    (build, probe)
                } else {
                    (probe, build)
                };
                // Distinct join keys on either side, where both trace to scanned columns.
                let (probe_keys, build_keys) = (
                    key_distinct(probe, &spec.probe_keys),
                    key_distinct(build, &spec.build_keys),
                );
                let (left_keys, right_keys) = if spec.build_is_left {
                    (build_keys, probe_keys)
                } else {
                    (probe_keys, build_keys)
                };
                // The share of left rows whose key is among the right side's keys.
                let matching = || match (left_keys, right_keys) {
                    (Some(left), Some(right)) => Some((right / left).min(1.0)),
                    _ => right.surviving_fraction(),
                };
                let pairs = || match (probe_keys, build_keys) {
                    // A cross join (no keys; scalar subqueries run as these) pairs every row.
                    _ if spec.probe_keys.is_empty() => {
                        Some(probe.estimated_rows()? * build.estimated_rows()?)
                    }
                    _ if let Some(selectivity) = key_columns(probe, &spec.probe_keys)
                        .zip(key_columns(build, &spec.build_keys))
                        .and_then(|(probe_keys, build_keys)| {
                            equi_join_selectivity(&probe_keys, &build_keys)
                        }) =>
                    {
                        Some(probe.estimated_rows()? * build.estimated_rows()? * selectivity)
                    }
                    // Each key value matches its rows on the other side, spread over the
                    // larger key domain.
                    (Some(probe_distinct), Some(build_distinct)) => Some(
                        probe.estimated_rows()? * build.estimated_rows()?
                            / probe_distinct.max(build_distinct),
                    ),
                    _ => Some(probe.estimated_rows()? * build.surviving_fraction()?),
                };
                match spec.kind {
                    // The residual filter over the joined columns keeps its share of the pairs,
                    // and filters correlated across the key (measured on samples) move it.
                    JoinKind::Inner => Some(
                        pairs()?
                            * spec
                                .filter
                                .as_ref()
                                .map_or(1.0, |filter| filter_selectivity(filter.as_ref(), self))
                            * key_correlation(probe, build, spec).unwrap_or(1.0),
                    ),
                    // Every left row at least once.
                    JoinKind::Left => Some(left.estimated_rows()?.max(pairs()?)),
                    JoinKind::Full => Some(probe.estimated_rows()?.max(build.estimated_rows()?)),
                    JoinKind::LeftSemi => Some(left.estimated_rows()? * matching()?),
                    JoinKind::LeftAnti => {
                        Some(left.estimated_rows()? * (1.0 - matching()?).max(0.1))
                    }
                    JoinKind::LeftMark => left.estimated_rows(),
                }
            }
        }
    }

    /// The input and its column that output column `index` passes through unchanged (a
    /// filter, sort or limit, a column of a projection, a join's input column), if any.
    pub(crate) fn input_column(&self, index: usize) -> Option<(&PhysicalNode, usize)> {
        match &self.kind {
            NodeKind::Filter { input, .. }
            | NodeKind::Sort { input, .. }
            | NodeKind::Limit { input, .. } => Some((input, index)),
            NodeKind::Projection { input, exprs } => {
                let column = exprs.get(index)?.downcast_ref::<Column>()?;
                Some((input, column.index()))
            }
            NodeKind::HashJoin { probe, build, spec } => {
                let (left, right) = if spec.build_is_left {
                    (build, probe)
                } else {
                    (probe, build)
                };
                let left_width = left.schema.fields().len();
                match spec.kind {
                    _ if index < left_width => Some((left, index)),
                    JoinKind::Inner | JoinKind::Left | JoinKind::Full => {
                        Some((right, index - left_width))
                    }
                    JoinKind::LeftSemi | JoinKind::LeftAnti | JoinKind::LeftMark => None,
                }
            }
            _ => None,
        }
    }

    /// The Parquet scan and scan column that output column `index` comes from unchanged
    /// (through filters, column projections, joins, sorts and limits), if any.
    pub fn scanned_column(&self, index: usize) -> Option<(&ParquetScan, usize)> {
        match &self.kind {
            NodeKind::ParquetScan(scan) => Some((scan, index)),
            _ => {
                let (input, column) = self.input_column(index)?;
                input.scanned_column(column)
            }
        }
    }

    /// The estimated number of distinct values of output column `index`, where it comes
    /// unchanged from a Parquet scan below: the scan's count, at most the number of values a
    /// filter on the way lets through (`n_name = 'FRANCE' OR n_name = 'GERMANY'`: two).
    pub fn column_distinct(&self, index: usize) -> Option<f64> {
        match &self.kind {
            NodeKind::ParquetScan(scan) => scan.column_distinct(index),
            NodeKind::Filter { input, predicate } => {
                let below = input.column_distinct(index)?;
                Some(
                    values_let_through(predicate.as_ref(), index)
                        .map_or(below, |values| below.min(values)),
                )
            }
            // The year of a date: at most the years between the date's bounds.
            NodeKind::Projection { input, exprs }
                if let Some(years) = exprs
                    .get(index)
                    .and_then(|expr| years_spanned(expr.as_ref(), input)) =>
            {
                Some(years)
            }
            // An inner or semi join keeps only the key values both inputs have.
            NodeKind::HashJoin { probe, build, spec }
                if matches!(spec.kind, JoinKind::Inner | JoinKind::LeftSemi) =>
            {
                let (input, column) = self.input_column(index)?;
                let below = input.column_distinct(column)?;
                let (side_keys, other, other_keys) = if std::ptr::eq(input, probe.as_ref()) {
                    (&spec.probe_keys, build, &spec.build_keys)
                } else {
                    (&spec.build_keys, probe, &spec.probe_keys)
                };
                let paired = side_keys
                    .iter()
                    .zip(other_keys)
                    .find(|(key, _)| {
                        key.downcast_ref::<Column>()
                            .is_some_and(|key| key.index() == column)
                    })
                    .and_then(|(_, other_key)| {
                        let distinct =
                            other.column_distinct(other_key.downcast_ref::<Column>()?.index())?;
                        Some(
                            other
                                .estimated_rows()
                                .map_or(distinct, |rows| distinct.min(rows)),
                        )
                    });
                Some(paired.map_or(below, |paired| below.min(paired)))
            }
            _ => {
                let (input, column) = self.input_column(index)?;
                input.column_distinct(column)
            }
        }
    }

    /// The distinct count of output column `index` in its table and that table's rows, where
    /// it comes unchanged from a Parquet scan below.
    pub fn key_column(&self, index: usize) -> Option<KeyColumn> {
        let (scan, column) = self.scanned_column(index)?;
        Some(KeyColumn {
            distinct: scan.column_distinct(column)?,
            table_rows: scan.total_rows() as f64,
        })
    }

    /// The smallest and largest value of output column `index`, where it comes unchanged from a
    /// Parquet scan or in-memory table below whose statistics give them.
    pub fn column_bounds(&self, index: usize) -> Option<(i64, i64)> {
        match &self.kind {
            NodeKind::ParquetScan(scan) => scan.column_bounds(index),
            NodeKind::Batches { bounds, .. } => bounds.get(index).copied().flatten(),
            _ => {
                let (input, column) = self.input_column(index)?;
                input.column_bounds(column)
            }
        }
    }

    /// The fraction of its base table's rows this subtree keeps: under the key/foreign-key
    /// assumption, the fraction of another input's rows that find a match in it.
    pub fn surviving_fraction(&self) -> Option<f64> {
        if let Some(unfiltered) = self.without_key_prefilter() {
            return unfiltered.surviving_fraction();
        }
        Some((self.estimated_rows()? / self.base_rows()?.max(1.0)).min(1.0))
    }

    /// This subtree without the key prefilter it reads through projections, filters and an
    /// aggregation, if it reads one: the prefilter drops only rows that the join above drops
    /// anyway, so that join's estimates see the subtree as if it kept them.
    fn without_key_prefilter(&self) -> Option<PhysicalNode> {
        let (NodeKind::Projection { input, .. }
        | NodeKind::Filter { input, .. }
        | NodeKind::Aggregate { input, .. }) = &self.kind
        else {
            return None;
        };
        let unfiltered_input = match &input.kind {
            NodeKind::HashJoin { probe, build, spec } if spec.key_prefilter => {
                // The logical left input, whose rows the semi join keeps or drops.
                Arc::clone(if spec.build_is_left { build } else { probe })
            }
            _ => Arc::new(input.without_key_prefilter()?),
        };
        Some(PhysicalNode::new(
            self.kind_with_inputs(vec![unfiltered_input])?,
            Arc::clone(&self.schema),
        ))
    }

    /// The rows of the largest table read below this node: the key domain a join on this
    /// subtree draws from.
    pub fn base_rows(&self) -> Option<f64> {
        match &self.kind {
            NodeKind::ParquetScan(_) | NodeKind::Batches { .. } | NodeKind::Fallback(_) => {
                self.estimated_rows()
            }
            _ => self
                .inputs()
                .into_iter()
                .map(|input| input.base_rows())
                .try_fold(0.0f64, |largest, rows| Some(largest.max(rows?))),
        }
    }

    /// The subtrees that DataFusion runs.
    pub fn fallbacks(&self) -> Vec<&FallbackSource> {
        let mut found = Vec::new();
        self.collect_fallbacks(&mut found);
        found
    }

    fn collect_fallbacks<'a>(&'a self, found: &mut Vec<&'a FallbackSource>) {
        if let NodeKind::Fallback(fallback) = &self.kind {
            found.push(fallback);
        }
        for input in self.inputs() {
            input.collect_fallbacks(found);
        }
    }

    /// Calls `visit` once on this node and on every node below it (once also on a node that
    /// several paths reach, as a subquery used twice).
    pub fn visit(&self, visit: &mut impl FnMut(&PhysicalNode)) {
        let mut seen = HashSet::new();
        let mut pending = vec![self];
        while let Some(node) = pending.pop() {
            if seen.insert(std::ptr::from_ref(node) as usize) {
                visit(node);
                pending.extend(node.inputs().into_iter().rev().map(Arc::as_ref));
            }
        }
    }

    /// The plan as an indented tree, each operator with its estimated rows; with `metrics`,
    /// also its measurements (`rows` beside `est_rows`).
    pub fn display(&self, metrics: bool) -> String {
        let mut text = String::new();
        self.write_tree(&mut text, 0, metrics, &|_| None);
        text
    }

    /// The plan as [`PhysicalNode::display`] writes it without metrics, except that an input
    /// for which `cut` gives a label is written as that one line, without its subtree.
    pub fn display_with_cuts(&self, cut: &dyn Fn(&PhysicalNode) -> Option<String>) -> String {
        let mut text = String::new();
        self.write_tree(&mut text, 0, false, cut);
        text
    }

    fn write_tree(
        &self,
        text: &mut String,
        depth: usize,
        metrics: bool,
        cut: &dyn Fn(&PhysicalNode) -> Option<String>,
    ) {
        let indent = "  ".repeat(depth);
        let _ = write!(text, "{indent}{}", self.describe());
        match self.estimated_rows() {
            Some(rows) => {
                let _ = write!(text, ", est_rows={rows:.0}");
            }
            None => text.push_str(", est_rows=?"),
        }
        if metrics {
            let _ = write!(text, ", metrics=[{}]", self.metrics);
        }
        text.push('\n');
        if let NodeKind::Fallback(fallback) = &self.kind {
            for line in fallback.display(metrics).lines() {
                let _ = writeln!(text, "{indent}  | {line}");
            }
        }
        for input in self.inputs() {
            match cut(input) {
                Some(label) => {
                    let _ = writeln!(text, "{indent}  {label}");
                }
                None => input.write_tree(text, depth + 1, metrics, cut),
            }
        }
    }

    fn describe(&self) -> String {
        match &self.kind {
            NodeKind::ParquetScan(scan) => {
                let files: Vec<String> = scan
                    .paths()
                    .map(|path| path.display().to_string())
                    .collect();
                let columns: Vec<&str> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|field| field.name().as_str())
                    .collect();
                let (row_groups, pruned) = scan.row_groups_pruned();
                let pruning = if pruned > 0 {
                    format!(", row_groups_pruned={pruned} of {row_groups}")
                } else {
                    String::new()
                };
                format!(
                    "ParquetScan: files=[{}], columns=[{}]{pruning}",
                    files.join(", "),
                    columns.join(", ")
                )
            }
            NodeKind::Batches { batches, .. } => format!("Batches: batches={}", batches.len()),
            NodeKind::Fallback(fallback) => format!(
                "Fallback (DataFusion runs this subtree): {}",
                fallback.reason
            ),
            NodeKind::Filter { predicate, .. } => format!("Filter: {predicate}"),
            NodeKind::Projection { exprs, .. } => {
                let shown: Vec<String> = exprs
                    .iter()
                    .zip(self.schema.fields())
                    .map(|(expr, field)| format!("{expr} as {}", field.name()))
                    .collect();
                format!("Projection: {}", shown.join(", "))
            }
            NodeKind::Aggregate { spec, .. } => format!("HashAggregate: {spec}"),
            NodeKind::Sort { keys, fetch, .. } => {
                let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
                match fetch {
                    Some(fetch) => format!("TopK: fetch={fetch}, keys=[{}]", shown.join(", ")),
                    None => format!("Sort: keys=[{}]", shown.join(", ")),
                }
            }
            NodeKind::Limit { skip, fetch, .. } => format!("Limit: skip={skip}, fetch={fetch:?}"),
            NodeKind::Union { inputs } => format!("Union: inputs={}", inputs.len()),
            NodeKind::HashJoin { spec, .. } => format!("{}: {spec}", spec.algorithm()),
        }
    }
}

/// How many values of column `column` `predicate` lets through, where it pins the column to a
/// list of literals: `= literal`, `IN (literals)`, or equalities joined by OR; the fewest of its
/// conjuncts that do.
fn values_let_through(predicate: &dyn PhysicalExpr, column: usize) -> Option<f64> {
    let is_column = |expr: &Arc<dyn PhysicalExpr>| {
        expr.downcast_ref::<Column>()
            .is_some_and(|found| found.index() == column)
    };
    let is_literal = |expr: &Arc<dyn PhysicalExpr>| expr.downcast_ref::<Literal>().is_some();
    if let Some(binary) = predicate.downcast_ref::<BinaryExpr>() {
        return match binary.op() {
            Operator::And => {
                let (left, right) = (
                    values_let_through(binary.left().as_ref(), column),
                    values_let_through(binary.right().as_ref(), column),
                );
                match (left, right) {
                    (Some(left), Some(right)) => Some(left.min(right)),
                    (found, None) | (None, found) => found,
                }
            }
            Operator::Or => Some(
                values_let_through(binary.left().as_ref(), column)?
                    + values_let_through(binary.right().as_ref(), column)?,
            ),
            Operator::Eq
                if (is_column(binary.left()) && is_literal(binary.right()))
                    || (is_literal(binary.left()) && is_column(binary.right())) =>
            {
                Some(1.0)
            }
            _ => None,
        };
    }
    let in_list = predicate.downcast_ref::<InListExpr>()?;
    (is_column(in_list.expr()) && !in_list.negated() && in_list.list().iter().all(is_literal))
        .then_some(in_list.list().len() as f64)
}

/// What is known of each key column of `keys` (columns of `node`'s output traced to scans);
/// `None` unless every one is known.
fn key_columns(node: &PhysicalNode, keys: &[Arc<dyn PhysicalExpr>]) -> Option<Vec<KeyColumn>> {
    keys.iter()
        .map(|key| node.key_column(key.downcast_ref::<Column>()?.index()))
        .collect()
}

/// The number of calendar years between the bounds of the date column `expr` takes the year
/// of (`date_part('year', column)`, SQL's `extract(year from column)`), a column of `input`.
fn years_spanned(expr: &dyn PhysicalExpr, input: &PhysicalNode) -> Option<f64> {
    let function = expr.downcast_ref::<ScalarFunctionExpr>()?;
    let [part, column] = function.args() else {
        return None;
    };
    let is_year = match part.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(part)) | ScalarValue::Utf8View(Some(part)) => {
            part.eq_ignore_ascii_case("year")
        }
        _ => false,
    };
    let column = column.downcast_ref::<Column>()?.index();
    if !function.name().eq_ignore_ascii_case("date_part")
        || !is_year
        || input.schema.field(column).data_type() != &DataType::Date32
    {
        return None;
    }
    let (low, high) = input.column_bounds(column)?;
    Some((year_of_day(high) - year_of_day(low) + 1).max(1) as f64)
}

/// The calendar year of `days` since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
fn year_of_day(days: i64) -> i64 {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let year = year_of_era + era * 400;
    // Months from March: January and February belong to the next calendar year.
    if month_index >= 10 { year + 1 } else { year }
}

/// The estimated number of distinct values of the key `keys` (columns of `node`'s output) take
/// together: the product of the columns' distinct counts, at most `node`'s rows. `None` unless
/// every key is a column traced to a scan.
/// The sampled correlation of the filters on a one-key join's two sides
/// ([`sampled_join_correlation`]).
fn key_correlation(probe: &PhysicalNode, build: &PhysicalNode, spec: &JoinSpec) -> Option<f64> {
    let [probe_key] = spec.probe_keys.as_slice() else {
        return None;
    };
    let [build_key] = spec.build_keys.as_slice() else {
        return None;
    };
    let column = |key: &Arc<dyn PhysicalExpr>| Some(key.downcast_ref::<Column>()?.index());
    sampled_join_correlation(probe, column(probe_key)?, build, column(build_key)?)
}

fn key_distinct(node: &PhysicalNode, keys: &[Arc<dyn PhysicalExpr>]) -> Option<f64> {
    let rows = node.estimated_rows()?;
    let mut product = 1.0f64;
    for key in keys {
        let column = key.downcast_ref::<Column>()?;
        product *= node.column_distinct(column.index())?;
    }
    Some(product.min(rows).max(1.0))
}

impl ColumnStatistics for PhysicalNode {
    fn distinct(&self, column: usize) -> Option<f64> {
        self.column_distinct(column)
    }

    fn bounds(&self, column: usize) -> Option<(i64, i64)> {
        self.column_bounds(column)
    }

    fn histogram(&self, column: usize) -> Option<Arc<crate::histogram::Histogram>> {
        let (scan, column) = self.scanned_column(column)?;
        scan.column_histogram(column)
    }

    fn null_fraction(&self, column: usize) -> Option<f64> {
        let (scan, column) = self.scanned_column(column)?;
        scan.column_null_fraction(column)
    }

    fn sample(&self, column: usize) -> Option<arrow::array::ArrayRef> {
        let (scan, column) = self.scanned_column(column)?;
        scan.column_sample(column)
    }

    fn origin(&self, column: usize) -> Option<usize> {
        // Each scan node of the plan is one table instance: its address names it while the
        // plan lives.
        let (scan, _) = self.scanned_column(column)?;
        Some(std::ptr::from_ref(scan) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_1970_fall_in_their_calendar_year() {
        for (days, year) in [
            (0, 1970),
            (-1, 1969),
            (9_130, 1994),  // 1994-12-31
            (9_131, 1995),  // 1995-01-01
            (11_016, 2000), // 2000-02-29
            (10_957, 2000), // 2000-01-01
            (-719_468, 0),  // 0000-03-01
        ] {
            assert_eq!(year_of_day(days), year, "day {days}");
        }
    }
}
