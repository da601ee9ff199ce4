use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use sabot_exec::CancelHandle;
use sabot_exec::stream::{
    AggregateCall, AggregateKind, ChannelSource, CollectSink, MaxRowsWindow, NexmarkConfig,
    NexmarkSource, NexmarkTable, PipelineStats, SessionWindowAggregate, StreamOperator,
    StreamPipeline, WatermarkSpec, WindowAggregate, WindowMaxRows, WindowSpec,
};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn batch(rows: &[(i64, &str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|row| row.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|row| row.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|row| row.2))),
        ],
    )
    .unwrap()
}

fn count_and_sum() -> Vec<AggregateCall> {
    vec![
        AggregateCall {
            kind: AggregateKind::CountRows,
            input: None,
            name: "n".to_string(),
        },
        AggregateCall {
            kind: AggregateKind::Sum,
            input: Some(2),
            name: "total".to_string(),
        },
    ]
}

/// Runs `operator` over `batches` (sent in order through a channel), watermarks trailing the
/// newest time by `delay`.
fn run(
    batches: Vec<RecordBatch>,
    delay: i64,
    operator: Box<dyn StreamOperator>,
) -> (Vec<RecordBatch>, PipelineStats) {
    let (output, _, stats) = run_with_late_rows(batches, delay, operator);
    (output, stats)
}

/// Like [`run`], also returning the late rows' side output.
fn run_with_late_rows(
    batches: Vec<RecordBatch>,
    delay: i64,
    operator: Box<dyn StreamOperator>,
) -> (Vec<RecordBatch>, Vec<RecordBatch>, PipelineStats) {
    let (sender, source) = ChannelSource::new(schema(), batches.len() + 1);
    for batch in batches {
        sender.send(batch).unwrap();
    }
    drop(sender);
    let sink = CollectSink::new();
    let watermarks = WatermarkSpec {
        column: "ts".to_string(),
        max_out_of_orderness: delay,
        idle_timeout: Duration::from_secs(3600),
    };
    let late = CollectSink::new();
    let pipeline = StreamPipeline::try_new(
        Box::new(source),
        Some(watermarks),
        vec![operator],
        Box::new(sink.clone()),
    )
    .unwrap()
    .with_late_rows(Box::new(late.clone()));
    let stats = pipeline.run(&CancelHandle::new()).unwrap();
    (sink.batches().unwrap(), late.batches().unwrap(), stats)
}

/// The `v` column of `batches`' rows.
fn values(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|batch| {
            batch
                .column(2)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// A window and key: (window_start, window_end, key).
type WindowKey = (i64, i64, String);
/// A window's aggregates: (n, total).
type Totals = (i64, i64);

/// Each output row's window, key and aggregates, in emission order.
fn windows_of(batches: &[RecordBatch]) -> Vec<(WindowKey, Totals)> {
    let mut rows = Vec::new();
    for batch in batches {
        let start = batch.column(0).as_primitive::<Int64Type>();
        let end = batch.column(1).as_primitive::<Int64Type>();
        let key = batch.column(2).as_string::<i32>();
        let n = batch.column(3).as_primitive::<Int64Type>();
        let total = batch.column(4).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            rows.push((
                (start.value(row), end.value(row), key.value(row).to_string()),
                (n.value(row), total.value(row)),
            ));
        }
    }
    rows
}

fn sorted(rows: Vec<(WindowKey, Totals)>) -> BTreeMap<WindowKey, Totals> {
    rows.into_iter().collect()
}

fn expected(rows: &[(i64, i64, &str, i64, i64)]) -> BTreeMap<WindowKey, Totals> {
    rows.iter()
        .map(|&(start, end, key, n, total)| ((start, end, key.to_string()), (n, total)))
        .collect()
}

#[test]
fn tumbling_windows_emit_once_the_watermark_passes_and_count_late_rows() {
    let operator = WindowAggregate::try_new(
        &schema(),
        0,
        &[1],
        WindowSpec::Tumbling { size: 10 },
        &count_and_sum(),
        0,
    )
    .unwrap();
    let input = vec![
        batch(&[(1, "a", 1), (5, "b", 2), (12, "a", 3), (3, "a", 4)]),
        // The watermark is 10 now: [0, 10) has been emitted, so the row at 8 is late.
        batch(&[(8, "a", 100), (15, "b", 5), (11, "a", 6)]),
        batch(&[(25, "a", 7)]),
    ];
    let (output, stats) = run(input, 2, Box::new(operator));
    let rows = windows_of(&output);
    assert_eq!(
        sorted(rows.clone()),
        expected(&[
            (0, 10, "a", 2, 5),
            (0, 10, "b", 1, 2),
            (10, 20, "a", 2, 9),
            (10, 20, "b", 1, 5),
            (20, 30, "a", 1, 7),
        ])
    );
    let ends: Vec<i64> = rows.iter().map(|((_, end, _), _)| *end).collect();
    assert!(ends.is_sorted(), "windows come out in end order: {ends:?}");
    assert_eq!(stats.late_rows, 1);
    assert_eq!(stats.final_state_rows, 0);
}

#[test]
fn hopping_windows_share_rows_between_overlapping_windows() {
    let operator = WindowAggregate::try_new(
        &schema(),
        0,
        &[1],
        WindowSpec::Hop { size: 10, slide: 5 },
        &count_and_sum(),
        0,
    )
    .unwrap();
    let input = vec![
        batch(&[(1, "a", 1), (5, "b", 2), (12, "a", 3), (3, "a", 4)]),
        // Watermark 10: [-5, 5) and [0, 10) are out; 8 still counts for [5, 15).
        batch(&[(8, "a", 100), (15, "b", 5), (11, "a", 6)]),
        // Watermark 13: the row at 2 belongs only to windows already emitted.
        batch(&[(25, "a", 7), (2, "a", 50)]),
    ];
    let (output, late, stats) = run_with_late_rows(input, 2, Box::new(operator));
    assert_eq!(
        values(&late),
        vec![50],
        "the late row goes to the side output"
    );
    assert_eq!(
        sorted(windows_of(&output)),
        expected(&[
            (-5, 5, "a", 2, 5),
            (0, 10, "a", 2, 5),
            (0, 10, "b", 1, 2),
            (5, 15, "a", 3, 109),
            (5, 15, "b", 1, 2),
            (10, 20, "a", 2, 9),
            (10, 20, "b", 1, 5),
            (15, 25, "b", 1, 5),
            (20, 30, "a", 1, 7),
            (25, 35, "a", 1, 7),
        ])
    );
    assert_eq!(stats.late_rows, 1);
}

#[test]
fn allowed_lateness_holds_windows_back_and_admits_their_stragglers() {
    let operator = WindowAggregate::try_new(
        &schema(),
        0,
        &[1],
        WindowSpec::Tumbling { size: 10 },
        &count_and_sum(),
        5,
    )
    .unwrap();
    let input = vec![
        batch(&[(1, "a", 1), (12, "a", 3)]),
        // Watermark 12 < 10 + 5: [0, 10) is still open, so the row at 8 counts.
        batch(&[(8, "a", 100), (16, "a", 1)]),
        // Watermark 16 >= 15: [0, 10) is out; the row at 9 is late.
        batch(&[(9, "a", 1000)]),
    ];
    let (output, stats) = run(input, 0, Box::new(operator));
    assert_eq!(
        sorted(windows_of(&output)),
        expected(&[(0, 10, "a", 2, 101), (10, 20, "a", 2, 4)])
    );
    assert_eq!(stats.late_rows, 1);
}

#[test]
fn session_windows_merge_across_a_bridging_row_and_count_late_rows() {
    let operator =
        SessionWindowAggregate::try_new(&schema(), 0, &[1], 5, &count_and_sum(), 0).unwrap();
    let input = vec![
        batch(&[(1, "a", 1), (3, "a", 2), (2, "b", 10)]),
        // Watermark 20: a's [1, 8) and b's [2, 7) are out.
        batch(&[(20, "a", 3), (20, "b", 20)]),
        // The row at 2 is late; 24 bridges a's [20, 25) and [28, 33).
        batch(&[(2, "a", 1000), (28, "a", 5), (24, "a", 4)]),
    ];
    let (output, late, stats) = run_with_late_rows(input, 0, Box::new(operator));
    assert_eq!(values(&late), vec![1000]);
    assert_eq!(
        sorted(windows_of(&output)),
        expected(&[
            (1, 8, "a", 2, 3),
            (2, 7, "b", 1, 10),
            (20, 25, "b", 1, 20),
            (20, 33, "a", 3, 12),
        ])
    );
    assert_eq!(stats.late_rows, 1);
    assert_eq!(stats.final_state_rows, 0);
}

#[test]
fn max_rows_keep_every_row_tied_for_a_windows_largest_value() {
    let operator = WindowMaxRows::try_new(
        &schema(),
        MaxRowsWindow::Tumbling {
            time_column: 0,
            size: 10,
        },
        2,
        0,
    )
    .unwrap();
    let input = vec![
        batch(&[(1, "a", 5), (2, "b", 9)]),
        batch(&[(3, "c", 9), (4, "d", 7)]),
        batch(&[(12, "e", 1), (13, "f", 0)]),
    ];
    let (output, _) = run(input, 0, Box::new(operator));
    let rows: Vec<(i64, String, i64)> = output
        .iter()
        .flat_map(|batch| {
            let ts = batch.column(0).as_primitive::<Int64Type>().clone();
            let key = batch.column(1).as_string::<i32>().clone();
            let v = batch.column(2).as_primitive::<Int64Type>().clone();
            (0..batch.num_rows())
                .map(move |row| (ts.value(row), key.value(row).to_string(), v.value(row)))
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (2, "b".to_string(), 9),
            (3, "c".to_string(), 9),
            (12, "e".to_string(), 1)
        ]
    );
}

/// Two partitions: the watermark follows the slower one until it goes quiet for the idle
/// timeout; then the busy partition's windows close without it.
#[test]
fn an_idle_partition_stops_holding_windows_back() {
    let operator = WindowAggregate::try_new(
        &schema(),
        0,
        &[1],
        WindowSpec::Tumbling { size: 10 },
        &count_and_sum(),
        0,
    )
    .unwrap();
    let (senders, source) = ChannelSource::partitioned(schema(), 2, 8);
    let sink = CollectSink::new();
    let job = {
        let sink = sink.clone();
        std::thread::spawn(move || {
            StreamPipeline::try_new(
                Box::new(source),
                Some(WatermarkSpec {
                    column: "ts".to_string(),
                    max_out_of_orderness: 0,
                    idle_timeout: Duration::from_millis(200),
                }),
                vec![Box::new(operator)],
                Box::new(sink),
            )
            .unwrap()
            .run(&CancelHandle::new())
            .unwrap()
        })
    };
    senders[0]
        .send(batch(&[(1, "a", 1), (25, "a", 2)]))
        .unwrap();
    senders[1].send(batch(&[(3, "b", 10)])).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        sink.batches().unwrap().is_empty(),
        "partition 1 is at 3: no window may close yet"
    );
    // Partition 1 says nothing for longer than the idle timeout; partition 0's newest row (25)
    // then sets the watermark, closing [0, 10) and [10, 20).
    std::thread::sleep(Duration::from_millis(400));
    senders[0].send(batch(&[(26, "a", 3)])).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.batches().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        sorted(windows_of(&sink.batches().unwrap())),
        expected(&[(0, 10, "a", 1, 1), (0, 10, "b", 1, 10)])
    );
    drop(senders);
    let stats = job.join().unwrap();
    assert_eq!(
        sorted(windows_of(&sink.batches().unwrap())),
        expected(&[(0, 10, "a", 1, 1), (0, 10, "b", 1, 10), (20, 30, "a", 2, 5)])
    );
    assert_eq!(stats.late_rows, 0);
}

/// Hot items' state (bid counts per auction in 10 s windows sliding by 2 s) over a Nexmark
/// stream: as big after 60 s of event time as after 15 s, because closed panes are dropped.
#[test]
fn window_state_stays_flat_on_a_long_input() {
    let peak_state = |events: u64| {
        let source = NexmarkSource::try_new(NexmarkConfig::default(), NexmarkTable::Bid)
            .unwrap()
            .with_events(events);
        let schema = NexmarkTable::Bid.schema();
        let operator = WindowAggregate::try_new(
            &schema,
            5,
            &[0],
            WindowSpec::Hop {
                size: 10_000,
                slide: 2_000,
            },
            &[AggregateCall {
                kind: AggregateKind::CountRows,
                input: None,
                name: "bids".to_string(),
            }],
            0,
        )
        .unwrap();
        let watermarks = WatermarkSpec {
            column: "date_time".to_string(),
            max_out_of_orderness: 0,
            idle_timeout: Duration::from_secs(3600),
        };
        let sink = CollectSink::new();
        let stats = StreamPipeline::try_new(
            Box::new(source),
            Some(watermarks),
            vec![Box::new(operator)],
            Box::new(sink.clone()),
        )
        .unwrap()
        .run(&CancelHandle::new())
        .unwrap();
        let counted: i64 = sink
            .batches()
            .unwrap()
            .iter()
            .map(|batch| {
                let column = batch.column(3).as_primitive::<Int64Type>();
                assert_eq!(column.null_count(), 0);
                column.values().iter().sum::<i64>()
            })
            .sum();
        assert_eq!(
            counted as u64,
            stats.rows_in * 5,
            "each bid is in 5 windows"
        );
        stats.peak_state_rows
    };
    let short = peak_state(150_000);
    let long = peak_state(600_000);
    assert!(short > 0);
    assert!(
        (long as f64) < short as f64 * 1.5,
        "peak state grew from {short} to {long} rows"
    );
}
