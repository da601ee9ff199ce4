//! Writes, reads, deletes and reopens a store: `cargo run -p sabot-storage --example kv [DIR]`.

use sabot_storage::{Db, Durability, Options, WriteBatch};

fn main() -> sabot_storage::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sabot-data/kv-example".to_string());
    {
        let db = Db::open(&dir, Options::default())?;
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
    let db = Db::open(&dir, Options::default())?;
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
    Ok(())
}
