//! Shared fixtures: the SF 0.1 TPC-H data set (generated once, cached under `target/`), a
//! session with its tables registered, and batches as sorted rows of text.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sabot::Sabot;
use sabot::arrow::array::RecordBatch;
use sabot::arrow::util::display::{ArrayFormatter, FormatOptions};
use sabot::tpch::generate;

/// Scale factor of the answer tests.
pub const SCALE_FACTOR: f64 = 0.1;

/// The repository's root directory.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The SF 0.1 data set: reused from `target/sabot-test-data/` when complete, else generated there.
pub fn tpch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = repository_root()
            .join("target")
            .join("sabot-test-data")
            .join(format!("tpch-sf{SCALE_FACTOR}"));
        if !generate::is_complete(&dir) {
            generate::generate(SCALE_FACTOR, &dir, 2, &|_| {}).expect("generate TPC-H SF 0.1");
        }
        dir
    })
}

/// One session shared by the TPC-H tests, with the eight tables registered.
pub fn tpch_session() -> &'static Sabot {
    static SESSION: OnceLock<Sabot> = OnceLock::new();
    SESSION.get_or_init(|| {
        let sabot = Sabot::builder()
            .threads(2)
            .build()
            .expect("start a session");
        sabot::tpch::register(&sabot, tpch_dir()).expect("register the TPC-H tables");
        sabot
    })
}

/// Every row of `batches` as its values' text joined by `|`, sorted: what two runs of a query
/// are compared by when their row order may differ.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let fields: Vec<String> = formatters
                .iter()
                .map(|formatter| formatter.value(row).to_string())
                .collect();
            rows.push(fields.join("|"));
        }
    }
    rows.sort();
    rows
}

/// The actual output rows of the first operator line of an `EXPLAIN ANALYZE` text that
/// `is_operator` picks; panics naming what is missing.
pub fn actual_rows(plan: &str, is_operator: impl Fn(&str) -> bool) -> u64 {
    let line = plan
        .lines()
        .find(|line| line.contains("metrics=[rows=") && is_operator(line))
        .unwrap_or_else(|| panic!("no such operator in {plan}"));
    line.split("metrics=[rows=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no rows in {line}"))
}

/// The `est_rows` of the first line of an `EXPLAIN` text that `is_operator` picks, with that line;
/// panics naming what is missing.
pub fn estimated_rows(plan: &str, is_operator: impl Fn(&str) -> bool) -> (f64, &str) {
    let line = plan
        .lines()
        .find(|line| line.contains("est_rows=") && is_operator(line))
        .unwrap_or_else(|| panic!("no such operator in {plan}"));
    let estimate = line
        .split("est_rows=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no estimate in {line}"));
    (estimate, line)
}

/// Writes `columns` (name and values, all non-null BIGINT) as one Parquet file at `path`.
pub fn write_int64_parquet(path: &Path, columns: Vec<(&str, Vec<i64>)>) {
    use std::sync::Arc;

    use sabot::arrow::array::Int64Array;
    use sabot::arrow::datatypes::{DataType, Field, Schema};

    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Int64, false))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns
        .into_iter()
        .map(|(_, values)| Arc::new(Int64Array::from(values)) as _)
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}
