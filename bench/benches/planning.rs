//! Planning time of every TPC-H query, Sabot's planner side by side with DataFusion's, in one
//! run: each iteration plans the query text from scratch on TPC-H SF 1 tables. For Sabot that is
//! SQL parsing, DataFusion's logical optimization, then Sabot's statistics, cardinality
//! estimates, join ordering and physical plan; for DataFusion, the same parsing and its own
//! physical planning. Both are timed through `EXPLAIN` (`DataFrame::explain`), so each figure
//! also holds the plan's text: an upper bound of the planning alone. Table statistics are
//! computed once, when a query first needs them, before the timed iterations.
//!
//! `cargo bench -p sabot-bench --bench planning`. The tables are generated under
//! `$SABOT_DATA_DIR` (default: `sabot-data` at the workspace's root) at SF 1 the first time,
//! or at `$SABOT_BENCH_SF`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sabot::{Engine, Sabot, tpch};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn tables() -> PathBuf {
    let sf: f64 = std::env::var("SABOT_BENCH_SF")
        .ok()
        .and_then(|sf| sf.parse().ok())
        .unwrap_or(1.0);
    // `cargo bench` runs this in `bench/`: the default is the workspace's `sabot-data`, where
    // `sabot bench tpch` keeps the same tables.
    let data_dir = std::env::var_os("SABOT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sabot-data")));
    let dir = tpch::cache_dir(&data_dir, sf);
    if !tpch::generate::is_complete(&dir) {
        tpch::generate::generate(sf, &dir, 2, &|_| {}).expect("TPC-H tables are generated");
    }
    dir
}

fn plan(sabot: &Sabot, query: &str, engine: Engine) -> usize {
    sabot
        .sql(query)
        .expect("the query parses")
        .with_engine(engine)
        .explain(false)
        .expect("the query plans")
        .len()
}

fn planning(c: &mut Criterion) {
    let dir = tables();
    let sabot = Sabot::builder().threads(2).build().expect("a session");
    tpch::register(&sabot, &dir).expect("the TPC-H tables register");
    let mut group = c.benchmark_group("planning");
    group.sample_size(20);
    for number in 1..=tpch::QUERY_COUNT {
        let query = tpch::query(number).expect("a TPC-H query");
        for (name, engine) in [("sabot", Engine::Sabot), ("datafusion", Engine::DataFusion)] {
            plan(&sabot, query, engine);
            group.bench_with_input(
                BenchmarkId::new(name, format!("q{number}")),
                &query,
                |b, query| b.iter(|| black_box(plan(&sabot, query, engine))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
