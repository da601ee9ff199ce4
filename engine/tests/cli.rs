//! The `sabot` binary: help text, exit statuses, output formats, data generation and the
//! benchmark runner, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

fn sabot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sabot"))
        .args(args)
        .output()
        .expect("run the sabot binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_csv(dir: &Path) -> String {
    let path = dir.join("trips.csv");
    std::fs::write(
        &path,
        "city,day,km\nLyon,2024-03-01,12.5\nNantes,2024-03-02,7.25\nLyon,2024-03-03,3\n",
    )
    .unwrap();
    format!("trips={}", path.display())
}

#[test]
fn help_lists_every_command() {
    let output = sabot(&["--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    for command in [
        "sql",
        "tpch",
        "bench",
        "stream",
        "coordinator",
        "worker",
        "status",
    ] {
        assert!(help.contains(command), "{help}");
    }
    let bench_help = stdout(&sabot(&["bench", "tpch", "--help"]));
    for flag in ["--sf", "--queries", "--iterations", "--engine", "--json"] {
        assert!(bench_help.contains(flag), "{bench_help}");
    }
}

#[test]
fn unknown_flag_is_named_and_fails() {
    let output = sabot(&["sql", "--no-such-flag", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--no-such-flag"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn malformed_sql_fails_with_the_parser_message() {
    let output = sabot(&["sql", "SELEC 1"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("SQL syntax error") && message.contains("SELEC"),
        "{message}"
    );
}

#[test]
fn missing_table_file_is_named() {
    let output = sabot(&[
        "sql",
        "--table",
        "t=/no/such/file.parquet",
        "SELECT * FROM t",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/no/such/file.parquet"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn csv_output_has_a_header_and_iso_dates() {
    let dir = tempfile::tempdir().unwrap();
    let table = write_csv(dir.path());
    let output = sabot(&[
        "sql",
        "--table",
        &table,
        "--format",
        "csv",
        "SELECT city, min(day) AS first_day, sum(km) AS km FROM trips GROUP BY city ORDER BY city",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "city,first_day,km\nLyon,2024-03-01,15.5\nNantes,2024-03-02,7.25\n"
    );
}

#[test]
fn json_and_table_output_from_a_query_file() {
    let dir = tempfile::tempdir().unwrap();
    let table = write_csv(dir.path());
    let query = dir.path().join("query.sql");
    std::fs::write(&query, "SELECT count(*) AS trips FROM trips WHERE km > 5").unwrap();
    let query = query.to_str().unwrap();

    let json = sabot(&["sql", "--table", &table, "--format", "json", "-f", query]);
    assert!(json.status.success(), "{}", stderr(&json));
    assert_eq!(stdout(&json).trim(), r#"[{"trips":2}]"#);

    let text = sabot(&[
        "sql",
        "--table",
        &table,
        "--engine",
        "datafusion",
        "-f",
        query,
    ]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(stdout(&text).contains("| trips |"), "{}", stdout(&text));
}

#[test]
fn scale_factor_out_of_range_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let output = sabot(&[
        "tpch",
        "gen",
        "--sf",
        "1000",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("scale factor 1000"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bench_generates_data_once_and_compares_two_engines() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let json = dir.path().join("results.json");
    let args = [
        "--data-dir",
        data_dir.to_str().unwrap(),
        "bench",
        "tpch",
        "--sf",
        "0.01",
        "--queries",
        "1,6",
        "--iterations",
        "1",
        "--engine",
        "sabot,datafusion",
        "--json",
        json.to_str().unwrap(),
    ];
    let output = sabot(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.contains("sabot/datafusion"), "{table}");
    assert!(table.lines().any(|line| line.starts_with("Q6 ")), "{table}");
    assert!(
        table.lines().any(|line| line.starts_with("total")),
        "{table}"
    );
    assert!(data_dir.join("tpch/sf0.01/lineitem.parquet").is_file());

    let results = std::fs::read_to_string(&json).unwrap();
    assert!(results.contains("\"engine\": \"datafusion\""), "{results}");
    assert_eq!(results.matches("\"median_s\"").count(), 4, "{results}");

    let again = sabot(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("using cached TPC-H SF 0.01 data"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn sql_explain_shows_the_chosen_engines_plan() {
    let dir = tempfile::tempdir().unwrap();
    let table = write_csv(dir.path());
    let query = "EXPLAIN SELECT city, sum(km) FROM trips GROUP BY city";
    let sabot_plan = stdout(&sabot(&[
        "sql", "--table", &table, "--format", "csv", query,
    ]));
    assert!(
        sabot_plan.contains("engine: sabot") && sabot_plan.contains("HashAggregate"),
        "{sabot_plan}"
    );
    let analyzed = stdout(&sabot(&[
        "sql",
        "--table",
        &table,
        "--format",
        "csv",
        &format!("EXPLAIN ANALYZE {}", &query[8..]),
    ]));
    assert!(analyzed.contains("rows=2,"), "{analyzed}");
    let datafusion_plan = stdout(&sabot(&[
        "sql",
        "--table",
        &table,
        "--engine",
        "datafusion",
        "--format",
        "csv",
        query,
    ]));
    assert!(
        datafusion_plan.contains("AggregateExec"),
        "{datafusion_plan}"
    );
}

#[test]
fn stream_writes_windows_exactly_once_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let query = dir.path().join("q.sql");
    std::fs::write(
        &query,
        "SELECT tumble(date_time, INTERVAL '1' SECOND) AS second, count(*) AS bids \
         FROM bid GROUP BY tumble(date_time, INTERVAL '1' SECOND)",
    )
    .unwrap();
    let out = dir.path().join("out");
    let checkpoints = dir.path().join("checkpoints");
    let args = [
        "stream",
        "--sql",
        query.to_str().unwrap(),
        "--events",
        "100000",
        "--sink",
        out.to_str().unwrap(),
        "--format",
        "jsonl",
        "--checkpoint-dir",
        checkpoints.to_str().unwrap(),
    ];
    let first = sabot(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let lines = |dir: &Path| -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "jsonl")
            {
                lines.extend(
                    std::fs::read_to_string(path)
                        .unwrap()
                        .lines()
                        .map(str::to_string),
                );
            }
        }
        lines.sort();
        lines
    };
    let written = lines(&out);
    // 100,000 events at 10,000 a second, 46 of every 50 a bid: 92,000 bids over one-second
    // windows (times are rounded to milliseconds, so the last few fall in second 10).
    let bids: i64 = written
        .iter()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["bids"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(bids, 92_000, "{written:?}");
    assert_eq!(written.len(), 11, "{written:?}");
    let again = sabot(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("resumed from checkpoint"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        lines(&out),
        written,
        "a finished stream adds nothing when run again"
    );
}

#[test]
fn stream_refuses_an_unwindowed_aggregation_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let query = dir.path().join("q.sql");
    std::fs::write(&query, "SELECT count(*) FROM bid").unwrap();
    let output = sabot(&[
        "stream",
        "--sql",
        query.to_str().unwrap(),
        "--events",
        "1000",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("without a window"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bench_nexmark_reports_events_per_core_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("nexmark.json");
    let output = sabot(&[
        "bench",
        "nexmark",
        "--events",
        "50000",
        "--queries",
        "q0,q5",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("events/s/core"),
        "{}",
        stdout(&output)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let queries = report["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    for (query, name) in queries.iter().zip(["q0", "q5"]) {
        assert_eq!(query["name"], name);
        // The queries read bids: 46 of every 50 events.
        assert_eq!(query["events"], 46_000);
        assert_eq!(query["cores"], 1);
        assert!(query["seconds"].as_f64().unwrap() > 0.0);
        assert!(query["events_per_s_per_core"].as_f64().unwrap() > 0.0);
    }
    let unknown = sabot(&["bench", "nexmark", "--events", "1000", "--queries", "q99"]);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("q99"), "{}", stderr(&unknown));
}

#[test]
fn bench_kv_writes_every_workload_for_both_stores_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("kv.json");
    let output = sabot(&[
        "bench",
        "kv",
        "--keys",
        "3000",
        "--io-uring",
        "off",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["io_uring"], false);
    let names: Vec<&str> = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|workload| {
            assert!(workload["sabot_ops_per_s"].as_f64().unwrap() > 0.0);
            assert!(workload["fjall_ops_per_s"].as_f64().unwrap() > 0.0);
            workload["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "fill",
            "read",
            "read_missing",
            "scan",
            "synced_writes",
            "fill_compact"
        ]
    );
    let bad = sabot(&["bench", "kv", "--io-uring", "maybe"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("maybe"), "{}", stderr(&bad));
}

#[test]
fn sql_runs_several_statements_in_turn_and_analyze_prints_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpch");
    let data = data.to_str().unwrap();
    assert!(
        sabot(&["tpch", "gen", "--sf", "0.01", "--out", data])
            .status
            .success()
    );
    let output = sabot(&[
        "sql",
        "--tpch",
        data,
        "--format",
        "csv",
        "ANALYZE nation (n_nationkey, n_name); SELECT count(*) AS nations FROM nation",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed.contains("nation,n_nationkey,25,0,25,0,24,")
            && printed.contains("nation,n_name,25,0,25,,,\n")
            && printed.contains("nations\n25\n"),
        "{printed}"
    );
    let refused = sabot(&["sql", "--tpch", data, "ANALYZE nation (nope)"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no column named nope"),
        "{}",
        stderr(&refused)
    );
}
