//! Uncorrelated scalar subqueries in a filter, such as `WHERE total = (SELECT max(total) …)`,
//! rewritten as a cross join with the subquery's single row, so that Sabot's join runs them.
//! Only subqueries that are aggregates without `GROUP BY` are rewritten: they always give
//! exactly one row, so the join keeps every input row, as the scalar value would.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::logical_plan::{Filter, Subquery};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

/// The filter with its scalar subqueries joined in, or `None` when it has none to rewrite.
pub(crate) fn scalar_subqueries_as_cross_joins(filter: &Filter) -> Result<Option<LogicalPlan>> {
    let mut subqueries: Vec<Subquery> = Vec::new();
    let mut rewritable = true;
    filter.predicate.apply(|expr| {
        if let Expr::ScalarSubquery(subquery) = expr {
            rewritable &=
                subquery.outer_ref_columns.is_empty() && yields_one_row(&subquery.subquery);
            if !subqueries.contains(subquery) {
                subqueries.push(subquery.clone());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if subqueries.is_empty() || !rewritable {
        return Ok(None);
    }

    let mut joined = LogicalPlanBuilder::from(filter.input.as_ref().clone());
    let mut replacements = Vec::with_capacity(subqueries.len());
    for (index, subquery) in subqueries.iter().enumerate() {
        let alias = format!("__sabot_scalar_{index}");
        let value = subquery.subquery.schema().field(0).name().clone();
        let single_row = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
            .alias(alias.as_str())?
            .build()?;
        joined = joined.cross_join(single_row)?;
        replacements.push((
            subquery.clone(),
            Expr::Column(Column::new(Some(alias), value)),
        ));
    }
    let predicate = filter
        .predicate
        .clone()
        .transform(|expr| match &expr {
            Expr::ScalarSubquery(subquery) => {
                let replacement = replacements
                    .iter()
                    .find(|(candidate, _)| candidate == subquery)
                    .map(|(_, column)| column.clone());
                Ok(replacement.map_or_else(|| Transformed::no(expr.clone()), Transformed::yes))
            }
            _ => Ok(Transformed::no(expr)),
        })?
        .data;
    let original_columns: Vec<Expr> = filter
        .input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let rewritten = joined
        .filter(predicate)?
        .project(original_columns)?
        .build()?;
    Ok(Some(rewritten))
}

/// Whether `plan` always produces exactly one row: an aggregate without grouping keys, under
/// projections and aliases.
fn yields_one_row(plan: &Arc<LogicalPlan>) -> bool {
    match plan.as_ref() {
        LogicalPlan::Aggregate(aggregate) => aggregate.group_expr.is_empty(),
        LogicalPlan::Projection(projection) => yields_one_row(&projection.input),
        LogicalPlan::SubqueryAlias(alias) => yields_one_row(&alias.input),
        _ => false,
    }
}
