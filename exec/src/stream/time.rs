//! Event-time columns: reading them as `i64` values in their own unit, and converting durations
//! to that unit.

use std::time::Duration;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

use crate::error::{ExecError, Result};

/// Name of the column holding a window's start.
pub const WINDOW_START: &str = "window_start";
/// Name of the column holding a window's end (exclusive).
pub const WINDOW_END: &str = "window_end";

/// Whether a column of this type can hold event times: timestamps of any unit, or `Int64`
/// (read as milliseconds).
pub(crate) fn is_time_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(_, _) | DataType::Int64)
}

/// `duration` in the unit of an event-time column of type `data_type`.
pub fn duration_in_units(duration: Duration, data_type: &DataType) -> Result<i64> {
    let units = match data_type {
        DataType::Timestamp(TimeUnit::Second, _) => duration.as_secs() as u128,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => duration.as_millis(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => duration.as_micros(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => duration.as_nanos(),
        other => {
            return Err(ExecError::InvalidStream(format!(
                "event time must be a timestamp or Int64 column, not {other}"
            )));
        }
    };
    i64::try_from(units)
        .map_err(|_| ExecError::InvalidStream(format!("duration {duration:?} is too long")))
}

/// The values of an event-time column; an error names the column when a value is null.
pub(crate) fn event_times<'a>(column: &'a ArrayRef, name: &str) -> Result<&'a [i64]> {
    if column.null_count() > 0 {
        return Err(ExecError::InvalidStream(format!(
            "event-time column {name} has null values"
        )));
    }
    let values: &[i64] = match column.data_type() {
        DataType::Int64 => column.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            column.as_primitive::<TimestampSecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            column.as_primitive::<TimestampMillisecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            column.as_primitive::<TimestampMicrosecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            column.as_primitive::<TimestampNanosecondType>().values()
        }
        other => {
            return Err(ExecError::InvalidStream(format!(
                "event-time column {name} has type {other}, not a timestamp or Int64"
            )));
        }
    };
    Ok(values)
}

/// An event-time column of type `data_type` holding `values`.
pub(crate) fn time_array(values: Vec<i64>, data_type: &DataType) -> ArrayRef {
    let array: ArrayRef = match data_type {
        DataType::Timestamp(TimeUnit::Second, zone) => {
            Arc::new(TimestampSecondArray::from(values).with_timezone_opt(zone.clone()))
        }
        DataType::Timestamp(TimeUnit::Millisecond, zone) => {
            Arc::new(TimestampMillisecondArray::from(values).with_timezone_opt(zone.clone()))
        }
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(zone.clone()))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, zone) => {
            Arc::new(TimestampNanosecondArray::from(values).with_timezone_opt(zone.clone()))
        }
        _ => Arc::new(Int64Array::from(values)),
    };
    array
}
