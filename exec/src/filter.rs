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

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal,
};
use datafusion::physical_expr::split_conjunction;
use datafusion::physical_plan::PhysicalExpr;
use sabot_kernels::{LikePattern, ViewLiteral, string_views_like, strings_like, views_matching};

use crate::error::{ExecError, Result};

const OPERATOR: &str = "Filter";

/// A filter predicate split into the conjuncts evaluated over every row and the rest.
pub(crate) struct FilterPredicate {
    over_all_rows: Vec<Conjunct>,
    over_kept_rows: Vec<KeptConjunct>,
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
        }
    }

    /// The rows of `batch` for which every conjunct is true (not false, not null).
    pub(crate) fn filter(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut mask: Option<BooleanBuffer> = None;
        for conjunct in &self.over_all_rows {
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
        let mut kept = match mask {
            Some(mask) => keep(batch, mask)?,
            None => batch.clone(),
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

/// Whether `conjunct` compares fixed-width columns and literals, or tests a column for null:
/// vectorized kernels that cost less over every row than selecting rows first would.
fn cheap_over_all_rows(conjunct: &dyn PhysicalExpr, schema: &Schema) -> bool {
    let fixed_width_column = |expr: &Arc<dyn PhysicalExpr>| {
        expr.downcast_ref::<Column>()
            .is_some_and(|column| fixed_width(schema, column.index()))
    };
    let literal = |expr: &Arc<dyn PhysicalExpr>| expr.downcast_ref::<Literal>().is_some();
    if let Some(binary) = conjunct.downcast_ref::<BinaryExpr>() {
        let comparison = matches!(
            binary.op(),
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
        );
        let (left, right) = (binary.left(), binary.right());
        return comparison
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
    use arrow::array::{Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::{binary, col, in_list, is_null, like, lit};

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
