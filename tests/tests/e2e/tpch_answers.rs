//! Every TPC-H query on every engine gives the reference answer (DuckDB's, on the same data):
//! same columns, same rows in the same order, numbers within 1e-6, text and dates exact (the
//! check is `sabot::tpch::answers`, which `sabot bench tpch --answers` uses too). On Sabot's
//! engine no part of any query may fall back to DataFusion.

use sabot::Engine;
use sabot::tpch::answers::ReferenceAnswer;

use crate::common::{SCALE_FACTOR, repository_root, tpch_session};

fn answers_dir() -> std::path::PathBuf {
    repository_root()
        .join("tests/tpch/answers")
        .join(format!("sf{SCALE_FACTOR}"))
}

fn check(query: usize, engine: Engine) {
    let sabot = tpch_session();
    let sql = sabot::tpch::query(query).unwrap();
    let frame = sabot
        .sql(sql)
        .unwrap_or_else(|error| panic!("Q{query} plan: {error}"))
        .with_engine(engine);
    let schema = frame.schema();
    let executed = frame
        .execute()
        .unwrap_or_else(|error| panic!("Q{query} on {engine}: {error}"));
    assert!(
        executed.fallbacks.is_empty(),
        "Q{query} on {engine} fell back to DataFusion: {:?}",
        executed.fallbacks
    );
    let expected = ReferenceAnswer::for_query(&answers_dir(), query)
        .unwrap_or_else(|error| panic!("Q{query} reference answer: {error}"));
    if let Some(mismatch) = expected
        .mismatch(&schema, &executed.batches)
        .unwrap_or_else(|error| panic!("Q{query} on {engine}: {error}"))
    {
        panic!("Q{query} on {engine}: {mismatch}");
    }
}

macro_rules! answer_tests {
    ($($query:literal => $on_sabot:ident, $on_datafusion:ident;)*) => {
        $(
            #[test]
            fn $on_sabot() {
                check($query, Engine::Sabot);
            }

            #[test]
            fn $on_datafusion() {
                check($query, Engine::DataFusion);
            }
        )*
    };
}

answer_tests! {
    1 => q01_sabot, q01_datafusion;
    2 => q02_sabot, q02_datafusion;
    3 => q03_sabot, q03_datafusion;
    4 => q04_sabot, q04_datafusion;
    5 => q05_sabot, q05_datafusion;
    6 => q06_sabot, q06_datafusion;
    7 => q07_sabot, q07_datafusion;
    8 => q08_sabot, q08_datafusion;
    9 => q09_sabot, q09_datafusion;
    10 => q10_sabot, q10_datafusion;
    11 => q11_sabot, q11_datafusion;
    12 => q12_sabot, q12_datafusion;
    13 => q13_sabot, q13_datafusion;
    14 => q14_sabot, q14_datafusion;
    15 => q15_sabot, q15_datafusion;
    16 => q16_sabot, q16_datafusion;
    17 => q17_sabot, q17_datafusion;
    18 => q18_sabot, q18_datafusion;
    19 => q19_sabot, q19_datafusion;
    20 => q20_sabot, q20_datafusion;
    21 => q21_sabot, q21_datafusion;
    22 => q22_sabot, q22_datafusion;
}
