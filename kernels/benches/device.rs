//! GPU kernels against the CPU path, side by side in one run (`cargo bench -p sabot-kernels
//! --features cuda --bench device`): grouped SUM/COUNT of 2^24 `Int64` rows into 10 to 1e6
//! groups, and probes of a 1e7-row join table, each on one CPU thread, on all CPU threads, and on
//! the GPU (copies to and from the device included). Smaller inputs show where the GPU starts to
//! pay, which sets `GPU_MIN_ROWS`, `GPU_MIN_GROUPS` and `GPU_MIN_PROBE_ROWS`. Exits with a
//! message where no GPU is usable.

use std::hint::black_box;
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
        // Half the probe keys are build keys, half miss.
        let keys: Vec<u64> = (0..probe_rows)
            .map(|row| match row % 2 {
                0 => build_keys[random.next() as usize % build_rows],
                _ => random.next() >> 8,
            })
            .collect();
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
    criterion.final_summary();
}
