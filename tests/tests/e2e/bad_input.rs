//! Bad input gets a typed error that names the problem, never a panic.

use std::io::Write;

use sabot::{CsvOptions, Sabot, SabotError};

use crate::common::{tpch_dir, tpch_session};

fn session() -> Sabot {
    Sabot::builder()
        .threads(2)
        .build()
        .expect("start a session")
}

#[test]
fn malformed_sql_shows_the_parser_message() {
    let error = tpch_session()
        .sql("SELEC n_name FROM nation")
        .err()
        .expect("an error");
    match &error {
        SabotError::SqlSyntax { message } => assert!(message.contains("SELEC"), "{message}"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn unknown_table_is_named() {
    let error = tpch_session()
        .sql("SELECT * FROM no_such_table")
        .err()
        .expect("an error");
    assert!(matches!(error, SabotError::Plan { .. }), "{error:?}");
    assert!(error.to_string().contains("no_such_table"), "{error}");
}

#[test]
fn unknown_column_is_named() {
    let error = tpch_session()
        .sql("SELECT no_such_column FROM nation")
        .err()
        .expect("an error");
    assert!(matches!(error, SabotError::Plan { .. }), "{error:?}");
    assert!(error.to_string().contains("no_such_column"), "{error}");
}

#[test]
fn wrong_types_are_a_planning_error() {
    let error = tpch_session()
        .sql("SELECT n_name * 2 FROM nation")
        .err()
        .expect("text times a number is an error");
    assert!(matches!(error, SabotError::Plan { .. }), "{error:?}");
    assert!(error.to_string().contains("Utf8View * Int64"), "{error}");
}

#[test]
fn missing_parquet_file_is_named() {
    let error = session()
        .register_parquet("t", "/no/such/dir/t.parquet")
        .expect_err("an error");
    match error {
        SabotError::FileNotFound { path } => {
            assert_eq!(path.to_str(), Some("/no/such/dir/t.parquet"))
        }
        other => panic!("expected file not found, got {other:?}"),
    }
}

#[test]
fn corrupt_parquet_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"this is not a parquet file at all").unwrap();
    let truncated = dir.path().join("truncated.parquet");
    let nation = std::fs::read(tpch_dir().join("nation.parquet")).unwrap();
    std::fs::write(&truncated, &nation[..nation.len() / 2]).unwrap();

    for path in [garbage, truncated] {
        let error = session()
            .register_parquet("t", &path)
            .expect_err("an error");
        assert!(
            matches!(
                error,
                SabotError::UnreadableFile {
                    format: "Parquet",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(path.to_str().unwrap()),
            "{error}"
        );
    }
}

#[test]
fn ragged_csv_file_is_named_with_its_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ragged.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "a,b\n1,2\n3,4,5\n6,7").unwrap();
    let error = session()
        .register_csv("ragged", &path, CsvOptions::default())
        .expect_err("a row with three fields under a two-column header");
    assert!(
        matches!(error, SabotError::UnreadableFile { format: "CSV", .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(path.to_str().unwrap()) && message.contains("line 3"),
        "{message}"
    );
}

#[test]
fn memory_limit_ends_a_query_with_a_clear_error() {
    let sabot = Sabot::builder()
        .threads(2)
        .memory_limit(256 * 1024)
        .build()
        .unwrap();
    sabot::tpch::register(&sabot, tpch_dir()).unwrap();
    let error = sabot
        .sql("SELECT o_orderkey, count(*) FROM orders JOIN lineitem ON o_orderkey = l_orderkey GROUP BY o_orderkey")
        .and_then(|frame| frame.collect())
        .expect_err("a 256 KiB limit cannot hold the join's hash table");
    assert!(
        matches!(error, SabotError::ResourcesExhausted { .. }),
        "{error:?}"
    );
}

#[test]
fn zero_threads_or_zero_memory_are_rejected() {
    assert!(matches!(
        Sabot::builder().threads(0).build(),
        Err(SabotError::InvalidArgument { .. })
    ));
    assert!(matches!(
        Sabot::builder().memory_limit(0).build(),
        Err(SabotError::InvalidArgument { .. })
    ));
}

#[test]
fn a_shut_down_session_refuses_queries() {
    let sabot = session();
    sabot.shutdown();
    sabot.shutdown();
    assert!(sabot.is_shut_down());
    assert!(matches!(sabot.sql("SELECT 1"), Err(SabotError::ShutDown)));
}
