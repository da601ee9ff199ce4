//! Every TPC-H query on every engine gives the reference answer (DuckDB's, on the same data):
//! same columns, same rows in the same order, numbers within 1e-6, text and dates exact. On
//! Sabot's engine no part of any query may fall back to DataFusion.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use sabot::Engine;

use crate::common::{SCALE_FACTOR, repository_root, tpch_session};

/// Largest accepted difference between a number and its reference, relative or absolute.
/// Absolute covers values near zero: DataFusion's averages of decimals carry 6 digits, while
/// the reference has doubles.
const TOLERANCE: f64 = 1e-6;

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn reference_answer(query: usize) -> Table {
    let path = repository_root()
        .join("tests/tpch/answers")
        .join(format!("sf{SCALE_FACTOR}"))
        .join(format!("q{query}.csv"));
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let header = reader
        .headers()
        .expect("answer header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|record| {
            record
                .expect("answer row")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    Table { header, rows }
}

fn rendered(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|formatter| formatter.value(row).to_string())
                    .collect(),
            );
        }
    }
    rows
}

fn values_match(actual: &str, expected: &str) -> bool {
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

fn check(query: usize, engine: Engine) {
    let sabot = tpch_session();
    let sql = sabot::tpch::query(query).unwrap();
    let frame = sabot
        .sql(sql)
        .unwrap_or_else(|error| panic!("Q{query} plan: {error}"))
        .with_engine(engine);
    let schema = frame.schema();
    let executed = frame
        .execute()
        .unwrap_or_else(|error| panic!("Q{query} on {engine}: {error}"));
    assert!(
        executed.fallbacks.is_empty(),
        "Q{query} on {engine} fell back to DataFusion: {:?}",
        executed.fallbacks
    );
    let batches = executed.batches;
    let expected = reference_answer(query);

    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|field| field.name().to_lowercase())
        .collect();
    assert_eq!(
        columns, expected.header,
        "Q{query} on {engine}: column names"
    );
    let actual = rendered(&batches);
    assert_eq!(
        actual.len(),
        expected.rows.len(),
        "Q{query} on {engine}: row count"
    );
    for (index, (actual_row, expected_row)) in actual.iter().zip(&expected.rows).enumerate() {
        let matches = actual_row.len() == expected_row.len()
            && actual_row
                .iter()
                .zip(expected_row)
                .all(|(actual, expected)| values_match(actual, expected));
        assert!(
            matches,
            "Q{query} on {engine}: row {index} differs\n  got:      {actual_row:?}\n  expected: {expected_row:?}"
        );
    }
}

#[test]
fn tolerance_accepts_rounded_averages_and_rejects_real_differences() {
    assert!(values_match("0.050144", "0.05014459706340077"));
    assert!(values_match("5256751331.449234", "5256751331.4492340"));
    assert!(!values_match("0.0502", "0.05014459706340077"));
    assert!(!values_match("147791", "147790"));
    assert!(!values_match("FRANCE", "GERMANY"));
}

macro_rules! answer_tests {
    ($($query:literal => $on_sabot:ident, $on_datafusion:ident;)*) => {
        $(
            #[test]
            fn $on_sabot() {
                check($query, Engine::Sabot);
            }

            #[test]
            fn $on_datafusion() {
                check($query, Engine::DataFusion);
            }
        )*
    };
}

answer_tests! {
    1 => q01_sabot, q01_datafusion;
    2 => q02_sabot, q02_datafusion;
    3 => q03_sabot, q03_datafusion;
    4 => q04_sabot, q04_datafusion;
    5 => q05_sabot, q05_datafusion;
    6 => q06_sabot, q06_datafusion;
    7 => q07_sabot, q07_datafusion;
    8 => q08_sabot, q08_datafusion;
    9 => q09_sabot, q09_datafusion;
    10 => q10_sabot, q10_datafusion;
    11 => q11_sabot, q11_datafusion;
    12 => q12_sabot, q12_datafusion;
    13 => q13_sabot, q13_datafusion;
    14 => q14_sabot, q14_datafusion;
    15 => q15_sabot, q15_datafusion;
    16 => q16_sabot, q16_datafusion;
    17 => q17_sabot, q17_datafusion;
    18 => q18_sabot, q18_datafusion;
    19 => q19_sabot, q19_datafusion;
    20 => q20_sabot, q20_datafusion;
    21 => q21_sabot, q21_datafusion;
    22 => q22_sabot, q22_datafusion;
}
