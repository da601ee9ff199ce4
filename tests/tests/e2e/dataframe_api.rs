//! The DataFrame builder API, in-memory and CSV tables, explain and session statistics.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sabot::expr::{asc, avg, col, count, desc, lit, sum};
use sabot::{CsvOptions, Engine, JoinType, Sabot};

fn session() -> Sabot {
    let sabot = Sabot::builder()
        .threads(2)
        .build()
        .expect("start a session");
    let employees = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("dept", DataType::Utf8, false),
        Field::new("salary", DataType::Float64, false),
    ]));
    let first = RecordBatch::try_new(
        employees.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["eng", "eng", "ops"])),
            Arc::new(Float64Array::from(vec![100.0, 120.0, 80.0])),
        ],
    )
    .unwrap();
    let second = RecordBatch::try_new(
        employees.clone(),
        vec![
            Arc::new(Int64Array::from(vec![4, 5])),
            Arc::new(StringArray::from(vec!["sales", "eng"])),
            Arc::new(Float64Array::from(vec![90.0, 110.0])),
        ],
    )
    .unwrap();
    sabot
        .register_batches("employees", employees, vec![first, second])
        .unwrap();

    let departments = Arc::new(Schema::new(vec![
        Field::new("dept", DataType::Utf8, false),
        Field::new("floor", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        departments.clone(),
        vec![
            Arc::new(StringArray::from(vec!["eng", "ops", "hr"])),
            Arc::new(Int64Array::from(vec![3, 1, 2])),
        ],
    )
    .unwrap();
    sabot
        .register_batches("departments", departments, vec![batch])
        .unwrap();
    sabot
}

/// Every column of `query`'s result on `engine`, as strings.
fn columns_on(sabot: &Sabot, query: &str, engine: Engine) -> Vec<Vec<String>> {
    let batches = sabot
        .sql(query)
        .unwrap()
        .with_engine(engine)
        .collect()
        .unwrap();
    (0..batches[0].num_columns())
        .map(|column| strings(&batches, column))
        .collect()
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|batch| {
            let array = arrow::compute::cast(batch.column(column), &DataType::Utf8).unwrap();
            let array = array
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..array.len())
                .map(|row| {
                    if array.is_null(row) {
                        "null".to_string()
                    } else {
                        array.value(row).to_string()
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn filter_select_and_order() {
    let batches = session()
        .table("employees")
        .unwrap()
        .filter(col("salary").gt_eq(lit(100.0)))
        .unwrap()
        .select([col("id"), col("salary")])
        .unwrap()
        .order_by([desc(col("salary"))])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&batches, 0), ["2", "5", "1"]);
}

#[test]
fn with_column_computes_and_replaces() {
    let frame = session()
        .table("employees")
        .unwrap()
        .with_column("bonus", col("salary") * lit(0.1))
        .unwrap()
        .with_column("salary", col("salary") + col("bonus"))
        .unwrap()
        .order_by([asc(col("id"))])
        .unwrap();
    let names: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    assert_eq!(names, ["id", "dept", "salary", "bonus"]);
    let batches = frame
        .select_columns(&["salary"])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        strings(&batches, 0),
        ["110.0", "132.0", "88.0", "99.0", "121.0"]
    );
}

#[test]
fn group_by_aggregates() {
    let batches = session()
        .table("employees")
        .unwrap()
        .group_by([col("dept")])
        .agg([
            sum(col("salary")).alias("total"),
            count(col("id")).alias("people"),
            avg(col("salary")).alias("mean"),
        ])
        .unwrap()
        .order_by([asc(col("dept"))])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&batches, 0), ["eng", "ops", "sales"]);
    assert_eq!(strings(&batches, 1), ["330.0", "80.0", "90.0"]);
    assert_eq!(strings(&batches, 2), ["3", "1", "1"]);
    assert_eq!(strings(&batches, 3), ["110.0", "80.0", "90.0"]);
}

#[test]
fn join_on_a_shared_column_keeps_one_key() {
    let sabot = session();
    let employees = sabot.table("employees").unwrap();
    let departments = sabot.table("departments").unwrap();
    let joined = employees
        .join(departments, "dept", JoinType::Inner)
        .unwrap();
    let names: Vec<String> = joined
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    assert_eq!(names, ["dept", "id", "salary", "floor"]);
    let batches = joined
        .order_by([asc(col("id"))])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&batches, 1), ["1", "2", "3", "5"]);
    assert_eq!(strings(&batches, 3), ["3", "3", "1", "3"]);
}

#[test]
fn outer_semi_and_anti_joins() {
    let sabot = session();
    let employees = || sabot.table("employees").unwrap();
    let departments = || sabot.table("departments").unwrap();

    let full = employees()
        .join(departments(), "dept", JoinType::Full)
        .unwrap();
    assert_eq!(full.clone().count().unwrap(), 6);
    let merged_keys = full
        .order_by([asc(col("dept")), asc(col("id"))])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        strings(&merged_keys, 0),
        ["eng", "eng", "eng", "hr", "ops", "sales"]
    );

    let left = employees()
        .join(departments(), "dept", JoinType::Left)
        .unwrap();
    let sales = left
        .filter(col("dept").eq(lit("sales")))
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&sales, 3), ["null"]);

    let with_department = employees()
        .join(departments(), "dept", JoinType::Semi)
        .unwrap();
    assert_eq!(with_department.count().unwrap(), 4);
    let without = employees()
        .join(departments(), "dept", JoinType::Anti)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&without, 0), ["4"]);
}

#[test]
fn join_on_column_pairs_keeps_both_sides() {
    let sabot = session();
    let departments = sabot
        .table("departments")
        .unwrap()
        .select([col("dept").alias("name"), col("floor")])
        .unwrap();
    let joined = sabot
        .table("employees")
        .unwrap()
        .join(departments, [("dept", "name")], JoinType::Inner)
        .unwrap();
    assert_eq!(joined.schema().fields().len(), 5);
    assert_eq!(joined.count().unwrap(), 4);
}

#[test]
fn missing_join_key_is_named() {
    let sabot = session();
    let error = sabot
        .table("employees")
        .unwrap()
        .join(
            sabot.table("departments").unwrap(),
            "floor",
            JoinType::Inner,
        )
        .err()
        .expect("employees has no floor column");
    assert!(
        error
            .to_string()
            .contains("'floor' is not a column of the left input"),
        "{error}"
    );
}

#[test]
fn limit_distinct_union_and_count() {
    let sabot = session();
    let departments = sabot
        .table("employees")
        .unwrap()
        .select_columns(&["dept"])
        .unwrap();
    assert_eq!(departments.clone().distinct().unwrap().count().unwrap(), 3);
    assert_eq!(
        departments
            .clone()
            .union(departments.clone())
            .unwrap()
            .count()
            .unwrap(),
        10
    );
    assert_eq!(
        departments
            .limit(2)
            .unwrap()
            .collect()
            .unwrap()
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        2
    );
}

#[test]
fn sql_and_dataframes_see_the_same_tables() {
    let sabot = session();
    assert_eq!(sabot.table_names(), ["departments", "employees"]);
    let batches = sabot
        .sql("SELECT dept, max(salary) AS top FROM employees GROUP BY dept ORDER BY top DESC")
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&batches, 0), ["eng", "sales", "ops"]);
}

#[test]
fn csv_tables_are_read_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.txt");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "name;people\nLyon;513000\nNantes;320000").unwrap();
    let sabot = Sabot::builder().threads(1).build().unwrap();
    let options = CsvOptions {
        delimiter: b';',
        ..CsvOptions::default()
    };
    sabot.register_csv("cities", &path, options).unwrap();
    let batches = sabot
        .sql("SELECT name FROM cities WHERE people > 400000")
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&batches, 0), ["Lyon"]);
}

#[test]
fn explain_shows_sabot_operators_metrics_and_fallbacks() {
    let sabot = session();
    let query = "SELECT dept, sum(salary) FROM employees WHERE salary > 85 GROUP BY dept";
    let plan = sabot.sql(query).unwrap().explain(false).unwrap();
    assert!(plan.contains("Optimized logical plan"), "{plan}");
    assert!(plan.contains("engine: sabot"), "{plan}");
    assert!(
        plan.contains("HashAggregate") && plan.contains("Filter"),
        "{plan}"
    );
    assert!(!plan.contains("fallback"), "{plan}");

    let analyzed = sabot.sql(query).unwrap().explain(true).unwrap();
    let aggregate = analyzed
        .lines()
        .find(|line| line.contains("HashAggregate"))
        .unwrap();
    assert!(
        aggregate.contains("rows=2,") && aggregate.contains("peak_mem="),
        "{analyzed}"
    );
    let scan = analyzed
        .lines()
        .find(|line| line.contains("Batches"))
        .unwrap();
    assert!(scan.contains("rows=5,"), "{analyzed}");
    // Estimated rows beside the actual ones: the in-memory table's 5 rows are known exactly.
    assert!(scan.contains("est_rows=5,"), "{analyzed}");
    assert!(aggregate.contains("est_rows="), "{analyzed}");
    let executed = sabot.sql(query).unwrap().execute().unwrap();
    let estimate = &executed.estimates[0];
    assert_eq!(estimate.operator, "HashAggregate");
    assert_eq!(estimate.actual_rows, 2);
    assert!(estimate.q_error().is_some_and(|q| q >= 1.0), "{estimate:?}");

    let joined = "SELECT floor, count(*) FROM employees JOIN departments ON employees.dept = departments.dept GROUP BY floor";
    let join_plan = sabot.sql(joined).unwrap().explain(false).unwrap();
    assert!(
        join_plan.contains("HashJoin: Inner") && !join_plan.contains("fallback"),
        "{join_plan}"
    );

    let window = "SELECT id, row_number() OVER (ORDER BY salary) FROM employees";
    let with_fallback = sabot.sql(window).unwrap().explain(false).unwrap();
    assert!(
        with_fallback.contains("fallback: ") && with_fallback.contains("Window"),
        "{with_fallback}"
    );
    assert!(
        with_fallback.contains("WindowAggExec"),
        "DataFusion's plan of the subtree is shown: {with_fallback}"
    );

    let on_datafusion = sabot
        .sql(query)
        .unwrap()
        .with_engine(Engine::DataFusion)
        .explain(true)
        .unwrap();
    assert!(
        on_datafusion.contains("engine: datafusion"),
        "{on_datafusion}"
    );
    assert!(on_datafusion.contains("output_rows="), "{on_datafusion}");
}

#[test]
fn stats_count_queries_and_scanned_rows() {
    let sabot = session();
    assert_eq!(sabot.stats().queries_run, 0);
    sabot
        .sql("SELECT * FROM employees")
        .unwrap()
        .collect()
        .unwrap();
    sabot
        .sql("SELECT floor FROM departments WHERE floor > 1")
        .unwrap()
        .collect()
        .unwrap();
    assert!(sabot.sql("SELECT 1/0").unwrap().collect().is_err());
    let stats = sabot.stats();
    assert_eq!(stats.queries_run, 2, "{stats}");
    assert_eq!(stats.queries_failed, 1, "{stats}");
    assert_eq!(stats.rows_scanned, 5 + 3, "{stats}");
    assert_eq!(stats.rows_returned, 5 + 2, "{stats}");
    assert!(stats.query_time > std::time::Duration::ZERO, "{stats}");
}

#[test]
fn parquet_scans_count_bytes_read() {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot
        .register_parquet("nation", crate::common::tpch_dir().join("nation.parquet"))
        .unwrap();
    sabot
        .sql("SELECT n_name FROM nation WHERE n_regionkey = 1")
        .unwrap()
        .collect()
        .unwrap();
    let stats = sabot.stats();
    assert_eq!(stats.rows_scanned, 25, "{stats}");
    assert!(stats.bytes_scanned > 0, "{stats}");
}

#[test]
fn join_of_a_table_with_a_projected_frame_sharing_the_key_name() {
    let sabot = session();
    let floors = sabot
        .table("departments")
        .unwrap()
        .select([col("dept"), (col("floor") * lit(10)).alias("room")])
        .unwrap();
    let joined = sabot
        .table("employees")
        .unwrap()
        .join(floors, "dept", JoinType::Inner)
        .unwrap();
    let batches = joined
        .filter(col("id").eq(lit(3)))
        .unwrap()
        .select([col("dept"), col("room")])
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(strings(&batches, 0), ["ops"]);
    assert_eq!(strings(&batches, 1), ["10"]);
}

#[test]
fn group_keys_with_nulls_and_several_columns_group_like_datafusion() {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("small", DataType::Int16, true),
        Field::new("day", DataType::Date32, false),
        Field::new("big", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let rows = 5_000;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::Int16Array::from_iter(
                (0..rows).map(|row| (row % 7 != 0).then_some((row % 5 - 2) as i16)),
            )),
            Arc::new(arrow::array::Date32Array::from_iter_values(
                (0..rows).map(|row| 19_000 + row % 3),
            )),
            Arc::new(Int64Array::from_iter((0..rows).map(|row| {
                (row % 11 != 0).then_some(i64::from(row % 13) * 1_000_000_007)
            }))),
            Arc::new(StringArray::from_iter(
                (0..rows).map(|row| (row % 4 != 0).then(|| format!("n{}", row % 6))),
            )),
        ],
    )
    .unwrap();
    sabot
        .register_batches("facts", schema, vec![batch])
        .unwrap();
    // (small, day) and (day) pack into a u64 (nulls as bits), (small, name) too with names as
    // dictionary ids; (big) needs 65 bits with its null bit and (big, small, day) 115, so they
    // pack into a u128; (big, day, small, name) needs 146 bits and takes the row format.
    for keys in [
        "small, day",
        "day",
        "small, name",
        "big",
        "big, small, day",
        "big, day, small, name",
    ] {
        let query = format!(
            "SELECT {keys}, count(*) AS n, sum(small) AS s FROM facts GROUP BY {keys} ORDER BY {keys}"
        );
        let sabot_rows = columns_on(&sabot, &query, Engine::Sabot);
        assert!(sabot_rows[0].len() > 2, "{keys}: {sabot_rows:?}");
        assert_eq!(
            sabot_rows,
            columns_on(&sabot, &query, Engine::DataFusion),
            "GROUP BY {keys}"
        );
    }
}

#[test]
fn high_cardinality_group_bys_give_datafusions_groups() {
    // 288K rows with 200K distinct keys: partial tables barely shrink them, so the
    // aggregation switches to shared partitioned tables after its first 100K rows per table.
    let sabot = Sabot::builder().threads(2).build().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("tag", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    // 36 batches of 8,000 rows: key `key(row)`, a tag null where `tag_is_null(row)`.
    let table = |key: fn(i64) -> i64, tag_is_null: fn(i64) -> bool| -> Vec<RecordBatch> {
        (0..36)
            .map(|part| {
                let rows = (part * 8000)..(part + 1) * 8000;
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(rows.clone().map(key))),
                        Arc::new(StringArray::from_iter(
                            rows.clone()
                                .map(|row| (!tag_is_null(row)).then(|| format!("t{}", row % 3))),
                        )),
                        Arc::new(Int64Array::from_iter(
                            rows.map(|row| (row % 17 != 0).then_some(row % 1000 - 500)),
                        )),
                    ],
                )
                .unwrap()
            })
            .collect()
    };
    let batches = table(|row| (row * 7919) % 200_000, |row| row % 10 == 0);
    // Unique keys in order: each batch's keys fall in one or two of the shared tables' key
    // ranges, whose rows are sliced out of the batch instead of copied.
    let sorted_batches = table(|row| row, |_| false);
    sabot
        .register_batches("wide", schema.clone(), batches)
        .unwrap();
    sabot
        .register_batches("wide_sorted", schema, sorted_batches)
        .unwrap();
    // `k` packs into a u64; `k, tag` (64 bits and a 32-bit dictionary id) into a u128.
    for (keys, table) in [("k", "wide"), ("k, tag", "wide"), ("k", "wide_sorted")] {
        let query = format!(
            "SELECT {keys}, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS lo FROM {table} \
             GROUP BY {keys} ORDER BY {keys}"
        );
        let on_sabot = columns_on(&sabot, &query, Engine::Sabot);
        assert!(
            on_sabot[0].len() >= 200_000,
            "{keys} over {table}: {}",
            on_sabot[0].len()
        );
        assert_eq!(
            on_sabot,
            columns_on(&sabot, &query, Engine::DataFusion),
            "GROUP BY {keys} over {table}"
        );
    }
}

#[test]
fn union_all_and_union_run_on_sabot_like_datafusion() {
    let sabot = session();
    for (query, order) in [
        (
            "SELECT dept, salary FROM employees WHERE salary > 95 UNION ALL SELECT dept, CAST(floor AS DOUBLE) FROM departments",
            "1, 2",
        ),
        (
            "SELECT dept FROM employees UNION SELECT dept FROM departments",
            "1",
        ),
    ] {
        let plan = sabot.sql(query).unwrap().explain(false).unwrap();
        assert!(
            plan.contains("Union: inputs=2") && !plan.contains("fallback"),
            "{plan}"
        );
        let ordered = format!("SELECT * FROM ({query}) ORDER BY {order}");
        let on_sabot = columns_on(&sabot, &ordered, Engine::Sabot);
        assert_eq!(
            on_sabot,
            columns_on(&sabot, &ordered, Engine::DataFusion),
            "{query}"
        );
        assert!(on_sabot[0].len() >= 4, "{query}: {on_sabot:?}");
    }
}

#[test]
fn right_and_full_outer_joins_run_on_sabot_like_datafusion() {
    let sabot = session();
    // Each join is run with the smaller input on either side, so that Sabot builds on the left
    // input for one and on the right for the other.
    for query in [
        "SELECT e.id, d.dept, d.floor FROM employees e RIGHT JOIN departments d ON e.dept = d.dept",
        "SELECT e.id, d.dept, d.floor FROM departments d RIGHT JOIN employees e ON e.dept = d.dept",
        "SELECT e.id, e.dept, d.dept, d.floor FROM employees e FULL JOIN departments d ON e.dept = d.dept",
        "SELECT e.id, e.dept, d.dept, d.floor FROM departments d FULL JOIN employees e ON e.dept = d.dept",
        "SELECT e.id, d.dept FROM employees e FULL JOIN departments d ON e.dept = d.dept AND e.salary > 100",
        "SELECT d.dept, d.floor FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.dept = d.dept)",
    ] {
        let plan = sabot.sql(query).unwrap().explain(false).unwrap();
        assert!(
            plan.contains("HashJoin") && !plan.contains("fallback"),
            "{query}: {plan}"
        );
        let ordered = format!("SELECT * FROM ({query}) ORDER BY 1, 2");
        let on_sabot = columns_on(&sabot, &ordered, Engine::Sabot);
        assert!(on_sabot[0].len() >= 2, "{query}: {on_sabot:?}");
        assert_eq!(
            on_sabot,
            columns_on(&sabot, &ordered, Engine::DataFusion),
            "{query}"
        );
    }
}

#[test]
fn sabots_own_aggregates_match_datafusions_with_nulls_and_empty_groups() {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("i", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("d", DataType::Date32, true),
        Field::new("n", DataType::Int32, true),
        Field::new("m", DataType::Decimal128(12, 2), true),
    ]));
    let rows = 20_000i64;
    let batches: Vec<RecordBatch> = (0..4)
        .map(|part| {
            let range = part * rows / 4..(part + 1) * rows / 4;
            // Group 3 has only nulls in every value column; the first batch has no nulls at all.
            let value = |row: i64| (part == 0 || (row % 7 != 0 && row % 5 != 3)).then_some(row);
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        range.clone().map(|row| row % 5),
                    )),
                    Arc::new(Int64Array::from_iter(
                        range
                            .clone()
                            .map(|row| value(row).map(|row| row * 31 - 9_000)),
                    )),
                    // Quarters add exactly in any order, as the two threads' partial sums do.
                    Arc::new(Float64Array::from_iter(
                        range
                            .clone()
                            .map(|row| value(row).map(|row| row as f64 / 4.0)),
                    )),
                    Arc::new(arrow::array::Date32Array::from_iter(
                        range
                            .clone()
                            .map(|row| value(row).map(|row| 18_000 + (row % 400) as i32)),
                    )),
                    Arc::new(arrow::array::Int32Array::from_iter(
                        range
                            .clone()
                            .map(|row| value(row).map(|row| (row % 1000 - 500) as i32)),
                    )),
                    Arc::new(
                        arrow::array::Decimal128Array::from_iter(
                            range
                                .clone()
                                .map(|row| value(row).map(|row| i128::from(row) * 101)),
                        )
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                    ),
                ],
            )
            .unwrap()
        })
        .collect();
    sabot.register_batches("values", schema, batches).unwrap();
    let aggregates = "count(*), count(i), sum(i), min(i), max(i), sum(f), min(f), max(f), \
                      min(d), max(d), min(n), max(n), sum(m), min(m), max(m), count(m)";
    for query in [
        format!("SELECT g, {aggregates} FROM values GROUP BY g ORDER BY g"),
        format!("SELECT {aggregates} FROM values"),
        format!("SELECT {aggregates} FROM values WHERE g > 10"),
        format!("SELECT g, {aggregates} FROM values WHERE g = 3 GROUP BY g"),
    ] {
        let plan = sabot.sql(&query).unwrap().explain(false).unwrap();
        assert!(!plan.contains("fallback"), "{plan}");
        assert_eq!(
            columns_on(&sabot, &query, Engine::Sabot),
            columns_on(&sabot, &query, Engine::DataFusion),
            "{query}"
        );
    }
}
