//! The planner, not the query text, orders joins: each of TPC-H Q2, Q5, Q7, Q8, Q9 and Q21 with
//! its FROM lists reversed, rotated, or interleaved gets the same joins in the same order (the
//! join and scan lines of its plan) and still the reference answer. (DataFusion's own plans
//! follow the FROM order, cross joins included.)

use sabot::Engine;
use sabot::tpch::answers::ReferenceAnswer;

use crate::common::{SCALE_FACTOR, repository_root, tpch_session};

/// `sql` with every FROM list of plain tables (one per line, up to a `where` line) rearranged
/// by `rearrange`.
fn with_from_lists(sql: &str, rearrange: impl Fn(&mut Vec<String>)) -> String {
    let lines: Vec<&str> = sql.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        out.push(lines[index].to_string());
        if lines[index].trim().eq_ignore_ascii_case("from") {
            let plain = |line: &str| {
                let item = line.trim().trim_end_matches(',');
                !item.is_empty()
                    && item != "where"
                    && item.split(' ').count() <= 2
                    && item
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
            };
            let first = index + 1;
            let mut end = first;
            while end < lines.len() && plain(lines[end]) {
                end += 1;
            }
            if end - first >= 2 && lines.get(end).is_some_and(|line| line.trim() == "where") {
                let indent: String = lines[first]
                    .chars()
                    .take_while(|c| c.is_whitespace())
                    .collect();
                let mut items: Vec<String> = lines[first..end]
                    .iter()
                    .map(|line| line.trim().trim_end_matches(',').to_string())
                    .collect();
                rearrange(&mut items);
                let count = items.len();
                for (position, item) in items.into_iter().enumerate() {
                    let comma = if position + 1 < count { "," } else { "" };
                    out.push(format!("{indent}{item}{comma}"));
                }
                index = end;
                continue;
            }
        }
        index += 1;
    }
    out.join("\n")
}

/// The plan's join and scan lines, column positions left out.
fn join_lines(sql: &str) -> Vec<String> {
    let explained = tpch_session()
        .sql(sql)
        .unwrap()
        .with_engine(Engine::Sabot)
        .explain(false)
        .unwrap();
    let physical = explained
        .split("== Physical plan")
        .nth(1)
        .expect("a physical plan section");
    physical
        .lines()
        .filter(|line| line.contains("HashJoin") || line.contains("Scan"))
        .map(|line| {
            let mut kept = String::new();
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '@' {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                } else {
                    kept.push(c);
                }
            }
            kept
        })
        .collect()
}

fn check(query: usize) {
    let original = sabot::tpch::query(query).unwrap();
    let expected_plan = join_lines(original);
    assert!(
        expected_plan
            .iter()
            .filter(|line| line.contains("HashJoin"))
            .count()
            >= 3,
        "Q{query}: {expected_plan:#?}"
    );
    let answers = repository_root()
        .join("tests/tpch/answers")
        .join(format!("sf{SCALE_FACTOR}"));
    let expected = ReferenceAnswer::for_query(&answers, query).unwrap();
    let variants = [
        with_from_lists(original, |items| items.reverse()),
        with_from_lists(original, |items| items.rotate_left(2)),
        // Every other table first: relations without a key between them meet early.
        with_from_lists(original, |items| {
            let odd_first: Vec<String> = (1..items.len())
                .step_by(2)
                .chain((0..items.len()).step_by(2))
                .map(|index| items[index].clone())
                .collect();
            *items = odd_first;
        }),
    ];
    for (variant, sql) in variants.iter().enumerate() {
        assert_ne!(
            sql.trim_end(),
            original.trim_end(),
            "Q{query}: the FROM list was rearranged"
        );
        assert_eq!(
            join_lines(sql),
            expected_plan,
            "Q{query} variant {variant}:\n{sql}"
        );
        let frame = tpch_session().sql(sql).unwrap().with_engine(Engine::Sabot);
        let schema = frame.schema();
        let batches = frame.execute().unwrap().batches;
        if let Some(mismatch) = expected.mismatch(&schema, &batches).unwrap() {
            panic!("Q{query} variant {variant}: {mismatch}");
        }
    }
}

#[test]
fn q02_join_order_ignores_the_from_order() {
    check(2);
}

#[test]
fn q05_join_order_ignores_the_from_order() {
    check(5);
}

#[test]
fn q07_join_order_ignores_the_from_order() {
    check(7);
}

#[test]
fn q08_join_order_ignores_the_from_order() {
    check(8);
}

#[test]
fn q09_join_order_ignores_the_from_order() {
    check(9);
}

#[test]
fn q21_join_order_ignores_the_from_order() {
    check(21);
}

/// Leading spaces of a plan line: its depth in the plan.
fn depth(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[test]
fn q18_semi_join_filters_orders_before_the_inner_joins() {
    let lines = join_lines(sabot::tpch::query(18).unwrap());
    let semi = lines
        .iter()
        .position(|line| line.contains("HashJoin: LeftSemi"))
        .unwrap_or_else(|| panic!("no semi join: {lines:#?}"));
    assert!(
        lines[semi + 1].contains("orders"),
        "the semi join's first input is not the orders scan: {lines:#?}"
    );
    let inner_depths: Vec<usize> = lines
        .iter()
        .filter(|line| line.contains("HashJoin: Inner"))
        .map(|line| depth(line))
        .collect();
    assert_eq!(inner_depths.len(), 2, "{lines:#?}");
    assert!(
        inner_depths
            .iter()
            .all(|&inner| inner < depth(&lines[semi])),
        "the semi join is not below both inner joins: {lines:#?}"
    );
}

#[test]
fn joins_without_equality_keys_are_nested_loops_over_the_smaller_side() {
    let sabot = tpch_session();
    let query = "SELECT count(*) FROM nation, region WHERE n_regionkey < r_regionkey";
    let explained = sabot.sql(query).unwrap().explain(false).unwrap();
    let plan = explained
        .split("Physical plan")
        .nth(1)
        .unwrap_or_else(|| panic!("no physical plan in {explained}"));
    let join = plan
        .lines()
        .find(|line| line.contains("Join:"))
        .unwrap_or_else(|| panic!("no join in {plan}"));
    // `region` (5 rows) is held and every `nation` row (25) meets each of its rows.
    assert!(join.contains("NestedLoopJoin: Inner, on=[]"), "{join}");
    let build_side = if join.contains("build=right") { 2 } else { 1 };
    let scans: Vec<&str> = plan
        .lines()
        .filter(|line| line.contains("ParquetScan"))
        .collect();
    assert!(scans[build_side - 1].contains("region.parquet"), "{plan}");
    let equi = "SELECT count(*) FROM nation, region WHERE n_regionkey = r_regionkey";
    let equi_plan = sabot.sql(equi).unwrap().explain(false).unwrap();
    assert!(equi_plan.contains("HashJoin: Inner"), "{equi_plan}");
    let count = |sql: &str, engine| {
        crate::common::sorted_rows(
            &sabot
                .sql(sql)
                .unwrap()
                .with_engine(engine)
                .collect()
                .unwrap(),
        )
    };
    assert_eq!(
        count(query, Engine::Sabot),
        count(query, Engine::DataFusion)
    );
}
