//! A join whose two sides' filters are correlated through its key (orders placed before a day,
//! their lines shipped after it, as in TPC-H Q3) is estimated near its real size: the planner
//! measures the correlation on samples of both tables, where taking the filters as independent
//! is off several times over.

use std::path::Path;

use sabot::Sabot;

use crate::common::{estimated_rows, write_int64_parquet};

const ORDERS: i64 = 40_000;
const DAY: i64 = 500;

/// Orders (key, order day 0..1000) and their 1 to 7 lines (key, ship day 1 to 100 days after
/// the order), both in key order; returns (lines, orders before `DAY`, lines shipped after
/// it, joined lines of both).
fn orders_and_lines(dir: &Path) -> (usize, usize, usize, usize) {
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut next = |modulus: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % modulus) as i64
    };
    let (mut order_keys, mut order_days) = (Vec::new(), Vec::new());
    let (mut line_keys, mut ship_days) = (Vec::new(), Vec::new());
    let (mut early_orders, mut late_lines, mut joined) = (0, 0, 0);
    for key in 0..ORDERS {
        let day = next(1000);
        order_keys.push(key);
        order_days.push(day);
        early_orders += usize::from(day < DAY);
        for _ in 0..1 + next(7) {
            let ship = day + 1 + next(100);
            line_keys.push(key);
            ship_days.push(ship);
            late_lines += usize::from(ship > DAY);
            joined += usize::from(ship > DAY && day < DAY);
        }
    }
    let lines = line_keys.len();
    write_int64_parquet(
        &dir.join("orders.parquet"),
        vec![("k", order_keys), ("d", order_days)],
    );
    write_int64_parquet(
        &dir.join("lines.parquet"),
        vec![("k", line_keys), ("s", ship_days)],
    );
    (lines, early_orders, late_lines, joined)
}

#[test]
fn correlated_filters_across_a_join_key_are_estimated_from_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, early_orders, late_lines, joined) = orders_and_lines(dir.path());
    // Independent filters would predict this many joined lines: several times too many.
    let independent = late_lines as f64 * early_orders as f64 / ORDERS as f64;
    assert!(
        independent > 3.0 * joined as f64,
        "{independent} vs {joined}"
    );
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot
        .register_parquet("orders", dir.path().join("orders.parquet"))
        .unwrap();
    sabot
        .register_parquet("lines", dir.path().join("lines.parquet"))
        .unwrap();
    let query = format!(
        "SELECT count(*) FROM lines JOIN orders ON lines.k = orders.k \
         WHERE orders.d < {DAY} AND lines.s > {DAY}"
    );
    let plan = sabot.sql(&query).unwrap().explain(false).unwrap();
    let (estimate, join) = estimated_rows(&plan, |line| line.contains("HashJoin: Inner"));
    let q_error = (estimate / joined as f64).max(joined as f64 / estimate);
    assert!(
        q_error < 2.0,
        "{joined} of {lines} lines join, estimated {estimate} (q-error {q_error}): {join}"
    );
}
