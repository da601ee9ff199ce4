//! The store (its tables compressed or not) against a `BTreeMap` model: random puts, deletes,
//! batches, flushes, compactions (leveled or size-tiered, whole or of a range), snapshots and
//! reopens, then every key's value, whole-range
//! and prefix reads (forward and reversed) must equal the model's, and every snapshot must
//! still read as the model did when it was taken.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sabot_storage::{CompactionStyle, Compression, Db, Durability, Options, WriteBatch};

#[derive(Debug, Clone)]
enum Step {
    Put(u8, u16),
    Delete(u8),
    Batch(Vec<(u8, Option<u16>)>),
    Flush,
    Compact,
    CompactRange(u8, u8),
    Snapshot,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<u8>(), any::<u16>()).prop_map(|(key, value)| Step::Put(key, value)),
        3 => any::<u8>().prop_map(Step::Delete),
        2 => prop::collection::vec((any::<u8>(), prop::option::of(any::<u16>())), 1..6).prop_map(Step::Batch),
        1 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(start, end)| Step::CompactRange(start, end)),
        1 => Just(Step::Snapshot),
        1 => Just(Step::Reopen),
    ]
}

fn key(byte: u8) -> Vec<u8> {
    format!(
        "{}{byte:03}",
        if byte.is_multiple_of(2) {
            "even/"
        } else {
            "odd/"
        }
    )
    .into_bytes()
}

fn value(value: u16) -> Vec<u8> {
    format!("value-{value}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_store_reads_like_a_sorted_map(
        steps in prop::collection::vec(step(), 1..120),
        compressed in any::<bool>(),
        tiered in any::<bool>(),
        io_uring in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Tiny memtables, so that flushes and compactions happen on their own too.
        let options = Options {
            memtable_bytes: 600,
            compression: if compressed { Compression::Lz4 } else { Compression::None },
            compaction: if tiered { CompactionStyle::SizeTiered } else { CompactionStyle::Leveled },
            table_bytes: 1024,
            io_uring,
            level_one_bytes: 4096,
            ..Options::default()
        };
        let mut db = Db::open(dir.path(), options.clone()).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        // Snapshots live until the store is reopened; each with the model as it was.
        let mut snapshots = Vec::new();
        for step in steps {
            match step {
                Step::Put(k, v) => {
                    db.put(&key(k), &value(v), Durability::Buffered).unwrap();
                    model.insert(key(k), value(v));
                }
                Step::Delete(k) => {
                    db.delete(&key(k), Durability::Buffered).unwrap();
                    model.remove(&key(k));
                }
                Step::Batch(operations) => {
                    let mut batch = WriteBatch::new();
                    for (k, v) in operations {
                        match v {
                            Some(v) => {
                                batch.put(key(k), value(v));
                                model.insert(key(k), value(v));
                            }
                            None => {
                                batch.delete(key(k));
                                model.remove(&key(k));
                            }
                        }
                    }
                    db.write(&batch, Durability::Synced).unwrap();
                }
                Step::Flush => db.flush().unwrap(),
                Step::Compact => db.compact().unwrap(),
                Step::CompactRange(start, end) => db.compact_range(&key(start), Some(&key(end))).unwrap(),
                Step::Snapshot => snapshots.push((db.snapshot(), model.clone())),
                Step::Reopen => {
                    for (snapshot, then) in snapshots.drain(..) {
                        let seen: Vec<(Vec<u8>, Vec<u8>)> = snapshot.range(b"", None).unwrap().collect::<Result<_, _>>().unwrap();
                        prop_assert_eq!(seen, then.into_iter().collect::<Vec<_>>());
                    }
                    drop(db);
                    db = Db::open(dir.path(), options.clone()).unwrap();
                }
            }
        }
        for k in 0..=255u8 {
            prop_assert_eq!(db.get(&key(k)).unwrap(), model.get(&key(k)).cloned());
        }
        let every_key: Vec<Vec<u8>> = (0..=255u8).map(key).collect();
        let expected_values: Vec<Option<Vec<u8>>> = every_key.iter().map(|k| model.get(k).cloned()).collect();
        prop_assert_eq!(db.multi_get(&every_key).unwrap(), expected_values);
        for (snapshot, then) in &snapshots {
            for k in (0..=255u8).step_by(7) {
                prop_assert_eq!(snapshot.get(&key(k)).unwrap(), then.get(&key(k)).cloned());
            }
        }
        let everything: Vec<(Vec<u8>, Vec<u8>)> = db.range(b"", None).unwrap().collect::<Result<_, _>>().unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
        prop_assert_eq!(&everything, &expected);
        let evens: Vec<(Vec<u8>, Vec<u8>)> = db.prefix(b"even/").unwrap().collect::<Result<_, _>>().unwrap();
        let expected_evens: Vec<(Vec<u8>, Vec<u8>)> = model
            .iter()
            .filter(|(k, _)| k.starts_with(b"even/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(&evens, &expected_evens);
        let middle: Vec<(Vec<u8>, Vec<u8>)> = db.range_reversed(&key(40), Some(&key(140))).unwrap().collect::<Result<_, _>>().unwrap();
        let everything_backwards: Vec<(Vec<u8>, Vec<u8>)> = db.range_reversed(b"", None).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(everything_backwards, model.clone().into_iter().rev().collect::<Vec<_>>());
        let expected_middle: Vec<(Vec<u8>, Vec<u8>)> = model
            .range(key(40)..key(140))
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(middle, expected_middle);
    }
}
