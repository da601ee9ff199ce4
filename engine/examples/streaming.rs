//! Event-time streaming with Sabot: a windowed aggregation over an in-process channel (with an
//! out-of-order and a late row), the same kind of query in streaming SQL over the built-in
//! Nexmark generator, a join of two streams, and a checkpointed run into exactly-once Parquet
//! files.
//!
//! Run it with `cargo run --release -p sabot --example streaming`.

use std::sync::Arc;
use std::time::Duration;

use sabot::arrow::array::{Int64Array, RecordBatch, StringArray};
use sabot::arrow::datatypes::{DataType, Field, Schema};
use sabot::arrow::util::pretty::print_batches;
use sabot::expr::{col, count, lit, max, sum};
use sabot::stream::{
    ChannelSource, CollectSink, FileFormat, FileSink, NexmarkConfig, NexmarkSource, NexmarkTable,
};
use sabot::{JoinTime, Sabot, Window};

fn main() -> sabot::Result<()> {
    let sabot = Sabot::builder().threads(2).build()?;

    // 1. A program hands batches to a stream through a channel. Event time is `ts` (Int64
    //    milliseconds); rows may arrive up to 2 s out of order.
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Int64, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
    ]));
    let (sender, source) = ChannelSource::new(schema.clone(), 16);
    let clicks = |rows: &[(i64, &str, i64)]| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|row| row.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|row| row.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|row| row.2))),
            ],
        )
    };
    // 4_000 arrives after 6_500 but in time: the watermark is 6_500 - 2_000 = 4_500, and its
    // window [0, 5_000) is still open. 13_000 moves the watermark to 11_000, closing the first
    // two windows, so the row at 2_000 in the last batch is late.
    sender.send(clicks(&[
        (1_000, "ada", 5),
        (6_500, "bob", 7),
        (4_000, "ada", 1),
    ])?)?;
    sender.send(clicks(&[(13_000, "ada", 2)])?)?;
    sender.send(clicks(&[(2_000, "bob", 100)])?)?;
    drop(sender); // the source ends when every sender is gone
    let late = CollectSink::new();
    let totals = sabot
        .stream(source)
        .with_watermark("ts", Duration::from_secs(2))?
        .with_late_rows(late.clone())
        .key_by(&["user"])?
        .window(Window::tumbling(Duration::from_secs(5)))
        .aggregate([
            sum(col("amount")).alias("spent"),
            count(lit(1)).alias("clicks"),
        ])?
        .collect()?;
    println!("Spending per user and 5 s window:");
    print_batches(&totals)?;
    println!("Late rows (their window had closed):");
    print_batches(&late.batches()?)?;

    // 2. Streaming SQL over Nexmark's person, auction and bid streams (40,000 events).
    sabot.register_nexmark(NexmarkConfig::default(), Some(40_000))?;
    let hot = sabot
        .sql(
            "SELECT hop(date_time, INTERVAL '2' SECOND, INTERVAL '4' SECOND) AS window_start,
                    auction, count(*) AS bids, max(price) AS top_price
             FROM bid WHERE auction % 1000 = 0
             GROUP BY hop(date_time, INTERVAL '2' SECOND, INTERVAL '4' SECOND), auction",
        )?
        .collect()?;
    println!("Bids on hot auctions per 4 s window, sliding by 2 s:");
    print_batches(&hot)?;

    // 3. A join of two streams: each bid with the auction it is for, while the auction is open.
    let nexmark = |table| -> sabot::Result<sabot::Stream> {
        let source = NexmarkSource::try_new(NexmarkConfig::default(), table)?.with_events(20_000);
        sabot
            .stream(source)
            .with_watermark("date_time", Duration::ZERO)
    };
    let bids_per_category = nexmark(NexmarkTable::Auction)?
        .join(
            nexmark(NexmarkTable::Bid)?,
            &["id"],
            &["auction"],
            JoinTime::Until {
                column: "expires".to_string(),
            },
        )?
        .key_by(&["category"])?
        .window(Window::tumbling(Duration::from_secs(1)))
        .aggregate([count(lit(1)).alias("bids"), max(col("price")).alias("top")])?
        .collect()?;
    println!("Bids on open auctions per category and second:");
    print_batches(&bids_per_category)?;

    // 4. Checkpoints every 50 ms and Parquet files that appear only when the checkpoint
    //    covering them completes; running it again resumes from the latest checkpoint.
    let dir = std::env::temp_dir().join(format!("sabot-streaming-example-{}", std::process::id()));
    let source =
        NexmarkSource::try_new(NexmarkConfig::default(), NexmarkTable::Bid)?.with_events(1_000_000);
    let stats = sabot
        .stream(source)
        .with_watermark("date_time", Duration::ZERO)?
        .key_by(&["auction"])?
        .window(Window::tumbling(Duration::from_secs(10)))
        .aggregate([count(lit(1)).alias("bids")])?
        .with_checkpoints(dir.join("checkpoints"), Duration::from_millis(50))
        .run(FileSink::try_new(dir.join("out"), FileFormat::Parquet)?)?;
    println!(
        "{} bids in, {} window rows written to {} in {:.3} s, {} checkpoints",
        stats.rows_in,
        stats.rows_out,
        dir.join("out").display(),
        stats.elapsed.as_secs_f64(),
        stats.checkpoints
    );
    std::fs::remove_dir_all(&dir).map_err(|error| sabot::SabotError::Io {
        path: dir,
        source: error,
    })?;
    Ok(())
}
