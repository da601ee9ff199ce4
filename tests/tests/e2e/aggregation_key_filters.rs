//! An aggregation joined on its group key with a selectively filtered table is grouped only
//! for that table's keys (TPC-H Q17's correlated average): the answers are DataFusion's, and
//! the aggregation makes only the groups that can match. Where the join keeps unmatched groups
//! (a left join on the aggregation's side) every group is still made.

use sabot::{Engine, Sabot};

use crate::common::actual_rows;
use crate::facts_and_dims::{KEYS, TAGS, rows_on, session};

/// The output rows of the first aggregation grouped by `facts.k` in `query`'s analyzed plan.
fn groups_made(sabot: &Sabot, query: &str) -> u64 {
    let plan = sabot.sql(query).unwrap().explain(true).unwrap();
    actual_rows(&plan, |line| line.contains("HashAggregate: groups=[k@"))
}

#[test]
fn aggregations_are_grouped_only_for_the_keys_a_join_can_match() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    let tagged_keys = (0..KEYS).filter(|key| key * 31 % TAGS == 7).count() as u64;
    let queries = [
        "SELECT sum(f.v) FROM facts f JOIN dims d ON f.k = d.k \
         WHERE d.tag = 7 AND f.v < (SELECT avg(f2.v) FROM facts f2 WHERE f2.k = d.k)",
        "SELECT t.k, t.total FROM (SELECT k, sum(v) AS total FROM facts GROUP BY k) t \
         JOIN dims d ON t.k = d.k WHERE d.tag = 7",
        "SELECT d.k FROM dims d WHERE d.tag = 7 AND d.k IN \
         (SELECT k FROM facts GROUP BY k HAVING sum(v) > 9000)",
    ];
    for query in queries {
        let expected = rows_on(&sabot, query, Engine::DataFusion);
        assert!(!expected.is_empty(), "{query}");
        assert_eq!(rows_on(&sabot, query, Engine::Sabot), expected, "{query}");
        assert_eq!(groups_made(&sabot, query), tagged_keys, "{query}");
    }
}

#[test]
fn groups_a_join_keeps_unmatched_are_all_made() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    let queries = [
        "SELECT t.k, t.total, d.tag FROM (SELECT k, sum(v) AS total FROM facts GROUP BY k) t \
         LEFT JOIN (SELECT * FROM dims WHERE tag = 7) d ON t.k = d.k",
        "SELECT count(*) FROM (SELECT k, sum(v) AS total FROM facts GROUP BY k) t \
         WHERE t.k NOT IN (SELECT k FROM dims WHERE tag = 7)",
    ];
    for query in queries {
        let expected = rows_on(&sabot, query, Engine::DataFusion);
        assert_eq!(rows_on(&sabot, query, Engine::Sabot), expected, "{query}");
    }
    assert_eq!(groups_made(&sabot, queries[0]), KEYS as u64);
}
