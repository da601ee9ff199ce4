//! Decimal `+`, `-` and `*` on `sabot-kernels`' unchecked 64-bit arithmetic. DataFusion's
//! binary expression runs Arrow's checked `Decimal128` kernels, a 256-bit overflow test per
//! value behind a closure call: most of the arithmetic in TPC-H's `l_extendedprice * (1 -
//! l_discount)`. [`with_unchecked_decimal_arithmetic`] replaces such expressions with
//! [`DecimalArithmeticExpr`], which gives the same values and type, and hands a batch back to
//! DataFusion's checked expression when an operand holds a value past 64 bits. A product of a
//! column and a literal's sum or difference with a column (`l_extendedprice * (1 -
//! l_discount)`) is computed in one pass, without the column `1 - l_discount` in between.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{AsArray, Decimal128Array, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result as DataFusionResult};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::scalar::ScalarValue;
use sabot_kernels::{
    DecimalOp, DecimalOperand, MAX_RESCALE_DIGITS, OffsetColumn, decimal_arithmetic,
    decimal_offset_product,
};

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

    /// `a * (literal ± b)` or `a * (b ± literal)` (either factor first) over columns, computed
    /// in one pass by `sabot-kernels` where the values allow; `None` otherwise.
    fn offset_product(&self, batch: &RecordBatch) -> DataFusionResult<Option<Decimal128Array>> {
        if self.op != DecimalOp::Multiply {
            return Ok(None);
        }
        fn sum(expr: &Arc<dyn PhysicalExpr>) -> Option<&DecimalArithmeticExpr> {
            expr.downcast_ref::<DecimalArithmeticExpr>()
                .filter(|sum| sum.op != DecimalOp::Multiply)
        }
        let (factor, sum) = match (sum(&self.left), sum(&self.right)) {
            (_, Some(sum)) => (&self.left, sum),
            (Some(sum), None) => (&self.right, sum),
            (None, None) => return Ok(None),
        };
        let Some(OffsetForm {
            offset,
            factor: column_factor,
            column,
        }) = sum.offset_form(batch.schema_ref())?
        else {
            return Ok(None);
        };
        let (factor, column) = (factor.evaluate(batch)?, column.evaluate(batch)?);
        let (ColumnarValue::Array(factor), ColumnarValue::Array(column)) = (factor, column) else {
            return Ok(None);
        };
        let (Some(factor), Some(column)) = (
            factor.as_primitive_opt::<Decimal128Type>(),
            column.as_primitive_opt::<Decimal128Type>(),
        ) else {
            return Ok(None);
        };
        let offset_column = OffsetColumn {
            column,
            offset,
            factor: column_factor,
        };
        decimal_offset_product(factor, offset_column, self.precision, self.scale)
            .map_err(|error| DataFusionError::External(Box::new(error)))
    }

    /// This sum or difference as `offset + factor * column` at its own scale, where one operand
    /// is a non-null decimal literal.
    fn offset_form(&self, schema: &Schema) -> DataFusionResult<Option<OffsetForm<'_>>> {
        let literal = |expr: &Arc<dyn PhysicalExpr>| match expr.downcast_ref::<Literal>()?.value() {
            ScalarValue::Decimal128(Some(value), _, scale) => Some((*value, *scale)),
            _ => None,
        };
        let (literal, column, literal_first) = match (literal(&self.left), literal(&self.right)) {
            (Some(literal), None) => (literal, &self.right, true),
            (None, Some(literal)) => (literal, &self.left, false),
            _ => return Ok(None),
        };
        let DataType::Decimal128(_, column_scale) = column.data_type(schema)? else {
            return Ok(None);
        };
        let rescale = |from: i8| {
            u32::try_from(i32::from(self.scale) - i32::from(from))
                .ok()
                .filter(|&digits| digits <= u32::from(MAX_RESCALE_DIGITS))
                .map(|digits| 10i128.pow(digits))
        };
        let (Some(literal_factor), Some(column_factor)) =
            (rescale(literal.1), rescale(column_scale))
        else {
            return Ok(None);
        };
        let Some(offset) = literal.0.checked_mul(literal_factor) else {
            return Ok(None);
        };
        let (offset, factor) = match (self.op, literal_first) {
            (DecimalOp::Subtract, true) => (offset, -column_factor),
            (DecimalOp::Subtract, false) => (-offset, column_factor),
            _ => (offset, column_factor),
        };
        Ok(Some(OffsetForm {
            offset,
            factor,
            column,
        }))
    }
}

/// A sum or difference of a literal and an expression as `offset + factor * column`, in raw
/// values at the sum's scale.
struct OffsetForm<'a> {
    offset: i128,
    factor: i128,
    column: &'a Arc<dyn PhysicalExpr>,
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
        if let Some(product) = self.offset_product(batch)? {
            return Ok(ColumnarValue::Array(Arc::new(product)));
        }
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
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::Column;

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
        let binary = |left, op, right| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(left, op, right))
        };
        let one = || -> Arc<dyn PhysicalExpr> {
            Arc::new(Literal::new(ScalarValue::Decimal128(Some(100), 15, 2)))
        };
        let whole_one = || -> Arc<dyn PhysicalExpr> {
            Arc::new(Literal::new(ScalarValue::Decimal128(Some(1), 20, 0)))
        };
        // Products with a sum of a literal and a column take the one-pass kernel, in either
        // order, at either literal scale; the one of a value past 64 bits takes the two steps.
        let offset_products = [
            binary(
                column("price", 0),
                Operator::Multiply,
                binary(one(), Operator::Minus, column("discount", 1)),
            ),
            binary(
                binary(column("discount", 1), Operator::Minus, whole_one()),
                Operator::Multiply,
                column("price", 0),
            ),
            binary(
                column("price", 0),
                Operator::Multiply,
                binary(column("discount", 1), Operator::Plus, whole_one()),
            ),
            binary(
                column("huge", 2),
                Operator::Multiply,
                binary(whole_one(), Operator::Plus, column("price", 0)),
            ),
        ];
        let wide = binary(column("huge", 2), Operator::Plus, column("price", 0));
        for expr in offset_products.into_iter().chain([wide]) {
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
