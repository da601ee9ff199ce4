//! Aggregations grouped only for the keys a join can match. When a join's input is an
//! aggregation joined on one of its group columns, and the join drops (or only probes) that
//! input's rows without a match, the groups whose key the other input lacks are computed for
//! nothing. Where the other input's keys all come from a filtered table scan below it (through
//! column projections, filters, and the keys of inner and semi joins), the aggregation's input
//! is semi-joined with that scan's keys before grouping: TPC-H Q17 averages the quantity of the
//! parts of one brand and container (0.1%), not of all 200K parts, and Q20 sums a year's
//! shipments of the `forest%` parts only. The physical planner decides whether a candidate pays;
//! this module finds the candidates and rewrites the join.

use std::sync::Arc;

use datafusion::common::{Column, ExprSchema, JoinConstraint, JoinType, NullEquality, Result};
use datafusion::logical_expr::logical_plan::{Aggregate, Join};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

/// The alias of the key scans this rewrite adds; an aggregation whose input is already
/// semi-joined with one is not rewritten again.
const KEY_SCAN_ALIAS: &str = "__sabot_join_keys";

/// A way to shrink an aggregation below a join: semi-join its input with `scan`'s keys.
pub(crate) struct KeySource {
    /// Whether the aggregation is below the join's left input (else its right).
    aggregation_on_left: bool,
    /// The join input's column that is the aggregation's group column.
    side_column: Column,
    /// The aggregation's input.
    pub(crate) aggregation_input: Arc<LogicalPlan>,
    /// The aggregation input's column grouped by.
    input_column: Column,
    /// A filtered table scan (a `Filter` over a `TableScan`, or a `TableScan` with filters)
    /// holding every key value of the other join input.
    pub(crate) scan: LogicalPlan,
    scan_column: Column,
}

/// The ways to shrink an aggregation below `join` by the keys of a filtered scan below its
/// other input, for every equi-key that is an aggregation's group column.
pub(crate) fn key_sources(join: &Join) -> Vec<KeySource> {
    if join.null_aware || join.null_equality != NullEquality::NullEqualsNothing {
        return Vec::new();
    }
    let mut found = Vec::new();
    for aggregation_on_left in [true, false] {
        if !drops_unmatched(join.join_type, aggregation_on_left) {
            continue;
        }
        let (aggregation_side, other_side) = if aggregation_on_left {
            (&join.left, &join.right)
        } else {
            (&join.right, &join.left)
        };
        for (left, right) in &join.on {
            let (side_key, other_key) = if aggregation_on_left {
                (left, right)
            } else {
                (right, left)
            };
            let (Expr::Column(side_column), Expr::Column(other_column)) = (side_key, other_key)
            else {
                continue;
            };
            let Some((aggregation_input, input_column)) =
                group_input_column(aggregation_side, side_column)
            else {
                continue;
            };
            let mut scans = Vec::new();
            filtered_scans_holding(other_side, other_column, &mut scans);
            for (scan, scan_column) in scans {
                if same_type(&aggregation_input, &input_column, &scan, &scan_column) {
                    found.push(KeySource {
                        aggregation_on_left,
                        side_column: side_column.clone(),
                        aggregation_input: Arc::clone(&aggregation_input),
                        input_column: input_column.clone(),
                        scan,
                        scan_column,
                    });
                }
            }
        }
    }
    found
}

/// `join` with the aggregation of `source` reading only the rows whose key its scan holds.
pub(crate) fn with_keys_filtered(join: &Join, source: &KeySource) -> Result<LogicalPlan> {
    let keys = LogicalPlanBuilder::from(source.scan.clone())
        .project(vec![Expr::Column(source.scan_column.clone())])?
        .alias(KEY_SCAN_ALIAS)?
        .build()?;
    let key = Column::new(Some(KEY_SCAN_ALIAS), source.scan_column.name.clone());
    let filtered_input = LogicalPlan::Join(Join::try_new(
        Arc::clone(&source.aggregation_input),
        Arc::new(keys),
        vec![(Expr::Column(source.input_column.clone()), Expr::Column(key))],
        None,
        JoinType::LeftSemi,
        JoinConstraint::On,
        NullEquality::NullEqualsNothing,
        false,
    )?);
    let (left, right) = if source.aggregation_on_left {
        (
            Arc::new(with_aggregation_input(
                &join.left,
                &source.side_column,
                filtered_input,
            )?),
            Arc::clone(&join.right),
        )
    } else {
        (
            Arc::clone(&join.left),
            Arc::new(with_aggregation_input(
                &join.right,
                &source.side_column,
                filtered_input,
            )?),
        )
    };
    Ok(LogicalPlan::Join(Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?))
}

/// Whether a join of `join_type` drops the rows of its left (or right) input that match no row
/// of the other, or reads that input only to find matches: then that input's unmatched rows
/// change nothing in its result.
fn drops_unmatched(join_type: JoinType, left: bool) -> bool {
    match join_type {
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => true,
        JoinType::Right | JoinType::RightAnti => left,
        JoinType::Left | JoinType::LeftAnti => !left,
        _ => false,
    }
}

/// The aggregation below `plan` (through aliases, column projections and filters) that output
/// `column` is a group column of, as that aggregation's input and the input column grouped by;
/// `None` where there is no such aggregation or its input is already filtered by key.
fn group_input_column(plan: &LogicalPlan, column: &Column) -> Option<(Arc<LogicalPlan>, Column)> {
    match plan {
        LogicalPlan::Aggregate(aggregation) => {
            let index = plan.schema().index_of_column(column).ok()?;
            let group = aggregation.group_expr.get(index)?;
            let Expr::Column(grouped) = unaliased(group) else {
                return None;
            };
            (!is_key_filtered(&aggregation.input))
                .then(|| (Arc::clone(&aggregation.input), grouped.clone()))
        }
        LogicalPlan::Filter(filter) => group_input_column(&filter.input, column),
        _ => {
            let (input, below) = column_below(plan, column)?;
            group_input_column(input, &below)
        }
    }
}

/// `plan` (on the path `group_input_column` took) with its aggregation reading `input`.
fn with_aggregation_input(
    plan: &LogicalPlan,
    column: &Column,
    input: LogicalPlan,
) -> Result<LogicalPlan> {
    let (child, below) = match plan {
        LogicalPlan::Aggregate(aggregation) => {
            return Ok(LogicalPlan::Aggregate(Aggregate::try_new(
                Arc::new(input),
                aggregation.group_expr.clone(),
                aggregation.aggr_expr.clone(),
            )?));
        }
        LogicalPlan::Filter(filter) => (filter.input.as_ref(), column.clone()),
        _ => column_below(plan, column).ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!(
                "column {column} is not passed through {}",
                plan.display()
            ))
        })?,
    };
    let child = with_aggregation_input(child, &below, input)?;
    plan.with_new_exprs(plan.expressions(), vec![child])
}

/// Whether `input` is already semi-joined with a key scan of this rewrite.
fn is_key_filtered(input: &LogicalPlan) -> bool {
    matches!(input, LogicalPlan::Join(join)
        if join.join_type == JoinType::LeftSemi && is_key_scan(&join.right))
}

/// Whether `plan` is a key scan this rewrite added (the right input of its semi joins).
pub(crate) fn is_key_scan(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::SubqueryAlias(alias) if alias.alias.table() == KEY_SCAN_ALIAS)
}

/// Collects the filtered table scans below `plan` that hold every value of `plan`'s output
/// `column`, with that column's name there.
fn filtered_scans_holding(
    plan: &LogicalPlan,
    column: &Column,
    found: &mut Vec<(LogicalPlan, Column)>,
) {
    match plan {
        LogicalPlan::Filter(filter)
            if matches!(filter.input.as_ref(), LogicalPlan::TableScan(_)) =>
        {
            found.push((plan.clone(), column.clone()));
        }
        LogicalPlan::TableScan(scan) if !scan.filters.is_empty() => {
            found.push((plan.clone(), column.clone()));
        }
        LogicalPlan::Filter(filter) => filtered_scans_holding(&filter.input, column, found),
        LogicalPlan::Sort(sort) => filtered_scans_holding(&sort.input, column, found),
        LogicalPlan::Limit(limit) => filtered_scans_holding(&limit.input, column, found),
        LogicalPlan::Aggregate(aggregation) => {
            let Ok(index) = plan.schema().index_of_column(column) else {
                return;
            };
            if let Some(Expr::Column(grouped)) = aggregation.group_expr.get(index).map(unaliased) {
                filtered_scans_holding(&aggregation.input, grouped, found);
            }
        }
        LogicalPlan::Join(join) if !join.null_aware => {
            let in_left = join.left.schema().has_column(column);
            let keeps_only_matches = match join.join_type {
                JoinType::Inner => true,
                JoinType::LeftSemi => in_left,
                JoinType::RightSemi => !in_left,
                _ => false,
            };
            let (own_side, other_side) = if in_left {
                (&join.left, &join.right)
            } else {
                (&join.right, &join.left)
            };
            filtered_scans_holding(own_side, column, found);
            if !keeps_only_matches {
                return;
            }
            for (left, right) in &join.on {
                let (own_key, other_key) = if in_left {
                    (left, right)
                } else {
                    (right, left)
                };
                if let (Expr::Column(own), Expr::Column(other)) = (own_key, other_key)
                    && own == column
                {
                    filtered_scans_holding(other_side, other, found);
                }
            }
        }
        _ => {
            if let Some((input, below)) = column_below(plan, column) {
                filtered_scans_holding(input, &below, found);
            }
        }
    }
}

/// The input of an alias or projection and the input column that output `column` passes on
/// unchanged.
fn column_below<'a>(plan: &'a LogicalPlan, column: &Column) -> Option<(&'a LogicalPlan, Column)> {
    let index = plan.schema().index_of_column(column).ok()?;
    match plan {
        LogicalPlan::SubqueryAlias(alias) => {
            let (qualifier, field) = alias.input.schema().qualified_field(index);
            Some((
                alias.input.as_ref(),
                Column::new(qualifier.cloned(), field.name()),
            ))
        }
        LogicalPlan::Projection(projection) => match unaliased(projection.expr.get(index)?) {
            Expr::Column(below) => Some((projection.input.as_ref(), below.clone())),
            _ => None,
        },
        _ => None,
    }
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        other => other,
    }
}

fn same_type(
    input: &LogicalPlan,
    input_column: &Column,
    scan: &LogicalPlan,
    scan_column: &Column,
) -> bool {
    match (
        input.schema().field_from_column(input_column),
        scan.schema().field_from_column(scan_column),
    ) {
        (Ok(input_field), Ok(scan_field)) => input_field.data_type() == scan_field.data_type(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::{col, lit, table_scan};

    use super::*;

    fn scan(name: &str) -> LogicalPlanBuilder {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]);
        table_scan(Some(name), &schema, None).unwrap()
    }

    /// `(SELECT k, sum(v) FROM facts GROUP BY k) <join_type> (SELECT * FROM dims WHERE v = 7)`.
    fn aggregation_joined(join_type: JoinType) -> Join {
        let totals = scan("facts")
            .aggregate(vec![col("facts.k")], vec![sum(col("facts.v"))])
            .unwrap()
            .alias("totals")
            .unwrap()
            .build()
            .unwrap();
        let dims = scan("dims")
            .filter(col("dims.v").eq(lit(7i64)))
            .unwrap()
            .build()
            .unwrap();
        let joined = LogicalPlanBuilder::from(totals)
            .join(dims, join_type, (vec!["totals.k"], vec!["dims.k"]), None)
            .unwrap()
            .build()
            .unwrap();
        match joined {
            LogicalPlan::Join(join) => join,
            other => panic!("not a join: {other}"),
        }
    }

    #[test]
    fn an_inner_join_filters_the_aggregation_input_by_the_filtered_scan_keys() {
        let join = aggregation_joined(JoinType::Inner);
        let sources = key_sources(&join);
        assert_eq!(sources.len(), 1);
        assert!(matches!(sources[0].scan, LogicalPlan::Filter(_)));
        let rewritten = with_keys_filtered(&join, &sources[0]).unwrap();
        assert_eq!(
            rewritten.schema(),
            &join.schema,
            "the join's output is unchanged"
        );
        let text = rewritten.display_indent().to_string();
        assert!(
            text.contains("LeftSemi Join: facts.k = __sabot_join_keys.k"),
            "{text}"
        );
        let LogicalPlan::Join(rewritten) = rewritten else {
            panic!("not a join: {text}");
        };
        assert!(
            key_sources(&rewritten).is_empty(),
            "an input filtered once is not filtered again"
        );
    }

    #[test]
    fn an_aggregation_whose_unmatched_groups_are_kept_is_not_filtered() {
        assert!(key_sources(&aggregation_joined(JoinType::Left)).is_empty());
        assert!(key_sources(&aggregation_joined(JoinType::Full)).is_empty());
        assert!(key_sources(&aggregation_joined(JoinType::LeftAnti)).is_empty());
        assert_eq!(key_sources(&aggregation_joined(JoinType::Right)).len(), 1);
        assert_eq!(
            key_sources(&aggregation_joined(JoinType::LeftSemi)).len(),
            1
        );
    }

    #[test]
    fn an_unfiltered_scan_holds_no_useful_keys() {
        let totals = scan("facts")
            .aggregate(vec![col("facts.k")], vec![sum(col("facts.v"))])
            .unwrap()
            .build()
            .unwrap();
        let plan = LogicalPlanBuilder::from(scan("dims").build().unwrap())
            .join(
                totals,
                JoinType::Inner,
                (vec!["dims.k"], vec!["facts.k"]),
                None,
            )
            .unwrap()
            .build()
            .unwrap();
        let LogicalPlan::Join(join) = plan else {
            panic!("not a join");
        };
        assert!(key_sources(&join).is_empty());
    }
}
