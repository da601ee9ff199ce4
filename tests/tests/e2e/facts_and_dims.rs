//! The fact and dimension tables two tests share: `facts(k, v)`, `FACTS` rows whose keys spread
//! over `KEYS` values, and `dims(k, tag)`, one row per key, `tag = 7` keeping one key in `TAGS`.

use sabot::{Engine, Sabot};

use crate::common::{sorted_rows, write_int64_parquet};

pub const FACTS: i64 = 100_000;
pub const KEYS: i64 = 5_000;
/// Distinct tags of `dims`; `tag = 7` keeps one key in this many.
pub const TAGS: i64 = 200;

/// Row `row`'s key in `facts`.
pub fn key_of(row: i64) -> i64 {
    row * 7919 % KEYS
}

/// Row `row`'s value in `facts`.
pub fn value_of(row: i64) -> i64 {
    row * 104_729 % 1_000
}

/// Key `key`'s tag in `dims`.
pub fn tag_of(key: i64) -> i64 {
    key * 31 % TAGS
}

/// A 2-thread session with `facts` and `dims` written as Parquet files under `dir`.
pub fn session(dir: &std::path::Path) -> Sabot {
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

/// `query`'s rows on `engine`, sorted.
pub fn rows_on(sabot: &Sabot, query: &str, engine: Engine) -> Vec<String> {
    sorted_rows(
        &sabot
            .sql(query)
            .unwrap()
            .with_engine(engine)
            .collect()
            .unwrap(),
    )
}
