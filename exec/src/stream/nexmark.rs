//! The columnar Nexmark generator: persons, auctions and bids built straight into Arrow batches,
//! deterministic from a seed and an event number. Ids, timestamps, the event mix (1 person,
//! 3 auctions, 46 bids in every 50 events) and the hot sellers, bidders, auctions and channels
//! follow the Nexmark model as the reference generators (Beam's, Flink's, the `nexmark` crate)
//! define it; the values of an event come from a small random generator seeded by
//! (seed, event number), so any range of events can be generated again, alone.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::error::{ExecError, Result};

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
/// One in this many persons, auctions and bidders is "hot".
const HOT_GROUP: u64 = 100;
const CHANNELS: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const FIRST_NAMES: [&str; 11] = [
    "peter", "paul", "luke", "john", "saul", "vicky", "kate", "julie", "sarah", "deiter", "walter",
];
const LAST_NAMES: [&str; 9] = [
    "shultz", "abrams", "spencer", "white", "bartels", "walton", "smith", "jones", "noris",
];
const US_STATES: [&str; 6] = ["az", "ca", "id", "or", "wa", "wy"];
const US_CITIES: [&str; 10] = [
    "phoenix",
    "los angeles",
    "san francisco",
    "boise",
    "portland",
    "bend",
    "redmond",
    "seattle",
    "kent",
    "cheyenne",
];

/// The Nexmark model's parameters; the defaults are the benchmark's.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkConfig {
    /// Seeds every event's values (ids and timestamps do not depend on it).
    pub seed: u64,
    /// Event-time rate: event `n` happens `n / events_per_second` seconds after `base_time_ms`.
    pub events_per_second: u64,
    /// Event time of the first event, in milliseconds since the Unix epoch.
    pub base_time_ms: i64,
    /// Persons that new auctions and bids pick from (besides the hot ones).
    pub active_people: u64,
    /// Auctions that new bids pick from (besides the hot ones).
    pub in_flight_auctions: u64,
    /// An auction's seller is hot with probability `1 - 1/hot_seller_ratio`.
    pub hot_seller_ratio: u64,
    /// A bid is for a hot auction with probability `1 - 1/hot_auction_ratio`.
    pub hot_auction_ratio: u64,
    /// A bid is by a hot bidder with probability `1 - 1/hot_bidder_ratio`.
    pub hot_bidder_ratio: u64,
    /// A bid comes through one of four hot channels with probability `1 - 1/hot_channel_ratio`.
    pub hot_channel_ratio: u64,
    /// Auction categories.
    pub categories: u64,
    /// Average bytes of a person, an auction and a bid (the `extra` column pads to it).
    pub avg_person_bytes: usize,
    pub avg_auction_bytes: usize,
    pub avg_bid_bytes: usize,
    /// Of every `person + auction + bid` proportion events, the first `person` are persons, the
    /// next `auction` auctions and the rest bids.
    pub person_proportion: u64,
    pub auction_proportion: u64,
    pub bid_proportion: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            seed: 0,
            events_per_second: 10_000,
            // 2025-01-01T00:00:00Z: a fixed start keeps runs reproducible.
            base_time_ms: 1_735_689_600_000,
            active_people: 1000,
            in_flight_auctions: 100,
            hot_seller_ratio: 4,
            hot_auction_ratio: 2,
            hot_bidder_ratio: 4,
            hot_channel_ratio: 2,
            categories: 5,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
        }
    }
}

/// The three kinds of Nexmark events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NexmarkTable {
    Person,
    Auction,
    Bid,
}

impl NexmarkTable {
    /// The table's name in queries: `person`, `auction` or `bid`.
    pub fn name(self) -> &'static str {
        match self {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
        }
    }

    /// The table's columns (the Nexmark schema; times are millisecond timestamps).
    pub fn schema(self) -> SchemaRef {
        let id = |name: &str| Field::new(name, DataType::Int64, false);
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let time = |name: &str| {
            Field::new(
                name,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            )
        };
        let fields = match self {
            NexmarkTable::Person => vec![
                id("id"),
                text("name"),
                text("email_address"),
                text("credit_card"),
                text("city"),
                text("state"),
                time("date_time"),
                text("extra"),
            ],
            NexmarkTable::Auction => vec![
                id("id"),
                text("item_name"),
                text("description"),
                id("initial_bid"),
                id("reserve"),
                time("date_time"),
                time("expires"),
                id("seller"),
                id("category"),
                text("extra"),
            ],
            NexmarkTable::Bid => vec![
                id("auction"),
                id("bidder"),
                id("price"),
                text("channel"),
                text("url"),
                time("date_time"),
                text("extra"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

/// Generates Nexmark events of one table for ranges of event numbers.
#[derive(Debug, Clone)]
pub struct NexmarkGenerator {
    config: NexmarkConfig,
    denominator: u64,
}

impl NexmarkGenerator {
    /// A generator for `config`; an error when a proportion or rate is zero.
    pub fn try_new(config: NexmarkConfig) -> Result<NexmarkGenerator> {
        if config.events_per_second == 0
            || config.person_proportion == 0
            || config.auction_proportion == 0
            || config.bid_proportion == 0
            || config.categories == 0
            || config.hot_seller_ratio == 0
            || config.hot_auction_ratio == 0
            || config.hot_bidder_ratio == 0
            || config.hot_channel_ratio == 0
        {
            return Err(ExecError::InvalidStream(
                "Nexmark: the event rate, proportions, categories and hot ratios must be above 0"
                    .to_string(),
            ));
        }
        let denominator =
            config.person_proportion + config.auction_proportion + config.bid_proportion;
        Ok(NexmarkGenerator {
            config,
            denominator,
        })
    }

    /// The model this generator follows.
    pub fn config(&self) -> &NexmarkConfig {
        &self.config
    }

    /// Which table event `event` belongs to.
    pub fn table_of(&self, event: u64) -> NexmarkTable {
        let position = event % self.denominator;
        if position < self.config.person_proportion {
            NexmarkTable::Person
        } else if position < self.config.person_proportion + self.config.auction_proportion {
            NexmarkTable::Auction
        } else {
            NexmarkTable::Bid
        }
    }

    /// The event time of event `event`, in milliseconds.
    pub fn timestamp(&self, event: u64) -> i64 {
        let delay_us = 1_000_000.0 / self.config.events_per_second as f64;
        self.config.base_time_ms + (event as f64 * delay_us / 1000.0).round() as i64
    }

    /// How many of the events `start..end` belong to `table`.
    pub fn count_in(&self, table: NexmarkTable, start: u64, end: u64) -> u64 {
        let below = |event: u64| {
            let (epochs, position) = (event / self.denominator, event % self.denominator);
            let (first, len) = self.table_span(table);
            epochs * len + position.saturating_sub(first).min(len)
        };
        below(end) - below(start.min(end))
    }

    /// The rows of `table` among events `start..end`, in event order.
    pub fn generate(&self, table: NexmarkTable, start: u64, end: u64) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..table.schema().fields().len()).collect();
        self.generate_columns(table, start, end, &all)
    }

    /// Columns `columns` (indices into the table's schema, in that order) of the rows of
    /// `table` among events `start..end`: the same values as [`NexmarkGenerator::generate`]
    /// gives, without building the other columns' strings.
    pub fn generate_columns(
        &self,
        table: NexmarkTable,
        start: u64,
        end: u64,
        columns: &[usize],
    ) -> Result<RecordBatch> {
        let schema = table.schema();
        let mut wanted = vec![false; schema.fields().len()];
        for &column in columns {
            *wanted.get_mut(column).ok_or_else(|| {
                ExecError::InvalidStream(format!(
                    "Nexmark table {} has no column {column}",
                    table.name()
                ))
            })? = true;
        }
        let rows = self.count_in(table, start, end) as usize;
        let events = self.events_of(table, start, end);
        let all = match table {
            NexmarkTable::Person => self.persons(events, rows, &wanted)?,
            NexmarkTable::Auction => self.auctions(events, rows, &wanted)?,
            NexmarkTable::Bid => self.bids(events, rows, &wanted)?,
        };
        let projected = schema
            .project(columns)
            .map_err(ExecError::arrow("Nexmark generator"))?;
        let arrays = columns.iter().map(|&column| all[column].clone()).collect();
        RecordBatch::try_new(Arc::new(projected), arrays)
            .map_err(ExecError::arrow("Nexmark generator"))
    }

    /// Position of the table's first event within each group of `denominator` events, and how
    /// many of them it has.
    fn table_span(&self, table: NexmarkTable) -> (u64, u64) {
        let config = &self.config;
        match table {
            NexmarkTable::Person => (0, config.person_proportion),
            NexmarkTable::Auction => (config.person_proportion, config.auction_proportion),
            NexmarkTable::Bid => (
                config.person_proportion + config.auction_proportion,
                config.bid_proportion,
            ),
        }
    }

    fn events_of(&self, table: NexmarkTable, start: u64, end: u64) -> impl Iterator<Item = u64> {
        let (first, len) = self.table_span(table);
        let denominator = self.denominator;
        (start..end).filter(move |event| {
            let position = event % denominator;
            position >= first && position < first + len
        })
    }

    /// The newest person id (from 0) as of event `event`.
    fn last_person(&self, event: u64) -> u64 {
        let epoch = event / self.denominator;
        let offset = (event % self.denominator).min(self.config.person_proportion - 1);
        epoch * self.config.person_proportion + offset
    }

    /// The newest auction id (from 0) as of event `event` (an auction follows the first person).
    fn last_auction(&self, event: u64) -> u64 {
        let config = &self.config;
        let mut epoch = event / self.denominator;
        let mut offset = event % self.denominator;
        if offset < config.person_proportion {
            if epoch == 0 {
                return 0;
            }
            epoch -= 1;
            offset = config.auction_proportion - 1;
        } else if config.person_proportion + config.auction_proportion <= offset {
            offset = config.auction_proportion - 1;
        } else {
            offset -= config.person_proportion;
        }
        epoch * config.auction_proportion + offset
    }

    /// A person among the active ones (or a little ahead of the newest).
    fn some_person(&self, event: u64, rng: &mut EventRng) -> u64 {
        let people = self.last_person(event) + 1;
        let active = people.min(self.config.active_people);
        people - active + rng.below(active + PERSON_ID_LEAD)
    }

    /// An auction among those in flight (or a little ahead of the newest).
    fn some_auction(&self, event: u64, rng: &mut EventRng) -> u64 {
        let newest = self.last_auction(event);
        let oldest = newest.saturating_sub(self.config.in_flight_auctions);
        oldest + rng.below(newest - oldest + 1 + AUCTION_ID_LEAD)
    }

    fn rng(&self, event: u64) -> EventRng {
        EventRng::for_event(self.config.seed, event)
    }

    fn bids(
        &self,
        events: impl Iterator<Item = u64>,
        rows: usize,
        wanted: &[bool],
    ) -> Result<Vec<ArrayRef>> {
        let config = &self.config;
        let urls = channel_urls();
        let mut auction = Vec::with_capacity(rows);
        let mut bidder = Vec::with_capacity(rows);
        let mut price = Vec::with_capacity(rows);
        let mut time = Vec::with_capacity(rows);
        let mut channel = StringColumn::with_capacity(rows, rows * 10, wanted[3]);
        let mut url = StringColumn::with_capacity(rows, rows * 64, wanted[4]);
        let mut extra = StringColumn::with_capacity(rows, rows * config.avg_bid_bytes, wanted[6]);
        for event in events {
            let mut rng = self.rng(event);
            let auction_id = if rng.below(config.hot_auction_ratio) > 0 {
                self.last_auction(event) / HOT_GROUP * HOT_GROUP
            } else {
                self.some_auction(event, &mut rng)
            };
            let bidder_id = if rng.below(config.hot_bidder_ratio) > 0 {
                // The second person of a hot group, so hot bidders are not hot sellers.
                self.last_person(event) / HOT_GROUP * HOT_GROUP + 1
            } else {
                self.some_person(event, &mut rng)
            };
            auction.push(auction_id as i64 + FIRST_AUCTION_ID);
            bidder.push(bidder_id as i64 + FIRST_PERSON_ID);
            price.push(rng.price());
            let (channel_name, channel_url) = if rng.below(config.hot_channel_ratio) > 0 {
                let hot = rng.below(HOT_CHANNELS.len() as u64) as usize;
                (HOT_CHANNELS[hot], urls.hot[hot].as_str())
            } else {
                let index = rng.below(CHANNELS as u64) as usize;
                (urls.names[index].as_str(), urls.urls[index].as_str())
            };
            channel.push(channel_name.as_bytes());
            url.push(channel_url.as_bytes());
            time.push(self.timestamp(event));
            extra.push_extra(&mut rng, 32, config.avg_bid_bytes);
        }
        Ok(vec![
            Arc::new(Int64Array::from(auction)),
            Arc::new(Int64Array::from(bidder)),
            Arc::new(Int64Array::from(price)),
            channel.finish()?,
            url.finish()?,
            Arc::new(TimestampMillisecondArray::from(time)),
            extra.finish()?,
        ])
    }

    fn auctions(
        &self,
        events: impl Iterator<Item = u64>,
        rows: usize,
        wanted: &[bool],
    ) -> Result<Vec<ArrayRef>> {
        let config = &self.config;
        let mut id = Vec::with_capacity(rows);
        let mut item_name = StringColumn::with_capacity(rows, rows * 20, wanted[1]);
        let mut description = StringColumn::with_capacity(rows, rows * 100, wanted[2]);
        let mut initial_bid = Vec::with_capacity(rows);
        let mut reserve = Vec::with_capacity(rows);
        let mut time = Vec::with_capacity(rows);
        let mut expires = Vec::with_capacity(rows);
        let mut seller = Vec::with_capacity(rows);
        let mut category = Vec::with_capacity(rows);
        let mut extra =
            StringColumn::with_capacity(rows, rows * config.avg_auction_bytes, wanted[9]);
        // Auctions last up to twice the time in which `in_flight_auctions` new ones arrive.
        let events_per_flight =
            config.in_flight_auctions * self.denominator / config.auction_proportion;
        for event in events {
            let mut rng = self.rng(event);
            let now = self.timestamp(event);
            id.push(self.last_auction(event) as i64 + FIRST_AUCTION_ID);
            item_name.push_letters(&mut rng, 20);
            description.push_letters(&mut rng, 100);
            let initial = rng.price();
            initial_bid.push(initial);
            reserve.push(initial + rng.price());
            let horizon = (self.timestamp(event + events_per_flight) - now) as u64;
            expires.push(now + 1 + rng.below((horizon * 2).max(1)) as i64);
            time.push(now);
            let seller_id = if rng.below(config.hot_seller_ratio) > 0 {
                self.last_person(event) / HOT_GROUP * HOT_GROUP
            } else {
                self.some_person(event, &mut rng)
            };
            seller.push(seller_id as i64 + FIRST_PERSON_ID);
            category.push(FIRST_CATEGORY_ID + rng.below(config.categories) as i64);
            extra.push_extra(&mut rng, 168, config.avg_auction_bytes);
        }
        Ok(vec![
            Arc::new(Int64Array::from(id)),
            item_name.finish()?,
            description.finish()?,
            Arc::new(Int64Array::from(initial_bid)),
            Arc::new(Int64Array::from(reserve)),
            Arc::new(TimestampMillisecondArray::from(time)),
            Arc::new(TimestampMillisecondArray::from(expires)),
            Arc::new(Int64Array::from(seller)),
            Arc::new(Int64Array::from(category)),
            extra.finish()?,
        ])
    }

    fn persons(
        &self,
        events: impl Iterator<Item = u64>,
        rows: usize,
        wanted: &[bool],
    ) -> Result<Vec<ArrayRef>> {
        let config = &self.config;
        let mut id = Vec::with_capacity(rows);
        let mut name = StringColumn::with_capacity(rows, rows * 12, wanted[1]);
        let mut email = StringColumn::with_capacity(rows, rows * 17, wanted[2]);
        let mut card = StringColumn::with_capacity(rows, rows * 19, wanted[3]);
        let mut city = StringColumn::with_capacity(rows, rows * 8, wanted[4]);
        let mut state = StringColumn::with_capacity(rows, rows * 2, wanted[5]);
        let mut time = Vec::with_capacity(rows);
        let mut extra =
            StringColumn::with_capacity(rows, rows * config.avg_person_bytes, wanted[7]);
        let mut text = Vec::with_capacity(32);
        for event in events {
            let mut rng = self.rng(event);
            id.push(self.last_person(event) as i64 + FIRST_PERSON_ID);
            let first = pick(&mut rng, &FIRST_NAMES);
            let last = pick(&mut rng, &LAST_NAMES);
            let name_len = first.len() + 1 + last.len();
            name.push_parts(&[first.as_bytes(), b" ", last.as_bytes()]);
            if email.wanted {
                text.clear();
                rng.letters(7, &mut text);
                text.push(b'@');
                rng.letters(5, &mut text);
                text.extend_from_slice(b".com");
                email.push(&text);
            } else {
                rng.skip_letters(7);
                rng.skip_letters(5);
            }
            if card.wanted {
                text.clear();
                for part in 0..4 {
                    if part > 0 {
                        text.push(b' ');
                    }
                    let digits = rng.below(10_000);
                    text.extend_from_slice(format!("{digits:04}").as_bytes());
                }
                card.push(&text);
            } else {
                rng.skip(4);
            }
            let city_name = pick(&mut rng, &US_CITIES);
            let state_name = pick(&mut rng, &US_STATES);
            city.push(city_name.as_bytes());
            state.push(state_name.as_bytes());
            time.push(self.timestamp(event));
            let size = 8 + name_len + 17 + 19 + city_name.len() + state_name.len();
            extra.push_extra(&mut rng, size, config.avg_person_bytes);
        }
        Ok(vec![
            Arc::new(Int64Array::from(id)),
            name.finish()?,
            email.finish()?,
            card.finish()?,
            city.finish()?,
            state.finish()?,
            Arc::new(TimestampMillisecondArray::from(time)),
            extra.finish()?,
        ])
    }
}

fn pick<'a>(rng: &mut EventRng, values: &[&'a str]) -> &'a str {
    values[rng.below(values.len() as u64) as usize]
}

/// The channel names and urls bids come through: four hot ones and 10,000 others.
struct ChannelUrls {
    hot: Vec<String>,
    names: Vec<String>,
    urls: Vec<String>,
}

fn channel_urls() -> &'static ChannelUrls {
    static URLS: OnceLock<ChannelUrls> = OnceLock::new();
    URLS.get_or_init(|| {
        let hot = (0..HOT_CHANNELS.len() as u64).map(base_url).collect();
        let names = (0..CHANNELS)
            .map(|index| format!("channel-{index}"))
            .collect();
        let urls = (0..CHANNELS as u64)
            .map(|index| {
                let mut url = base_url(index);
                if EventRng::for_event(u64::MAX, index).below(10) > 0 {
                    let channel_id = (index as i32).reverse_bits().unsigned_abs();
                    url.push_str(&format!("&channel_id={channel_id}"));
                }
                url
            })
            .collect();
        ChannelUrls { hot, names, urls }
    })
}

fn base_url(seed: u64) -> String {
    let mut rng = EventRng::for_event(u64::MAX - 1, seed);
    let mut parts = Vec::new();
    for _ in 0..3 {
        let len = 3 + rng.below(2) as usize;
        let part: String = (0..len)
            .map(|_| {
                if rng.below(13) == 0 {
                    '_'
                } else {
                    (b'a' + rng.below(26) as u8) as char
                }
            })
            .collect();
        parts.push(part);
    }
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        parts[0], parts[1], parts[2]
    )
}

/// A string column built from bytes that are ASCII by construction. A column nobody asked for
/// stores nothing, but draws its random values all the same (skipping them in O(1)), so the
/// other columns get the values they would have had.
struct StringColumn {
    wanted: bool,
    offsets: Vec<i32>,
    values: Vec<u8>,
}

impl StringColumn {
    fn with_capacity(rows: usize, bytes: usize, wanted: bool) -> StringColumn {
        let (rows, bytes) = if wanted { (rows, bytes) } else { (0, 0) };
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StringColumn {
            wanted,
            offsets,
            values: Vec::with_capacity(bytes),
        }
    }

    fn push(&mut self, value: &[u8]) {
        if self.wanted {
            self.values.extend_from_slice(value);
            self.offsets.push(self.values.len() as i32);
        }
    }

    fn push_parts(&mut self, parts: &[&[u8]]) {
        if self.wanted {
            for part in parts {
                self.values.extend_from_slice(part);
            }
            self.offsets.push(self.values.len() as i32);
        }
    }

    fn push_letters(&mut self, rng: &mut EventRng, count: usize) {
        if self.wanted {
            rng.letters(count, &mut self.values);
            self.offsets.push(self.values.len() as i32);
        } else {
            rng.skip_letters(count);
        }
    }

    /// Random letters padding an event of `current` bytes to about `average` bytes: uniform in
    /// `[0.8, 1.2)` times the shortfall, as the Nexmark generators do.
    fn push_extra(&mut self, rng: &mut EventRng, current: usize, average: usize) {
        let shortfall = average.saturating_sub(current);
        let delta = (shortfall + 2) / 5;
        let len = shortfall - delta
            + if delta == 0 {
                0
            } else {
                rng.below(2 * delta as u64) as usize
            };
        self.push_letters(rng, len);
    }

    /// The column (empty when it was not wanted).
    fn finish(self) -> Result<ArrayRef> {
        let offsets = OffsetBuffer::new(self.offsets.into());
        let array = StringArray::try_new(offsets, Buffer::from_vec(self.values), None)
            .map_err(ExecError::arrow("Nexmark generator"))?;
        Ok(Arc::new(array))
    }
}

/// The random values of one event: wyrand seeded from (seed, event number). Its state moves
/// by a constant per value, so values can be skipped in O(1).
struct EventRng(u64);

const WYRAND_STEP: u64 = 0xA076_1D64_78BD_642F;

impl EventRng {
    fn for_event(seed: u64, event: u64) -> EventRng {
        let mut state = seed ^ event.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        EventRng(state ^ (state >> 31))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(WYRAND_STEP);
        let product = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        (product >> 64) as u64 ^ product as u64
    }

    /// Uniform in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }

    /// A price in cents, log-uniform between $1 and $1,000,000.
    fn price(&mut self) -> i64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (10f64.powf(unit * 6.0) * 100.0).round() as i64
    }

    /// Skips `values` random values.
    fn skip(&mut self, values: u64) {
        self.0 = self.0.wrapping_add(WYRAND_STEP.wrapping_mul(values));
    }

    /// Skips the values `letters(count, ..)` would draw.
    fn skip_letters(&mut self, count: usize) {
        self.skip(count.div_ceil(8) as u64);
    }

    /// Appends `count` random lowercase letters, eight from each random word.
    fn letters(&mut self, count: usize, out: &mut Vec<u8>) {
        let mut left = count;
        while left > 0 {
            let word = self.next().to_le_bytes();
            let take = left.min(8);
            out.extend(
                word[..take]
                    .iter()
                    .map(|&byte| b'a' + ((u16::from(byte) * 26) >> 8) as u8),
            );
            left -= take;
        }
    }
}
