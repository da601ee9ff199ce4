//! Writes, reads, deletes and reopens a store, then reads many keys at once, compacts a range
//! and prints what the background threads did: `cargo run -p sabot-storage --example kv [DIR]`.

use sabot_storage::{Db, Durability, Options, WriteBatch};

/// Small memtables, so that the example's writes are flushed and compacted in the background.
fn options() -> Options {
    Options {
        memtable_bytes: 1 << 20,
        ..Options::default()
    }
}

fn main() -> sabot_storage::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sabot-data/kv-example".to_string());
    {
        let db = Db::open(&dir, options())?;
        db.put(b"user:1", b"ada", Durability::Synced)?;
        let mut batch = WriteBatch::new();
        batch
            .put("user:2", "grace")
            .put("user:3", "edsger")
            .delete("user:1");
        db.write(&batch, Durability::Synced)?;
        db.flush()?;
        db.put(b"user:4", b"barbara", Durability::Buffered)?;
    }
    // Reopening replays the log: every acknowledged write is back.
    let db = Db::open(&dir, options())?;
    for key in ["user:1", "user:2", "user:3", "user:4"] {
        let value = db.get(key.as_bytes())?;
        println!(
            "{key} = {}",
            value.map_or("(none)".to_string(), |value| String::from_utf8_lossy(
                &value
            )
            .into_owned())
        );
    }
    // Enough writes for several flushes, read back in one batch, then compacted.
    for index in 0..20_000u32 {
        let key = format!("item:{index:05}");
        db.put(key.as_bytes(), &[b'x'; 200], Durability::Buffered)?;
    }
    let keys: Vec<String> = (0..20_000u32)
        .step_by(1000)
        .map(|index| format!("item:{index:05}"))
        .collect();
    let found = db
        .multi_get(&keys)?
        .iter()
        .filter(|value| value.is_some())
        .count();
    println!("multi_get found {found} of {} keys", keys.len());
    db.compact_range(b"item:", Some(b"item;"))?;
    let stats = db.stats();
    println!(
        "tables per level {:?}; {} flushes, {} compactions, {} write stalls",
        stats.tables_per_level, stats.flushes, stats.compactions, stats.write_stalls
    );
    Ok(())
}
