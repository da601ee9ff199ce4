//! Guesses of the fraction of rows a filter keeps, from the predicate's shape and what is known
//! of its columns (full statistics come with the cost-based planner, issue 5): `column =
//! literal` keeps one row in the column's distinct count (10% when unknown), an `IN` list one
//! per value; a `LIKE` keeps the share of the column's first 8K sampled values it matches (without a
//! sample, 5% for `'prefix%'`, 20% for other patterns). The range comparisons of one integer or date column with
//! literals are put together into one interval, which keeps its share of the column's
//! `[min, max]` from the file statistics, or after `ANALYZE` the share its equi-depth histogram
//! gives (of the non-null rows); without either each comparison keeps 30%. `IS NULL` keeps the
//! share of nulls `ANALYZE` counted (10% when unknown). Conjuncts on
//! one table are not independent in practice, so they combine with exponential backoff: the most
//! selective counts fully, the next by its square root, the next by its fourth root, and so on.
//! Conjuncts on different tables (a join's residual filter) multiply as independent.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Scalar, StringArray, StringViewArray};
use arrow::compute::cast;
use arrow::compute::kernels::comparison;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal, NotExpr,
};
use datafusion::physical_plan::PhysicalExpr;

use crate::histogram::Histogram;

const EQUALITY: f64 = 0.1;
const PREFIX_MATCH: f64 = 0.05;
const PATTERN_MATCH: f64 = 0.2;
const RANGE: f64 = 0.3;
const IN_LIST_VALUE: f64 = 0.1;
const IN_LIST_MAX: f64 = 0.5;
const IS_NULL: f64 = 0.1;
/// Anything else.
const UNKNOWN: f64 = 0.3;
/// Sampled values a `LIKE` is matched against: enough to tell a share of 0.1%, few enough that
/// the matching (at every planning of the query) stays well under a millisecond.
const LIKE_SAMPLE_ROWS: usize = 8192;

/// What is known of the columns of a filter's input, by index.
pub(crate) trait ColumnStatistics {
    /// The estimated number of distinct values.
    fn distinct(&self, column: usize) -> Option<f64>;
    /// The smallest and largest value of an integer or date column.
    fn bounds(&self, column: usize) -> Option<(i64, i64)>;
    /// The equi-depth histogram of an integer, date or decimal column (from `ANALYZE`).
    fn histogram(&self, column: usize) -> Option<Arc<Histogram>>;
    /// The share of the column's values that are null (from `ANALYZE`).
    fn null_fraction(&self, column: usize) -> Option<f64>;
    /// A sample of the column's values (the first of its file).
    fn sample(&self, column: usize) -> Option<ArrayRef>;
    /// Which scanned table the column comes from (one id per scan in the plan), if known.
    fn origin(&self, column: usize) -> Option<usize>;
}

/// The guessed fraction of rows `predicate` keeps.
pub(crate) fn filter_selectivity(
    predicate: &dyn PhysicalExpr,
    statistics: &dyn ColumnStatistics,
) -> f64 {
    let mut terms = Vec::new();
    collect_conjuncts(predicate, &mut terms);
    let mut intervals: Vec<(usize, Interval)> = Vec::new();
    // Each term's selectivity with the table its columns come from.
    let mut selectivities: Vec<(Option<usize>, f64)> = Vec::new();
    for term in terms {
        match bounded_comparison(term, statistics) {
            Some((column, bound)) => match intervals.iter_mut().find(|(seen, _)| *seen == column) {
                Some((_, interval)) => interval.narrow(bound),
                None => {
                    let mut interval = Interval::default();
                    interval.narrow(bound);
                    intervals.push((column, interval));
                }
            },
            None => selectivities.push((
                term_origin(term, statistics),
                term_selectivity(term, statistics),
            )),
        }
    }
    for (column, interval) in intervals {
        let share = match statistics.histogram(column) {
            Some(histogram) => histogram.share(interval.low, interval.high),
            None => statistics
                .bounds(column)
                .map_or(RANGE, |bounds| interval.share_of(bounds)),
        };
        let not_null = 1.0 - statistics.null_fraction(column).unwrap_or(0.0);
        selectivities.push((statistics.origin(column), share * not_null));
    }
    // Terms on one table back off from each other; tables count as independent.
    selectivities.sort_by(|(origin, selectivity), (other_origin, other)| {
        origin.cmp(other_origin).then(selectivity.total_cmp(other))
    });
    selectivities
        .chunk_by(|(origin, _), (other, _)| origin == other)
        .map(|table| {
            table
                .iter()
                .zip(0..)
                .map(|(&(_, selectivity), rank)| selectivity.powf(0.5f64.powi(rank)))
                .product::<f64>()
        })
        .product()
}

/// The table all of `term`'s columns come from, if they all come from one known table.
fn term_origin(term: &dyn PhysicalExpr, statistics: &dyn ColumnStatistics) -> Option<usize> {
    let mut columns = Vec::new();
    collect_column_indices(term, &mut columns);
    let mut origins = columns.into_iter().map(|column| statistics.origin(column));
    let first = origins.next()??;
    origins.all(|origin| origin == Some(first)).then_some(first)
}

fn collect_column_indices(expr: &dyn PhysicalExpr, columns: &mut Vec<usize>) {
    match expr.downcast_ref::<Column>() {
        Some(column) => columns.push(column.index()),
        None => {
            for child in expr.children() {
                collect_column_indices(child.as_ref(), columns);
            }
        }
    }
}

/// The values a conjunction of range comparisons lets through: `low <= value <= high`.
#[derive(Debug, Default, Clone, Copy)]
struct Interval {
    low: Option<i64>,
    high: Option<i64>,
}

/// One side of a range comparison of a column with a literal.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtLeast(i64),
    AtMost(i64),
}

impl Interval {
    fn narrow(&mut self, bound: Bound) {
        match bound {
            Bound::AtLeast(value) => self.low = Some(self.low.map_or(value, |low| low.max(value))),
            Bound::AtMost(value) => {
                self.high = Some(self.high.map_or(value, |high| high.min(value)))
            }
        }
    }

    /// The share of the integers in `[min, max]` that fall inside.
    fn share_of(&self, (min, max): (i64, i64)) -> f64 {
        let domain = (max as f64 - min as f64 + 1.0).max(1.0);
        let low = self.low.map_or(min, |low| low.max(min));
        let high = self.high.map_or(max, |high| high.min(max));
        ((high as f64 - low as f64 + 1.0) / domain).clamp(1.0 / domain, 1.0)
    }
}

/// The column and bound of `column < literal` (and the other range comparisons, either way
/// round), when the column's bounds are known and the literal is an integer or a date.
fn bounded_comparison(
    term: &dyn PhysicalExpr,
    statistics: &dyn ColumnStatistics,
) -> Option<(usize, Bound)> {
    let binary = term.downcast_ref::<BinaryExpr>()?;
    let (column, literal, column_first) = match (
        binary.left().downcast_ref::<Column>(),
        binary.right().downcast_ref::<Literal>(),
        binary.left().downcast_ref::<Literal>(),
        binary.right().downcast_ref::<Column>(),
    ) {
        (Some(column), Some(literal), _, _) => (column, literal, true),
        (_, _, Some(literal), Some(column)) => (column, literal, false),
        _ => return None,
    };
    statistics.bounds(column.index())?;
    let value = match literal.value() {
        ScalarValue::Int8(Some(value)) => i64::from(*value),
        ScalarValue::Int16(Some(value)) => i64::from(*value),
        ScalarValue::Int32(Some(value)) | ScalarValue::Date32(Some(value)) => i64::from(*value),
        ScalarValue::Int64(Some(value)) | ScalarValue::Date64(Some(value)) => *value,
        ScalarValue::Decimal128(Some(value), _, _) => i64::try_from(*value).ok()?,
        _ => return None,
    };
    // `literal op column` is `column op' literal` with the comparison turned round.
    let bound = match (binary.op(), column_first) {
        (Operator::Gt, true) | (Operator::Lt, false) => Bound::AtLeast(value.checked_add(1)?),
        (Operator::GtEq, true) | (Operator::LtEq, false) => Bound::AtLeast(value),
        (Operator::Lt, true) | (Operator::Gt, false) => Bound::AtMost(value.checked_sub(1)?),
        (Operator::LtEq, true) | (Operator::GtEq, false) => Bound::AtMost(value),
        _ => return None,
    };
    Some((column.index(), bound))
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
fn equality(column: &dyn PhysicalExpr, statistics: &dyn ColumnStatistics) -> f64 {
    column
        .downcast_ref::<Column>()
        .and_then(|column| statistics.distinct(column.index()))
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
fn term_selectivity(term: &dyn PhysicalExpr, statistics: &dyn ColumnStatistics) -> f64 {
    if let Some(binary) = term.downcast_ref::<BinaryExpr>() {
        let equal =
            || compared_column(binary).map_or(EQUALITY, |column| equality(column, statistics));
        return match binary.op() {
            Operator::And => filter_selectivity(term, statistics),
            Operator::Or => {
                let (left, right) = (
                    term_selectivity(binary.left().as_ref(), statistics),
                    term_selectivity(binary.right().as_ref(), statistics),
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
        let sampled = pattern_text(like.pattern().as_ref()).and_then(|pattern| {
            let column = like.expr().downcast_ref::<Column>()?;
            sampled_match(like, pattern, &statistics.sample(column.index())?)
        });
        let matching = match pattern_text(like.pattern().as_ref()) {
            _ if let Some(sampled) = sampled => sampled,
            Some(pattern) if !pattern.starts_with(['%', '_']) && pattern.contains(['%', '_']) => {
                PREFIX_MATCH
            }
            Some(pattern) if !pattern.contains(['%', '_']) => {
                equality(like.expr().as_ref(), statistics)
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
            .and_then(|column| statistics.distinct(column.index()))
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
        return 1.0 - term_selectivity(not.arg().as_ref(), statistics);
    }
    let null_share = |tested: &Arc<dyn PhysicalExpr>| {
        tested
            .downcast_ref::<Column>()
            .and_then(|column| statistics.null_fraction(column.index()))
            .unwrap_or(IS_NULL)
    };
    if let Some(is_null) = term.downcast_ref::<IsNullExpr>() {
        return null_share(is_null.arg());
    }
    if let Some(is_not_null) = term.downcast_ref::<IsNotNullExpr>() {
        return 1.0 - null_share(is_not_null.arg());
    }
    UNKNOWN
}

/// The share of `sample` that matches the `LIKE` pattern (at least half a row's share, so
/// that a pattern no sampled value matches still keeps a few rows).
fn sampled_match(like: &LikeExpr, pattern: &str, sample: &ArrayRef) -> Option<f64> {
    if sample.is_empty() {
        return None;
    }
    let sample = &sample.slice(0, sample.len().min(LIKE_SAMPLE_ROWS));
    // The sample's own string type where it has one: a cast would copy every value at each
    // planning of the query.
    let (strings, pattern): (ArrayRef, Scalar<ArrayRef>) = match sample.data_type() {
        DataType::Utf8View => (
            Arc::clone(sample),
            Scalar::new(Arc::new(StringViewArray::from(vec![pattern]))),
        ),
        DataType::Utf8 => (
            Arc::clone(sample),
            Scalar::new(Arc::new(StringArray::from(vec![pattern]))),
        ),
        _ => (
            cast(sample.as_ref(), &DataType::Utf8).ok()?,
            Scalar::new(Arc::new(StringArray::from(vec![pattern]))),
        ),
    };
    let matched = if like.case_insensitive() {
        comparison::ilike(&strings, &pattern)
    } else {
        comparison::like(&strings, &pattern)
    }
    .ok()?;
    Some((matched.true_count() as f64).max(0.5) / sample.len() as f64)
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

    /// Statistics of the test schema's two columns.
    struct Known {
        distinct: [Option<f64>; 2],
        bounds: [Option<(i64, i64)>; 2],
        /// Sampled values of `name`.
        names: Option<ArrayRef>,
        /// `ANALYZE`'s histogram of `a`.
        histogram: Option<Arc<Histogram>>,
        null_fractions: [Option<f64>; 2],
        origins: [Option<usize>; 2],
    }

    impl ColumnStatistics for Known {
        fn distinct(&self, column: usize) -> Option<f64> {
            self.distinct[column]
        }

        fn bounds(&self, column: usize) -> Option<(i64, i64)> {
            self.bounds[column]
        }

        fn histogram(&self, column: usize) -> Option<Arc<Histogram>> {
            (column == 0).then(|| self.histogram.clone()).flatten()
        }

        fn null_fraction(&self, column: usize) -> Option<f64> {
            self.null_fractions[column]
        }

        fn sample(&self, column: usize) -> Option<ArrayRef> {
            (column == 1).then(|| self.names.clone()).flatten()
        }

        fn origin(&self, column: usize) -> Option<usize> {
            self.origins[column]
        }
    }

    const UNKNOWN_COLUMNS: Known = Known {
        distinct: [None, None],
        bounds: [None, None],
        names: None,
        histogram: None,
        null_fractions: [None, None],
        origins: [None, None],
    };

    #[test]
    fn terms_get_their_shapes_selectivity() {
        let a = col("a", &schema()).unwrap();
        let selectivity =
            |expr: Arc<dyn PhysicalExpr>| filter_selectivity(expr.as_ref(), &UNKNOWN_COLUMNS);
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
        let counts = Known {
            distinct: [Some(4.0), Some(150.0)],
            bounds: [None, None],
            names: None,
            histogram: None,
            null_fractions: [None, None],
            origins: [None, None],
        };
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
        // Without bounds, each comparison counts as a range of its own.
        let expected = RANGE * RANGE.sqrt();
        assert!((filter_selectivity(both.as_ref(), &UNKNOWN_COLUMNS) - expected).abs() < 1e-12);
        let on_name = binary(both, Operator::And, like("x%", false));
        let expected = PREFIX_MATCH * RANGE.sqrt() * RANGE.powf(0.25);
        assert!((filter_selectivity(on_name.as_ref(), &UNKNOWN_COLUMNS) - expected).abs() < 1e-12);
    }

    #[test]
    fn terms_on_different_tables_multiply_and_back_off_within_a_table() {
        let a = col("a", &schema()).unwrap();
        let name = col("name", &schema()).unwrap();
        let tables = |origins| Known {
            distinct: [Some(10.0), Some(4.0)],
            bounds: [None, None],
            names: None,
            histogram: None,
            null_fractions: [None, None],
            origins,
        };
        let both = binary(
            binary(Arc::clone(&a), Operator::Eq, lit(1i64)),
            Operator::And,
            binary(name, Operator::Eq, lit("x")),
        );
        let apart = filter_selectivity(both.as_ref(), &tables([Some(1), Some(2)]));
        assert!((apart - 0.1 * 0.25).abs() < 1e-12);
        let together = filter_selectivity(both.as_ref(), &tables([Some(1), Some(1)]));
        assert!((together - 0.1 * 0.25f64.sqrt()).abs() < 1e-12);
        // A term over columns of two tables is of no one table: it backs off with the unknown.
        let across = binary(a, Operator::Lt, col("name", &schema()).unwrap());
        assert_eq!(
            term_origin(across.as_ref(), &tables([Some(1), Some(2)])),
            None
        );
    }

    #[test]
    fn ranges_on_one_column_keep_their_share_of_its_bounds() {
        let a = col("a", &schema()).unwrap();
        let bounded = Known {
            distinct: [None, None],
            bounds: [Some((1, 100)), None],
            names: None,
            histogram: None,
            null_fractions: [None, None],
            origins: [None, None],
        };
        let low = binary(Arc::clone(&a), Operator::GtEq, lit(11i64));
        let high = binary(lit(20i64), Operator::GtEq, Arc::clone(&a));
        let both = binary(low, Operator::And, high);
        assert!((filter_selectivity(both.as_ref(), &bounded) - 0.1).abs() < 1e-12);
        let above = binary(Arc::clone(&a), Operator::Gt, lit(90i64));
        assert!((filter_selectivity(above.as_ref(), &bounded) - 0.1).abs() < 1e-12);
        let empty = binary(a, Operator::Lt, lit(-5i64));
        assert!((filter_selectivity(empty.as_ref(), &bounded) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn analyzed_columns_give_ranges_their_histogram_share_and_null_tests_their_nulls() {
        let a = col("a", &schema()).unwrap();
        // 90% of the values below 100, the rest up to 1,000,000; a fifth of the rows null.
        let mut values: Vec<i64> = (0..9_000).map(|value| value % 100).collect();
        values.extend((0..1_000).map(|value| 100 + value * 1_000));
        values.sort_unstable();
        let analyzed = Known {
            distinct: [None, None],
            bounds: [Some((0, 999_100)), None],
            names: None,
            histogram: Histogram::from_sorted_sample(&values, 64, (0, 999_100)).map(Arc::new),
            null_fractions: [Some(0.2), None],
            origins: [None, None],
        };
        let low = binary(Arc::clone(&a), Operator::Lt, lit(100i64));
        // The bounds alone would say 0.01%.
        let kept = filter_selectivity(low.as_ref(), &analyzed);
        assert!((kept - 0.9 * 0.8).abs() < 0.03, "kept {kept}");
        let is_null: Arc<dyn PhysicalExpr> = Arc::new(IsNullExpr::new(Arc::clone(&a)));
        assert!((filter_selectivity(is_null.as_ref(), &analyzed) - 0.2).abs() < 1e-12);
        let is_not_null: Arc<dyn PhysicalExpr> = Arc::new(IsNotNullExpr::new(a));
        assert!((filter_selectivity(is_not_null.as_ref(), &analyzed) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn like_keeps_the_share_of_sampled_values_it_matches() {
        let names: Vec<String> = (0..1000)
            .map(|i| {
                if i % 20 == 0 {
                    format!("forest green {i}")
                } else {
                    format!("navy blue {i}")
                }
            })
            .collect();
        let sampled = Known {
            distinct: [None, None],
            bounds: [None, None],
            names: Some(Arc::new(StringArray::from(names))),
            histogram: None,
            null_fractions: [None, None],
            origins: [None, None],
        };
        let selectivity = |expr: Arc<dyn PhysicalExpr>| filter_selectivity(expr.as_ref(), &sampled);
        assert!((selectivity(like("%green%", false)) - 0.05).abs() < 1e-12);
        assert!((selectivity(like("%green%", true)) - 0.95).abs() < 1e-12);
        assert!((selectivity(like("navy%", false)) - 0.95).abs() < 1e-12);
        // No sampled value matches: half a row's share, not zero.
        assert!((selectivity(like("%purple%", false)) - 0.0005).abs() < 1e-12);
        // A sample of string views (as Parquet scans read strings) matches the same way.
        let views = Known {
            names: Some(cast(sampled.names.as_ref().unwrap(), &DataType::Utf8View).unwrap()),
            histogram: None,
            null_fractions: [None, None],
            ..sampled
        };
        assert!((filter_selectivity(like("%green%", false).as_ref(), &views) - 0.05).abs() < 1e-12);
    }
}
