//! A region of a logical plan whose joins may be put in any order: inner joins nested in each
//! other (cross joins too, which the FROM order can leave where a key would join later),
//! seen through projections that only pick columns. It is made of its relations
//! (the subtrees below it), the equalities of the joins' keys and the joins' other filters; an
//! inner join's filter holds wherever the relations it reads are joined.

use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::logical_expr::{Expr, LogicalPlan};

/// A region of inner equi-joins.
pub(crate) struct JoinRegion<'a> {
    /// The subtrees joined, in the order the query wrote them.
    pub(crate) relations: Vec<&'a LogicalPlan>,
    /// `left = right` of every join key.
    pub(crate) equalities: Vec<(Expr, Expr)>,
    /// The joins' non-key conditions.
    pub(crate) filters: Vec<Expr>,
}

/// The join region rooted at `plan`, if `plan` is an inner join over at least three relations
/// (with two, only the build side is to choose).
pub(crate) fn join_region(plan: &LogicalPlan) -> Option<JoinRegion<'_>> {
    if !is_reorderable(plan) {
        return None;
    }
    let mut region = JoinRegion {
        relations: Vec::new(),
        equalities: Vec::new(),
        filters: Vec::new(),
    };
    collect(plan, &mut region);
    (region.relations.len() >= 3).then_some(region)
}

fn is_reorderable(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(join)
        if join.join_type == JoinType::Inner
            && !join.null_aware
            && join.null_equality == NullEquality::NullEqualsNothing)
}

fn collect<'a>(plan: &'a LogicalPlan, region: &mut JoinRegion<'a>) {
    match plan {
        LogicalPlan::Join(join) if is_reorderable(plan) => {
            collect(&join.left, region);
            collect(&join.right, region);
            region.equalities.extend(join.on.iter().cloned());
            region.filters.extend(join.filter.iter().cloned());
        }
        LogicalPlan::Projection(projection)
            if is_reorderable(&projection.input)
                && projection
                    .expr
                    .iter()
                    .all(|expr| matches!(expr, Expr::Column(_))) =>
        {
            collect(&projection.input, region);
        }
        other => region.relations.push(other),
    }
}

impl JoinRegion<'_> {
    /// The relations `expr` reads, as a bit set, or `None` when a column it reads is in none
    /// of them or in more than one.
    pub(crate) fn relations_of(&self, expr: &Expr) -> Option<u64> {
        let mut set = 0u64;
        for column in expr.column_refs() {
            set |= 1u64 << self.relation_of(column)?;
        }
        Some(set)
    }

    fn relation_of(&self, column: &Column) -> Option<usize> {
        let mut holders = self
            .relations
            .iter()
            .enumerate()
            .filter(|(_, relation)| relation.schema().has_column(column))
            .map(|(index, _)| index);
        let holder = holders.next()?;
        holders.next().is_none().then_some(holder)
    }
}
