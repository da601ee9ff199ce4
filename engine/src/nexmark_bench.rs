//! `sabot bench nexmark`: Nexmark queries as streams over the columnar generator, each timed
//! end to end (generation included) on one worker thread, reported as events per second per
//! core beside Flink's published per-core rates, and the generator's own rate.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Result, SabotError};
use crate::expr::{avg, col, count, lit, max};
use crate::session::Sabot;
use crate::stream::{
    CountSink, JoinTime, NexmarkConfig, NexmarkGenerator, NexmarkSource, NexmarkTable, Stream,
    Window,
};

/// The queries `sabot bench nexmark` knows, in order.
pub const QUERIES: [&str; 8] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"];

/// Flink 1.13's events per second per core from the Nexmark project's README (3 workers × 8
/// cores, RocksDB state, exactly-once).
pub fn flink_events_per_core(query: &str) -> Option<f64> {
    let rate = match query {
        "q0" => 155_000.0,
        "q1" => 158_000.0,
        "q2" => 175_000.0,
        "q3" => 152_000.0,
        "q4" => 34_000.0,
        "q5" => 22_000.0,
        "q7" => 12_300.0,
        "q8" => 146_000.0,
        _ => return None,
    };
    Some(rate)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct NexmarkBenchConfig {
    /// Events generated per query (all tables; a query's sources read their tables' share).
    pub events: u64,
    pub queries: Vec<String>,
    pub model: NexmarkConfig,
}

/// One query's run.
#[derive(Debug, Clone, Serialize)]
pub struct NexmarkTiming {
    pub name: String,
    /// Rows the query's sources delivered (its tables' share of the generated events).
    pub events: u64,
    pub seconds: f64,
    /// Worker threads used.
    pub cores: usize,
    pub events_per_s_per_core: f64,
    /// Rows the query produced.
    pub output_rows: u64,
    /// Flink's published rate for the query, per core.
    pub flink_events_per_s_per_core: Option<f64>,
}

/// All queries' runs and the generator's own rate.
#[derive(Debug, Clone, Serialize)]
pub struct NexmarkReport {
    pub queries: Vec<NexmarkTiming>,
    /// Bid rows per second the generator alone builds on one core.
    pub generator_bids_per_s: f64,
    /// Events per second (all three tables) the generator alone builds on one core.
    pub generator_events_per_s: f64,
}

/// The Nexmark query `name` as a stream over `events` generated events.
pub fn query(sabot: &Sabot, name: &str, model: &NexmarkConfig, events: u64) -> Result<Stream> {
    // Each source generates only the columns its query reads (projection pushdown).
    let table = |table: NexmarkTable, columns: &[&str]| -> Result<Stream> {
        let source = NexmarkSource::try_new(model.clone(), table)?
            .with_events(events)
            .with_columns(columns)?;
        sabot
            .stream(source)
            .with_watermark("date_time", Duration::ZERO)
    };
    let bids = |columns: &[&str]| table(NexmarkTable::Bid, columns);
    let bid_row = ["auction", "bidder", "price", "date_time", "extra"];
    let ten_seconds = Duration::from_secs(10);
    match name {
        // Pass-through.
        "q0" => bids(&bid_row)?.select([
            col("auction"),
            col("bidder"),
            col("price"),
            col("date_time"),
            col("extra"),
        ]),
        // Currency conversion: prices in euros.
        "q1" => bids(&bid_row)?.select([
            col("auction"),
            col("bidder"),
            (lit(0.908) * col("price")).alias("price"),
            col("date_time"),
            col("extra"),
        ]),
        // Selection: bids on every 123rd auction.
        "q2" => bids(&["auction", "price", "date_time"])?
            .filter((col("auction") % lit(123i64)).eq(lit(0i64)))?
            .select([col("auction"), col("price")]),
        // Local item suggestion: auctions of category 10 by sellers in Oregon, Idaho or
        // California (an unbounded join: every row is kept).
        "q3" => {
            let auctions = table(
                NexmarkTable::Auction,
                &["id", "seller", "category", "date_time"],
            )?
            .filter(col("category").eq(lit(10i64)))?;
            let persons = table(
                NexmarkTable::Person,
                &["id", "name", "city", "state", "date_time"],
            )?
            .filter(
                col("state")
                    .eq(lit("or"))
                    .or(col("state").eq(lit("id")))
                    .or(col("state").eq(lit("ca"))),
            )?;
            auctions
                .join(
                    persons,
                    &["seller"],
                    &["id"],
                    JoinTime::Unbounded { ttl: None },
                )?
                .select([col("name"), col("city"), col("state"), col("id")])
        }
        // Average closing price per category: each auction's highest bid while it was open,
        // final when it expires, averaged per category (updated as auctions close).
        "q4" => table(
            NexmarkTable::Auction,
            &["id", "category", "date_time", "expires"],
        )?
        .join(
            bids(&["auction", "price", "date_time"])?,
            &["id"],
            &["auction"],
            JoinTime::Until {
                column: "expires".to_string(),
            },
        )?
        .key_by(&["id", "category"])?
        .aggregate_until("expires", [max(col("price")).alias("final")])?
        .key_by(&["category"])?
        .aggregate([avg(col("final")).alias("average")]),
        // Hot items: the auctions with the most bids in each 10 s window sliding by 2 s.
        "q5" => bids(&["auction", "date_time"])?
            .key_by(&["auction"])?
            .window(Window::hop(ten_seconds, Duration::from_secs(2)))
            .aggregate([count(lit(1)).alias("num")])?
            .max_rows_per_window("num")?
            .select([col("auction"), col("num")]),
        // Highest bid: the bids with the highest price in each 10 s window.
        "q7" => bids(&bid_row)?
            .window(Window::tumbling(ten_seconds))
            .max_rows("price")?
            .select([
                col("auction"),
                col("price"),
                col("bidder"),
                col("date_time"),
                col("extra"),
            ]),
        // Monitor new users: persons who created an auction in the 10 s window they joined in.
        "q8" => {
            let persons = table(NexmarkTable::Person, &["id", "name", "date_time"])?
                .key_by(&["id", "name"])?
                .window(Window::tumbling(ten_seconds))
                .aggregate([count(lit(1)).alias("joined")])?;
            let sellers = table(NexmarkTable::Auction, &["seller", "date_time"])?
                .key_by(&["seller"])?
                .window(Window::tumbling(ten_seconds))
                .aggregate([count(lit(1)).alias("auctions")])?;
            persons
                .join(sellers, &["id"], &["seller"], JoinTime::SameWindow)?
                .select([col("id"), col("name"), col("window_start")])
        }
        other => Err(SabotError::invalid_argument(format!(
            "unknown Nexmark query {other}; known: {}",
            QUERIES.join(", ")
        ))),
    }
}

/// Runs every query of `config`, calling `on_timing` after each.
pub fn run(
    sabot: &Sabot,
    config: &NexmarkBenchConfig,
    mut on_timing: impl FnMut(&NexmarkTiming),
) -> Result<NexmarkReport> {
    let mut queries = Vec::new();
    for name in &config.queries {
        let stream = query(sabot, name, &config.model, config.events)?;
        let sink = CountSink::new();
        let stats = stream.run(sink.clone())?;
        let seconds = stats.elapsed.as_secs_f64();
        let timing = NexmarkTiming {
            name: name.clone(),
            events: stats.rows_in,
            seconds,
            cores: 1,
            events_per_s_per_core: stats.rows_in as f64 / seconds,
            output_rows: sink.rows(),
            flink_events_per_s_per_core: flink_events_per_core(name),
        };
        on_timing(&timing);
        queries.push(timing);
    }
    let (generator_bids_per_s, generator_events_per_s) =
        generator_rates(&config.model, config.events)?;
    Ok(NexmarkReport {
        queries,
        generator_bids_per_s,
        generator_events_per_s,
    })
}

/// Rows per second the generator builds alone: bids only, and all three tables.
fn generator_rates(model: &NexmarkConfig, events: u64) -> Result<(f64, f64)> {
    let generator = NexmarkGenerator::try_new(model.clone())?;
    let chunk = 10_000;
    let time = |tables: &[NexmarkTable]| -> Result<(u64, f64)> {
        let started = Instant::now();
        let mut rows = 0;
        let mut start = 0;
        while start < events {
            let end = (start + chunk).min(events);
            for &table in tables {
                rows += generator.generate(table, start, end)?.num_rows() as u64;
            }
            start = end;
        }
        Ok((rows, started.elapsed().as_secs_f64()))
    };
    let (bids, bid_seconds) = time(&[NexmarkTable::Bid])?;
    let (all, all_seconds) = time(&[
        NexmarkTable::Person,
        NexmarkTable::Auction,
        NexmarkTable::Bid,
    ])?;
    Ok((bids as f64 / bid_seconds, all as f64 / all_seconds))
}

impl NexmarkReport {
    /// The report as a text table.
    pub fn to_table(&self) -> String {
        let mut text = format!(
            "{:<6} {:>12} {:>9} {:>6} {:>16} {:>14} {:>10}\n",
            "query", "events", "seconds", "cores", "events/s/core", "Flink/core", "vs Flink"
        );
        for timing in &self.queries {
            let (flink, ratio) = match timing.flink_events_per_s_per_core {
                Some(flink) => (
                    format!("{flink:.0}"),
                    format!("{:.1}x", timing.events_per_s_per_core / flink),
                ),
                None => ("-".to_string(), "-".to_string()),
            };
            text.push_str(&format!(
                "{:<6} {:>12} {:>9.3} {:>6} {:>16.0} {:>14} {:>10}\n",
                timing.name,
                timing.events,
                timing.seconds,
                timing.cores,
                timing.events_per_s_per_core,
                flink,
                ratio
            ));
        }
        text.push_str(&format!(
            "generator alone, one core: {:.0} bids/s, {:.0} events/s (all tables)\n",
            self.generator_bids_per_s, self.generator_events_per_s
        ));
        text
    }
}
