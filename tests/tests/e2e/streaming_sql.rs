//! Streaming SQL: a windowed query over a stream table gives the rows the same SQL text gives
//! over a table of the same events (tumble also runs in batch), hop windows match the Stream
//! API, and what streaming cannot run yet is refused with a message naming it.

use std::time::Duration;

use arrow::array::RecordBatch;
use sabot::expr::{col, count, lit, max};
use sabot::stream::{NexmarkConfig, NexmarkGenerator, NexmarkSource, NexmarkTable};
use sabot::{Sabot, SabotError, Window};

use crate::common::sorted_rows;

const EVENTS: u64 = 200_000;

fn stream_session() -> Sabot {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot
        .register_nexmark(NexmarkConfig::default(), Some(EVENTS))
        .unwrap();
    sabot
}

#[test]
fn a_tumbling_window_query_gives_the_same_rows_as_stream_and_as_batch() {
    let sql = "SELECT tumble(date_time, INTERVAL '10' SECOND) AS window_start, auction,
                      count(*) AS bids, max(price) AS top, avg(price) AS mean
               FROM bid WHERE price > 1000
               GROUP BY tumble(date_time, INTERVAL '10' SECOND), auction";
    let streaming = stream_session();
    let frame = streaming.sql(sql).unwrap();
    assert!(frame.reads_stream());
    let streamed = frame.collect().unwrap();

    let batch = Sabot::builder().threads(2).build().unwrap();
    let generator = NexmarkGenerator::try_new(NexmarkConfig::default()).unwrap();
    let bids = generator.generate(NexmarkTable::Bid, 0, EVENTS).unwrap();
    batch
        .register_batches("bid", bids.schema(), vec![bids])
        .unwrap();
    let frame = batch.sql(sql).unwrap();
    assert!(!frame.reads_stream());
    let expected = frame.collect().unwrap();
    assert!(!expected.is_empty());
    assert_eq!(sorted_rows(&streamed), sorted_rows(&expected));
}

#[test]
fn a_hop_window_query_matches_the_stream_api() {
    let sabot = stream_session();
    let streamed = sabot
        .sql(
            "SELECT hop(date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS window_start,
                    auction, count(*) AS num, max(price) AS top
             FROM bid
             GROUP BY hop(date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND), auction",
        )
        .unwrap()
        .collect()
        .unwrap();
    let source = NexmarkSource::try_new(NexmarkConfig::default(), NexmarkTable::Bid)
        .unwrap()
        .with_events(EVENTS);
    let built = sabot
        .stream(source)
        .with_watermark("date_time", Duration::ZERO)
        .unwrap()
        .key_by(&["auction"])
        .unwrap()
        .window(Window::hop(Duration::from_secs(10), Duration::from_secs(2)))
        .aggregate([count(lit(1)).alias("num"), max(col("price")).alias("top")])
        .unwrap()
        .select([col("window_start"), col("auction"), col("num"), col("top")])
        .unwrap()
        .collect()
        .unwrap();
    assert!(!built.is_empty());
    assert_eq!(sorted_rows(&streamed), sorted_rows(&built));
}

#[test]
fn session_windows_run_from_sql() {
    let sabot = stream_session();
    let batches = sabot
        .sql(
            "SELECT session(date_time, INTERVAL '1' SECOND) AS start, bidder, count(*) AS bids
             FROM bid WHERE bidder % 100 <> 1
             GROUP BY session(date_time, INTERVAL '1' SECOND), bidder",
        )
        .unwrap()
        .collect()
        .unwrap();
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert!(total > 0);
}

fn refusal(sql: &str) -> String {
    let sabot = stream_session();
    match sabot.sql(sql).and_then(|frame| frame.collect()) {
        Ok(_) => panic!("{sql} ran"),
        Err(error @ SabotError::NotSupported { .. }) => error.to_string(),
        Err(other) => panic!("{sql}: unexpected error {other:?}"),
    }
}

#[test]
fn what_streams_cannot_run_is_refused_by_name() {
    assert!(refusal("SELECT count(*) FROM bid").contains("without a window"));
    assert!(refusal("SELECT auction FROM bid ORDER BY price").contains("Sort"));
    assert!(
        refusal("SELECT b.auction FROM bid b JOIN auction a ON b.auction = a.id").contains("Join")
    );
}
