//! Renders query results for people and programs: an aligned text table, CSV with a header row,
//! or a JSON array of row objects.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Result, SabotError};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// Comma-separated values with a header row; dates as `YYYY-MM-DD`, numbers at full precision.
    Csv,
    /// A JSON array with one object per row.
    Json,
}

impl FromStr for OutputFormat {
    type Err = SabotError;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            other => Err(SabotError::invalid_argument(format!(
                "unknown output format '{other}': expected table, csv or json"
            ))),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "json",
        })
    }
}

/// Writes `batches` (all of `schema`) to `out` in `format`.
pub fn write_batches(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let written = match format {
        OutputFormat::Table => {
            let table =
                arrow::util::pretty::pretty_format_batches_with_schema(schema.clone(), batches)?;
            writeln!(out, "{table}").map_err(arrow::error::ArrowError::from)
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            writer.write(&RecordBatch::new_empty(schema.clone()))?;
            batches.iter().try_for_each(|batch| writer.write(batch))
        }
        OutputFormat::Json => {
            if batches.iter().all(|batch| batch.num_rows() == 0) {
                writeln!(out, "[]").map_err(arrow::error::ArrowError::from)
            } else {
                let mut writer = arrow::json::ArrayWriter::new(&mut *out);
                batches.iter().try_for_each(|batch| writer.write(batch))?;
                writer.finish()?;
                writeln!(out).map_err(arrow::error::ArrowError::from)
            }
        }
    };
    written.map_err(SabotError::from)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Decimal128Array, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn sample() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
            Field::new("price", DataType::Decimal128(15, 4), false),
            Field::new("ratio", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(Date32Array::from(vec![9131])),
                Arc::new(
                    Decimal128Array::from(vec![50540962666828])
                        .with_precision_and_scale(15, 4)
                        .unwrap(),
                ),
                Arc::new(Float64Array::from(vec![0.05014459706340077])),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    fn render(format: OutputFormat, batches: &[RecordBatch], schema: &SchemaRef) -> String {
        let mut out = Vec::new();
        write_batches(batches, schema, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_has_header_iso_dates_and_full_precision() {
        let (schema, batch) = sample();
        let csv = render(OutputFormat::Csv, &[batch], &schema);
        assert_eq!(
            csv,
            "name,day,price,ratio\na,1995-01-01,5054096266.6828,0.05014459706340077\n"
        );
    }

    #[test]
    fn empty_results_still_name_their_columns() {
        let (schema, _) = sample();
        assert_eq!(
            render(OutputFormat::Csv, &[], &schema),
            "name,day,price,ratio\n"
        );
        assert_eq!(render(OutputFormat::Json, &[], &schema), "[]\n");
        assert!(render(OutputFormat::Table, &[], &schema).contains("price"));
    }

    #[test]
    fn json_is_an_array_of_row_objects() {
        let (schema, batch) = sample();
        let json = render(OutputFormat::Json, &[batch], &schema);
        assert!(
            json.starts_with("[{\"name\":\"a\",\"day\":\"1995-01-01\""),
            "{json}"
        );
    }
}
