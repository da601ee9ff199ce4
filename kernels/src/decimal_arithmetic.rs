//! `Decimal128` addition, subtraction and multiplication in one inlined pass of 64-bit
//! arithmetic, for operands whose every value fits an `i64` (as every value of a decimal of up to
//! 18 digits does). Such operands cannot overflow an `i128` result, so no per-value overflow
//! check is needed: a product is one widening multiply, a sum or difference rescales the operand
//! of smaller scale by a power of ten first. Arrow's checked kernels instead run a 256-bit
//! overflow test per value through a closure call. Results equal Arrow's, value for value.
//! [`decimal_offset_product`] computes `a * (literal ± b)` in one such pass.

use arrow::array::Decimal128Array;
use arrow::compute::binary;

use crate::error::{KernelError, Result};

/// The largest scale difference an addition or subtraction rescales: `10^18` still fits an `i64`.
pub const MAX_RESCALE_DIGITS: u8 = 18;

/// An arithmetic operator on decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecimalOp {
    Add,
    Subtract,
    Multiply,
}

/// An operand: a column, or one value for every row (a literal).
#[derive(Debug, Clone, Copy)]
pub enum DecimalOperand<'a> {
    Column(&'a Decimal128Array),
    Scalar { value: i128, scale: i8 },
}

impl DecimalOperand<'_> {
    fn scale(&self) -> i8 {
        match self {
            DecimalOperand::Column(column) => column.scale(),
            DecimalOperand::Scalar { scale, .. } => *scale,
        }
    }

    fn fits_i64(&self) -> bool {
        match self {
            DecimalOperand::Column(column) => fits_i64(column),
            DecimalOperand::Scalar { value, .. } => i128::from(*value as i64) == *value,
        }
    }
}

/// `left op right` as a decimal of `precision` and `scale`, or `None` when a value of either
/// operand does not fit an `i64` or both are scalars (the caller then takes a checked path).
/// For `Add` and `Subtract`, `scale` must be the larger operand scale; for `Multiply`, their sum.
pub fn decimal_arithmetic(
    op: DecimalOp,
    left: DecimalOperand<'_>,
    right: DecimalOperand<'_>,
    precision: u8,
    scale: i8,
) -> Result<Option<Decimal128Array>> {
    if !left.fits_i64() || !right.fits_i64() {
        return Ok(None);
    }
    let (left_factor, right_factor) = match op {
        DecimalOp::Multiply => (1, 1),
        DecimalOp::Add | DecimalOp::Subtract => (
            rescale_factor(left.scale(), scale)?,
            rescale_factor(right.scale(), scale)?,
        ),
    };
    let sign = if op == DecimalOp::Subtract { -1 } else { 1 };
    let narrow = |value: i128| i128::from(value as i64);
    // Operands fit an `i64` and factors are at most 10^18, so no step overflows an `i128`. Sums
    // of operands of one scale skip the rescaling multiplies (128-bit, three instructions each).
    let combined = match op {
        DecimalOp::Multiply => combine(left, right, |a, b| narrow(a) * narrow(b)),
        DecimalOp::Add | DecimalOp::Subtract if left_factor == 1 && right_factor == 1 => {
            combine(left, right, |a, b| narrow(a) + sign * narrow(b))
        }
        DecimalOp::Add | DecimalOp::Subtract => combine(left, right, |a, b| {
            narrow(a) * left_factor + sign * narrow(b) * right_factor
        }),
    };
    let Some(result) = combined? else {
        return Ok(None);
    };
    Ok(Some(result.with_precision_and_scale(precision, scale)?))
}

/// `offset + factor * column`: a decimal column with a literal added or subtracted, as raw
/// values at the scale of that sum (`offset` the literal and `factor` the column's rescaling,
/// negated where the column is subtracted).
#[derive(Debug, Clone, Copy)]
pub struct OffsetColumn<'a> {
    pub column: &'a Decimal128Array,
    pub offset: i128,
    pub factor: i128,
}

/// `column * (offset + factor * other)` as a decimal of `precision` and `scale` (the sum of the
/// two factors' scales), in one pass: TPC-H's `l_extendedprice * (1 - l_discount)` without the
/// column `1 - l_discount` in between. `None` where a value of `column` does not fit an `i64`
/// or one of the offset column's may not (past `2^62` in absolute value once rescaled), and
/// the caller takes the two-step path; in every other case `offset + factor * other` fits an
/// `i64` and the product an `i128`, so no step can overflow.
pub fn decimal_offset_product(
    column: &Decimal128Array,
    offset_column: OffsetColumn<'_>,
    precision: u8,
    scale: i8,
) -> Result<Option<Decimal128Array>> {
    const BOUND: u128 = 1 << 62;
    let OffsetColumn {
        column: other,
        offset,
        factor,
    } = offset_column;
    if factor == 0 || offset.unsigned_abs() > BOUND || !fits_i64(column) {
        return Ok(None);
    }
    let other_bound = (BOUND / factor.unsigned_abs()) as u64;
    let other_fits = other.values().iter().fold(true, |fits, &value| {
        fits & (i128::from(value as i64) == value) & ((value as i64).unsigned_abs() <= other_bound)
    });
    if !other_fits {
        return Ok(None);
    }
    let (offset, factor) = (offset as i64, factor as i64);
    let product = binary(column, other, |value, other| {
        i128::from(value as i64) * i128::from(offset + factor * other as i64)
    })?;
    Ok(Some(product.with_precision_and_scale(precision, scale)?))
}

/// `apply` over the values of `left` and `right` (a column and a column, or a column and a
/// scalar); `None` for two scalars.
fn combine(
    left: DecimalOperand<'_>,
    right: DecimalOperand<'_>,
    apply: impl Fn(i128, i128) -> i128,
) -> Result<Option<Decimal128Array>> {
    Ok(Some(match (left, right) {
        (DecimalOperand::Column(left), DecimalOperand::Column(right)) => {
            binary(left, right, apply)?
        }
        (DecimalOperand::Scalar { value, .. }, DecimalOperand::Column(right)) => {
            right.unary(|b| apply(value, b))
        }
        (DecimalOperand::Column(left), DecimalOperand::Scalar { value, .. }) => {
            left.unary(|a| apply(a, value))
        }
        (DecimalOperand::Scalar { .. }, DecimalOperand::Scalar { .. }) => return Ok(None),
    }))
}

/// Whether every value of `column` fits an `i64` (values under nulls included: they are
/// computed too, and must not overflow).
fn fits_i64(column: &Decimal128Array) -> bool {
    column.values().iter().fold(true, |fits, &value| {
        fits & (i128::from(value as i64) == value)
    })
}

/// `10^(to - from)`, the factor that rescales a value of scale `from` to scale `to`.
fn rescale_factor(from: i8, to: i8) -> Result<i128> {
    let digits = i32::from(to) - i32::from(from);
    match u32::try_from(digits) {
        Ok(digits) if digits <= u32::from(MAX_RESCALE_DIGITS) => Ok(10i128.pow(digits)),
        _ => Err(KernelError::DecimalRescale { from, to }),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;
    use arrow::datatypes::DataType;

    use super::*;

    fn decimals(values: Vec<Option<i128>>, precision: u8, scale: i8) -> Decimal128Array {
        Decimal128Array::from(values)
            .with_precision_and_scale(precision, scale)
            .unwrap()
    }

    #[test]
    fn products_sums_and_differences_equal_arrows() {
        let left = decimals(
            vec![Some(10_495_050), None, Some(-7), Some(i64::MAX as i128)],
            15,
            2,
        );
        let right = decimals(vec![Some(94), Some(3), Some(100), Some(-1)], 16, 2);
        for (op, arrow_result, precision, scale) in [
            (
                DecimalOp::Multiply,
                arrow::compute::kernels::numeric::mul(&left, &right).unwrap(),
                32,
                4,
            ),
            (
                DecimalOp::Add,
                arrow::compute::kernels::numeric::add(&left, &right).unwrap(),
                17,
                2,
            ),
            (
                DecimalOp::Subtract,
                arrow::compute::kernels::numeric::sub(&left, &right).unwrap(),
                17,
                2,
            ),
        ] {
            let ours = decimal_arithmetic(
                op,
                DecimalOperand::Column(&left),
                DecimalOperand::Column(&right),
                precision,
                scale,
            )
            .unwrap()
            .expect("the values fit 64 bits");
            assert_eq!(&ours as &dyn Array, arrow_result.as_ref(), "{op:?}");
        }
    }

    #[test]
    fn operands_of_different_scales_are_rescaled() {
        let left = decimals(vec![Some(125), Some(-3)], 5, 2);
        let right = decimals(vec![Some(7), Some(7)], 3, 0);
        let ours = decimal_arithmetic(
            DecimalOp::Subtract,
            DecimalOperand::Column(&left),
            DecimalOperand::Column(&right),
            7,
            2,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ours.values().to_vec(), vec![125 - 700, -3 - 700]);
        let literal = DecimalOperand::Scalar { value: 1, scale: 0 };
        let ours = decimal_arithmetic(
            DecimalOp::Subtract,
            literal,
            DecimalOperand::Column(&left),
            7,
            2,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ours.values().to_vec(), vec![100 - 125, 100 + 3]);
    }

    #[test]
    fn offset_products_equal_arrows_two_steps() {
        let price = decimals(vec![Some(10_495_050), None, Some(-7), Some(90_100)], 15, 2);
        let discount = decimals(vec![Some(4), Some(3), None, Some(10)], 15, 2);
        let one = decimals(vec![Some(100); 4], 20, 2);
        for (offset, factor, inner) in [
            (
                100,
                -1,
                arrow::compute::kernels::numeric::sub(&one, &discount).unwrap(),
            ),
            (
                100,
                1,
                arrow::compute::kernels::numeric::add(&one, &discount).unwrap(),
            ),
            (
                -100,
                1,
                arrow::compute::kernels::numeric::sub(&discount, &one).unwrap(),
            ),
        ] {
            let expected = arrow::compute::kernels::numeric::mul(&price, &inner).unwrap();
            let DataType::Decimal128(precision, scale) = *expected.data_type() else {
                panic!("a decimal product is a decimal");
            };
            let ours = decimal_offset_product(
                &price,
                OffsetColumn {
                    column: &discount,
                    offset,
                    factor,
                },
                precision,
                scale,
            )
            .unwrap()
            .expect("the values fit 64 bits");
            assert_eq!(&ours as &dyn Array, expected.as_ref(), "{offset} {factor}");
        }
    }

    #[test]
    fn offset_products_past_their_bounds_take_the_two_step_path() {
        let small = decimals(vec![Some(3)], 38, 0);
        let wide = decimals(vec![Some(1 << 62)], 38, 0);
        let offset_wide = OffsetColumn {
            column: &wide,
            offset: 1,
            factor: 2,
        };
        assert!(
            decimal_offset_product(&small, offset_wide, 38, 0)
                .unwrap()
                .is_none()
        );
        let offset_small = OffsetColumn {
            column: &small,
            offset: 1,
            factor: 1,
        };
        assert!(
            decimal_offset_product(&wide, offset_small, 38, 0)
                .unwrap()
                .is_some()
        );
        let huge = decimals(vec![Some(i128::from(i64::MAX) + 1)], 38, 0);
        assert!(
            decimal_offset_product(&huge, offset_small, 38, 0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn values_past_64_bits_take_the_checked_path() {
        let wide = decimals(vec![Some(i128::from(i64::MAX) + 1)], 38, 0);
        let small = decimals(vec![Some(2)], 38, 0);
        assert!(
            decimal_arithmetic(
                DecimalOp::Multiply,
                DecimalOperand::Column(&wide),
                DecimalOperand::Column(&small),
                38,
                0
            )
            .unwrap()
            .is_none()
        );
    }
}
