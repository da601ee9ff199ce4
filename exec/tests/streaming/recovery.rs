use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_expr::expressions::Column;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sabot_exec::CancelHandle;
use sabot_exec::stream::{
    AggregateCall, AggregateKind, BinaryStreamOperator, CheckpointConfig, CollectSink, FileFormat,
    FileSink, MaxRowsWindow, NexmarkConfig, NexmarkSource, NexmarkTable, PipelineInput,
    ProjectOperator, SessionWindowAggregate, StreamJoin, StreamJoinKind, StreamOperator,
    StreamPipeline, StreamSink, WatermarkSpec, WindowAggregate, WindowMaxRows, WindowSpec,
};

const CHILD: &str = "SABOT_STREAM_RECOVERY_CHILD";
const EVENTS: u64 = 400_000;

/// The windowed queries the child runs: hot items (counts per auction in 2 s windows sliding
/// by 1 s, then the top auctions per window), or bid sessions per bidder.
fn operators(query: &str) -> Vec<Box<dyn StreamOperator>> {
    let bids = NexmarkTable::Bid.schema();
    let count = AggregateCall {
        kind: AggregateKind::CountRows,
        input: None,
        name: "num".to_string(),
    };
    match query {
        "hot_items" => {
            let counts = WindowAggregate::try_new(
                &bids,
                5,
                &[0],
                WindowSpec::Hop {
                    size: 2_000,
                    slide: 1_000,
                },
                &[count],
                0,
            )
            .unwrap();
            let top = WindowMaxRows::try_new(
                &counts.schema(),
                MaxRowsWindow::Columns { start: 0, end: 1 },
                3,
                0,
            )
            .unwrap();
            vec![Box::new(counts), Box::new(top)]
        }
        "sessions" => {
            let total = AggregateCall {
                kind: AggregateKind::Sum,
                input: Some(2),
                name: "total".to_string(),
            };
            let sessions =
                SessionWindowAggregate::try_new(&bids, 5, &[1], 300, &[count, total], 0).unwrap();
            vec![Box::new(sessions)]
        }
        other => panic!("unknown query {other}"),
    }
}

fn input(table: NexmarkTable, operators: Vec<Box<dyn StreamOperator>>) -> PipelineInput {
    let source = NexmarkSource::try_new(NexmarkConfig::default(), table)
        .unwrap()
        .with_events(EVENTS)
        .with_batch_events(2_000);
    PipelineInput {
        source: Box::new(source),
        watermarks: Some(WatermarkSpec {
            column: "date_time".to_string(),
            max_out_of_orderness: 0,
            idle_timeout: Duration::from_secs(3600),
        }),
        operators,
    }
}

/// New persons per second, and sellers per second (Nexmark q8's two sides).
fn per_second(table: NexmarkTable, keys: &[usize]) -> Vec<Box<dyn StreamOperator>> {
    let count = AggregateCall {
        kind: AggregateKind::CountRows,
        input: None,
        name: "n".to_string(),
    };
    let window = WindowAggregate::try_new(
        &table.schema(),
        if table == NexmarkTable::Person { 6 } else { 5 },
        keys,
        WindowSpec::Tumbling { size: 1_000 },
        &[count],
        0,
    )
    .unwrap();
    vec![Box::new(window)]
}

fn pipeline(query: &str, sink: Box<dyn StreamSink>) -> StreamPipeline {
    if query == "auction_bids" {
        // Bids matched with the auction they are for while it is open (Nexmark q4's join).
        let auctions = input(NexmarkTable::Auction, Vec::new());
        let bids = input(NexmarkTable::Bid, Vec::new());
        let join = StreamJoin::try_new(
            &NexmarkTable::Auction.schema(),
            &NexmarkTable::Bid.schema(),
            &[0],
            &[0],
            StreamJoinKind::Interval {
                left_start: 5,
                left_end: 6,
                right_time: 5,
                lower: 0,
                upper: 0,
            },
        )
        .unwrap();
        let select = ProjectOperator::try_new(
            &join.schema(),
            vec![
                Arc::new(Column::new("id", 0)),
                Arc::new(Column::new("category", 8)),
                Arc::new(Column::new("price", 12)),
                Arc::new(Column::new("date_time_right", 15)),
            ],
            ["id", "category", "price", "bid_time"]
                .map(String::from)
                .to_vec(),
        )
        .unwrap();
        return StreamPipeline::try_join(
            auctions,
            bids,
            Box::new(join),
            vec![Box::new(select)],
            sink,
        )
        .unwrap();
    }
    if query != "new_users" {
        let bids = input(NexmarkTable::Bid, operators(query));
        return StreamPipeline::try_new(bids.source, bids.watermarks, bids.operators, sink)
            .unwrap();
    }
    // Persons (id, name) who started an auction (as its seller) in the second they joined.
    let persons = input(
        NexmarkTable::Person,
        per_second(NexmarkTable::Person, &[0, 1]),
    );
    let auctions = input(
        NexmarkTable::Auction,
        per_second(NexmarkTable::Auction, &[7]),
    );
    let join = StreamJoin::try_new(
        &persons.operators[0].schema(),
        &auctions.operators[0].schema(),
        &[2],
        &[2],
        StreamJoinKind::SameWindow {
            left: (0, 1),
            right: (0, 1),
        },
    )
    .unwrap();
    StreamPipeline::try_join(persons, auctions, Box::new(join), Vec::new(), sink).unwrap()
}

/// In the child process: runs the query with checkpoints into the file sink.
#[test]
fn recovery_child() {
    let Ok(query) = std::env::var(CHILD) else {
        return;
    };
    let output = PathBuf::from(std::env::var("SABOT_OUTPUT").unwrap());
    let checkpoints = PathBuf::from(std::env::var("SABOT_CHECKPOINTS").unwrap());
    let sink = FileSink::try_new(&output, FileFormat::Parquet).unwrap();
    let stats = pipeline(&query, Box::new(sink))
        .with_checkpoints(CheckpointConfig {
            dir: checkpoints,
            interval: Duration::from_millis(15),
        })
        .run(&CancelHandle::new())
        .unwrap();
    println!("finished after {} checkpoints", stats.checkpoints);
}

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let fields: Vec<String> = formatters
                .iter()
                .map(|formatter| formatter.value(row).to_string())
                .collect();
            rows.push(fields.join("|"));
        }
    }
    rows.sort();
    rows
}

/// The rows of every visible (committed) file in `dir`.
fn committed_rows(dir: &Path) -> Vec<String> {
    let mut batches = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "parquet")
        {
            let file = std::fs::File::open(&path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            batches.extend(reader.map(Result::unwrap));
        }
    }
    rows(&batches)
}

fn spawn_child(query: &str, output: &Path, checkpoints: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "recovery::recovery_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, query)
        .env("SABOT_OUTPUT", output)
        .env("SABOT_CHECKPOINTS", checkpoints)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Kills the child at pseudo-random moments (a fixed seed, so a failure can be replayed),
/// then lets a last child finish, and compares the committed output with an uninterrupted run.
fn survives_kills(query: &str, kills: usize) {
    let reference_started = Instant::now();
    let reference = {
        let sink = CollectSink::new();
        pipeline(query, Box::new(sink.clone()))
            .run(&CancelHandle::new())
            .unwrap();
        rows(&sink.batches().unwrap())
    };
    // Kill at moments spread over about as long as an uninterrupted run takes (here, in
    // this process), so the children are stopped mid-run whatever the machine's speed.
    let run_time = reference_started.elapsed().max(Duration::from_millis(100));
    assert!(!reference.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let (output, checkpoints) = (dir.path().join("out"), dir.path().join("checkpoints"));
    let mut seed: u64 = 0x5AB0_7000 + kills as u64;
    let mut killed_running = 0;
    for _ in 0..kills {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(20)
            + run_time.mul_f64(0.1 + ((seed >> 33) % 1000) as f64 / 1000.0);
        let mut child = spawn_child(query, &output, &checkpoints);
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed_running += 1;
        }
        let status = child.wait().unwrap();
        assert!(
            status.success() || status.code().is_none(),
            "the child failed on its own: {status}"
        );
    }
    let last = spawn_child(query, &output, &checkpoints)
        .wait_with_output()
        .unwrap();
    assert!(
        last.status.success(),
        "the last child failed: {}",
        last.status
    );
    assert!(
        killed_running >= 1,
        "none of {kills} children was killed while running"
    );
    let committed = committed_rows(&output);
    assert_eq!(
        committed.len(),
        reference.len(),
        "{query}: committed row count"
    );
    assert_eq!(committed, reference, "{query}: committed rows");
    let staging: Vec<_> = std::fs::read_dir(output.join("_staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "nothing is left in _staging");
}

#[test]
fn hot_items_output_is_exactly_once_across_kills() {
    survives_kills("hot_items", 8);
}

#[test]
fn interval_join_output_is_exactly_once_across_kills() {
    survives_kills("auction_bids", 6);
}

#[test]
fn window_join_output_is_exactly_once_across_kills() {
    survives_kills("new_users", 6);
}

#[test]
fn session_output_is_exactly_once_across_kills() {
    survives_kills("sessions", 6);
}
