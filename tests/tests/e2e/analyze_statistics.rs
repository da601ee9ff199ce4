//! `ANALYZE` reads a table in full and the planner estimates from what it found: a range on a
//! skewed column gets its histogram's share instead of its share of `[min, max]`, and a
//! column whose first values are all alike gets its HyperLogLog distinct count instead of the
//! count its first sampled values suggest. Answers do not change.

use sabot::Sabot;

use crate::common::{estimated_rows, write_int64_parquet};

const ROWS: i64 = 200_000;
/// Rows at the start of the table whose `g` is 0 (more than the planner samples).
const ALIKE_ROWS: i64 = 100_000;

/// Row `row`'s `v`: below 100 in 9 rows of 10, else spread up to 10^6.
fn value_of_v(row: i64) -> i64 {
    if row % 10 == 9 {
        row * 7_919 % 1_000_000
    } else {
        row % 100
    }
}

/// A table of `ROWS` rows: `v` is below 100 in 9 rows of 10 and else spread up to 10^6; `g` is
/// 0 for the first `ALIKE_ROWS` rows, then takes a new value every 4 rows.
fn session(dir: &std::path::Path) -> Sabot {
    let path = dir.join("skewed.parquet");
    write_int64_parquet(
        &path,
        vec![
            ("k", (0..ROWS).collect()),
            ("v", (0..ROWS).map(value_of_v).collect()),
            (
                "g",
                (0..ROWS)
                    .map(|row| ((row - ALIKE_ROWS).max(0) + 3) / 4)
                    .collect(),
            ),
        ],
    );
    let other = dir.join("other.parquet");
    write_int64_parquet(&other, vec![("x", (0..10).collect())]);
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("skewed", &path).unwrap();
    sabot.register_parquet("other", &other).unwrap();
    sabot
}

fn estimate(sabot: &Sabot, query: &str, operator: &str) -> f64 {
    let plan = sabot.sql(query).unwrap().explain(false).unwrap();
    estimated_rows(&plan, |line| line.contains(operator)).0
}

fn count(sabot: &Sabot, query: &str) -> u64 {
    sabot.sql(query).unwrap().count().unwrap() as u64
}

fn q_error(estimate: f64, actual: u64) -> f64 {
    let actual = actual.max(1) as f64;
    (estimate.max(1.0) / actual).max(actual / estimate.max(1.0))
}

#[test]
fn analyzed_tables_are_estimated_from_their_histograms_and_distinct_counts() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    let range = "SELECT k FROM skewed WHERE v < 100";
    let groups = "SELECT g, count(*) FROM skewed GROUP BY g";
    let (kept, group_count) = (count(&sabot, range), count(&sabot, groups));
    let below_100 = (0..ROWS).filter(|&row| value_of_v(row) < 100).count() as u64;
    assert_eq!(kept, below_100);
    assert_eq!(group_count, 25_001);
    // Before ANALYZE: the footer's bounds and the first sampled values mislead.
    assert!(q_error(estimate(&sabot, range, "Filter:"), kept) > 100.0);
    assert!(q_error(estimate(&sabot, groups, "HashAggregate"), group_count) > 100.0);

    let summary = sabot.sql("ANALYZE skewed").unwrap().collect().unwrap();
    let rows = crate::common::sorted_rows(&summary);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].starts_with("skewed|g|200000|0|") && rows[0].ends_with("|0|25000|64"),
        "{rows:?}"
    );
    assert!(rows[1].starts_with("skewed|k|200000|0|"), "{rows:?}");

    let (range_estimate, group_estimate) = (
        estimate(&sabot, range, "Filter:"),
        estimate(&sabot, groups, "HashAggregate"),
    );
    assert!(q_error(range_estimate, kept) < 1.1, "{range_estimate}");
    assert!(
        q_error(group_estimate, group_count) < 1.1,
        "{group_estimate}"
    );
    assert_eq!(count(&sabot, range), kept);
    assert_eq!(count(&sabot, groups), group_count);
}

#[test]
fn analyze_names_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    let error = |statement: &str| match sabot.sql(statement) {
        Ok(_) => panic!("{statement} was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(error("ANALYZE missing").contains("missing"));
    let unknown_column = error("ANALYZE skewed (nope)");
    assert!(
        unknown_column.contains("no column named nope"),
        "{unknown_column}"
    );
    let schema = std::sync::Arc::new(sabot::arrow::datatypes::Schema::new(vec![
        sabot::arrow::datatypes::Field::new("a", sabot::arrow::datatypes::DataType::Int64, false),
    ]));
    sabot
        .register_batches("in_memory", schema, Vec::new())
        .unwrap();
    let in_memory = error("ANALYZE in_memory");
    assert!(
        in_memory.contains("only tables of Parquet files"),
        "{in_memory}"
    );

    // Bare ANALYZE takes every Parquet table and passes over the rest.
    let every = sabot.sql("ANALYZE").unwrap().collect().unwrap();
    let tables: std::collections::BTreeSet<String> = crate::common::sorted_rows(&every)
        .iter()
        .map(|row| row.split('|').next().unwrap().to_string())
        .collect();
    assert_eq!(tables.into_iter().collect::<Vec<_>>(), ["other", "skewed"]);
}
