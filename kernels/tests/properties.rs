//! Property tests: every kernel agrees with a plain scalar reference on random input, with nulls,
//! all-equal keys and values outside the build side's range.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Date32Array, Decimal128Array, Int16Array, Int64Array};
use arrow::datatypes::DataType;
use arrow::datatypes::Int64Type;
use proptest::prelude::*;
use sabot_kernels::{
    DecimalOp, DecimalOperand, Fold, GroupMap, GroupedCount, GroupedFold, GroupedMean,
    JoinHashTable, JoinPartition, KeyPacking, OffsetColumn, PartitionedRows, decimal_arithmetic,
    decimal_offset_product, grouped_sum_i64, hash_u64_slice,
};

fn nullable_i64(max: i64) -> impl Strategy<Value = Vec<Option<i64>>> {
    prop::collection::vec(prop::option::weighted(0.9, -max..max), 0..300)
}

/// The packed join keys of BIGINT `build` and `probe` values (packed in the build side's range),
/// with whether each row's key is usable: (build keys, build usable, probe keys, probe usable).
fn packed_join_keys(
    build: &[Option<i64>],
    probe: &[Option<i64>],
) -> (Vec<u64>, Vec<bool>, Vec<u64>, Vec<bool>) {
    let build_column: ArrayRef = Arc::new(Int64Array::from(build.to_vec()));
    let probe_column: ArrayRef = Arc::new(Int64Array::from(probe.to_vec()));
    let packing = KeyPacking::for_join_build(std::slice::from_ref(&build_column))
        .expect("BIGINT keys of a small range pack");
    let (mut build_keys, mut build_usable) = (Vec::new(), Vec::new());
    packing
        .pack(&[build_column], &mut build_keys, &mut build_usable)
        .unwrap();
    let (mut probe_keys, mut probe_usable) = (Vec::new(), Vec::new());
    packing
        .pack(&[probe_column], &mut probe_keys, &mut probe_usable)
        .unwrap();
    (build_keys, build_usable, probe_keys, probe_usable)
}

/// Every (probe row, build row) pair of equal non-null values, by nested loops.
fn nested_loop_pairs(probe: &[Option<i64>], build: &[Option<i64>]) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    for (probe_row, probe_value) in probe.iter().enumerate() {
        for (build_row, build_value) in build.iter().enumerate() {
            if probe_value.is_some() && probe_value == build_value {
                pairs.push((probe_row as u32, build_row as u32));
            }
        }
    }
    pairs
}

/// Every key of `row`, nulls shown as "null".
fn row_tuple(columns: &[ArrayRef], row: usize) -> Vec<String> {
    columns
        .iter()
        .map(|column| {
            if column.is_valid(row) {
                arrow::util::display::array_value_to_string(column, row).expect("displayable")
            } else {
                "null".to_string()
            }
        })
        .collect()
}

/// The key tuple of `row`, or `None` when a key is null.
fn tuple(columns: &[ArrayRef], row: usize) -> Option<Vec<String>> {
    columns
        .iter()
        .map(|column| {
            column.is_valid(row).then(|| {
                arrow::util::display::array_value_to_string(column, row).expect("displayable")
            })
        })
        .collect()
}

proptest! {
    /// A direct table of unique build keys (the path without a branch per probe row) appends
    /// exactly the nested-loop pairs after what the output vectors already hold.
    #[test]
    fn unique_direct_probe_equals_nested_loops(
        build in prop::sample::subsequence((0..500i64).collect::<Vec<_>>(), 0..200)
            .prop_shuffle(),
        nulls in prop::collection::vec(any::<bool>(), 200),
        probe in nullable_i64(600),
    ) {
        let build: Vec<Option<i64>> = build
            .iter()
            .zip(&nulls)
            .map(|(&key, &null)| (!null || key % 3 != 0).then_some(key))
            .collect();
        let (build_keys, build_usable, probe_keys, probe_usable) = packed_join_keys(&build, &probe);
        let direct = JoinHashTable::try_direct(&build_keys, &build_usable)
            .expect("keys below 2^18 are indexed directly");
        let (mut probe_rows, mut build_rows) = (vec![7u32], vec![9u32]);
        direct.probe(&probe_keys, &probe_usable, &mut probe_rows, &mut build_rows);
        let mut expected = vec![(7u32, 9u32)];
        expected.extend(nested_loop_pairs(&probe, &build));
        let actual: Vec<(u32, u32)> = probe_rows.into_iter().zip(build_rows).collect();
        prop_assert_eq!(actual, expected);
    }
}

proptest! {
    #[test]
    fn join_probe_equals_nested_loops(
        build in nullable_i64(20),
        // Keys near the build's, or mostly outside them (the probe that reads the key bitmap
        // first and looks up only the keys it holds).
        probe in prop_oneof![nullable_i64(40), nullable_i64(4_000)],
        partitions_log in 0u32..4,
    ) {
        let (build_keys, build_usable, probe_keys, probe_usable) = packed_join_keys(&build, &probe);
        let mut hashes = Vec::new();
        hash_u64_slice(&build_keys, &mut hashes);
        let partitions = 1usize << partitions_log;
        let scattered = PartitionedRows::scatter(&hashes, &build_usable, partitions).unwrap();
        let table = JoinHashTable::from_partitions(
            (0..partitions)
                .map(|partition| {
                    JoinPartition::build(&build_keys, &hashes, scattered.partition(partition))
                })
                .collect(),
            &build_keys,
            &build_usable,
        );
        let direct = JoinHashTable::try_direct(&build_keys, &build_usable)
            .expect("keys of a range of 40 are dense");
        let (mut probe_rows, mut build_rows) = (Vec::new(), Vec::new());
        table.probe(&probe_keys, &probe_usable, &mut probe_rows, &mut build_rows);
        let (mut direct_probe_rows, mut direct_build_rows) = (Vec::new(), Vec::new());
        direct.probe(&probe_keys, &probe_usable, &mut direct_probe_rows, &mut direct_build_rows);
        prop_assert_eq!(&direct_probe_rows, &probe_rows);
        prop_assert_eq!(&direct_build_rows, &build_rows);
        let actual: Vec<(u32, u32)> = probe_rows.into_iter().zip(build_rows).collect();
        prop_assert_eq!(actual, nested_loop_pairs(&probe, &build));
        let mut found = Vec::new();
        table.contains(&probe_keys, &probe_usable, &mut found);
        let mut direct_found = Vec::new();
        direct.contains(&probe_keys, &probe_usable, &mut direct_found);
        prop_assert_eq!(&direct_found, &found);
        let expected_found: Vec<bool> = probe
            .iter()
            .map(|value| value.is_some() && build.contains(value))
            .collect();
        prop_assert_eq!(found, expected_found);
    }

    #[test]
    fn two_column_join_packing_keeps_equality(
        rows in prop::collection::vec(
            (prop::option::weighted(0.9, 0i64..1_000_000), prop::option::weighted(0.9, -50i16..50)),
            1..200,
        ),
    ) {
        let first: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|row| row.0).collect::<Vec<_>>()));
        let second: ArrayRef = Arc::new(Int16Array::from(rows.iter().map(|row| row.1).collect::<Vec<_>>()));
        let columns = vec![first, second];
        let packing = KeyPacking::for_join_build(&columns).expect("20 + 7 bits pack");
        let (mut keys, mut usable) = (Vec::<u64>::new(), Vec::new());
        packing.pack(&columns, &mut keys, &mut usable).unwrap();
        for left in 0..rows.len() {
            prop_assert_eq!(usable[left], rows[left].0.is_some() && rows[left].1.is_some());
            for right in 0..rows.len() {
                if usable[left] && usable[right] {
                    prop_assert_eq!(keys[left] == keys[right], rows[left] == rows[right]);
                }
            }
        }
    }

    #[test]
    fn group_keys_round_trip_through_packing(
        rows in prop::collection::vec(
            (prop::option::weighted(0.8, any::<i32>()), prop::option::weighted(0.8, -99_999i64..99_999)),
            0..200,
        ),
        all_equal in any::<bool>(),
    ) {
        let rows: Vec<_> = if all_equal {
            rows.iter().map(|_| rows.first().copied().unwrap_or((None, None))).collect()
        } else {
            rows
        };
        let dates: ArrayRef = Arc::new(Date32Array::from(rows.iter().map(|row| row.0).collect::<Vec<_>>()));
        let prices: ArrayRef = Arc::new(
            Decimal128Array::from(rows.iter().map(|row| row.1.map(i128::from)).collect::<Vec<_>>())
                .with_precision_and_scale(15, 2)
                .unwrap(),
        );
        let columns = [dates, prices];
        let fields: Vec<(DataType, bool)> = columns
            .iter()
            .map(|column| (column.data_type().clone(), true))
            .collect();
        let too_wide: Vec<(DataType, bool)> = fields.iter().chain(&fields).cloned().collect();
        prop_assert!(KeyPacking::for_group_keys(&too_wide, &[]).is_none(), "2 x 98 bits do not pack");
        let packing = KeyPacking::for_group_keys(&fields, &[]).expect("32 + 1 + 64 + 1 bits pack");
        prop_assert_eq!(packing.bits(), 98);
        let (mut narrow, mut usable) = (Vec::<u64>::new(), Vec::new());
        prop_assert!(packing.pack(&columns, &mut narrow, &mut usable).is_err(), "98 bits need a u128");
        let mut keys = Vec::<u128>::new();
        packing.pack(&columns, &mut keys, &mut usable).unwrap();
        prop_assert!(usable.iter().all(|&usable| usable));
        let mut map = GroupMap::new();
        let mut ids = Vec::new();
        map.intern(&keys, &mut ids);
        let mut reference: HashMap<Vec<String>, usize> = HashMap::new();
        let mut reference_tuples = Vec::new();
        for (row, &id) in ids.iter().enumerate() {
            let key = row_tuple(&columns, row);
            let next = reference.len();
            let expected = *reference.entry(key.clone()).or_insert(next);
            if expected == next {
                reference_tuples.push(key);
            }
            prop_assert_eq!(expected, id);
        }
        let unpacked = packing.unpack(&map.keys()).unwrap();
        prop_assert_eq!(unpacked[0].len(), map.len());
        for (id, expected) in reference_tuples.iter().enumerate() {
            prop_assert_eq!(&row_tuple(&unpacked, id), expected);
        }
    }

    #[test]
    fn decimal_group_keys_round_trip(values in prop::collection::vec(prop::option::weighted(0.8, -10i128.pow(15)..10i128.pow(15)), 0..100)) {
        let column: ArrayRef = Arc::new(
            Decimal128Array::from(values.clone()).with_precision_and_scale(15, 2).unwrap(),
        );
        let packing = KeyPacking::for_group_keys(&[(column.data_type().clone(), false)], &[])
            .expect("a DECIMAL(15, 2) packs");
        let (mut keys, mut usable) = (Vec::<u64>::new(), Vec::new());
        packing.pack(std::slice::from_ref(&column), &mut keys, &mut usable).unwrap();
        let unpacked = packing.unpack(&keys).unwrap();
        for (row, value) in values.iter().enumerate() {
            if value.is_some() {
                prop_assert_eq!(tuple(&unpacked, row), tuple(std::slice::from_ref(&column), row));
            } else {
                prop_assert!(!usable[row], "a null in a layout without null bits is unusable");
            }
        }
    }

    #[test]
    fn grouped_sum_equals_a_plain_loop(
        rows in prop::collection::vec((0u32..8, prop::option::weighted(0.8, any::<i64>())), 0..300),
        offset in 0usize..5,
    ) {
        let groups = 8;
        let values = Int64Array::from(rows.iter().map(|(_, value)| *value).collect::<Vec<_>>());
        let offset = offset.min(rows.len());
        let values = values.slice(offset, rows.len() - offset);
        let ids: Vec<u32> = rows[offset..].iter().map(|(id, _)| *id).collect();
        let (result, _) = grouped_sum_i64(groups, &ids, &values).unwrap();
        let mut sums = vec![0i64; groups];
        let mut counts = vec![0u64; groups];
        for (&id, value) in ids.iter().zip(&rows[offset..]) {
            if let Some(value) = value.1 {
                sums[id as usize] = sums[id as usize].wrapping_add(value);
                counts[id as usize] += 1;
            }
        }
        prop_assert_eq!(result.sums, sums);
        prop_assert_eq!(result.counts, counts);
    }

    #[test]
    fn ranged_group_keys_round_trip_and_refuse_values_outside(
        values in prop::collection::vec(prop::option::weighted(0.8, -50i64..50), 1..200),
        low in -60i64..0,
        width in 0i64..80,
    ) {
        let column: ArrayRef = Arc::new(Int64Array::from(values.clone()));
        let packing = KeyPacking::for_group_keys(
            &[(DataType::Int64, true)],
            &[Some((low, low + width))],
        )
        .expect("a ranged BIGINT packs");
        let bits = 64 - (width as u64).leading_zeros();
        prop_assert_eq!(packing.bits(), bits + 1);
        // The field holds the range rounded up to whole bits.
        let field_high = low + (1i64 << bits) - 1;
        let (mut keys, mut usable) = (Vec::<u64>::new(), Vec::new());
        packing.pack(std::slice::from_ref(&column), &mut keys, &mut usable).unwrap();
        let unpacked = packing.unpack(&keys).unwrap();
        for (row, value) in values.iter().enumerate() {
            match value {
                None => {
                    prop_assert!(usable[row], "a null has its own bit");
                    prop_assert!(unpacked[0].is_null(row));
                }
                Some(value) if (low..=field_high).contains(value) => {
                    prop_assert!(usable[row]);
                    prop_assert_eq!(tuple(&unpacked, row), tuple(std::slice::from_ref(&column), row));
                }
                Some(_) => prop_assert!(!usable[row], "a value outside the field does not pack"),
            }
        }
    }
}

/// Batches of group keys: each batch draws from a narrow range, a wide one, or keys past 64
/// bits, so a map meets every switch between its direct array and its hash table.
fn group_key_batches() -> impl Strategy<Value = Vec<Vec<u128>>> {
    let batch = prop_oneof![
        prop::collection::vec(0u128..50, 0..200),
        prop::collection::vec(1_000u128..300_000, 0..200),
        prop::collection::vec(0u128..u64::MAX as u128, 0..50),
        prop::collection::vec((0u128..4).prop_map(|high| (high << 64) | 7), 0..20),
    ];
    prop::collection::vec(batch, 1..8)
}

/// A plain reference of first-appearance group ids.
#[derive(Default)]
struct FirstAppearance {
    ids: HashMap<u128, usize>,
    keys: Vec<u128>,
}

impl FirstAppearance {
    fn intern(&mut self, batch: &[u128]) -> Vec<usize> {
        batch
            .iter()
            .map(|&key| {
                *self.ids.entry(key).or_insert_with(|| {
                    self.keys.push(key);
                    self.keys.len() - 1
                })
            })
            .collect()
    }
}

proptest! {
    #[test]
    fn group_ids_follow_first_appearance_in_every_index(batches in group_key_batches()) {
        let (mut wide, mut wide_reference) = (GroupMap::<u128>::new(), FirstAppearance::default());
        let (mut narrow, mut narrow_reference) = (GroupMap::<u64>::new(), FirstAppearance::default());
        for batch in &batches {
            let mut ids = Vec::new();
            wide.intern(batch, &mut ids);
            prop_assert_eq!(ids, wide_reference.intern(batch));
            if batch.iter().all(|&key| key <= u64::MAX as u128) {
                let keys: Vec<u64> = batch.iter().map(|&key| key as u64).collect();
                let mut ids = Vec::new();
                narrow.intern(&keys, &mut ids);
                prop_assert_eq!(ids, narrow_reference.intern(batch));
            }
        }
        prop_assert_eq!(wide.keys(), wide_reference.keys);
        let narrow_keys: Vec<u128> = narrow.keys().into_iter().map(u128::from).collect();
        prop_assert_eq!(narrow_keys, narrow_reference.keys);
    }
}

#[test]
fn repeated_keys_in_a_large_hashed_map_keep_their_ids() {
    // Sparse keys (hashed) in runs of 1 to 4, enough groups for the table to outgrow the cache.
    let keys: Vec<u64> = (0..160_000u64)
        .flat_map(|run| {
            let key = run.wrapping_mul(0x9e37_79b9_7f4a_7c15) % (1 << 40);
            std::iter::repeat_n(key, 1 + (run % 4) as usize)
        })
        .collect();
    let mut map = GroupMap::<u64>::new();
    let mut reference = FirstAppearance::default();
    for batch in keys.chunks(32_768) {
        let mut ids = Vec::new();
        map.intern(batch, &mut ids);
        let wide: Vec<u128> = batch.iter().map(|&key| u128::from(key)).collect();
        assert_eq!(ids, reference.intern(&wide));
    }
    assert!(!map.is_direct());
    assert!(map.memory_size() > 1 << 20, "{} bytes", map.memory_size());
    assert_eq!(map.len(), reference.keys.len());
}

#[test]
fn dense_keys_index_directly_and_wide_ranges_hash() {
    let mut dense = GroupMap::<u64>::new();
    let mut ids = Vec::new();
    dense.intern(&(0..1_000u64).rev().collect::<Vec<_>>(), &mut ids);
    assert!(dense.is_direct());
    assert_eq!(ids[0], 0);
    let mut sparse = GroupMap::<u64>::new();
    sparse.intern(&[1, 1 << 40, 5], &mut ids);
    assert!(!sparse.is_direct());
    let mut widening = GroupMap::<u64>::new();
    widening.intern(&[10, 11], &mut ids);
    assert!(widening.is_direct());
    widening.intern(&[u64::MAX], &mut ids);
    assert!(!widening.is_direct());
    assert_eq!(widening.keys(), vec![10, 11, u64::MAX]);
}

#[test]
fn a_hashed_range_turns_direct_once_enough_rows_fill_it() {
    let mut map = GroupMap::<u64>::new();
    let mut ids = Vec::new();
    map.intern(&[100_000, 0], &mut ids);
    assert!(!map.is_direct());
    let keys: Vec<u64> = (0..20_000u64).map(|row| row * 5 % 100_001).collect();
    ids.clear();
    map.intern(&keys, &mut ids);
    assert!(map.is_direct());
    let mut reference = FirstAppearance::default();
    reference.intern(&[100_000, 0]);
    let wide: Vec<u128> = keys.iter().map(|&key| u128::from(key)).collect();
    assert_eq!(ids, reference.intern(&wide));
    assert_eq!(map.keys().len(), reference.keys.len());
}

proptest! {
    #[test]
    fn grouped_folds_and_counts_equal_plain_loops(
        batches in prop::collection::vec(
            prop::collection::vec((0usize..6, prop::option::weighted(0.8, -1000i64..1000)), 0..100),
            1..5,
        ),
    ) {
        let mut folds: Vec<(Fold, GroupedFold<Int64Type>)> = [Fold::Sum, Fold::Min, Fold::Max]
            .into_iter()
            .map(|fold| (fold, GroupedFold::new(fold)))
            .collect();
        let mut counts = GroupedCount::new();
        let mut rows = GroupedCount::new();
        let mut means = GroupedMean::<Int64Type>::new();
        // Group ids are handed out in order of first appearance, as a group map does.
        let mut group_of: HashMap<usize, usize> = HashMap::new();
        let mut values_of: Vec<Vec<i64>> = Vec::new();
        let mut rows_of: Vec<i64> = Vec::new();
        for batch in &batches {
            let ids: Vec<usize> = batch
                .iter()
                .map(|&(key, _)| {
                    let next = group_of.len();
                    *group_of.entry(key).or_insert(next)
                })
                .collect();
            let groups = group_of.len();
            values_of.resize(groups, Vec::new());
            rows_of.resize(groups, 0);
            for (&id, &(_, value)) in ids.iter().zip(batch) {
                rows_of[id] += 1;
                values_of[id].extend(value);
            }
            let column = Int64Array::from(batch.iter().map(|&(_, value)| value).collect::<Vec<_>>());
            for (_, fold) in &mut folds {
                fold.update(&ids, &column, groups).unwrap();
            }
            counts.update(&ids, column.nulls(), groups).unwrap();
            rows.update(&ids, None, groups).unwrap();
            means.update(&ids, &column, groups).unwrap();
        }
        for (fold, grouped) in &mut folds {
            let result: Vec<Option<i64>> = grouped.finish(&DataType::Int64).unwrap().iter().collect();
            let expected: Vec<Option<i64>> = values_of
                .iter()
                .map(|values| match fold {
                    Fold::Sum => (!values.is_empty()).then(|| values.iter().sum()),
                    Fold::Min => values.iter().copied().min(),
                    Fold::Max => values.iter().copied().max(),
                })
                .collect();
            prop_assert_eq!(result, expected, "{:?}", fold);
        }
        let expected_counts: Vec<i64> = values_of.iter().map(|values| values.len() as i64).collect();
        let expected_sums: Vec<Option<i64>> = values_of
            .iter()
            .map(|values| (!values.is_empty()).then(|| values.iter().sum()))
            .collect();
        let (mean_sums, mean_counts) = means.finish(&DataType::Int64).unwrap();
        prop_assert_eq!(mean_sums.iter().collect::<Vec<_>>(), expected_sums.clone());
        prop_assert_eq!(mean_counts.values().to_vec(), expected_counts.clone());
        // Merging the states in two halves gives the same sums and counts.
        let half = mean_sums.len() / 2;
        let ids: Vec<usize> = (0..mean_sums.len()).collect();
        let mut merged = GroupedMean::<Int64Type>::new();
        for (start, end) in [(0, half), (half, mean_sums.len())] {
            merged
                .merge(
                    &ids[start..end],
                    &mean_sums.slice(start, end - start),
                    &mean_counts.slice(start, end - start),
                    mean_sums.len(),
                )
                .unwrap();
        }
        let (merged_sums, merged_counts) = merged.finish(&DataType::Int64).unwrap();
        prop_assert_eq!(merged_sums.iter().collect::<Vec<_>>(), expected_sums);
        prop_assert_eq!(merged_counts.values().to_vec(), expected_counts.clone());
        prop_assert_eq!(counts.finish().values().to_vec(), expected_counts);
        prop_assert_eq!(rows.finish().values().to_vec(), rows_of);
    }
}

/// Decimal values within 64 bits and, in about one column of six, one past them; with nulls.
fn decimal_values(rows: usize) -> impl Strategy<Value = Vec<Option<i128>>> {
    let value = prop_oneof![
        199 => -10i128.pow(15)..10i128.pow(15),
        1 => -(1i128 << 70)..(1i128 << 70),
    ];
    prop::collection::vec(prop::option::weighted(0.9, value), rows)
}

fn decimal_column(values: Vec<Option<i128>>, scale: i8) -> Decimal128Array {
    Decimal128Array::from(values)
        .with_precision_and_scale(38, scale)
        .unwrap()
}

proptest! {
    #[test]
    fn decimal_arithmetic_equals_arrows_where_it_answers(
        (left, right) in (0usize..64).prop_flat_map(|rows| (decimal_values(rows), decimal_values(rows))),
        left_scale in 0i8..4,
        right_scale in 0i8..4,
    ) {
        let (left, right) = (decimal_column(left, left_scale), decimal_column(right, right_scale));
        let cases = [
            (DecimalOp::Multiply, arrow::compute::kernels::numeric::mul(&left, &right)),
            (DecimalOp::Add, arrow::compute::kernels::numeric::add(&left, &right)),
            (DecimalOp::Subtract, arrow::compute::kernels::numeric::sub(&left, &right)),
        ];
        for (op, expected) in cases {
            let Ok(expected) = expected else { continue };
            let DataType::Decimal128(precision, scale) = *expected.data_type() else {
                panic!("decimal arithmetic gives decimals");
            };
            let ours = decimal_arithmetic(
                op,
                DecimalOperand::Column(&left),
                DecimalOperand::Column(&right),
                precision,
                scale,
            )
            .unwrap();
            if let Some(ours) = ours {
                prop_assert_eq!(&ours as &dyn Array, expected.as_ref(), "{:?}", op);
            }
        }
    }

    #[test]
    fn offset_products_equal_arrows_two_steps_where_they_answer(
        (factor, other) in (0usize..64).prop_flat_map(|rows| (decimal_values(rows), decimal_values(rows))),
        literal in -1_000i128..1_000,
        literal_scale in 0i8..3,
        other_scale in 0i8..3,
        subtract in any::<bool>(),
        literal_first in any::<bool>(),
    ) {
        let rows = factor.len();
        let (factor, other) = (decimal_column(factor, 2), decimal_column(other, other_scale));
        let literal_column = decimal_column(vec![Some(literal); rows], literal_scale);
        let (first, second) = if literal_first { (&literal_column, &other) } else { (&other, &literal_column) };
        let sum = if subtract {
            arrow::compute::kernels::numeric::sub(first, second)
        } else {
            arrow::compute::kernels::numeric::add(first, second)
        }
        .unwrap();
        let Ok(expected) = arrow::compute::kernels::numeric::mul(&factor, &sum) else {
            return Ok(());
        };
        let DataType::Decimal128(precision, scale) = *expected.data_type() else {
            panic!("a decimal product is a decimal");
        };
        let sum_scale = literal_scale.max(other_scale);
        let literal_factor = 10i128.pow((sum_scale - literal_scale) as u32);
        let other_factor = 10i128.pow((sum_scale - other_scale) as u32);
        let (offset, column_factor) = match (subtract, literal_first) {
            (true, true) => (literal * literal_factor, -other_factor),
            (true, false) => (-literal * literal_factor, other_factor),
            (false, _) => (literal * literal_factor, other_factor),
        };
        let offset_column = OffsetColumn { column: &other, offset, factor: column_factor };
        if let Some(ours) = decimal_offset_product(&factor, offset_column, precision, scale).unwrap() {
            prop_assert_eq!(&ours as &dyn Array, expected.as_ref());
        }
    }
}
