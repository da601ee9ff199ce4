//! Estimates measured on row samples where statistics say nothing: the share of groups a filter
//! over an aggregation's output (`HAVING sum(l_quantity) > 300`) keeps, and how far the filters
//! on the two sides of a join are correlated through its key ([`sampled_join_correlation`]:
//! TPC-H Q3's orders placed before a date and their lines shipped after it). A scan's sample is the
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
/// Sampled rows per side of a join correlation: enough that TPC-H's lines and orders, both
/// in order-key order, share about 4K pairs, and cheap enough for every join of a plan.
const JOIN_SAMPLE_ROWS: usize = 4_096;
/// The fewest pairs the unfiltered samples must share for a correlation to be measured.
const MIN_SAMPLED_PAIRS: usize = 256;

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
            let rows = sample_rows(input, SAMPLE_ROWS, true)?;
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

/// A sample of `node`'s output rows: a scan's first `rows` rows, through projections and
/// (where `filtered`) filters.
fn sample_rows(node: &PhysicalNode, rows: usize, filtered: bool) -> Option<RecordBatch> {
    match &node.kind {
        NodeKind::ParquetScan(scan) => {
            let columns = node
                .schema
                .fields()
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    let sample = scan.column_sample(index)?;
                    let sample = sample.slice(0, sample.len().min(rows));
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
            let input_rows = sample_rows(input, rows, filtered)?;
            if !filtered {
                return Some(input_rows);
            }
            filter_record_batch(
                &input_rows,
                &predicate_mask(predicate.as_ref(), &input_rows)?,
            )
            .ok()
        }
        NodeKind::Projection { input, exprs } => {
            project(node, &sample_rows(input, rows, filtered)?, exprs)
        }
        _ => None,
    }
}

/// The factor by which a join's pairs of filtered rows stray from what the two sides' filter
/// selectivities predict when taken as independent, measured on samples: the samples of the
/// scan, filter and projection chains that the join's key columns come from (`probe_key` and
/// `build_key`, columns of `probe` and `build`) are joined on the key, once unfiltered and once
/// filtered, and the filtered pairs are compared with the unfiltered pairs times both sides'
/// kept shares. `None` where a key traces to no such chain, its values are not integers, or the
/// unfiltered samples share fewer than `MIN_SAMPLED_PAIRS` pairs (a sample of a table's first
/// rows meets the other's only where both are ordered by the key, as TPC-H's lines and orders).
pub(crate) fn sampled_join_correlation(
    probe: &PhysicalNode,
    probe_key: usize,
    build: &PhysicalNode,
    build_key: usize,
) -> Option<f64> {
    let (probe_chain, probe_column) = sampled_chain(probe, probe_key)?;
    let (build_chain, build_column) = sampled_chain(build, build_key)?;
    if !has_filter(probe_chain) && !has_filter(build_chain) {
        return None;
    }
    let keys = |chain: &PhysicalNode, column: usize, filtered: bool| -> Option<Vec<i64>> {
        let rows = sample_rows(chain, JOIN_SAMPLE_ROWS, filtered)?;
        let values = cast(rows.column(column), &arrow::datatypes::DataType::Int64).ok()?;
        let values = values.as_primitive_opt::<arrow::datatypes::Int64Type>()?;
        Some(values.iter().flatten().collect())
    };
    let (probe_all, build_all) = (
        keys(probe_chain, probe_column, false)?,
        keys(build_chain, build_column, false)?,
    );
    let all_pairs = shared_pairs(&probe_all, &build_all);
    if all_pairs < MIN_SAMPLED_PAIRS {
        return None;
    }
    let (probe_kept, build_kept) = (
        keys(probe_chain, probe_column, true)?,
        keys(build_chain, build_column, true)?,
    );
    let kept_pairs = (shared_pairs(&probe_kept, &build_kept) as f64).max(0.5);
    let predicted = all_pairs as f64 * probe_kept.len() as f64 / probe_all.len() as f64
        * build_kept.len() as f64
        / build_all.len() as f64;
    (predicted > 0.0).then(|| kept_pairs / predicted)
}

/// The scan, filter and projection chain inside `node` (through joins and projections) that
/// its column `column` comes from, with the column's index there.
fn sampled_chain(node: &PhysicalNode, column: usize) -> Option<(&PhysicalNode, usize)> {
    if is_sampled_chain(node) {
        return Some((node, column));
    }
    match &node.kind {
        NodeKind::HashJoin { .. } | NodeKind::Projection { .. } => {
            let (input, index) = node.input_column(column)?;
            sampled_chain(input, index)
        }
        _ => None,
    }
}

fn is_sampled_chain(node: &PhysicalNode) -> bool {
    match &node.kind {
        NodeKind::ParquetScan(_) => true,
        NodeKind::Filter { input, .. } | NodeKind::Projection { input, .. } => {
            is_sampled_chain(input)
        }
        _ => false,
    }
}

fn has_filter(chain: &PhysicalNode) -> bool {
    match &chain.kind {
        NodeKind::Filter { .. } => true,
        NodeKind::Projection { input, .. } => has_filter(input),
        _ => false,
    }
}

/// The pairs of equal values between `left` and `right`, counted by merging the two sorted
/// (samples of tables ordered by the key arrive sorted, which sorting detects in one pass; a
/// hash map of one side took 7% of all planning time).
fn shared_pairs(left: &[i64], right: &[i64]) -> usize {
    let sorted = |values: &[i64]| {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted
    };
    let (left, right) = (sorted(left), sorted(right));
    let (mut pairs, mut l, mut r) = (0, 0, 0);
    while l < left.len() && r < right.len() {
        match left[l].cmp(&right[r]) {
            std::cmp::Ordering::Less => l += 1,
            std::cmp::Ordering::Greater => r += 1,
            std::cmp::Ordering::Equal => {
                let value = left[l];
                let left_run = left[l..].iter().take_while(|&&v| v == value).count();
                let right_run = right[r..].iter().take_while(|&&v| v == value).count();
                pairs += left_run * right_run;
                (l, r) = (l + left_run, r + right_run);
            }
        }
    }
    pairs
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_pairs_counts_every_pair_of_equal_values() {
        let nested_loops = |left: &[i64], right: &[i64]| {
            left.iter()
                .map(|l| right.iter().filter(|&r| r == l).count())
                .sum::<usize>()
        };
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |range: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % range) as i64 - 3
        };
        for range in [1, 5, 60, 10_000] {
            let left: Vec<i64> = (0..700).map(|_| next(range)).collect();
            let right: Vec<i64> = (0..500).map(|_| next(range)).collect();
            assert_eq!(shared_pairs(&left, &right), nested_loops(&left, &right));
        }
        assert_eq!(shared_pairs(&[1, 2, 2, 3], &[2, 2, 2, 4]), 6);
        assert_eq!(shared_pairs(&[], &[1]), 0);
    }
}
