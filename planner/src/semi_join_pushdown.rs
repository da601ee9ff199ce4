//! Semi and anti joins moved below the inner joins under them, onto the one relation whose
//! columns they read: `(customer ⋈ orders ⋈ lineitem) ⋉ large_orders ON o_orderkey` becomes
//! `customer ⋈ (orders ⋉ large_orders) ⋈ lineitem` (TPC-H Q18). A semi or anti join keeps or
//! drops rows of its left input by those rows' own columns, so it commutes with the inner joins
//! above that relation; below them it shrinks the relation before the relation is joined, and
//! the join order is chosen with the smaller relation. A null-aware anti join (`NOT IN`) stays
//! where it is, and so does one with a filter besides its keys (TPC-H Q21's `EXISTS` with
//! `l2.l_suppkey <> l1.l_suppkey`): every row of the relation would build its candidate pairs
//! and evaluate the filter on them, where above the inner joins only their few rows do (Q21 took
//! 1.8 times as long so).

use std::sync::Arc;

use datafusion::common::{Column, JoinType, Result};
use datafusion::logical_expr::logical_plan::{Join, Projection};
use datafusion::logical_expr::{Expr, LogicalPlan};

/// `join` (a semi or anti join on keys alone, over inner joins) with the semi or anti join
/// moved onto the relation below the inner joins that holds its left keys' columns; `None`
/// when there is no such relation or `join` is no such join.
pub(crate) fn semi_join_pushed_down(join: &Join) -> Result<Option<LogicalPlan>> {
    if !matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        || join.null_aware
        || join.filter.is_some()
    {
        return Ok(None);
    }
    let left_schema = join.left.schema();
    let mut columns: Vec<Column> = join
        .on
        .iter()
        .flat_map(|(left, _)| left.column_refs())
        .filter(|column| left_schema.has_column(column))
        .cloned()
        .collect();
    columns.dedup();
    if columns.is_empty() {
        return Ok(None);
    }
    pushed_onto(&join.left, &columns, join)
}

/// `plan` with `semi` applied to the relation below it that holds all of `columns`, when `plan`
/// is an inner join (or a projection of columns over one) and such a relation is below it. The
/// relation is one the join order treats as a unit (not itself an inner join), so that where the
/// semi join lands does not depend on how the query's FROM list nested the inner joins.
fn pushed_onto(plan: &LogicalPlan, columns: &[Column], semi: &Join) -> Result<Option<LogicalPlan>> {
    match plan {
        LogicalPlan::Join(inner) if is_inner(plan) => {
            let holds = |side: &LogicalPlan| {
                columns
                    .iter()
                    .all(|column| side.schema().has_column(column))
            };
            let pushed = |side: &LogicalPlan| -> Result<Option<Arc<LogicalPlan>>> {
                Ok(applied_within(side, columns, semi)?.map(Arc::new))
            };
            let (left, right) = match (holds(&inner.left), holds(&inner.right)) {
                (true, false) => match pushed(&inner.left)? {
                    Some(left) => (left, Arc::clone(&inner.right)),
                    None => return Ok(None),
                },
                (false, true) => match pushed(&inner.right)? {
                    Some(right) => (Arc::clone(&inner.left), right),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            };
            Ok(Some(LogicalPlan::Join(Join::try_new(
                left,
                right,
                inner.on.clone(),
                inner.filter.clone(),
                JoinType::Inner,
                inner.join_constraint,
                inner.null_equality,
                false,
            )?)))
        }
        LogicalPlan::Projection(projection) if is_column_projection(plan) => {
            let Some(input) = pushed_onto(&projection.input, columns, semi)? else {
                return Ok(None);
            };
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                projection.expr.clone(),
                Arc::new(input),
            )?)))
        }
        _ => Ok(None),
    }
}

fn is_inner(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(join) if join.join_type == JoinType::Inner && !join.null_aware)
}

/// A projection of columns over an inner join: the join order sees through it (as
/// `join_region` does).
fn is_column_projection(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Projection(projection)
        if is_inner(&projection.input)
            && projection.expr.iter().all(|expr| matches!(expr, Expr::Column(_))))
}

/// `relation` with `semi` applied on it, or deeper when it is an inner join (or a projection
/// of columns over one) itself; `None` when that inner join's sides split the columns.
fn applied_within(
    relation: &LogicalPlan,
    columns: &[Column],
    semi: &Join,
) -> Result<Option<LogicalPlan>> {
    if is_inner(relation) || is_column_projection(relation) {
        return pushed_onto(relation, columns, semi);
    }
    Ok(Some(LogicalPlan::Join(Join::try_new(
        Arc::new(relation.clone()),
        Arc::clone(&semi.right),
        semi.on.clone(),
        semi.filter.clone(),
        semi.join_type,
        semi.join_constraint,
        semi.null_equality,
        false,
    )?)))
}
