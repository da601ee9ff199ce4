//! Background flushes and compactions seen from outside: leveled stores spread over sorted
//! levels, size-tiered ones keep few level-0 tables, writes stall (and are counted) while the
//! background lags, `compact_range` leaves one sorted run, and every read stays right.

use sabot_storage::{CompactionStyle, Db, Durability, Options, Result};

fn key(index: u32) -> Vec<u8> {
    // Spread over the key space, so tables overlap as random keys do.
    format!("key{:08}", index.wrapping_mul(2_654_435_761) % 1_000_000).into_bytes()
}

fn value(index: u32, round: u32) -> Vec<u8> {
    format!("value-{index}-{round}-").repeat(4).into_bytes()
}

fn small(style: CompactionStyle) -> Options {
    Options {
        memtable_bytes: 16 << 10,
        table_bytes: 16 << 10,
        level_one_bytes: 64 << 10,
        compaction: style,
        io_uring: false,
        ..Options::default()
    }
}

/// Writes `keys` keys twice (the second round overwriting, every third key deleted), then
/// checks every key.
fn fill_and_check(db: &Db, keys: u32) {
    for round in 0..2 {
        for index in 0..keys {
            db.put(&key(index), &value(index, round), Durability::Buffered)
                .unwrap();
        }
    }
    for index in (0..keys).step_by(3) {
        db.delete(&key(index), Durability::Buffered).unwrap();
    }
    check(db, keys);
}

fn check(db: &Db, keys: u32) {
    for index in 0..keys {
        let expected = (index % 3 != 0).then(|| value(index, 1));
        assert_eq!(db.get(&key(index)).unwrap(), expected, "key {index}");
    }
    let scanned: Vec<(Vec<u8>, Vec<u8>)> =
        db.range(b"", None).unwrap().collect::<Result<_>>().unwrap();
    assert_eq!(scanned.len() as u32, keys - keys.div_ceil(3));
    assert!(scanned.windows(2).all(|pair| pair[0].0 < pair[1].0));
}

#[test]
fn leveled_compaction_fills_sorted_levels_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let options = small(CompactionStyle::Leveled);
    {
        let db = Db::open(dir.path(), options.clone()).unwrap();
        fill_and_check(&db, 6000);
        db.flush().unwrap();
        db.wait_for_background().unwrap();
        let stats = db.stats();
        assert!(stats.flushes > 10, "{stats:?}");
        assert!(stats.compactions > 0, "{stats:?}");
        let deep_levels = stats.tables_per_level[2..].iter().sum::<usize>();
        assert!(
            deep_levels > 0,
            "tables reached level 2 or deeper: {stats:?}"
        );
        assert!(
            stats.tables_per_level[0] < options.level_zero_stop_tables,
            "{stats:?}"
        );
        let again = Db::open(dir.path(), options.clone());
        assert!(
            again.is_err_and(|error| error.to_string().contains("already open")),
            "a second open of a store in use is refused"
        );
    }
    let reopened = Db::open(dir.path(), options).unwrap();
    check(&reopened, 6000);
    reopened.compact_range(b"", None).unwrap();
    let stats = reopened.stats();
    let levels_used = stats
        .tables_per_level
        .iter()
        .filter(|&&tables| tables > 0)
        .count();
    assert_eq!(
        levels_used, 1,
        "one sorted run after compacting it all: {stats:?}"
    );
    check(&reopened, 6000);
}

#[test]
fn size_tiered_compaction_merges_runs_in_level_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(CompactionStyle::SizeTiered)).unwrap();
    fill_and_check(&db, 6000);
    db.flush().unwrap();
    db.wait_for_background().unwrap();
    let stats = db.stats();
    assert!(stats.compactions > 0, "{stats:?}");
    assert!(
        stats.tables_per_level[1..]
            .iter()
            .all(|&tables| tables == 0),
        "{stats:?}"
    );
    assert!(
        (stats.tables_per_level[0] as u64) < stats.flushes,
        "merged: {stats:?}"
    );
    db.compact().unwrap();
    assert_eq!(db.stats().tables_per_level[0], 1);
    check(&db, 6000);
}

#[test]
fn writes_stall_while_flushes_lag_and_the_stalls_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            max_frozen_memtables: 1,
            ..small(CompactionStyle::Leveled)
        },
    )
    .unwrap();
    fill_and_check(&db, 3000);
    let stats = db.stats();
    assert!(stats.write_stalls > 0, "{stats:?}");
    assert!(!stats.write_stall_time.is_zero(), "{stats:?}");
}

#[test]
fn compacting_a_range_drops_its_deleted_keys_from_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small(CompactionStyle::Leveled)).unwrap();
    for index in 0..2000u32 {
        db.put(
            format!("a{index:05}").as_bytes(),
            &[7; 100],
            Durability::Buffered,
        )
        .unwrap();
    }
    db.flush().unwrap();
    let before: u64 = db.stats().bytes_per_level.iter().sum();
    for index in 0..2000u32 {
        db.delete(format!("a{index:05}").as_bytes(), Durability::Buffered)
            .unwrap();
    }
    db.compact_range(b"a", Some(b"b")).unwrap();
    let after: u64 = db.stats().bytes_per_level.iter().sum();
    assert!(
        after * 10 < before,
        "{after} bytes left of {before}: {:?}",
        db.stats()
    );
    assert_eq!(db.prefix(b"a").unwrap().count(), 0);
    drop(db);
    let reopened = Db::open(dir.path(), small(CompactionStyle::Leveled)).unwrap();
    assert_eq!(reopened.get(b"a00001").unwrap(), None);
}
