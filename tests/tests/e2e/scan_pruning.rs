//! Parquet row groups whose min/max statistics rule out a query's filter are not read.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use sabot::{Engine, Sabot};

const ROWS_PER_GROUP: usize = 1_000;
const GROUPS: usize = 4;

/// A file of `GROUPS` row groups whose `id` column ascends, so each group covers one id range.
fn sorted_file(dir: &std::path::Path) -> std::path::PathBuf {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let path = dir.join("sorted.parquet");
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .build();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
    let rows = (ROWS_PER_GROUP * GROUPS) as i64;
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|id| id % 7))),
        ],
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

#[test]
fn filters_skip_row_groups_their_statistics_rule_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = sorted_file(dir.path());
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("t", &path).unwrap();
    let query = "SELECT count(*) AS n, sum(v) AS s FROM t WHERE id >= 3500";

    let plan = sabot.sql(query).unwrap().explain(false).unwrap();
    assert!(plan.contains("row_groups_pruned=3 of 4"), "{plan}");

    let answer = |engine| {
        let batches = sabot
            .sql(query)
            .unwrap()
            .with_engine(engine)
            .collect()
            .unwrap();
        let column = |index: usize| {
            batches[0]
                .column(index)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        };
        (column(0), column(1))
    };
    let before = sabot.stats().rows_scanned;
    let on_sabot = answer(Engine::Sabot);
    assert_eq!(
        sabot.stats().rows_scanned - before,
        ROWS_PER_GROUP as u64,
        "only the last row group is read"
    );
    assert_eq!(on_sabot.0, 500);
    assert_eq!(on_sabot, answer(Engine::DataFusion));

    let none = sabot
        .sql("SELECT count(*) FROM t WHERE id > 100000")
        .unwrap()
        .collect()
        .unwrap();
    let total: i64 = none
        .iter()
        .map(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        })
        .sum();
    assert_eq!(total, 0, "every row group pruned still gives a count of 0");
}

#[test]
fn a_scan_of_no_columns_counts_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = sorted_file(dir.path());
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("t", &path).unwrap();
    let count = |engine| {
        let batches = sabot
            .sql("SELECT count(*) FROM t")
            .unwrap()
            .with_engine(engine)
            .collect()
            .unwrap();
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(count(Engine::Sabot), (ROWS_PER_GROUP * GROUPS) as i64);
    assert_eq!(count(Engine::Sabot), count(Engine::DataFusion));
}
