//! Sabot's own accumulators for the common aggregates: `COUNT`, `SUM`, `MIN` and `MAX` of
//! integer, float, date and decimal columns, and `AVG` of float and decimal columns, on
//! `sabot-kernels`' grouped folds and counts. They stand
//! behind DataFusion's `GroupsAccumulator` interface, so the aggregation operator drives them as
//! it drives DataFusion's accumulators, which still serve every other aggregate. Their results
//! and intermediate states have DataFusion's types. `COUNT(*)` (DataFusion's `count(1)`) takes
//! no argument column: it counts the rows of each group id.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array,
    PrimitiveArray, UInt64Array,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, DecimalType, Float64Type, Int32Type,
    Int64Type, Schema, UInt64Type,
};
use datafusion::error::{DataFusionError, Result as DataFusionResult};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Literal;
use sabot_kernels::{Fold, GroupedCount, GroupedFold, GroupedMean};

/// An aggregate Sabot computes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnAggregate {
    /// `COUNT(*)`: rows per group, no argument column.
    CountRows,
    /// `COUNT(column)`: non-null values per group.
    CountValues,
    /// `SUM`, `MIN` or `MAX` of a column of `input` type, giving `output`.
    Fold {
        fold: Fold,
        input: DataType,
        output: DataType,
    },
    /// `AVG` of a `Float64` or `Decimal128` column: a sum of type `sum` and a count per group,
    /// giving `output`.
    Average { sum: DataType, output: DataType },
}

impl OwnAggregate {
    /// Sabot's accumulator for `aggregate` over rows of `input_schema`, or `None` where
    /// DataFusion's serves.
    pub(crate) fn for_aggregate(
        aggregate: &AggregateFunctionExpr,
        input_schema: &Schema,
    ) -> Option<OwnAggregate> {
        if aggregate.is_distinct() {
            return None;
        }
        let arguments = aggregate.expressions();
        let [argument] = arguments.as_slice() else {
            return None;
        };
        let input = argument.data_type(input_schema).ok()?;
        let output = aggregate.field().data_type().clone();
        let fold = match aggregate.fun().name() {
            "count" => {
                let counts_rows = argument
                    .downcast_ref::<Literal>()
                    .is_some_and(|literal| !literal.value().is_null());
                return Some(if counts_rows {
                    OwnAggregate::CountRows
                } else {
                    OwnAggregate::CountValues
                });
            }
            "avg" => {
                let sum = aggregate.state_fields().ok()?.get(1)?.data_type().clone();
                let supported = matches!(
                    (&input, &sum, &output),
                    (DataType::Float64, DataType::Float64, DataType::Float64)
                        | (
                            DataType::Decimal128(..),
                            DataType::Decimal128(..),
                            DataType::Decimal128(..)
                        )
                );
                return supported.then_some(OwnAggregate::Average { sum, output });
            }
            "sum" => Fold::Sum,
            "min" => Fold::Min,
            "max" => Fold::Max,
            _ => return None,
        };
        let supported = match (&input, &output) {
            (DataType::Decimal128(..), DataType::Decimal128(..)) => true,
            (DataType::Int64 | DataType::UInt64 | DataType::Float64, _) => input == output,
            (DataType::Int32 | DataType::Date32, _) => fold != Fold::Sum && input == output,
            _ => false,
        };
        supported.then_some(OwnAggregate::Fold {
            fold,
            input,
            output,
        })
    }

    /// Whether the aggregate reads no argument column (its update gets none).
    pub(crate) fn reads_no_column(&self) -> bool {
        *self == OwnAggregate::CountRows
    }

    /// A fresh accumulator.
    pub(crate) fn accumulator(&self) -> Box<dyn GroupsAccumulator> {
        match self {
            OwnAggregate::CountRows | OwnAggregate::CountValues => {
                Box::new(CountAccumulator::default())
            }
            OwnAggregate::Fold {
                fold,
                input,
                output,
            } => match input {
                DataType::Int64 => FoldAccumulator::<Int64Type>::boxed(*fold, output),
                DataType::UInt64 => FoldAccumulator::<UInt64Type>::boxed(*fold, output),
                DataType::Float64 => FoldAccumulator::<Float64Type>::boxed(*fold, output),
                DataType::Int32 => FoldAccumulator::<Int32Type>::boxed(*fold, output),
                DataType::Date32 => FoldAccumulator::<Date32Type>::boxed(*fold, output),
                _ => FoldAccumulator::<Decimal128Type>::boxed(*fold, output),
            },
            OwnAggregate::Average { sum, output } => match sum {
                DataType::Float64 => AverageAccumulator::<Float64Type>::boxed(sum, output),
                _ => AverageAccumulator::<Decimal128Type>::boxed(sum, output),
            },
        }
    }
}

fn kernel_error(error: sabot_kernels::KernelError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

fn refuse_filter_and_partial_emit(
    filter: Option<&BooleanArray>,
    emit_to: EmitTo,
) -> DataFusionResult<()> {
    if filter.is_some() || !matches!(emit_to, EmitTo::All) {
        return Err(DataFusionError::NotImplemented(
            "Sabot's accumulators take no FILTER and emit all groups at once".to_string(),
        ));
    }
    Ok(())
}

/// `SUM`, `MIN` or `MAX` of a primitive column.
#[derive(Debug)]
struct FoldAccumulator<T: ArrowPrimitiveType> {
    groups: GroupedFold<T>,
    output: DataType,
}

impl<T: ArrowPrimitiveType> FoldAccumulator<T> {
    fn boxed(fold: Fold, output: &DataType) -> Box<dyn GroupsAccumulator> {
        Box::new(FoldAccumulator::<T> {
            groups: GroupedFold::new(fold),
            output: output.clone(),
        })
    }
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for FoldAccumulator<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DataFusionResult<()> {
        refuse_filter_and_partial_emit(opt_filter, EmitTo::All)?;
        let column = first_primitive::<T>(values)?;
        self.groups
            .update(group_indices, column, total_num_groups)
            .map_err(kernel_error)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DataFusionResult<ArrayRef> {
        refuse_filter_and_partial_emit(None, emit_to)?;
        Ok(Arc::new(
            self.groups.finish(&self.output).map_err(kernel_error)?,
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> DataFusionResult<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DataFusionResult<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DataFusionResult<Vec<ArrayRef>> {
        refuse_filter_and_partial_emit(opt_filter, EmitTo::All)?;
        let column = first_primitive::<T>(values)?;
        Ok(vec![Arc::new(
            column.clone().with_data_type(self.output.clone()),
        )])
    }

    fn size(&self) -> usize {
        self.groups.memory_size()
    }
}

/// `AVG` of a float or decimal column: per group, the sum and the count of its non-null values.
/// The mean is what DataFusion computes: a float sum divided by the count; a decimal sum scaled
/// up to the result's scale, then divided by the count (truncating), an error if it overflows
/// the result's precision. Its states are DataFusion's: the count (`UInt64`), then the sum.
#[derive(Debug)]
struct AverageAccumulator<T: ArrowPrimitiveType> {
    groups: GroupedMean<T>,
    sum: DataType,
    output: DataType,
}

impl<T: ArrowPrimitiveType> AverageAccumulator<T> {
    fn boxed(sum: &DataType, output: &DataType) -> Box<dyn GroupsAccumulator> {
        Box::new(AverageAccumulator::<T> {
            groups: GroupedMean::new(),
            sum: sum.clone(),
            output: output.clone(),
        })
    }
}

/// The first of an aggregate's argument columns as an array of `T`, or an error naming what
/// it got.
fn first_primitive<T: ArrowPrimitiveType>(
    values: &[ArrayRef],
) -> DataFusionResult<&PrimitiveArray<T>> {
    let column = values.first().ok_or_else(|| {
        DataFusionError::Internal("an aggregate of a column got none".to_string())
    })?;
    primitive_of::<T>(column)
}

/// `column` as an array of `T`, or an error naming what it is.
fn primitive_of<T: ArrowPrimitiveType>(column: &ArrayRef) -> DataFusionResult<&PrimitiveArray<T>> {
    column.as_primitive_opt::<T>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "an aggregate of {} got a column of {}",
            T::DATA_TYPE,
            column.data_type()
        ))
    })
}

impl<T: ArrowPrimitiveType> GroupsAccumulator for AverageAccumulator<T> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DataFusionResult<()> {
        refuse_filter_and_partial_emit(opt_filter, EmitTo::All)?;
        self.groups
            .update(
                group_indices,
                first_primitive::<T>(values)?,
                total_num_groups,
            )
            .map_err(kernel_error)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DataFusionResult<ArrayRef> {
        refuse_filter_and_partial_emit(None, emit_to)?;
        let (sums, counts) = self.groups.finish(&self.sum).map_err(kernel_error)?;
        means(&sums, &counts, &self.output)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DataFusionResult<Vec<ArrayRef>> {
        refuse_filter_and_partial_emit(opt_filter, EmitTo::All)?;
        let column = first_primitive::<T>(values)?;
        let counts: UInt64Array = (0..column.len())
            .map(|row| u64::from(column.is_valid(row)))
            .collect();
        Ok(vec![
            Arc::new(counts),
            Arc::new(column.clone().with_data_type(self.sum.clone())),
        ])
    }

    fn state(&mut self, emit_to: EmitTo) -> DataFusionResult<Vec<ArrayRef>> {
        refuse_filter_and_partial_emit(None, emit_to)?;
        let (sums, counts) = self.groups.finish(&self.sum).map_err(kernel_error)?;
        let counts: UInt64Array = counts.unary(|count| count as u64);
        Ok(vec![Arc::new(counts), Arc::new(sums)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DataFusionResult<()> {
        let [counts, sums] = values else {
            return Err(DataFusionError::Internal(
                "an average merges a count and a sum".to_string(),
            ));
        };
        let counts = counts.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
            DataFusionError::Internal("an average's partial counts are not UInt64".to_string())
        })?;
        let counts: Int64Array = counts.unary(|count| count as i64);
        self.groups
            .merge(
                group_indices,
                primitive_of::<T>(sums)?,
                &counts,
                total_num_groups,
            )
            .map_err(kernel_error)
    }

    fn size(&self) -> usize {
        self.groups.memory_size()
    }
}

/// Each group's mean, `output` typed, from its sum and count; null where it counted no value.
fn means(sums: &dyn Array, counts: &Int64Array, output: &DataType) -> DataFusionResult<ArrayRef> {
    let counted = |group: usize| counts.value(group) > 0 && sums.is_valid(group);
    let groups = 0..counts.len();
    match (sums.data_type(), output) {
        (DataType::Decimal128(_, sum_scale), DataType::Decimal128(precision, scale)) => {
            let sums = sums.as_primitive::<Decimal128Type>();
            let factor = 10i128.pow(u32::try_from(scale - sum_scale).unwrap_or(0));
            let overflow =
                || DataFusionError::Execution("Arithmetic Overflow in AvgAccumulator".to_string());
            let means = groups
                .map(|group| {
                    if !counted(group) {
                        return Ok(None);
                    }
                    let mean = sums.value(group).checked_mul(factor).ok_or_else(overflow)?
                        / i128::from(counts.value(group));
                    if !Decimal128Type::is_valid_decimal_precision(mean, *precision) {
                        return Err(overflow());
                    }
                    Ok(Some(mean))
                })
                .collect::<DataFusionResult<Decimal128Array>>()?;
            Ok(Arc::new(means.with_data_type(output.clone())))
        }
        (DataType::Float64, DataType::Float64) => {
            let sums = sums.as_primitive::<Float64Type>();
            let means: Float64Array = groups
                .map(|group| counted(group).then(|| sums.value(group) / counts.value(group) as f64))
                .collect();
            Ok(Arc::new(means))
        }
        (sum, output) => Err(DataFusionError::Internal(format!(
            "no average of a {sum} sum giving {output}"
        ))),
    }
}

/// `COUNT(*)` (no argument column) or `COUNT(column)`.
#[derive(Debug, Default)]
struct CountAccumulator {
    counts: GroupedCount,
}

impl GroupsAccumulator for CountAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DataFusionResult<()> {
        refuse_filter_and_partial_emit(opt_filter, EmitTo::All)?;
        let nulls = values.first().and_then(|column| column.logical_nulls());
        self.counts
            .update(group_indices, nulls.as_ref(), total_num_groups)
            .map_err(kernel_error)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DataFusionResult<ArrayRef> {
        refuse_filter_and_partial_emit(None, emit_to)?;
        Ok(Arc::new(self.counts.finish()))
    }

    fn state(&mut self, emit_to: EmitTo) -> DataFusionResult<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DataFusionResult<()> {
        let partial = values
            .first()
            .and_then(|column| column.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| {
                DataFusionError::Internal("a count merged something but counts".to_string())
            })?;
        self.counts
            .merge(group_indices, partial, total_num_groups)
            .map_err(kernel_error)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DataFusionResult<Vec<ArrayRef>> {
        refuse_filter_and_partial_emit(opt_filter, EmitTo::All)?;
        let column = values.first().ok_or_else(|| {
            DataFusionError::NotImplemented(
                "COUNT(*) states per row need the row count, which no column gives".to_string(),
            )
        })?;
        let nulls = column.logical_nulls();
        let counts: Int64Array = (0..column.len())
            .map(|row| i64::from(nulls.as_ref().is_none_or(|nulls| nulls.is_valid(row))))
            .collect();
        Ok(vec![Arc::new(counts)])
    }

    fn size(&self) -> usize {
        self.counts.memory_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tasks' partial averages merged: decimal means truncate at the result's scale, a
    /// group of nulls only averages to null, floats divide.
    #[test]
    fn averages_merge_partial_states_and_round_as_datafusion_does() {
        let input = DataType::Decimal128(15, 2);
        let sum = DataType::Decimal128(25, 2);
        let output = DataType::Decimal128(19, 6);
        let decimals = |values: Vec<Option<i128>>| -> ArrayRef {
            Arc::new(Decimal128Array::from(values).with_data_type(input.clone()))
        };
        let mut first = AverageAccumulator::<Decimal128Type>::boxed(&sum, &output);
        let mut second = AverageAccumulator::<Decimal128Type>::boxed(&sum, &output);
        first
            .update_batch(
                &[decimals(vec![Some(100), None, Some(-50)])],
                &[0, 1, 2],
                None,
                3,
            )
            .unwrap();
        second
            .update_batch(&[decimals(vec![Some(201), None])], &[0, 1], None, 3)
            .unwrap();
        let mut merged = AverageAccumulator::<Decimal128Type>::boxed(&sum, &output);
        for partial in [&mut first, &mut second] {
            let states = partial.state(EmitTo::All).unwrap();
            assert_eq!(states[0].data_type(), &DataType::UInt64);
            assert_eq!(states[1].data_type(), &sum);
            merged.merge_batch(&states, &[0, 1, 2], 3).unwrap();
        }
        let means = merged.evaluate(EmitTo::All).unwrap();
        let means = means.as_primitive::<Decimal128Type>();
        assert_eq!(means.data_type(), &output);
        // (1.00 + 2.01) / 2 = 1.505000; -0.50; no value in group 1.
        assert_eq!(
            means.iter().collect::<Vec<_>>(),
            vec![Some(1_505_000), None, Some(-500_000)]
        );

        let mut floats =
            AverageAccumulator::<Float64Type>::boxed(&DataType::Float64, &DataType::Float64);
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None]));
        floats.update_batch(&[values], &[0, 0, 1], None, 2).unwrap();
        let means = floats.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            means
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(1.5), None]
        );
    }

    #[test]
    fn a_decimal_average_past_its_precision_is_an_error() {
        let sum = DataType::Decimal128(38, 0);
        let output = DataType::Decimal128(4, 2);
        let mut average = AverageAccumulator::<Decimal128Type>::boxed(&sum, &output);
        let values: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1000)]).with_data_type(DataType::Decimal128(4, 0)),
        );
        average.update_batch(&[values], &[0], None, 1).unwrap();
        let error = average.evaluate(EmitTo::All).unwrap_err().to_string();
        assert!(error.contains("Overflow"), "{error}");
    }
}
