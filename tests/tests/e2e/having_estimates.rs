//! A `HAVING` filter's row estimate is measured on a sample of the aggregation's groups when the
//! table is clustered by the group key, so its rare groups are estimated near their real number.

use sabot::Sabot;

use crate::common::{estimated_rows, write_int64_parquet};

const ORDERS: i64 = 50_000;
const THRESHOLD: i64 = 240;

/// Lines of `ORDERS` orders, 1 to 7 lines each, written in order-key order (as TPC-H writes
/// `lineitem`), with pseudo-random quantities from 1 to 50; and the number of orders whose
/// quantities add up to more than `THRESHOLD`.
fn clustered_lines(path: &std::path::Path) -> usize {
    let (mut keys, mut quantities) = (Vec::new(), Vec::new());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |modulus: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % modulus) as i64
    };
    let mut heavy = 0;
    for order in 0..ORDERS {
        let lines = 1 + next(7);
        let mut total = 0;
        for _ in 0..lines {
            let quantity = 1 + next(50);
            total += quantity;
            keys.push(order);
            quantities.push(quantity);
        }
        heavy += usize::from(total > THRESHOLD);
    }
    write_int64_parquet(path, vec![("k", keys), ("q", quantities)]);
    heavy
}

#[test]
fn rare_having_groups_are_estimated_from_sampled_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.parquet");
    let heavy = clustered_lines(&path);
    // Rare enough that a guessed selectivity would be far off: under 1% of the orders.
    assert!((20..500).contains(&heavy), "{heavy} heavy orders");
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("lines", &path).unwrap();
    let query = format!(
        "SELECT count(*) FROM lines WHERE k IN \
         (SELECT k FROM lines GROUP BY k HAVING sum(q) > {THRESHOLD})"
    );
    let plan = sabot.sql(&query).unwrap().explain(false).unwrap();
    let (estimate, having) = estimated_rows(&plan, |line| {
        line.contains("Filter:") && line.contains("sum(lines.q)")
    });
    let q_error = (estimate / heavy as f64).max(heavy as f64 / estimate);
    assert!(
        q_error < 3.0,
        "{heavy} heavy orders, estimated {estimate} (q-error {q_error}): {having}"
    );
    // The semi join keeps the lines of those orders.
    let executed = sabot.sql(&query).unwrap().execute().unwrap();
    assert_eq!(
        executed
            .estimates
            .iter()
            .filter(|estimate| estimate.operator == "HashJoin LeftSemi")
            .count(),
        1
    );
}
