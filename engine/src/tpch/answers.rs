//! Checking a TPC-H result against a reference answer: a CSV file with a header row (as in
//! `tests/tpch/answers/`), dates as `YYYY-MM-DD`. A result matches when it has the same column
//! names (in lower case), the same rows in the same order, numbers within [`TOLERANCE`]
//! (relative or absolute) and text and dates exactly.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Result, SabotError};

/// Largest accepted difference between a number and its reference, relative or absolute.
/// Absolute covers values near zero: DataFusion's averages of decimals carry 6 digits, while
/// references may hold doubles.
pub const TOLERANCE: f64 = 1e-6;

/// A reference answer: its header and rows as text.
#[derive(Debug, Clone)]
pub struct ReferenceAnswer {
    pub path: PathBuf,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl ReferenceAnswer {
    /// The answer of query `query` in `dir` (`dir/q<query>.csv`).
    pub fn for_query(dir: &Path, query: usize) -> Result<ReferenceAnswer> {
        ReferenceAnswer::read(&dir.join(format!("q{query}.csv")))
    }

    /// Reads an answer file.
    pub fn read(path: &Path) -> Result<ReferenceAnswer> {
        if !path.exists() {
            return Err(SabotError::FileNotFound {
                path: path.to_path_buf(),
            });
        }
        let unreadable = |error: csv::Error| SabotError::UnreadableFile {
            path: path.to_path_buf(),
            format: "CSV",
            message: error.to_string(),
        };
        let mut reader = csv::Reader::from_path(path).map_err(unreadable)?;
        let header = reader
            .headers()
            .map_err(unreadable)?
            .iter()
            .map(str::to_string)
            .collect();
        let rows = reader
            .records()
            .map(|record| {
                record
                    .map(|record| record.iter().map(str::to_string).collect())
                    .map_err(unreadable)
            })
            .collect::<Result<_>>()?;
        Ok(ReferenceAnswer {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// "ok" when the result (`batches` of `schema`) matches; else what differs first.
    pub fn verdict(&self, schema: &Schema, batches: &[RecordBatch]) -> Result<String> {
        Ok(self
            .mismatch(schema, batches)?
            .unwrap_or_else(|| "ok".to_string()))
    }

    /// `None` when the result (`batches` of `schema`) matches; else what differs first.
    pub fn mismatch(&self, schema: &Schema, batches: &[RecordBatch]) -> Result<Option<String>> {
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|field| field.name().to_lowercase())
            .collect();
        if columns != self.header {
            return Ok(Some(format!(
                "columns {columns:?}, expected {:?}",
                self.header
            )));
        }
        let actual = rendered(batches)?;
        if actual.len() != self.rows.len() {
            return Ok(Some(format!(
                "{} rows, expected {}",
                actual.len(),
                self.rows.len()
            )));
        }
        Ok(actual
            .iter()
            .zip(&self.rows)
            .enumerate()
            .find(|(_, (actual, expected))| {
                actual.len() != expected.len()
                    || !actual
                        .iter()
                        .zip(expected.iter())
                        .all(|(actual, expected)| values_match(actual, expected))
            })
            .map(|(index, (actual, expected))| {
                format!("row {index} is {actual:?}, expected {expected:?}")
            }))
    }
}

/// Whether a rendered value matches its reference: equal text, or numbers within [`TOLERANCE`].
pub fn values_match(actual: &str, expected: &str) -> bool {
    if actual == expected {
        return true;
    }
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(actual), Ok(expected)) => {
            let difference = (actual - expected).abs();
            difference <= TOLERANCE || difference <= TOLERANCE * expected.abs().max(actual.abs())
        }
        _ => false,
    }
}

/// Every row of `batches` as text, nulls empty.
fn rendered(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|error| SabotError::Execution {
                message: format!("cannot render a result to compare it: {error}"),
            })?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|formatter| formatter.value(row).to_string())
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn tolerance_accepts_rounded_averages_and_rejects_real_differences() {
        assert!(values_match("0.050144", "0.05014459706340077"));
        assert!(values_match("5256751331.449234", "5256751331.4492340"));
        assert!(!values_match("0.0502", "0.05014459706340077"));
        assert!(!values_match("147791", "147790"));
        assert!(!values_match("FRANCE", "GERMANY"));
    }

    #[test]
    fn mismatches_name_the_first_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q1.csv");
        std::fs::write(&path, "name,value\nFRANCE,1.5\nGERMANY,2\n").unwrap();
        let answer = ReferenceAnswer::for_query(dir.path(), 1).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("NAME", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
        ]));
        let batch = |names: Vec<&str>, values: Vec<f64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(Float64Array::from(values)),
                ],
            )
            .unwrap()
        };
        let same = batch(vec!["FRANCE", "GERMANY"], vec![1.5, 2.0]);
        assert_eq!(answer.mismatch(&schema, &[same]).unwrap(), None);
        let differs = batch(vec!["FRANCE", "GERMANY"], vec![1.5, 2.5]);
        let message = answer.mismatch(&schema, &[differs]).unwrap().unwrap();
        assert!(message.starts_with("row 1 is"), "{message}");
        let short = batch(vec!["FRANCE"], vec![1.5]);
        let message = answer.mismatch(&schema, &[short]).unwrap().unwrap();
        assert_eq!(message, "1 rows, expected 2");
        assert!(matches!(
            ReferenceAnswer::for_query(dir.path(), 2),
            Err(SabotError::FileNotFound { .. })
        ));
    }
}
