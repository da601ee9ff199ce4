//! Guesses of the fraction of rows a filter keeps, from the predicate's shape and the distinct
//! counts of its columns where known (full statistics come with the cost-based planner, issue
//! 5): `column = literal` keeps one row in the column's distinct count (10% when unknown), an
//! `IN` list one per value, a `LIKE 'prefix%'` 5%, a range 30%. Conjuncts are not independent in
//! practice, so they combine with exponential backoff: the most selective counts fully, the next
//! by its square root, the next by its fourth root, and so on.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal, NotExpr,
};
use datafusion::physical_plan::PhysicalExpr;

const EQUALITY: f64 = 0.1;
const PREFIX_MATCH: f64 = 0.05;
const PATTERN_MATCH: f64 = 0.2;
const RANGE: f64 = 0.3;
const IN_LIST_VALUE: f64 = 0.1;
const IN_LIST_MAX: f64 = 0.5;
const IS_NULL: f64 = 0.1;
/// Anything else.
const UNKNOWN: f64 = 0.3;

/// The distinct count of a column of the filter's input, by index, where known.
pub(crate) type DistinctCounts<'a> = &'a dyn Fn(usize) -> Option<f64>;

/// The guessed fraction of rows `predicate` keeps.
pub(crate) fn filter_selectivity(predicate: &dyn PhysicalExpr, distinct: DistinctCounts) -> f64 {
    let mut terms = Vec::new();
    collect_conjuncts(predicate, &mut terms);
    let mut selectivities: Vec<f64> = terms
        .into_iter()
        .map(|term| term_selectivity(term, distinct))
        .collect();
    selectivities.sort_by(f64::total_cmp);
    selectivities
        .iter()
        .zip(0..)
        .map(|(&selectivity, rank)| selectivity.powf(0.5f64.powi(rank)))
        .product()
}

/// The `AND`ed terms of `predicate`.
fn collect_conjuncts<'a>(predicate: &'a dyn PhysicalExpr, terms: &mut Vec<&'a dyn PhysicalExpr>) {
    match predicate.downcast_ref::<BinaryExpr>() {
        Some(and) if *and.op() == Operator::And => {
            collect_conjuncts(and.left().as_ref(), terms);
            collect_conjuncts(and.right().as_ref(), terms);
        }
        _ => terms.push(predicate),
    }
}

/// The fraction of rows equal to one value of `column`: one in its distinct count.
fn equality(column: &dyn PhysicalExpr, distinct: DistinctCounts) -> f64 {
    column
        .downcast_ref::<Column>()
        .and_then(|column| distinct(column.index()))
        .map_or(EQUALITY, |count| 1.0 / count.max(1.0))
}

/// The column side of a comparison of a column with a literal.
fn compared_column(binary: &BinaryExpr) -> Option<&dyn PhysicalExpr> {
    let (left, right) = (binary.left().as_ref(), binary.right().as_ref());
    match (
        left.downcast_ref::<Literal>(),
        right.downcast_ref::<Literal>(),
    ) {
        (None, Some(_)) => Some(left),
        (Some(_), None) => Some(right),
        _ => None,
    }
}

/// The guessed fraction of rows one term keeps.
fn term_selectivity(term: &dyn PhysicalExpr, distinct: DistinctCounts) -> f64 {
    if let Some(binary) = term.downcast_ref::<BinaryExpr>() {
        let equal =
            || compared_column(binary).map_or(EQUALITY, |column| equality(column, distinct));
        return match binary.op() {
            Operator::And => filter_selectivity(term, distinct),
            Operator::Or => {
                let (left, right) = (
                    term_selectivity(binary.left().as_ref(), distinct),
                    term_selectivity(binary.right().as_ref(), distinct),
                );
                (left + right - left * right).min(1.0)
            }
            Operator::Eq | Operator::IsNotDistinctFrom => equal(),
            Operator::NotEq | Operator::IsDistinctFrom => 1.0 - equal(),
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => RANGE,
            _ => UNKNOWN,
        };
    }
    if let Some(like) = term.downcast_ref::<LikeExpr>() {
        let matching = match pattern_text(like.pattern().as_ref()) {
            Some(pattern) if !pattern.starts_with(['%', '_']) && pattern.contains(['%', '_']) => {
                PREFIX_MATCH
            }
            Some(pattern) if !pattern.contains(['%', '_']) => {
                equality(like.expr().as_ref(), distinct)
            }
            _ => PATTERN_MATCH,
        };
        return if like.negated() {
            1.0 - matching
        } else {
            matching
        };
    }
    if let Some(in_list) = term.downcast_ref::<InListExpr>() {
        let values = in_list.list().len() as f64;
        let matching = match in_list
            .expr()
            .downcast_ref::<Column>()
            .and_then(|column| distinct(column.index()))
        {
            Some(count) => (values / count.max(1.0)).min(1.0),
            None => (IN_LIST_VALUE * values).min(IN_LIST_MAX),
        };
        return if in_list.negated() {
            1.0 - matching
        } else {
            matching
        };
    }
    if let Some(not) = term.downcast_ref::<NotExpr>() {
        return 1.0 - term_selectivity(not.arg().as_ref(), distinct);
    }
    if term.downcast_ref::<IsNullExpr>().is_some() {
        return IS_NULL;
    }
    if term.downcast_ref::<IsNotNullExpr>().is_some() {
        return 1.0 - IS_NULL;
    }
    UNKNOWN
}

/// The text of a literal string pattern.
fn pattern_text(pattern: &dyn PhysicalExpr) -> Option<&str> {
    match pattern.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)) => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::{col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ])
    }

    fn binary(
        left: Arc<dyn PhysicalExpr>,
        op: Operator,
        right: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(left, op, right))
    }

    fn like(pattern: &str, negated: bool) -> Arc<dyn PhysicalExpr> {
        Arc::new(LikeExpr::new(
            negated,
            false,
            col("name", &schema()).unwrap(),
            lit(pattern),
        ))
    }

    fn unknown(_: usize) -> Option<f64> {
        None
    }

    #[test]
    fn terms_get_their_shapes_selectivity() {
        let a = col("a", &schema()).unwrap();
        let selectivity = |expr: Arc<dyn PhysicalExpr>| filter_selectivity(expr.as_ref(), &unknown);
        assert_eq!(
            selectivity(binary(Arc::clone(&a), Operator::Eq, lit(3i64))),
            EQUALITY
        );
        assert_eq!(selectivity(like("forest%", false)), PREFIX_MATCH);
        assert_eq!(selectivity(like("%green%", false)), PATTERN_MATCH);
        assert_eq!(
            selectivity(like("MEDIUM POLISHED%", true)),
            1.0 - PREFIX_MATCH
        );
        assert_eq!(selectivity(binary(a, Operator::Lt, lit(10i64))), RANGE);
    }

    #[test]
    fn equalities_and_in_lists_use_distinct_counts() {
        let a = col("a", &schema()).unwrap();
        let name = col("name", &schema()).unwrap();
        let counts = |column: usize| [Some(4.0), Some(150.0)][column];
        let equal = binary(lit("BRASS"), Operator::Eq, Arc::clone(&name));
        assert_eq!(filter_selectivity(equal.as_ref(), &counts), 1.0 / 150.0);
        let not_equal = binary(Arc::clone(&a), Operator::NotEq, lit(1i64));
        assert_eq!(filter_selectivity(not_equal.as_ref(), &counts), 0.75);
        let listed: Arc<dyn PhysicalExpr> =
            Arc::new(InListExpr::try_new(a, vec![lit(1i64), lit(2i64)], false, &schema()).unwrap());
        assert_eq!(filter_selectivity(listed.as_ref(), &counts), 0.5);
    }

    #[test]
    fn conjuncts_back_off_from_the_most_selective() {
        let a = col("a", &schema()).unwrap();
        let low = binary(Arc::clone(&a), Operator::GtEq, lit(1i64));
        let high = binary(Arc::clone(&a), Operator::Lt, lit(9i64));
        let both = binary(Arc::clone(&low), Operator::And, high);
        let expected = RANGE * RANGE.sqrt();
        assert!((filter_selectivity(both.as_ref(), &unknown) - expected).abs() < 1e-12);
        let with_equality = binary(both, Operator::And, binary(a, Operator::Eq, lit(2i64)));
        let expected = EQUALITY * RANGE.sqrt() * RANGE.powf(0.25);
        assert!((filter_selectivity(with_equality.as_ref(), &unknown) - expected).abs() < 1e-12);
    }
}
