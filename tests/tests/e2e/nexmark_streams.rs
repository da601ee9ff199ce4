//! The Nexmark queries of `sabot bench nexmark`, run as streams, give the same rows as the
//! same questions asked in batch SQL over the same generated events.

use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use sabot::Sabot;

use crate::common::sorted_rows;
use sabot::stream::{NexmarkConfig, NexmarkGenerator, NexmarkTable};

const EVENTS: u64 = 300_000;

/// A session with the first `EVENTS` events' persons, auctions and bids as tables.
fn session_with_bids() -> Sabot {
    let sabot = Sabot::builder().threads(2).build().unwrap();
    let generator = NexmarkGenerator::try_new(NexmarkConfig::default()).unwrap();
    for table in [
        NexmarkTable::Person,
        NexmarkTable::Auction,
        NexmarkTable::Bid,
    ] {
        let rows = generator.generate(table, 0, EVENTS).unwrap();
        sabot
            .register_batches(table.name(), rows.schema(), vec![rows])
            .unwrap();
    }
    sabot
}

fn assert_stream_matches_sql(query: &str, sql: &str) {
    let sabot = session_with_bids();
    let streamed = sabot::nexmark_bench::query(&sabot, query, &NexmarkConfig::default(), EVENTS)
        .unwrap()
        .collect()
        .unwrap();
    let expected = sabot.sql(sql).unwrap().collect().unwrap();
    let (streamed, expected) = (sorted_rows(&streamed), sorted_rows(&expected));
    assert!(!expected.is_empty(), "{query}: the SQL gives no rows");
    assert_eq!(streamed.len(), expected.len(), "{query}: row counts differ");
    assert_eq!(streamed, expected, "{query}");
}

#[test]
fn q0_passes_every_bid_through() {
    assert_stream_matches_sql(
        "q0",
        "SELECT auction, bidder, price, date_time, extra FROM bid",
    );
}

#[test]
fn q1_converts_prices() {
    assert_stream_matches_sql(
        "q1",
        "SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid",
    );
}

#[test]
fn q2_selects_every_123rd_auction() {
    assert_stream_matches_sql(
        "q2",
        "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    );
}

#[test]
fn q3_suggests_items_of_local_sellers() {
    assert_stream_matches_sql(
        "q3",
        "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id
         WHERE a.category = 10 AND p.state IN ('or', 'id', 'ca')",
    );
}

#[test]
fn q4_averages_closing_prices_per_category() {
    let sabot = session_with_bids();
    let updates = sabot::nexmark_bench::query(&sabot, "q4", &NexmarkConfig::default(), EVENTS)
        .unwrap()
        .collect()
        .unwrap();
    // An upsert stream: a category's last row is its final average.
    let mut latest = std::collections::BTreeMap::new();
    for batch in &updates {
        let categories = batch.column(0).as_primitive::<Int64Type>();
        let averages = batch.column(1).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            latest.insert(categories.value(row), averages.value(row));
        }
    }
    let expected = sabot
        .sql(
            "WITH finals AS (
                SELECT a.id, a.category, max(b.price) AS final
                FROM auction a JOIN bid b ON a.id = b.auction
                WHERE b.date_time >= a.date_time AND b.date_time <= a.expires
                GROUP BY a.id, a.category
            )
            SELECT category, avg(final) FROM finals GROUP BY category",
        )
        .unwrap()
        .collect()
        .unwrap();
    let mut checked = 0;
    for batch in &expected {
        let categories = batch.column(0).as_primitive::<Int64Type>();
        let averages = batch.column(1).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let ours = latest[&categories.value(row)];
            let theirs = averages.value(row);
            assert!(
                (ours - theirs).abs() <= 1e-9 * theirs.abs(),
                "category {}: {ours} vs {theirs}",
                categories.value(row)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, latest.len());
    assert_eq!(checked, 5, "five categories");
}

#[test]
fn q8_finds_new_users_who_sold_in_their_first_window() {
    assert_stream_matches_sql(
        "q8",
        "WITH p AS (
            SELECT id, name, CAST(date_time AS BIGINT) / 10000 AS w FROM person
            GROUP BY id, name, CAST(date_time AS BIGINT) / 10000
        ), a AS (
            SELECT seller, CAST(date_time AS BIGINT) / 10000 AS w FROM auction
            GROUP BY seller, CAST(date_time AS BIGINT) / 10000
        )
        SELECT p.id, p.name, to_timestamp_millis(p.w * 10000) AS window_start
        FROM p JOIN a ON p.id = a.seller AND p.w = a.w",
    );
}

#[test]
fn q5_finds_the_auctions_with_most_bids_per_sliding_window() {
    assert_stream_matches_sql(
        "q5",
        "WITH windows AS (
            SELECT auction, CAST(date_time AS BIGINT) / 2000 * 2000 - k * 2000 AS window_start
            FROM bid CROSS JOIN (VALUES (0), (1), (2), (3), (4)) AS offsets(k)
        ), counts AS (
            SELECT auction, window_start, count(*) AS num FROM windows
            GROUP BY auction, window_start
        ), best AS (
            SELECT window_start, max(num) AS top FROM counts GROUP BY window_start
        )
        SELECT c.auction, c.num FROM counts c
        JOIN best b ON c.window_start = b.window_start AND c.num = b.top",
    );
}

#[test]
fn q7_finds_the_highest_bids_per_window() {
    assert_stream_matches_sql(
        "q7",
        "WITH b AS (SELECT *, CAST(date_time AS BIGINT) / 10000 AS w FROM bid),
        m AS (SELECT w, max(price) AS top FROM b GROUP BY w)
        SELECT b.auction, b.price, b.bidder, b.date_time, b.extra FROM b
        JOIN m ON b.w = m.w AND b.price = m.top",
    );
}
