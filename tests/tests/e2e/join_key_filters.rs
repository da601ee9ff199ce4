//! A join that keeps few of its probe rows filters them by key as they leave the scan, before
//! the filters and joins under it in the pipeline work on them: the filter below the join sees
//! only rows whose key the join's table holds. Answers are DataFusion's.

use sabot::Engine;

use crate::common::actual_rows;
use crate::facts_and_dims::{FACTS, KEYS, TAGS, key_of, rows_on, session, tag_of, value_of};

#[test]
fn rows_the_join_cannot_match_are_dropped_before_the_filter_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    let query = "SELECT facts.k, sum(v) AS total FROM facts JOIN dims ON facts.k = dims.k \
                 WHERE dims.tag = 7 AND facts.v > 10 GROUP BY facts.k";
    let sabot_rows = rows_on(&sabot, query, Engine::Sabot);
    assert_eq!(sabot_rows, rows_on(&sabot, query, Engine::DataFusion));
    assert_eq!(sabot_rows.len() as i64, KEYS / TAGS);

    let plan = sabot.sql(query).unwrap().explain(true).unwrap();
    let filtered = actual_rows(&plan, |line| line.contains("Filter: v@"));
    let matching = (0..FACTS)
        .filter(|&row| tag_of(key_of(row)) == 7 && value_of(row) > 10)
        .count() as u64;
    // Without the key filter the value filter would pass 99% of the 100,000 rows.
    assert_eq!(filtered, matching, "{plan}");
    // The join still counts its own output.
    let joined = actual_rows(&plan, |line| line.contains("HashJoin: Inner"));
    assert_eq!(joined, matching, "{plan}");
}

#[test]
fn a_semi_join_built_on_its_small_left_side_filters_the_probe_rows_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    // `dims` filtered to one tag is the small side: the semi join builds on it and marks the
    // keys the large probe side (`facts`) has, then emits the marked `dims` rows.
    let query = "SELECT count(*) AS keys FROM dims WHERE dims.tag = 7 AND EXISTS \
                 (SELECT 1 FROM facts WHERE facts.k = dims.k AND facts.v > 10)";
    let sabot_rows = rows_on(&sabot, query, Engine::Sabot);
    assert_eq!(sabot_rows, rows_on(&sabot, query, Engine::DataFusion));

    let plan = sabot.sql(query).unwrap().explain(true).unwrap();
    assert!(
        plan.lines()
            .any(|line| line.contains("HashJoin: LeftSemi") && line.contains("build=left")),
        "{plan}"
    );
    let filtered = actual_rows(&plan, |line| line.contains("Filter: v@"));
    let matching = (0..FACTS)
        .filter(|&row| tag_of(key_of(row)) == 7 && value_of(row) > 10)
        .count() as u64;
    // Without the key filter the value filter would pass 99% of the 100,000 rows.
    assert_eq!(filtered, matching, "{plan}");
}
