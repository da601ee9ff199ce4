//! Sabot's own accumulators for the common aggregates: `COUNT`, and `SUM`, `MIN` and `MAX` of
//! integer, float, date and decimal columns, on `sabot-kernels`' grouped folds. They stand
//! behind DataFusion's `GroupsAccumulator` interface, so the aggregation operator drives them as
//! it drives DataFusion's accumulators, which still serve every other aggregate. Their results
//! and intermediate states have DataFusion's types. `COUNT(*)` (DataFusion's `count(1)`) takes
//! no argument column: it counts the rows of each group id.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type,
    Schema, UInt64Type,
};
use datafusion::error::{DataFusionError, Result as DataFusionResult};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Literal;
use sabot_kernels::{Fold, GroupedCount, GroupedFold};

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
        let column = values.first().ok_or_else(|| {
            DataFusionError::Internal("an aggregate of a column got none".to_string())
        })?;
        let column = column.as_primitive_opt::<T>().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "an aggregate of {} got a column of {}",
                T::DATA_TYPE,
                column.data_type()
            ))
        })?;
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
        let column = values
            .first()
            .and_then(|column| column.as_primitive_opt::<T>())
            .ok_or_else(|| {
                DataFusionError::Internal(format!("an aggregate of {} got none", T::DATA_TYPE))
            })?;
        Ok(vec![Arc::new(
            column.clone().with_data_type(self.output.clone()),
        )])
    }

    fn size(&self) -> usize {
        self.groups.memory_size()
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
