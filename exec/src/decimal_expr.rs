//! Decimal `+`, `-` and `*` on `sabot-kernels`' unchecked 64-bit arithmetic. DataFusion's
//! binary expression runs Arrow's checked `Decimal128` kernels, a 256-bit overflow test per
//! value behind a closure call: most of the arithmetic in TPC-H's `l_extendedprice * (1 -
//! l_discount)`. [`with_unchecked_decimal_arithmetic`] replaces such expressions with
//! [`DecimalArithmeticExpr`], which gives the same values and type, and hands a batch back to
//! DataFusion's checked expression when an operand holds a value past 64 bits.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result as DataFusionResult};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::scalar::ScalarValue;
use sabot_kernels::{DecimalOp, DecimalOperand, MAX_RESCALE_DIGITS, decimal_arithmetic};

/// `left op right` over `Decimal128` operands, giving `Decimal128(precision, scale)`.
#[derive(Debug, Eq)]
pub struct DecimalArithmeticExpr {
    op: DecimalOp,
    left: Arc<dyn PhysicalExpr>,
    right: Arc<dyn PhysicalExpr>,
    precision: u8,
    scale: i8,
}

// Written out: a derived `PartialEq` cannot compare `Arc<dyn PhysicalExpr>` fields
// (rust-lang/rust#78808), as DataFusion's `BinaryExpr` notes.
impl PartialEq for DecimalArithmeticExpr {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op
            && self.left.eq(&other.left)
            && self.right.eq(&other.right)
            && self.precision == other.precision
            && self.scale == other.scale
    }
}

impl Hash for DecimalArithmeticExpr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.op.hash(state);
        self.left.hash(state);
        self.right.hash(state);
        self.precision.hash(state);
        self.scale.hash(state);
    }
}

impl DecimalArithmeticExpr {
    fn operator(&self) -> Operator {
        match self.op {
            DecimalOp::Add => Operator::Plus,
            DecimalOp::Subtract => Operator::Minus,
            DecimalOp::Multiply => Operator::Multiply,
        }
    }

    /// DataFusion's checked expression of the same operation.
    fn checked(&self) -> BinaryExpr {
        BinaryExpr::new(
            Arc::clone(&self.left),
            self.operator(),
            Arc::clone(&self.right),
        )
    }
}

impl fmt::Display for DecimalArithmeticExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |expr: &Arc<dyn PhysicalExpr>| {
            if expr.children().len() == 2 {
                format!("({expr})")
            } else {
                expr.to_string()
            }
        };
        write!(
            f,
            "{} {} {}",
            operand(&self.left),
            self.operator(),
            operand(&self.right)
        )
    }
}

impl PhysicalExpr for DecimalArithmeticExpr {
    fn data_type(&self, _input_schema: &Schema) -> DataFusionResult<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn nullable(&self, input_schema: &Schema) -> DataFusionResult<bool> {
        Ok(self.left.nullable(input_schema)? || self.right.nullable(input_schema)?)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DataFusionResult<ColumnarValue> {
        let (left, right) = (self.left.evaluate(batch)?, self.right.evaluate(batch)?);
        if let (Some(left), Some(right)) = (operand(&left), operand(&right))
            && let Some(result) =
                decimal_arithmetic(self.op, left, right, self.precision, self.scale)
                    .map_err(|error| DataFusionError::External(Box::new(error)))?
        {
            return Ok(ColumnarValue::Array(Arc::new(result)));
        }
        self.checked().evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.left, &self.right]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DataFusionResult<Arc<dyn PhysicalExpr>> {
        let [left, right] = <[_; 2]>::try_from(children).map_err(|children| {
            DataFusionError::Internal(format!(
                "decimal arithmetic takes 2 operands, not {}",
                children.len()
            ))
        })?;
        Ok(Arc::new(DecimalArithmeticExpr {
            left,
            right,
            ..*self
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.checked().fmt_sql(f)
    }
}

/// A decimal column or non-null decimal literal as a kernel operand.
fn operand(value: &ColumnarValue) -> Option<DecimalOperand<'_>> {
    match value {
        ColumnarValue::Array(array) => array
            .as_primitive_opt::<Decimal128Type>()
            .map(DecimalOperand::Column),
        ColumnarValue::Scalar(ScalarValue::Decimal128(Some(value), _, scale)) => {
            Some(DecimalOperand::Scalar {
                value: *value,
                scale: *scale,
            })
        }
        ColumnarValue::Scalar(_) => None,
    }
}

/// `expr` with every decimal `+`, `-` and `*` whose result type is the one Arrow's kernels give
/// (scale the larger operand scale, or the sum of both for `*`) computed by
/// [`DecimalArithmeticExpr`]; other expressions unchanged.
pub fn with_unchecked_decimal_arithmetic(
    expr: Arc<dyn PhysicalExpr>,
    input_schema: &Schema,
) -> Arc<dyn PhysicalExpr> {
    let rewritten = Arc::clone(&expr).transform_up(|node| {
        let Some(binary) = node.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(node));
        };
        let op = match binary.op() {
            Operator::Plus => DecimalOp::Add,
            Operator::Minus => DecimalOp::Subtract,
            Operator::Multiply => DecimalOp::Multiply,
            _ => return Ok(Transformed::no(node)),
        };
        let types = (
            binary.left().data_type(input_schema),
            binary.right().data_type(input_schema),
            node.data_type(input_schema),
        );
        let (
            Ok(DataType::Decimal128(_, left_scale)),
            Ok(DataType::Decimal128(_, right_scale)),
            Ok(DataType::Decimal128(precision, scale)),
        ) = types
        else {
            return Ok(Transformed::no(node));
        };
        let kernel_scale = match op {
            DecimalOp::Multiply => left_scale.checked_add(right_scale),
            DecimalOp::Add | DecimalOp::Subtract => Some(left_scale.max(right_scale))
                .filter(|_| left_scale.abs_diff(right_scale) <= MAX_RESCALE_DIGITS),
        };
        if kernel_scale != Some(scale) {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(Arc::new(DecimalArithmeticExpr {
            op,
            left: Arc::clone(binary.left()),
            right: Arc::clone(binary.right()),
            precision,
            scale,
        }) as Arc<dyn PhysicalExpr>))
    });
    rewritten.map_or(expr, |rewritten| rewritten.data)
}

#[cfg(test)]
mod tests {
    use arrow::array::Decimal128Array;
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{Column, Literal};

    use super::*;

    #[test]
    fn rewritten_arithmetic_gives_datafusions_values_and_type() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("price", DataType::Decimal128(15, 2), false),
            Field::new("discount", DataType::Decimal128(15, 2), true),
            Field::new("huge", DataType::Decimal128(38, 0), false),
        ]));
        let price = Decimal128Array::from(vec![10_495_050, 90_100, 1])
            .with_precision_and_scale(15, 2)
            .unwrap();
        let discount = Decimal128Array::from(vec![Some(4), None, Some(10)])
            .with_precision_and_scale(15, 2)
            .unwrap();
        let huge = Decimal128Array::from(vec![1, i128::from(i64::MAX) * 4, -5])
            .with_precision_and_scale(38, 0)
            .unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(price), Arc::new(discount), Arc::new(huge)],
        )
        .unwrap();
        let column = |name: &str, index: usize| -> Arc<dyn PhysicalExpr> {
            Arc::new(Column::new(name, index))
        };
        let one: Arc<dyn PhysicalExpr> =
            Arc::new(Literal::new(ScalarValue::Decimal128(Some(100), 15, 2)));
        let net: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            column("price", 0),
            Operator::Multiply,
            Arc::new(BinaryExpr::new(one, Operator::Minus, column("discount", 1))),
        ));
        let wide: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            column("huge", 2),
            Operator::Plus,
            column("price", 0),
        ));
        for expr in [net, wide] {
            let rewritten = with_unchecked_decimal_arithmetic(Arc::clone(&expr), &schema);
            assert!(
                rewritten.downcast_ref::<DecimalArithmeticExpr>().is_some(),
                "{rewritten}"
            );
            assert_eq!(rewritten.to_string(), expr.to_string());
            assert_eq!(
                rewritten.data_type(&schema).unwrap(),
                expr.data_type(&schema).unwrap()
            );
            let ours = rewritten.evaluate(&batch).unwrap().into_array(3).unwrap();
            let datafusions = expr.evaluate(&batch).unwrap().into_array(3).unwrap();
            assert_eq!(ours.as_ref(), datafusions.as_ref(), "{expr}");
        }
    }
}
