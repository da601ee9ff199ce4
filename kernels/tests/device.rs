//! The `cuda` feature's kernels against the CPU path on the same input. Each test needs a GPU
//! with the CUDA driver and NVRTC; where there is none it says why and passes without checking.

#![cfg(feature = "cuda")]

use arrow::array::{Float64Array, Int64Array};
use sabot_kernels::cuda::{DeviceJoinTable, Gpu};
use sabot_kernels::{
    Backend, GPU_MIN_BUILD_ROWS, GPU_MIN_GROUPS, GPU_MIN_PROBE_ROWS, GPU_MIN_ROWS, JoinHashTable,
    grouped_sum_i64, grouped_sum_on_cpu,
};

/// The GPU, or `None` after saying on stderr why the calling test checks nothing.
fn gpu(test: &str) -> Option<&'static Gpu> {
    match Gpu::shared() {
        Ok(gpu) => Some(gpu),
        Err(reason) => {
            eprintln!("{test}: skipped, no usable GPU: {reason}");
            None
        }
    }
}

/// Deterministic pseudo-random numbers.
fn random(seed: u64, count: usize) -> Vec<u64> {
    (0..count as u64)
        .map(|index| sabot_kernels::hash_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index))
        .collect()
}

/// `rows` values in about ±1e6 with every seventh null, and their group ids in `0..groups`.
fn grouped_input(rows: usize, groups: usize, seed: u64) -> (Vec<u32>, Vec<Option<i64>>) {
    let noise = random(seed, rows);
    let ids = noise.iter().map(|n| (n % groups as u64) as u32).collect();
    let values = noise
        .iter()
        .enumerate()
        .map(|(row, n)| (row % 7 != 3).then_some((n >> 20) as i64 % 1_000_000 - 500_000))
        .collect();
    (ids, values)
}

#[test]
fn integer_sums_equal_the_cpu_ones_in_shared_and_global_memory() {
    let Some(gpu) = gpu("integer_sums_equal_the_cpu_ones_in_shared_and_global_memory") else {
        return;
    };
    eprintln!("GPU: {}", gpu.description());
    for (rows, groups) in [
        (1, 1),
        (1000, 3),
        (300_000, 2048),
        (300_000, 2049),
        (500_000, 200_000),
    ] {
        let (ids, values) = grouped_input(rows, groups, rows as u64);
        let values = Int64Array::from(values);
        // A slice starting mid-byte of the validity bitmap.
        let (ids, values) = (
            &ids[5.min(rows - 1)..],
            values.slice(5.min(rows - 1), rows - 5.min(rows - 1)),
        );
        let expected = grouped_sum_on_cpu(groups, ids, &values).unwrap();
        let got = gpu.grouped_sum_i64(groups, ids, &values).unwrap();
        assert_eq!(got, expected, "{rows} rows into {groups} groups");
    }
}

#[test]
fn double_sums_equal_the_cpu_ones_within_rounding() {
    let Some(gpu) = gpu("double_sums_equal_the_cpu_ones_within_rounding") else {
        return;
    };
    for (rows, groups) in [(100_000, 10), (400_000, 100_000)] {
        let (ids, values) = grouped_input(rows, groups, 99);
        let values = Float64Array::from(
            values
                .into_iter()
                .map(|value| value.map(|v| v as f64 / 7.0))
                .collect::<Vec<_>>(),
        );
        let expected = grouped_sum_on_cpu(groups, &ids, &values).unwrap();
        let got = gpu.grouped_sum_f64(groups, &ids, &values).unwrap();
        assert_eq!(got.counts, expected.counts);
        for (group, (got, expected)) in got.sums.iter().zip(&expected.sums).enumerate() {
            assert!(
                (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
                "group {group}: {got} vs {expected}"
            );
        }
    }
}

#[test]
fn large_inputs_are_dispatched_to_the_gpu() {
    let Some(_) = gpu("large_inputs_are_dispatched_to_the_gpu") else {
        return;
    };
    let groups = GPU_MIN_GROUPS;
    let (ids, values) = grouped_input(GPU_MIN_ROWS, groups, 5);
    let values = Int64Array::from(values);
    let (result, backend) = grouped_sum_i64(groups, &ids, &values).unwrap();
    assert_eq!(backend, Backend::Gpu);
    assert_eq!(result, grouped_sum_on_cpu(groups, &ids, &values).unwrap());
    let few = Int64Array::from_iter_values(0..GPU_MIN_ROWS as i64);
    let (_, backend) = grouped_sum_i64(10, &vec![3; GPU_MIN_ROWS], &few).unwrap();
    assert_eq!(backend, Backend::Cpu, "few groups stay on the CPU");
    let (_, backend) = grouped_sum_i64(groups, &ids[..1000], &values.slice(0, 1000)).unwrap();
    assert_eq!(backend, Backend::Cpu, "few rows stay on the CPU");
    let mut bad_ids = ids.clone();
    bad_ids[GPU_MIN_ROWS / 2] = groups as u32;
    let error = grouped_sum_i64(groups, &bad_ids, &values).unwrap_err();
    assert!(error.to_string().contains("outside"), "{error}");
}

/// Build keys with duplicates (`distinct` keys) and unusable rows, and probe keys that hit, miss
/// or are unusable.
fn join_input(
    build_rows: usize,
    distinct: usize,
    probe_rows: usize,
) -> (Vec<u64>, Vec<bool>, Vec<u64>, Vec<bool>) {
    let distinct = distinct.max(1) as u64;
    let build_keys: Vec<u64> = random(1, build_rows)
        .iter()
        .map(|n| (n % distinct) << 20)
        .collect();
    let build_usable = (0..build_rows).map(|row| row % 11 != 0).collect();
    let probe_keys = random(2, probe_rows)
        .iter()
        .map(|n| (n % (distinct * 2)) << 20)
        .collect();
    let probe_usable = (0..probe_rows).map(|row| row % 13 != 0).collect();
    (build_keys, build_usable, probe_keys, probe_usable)
}

#[test]
fn device_join_probe_equals_the_cpu_probe() {
    let Some(gpu) = gpu("device_join_probe_equals_the_cpu_probe") else {
        return;
    };
    for (build_rows, distinct, probe_rows) in [
        (1, 1, 5),
        (1000, 300, 0),
        (30_000, 10_000, 100_000),
        (100_000, 10, 3000),
    ] {
        let (build_keys, build_usable, probe_keys, probe_usable) =
            join_input(build_rows, distinct, probe_rows);
        let cpu = JoinHashTable::build(&build_keys, &build_usable).unwrap();
        let device = DeviceJoinTable::build(gpu, &build_keys, &build_usable).unwrap();
        let (mut cpu_probe, mut cpu_build) = (Vec::new(), Vec::new());
        cpu.probe(&probe_keys, &probe_usable, &mut cpu_probe, &mut cpu_build);
        let (mut gpu_probe, mut gpu_build) = (Vec::new(), Vec::new());
        device
            .probe(&probe_keys, &probe_usable, &mut gpu_probe, &mut gpu_build)
            .unwrap();
        assert_eq!(
            (gpu_probe, gpu_build),
            (cpu_probe, cpu_build),
            "{build_rows} build rows"
        );
    }
}

#[test]
fn an_offloaded_table_probes_large_batches_on_the_gpu_with_the_same_pairs() {
    let Some(_) = gpu("an_offloaded_table_probes_large_batches_on_the_gpu_with_the_same_pairs")
    else {
        return;
    };
    let (build_keys, build_usable, probe_keys, probe_usable) = join_input(
        GPU_MIN_BUILD_ROWS * 12 / 10,
        GPU_MIN_BUILD_ROWS / 3,
        GPU_MIN_PROBE_ROWS * 2,
    );
    let cpu = JoinHashTable::build(&build_keys, &build_usable).unwrap();
    let mut offloaded = JoinHashTable::build(&build_keys, &build_usable).unwrap();
    assert!(offloaded.offload(&build_keys, &build_usable));
    let (mut expected_probe, mut expected_build) = (Vec::new(), Vec::new());
    cpu.probe(
        &probe_keys,
        &probe_usable,
        &mut expected_probe,
        &mut expected_build,
    );
    let (mut probe, mut build) = (vec![7], vec![7]);
    offloaded.probe(&probe_keys, &probe_usable, &mut probe, &mut build);
    assert_eq!(
        (&probe[1..], &build[1..]),
        (&expected_probe[..], &expected_build[..])
    );
    let mut small = JoinHashTable::build(&build_keys[..1000], &build_usable[..1000]).unwrap();
    assert!(!small.offload(&build_keys[..1000], &build_usable[..1000]));
}
