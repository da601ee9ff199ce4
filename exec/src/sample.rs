//! Estimates measured on row samples where statistics say nothing: the share of groups a filter
//! over an aggregation's output (`HAVING sum(l_quantity) > 300`) keeps. A scan's sample is the
//! first rows of its first file (each column's `column_stats` sample, so the columns line up row
//! by row); filters and projections run over their input's sample, and the aggregation
//! aggregates it. The sample's groups stand for the table's only when they are whole: when the
//! input is clustered by the group key (TPC-H's `lineitem` by `l_orderkey`, a log by its time),
//! so that the sample holds at least half as many rows per group as the whole input. Otherwise
//! nothing is measured and the filter keeps its guessed selectivity.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::PhysicalExpr;

use crate::aggregate::{AggregateMode, evaluate_all};
use crate::plan::{NodeKind, PhysicalNode};

const OPERATOR: &str = "sampled estimate";
/// Sampled rows aggregated per estimate, at every planning: 4K TPC-H orders, which resolve a
/// share of groups of about 1e-4 in a fraction of a millisecond.
const SAMPLE_ROWS: usize = 16_384;

/// The share of `input`'s rows that `predicate` keeps, measured on the groups of a sample when
/// `input` is an aggregation (under column projections) whose sample groups are whole. A
/// sample in which no group passes counts half a group, so a rare predicate is not taken for
/// one that keeps nothing.
pub(crate) fn having_selectivity(
    input: &PhysicalNode,
    predicate: &dyn PhysicalExpr,
) -> Option<f64> {
    let groups = whole_groups(input)?;
    let kept = predicate_mask(predicate, &groups)?.true_count();
    Some((kept as f64).max(0.5) / groups.num_rows() as f64)
}

/// The output of `node`, an aggregation under column projections, over a sample of its input,
/// when the sample's groups are whole.
fn whole_groups(node: &PhysicalNode) -> Option<RecordBatch> {
    match &node.kind {
        NodeKind::Projection { input, exprs } => project(node, &whole_groups(input)?, exprs),
        NodeKind::Aggregate { input, spec }
            if spec.mode() == AggregateMode::Full && !spec.group_exprs().is_empty() =>
        {
            let rows = sample_rows(input)?;
            let groups = spec.aggregate_sample(&rows, &node.schema).ok()?;
            if groups.num_rows() == 0 {
                return None;
            }
            let rows_per_group = input.estimated_rows()? / node.estimated_rows()?.max(1.0);
            let sample_rows_per_group = rows.num_rows() as f64 / groups.num_rows() as f64;
            (sample_rows_per_group >= 0.5 * rows_per_group).then_some(groups)
        }
        _ => None,
    }
}

/// A sample of `node`'s output rows: a scan's first `SAMPLE_ROWS` rows, through filters and
/// projections.
fn sample_rows(node: &PhysicalNode) -> Option<RecordBatch> {
    match &node.kind {
        NodeKind::ParquetScan(scan) => {
            let columns = node
                .schema
                .fields()
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    let sample = scan.column_sample(index)?;
                    let sample = sample.slice(0, sample.len().min(SAMPLE_ROWS));
                    if sample.data_type() == field.data_type() {
                        Some(sample)
                    } else {
                        cast(&sample, field.data_type()).ok()
                    }
                })
                .collect::<Option<Vec<ArrayRef>>>()?;
            RecordBatch::try_new(Arc::clone(&node.schema), columns).ok()
        }
        NodeKind::Filter { input, predicate } => {
            let rows = sample_rows(input)?;
            filter_record_batch(&rows, &predicate_mask(predicate.as_ref(), &rows)?).ok()
        }
        NodeKind::Projection { input, exprs } => project(node, &sample_rows(input)?, exprs),
        _ => None,
    }
}

fn project(
    node: &PhysicalNode,
    rows: &RecordBatch,
    exprs: &[Arc<dyn PhysicalExpr>],
) -> Option<RecordBatch> {
    let columns = evaluate_all(OPERATOR, exprs, rows).ok()?;
    RecordBatch::try_new(Arc::clone(&node.schema), columns).ok()
}

/// Whether `predicate` holds, row by row, over `rows`.
fn predicate_mask(predicate: &dyn PhysicalExpr, rows: &RecordBatch) -> Option<BooleanArray> {
    let mask = predicate
        .evaluate(rows)
        .and_then(|value| value.into_array(rows.num_rows()))
        .ok()?;
    mask.as_boolean_opt().cloned()
}
