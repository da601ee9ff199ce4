//! How a Filter operator applies its predicate to a batch. A conjunction is taken apart: the
//! conjuncts that are cheap over every row (a fixed-width column compared with a literal or with
//! another column, a null test of a column, a string-view column equal to one of some string
//! literals, which `sabot-kernels` decides by the 16-byte views) are evaluated over the whole
//! batch and their masks ANDed a word at a time; the other conjuncts (pattern matching, other IN
//! lists, arithmetic) are evaluated in the query's order, each only over the rows still kept,
//! `LIKE` patterns of several literal segments by `sabot-kernels`' substring search instead of
//! the regular expression Arrow compiles for them. DataFusion's own AND
//! instead evaluates its right side over the rows its left side kept and scatters the answers
//! back into a full-length mask, one run of kept rows at a time, which cost TPC-H Q6 a quarter
//! of its time.
//!
//! A filter right after a scan that reads decimals narrow (`Decimal64`, see
//! [`crate::source::ParquetScan::narrow_schema`]) gives the conjuncts over every row only the
//! columns they read, those decimals widened to the plan's `Decimal128` unless they are only
//! compared with literals (then compared as they come, as 64-bit integers), selects the rows
//! from the narrow batch and widens only the rows it keeps.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal,
};
use datafusion::physical_expr::split_conjunction;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::PhysicalExpr;
use sabot_kernels::{LikePattern, ViewLiteral, string_views_like, strings_like, views_matching};

use crate::error::{ExecError, Result};
use crate::source::{widened, widened_column};

const OPERATOR: &str = "Filter";

/// A filter predicate split into the conjuncts evaluated over every row and the rest.
pub(crate) struct FilterPredicate {
    over_all_rows: Vec<Conjunct>,
    over_kept_rows: Vec<KeptConjunct>,
    /// Set where the input comes narrow.
    narrow: Option<NarrowInput>,
}

/// How a filter reads input whose small decimals come as `Decimal64`.
struct NarrowInput {
    /// The input as the plan types it (and the filter's output).
    schema: SchemaRef,
    /// The input columns the conjuncts over every row read, as the plan types them.
    read: Vec<usize>,
    read_schema: SchemaRef,
    /// The conjuncts over every row, over the columns `read`.
    over_read_columns: Vec<Conjunct>,
}

/// A conjunct evaluated over the rows still kept.
enum KeptConjunct {
    /// By DataFusion.
    Expr(Arc<dyn PhysicalExpr>),
    /// A string column `LIKE` (`negated`: `NOT LIKE`) a pattern of several literal segments
    /// and `%`, matched by `sabot-kernels`' substring search.
    Like {
        column: usize,
        pattern: Box<LikePattern>,
        negated: bool,
    },
}

/// A conjunct evaluated over every row.
#[derive(Clone)]
enum Conjunct {
    /// By DataFusion's vectorized kernels.
    Expr(Arc<dyn PhysicalExpr>),
    /// A string-view column equal to one of `literals` (`negated`: to none of them).
    Strings {
        column: usize,
        literals: Vec<ViewLiteral>,
        negated: bool,
    },
}

impl FilterPredicate {
    /// `predicate` over rows of `schema`, taken apart at its ANDs.
    pub(crate) fn new(predicate: &Arc<dyn PhysicalExpr>, schema: &Schema) -> FilterPredicate {
        let mut over_all_rows = Vec::new();
        let mut over_kept_rows = Vec::new();
        for conjunct in split_conjunction(predicate) {
            if let Some(strings) = string_match(conjunct, schema) {
                over_all_rows.push(strings);
            } else if cheap_over_all_rows(conjunct.as_ref(), schema) {
                over_all_rows.push(Conjunct::Expr(Arc::clone(conjunct)));
            } else if let Some(like) = like_match(conjunct, schema) {
                over_kept_rows.push(like);
            } else {
                over_kept_rows.push(KeptConjunct::Expr(Arc::clone(conjunct)));
            }
        }
        FilterPredicate {
            over_all_rows,
            over_kept_rows,
            narrow: None,
        }
    }

    /// Makes the filter take input of `narrow_schema`: `schema` (its input as the plan types
    /// it) with some decimals typed `Decimal64`. Returns whether it can.
    pub(crate) fn read_narrow(&mut self, schema: &SchemaRef, narrow_schema: &Schema) -> bool {
        if schema.fields().len() != narrow_schema.fields().len() {
            return false;
        }
        let mut read: Vec<usize> = Vec::new();
        for conjunct in &self.over_all_rows {
            read.extend(conjunct.columns());
        }
        read.sort_unstable();
        read.dedup();
        // A column only compared with literals is compared narrow, as it comes.
        let comparisons: Vec<Option<(usize, Conjunct)>> = self
            .over_all_rows
            .iter()
            .map(|conjunct| narrow_comparison(conjunct, narrow_schema))
            .collect();
        let stays_narrow = |column: usize| {
            self.over_all_rows
                .iter()
                .zip(&comparisons)
                .filter(|(conjunct, _)| conjunct.columns().contains(&column))
                .all(|(_, comparison)| matches!(comparison, Some((compared, _)) if *compared == column))
        };
        let Some(over_read_columns) = self
            .over_all_rows
            .iter()
            .zip(&comparisons)
            .map(|(conjunct, comparison)| match comparison {
                Some((column, narrow)) if stays_narrow(*column) => narrow.onto(&read),
                _ => conjunct.onto(&read),
            })
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        let read_schema = Arc::new(Schema::new(
            read.iter()
                .map(|&column| {
                    if stays_narrow(column) {
                        narrow_schema.field(column).clone()
                    } else {
                        schema.field(column).clone()
                    }
                })
                .collect::<Vec<_>>(),
        ));
        self.narrow = Some(NarrowInput {
            schema: Arc::clone(schema),
            read,
            read_schema,
            over_read_columns,
        });
        true
    }

    /// The rows of `batch` for which every conjunct is true (not false, not null).
    pub(crate) fn filter(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut kept = match &self.narrow {
            None => match mask(&self.over_all_rows, batch)? {
                Some(mask) => keep(batch, mask)?,
                None => batch.clone(),
            },
            Some(narrow) => {
                let columns = narrow
                    .read
                    .iter()
                    .zip(narrow.read_schema.fields())
                    .map(|(&column, field)| widened_column(batch.column(column), field.data_type()))
                    .collect::<Result<Vec<_>>>()?;
                let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                let read = RecordBatch::try_new_with_options(
                    Arc::clone(&narrow.read_schema),
                    columns,
                    &options,
                )
                .map_err(ExecError::arrow(OPERATOR))?;
                let kept = match mask(&narrow.over_read_columns, &read)? {
                    Some(mask) => keep(batch, mask)?,
                    None => batch.clone(),
                };
                widened(&kept, &narrow.schema)?
            }
        };
        for conjunct in &self.over_kept_rows {
            if kept.num_rows() == 0 {
                break;
            }
            let mask = match conjunct {
                KeptConjunct::Expr(expr) => true_rows(expr.as_ref(), &kept)?,
                KeptConjunct::Like {
                    column,
                    pattern,
                    negated,
                } => {
                    let values = kept.column(*column);
                    if let Some(views) = values.as_string_view_opt() {
                        string_views_like(views, pattern, *negated)
                    } else if let Some(strings) = values.as_string_opt::<i32>() {
                        strings_like(strings, pattern, *negated)
                    } else if let Some(strings) = values.as_string_opt::<i64>() {
                        strings_like(strings, pattern, *negated)
                    } else {
                        return Err(invalid_input(format!(
                            "LIKE got a column of {}",
                            values.data_type()
                        )));
                    }
                }
            };
            kept = keep(&kept, mask)?;
        }
        Ok(kept)
    }
}

impl Conjunct {
    /// The input columns the conjunct reads.
    fn columns(&self) -> Vec<usize> {
        match self {
            Conjunct::Expr(expr) => collect_columns(expr).iter().map(Column::index).collect(),
            Conjunct::Strings { column, .. } => vec![*column],
        }
    }

    /// The conjunct over a batch of the input columns `read` (ascending); `None` if it reads
    /// another.
    fn onto(&self, read: &[usize]) -> Option<Conjunct> {
        let position = |column: usize| read.binary_search(&column).ok();
        Some(match self {
            Conjunct::Expr(expr) => {
                let mut unread = false;
                let moved = Arc::clone(expr)
                    .transform(|node| {
                        let Some(column) = node.downcast_ref::<Column>() else {
                            return Ok(Transformed::no(node));
                        };
                        let Some(at) = position(column.index()) else {
                            unread = true;
                            return Ok(Transformed::no(node));
                        };
                        Ok(Transformed::yes(
                            Arc::new(Column::new(column.name(), at)) as _
                        ))
                    })
                    .ok()?
                    .data;
                if unread {
                    return None;
                }
                Conjunct::Expr(moved)
            }
            Conjunct::Strings {
                column,
                literals,
                negated,
            } => Conjunct::Strings {
                column: position(*column)?,
                literals: literals.clone(),
                negated: *negated,
            },
        })
    }
}

/// `conjunct` as a comparison of a column that `narrow_schema` types `Decimal64` with a decimal
/// literal of its scale that fits 64 bits: that column and the comparison of it with the
/// literal as a `Decimal64` of the column's type, which Arrow compares as 64-bit integers.
fn narrow_comparison(conjunct: &Conjunct, narrow_schema: &Schema) -> Option<(usize, Conjunct)> {
    let Conjunct::Expr(expr) = conjunct else {
        return None;
    };
    let binary = expr.downcast_ref::<BinaryExpr>()?;
    if !is_comparison(binary.op()) {
        return None;
    }
    let narrow_column = |side: &Arc<dyn PhysicalExpr>| {
        let column = side.downcast_ref::<Column>()?;
        match narrow_schema.fields().get(column.index())?.data_type() {
            DataType::Decimal64(precision, scale) => Some((column.index(), *precision, *scale)),
            _ => None,
        }
    };
    let narrow_literal = |side: &Arc<dyn PhysicalExpr>, precision: u8, scale: i8| match side
        .downcast_ref::<Literal>()?
        .value()
    {
        ScalarValue::Decimal128(Some(value), _, literal_scale) if *literal_scale == scale => {
            let value = i64::try_from(*value).ok()?;
            Some(Arc::new(Literal::new(ScalarValue::Decimal64(
                Some(value),
                precision,
                scale,
            ))) as Arc<dyn PhysicalExpr>)
        }
        _ => None,
    };
    let (left, right) = (binary.left(), binary.right());
    let (column, left, right) = if let Some((column, precision, scale)) = narrow_column(left) {
        (
            column,
            Arc::clone(left),
            narrow_literal(right, precision, scale)?,
        )
    } else {
        let (column, precision, scale) = narrow_column(right)?;
        (
            column,
            narrow_literal(left, precision, scale)?,
            Arc::clone(right),
        )
    };
    let compared = BinaryExpr::new(left, *binary.op(), right);
    Some((column, Conjunct::Expr(Arc::new(compared))))
}

/// Whether `op` is `=`, `<>`, `<`, `<=`, `>` or `>=`.
fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    )
}

/// The rows of `batch` for which every one of `conjuncts` is true; `None` for no conjuncts.
fn mask(conjuncts: &[Conjunct], batch: &RecordBatch) -> Result<Option<BooleanBuffer>> {
    let mut mask: Option<BooleanBuffer> = None;
    for conjunct in conjuncts {
        let kept = match conjunct {
            Conjunct::Expr(expr) => true_rows(expr.as_ref(), batch)?,
            Conjunct::Strings {
                column,
                literals,
                negated,
            } => {
                let column = batch.column(*column);
                let Some(views) = column.as_string_view_opt() else {
                    return Err(invalid_input(format!(
                        "a string comparison got a column of {}",
                        column.data_type()
                    )));
                };
                views_matching(views, literals, *negated)
            }
        };
        mask = Some(match mask {
            None => kept,
            Some(mask) => &mask & &kept,
        });
    }
    Ok(mask)
}

/// Whether `conjunct` compares fixed-width columns and literals, or tests a column for null:
/// vectorized kernels that cost less over every row than selecting rows first would.
fn cheap_over_all_rows(conjunct: &dyn PhysicalExpr, schema: &Schema) -> bool {
    let fixed_width_column = |expr: &Arc<dyn PhysicalExpr>| {
        expr.downcast_ref::<Column>()
            .is_some_and(|column| fixed_width(schema, column.index()))
    };
    let literal = |expr: &Arc<dyn PhysicalExpr>| expr.downcast_ref::<Literal>().is_some();
    if let Some(binary) = conjunct.downcast_ref::<BinaryExpr>() {
        let (left, right) = (binary.left(), binary.right());
        return is_comparison(binary.op())
            && (fixed_width_column(left) || fixed_width_column(right))
            && (fixed_width_column(left) || literal(left))
            && (fixed_width_column(right) || literal(right));
    }
    if let Some(is_null) = conjunct.downcast_ref::<IsNullExpr>() {
        return is_null.arg().downcast_ref::<Column>().is_some();
    }
    if let Some(is_not_null) = conjunct.downcast_ref::<IsNotNullExpr>() {
        return is_not_null.arg().downcast_ref::<Column>().is_some();
    }
    false
}

/// `conjunct` as a string-view column's match with string literals, if it is one:
/// `c = 'x'`, `c <> 'x'`, `c [NOT] IN ('x', 'y')` or `c = 'x' OR c = 'y'`.
fn string_match(conjunct: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<Conjunct> {
    let view_column = |expr: &Arc<dyn PhysicalExpr>| {
        let column = expr.downcast_ref::<Column>()?;
        let field = schema.fields().get(column.index())?;
        (field.data_type() == &DataType::Utf8View).then_some(column.index())
    };
    let literal = |expr: &Arc<dyn PhysicalExpr>| match expr.downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)) => Some(ViewLiteral::new(text.as_bytes())),
        _ => None,
    };
    if let Some(binary) = conjunct.downcast_ref::<BinaryExpr>() {
        let (left, right) = (binary.left(), binary.right());
        return match binary.op() {
            Operator::Eq | Operator::NotEq => {
                let (column, literal) = match (view_column(left), view_column(right)) {
                    (Some(column), None) => (column, literal(right)?),
                    (None, Some(column)) => (column, literal(left)?),
                    _ => return None,
                };
                Some(Conjunct::Strings {
                    column,
                    literals: vec![literal],
                    negated: binary.op() == &Operator::NotEq,
                })
            }
            Operator::Or => match (string_match(left, schema)?, string_match(right, schema)?) {
                (
                    Conjunct::Strings {
                        column,
                        mut literals,
                        negated: false,
                    },
                    Conjunct::Strings {
                        column: other_column,
                        literals: other_literals,
                        negated: false,
                    },
                ) if column == other_column => {
                    literals.extend(other_literals);
                    Some(Conjunct::Strings {
                        column,
                        literals,
                        negated: false,
                    })
                }
                _ => None,
            },
            _ => None,
        };
    }
    let in_list = conjunct.downcast_ref::<InListExpr>()?;
    Some(Conjunct::Strings {
        column: view_column(in_list.expr())?,
        literals: in_list.list().iter().map(literal).collect::<Option<_>>()?,
        negated: in_list.negated(),
    })
}

/// `conjunct` as a [`KeptConjunct::Like`]: a string column `LIKE` or `NOT LIKE` (case
/// sensitive) a literal pattern of several literal segments and `%`.
fn like_match(conjunct: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<KeptConjunct> {
    let like = conjunct.downcast_ref::<LikeExpr>()?;
    if like.case_insensitive() {
        return None;
    }
    let column = like.expr().downcast_ref::<Column>()?.index();
    if !matches!(
        schema.field(column).data_type(),
        DataType::Utf8View | DataType::Utf8 | DataType::LargeUtf8
    ) {
        return None;
    }
    let pattern = match like.pattern().downcast_ref::<Literal>()?.value() {
        ScalarValue::Utf8(Some(pattern))
        | ScalarValue::Utf8View(Some(pattern))
        | ScalarValue::LargeUtf8(Some(pattern)) => Box::new(LikePattern::multi_segment(pattern)?),
        _ => return None,
    };
    Some(KeptConjunct::Like {
        column,
        pattern,
        negated: like.negated(),
    })
}

fn fixed_width(schema: &Schema, index: usize) -> bool {
    schema.fields().get(index).is_some_and(|field| {
        field.data_type().is_primitive() || matches!(field.data_type(), DataType::Boolean)
    })
}

/// The rows where `conjunct` is true over `batch`; null counts as false.
fn true_rows(conjunct: &dyn PhysicalExpr, batch: &RecordBatch) -> Result<BooleanBuffer> {
    let values = conjunct
        .evaluate(batch)
        .and_then(|value| value.into_array(batch.num_rows()))
        .map_err(ExecError::datafusion(OPERATOR))?;
    let Some(values) = values.as_boolean_opt() else {
        return Err(invalid_input(format!(
            "the predicate {conjunct} gives {}, not booleans",
            values.data_type()
        )));
    };
    Ok(match values.nulls() {
        Some(nulls) => values.values() & nulls.inner(),
        None => values.values().clone(),
    })
}

/// The filter's error for an input of the wrong type, saying what it got.
fn invalid_input(message: String) -> ExecError {
    ExecError::Arrow {
        operator: OPERATOR,
        source: ArrowError::InvalidArgumentError(message),
    }
}

/// The rows of `batch` that `mask` sets, without copying when it sets them all.
fn keep(batch: &RecordBatch, mask: BooleanBuffer) -> Result<RecordBatch> {
    if mask.count_set_bits() == batch.num_rows() {
        return Ok(batch.clone());
    }
    filter_record_batch(batch, &BooleanArray::new(mask, None)).map_err(ExecError::arrow(OPERATOR))
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Decimal64Array, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::{
        binary, col, in_list, is_not_null, is_null, like, lit,
    };

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(5),
                    None,
                    Some(7),
                    Some(9),
                    Some(3),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("apple"),
                    Some("avocado"),
                    Some("apricot"),
                    None,
                    Some("banana"),
                    Some("almond"),
                ])),
            ],
        )
        .unwrap()
    }

    fn and(
        left: Arc<dyn PhysicalExpr>,
        right: Arc<dyn PhysicalExpr>,
        schema: &Schema,
    ) -> Arc<dyn PhysicalExpr> {
        binary(left, Operator::And, right, schema).unwrap()
    }

    /// The rows of `batch` DataFusion's evaluation of `predicate` keeps.
    fn kept_by_datafusion(predicate: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> RecordBatch {
        let mask = predicate
            .evaluate(batch)
            .unwrap()
            .into_array(batch.num_rows())
            .unwrap();
        filter_record_batch(batch, mask.as_boolean()).unwrap()
    }

    #[test]
    fn keeps_the_rows_the_whole_predicate_keeps() {
        let batch = batch();
        let schema = batch.schema();
        let n = col("n", &schema).unwrap();
        let s = col("s", &schema).unwrap();
        let greater = binary(Arc::clone(&n), Operator::Gt, lit(2i64), &schema).unwrap();
        let below = binary(Arc::clone(&n), Operator::Lt, lit(9i64), &schema).unwrap();
        let starts_with_a = like(
            false,
            false,
            s,
            lit(ScalarValue::Utf8(Some("a%".to_string()))),
            &schema,
        )
        .unwrap();
        let predicate = and(and(greater, starts_with_a, &schema), below, &schema);
        let split = FilterPredicate::new(&predicate, &schema);
        assert_eq!(split.over_all_rows.len(), 2);
        assert_eq!(split.over_kept_rows.len(), 1);
        let kept = split.filter(&batch).unwrap();
        assert_eq!(kept, kept_by_datafusion(&predicate, &batch));
        let n = kept
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(n.values(), &[5, 3]);
    }

    #[test]
    fn null_tests_and_a_predicate_keeping_nothing() {
        let batch = batch();
        let schema = batch.schema();
        let n = col("n", &schema).unwrap();
        let null_n = is_null(Arc::clone(&n)).unwrap();
        let kept = FilterPredicate::new(&null_n, &schema)
            .filter(&batch)
            .unwrap();
        assert_eq!(kept.num_rows(), 1);
        let never = binary(n, Operator::Gt, lit(100i64), &schema).unwrap();
        let split = FilterPredicate::new(&and(never, null_n, &schema), &schema);
        assert_eq!(split.filter(&batch).unwrap().num_rows(), 0);
    }

    #[test]
    fn string_view_matches_keep_what_datafusion_keeps() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8View, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringViewArray::from(vec![
                Some("MAIL"),
                Some("SHIP"),
                None,
                Some("DELIVER IN PERSON"),
                Some("AIR"),
                Some("DELIVER IN PERSOM"),
            ]))],
        )
        .unwrap();
        let v = col("v", &schema).unwrap();
        let text = |text: &str| lit(ScalarValue::Utf8View(Some(text.to_string())));
        let equal = |text_value: &str| {
            binary(Arc::clone(&v), Operator::Eq, text(text_value), &schema).unwrap()
        };
        let predicates = [
            equal("MAIL"),
            binary(text("MAIL"), Operator::NotEq, Arc::clone(&v), &schema).unwrap(),
            binary(equal("MAIL"), Operator::Or, equal("SHIP"), &schema).unwrap(),
            in_list(
                Arc::clone(&v),
                vec![text("AIR"), text("DELIVER IN PERSON")],
                &false,
                &schema,
            )
            .unwrap(),
            in_list(Arc::clone(&v), vec![text("AIR")], &true, &schema).unwrap(),
        ];
        for predicate in predicates {
            let split = FilterPredicate::new(&predicate, &schema);
            assert!(
                matches!(split.over_all_rows[..], [Conjunct::Strings { .. }]),
                "{predicate}"
            );
            assert_eq!(
                split.filter(&batch).unwrap(),
                kept_by_datafusion(&predicate, &batch),
                "{predicate}"
            );
        }
    }

    #[test]
    fn multi_segment_like_patterns_keep_what_datafusion_keeps() {
        let values = vec![
            Some("carefully special requests sleep"),
            Some("special packages"),
            None,
            Some("requests are special"),
            Some("specialrequests"),
            Some("Customer slow Complaints"),
        ];
        for data_type in [DataType::Utf8View, DataType::Utf8] {
            let schema = Arc::new(Schema::new(vec![Field::new("c", data_type.clone(), true)]));
            let column: Arc<dyn Array> = match data_type {
                DataType::Utf8View => Arc::new(StringViewArray::from(values.clone())),
                _ => Arc::new(StringArray::from(values.clone())),
            };
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
            let c = col("c", &schema).unwrap();
            for (pattern, negated) in [
                ("%special%requests%", false),
                ("%special%requests%", true),
                ("%Customer%Complaints%", false),
                ("special%", false),
            ] {
                let predicate = like(
                    negated,
                    false,
                    Arc::clone(&c),
                    lit(match data_type {
                        DataType::Utf8View => ScalarValue::Utf8View(Some(pattern.to_string())),
                        _ => ScalarValue::Utf8(Some(pattern.to_string())),
                    }),
                    &schema,
                )
                .unwrap();
                let split = FilterPredicate::new(&predicate, &schema);
                let ours = matches!(split.over_kept_rows[..], [KeptConjunct::Like { .. }]);
                // One segment stays on Arrow's own fast paths.
                assert_eq!(ours, pattern != "special%", "{predicate}");
                assert_eq!(
                    split.filter(&batch).unwrap(),
                    kept_by_datafusion(&predicate, &batch),
                    "{predicate}"
                );
            }
        }
    }

    #[test]
    fn a_filter_of_narrow_decimals_keeps_and_widens_what_datafusion_keeps() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(15, 2), true),
            Field::new("v", DataType::Utf8View, true),
            Field::new("e", DataType::Decimal128(15, 2), true),
        ]));
        let cents: Vec<Option<i64>> = (0..40)
            .map(|row| (row % 7 != 0).then_some(row * 37 - 500))
            .collect();
        let narrow_column = |values: &[Option<i64>]| -> ArrayRef {
            Arc::new(
                Decimal64Array::from(values.to_vec())
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
            )
        };
        let tags = StringViewArray::from_iter((0..40).map(|row| Some(["x", "y", "z"][row % 3])));
        let numbers = Int64Array::from_iter_values(0..40);
        let others: Vec<Option<i64>> = (0..40).map(|row| Some(-row)).collect();
        let narrow_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|field| match field.data_type() {
                    DataType::Decimal128(precision, scale) => field
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Decimal64(*precision, *scale)),
                    _ => field.as_ref().clone(),
                })
                .collect::<Vec<_>>(),
        ));
        let narrow = RecordBatch::try_new(
            Arc::clone(&narrow_schema),
            vec![
                Arc::new(numbers),
                narrow_column(&cents),
                Arc::new(tags),
                narrow_column(&others),
            ],
        )
        .unwrap();
        let wide = widened(&narrow, &schema).unwrap();
        let (n, d, v, e) = (
            col("n", &schema).unwrap(),
            col("d", &schema).unwrap(),
            col("v", &schema).unwrap(),
            col("e", &schema).unwrap(),
        );
        let decimal = |cents: i128| lit(ScalarValue::Decimal128(Some(cents), 15, 2));
        // `d` is only compared with literals, so it is compared narrow; `e` is also tested
        // for null, so it is widened first.
        let above = binary(d, Operator::Gt, decimal(100), &schema).unwrap();
        let below = binary(decimal(-3), Operator::Gt, Arc::clone(&e), &schema).unwrap();
        let present = is_not_null(e).unwrap();
        let view = |text: &str| lit(ScalarValue::Utf8View(Some(text.to_string())));
        let tagged = in_list(v, vec![view("x"), view("y")], &false, &schema).unwrap();
        let even = binary(
            binary(n, Operator::Modulo, lit(2i64), &schema).unwrap(),
            Operator::Eq,
            lit(0i64),
            &schema,
        )
        .unwrap();
        let cases = [
            (
                and(
                    and(Arc::clone(&above), tagged, &schema),
                    Arc::clone(&even),
                    &schema,
                ),
                vec![DataType::Decimal64(15, 2), DataType::Utf8View],
            ),
            (
                and(and(above, below, &schema), present, &schema),
                vec![DataType::Decimal64(15, 2), DataType::Decimal128(15, 2)],
            ),
            (even, vec![]),
        ];
        for (predicate, read_types) in cases {
            let mut split = FilterPredicate::new(&predicate, &schema);
            assert!(split.read_narrow(&schema, &narrow_schema), "{predicate}");
            let read = &split.narrow.as_ref().unwrap().read_schema;
            let types: Vec<DataType> = read
                .fields()
                .iter()
                .map(|field| field.data_type().clone())
                .collect();
            assert_eq!(types, read_types, "{predicate}");
            let kept = split.filter(&narrow).unwrap();
            assert_eq!(kept.schema(), schema, "{predicate}");
            let expected = kept_by_datafusion(&predicate, &wide);
            assert!(expected.num_rows() > 0, "{predicate}");
            assert_eq!(kept, expected, "{predicate}");
        }
    }

    #[test]
    fn a_predicate_of_another_type_is_an_error_naming_it() {
        let batch = batch();
        let schema = batch.schema();
        let n = col("n", &schema).unwrap();
        let error = FilterPredicate::new(&n, &schema)
            .filter(&batch)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not booleans"), "{error}");
    }
}
