//! A join that keeps few of its probe rows filters them by key as they leave the scan, before
//! the filters and joins under it in the pipeline work on them: the filter below the join sees
//! only rows whose key the join's table holds. Answers are DataFusion's.

use sabot::{Engine, Sabot};

use crate::common::{actual_rows, sorted_rows, write_int64_parquet};

const FACTS: i64 = 100_000;
const KEYS: i64 = 5_000;
/// Distinct tags of `dims`; `tag = 7` keeps one key in this many.
const TAGS: i64 = 200;

fn key_of(row: i64) -> i64 {
    row * 7919 % KEYS
}

fn value_of(row: i64) -> i64 {
    row * 104_729 % 1_000
}

fn tag_of(key: i64) -> i64 {
    key * 31 % TAGS
}

fn session(dir: &std::path::Path) -> Sabot {
    let facts = dir.join("facts.parquet");
    let dims = dir.join("dims.parquet");
    write_int64_parquet(
        &facts,
        vec![
            ("k", (0..FACTS).map(key_of).collect()),
            ("v", (0..FACTS).map(value_of).collect()),
        ],
    );
    write_int64_parquet(
        &dims,
        vec![
            ("k", (0..KEYS).collect()),
            ("tag", (0..KEYS).map(tag_of).collect()),
        ],
    );
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("facts", &facts).unwrap();
    sabot.register_parquet("dims", &dims).unwrap();
    sabot
}

#[test]
fn rows_the_join_cannot_match_are_dropped_before_the_filter_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let sabot = session(dir.path());
    let query = "SELECT facts.k, sum(v) AS total FROM facts JOIN dims ON facts.k = dims.k \
                 WHERE dims.tag = 7 AND facts.v > 10 GROUP BY facts.k";
    let rows = |engine| {
        sorted_rows(
            &sabot
                .sql(query)
                .unwrap()
                .with_engine(engine)
                .collect()
                .unwrap(),
        )
    };
    assert_eq!(rows(Engine::Sabot), rows(Engine::DataFusion));
    assert_eq!(rows(Engine::Sabot).len() as i64, KEYS / TAGS);

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
