//! `ANALYZE`: the SQL statement (`ANALYZE [TABLE] name [(column, ...)]`, or bare `ANALYZE` for
//! every Parquet table) and [`Sabot::analyze`](crate::Sabot::analyze). Each table's Parquet
//! files are read once in full (`sabot_exec::analyze_parquet`); the planner then estimates
//! queries over them from the statistics found: HyperLogLog distinct counts, null counts,
//! bounds and equi-depth histograms. The statement's result has a row per analyzed column.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int64Array, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use datafusion::catalog::TableProvider;
use datafusion::sql::parser::{DFParser, Statement as ParsedStatement};
use datafusion::sql::sqlparser::ast::Statement;
use sabot_exec::TableSummary;

use crate::error::{Result, SabotError};

/// What an `ANALYZE` statement asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnalyzeRequest {
    /// The table, or every Parquet table when `None`.
    pub table: Option<String>,
    /// The columns to analyze; all when empty.
    pub columns: Vec<String>,
}

/// The `ANALYZE` statement `text` holds, if it holds one and nothing else.
pub(crate) fn analyze_request(text: &str) -> Option<AnalyzeRequest> {
    let mut statements = DFParser::parse_sql(text).ok()?;
    if statements.len() != 1 {
        return None;
    }
    let ParsedStatement::Statement(statement) = statements.pop_front()? else {
        return None;
    };
    let Statement::Analyze(analyze) = *statement else {
        return None;
    };
    Some(AnalyzeRequest {
        table: analyze.table_name.map(|name| name.to_string()),
        columns: analyze
            .columns
            .iter()
            .map(|column| column.value.clone())
            .collect(),
    })
}

/// The schema of `ANALYZE`'s result.
pub(crate) fn summary_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("nulls", DataType::UInt64, false),
        Field::new("distinct", DataType::UInt64, false),
        Field::new("min", DataType::Utf8, true),
        Field::new("max", DataType::Utf8, true),
        Field::new("histogram_buckets", DataType::UInt32, true),
    ]))
}

/// Analyzes table `name` (whose provider is `provider`), columns `columns` (all when empty), on
/// `threads` threads; `None` when it is not a Parquet table.
pub(crate) fn analyze_table(
    name: &str,
    provider: &dyn TableProvider,
    columns: &[String],
    threads: usize,
) -> Option<Result<Arc<TableSummary>>> {
    let files = match sabot_planner::parquet_table_files(provider)? {
        Ok(files) => files,
        Err(message) => return Some(Err(SabotError::Plan { message })),
    };
    let columns = (!columns.is_empty()).then_some(columns);
    Some(
        sabot_exec::analyze_parquet(&files, columns, threads).map_err(
            |error| match SabotError::from(error) {
                SabotError::Plan { message } => SabotError::Plan {
                    message: format!("ANALYZE {name}: {message}"),
                },
                other => other,
            },
        ),
    )
}

/// The rows of `ANALYZE`'s result for table `name` (typed by `schema`): one per analyzed column.
pub(crate) fn summary_rows(
    name: &str,
    schema: &Schema,
    summary: &TableSummary,
) -> Result<RecordBatch> {
    let columns: Vec<_> = summary
        .columns
        .iter()
        .enumerate()
        .filter_map(|(index, column)| Some((index, column.as_ref()?)))
        .collect();
    let bound = |index: usize, pick: fn((i64, i64)) -> i64| -> Option<String> {
        let (_, column) = columns[index];
        let value = pick(column.bounds?);
        let data_type = schema.fields().get(columns[index].0)?.data_type();
        Some(value_as(value, data_type))
    };
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(columns.iter().map(|_| name))),
        Arc::new(StringArray::from_iter_values(
            columns.iter().map(|(_, column)| column.name.as_str()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            columns.iter().map(|_| summary.rows),
        )),
        Arc::new(UInt64Array::from_iter_values(
            columns.iter().map(|(_, column)| column.nulls),
        )),
        Arc::new(UInt64Array::from_iter_values(
            columns.iter().map(|(_, column)| column.distinct as u64),
        )),
        Arc::new(StringArray::from_iter(
            (0..columns.len()).map(|index| bound(index, |(low, _)| low)),
        )),
        Arc::new(StringArray::from_iter(
            (0..columns.len()).map(|index| bound(index, |(_, high)| high)),
        )),
        Arc::new(UInt32Array::from_iter(columns.iter().map(|(_, column)| {
            column
                .histogram
                .as_ref()
                .map(|histogram| histogram.buckets() as u32)
        }))),
    ];
    Ok(RecordBatch::try_new(summary_schema(), arrays)?)
}

/// A bound (an integer, a date's days or a decimal's unscaled value) written as a value of
/// `data_type`.
fn value_as(value: i64, data_type: &DataType) -> String {
    let array: Option<ArrayRef> = match data_type {
        DataType::Decimal128(precision, scale) => Decimal128Array::from(vec![i128::from(value)])
            .with_precision_and_scale(*precision, *scale)
            .ok()
            .map(|array| Arc::new(array) as ArrayRef),
        DataType::Date32 => i32::try_from(value)
            .ok()
            .map(|days| Arc::new(Date32Array::from(vec![days])) as ArrayRef),
        other => arrow::compute::cast(&Int64Array::from(vec![value]), other).ok(),
    };
    array
        .and_then(|array| array_value_to_string(&array, 0).ok())
        .unwrap_or_else(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyze_statements_are_recognized_and_others_are_not() {
        assert_eq!(
            analyze_request("ANALYZE TABLE lineitem"),
            Some(AnalyzeRequest {
                table: Some("lineitem".to_string()),
                columns: Vec::new(),
            })
        );
        assert_eq!(
            analyze_request("analyze orders (o_orderdate, o_custkey);"),
            Some(AnalyzeRequest {
                table: Some("orders".to_string()),
                columns: vec!["o_orderdate".to_string(), "o_custkey".to_string()],
            })
        );
        assert_eq!(
            analyze_request("ANALYZE"),
            Some(AnalyzeRequest {
                table: None,
                columns: Vec::new(),
            })
        );
        assert_eq!(analyze_request("SELECT 1"), None);
        assert_eq!(analyze_request("EXPLAIN ANALYZE SELECT 1"), None);
        assert_eq!(analyze_request("ANALYZE a; ANALYZE b"), None);
    }

    #[test]
    fn bounds_are_written_in_their_columns_type() {
        assert_eq!(value_as(9_131, &DataType::Date32), "1995-01-01");
        assert_eq!(value_as(-12_345, &DataType::Decimal128(15, 2)), "-123.45");
        assert_eq!(value_as(42, &DataType::Int32), "42");
    }
}
