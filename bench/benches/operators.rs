//! Sabot's hash aggregation and hash join against DataFusion's, side by side in one run: the
//! same SQL over the same in-memory tables in one session, once on Sabot's operators (packed
//! keys, `sabot-kernels` tables) and once on DataFusion's physical plan, both on 2 threads.
//! Group-by on 1, 2 and 4 BIGINT keys with 10, 10^4 and 10^6 groups over 2M rows; join
//! build+probe with 10^5 and 10^7 build rows and a 2M-row probe side.
//!
//! `cargo bench -p sabot-bench --bench operators`; set `SABOT_BENCH_QUICK=1` to skip the
//! 10^7-row join.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sabot::{Engine, Sabot};
use sabot_bench::{keyed_table, session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const THREADS: usize = 2;
const ROWS: usize = 2_000_000;

fn run(sabot: &Sabot, query: &str, engine: Engine) -> usize {
    sabot
        .sql(query)
        .expect("the benchmark query plans")
        .with_engine(engine)
        .collect()
        .expect("the benchmark query runs")
        .iter()
        .map(|batch| batch.num_rows())
        .sum()
}

fn group_by(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_by");
    group.sample_size(10);
    for keys in [1usize, 2, 4] {
        for groups in [10usize, 10_000, 1_000_000] {
            let sabot = session(THREADS, vec![("t", keyed_table(ROWS, keys, groups))])
                .expect("a benchmark session");
            let columns: Vec<String> = (1..=keys).map(|key| format!("k{key}")).collect();
            let columns = columns.join(", ");
            let query = format!("SELECT {columns}, count(*), sum(v) FROM t GROUP BY {columns}");
            assert_eq!(run(&sabot, &query, Engine::Sabot), groups);
            assert_eq!(run(&sabot, &query, Engine::DataFusion), groups);
            for (name, engine) in [("sabot", Engine::Sabot), ("datafusion", Engine::DataFusion)] {
                group.bench_with_input(
                    BenchmarkId::new(name, format!("{keys}key_{groups}groups")),
                    &query,
                    |b, query| b.iter(|| black_box(run(&sabot, query, engine))),
                );
            }
        }
    }
    group.finish();
}

fn join(c: &mut Criterion) {
    let mut group = c.benchmark_group("join");
    group.sample_size(10);
    let quick = std::env::var_os("SABOT_BENCH_QUICK").is_some();
    let sizes: &[usize] = if quick {
        &[100_000]
    } else {
        &[100_000, 10_000_000]
    };
    for &build_rows in sizes {
        // Build keys are unique (a key/foreign-key join); every probe row finds its build row.
        let sabot = session(
            THREADS,
            vec![
                ("build", keyed_table(build_rows, 1, build_rows)),
                ("probe", keyed_table(ROWS, 1, build_rows)),
            ],
        )
        .expect("a benchmark session");
        let query =
            "SELECT count(*), sum(probe.v + build.v) FROM probe JOIN build ON probe.k1 = build.k1";
        for (name, engine) in [("sabot", Engine::Sabot), ("datafusion", Engine::DataFusion)] {
            group.bench_with_input(
                BenchmarkId::new(name, format!("{build_rows}build")),
                &query,
                |b, query| b.iter(|| black_box(run(&sabot, query, engine))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, group_by, join);
criterion_main!(benches);
