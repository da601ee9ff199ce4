//! GPU kernels against the CPU path, side by side in one run (`cargo bench -p sabot-kernels
//! --features cuda --bench device`): grouped SUM/COUNT of 2^24 `Int64` rows into 10 to 1e6
//! groups, and probes of a 1e7-row join table, each on one CPU thread, on all CPU threads, and on
//! the GPU (copies to and from the device included). Smaller inputs show where the GPU starts to
//! pay, which sets `GPU_MIN_ROWS`, `GPU_MIN_GROUPS` and `GPU_MIN_PROBE_ROWS`. The
//! `join_probe_batches` group probes as a query's pipelines do: every thread probes batches of
//! its own, one call per batch, on the CPU table or on the device, for hashed (sparse) and
//! directly indexed (dense) build keys. Exits with a message where no GPU is usable.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::Int64Array;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use sabot_kernels::cuda::{DeviceJoinTable, Gpu};
use sabot_kernels::{GroupedSums, JoinHashTable, grouped_sum_on_cpu};

/// A deterministic stream of pseudo-random numbers (splitmix64).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        sabot_kernels::hash_u64(self.0)
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The CPU path on every thread: a partial result per chunk of rows, then added up.
fn grouped_sum_all_threads(groups: usize, ids: &[u32], values: &Int64Array) -> GroupedSums<i64> {
    let chunk = ids.len().div_ceil(threads());
    let partials: Vec<GroupedSums<i64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ids.len())
            .step_by(chunk)
            .map(|start| {
                let length = chunk.min(ids.len() - start);
                let (ids, values) = (&ids[start..start + length], values.slice(start, length));
                scope.spawn(move || grouped_sum_on_cpu(groups, ids, &values).unwrap())
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let mut total = GroupedSums {
        sums: vec![0i64; groups],
        counts: vec![0u64; groups],
    };
    for partial in partials {
        for group in 0..groups {
            total.sums[group] = total.sums[group].wrapping_add(partial.sums[group]);
            total.counts[group] += partial.counts[group];
        }
    }
    total
}

/// One grouped-sum case on one CPU thread, on all of them, and on the GPU.
fn bench_grouped_sum(
    group: &mut BenchmarkGroup<'_, WallTime>,
    gpu: &Gpu,
    groups: usize,
    ids: &[u32],
    values: &Int64Array,
) {
    let case = format!("{}rows_{groups}groups", ids.len());
    group.bench_function(BenchmarkId::new("cpu_1_thread", &case), |b| {
        b.iter(|| black_box(grouped_sum_on_cpu(groups, ids, values).unwrap()))
    });
    group.bench_function(BenchmarkId::new("cpu_all_threads", &case), |b| {
        b.iter(|| black_box(grouped_sum_all_threads(groups, ids, values)))
    });
    group.bench_function(BenchmarkId::new("gpu", &case), |b| {
        b.iter(|| black_box(gpu.grouped_sum_i64(groups, ids, values).unwrap()))
    });
}

fn grouped_sums(criterion: &mut Criterion, gpu: &Gpu) {
    let mut random = Random(7);
    let rows = 1usize << 24;
    let values =
        Int64Array::from_iter_values((0..rows).map(|_| (random.next() % 1_000_000) as i64));
    let mut group = criterion.benchmark_group("grouped_sum_i64");
    for groups in [10usize, 10_000, 100_000, 1_000_000] {
        let ids: Vec<u32> = (0..rows)
            .map(|_| (random.next() % groups as u64) as u32)
            .collect();
        let expected = grouped_sum_on_cpu(groups, &ids, &values).unwrap();
        assert_eq!(
            gpu.grouped_sum_i64(groups, &ids, &values).unwrap(),
            expected
        );
        bench_grouped_sum(&mut group, gpu, groups, &ids, &values);
    }
    for rows in [1usize << 18, 1 << 20, 1 << 22] {
        let groups = 1_000_000;
        let ids: Vec<u32> = (0..rows)
            .map(|_| (random.next() % groups as u64) as u32)
            .collect();
        let values = values.slice(0, rows);
        bench_grouped_sum(&mut group, gpu, groups, &ids, &values);
    }
    group.finish();
}

/// Probe keys of which half are build keys (picked by `random`) and half are random.
fn half_hitting_probe_keys(random: &mut Random, build_keys: &[u64], rows: usize) -> Vec<u64> {
    (0..rows)
        .map(|row| match row % 2 {
            0 => build_keys[random.next() as usize % build_keys.len()],
            _ => random.next() >> 8,
        })
        .collect()
}

/// Probes `keys` as a pipeline does: each thread takes the next `batch_rows` keys and probes
/// them in one call, until all are probed.
fn probe_in_batches(
    keys: &[u64],
    usable: &[bool],
    batch_rows: usize,
    probe: impl Fn(&[u64], &[bool]) + Sync,
) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads() {
            scope.spawn(|| {
                loop {
                    let start = next.fetch_add(batch_rows, Ordering::Relaxed);
                    if start >= keys.len() {
                        break;
                    }
                    let end = (start + batch_rows).min(keys.len());
                    probe(&keys[start..end], &usable[start..end]);
                }
            });
        }
    })
}

/// 2^22 probes in batches of 8K, 32K (the Parquet scans' batch size) and 256K rows, every
/// thread probing its own batches, into a hashed table of 10^7 sparse keys and into a direct
/// table of 10^7 dense keys (every fourth integer, as TPC-H's order keys), on the CPU and on the
/// device.
fn join_probe_batches(criterion: &mut Criterion, gpu: &'static Gpu) {
    let mut random = Random(13);
    let build_rows = 10_000_000usize;
    let build_usable = vec![true; build_rows];
    let sparse: Vec<u64> = (0..build_rows).map(|_| random.next() >> 8).collect();
    let dense: Vec<u64> = (0..build_rows as u64).map(|row| row * 4 + 1).collect();
    let mut group = criterion.benchmark_group("join_probe_batches");
    for (name, build_keys) in [("sparse", sparse), ("dense", dense)] {
        let cpu_table = JoinHashTable::build(&build_keys, &build_usable).unwrap();
        let device_table = DeviceJoinTable::build(gpu, &build_keys, &build_usable).unwrap();
        let keys = half_hitting_probe_keys(&mut random, &build_keys, 1 << 22);
        let usable = vec![true; keys.len()];
        for batch_rows in [1usize << 13, 1 << 15, 1 << 18] {
            let case = format!("{name}_1e7_build_{batch_rows}rows_per_batch");
            group.bench_function(BenchmarkId::new("cpu_all_threads", &case), |b| {
                b.iter(|| {
                    probe_in_batches(&keys, &usable, batch_rows, |keys, usable| {
                        let (mut probe, mut build) = (Vec::new(), Vec::new());
                        cpu_table.probe(keys, usable, &mut probe, &mut build);
                        black_box((probe, build));
                    })
                })
            });
            group.bench_function(BenchmarkId::new("gpu_from_all_threads", &case), |b| {
                b.iter(|| {
                    probe_in_batches(&keys, &usable, batch_rows, |keys, usable| {
                        let (mut probe, mut build) = (Vec::new(), Vec::new());
                        device_table
                            .probe(keys, usable, &mut probe, &mut build)
                            .unwrap();
                        black_box((probe, build));
                    })
                })
            });
        }
    }
    group.finish();
}

fn join_probes(criterion: &mut Criterion, gpu: &'static Gpu) {
    let mut random = Random(11);
    let build_rows = 10_000_000usize;
    // Sparse keys, so the CPU table is hash-partitioned rather than a direct array.
    let build_keys: Vec<u64> = (0..build_rows).map(|_| random.next() >> 8).collect();
    let build_usable = vec![true; build_rows];
    let cpu_table = JoinHashTable::build(&build_keys, &build_usable).unwrap();
    let device_table = DeviceJoinTable::build(gpu, &build_keys, &build_usable).unwrap();
    let mut group = criterion.benchmark_group("join_probe_1e7_build");
    for probe_rows in [1usize << 16, 1 << 18, 1 << 20, 10_000_000] {
        let keys = half_hitting_probe_keys(&mut random, &build_keys, probe_rows);
        let usable = vec![true; probe_rows];
        let (mut cpu_pairs, mut gpu_pairs) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        cpu_table.probe(&keys, &usable, &mut cpu_pairs.0, &mut cpu_pairs.1);
        device_table
            .probe(&keys, &usable, &mut gpu_pairs.0, &mut gpu_pairs.1)
            .unwrap();
        assert_eq!(cpu_pairs, gpu_pairs);
        let case = format!("{probe_rows}probes");
        group.bench_function(BenchmarkId::new("cpu_1_thread", &case), |b| {
            b.iter(|| {
                let (mut probe, mut build) = (Vec::new(), Vec::new());
                cpu_table.probe(&keys, &usable, &mut probe, &mut build);
                black_box((probe, build))
            })
        });
        if probe_rows >= 1 << 18 {
            let chunk = probe_rows.div_ceil(threads());
            group.bench_function(BenchmarkId::new("cpu_all_threads", &case), |b| {
                b.iter(|| {
                    std::thread::scope(|scope| {
                        for start in (0..probe_rows).step_by(chunk) {
                            let end = (start + chunk).min(probe_rows);
                            let (keys, usable, table) =
                                (&keys[start..end], &usable[start..end], &cpu_table);
                            scope.spawn(move || {
                                let (mut probe, mut build) = (Vec::new(), Vec::new());
                                table.probe(keys, usable, &mut probe, &mut build);
                                black_box((probe, build))
                            });
                        }
                    })
                })
            });
        }
        group.bench_function(BenchmarkId::new("gpu", &case), |b| {
            b.iter(|| {
                let (mut probe, mut build) = (Vec::new(), Vec::new());
                device_table
                    .probe(&keys, &usable, &mut probe, &mut build)
                    .unwrap();
                black_box((probe, build))
            })
        });
    }
    group.finish();
}

fn main() {
    let gpu = match Gpu::shared() {
        Ok(gpu) => gpu,
        Err(reason) => {
            eprintln!("device benchmark skipped: no usable GPU: {reason}");
            return;
        }
    };
    println!("GPU: {}", gpu.description());
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    grouped_sums(&mut criterion, gpu);
    join_probes(&mut criterion, gpu);
    join_probe_batches(&mut criterion, gpu);
    criterion.final_summary();
}
