//! With the `cuda` feature, a join whose build side is large enough keeps its table on the GPU
//! and looks up large probe batches there: the SQL answer must be the one a plain count gives,
//! and the device must have done lookups. Skips, saying why, where no GPU is usable.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use sabot::Sabot;
use sabot_kernels::cuda::{Gpu, device_probe_rows};
use sabot_kernels::{GPU_MIN_BUILD_ROWS, GPU_MIN_PROBE_ROWS};

/// A sparse key (too spread out for a directly indexed table): the key of `index`.
fn key(index: u64) -> i64 {
    (index * 7919 + 3) as i64
}

/// Batches of (`k`, `v`) rows, `batch_rows` each, `v` numbering the rows.
fn batches(keys: &[i64], batch_rows: usize, schema: &Arc<Schema>) -> Vec<RecordBatch> {
    keys.chunks(batch_rows)
        .enumerate()
        .map(|(chunk, keys)| {
            let first = (chunk * batch_rows) as i64;
            RecordBatch::try_new(
                Arc::clone(schema),
                vec![
                    Arc::new(Int64Array::from(keys.to_vec())),
                    Arc::new(Int64Array::from_iter_values(
                        first..first + keys.len() as i64,
                    )),
                ],
            )
            .unwrap()
        })
        .collect()
}

fn int(batch: &RecordBatch, column: usize) -> i64 {
    let values = batch
        .column(column)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert!(values.is_valid(0));
    values.value(0)
}

#[test]
fn large_joins_probe_on_the_gpu_and_give_the_cpu_answer() {
    let gpu = match Gpu::shared() {
        Ok(gpu) => gpu,
        Err(reason) => {
            eprintln!(
                "large_joins_probe_on_the_gpu_and_give_the_cpu_answer: skipped, no usable GPU: {reason}"
            );
            return;
        }
    };
    eprintln!("GPU: {}", gpu.description());
    // Build keys with duplicates, probe keys half hitting; batches as large as the GPU's
    // probe threshold, whichever side the planner builds on.
    let build_rows = GPU_MIN_BUILD_ROWS * 5 / 4;
    let distinct = (build_rows - build_rows / 10) as u64;
    let build_keys: Vec<i64> = (0..build_rows as u64)
        .map(|row| key(row % distinct))
        .collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let probe_keys: Vec<i64> = (0..GPU_MIN_PROBE_ROWS * 8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            key(state % (distinct * 2))
        })
        .collect();
    let mut per_key: HashMap<i64, (i64, i64)> = HashMap::new();
    for (row, &key) in build_keys.iter().enumerate() {
        let entry = per_key.entry(key).or_default();
        entry.0 += 1;
        entry.1 += row as i64;
    }
    let (mut pairs, mut build_sum, mut probe_sum) = (0i64, 0i64, 0i64);
    for (row, key) in probe_keys.iter().enumerate() {
        if let Some(&(count, sum)) = per_key.get(key) {
            pairs += count;
            build_sum += sum;
            probe_sum += count * row as i64;
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let sabot = Sabot::builder().threads(4).build().unwrap();
    sabot
        .register_batches(
            "b",
            Arc::clone(&schema),
            batches(&build_keys, GPU_MIN_PROBE_ROWS, &schema),
        )
        .unwrap();
    sabot
        .register_batches(
            "p",
            Arc::clone(&schema),
            batches(&probe_keys, GPU_MIN_PROBE_ROWS, &schema),
        )
        .unwrap();
    let probed_before = device_probe_rows();
    let result = sabot
        .sql("SELECT COUNT(*), SUM(b.v), SUM(p.v) FROM p JOIN b ON p.k = b.k")
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        (int(&result[0], 0), int(&result[0], 1), int(&result[0], 2)),
        (pairs, build_sum, probe_sum)
    );
    assert!(
        device_probe_rows() - probed_before >= GPU_MIN_PROBE_ROWS as u64,
        "no probe batch was looked up on the GPU"
    );
}
