//! A join whose output keeps only probe rows with a match, probing a Parquet table sorted by its
//! key with a few build keys, reads only the pages whose min/max range holds one of them (the
//! file's page index), and still finds every match; a join that keeps unmatched probe rows reads
//! them all.

use sabot::Sabot;
use sabot::arrow::array::AsArray;
use sabot::arrow::datatypes::Int64Type;

use crate::common::write_int64_parquet;

const ROWS: i64 = 200_000;

#[test]
fn a_join_with_few_keys_reads_only_the_pages_of_a_sorted_table_that_may_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    let facts = dir.path().join("facts.parquet");
    let keys = dir.path().join("keys.parquet");
    write_int64_parquet(
        &facts,
        vec![
            ("k", (0..ROWS).collect()),
            ("v", (0..ROWS).map(|k| k * 3).collect()),
        ],
    );
    write_int64_parquet(&keys, vec![("key", vec![5, 150_001, 150_002, ROWS + 9])]);

    let sabot = Sabot::builder().threads(2).build().unwrap();
    sabot.register_parquet("facts", &facts).unwrap();
    sabot.register_parquet("keys", &keys).unwrap();
    let scanned_before = sabot.stats().rows_scanned;
    let batches = sabot
        .sql("SELECT f.k, f.v FROM facts f JOIN keys s ON f.k = s.key ORDER BY f.k")
        .unwrap()
        .collect()
        .unwrap();
    let mut found = Vec::new();
    for batch in &batches {
        let (k, v) = (batch.column(0), batch.column(1));
        let (k, v) = (k.as_primitive::<Int64Type>(), v.as_primitive::<Int64Type>());
        found.extend(k.values().iter().zip(v.values()).map(|(&k, &v)| (k, v)));
    }
    assert_eq!(found, vec![(5, 15), (150_001, 450_003), (150_002, 450_006)]);
    let scanned = sabot.stats().rows_scanned - scanned_before;
    // The four keys, then the two pages (of about 20K rows each) that hold three of them.
    assert!(
        scanned < 4 + ROWS as u64 / 4,
        "{scanned} rows scanned: the pages without a key were read"
    );

    let batches = sabot
        .sql("SELECT count(*) FROM facts f LEFT JOIN keys s ON f.k = s.key")
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        ROWS
    );
}
