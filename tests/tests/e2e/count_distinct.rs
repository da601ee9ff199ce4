//! `COUNT(DISTINCT …)` per group over an input where nearly every (group, value) pair is new:
//! its distinct step is estimated to make a group of nearly every row, so it aggregates into the
//! tables its tasks share from the first batch on. The counts must match a plain count.

use std::collections::HashSet;

use sabot::Sabot;
use sabot::arrow::array::AsArray;
use sabot::arrow::datatypes::Int64Type;

use crate::common::write_int64_parquet;

const ROWS: i64 = 300_000;
const GROUPS: i64 = 1_000;

#[test]
fn count_distinct_over_nearly_distinct_pairs_matches_a_plain_count() {
    let dir = tempfile::tempdir().unwrap();
    let groups: Vec<i64> = (0..ROWS).map(|row| row * 7 % GROUPS).collect();
    // The last 6,000 rows repeat the first 6,000 pairs: the distinct step must drop them.
    let values: Vec<i64> = (0..ROWS)
        .map(|row| row * 48_271 % (ROWS - ROWS / 50))
        .collect();
    let mut pairs = HashSet::new();
    for (group, value) in groups.iter().zip(&values) {
        pairs.insert((*group, *value));
    }
    let mut expected = vec![0i64; GROUPS as usize];
    for (group, _) in &pairs {
        expected[*group as usize] += 1;
    }
    let path = dir.path().join("events.parquet");
    write_int64_parquet(&path, vec![("g", groups), ("v", values)]);

    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("events", &path).unwrap();
    let batches = sabot
        .sql("SELECT g, count(DISTINCT v) AS n FROM events GROUP BY g ORDER BY g")
        .unwrap()
        .collect()
        .unwrap();
    let mut found = Vec::new();
    for batch in &batches {
        let keys = batch.column(0).as_primitive::<Int64Type>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        found.extend(
            keys.values()
                .iter()
                .copied()
                .zip(counts.values().iter().copied()),
        );
    }
    let expected: Vec<(i64, i64)> = (0..GROUPS).zip(expected).collect();
    assert_eq!(found, expected);
}
