//! The SQL functions that name a streaming query's windows in its GROUP BY:
//! `tumble(time, size)`, `hop(time, slide, size)` and `session(time, gap)`, the names Flink and
//! Arroyo users know. Each returns the row's window start. The streaming planner turns them
//! into window operators; over a table (not a stream) `tumble` is computed row by row, so the
//! same query also runs in batch, while `hop` and `session` (a row in several windows, windows
//! that depend on other rows) need a stream.

use std::time::Duration;

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sabot_exec::stream::{WindowSpec, duration_in_units};

/// Which window a window function names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowFunctionKind {
    Tumble,
    Hop,
    Session,
}

impl WindowFunctionKind {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            WindowFunctionKind::Tumble => "tumble",
            WindowFunctionKind::Hop => "hop",
            WindowFunctionKind::Session => "session",
        }
    }

    /// The kind named `name`, if it is a window function.
    pub fn of(name: &str) -> Option<WindowFunctionKind> {
        [
            WindowFunctionKind::Tumble,
            WindowFunctionKind::Hop,
            WindowFunctionKind::Session,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    fn arguments(self) -> usize {
        match self {
            WindowFunctionKind::Hop => 3,
            WindowFunctionKind::Tumble | WindowFunctionKind::Session => 2,
        }
    }
}

/// A window function as a DataFusion scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFunction {
    kind: WindowFunctionKind,
    signature: Signature,
}

impl ScalarUDFImpl for WindowFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(time @ (DataType::Timestamp(_, _) | DataType::Int64)) => Ok(time.clone()),
            other => plan_err!(
                "{}: the first argument must be an event-time column (a timestamp or Int64 \
                 milliseconds), not {other:?}",
                self.kind.name()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.kind != WindowFunctionKind::Tumble {
            return exec_err!(
                "{}(...) windows exist only in streaming queries (over a stream table)",
                self.kind.name()
            );
        }
        let [time, size] = args.args.as_slice() else {
            return exec_err!("tumble takes (time, size)");
        };
        let ColumnarValue::Scalar(size) = size else {
            return exec_err!("tumble: the window size must be a constant interval");
        };
        let time_type = time.data_type();
        let size = duration_in_units(interval(size)?, &time_type)
            .map_err(|error| datafusion::error::DataFusionError::Execution(error.to_string()))?;
        if size <= 0 {
            return exec_err!("tumble: the window size must be above 0");
        }
        let times = time.to_array(args.number_rows)?;
        let values = cast(&times, &DataType::Int64)?;
        let starts: arrow::array::Int64Array = values
            .as_primitive::<Int64Type>()
            .unary(|time: i64| time.div_euclid(size) * size);
        let starts = cast(&starts, &time_type)?;
        Ok(ColumnarValue::Array(starts))
    }
}

/// `tumble`, `hop` and `session`, to register in a session.
pub fn window_functions() -> Vec<ScalarUDF> {
    [
        WindowFunctionKind::Tumble,
        WindowFunctionKind::Hop,
        WindowFunctionKind::Session,
    ]
    .into_iter()
    .map(|kind| {
        ScalarUDF::from(WindowFunction {
            kind,
            signature: Signature::any(kind.arguments(), Volatility::Immutable),
        })
    })
    .collect()
}

/// The window a call of `kind` with `args` names, in the units of an event-time column of
/// type `time_type`.
pub fn window_spec(
    kind: WindowFunctionKind,
    args: &[Expr],
    time_type: &DataType,
) -> Result<WindowSpec> {
    let length = |index: usize| -> Result<i64> {
        let Some(Expr::Literal(value, _)) = args.get(index) else {
            return plan_err!(
                "{}: argument {} must be a constant interval such as INTERVAL '10' SECOND",
                kind.name(),
                index + 1
            );
        };
        let units = duration_in_units(interval(value)?, time_type)
            .map_err(|error| datafusion::error::DataFusionError::Plan(error.to_string()))?;
        if units <= 0 {
            return plan_err!("{}: a window length must be above 0", kind.name());
        }
        Ok(units)
    };
    Ok(match kind {
        WindowFunctionKind::Tumble => WindowSpec::Tumbling { size: length(1)? },
        WindowFunctionKind::Hop => WindowSpec::Hop {
            slide: length(1)?,
            size: length(2)?,
        },
        WindowFunctionKind::Session => WindowSpec::Session { gap: length(1)? },
    })
}

/// An interval constant as a duration; months and years have no fixed length and are refused.
fn interval(value: &ScalarValue) -> Result<Duration> {
    let nanos: i128 = match value {
        ScalarValue::IntervalMonthDayNano(Some(interval)) if interval.months == 0 => {
            i128::from(interval.days) * 86_400_000_000_000 + i128::from(interval.nanoseconds)
        }
        ScalarValue::IntervalDayTime(Some(interval)) => {
            i128::from(interval.days) * 86_400_000_000_000
                + i128::from(interval.milliseconds) * 1_000_000
        }
        other => {
            return plan_err!(
                "a window length must be an interval of days or less, such as INTERVAL '10' SECOND, not {other}"
            );
        }
    };
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .or_else(|_| plan_err!("a window length must be positive and below 584 years"))
}
