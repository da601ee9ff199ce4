//! A common table expression used twice (TPC-H Q15's view: the suppliers whose revenue equals
//! the largest) is planned as one aggregation and run once: the table is scanned once, and the
//! answer is the one each use computed apart gives.

use sabot::Sabot;
use sabot::arrow::array::{Array, AsArray};
use sabot::arrow::datatypes::Int64Type;

use crate::common::write_int64_parquet;

const ROWS: i64 = 50_000;
const KEYS: i64 = 997;

#[test]
fn a_view_used_twice_is_scanned_and_aggregated_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<i64> = (0..ROWS).map(|row| row * 7919 % KEYS).collect();
    let values: Vec<i64> = (0..ROWS).map(|row| row * 104_729 % 1_000).collect();
    let mut totals = vec![0i64; KEYS as usize];
    for (key, value) in keys.iter().zip(&values) {
        totals[*key as usize] += value;
    }
    let largest = *totals.iter().max().unwrap();
    let expected: Vec<i64> = (0..KEYS)
        .filter(|&key| totals[key as usize] == largest)
        .collect();
    let path = dir.path().join("sales.parquet");
    write_int64_parquet(&path, vec![("k", keys), ("v", values)]);

    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("sales", &path).unwrap();
    let scanned_before = sabot.stats().rows_scanned;
    let batches = sabot
        .sql(
            "WITH totals AS (SELECT k, sum(v) AS total FROM sales GROUP BY k) \
             SELECT k, total FROM totals WHERE total = (SELECT max(total) FROM totals) \
             ORDER BY k",
        )
        .unwrap()
        .collect()
        .unwrap();
    let (mut found_keys, mut found_totals) = (Vec::<i64>::new(), Vec::<i64>::new());
    for batch in &batches {
        found_keys.extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
        let total = batch.column(1);
        assert_eq!(total.null_count(), 0);
        found_totals.extend(total.as_primitive::<Int64Type>().values().iter());
    }
    assert_eq!(found_keys, expected);
    assert!(found_totals.iter().all(|&total| total == largest));
    assert_eq!(
        sabot.stats().rows_scanned - scanned_before,
        ROWS as u64,
        "the view's table was scanned more than once"
    );
}
