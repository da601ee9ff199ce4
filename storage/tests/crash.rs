//! Crash test: a child process writes two-key batches with synced durability and prints the
//! number of each batch once `write` has returned; the parent kills it with SIGKILL at a
//! pseudo-random moment, reopens the store, and checks that every acknowledged batch is there,
//! and that no batch is there in part. 50 cycles by default, `SABOT_CRASH_CYCLES` for more.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use sabot_storage::{Db, Durability, Options, WriteBatch};

const CHILD_DIR: &str = "SABOT_CRASH_CHILD_DIR";
const CHILD_CYCLE: &str = "SABOT_CRASH_CHILD_CYCLE";

/// Small memtables, tables and levels, so that background flushes and compactions (into
/// deeper levels too) also run while the child may be killed.
fn options() -> Options {
    Options {
        memtable_bytes: 16 << 10,
        table_bytes: 16 << 10,
        level_one_bytes: 64 << 10,
        ..Options::default()
    }
}

fn keys(cycle: u64, batch: u64) -> [String; 2] {
    [format!("c{cycle}-{batch}-a"), format!("c{cycle}-{batch}-b")]
}

/// The child's side: does nothing unless run by `acknowledged_writes_survive_sigkill`.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(cycle)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_CYCLE)) else {
        return;
    };
    let cycle: u64 = cycle.parse().unwrap();
    let db = Db::open(&dir, options()).unwrap();
    let mut stdout = std::io::stdout();
    for batch_number in 0u64.. {
        let mut batch = WriteBatch::new();
        for key in keys(cycle, batch_number) {
            batch.put(key, format!("value {batch_number}").repeat(8));
        }
        db.write(&batch, Durability::Synced).unwrap();
        writeln!(stdout, "acked {batch_number}").unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let cycles: u64 = std::env::var("SABOT_CRASH_CYCLES")
        .ok()
        .and_then(|cycles| cycles.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let mut total_acked = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_CYCLE, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("acked ")?.parse::<u64>().ok())
                .max()
        });
        // 20 to 120 ms after the start: before, during and after the first flushes.
        let delay = 20 + (cycle * 37) % 100;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        let db = Db::open(dir.path(), options()).unwrap();
        let last_acked = acked.map_or(0, |last| last + 1);
        total_acked += last_acked;
        for batch_number in 0..last_acked + 50 {
            let present: Vec<bool> = keys(cycle, batch_number)
                .iter()
                .map(|key| db.get(key.as_bytes()).unwrap().is_some())
                .collect();
            if batch_number < last_acked {
                assert_eq!(
                    present,
                    [true, true],
                    "cycle {cycle}: acknowledged batch {batch_number} lost"
                );
            } else {
                assert!(
                    present[0] == present[1],
                    "cycle {cycle}: batch {batch_number} half applied"
                );
            }
        }
    }
    eprintln!("{cycles} crash cycles, {total_acked} acknowledged batches, all recovered");
    assert!(
        total_acked > cycles,
        "the child acknowledged only {total_acked} batches"
    );
}
