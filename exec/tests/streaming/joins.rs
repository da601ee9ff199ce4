use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use sabot_exec::CancelHandle;
use sabot_exec::stream::{
    ChannelSource, CollectSink, PipelineInput, PipelineStats, StreamJoin, StreamJoinKind,
    StreamPipeline, WatermarkSpec,
};

/// Columns (ts, key, until, v): all Int64.
fn schema() -> SchemaRef {
    Arc::new(Schema::new(
        ["ts", "key", "until", "v"]
            .iter()
            .map(|name| Field::new(*name, DataType::Int64, false))
            .collect::<Vec<_>>(),
    ))
}

fn batch(rows: &[(i64, i64, i64, i64)]) -> RecordBatch {
    let column = |pick: fn(&(i64, i64, i64, i64)) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(pick))) as _
    };
    RecordBatch::try_new(
        schema(),
        vec![
            column(|row| row.0),
            column(|row| row.1),
            column(|row| row.2),
            column(|row| row.3),
        ],
    )
    .unwrap()
}

fn input(batches: Vec<RecordBatch>) -> PipelineInput {
    let (sender, source) = ChannelSource::new(schema(), batches.len() + 1);
    for batch in batches {
        sender.send(batch).unwrap();
    }
    PipelineInput {
        source: Box::new(source),
        watermarks: Some(WatermarkSpec {
            column: "ts".to_string(),
            max_out_of_orderness: 0,
            idle_timeout: Duration::from_secs(3600),
        }),
        operators: Vec::new(),
    }
}

/// Joins the inputs; returns each output row's (left v, right v), sorted, and the stats.
fn run_join(
    left: Vec<RecordBatch>,
    right: Vec<RecordBatch>,
    kind: StreamJoinKind,
) -> (Vec<(i64, i64)>, PipelineStats) {
    let join = StreamJoin::try_new(&schema(), &schema(), &[1], &[1], kind).unwrap();
    let sink = CollectSink::new();
    let stats = StreamPipeline::try_join(
        input(left),
        input(right),
        Box::new(join),
        Vec::new(),
        Box::new(sink.clone()),
    )
    .unwrap()
    .run(&CancelHandle::new())
    .unwrap();
    let mut pairs: Vec<(i64, i64)> = sink
        .batches()
        .unwrap()
        .iter()
        .flat_map(|batch| {
            assert_eq!(batch.schema().field(7).name(), "v_right");
            let left = batch.column(3).as_primitive::<Int64Type>().clone();
            let right = batch.column(7).as_primitive::<Int64Type>().clone();
            (0..batch.num_rows()).map(move |row| (left.value(row), right.value(row)))
        })
        .collect();
    pairs.sort_unstable();
    (pairs, stats)
}

#[test]
fn an_interval_join_matches_right_rows_inside_each_left_rows_lifetime() {
    // Left rows live from ts to until (auctions); right rows (bids) match while inside.
    let left = vec![
        batch(&[(0, 1, 10, 100), (0, 2, 5, 200)]),
        batch(&[(20, 1, 30, 300)]),
    ];
    let right = vec![
        batch(&[(3, 1, 0, 1), (4, 2, 0, 2), (6, 2, 0, 3)]),
        batch(&[(12, 1, 0, 4), (25, 1, 0, 5), (30, 1, 0, 6)]),
    ];
    let kind = StreamJoinKind::Interval {
        left_start: 0,
        left_end: 2,
        right_time: 0,
        lower: 0,
        upper: 0,
    };
    let (pairs, stats) = run_join(left, right, kind);
    assert_eq!(pairs, vec![(100, 1), (200, 2), (300, 5), (300, 6)]);
    assert_eq!(stats.final_state_rows, 0, "everything expires at the end");
}

#[test]
fn a_flink_style_interval_join_uses_bounds_around_the_left_time() {
    // right.ts BETWEEN left.ts - 2 AND left.ts + 3
    let left = vec![batch(&[(10, 7, 0, 1), (20, 7, 0, 2)])];
    let right = vec![batch(&[
        (8, 7, 0, 10),
        (7, 7, 0, 11),
        (13, 7, 0, 12),
        (14, 7, 0, 13),
        (19, 7, 0, 14),
    ])];
    let kind = StreamJoinKind::Interval {
        left_start: 0,
        left_end: 0,
        right_time: 0,
        lower: -2,
        upper: 3,
    };
    let (pairs, _) = run_join(left, right, kind);
    assert_eq!(pairs, vec![(1, 10), (1, 12), (2, 14)]);
}

#[test]
fn a_window_join_matches_rows_of_the_same_window_only_and_drops_closed_windows() {
    // (window_start, key, window_end, v): the `until` column holds the window end.
    let left = vec![
        batch(&[(0, 1, 10, 1), (0, 2, 10, 2)]),
        batch(&[(10, 1, 20, 3)]),
        batch(&[(30, 9, 40, 9)]),
    ];
    let right = vec![
        batch(&[(0, 1, 10, 10), (10, 2, 20, 11)]),
        batch(&[(10, 1, 20, 12), (10, 1, 20, 13)]),
        batch(&[(30, 9, 40, 14)]),
    ];
    let kind = StreamJoinKind::SameWindow {
        left: (0, 2),
        right: (0, 2),
    };
    let (pairs, stats) = run_join(left, right, kind);
    assert_eq!(pairs, vec![(1, 10), (3, 12), (3, 13), (9, 14)]);
    assert!(
        stats.peak_state_rows <= 4,
        "closed windows are dropped: {stats:?}"
    );
}

#[test]
fn an_unbounded_join_keeps_rows_until_their_time_to_live() {
    let left = vec![batch(&[(0, 1, 0, 1)]), batch(&[(50, 2, 0, 2)])];
    let right = vec![
        batch(&[(5, 1, 0, 10)]),
        batch(&[(100, 1, 0, 11), (100, 2, 0, 12)]),
    ];
    let forever = StreamJoinKind::Unbounded {
        left_time: 0,
        right_time: 0,
        ttl: None,
    };
    let (pairs, _) = run_join(left.clone(), right.clone(), forever);
    assert_eq!(pairs, vec![(1, 10), (1, 11), (2, 12)]);
    let ttl = StreamJoinKind::Unbounded {
        left_time: 0,
        right_time: 0,
        ttl: Some(60),
    };
    let (pairs, _) = run_join(left, right, ttl);
    assert_eq!(pairs, vec![(1, 10), (2, 12)], "left row 1 expired at 60");
}
