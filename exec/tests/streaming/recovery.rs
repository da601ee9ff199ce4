use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sabot_exec::CancelHandle;
use sabot_exec::stream::{
    AggregateCall, AggregateKind, CheckpointConfig, CollectSink, FileFormat, FileSink,
    MaxRowsWindow, NexmarkConfig, NexmarkSource, NexmarkTable, SessionWindowAggregate,
    StreamOperator, StreamPipeline, StreamSink, WatermarkSpec, WindowAggregate, WindowMaxRows,
    WindowSpec,
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

fn pipeline(query: &str, sink: Box<dyn StreamSink>) -> StreamPipeline {
    let source = NexmarkSource::try_new(NexmarkConfig::default(), NexmarkTable::Bid)
        .unwrap()
        .with_events(EVENTS)
        .with_batch_events(2_000);
    let watermarks = WatermarkSpec {
        column: "date_time".to_string(),
        max_out_of_orderness: 0,
        idle_timeout: Duration::from_secs(3600),
    };
    StreamPipeline::try_new(Box::new(source), Some(watermarks), operators(query), sink).unwrap()
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
    let reference = {
        let sink = CollectSink::new();
        pipeline(query, Box::new(sink.clone()))
            .run(&CancelHandle::new())
            .unwrap();
        rows(&sink.batches().unwrap())
    };
    assert!(!reference.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let (output, checkpoints) = (dir.path().join("out"), dir.path().join("checkpoints"));
    let mut seed: u64 = 0x5AB0_7000 + kills as u64;
    let mut killed_running = 0;
    for _ in 0..kills {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(40 + (seed >> 33) % 400);
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
        killed_running >= kills / 2,
        "only {killed_running} of {kills} children were killed while running"
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
fn session_output_is_exactly_once_across_kills() {
    survives_kills("sessions", 6);
}
