//! Sabot's operators on small in-memory inputs: joins of every kind, aggregation with and
//! without keys, and the memory limit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, col};
use sabot_exec::{
    CancelHandle, Executor, JoinKind, JoinSpec, MemoryBudget, NodeKind, PhysicalNode,
};
use sabot_scheduler::Scheduler;

/// A table of keys and labels; string keys (`"k1"`, …) take the join's row-format path,
/// integer keys its packed path.
fn table(
    name_prefix: &str,
    keys: &[Option<i64>],
    labels: &[&str],
    string_keys: bool,
) -> (SchemaRef, RecordBatch) {
    let key_column: ArrayRef = if string_keys {
        Arc::new(StringArray::from(
            keys.iter()
                .map(|key| key.map(|key| format!("k{key}")))
                .collect::<Vec<_>>(),
        ))
    } else {
        Arc::new(Int64Array::from(keys.to_vec()))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            format!("{name_prefix}_key"),
            key_column.data_type().clone(),
            true,
        ),
        Field::new(format!("{name_prefix}_label"), DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![key_column, Arc::new(StringArray::from(labels.to_vec()))];
    (
        schema.clone(),
        RecordBatch::try_new(schema, columns).unwrap(),
    )
}

fn batches_node(schema: &SchemaRef, batch: RecordBatch) -> Arc<PhysicalNode> {
    Arc::new(PhysicalNode::new(
        NodeKind::Batches {
            batches: vec![batch],
            bounds: Vec::new(),
        },
        schema.clone(),
    ))
}

fn run(node: PhysicalNode, limit: Option<usize>) -> sabot_exec::Result<Vec<RecordBatch>> {
    let executor = Executor::new(Arc::new(Scheduler::new(2).unwrap()));
    executor.run(
        &Arc::new(node),
        &Arc::new(MemoryBudget::new(limit)),
        &CancelHandle::new(),
    )
}

fn labels(batches: &[RecordBatch], column: usize) -> Vec<String> {
    let mut values: Vec<String> = batches
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
        .collect();
    values.sort();
    values
}

/// left: keys 1, 2, 2, null, 4; right: keys 2, 2, 4, 5.
fn join(kind: JoinKind, with_filter: bool) -> Vec<RecordBatch> {
    join_building_on(kind, with_filter, false, false)
}

/// The same join, building on the left input when `build_is_left`, on string keys when
/// `string_keys`.
fn join_building_on(
    kind: JoinKind,
    with_filter: bool,
    build_is_left: bool,
    string_keys: bool,
) -> Vec<RecordBatch> {
    let (left_schema, left) = table(
        "l",
        &[Some(1), Some(2), Some(2), None, Some(4)],
        &["a", "b", "c", "d", "e"],
        string_keys,
    );
    let (right_schema, right) = table(
        "r",
        &[Some(2), Some(2), Some(4), Some(5)],
        &["x", "y", "z", "w"],
        string_keys,
    );
    let right_nullable = matches!(kind, JoinKind::Left | JoinKind::Full);
    let left_nullable = kind == JoinKind::Full;
    let joined_fields: Vec<Field> = left_schema
        .fields()
        .iter()
        .map(|field| {
            field
                .as_ref()
                .clone()
                .with_nullable(left_nullable || field.is_nullable())
        })
        .chain(right_schema.fields().iter().map(|field| {
            field
                .as_ref()
                .clone()
                .with_nullable(right_nullable || field.is_nullable())
        }))
        .collect();
    let joined_schema = Arc::new(Schema::new(joined_fields));
    let filter = with_filter.then(|| {
        // l_label <> 'c' OR r_label <> 'x': drops only the pair (c, x).
        let not_c = BinaryExpr::new(
            col("l_label", &joined_schema).unwrap(),
            Operator::NotEq,
            lit("c"),
        );
        let not_x = BinaryExpr::new(
            col("r_label", &joined_schema).unwrap(),
            Operator::NotEq,
            lit("x"),
        );
        Arc::new(BinaryExpr::new(
            Arc::new(not_c),
            Operator::Or,
            Arc::new(not_x),
        )) as Arc<dyn datafusion::physical_plan::PhysicalExpr>
    });
    let output_schema = match kind {
        JoinKind::Inner | JoinKind::Left | JoinKind::Full => joined_schema.clone(),
        JoinKind::LeftSemi | JoinKind::LeftAnti => left_schema.clone(),
        JoinKind::LeftMark => {
            let mut fields: Vec<Field> = left_schema
                .fields()
                .iter()
                .map(|field| field.as_ref().clone())
                .collect();
            fields.push(Field::new("mark", DataType::Boolean, false));
            Arc::new(Schema::new(fields))
        }
    };
    let (left_key, right_key) = (
        col("l_key", &left_schema).unwrap(),
        col("r_key", &right_schema).unwrap(),
    );
    let (left_node, right_node) = (
        batches_node(&left_schema, left),
        batches_node(&right_schema, right),
    );
    let (probe, build, probe_keys, build_keys) = if build_is_left {
        (right_node, left_node, vec![right_key], vec![left_key])
    } else {
        (left_node, right_node, vec![left_key], vec![right_key])
    };
    let spec = JoinSpec {
        kind,
        probe_keys,
        build_keys,
        filter,
        joined_schema,
        build_is_left,
        key_prefilter: false,
    };
    let node = NodeKind::HashJoin {
        probe,
        build,
        spec: Arc::new(spec),
    };
    run(PhysicalNode::new(node, output_schema), None).unwrap()
}

fn lit(value: &str) -> Arc<dyn datafusion::physical_plan::PhysicalExpr> {
    datafusion::physical_expr::expressions::lit(value)
}

#[test]
fn inner_join_pairs_duplicates_and_skips_null_keys() {
    let output = join(JoinKind::Inner, false);
    assert_eq!(labels(&output, 1), ["b", "b", "c", "c", "e"]);
    assert_eq!(labels(&output, 3), ["x", "x", "y", "y", "z"]);
}

#[test]
fn left_join_keeps_unmatched_rows_with_nulls() {
    let output = join(JoinKind::Left, false);
    assert_eq!(labels(&output, 1), ["a", "b", "b", "c", "c", "d", "e"]);
    assert_eq!(
        labels(&output, 3),
        ["null", "null", "x", "x", "y", "y", "z"]
    );
}

#[test]
fn residual_filter_applies_to_pairs() {
    let inner = join(JoinKind::Inner, true);
    assert_eq!(labels(&inner, 1), ["b", "b", "c", "e"]);
    let anti = join(JoinKind::LeftAnti, true);
    assert_eq!(labels(&anti, 1), ["a", "d"]);
}

#[test]
fn semi_anti_and_mark_joins() {
    assert_eq!(labels(&join(JoinKind::LeftSemi, false), 1), ["b", "c", "e"]);
    assert_eq!(labels(&join(JoinKind::LeftAnti, false), 1), ["a", "d"]);
    let marked = join(JoinKind::LeftMark, false);
    let marks: usize = marked
        .iter()
        .map(|batch| {
            let marks = batch
                .column(2)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap();
            marks.iter().filter(|mark| *mark == Some(true)).count()
        })
        .sum();
    assert_eq!(marks, 3);
    assert_eq!(marked.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
}

#[test]
fn a_join_table_over_the_memory_limit_names_the_operator() {
    let (left_schema, left) = table("l", &[Some(1)], &["a"], false);
    let (right_schema, right) = table("r", &[Some(1)], &["x"], false);
    let spec = JoinSpec {
        kind: JoinKind::LeftSemi,
        probe_keys: vec![col("l_key", &left_schema).unwrap()],
        build_keys: vec![col("r_key", &right_schema).unwrap()],
        filter: None,
        joined_schema: left_schema.clone(),
        build_is_left: false,
        key_prefilter: false,
    };
    let node = NodeKind::HashJoin {
        probe: batches_node(&left_schema, left),
        build: batches_node(&right_schema, right),
        spec: Arc::new(spec),
    };
    let error = run(PhysicalNode::new(node, left_schema), Some(8)).unwrap_err();
    assert!(error.to_string().starts_with("HashJoin needs"), "{error}");
}

#[test]
fn full_join_keeps_unmatched_rows_of_both_sides() {
    for build_is_left in [false, true] {
        let output = join_building_on(JoinKind::Full, false, build_is_left, false);
        assert_eq!(
            labels(&output, 1),
            ["a", "b", "b", "c", "c", "d", "e", "null"],
            "build left {build_is_left}"
        );
        assert_eq!(
            labels(&output, 3),
            ["null", "null", "w", "x", "x", "y", "y", "z"],
            "build left {build_is_left}"
        );
    }
}

#[test]
fn left_semi_anti_and_mark_joins_building_on_the_left_give_the_same_rows() {
    for kind in [
        JoinKind::Left,
        JoinKind::Full,
        JoinKind::LeftSemi,
        JoinKind::LeftAnti,
        JoinKind::LeftMark,
    ] {
        for with_filter in [false, true] {
            let probing_left = join_building_on(kind, with_filter, false, false);
            let building_left = join_building_on(kind, with_filter, true, false);
            for column in 0..probing_left[0].num_columns() {
                assert_eq!(
                    labels(&probing_left, column),
                    labels(&building_left, column),
                    "{kind:?}, filter {with_filter}, column {column}"
                );
            }
        }
    }
    let inner_left = join_building_on(JoinKind::Inner, true, true, false);
    assert_eq!(labels(&inner_left, 1), ["b", "b", "c", "e"]);
    assert_eq!(labels(&inner_left, 3), ["x", "y", "y", "z"]);
}

#[test]
fn string_keys_join_like_integer_keys() {
    for kind in [
        JoinKind::Inner,
        JoinKind::Left,
        JoinKind::LeftSemi,
        JoinKind::LeftAnti,
        JoinKind::LeftMark,
        JoinKind::Full,
    ] {
        for (with_filter, build_is_left) in [(false, false), (true, false), (true, true)] {
            if build_is_left && kind == JoinKind::Inner {
                continue;
            }
            let packed = join_building_on(kind, with_filter, build_is_left, false);
            let rows = join_building_on(kind, with_filter, build_is_left, true);
            for column in 0..packed[0].num_columns() {
                if packed[0].schema().field(column).name().ends_with("_key") {
                    continue;
                }
                assert_eq!(
                    labels(&packed, column),
                    labels(&rows, column),
                    "{kind:?}, filter {with_filter}, build left {build_is_left}, column {column}"
                );
            }
        }
    }
}
