use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use nexmark::event::Event;
use sabot_exec::stream::{NexmarkConfig, NexmarkGenerator, NexmarkTable};

const EVENTS: u64 = 200_000;

fn reference_events(config: &NexmarkConfig) -> Vec<Event> {
    let reference = nexmark::config::NexmarkConfig {
        base_time: config.base_time_ms as u64,
        first_rate: config.events_per_second as usize,
        next_rate: config.events_per_second as usize,
        ..Default::default()
    };
    nexmark::EventGenerator::new(reference)
        .take(EVENTS as usize)
        .collect()
}

fn generated(table: NexmarkTable) -> (NexmarkGenerator, RecordBatch) {
    let generator = NexmarkGenerator::try_new(NexmarkConfig::default()).unwrap();
    let batch = generator.generate(table, 0, EVENTS).unwrap();
    (generator, batch)
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn times(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    (0..array.len())
        .map(|row| array.value(row).to_string())
        .collect()
}

fn share(values: &[i64], test: impl Fn(i64) -> bool) -> f64 {
    values.iter().filter(|&&value| test(value)).count() as f64 / values.len() as f64
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(sum, count), value| {
        (sum + value, count + 1)
    });
    sum / count as f64
}

fn assert_close(name: &str, ours: f64, reference: f64, tolerance: f64) {
    assert!(
        (ours - reference).abs() <= tolerance,
        "{name}: ours {ours:.4}, the nexmark crate's {reference:.4} (tolerance {tolerance})"
    );
}

#[test]
fn event_mix_ids_and_timestamps_match_the_reference_exactly() {
    let config = NexmarkConfig::default();
    let reference = reference_events(&config);
    let generator = NexmarkGenerator::try_new(config).unwrap();
    let persons = generator.generate(NexmarkTable::Person, 0, EVENTS).unwrap();
    let auctions = generator
        .generate(NexmarkTable::Auction, 0, EVENTS)
        .unwrap();
    let bids = generator.generate(NexmarkTable::Bid, 0, EVENTS).unwrap();
    let (mut person_ids, mut auction_ids, mut bid_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut person_times, mut auction_times) = (Vec::new(), Vec::new());
    for event in &reference {
        match event {
            Event::Person(person) => {
                person_ids.push(person.id as i64);
                person_times.push(person.date_time as i64);
            }
            Event::Auction(auction) => {
                auction_ids.push(auction.id as i64);
                auction_times.push(auction.date_time as i64);
            }
            Event::Bid(bid) => bid_times.push(bid.date_time as i64),
        }
    }
    assert_eq!(ints(&persons, "id"), person_ids);
    assert_eq!(ints(&auctions, "id"), auction_ids);
    assert_eq!(times(&persons, "date_time"), person_times);
    assert_eq!(times(&auctions, "date_time"), auction_times);
    assert_eq!(times(&bids, "date_time"), bid_times);
    for table in [
        NexmarkTable::Person,
        NexmarkTable::Auction,
        NexmarkTable::Bid,
    ] {
        let batch = generator.generate(table, 0, EVENTS).unwrap();
        assert_eq!(
            generator.count_in(table, 0, EVENTS),
            batch.num_rows() as u64
        );
    }
}

#[test]
fn bid_distributions_match_the_reference() {
    let reference = reference_events(&NexmarkConfig::default());
    let reference_bids: Vec<_> = reference
        .iter()
        .filter_map(|event| match event {
            Event::Bid(bid) => Some(bid),
            _ => None,
        })
        .collect();
    let (_, bids) = generated(NexmarkTable::Bid);
    let auctions = ints(&bids, "auction");
    let bidders = ints(&bids, "bidder");
    let prices = ints(&bids, "price");
    let their_auctions: Vec<i64> = reference_bids
        .iter()
        .map(|bid| bid.auction as i64)
        .collect();
    let their_bidders: Vec<i64> = reference_bids.iter().map(|bid| bid.bidder as i64).collect();
    let their_prices: Vec<i64> = reference_bids.iter().map(|bid| bid.price as i64).collect();
    // Hot auctions are ids at multiples of 100, hot bidders one past them.
    assert_close(
        "hot auction share",
        share(&auctions, |id| id % 100 == 0),
        share(&their_auctions, |id| id % 100 == 0),
        0.01,
    );
    assert_close(
        "hot bidder share",
        share(&bidders, |id| id % 100 == 1),
        share(&their_bidders, |id| id % 100 == 1),
        0.01,
    );
    assert_close(
        "distinct auctions per bid",
        distinct(&auctions) as f64 / auctions.len() as f64,
        distinct(&their_auctions) as f64 / their_auctions.len() as f64,
        0.005,
    );
    assert_close(
        "mean log10 price",
        mean(prices.iter().map(|&price| (price as f64).log10())),
        mean(their_prices.iter().map(|&price| (price as f64).log10())),
        0.03,
    );
    let hot_channels = ["Google", "Facebook", "Baidu", "Apple"];
    let channels = strings(&bids, "channel");
    assert_close(
        "hot channel share",
        channels
            .iter()
            .filter(|c| hot_channels.contains(&c.as_str()))
            .count() as f64
            / channels.len() as f64,
        reference_bids
            .iter()
            .filter(|bid| hot_channels.contains(&bid.channel.as_str()))
            .count() as f64
            / reference_bids.len() as f64,
        0.01,
    );
    assert_close(
        "mean extra length",
        mean(
            strings(&bids, "extra")
                .iter()
                .map(|extra| extra.len() as f64),
        ),
        mean(reference_bids.iter().map(|bid| bid.extra.len() as f64)),
        0.5,
    );
}

#[test]
fn auction_and_person_distributions_match_the_reference() {
    let reference = reference_events(&NexmarkConfig::default());
    let (_, auctions) = generated(NexmarkTable::Auction);
    let (_, persons) = generated(NexmarkTable::Person);
    let reference_auctions: Vec<_> = reference
        .iter()
        .filter_map(|event| match event {
            Event::Auction(auction) => Some(auction),
            _ => None,
        })
        .collect();
    let sellers = ints(&auctions, "seller");
    let their_sellers: Vec<i64> = reference_auctions.iter().map(|a| a.seller as i64).collect();
    assert_close(
        "hot seller share",
        share(&sellers, |id| id % 100 == 0),
        share(&their_sellers, |id| id % 100 == 0),
        0.015,
    );
    let categories = ints(&auctions, "category");
    for category in 10..15 {
        let their_share = reference_auctions
            .iter()
            .filter(|a| a.category as i64 == category)
            .count() as f64
            / reference_auctions.len() as f64;
        assert_close(
            "category share",
            share(&categories, |c| c == category),
            their_share,
            0.015,
        );
    }
    let lifetimes: Vec<f64> = times(&auctions, "expires")
        .iter()
        .zip(times(&auctions, "date_time"))
        .map(|(expires, created)| (expires - created) as f64)
        .collect();
    let their_lifetimes = reference_auctions
        .iter()
        .map(|a| (a.expires - a.date_time) as f64);
    let (ours, theirs) = (mean(lifetimes.into_iter()), mean(their_lifetimes));
    assert_close("auction lifetime (relative)", ours / theirs, 1.0, 0.05);
    assert_close(
        "mean auction extra length",
        mean(strings(&auctions, "extra").iter().map(|e| e.len() as f64)),
        mean(reference_auctions.iter().map(|a| a.extra.len() as f64)),
        2.0,
    );
    let reference_people: Vec<_> = reference
        .iter()
        .filter_map(|event| match event {
            Event::Person(person) => Some(person),
            _ => None,
        })
        .collect();
    let states = strings(&persons, "state");
    assert_close(
        "share of persons in OR, ID or CA",
        states
            .iter()
            .filter(|s| ["or", "id", "ca"].contains(&s.as_str()))
            .count() as f64
            / states.len() as f64,
        reference_people
            .iter()
            .filter(|p| ["or", "id", "ca"].contains(&p.state.as_str()))
            .count() as f64
            / reference_people.len() as f64,
        0.05,
    );
}

#[test]
fn any_range_generates_the_same_rows_alone_as_within_a_larger_range() {
    let generator = NexmarkGenerator::try_new(NexmarkConfig::default()).unwrap();
    for table in [
        NexmarkTable::Person,
        NexmarkTable::Auction,
        NexmarkTable::Bid,
    ] {
        let whole = generator.generate(table, 1_000, 3_000).unwrap();
        let first = generator.generate(table, 1_000, 2_017).unwrap();
        let second = generator.generate(table, 2_017, 3_000).unwrap();
        let joined = arrow::compute::concat_batches(&table.schema(), [&first, &second]).unwrap();
        assert_eq!(whole, joined, "{table:?}");
    }
    let other_seed = NexmarkGenerator::try_new(NexmarkConfig {
        seed: 7,
        ..NexmarkConfig::default()
    })
    .unwrap();
    let ours = generator.generate(NexmarkTable::Bid, 0, 1_000).unwrap();
    let theirs = other_seed.generate(NexmarkTable::Bid, 0, 1_000).unwrap();
    assert_eq!(
        ours.column(5),
        theirs.column(5),
        "times do not depend on the seed"
    );
    assert_ne!(ours.column(2), theirs.column(2), "prices do");
}

#[test]
fn generating_some_columns_gives_those_columns_of_the_full_table() {
    let generator = NexmarkGenerator::try_new(NexmarkConfig::default()).unwrap();
    let projections: [(NexmarkTable, &[usize]); 5] = [
        (NexmarkTable::Bid, &[0, 5]),
        (NexmarkTable::Bid, &[6, 2, 4]),
        (NexmarkTable::Auction, &[7, 5, 8]),
        (NexmarkTable::Auction, &[9, 1]),
        (NexmarkTable::Person, &[1, 4, 5, 7]),
    ];
    for (table, columns) in projections {
        let full = generator.generate(table, 500, 4_000).unwrap();
        let projected = generator
            .generate_columns(table, 500, 4_000, columns)
            .unwrap();
        assert_eq!(
            projected,
            full.project(columns).unwrap(),
            "{table:?} {columns:?}"
        );
    }
    assert!(
        generator
            .generate_columns(NexmarkTable::Bid, 0, 10, &[7])
            .is_err()
    );
}

fn distinct(values: &[i64]) -> usize {
    values
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len()
}
