//! The key-value benchmark behind `sabot bench kv`: the same workloads on Sabot's store
//! (`sabot-storage`) and on fjall in one run, each in a fresh directory: one store after the
//! other, except the synced writes, where they take turns.
//! Workloads, for N keys: fill N random 16-byte keys with 100-byte values (then one synced write
//! of the log), N reads of present keys in random order, N reads of missing keys, a full scan
//! (keys and values), N/100 writes each synced before the next, and a fill of 10·N keys that
//! forces flushes and compactions. Each store runs with its defaults: fjall's unsynced inserts
//! stay in its own buffer until it flushes them, Sabot's reach the page cache (its mapped log)
//! on every write, so they outlive the process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Result, SabotError};

/// What to run.
#[derive(Debug, Clone)]
pub struct KvBenchConfig {
    /// N: keys of the fill, reads per read workload.
    pub keys: usize,
    /// Where the stores' directories are made (and removed afterwards).
    pub dir: PathBuf,
    /// Whether to run the 10·N fill.
    pub large_fill: bool,
    /// Whether Sabot's store syncs its log through io_uring (else `fdatasync`).
    pub io_uring: bool,
}

/// One workload on one store.
#[derive(Debug, Clone, Serialize)]
pub struct KvTiming {
    pub workload: String,
    pub store: String,
    pub operations: u64,
    pub seconds: f64,
}

impl KvTiming {
    pub fn operations_per_second(&self) -> f64 {
        self.operations as f64 / self.seconds.max(1e-9)
    }
}

/// The results of a run.
#[derive(Debug, Clone)]
pub struct KvReport {
    pub keys: usize,
    pub io_uring: bool,
    pub timings: Vec<KvTiming>,
    /// Sabot's store at the end of its last fill: tables per level, background work, stalls.
    pub sabot_store: Option<String>,
}

/// One workload's rate on both stores, as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct KvWorkload {
    pub name: String,
    pub sabot_ops_per_s: f64,
    pub fjall_ops_per_s: f64,
}

/// The report as `--json` writes it: `{"keys", "io_uring", "workloads": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct KvSummary {
    pub keys: usize,
    pub io_uring: bool,
    pub workloads: Vec<KvWorkload>,
}

/// The stores compared.
const STORES: [&str; 2] = ["sabot", "fjall"];

/// Turns the stores take at the synced writes.
const SYNCED_ROUNDS: usize = 10;

/// A store under test.
trait Store {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()>;
    fn sync(&self) -> Result<()>;
    fn get(&self, key: &[u8]) -> Result<bool>;
    fn scan(&self) -> Result<u64>;
    /// What the store says of its tables and background work, if it says anything.
    fn describe(&self) -> Option<String>;
}

struct SabotStore(sabot_storage::Db);

impl Store for SabotStore {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let durability = if sync {
            sabot_storage::Durability::Synced
        } else {
            sabot_storage::Durability::Buffered
        };
        self.0.put(key, value, durability).map_err(store_error)
    }

    fn sync(&self) -> Result<()> {
        self.0
            .write(
                &sabot_storage::WriteBatch::new(),
                sabot_storage::Durability::Synced,
            )
            .map_err(store_error)
    }

    fn get(&self, key: &[u8]) -> Result<bool> {
        Ok(self.0.get(key).map_err(store_error)?.is_some())
    }

    fn scan(&self) -> Result<u64> {
        let mut count = 0;
        for entry in self.0.range(b"", None).map_err(store_error)? {
            entry.map_err(store_error)?;
            count += 1;
        }
        Ok(count)
    }

    fn describe(&self) -> Option<String> {
        let stats = self.0.stats();
        Some(format!(
            "tables per level {:?}, {} flushes, {} compactions ({} MiB written), {} table moves, {} write stalls ({:.3} s)",
            stats.tables_per_level,
            stats.flushes,
            stats.compactions,
            stats.compaction_bytes_written >> 20,
            stats.table_moves,
            stats.write_stalls,
            stats.write_stall_time.as_secs_f64()
        ))
    }
}

struct FjallStore {
    database: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl Store for FjallStore {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.keyspace.insert(key, value).map_err(fjall_error)?;
        if sync {
            self.database
                .persist(fjall::PersistMode::SyncData)
                .map_err(fjall_error)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.database
            .persist(fjall::PersistMode::SyncData)
            .map_err(fjall_error)
    }

    fn get(&self, key: &[u8]) -> Result<bool> {
        Ok(self.keyspace.get(key).map_err(fjall_error)?.is_some())
    }

    fn scan(&self) -> Result<u64> {
        let mut count = 0;
        for guard in self.keyspace.iter() {
            guard.into_inner().map_err(fjall_error)?;
            count += 1;
        }
        Ok(count)
    }

    fn describe(&self) -> Option<String> {
        None
    }
}

fn store_error(error: sabot_storage::StorageError) -> SabotError {
    SabotError::Execution {
        message: format!("Sabot's store: {error}"),
    }
}

fn fjall_error(error: fjall::Error) -> SabotError {
    SabotError::Execution {
        message: format!("fjall: {error}"),
    }
}

fn open(store: &str, dir: &Path, io_uring: bool) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(dir).map_err(|error| SabotError::io(dir, error))?;
    match store {
        "sabot" => {
            let options = sabot_storage::Options {
                io_uring,
                ..sabot_storage::Options::default()
            };
            Ok(Box::new(SabotStore(
                sabot_storage::Db::open(dir, options).map_err(store_error)?,
            )))
        }
        _ => {
            let database = fjall::Database::builder(dir).open().map_err(fjall_error)?;
            let keyspace = database
                .keyspace("kv", fjall::KeyspaceCreateOptions::default)
                .map_err(fjall_error)?;
            Ok(Box::new(FjallStore { database, keyspace }))
        }
    }
}

/// `count` pseudo-random 16-byte keys from `seed` (splitmix64).
fn random_keys(seed: u64, count: usize) -> Vec<[u8; 16]> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    };
    (0..count)
        .map(|_| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&next().to_be_bytes());
            key[8..].copy_from_slice(&next().to_be_bytes());
            key
        })
        .collect()
}

fn value_of(key: &[u8; 16]) -> [u8; 100] {
    let mut value = [0u8; 100];
    for (index, byte) in value.iter_mut().enumerate() {
        *byte = key[index % 16] ^ index as u8;
    }
    value
}

/// Runs every workload on both stores; `on_timing` sees each result as it comes.
pub fn run(config: &KvBenchConfig, mut on_timing: impl FnMut(&KvTiming)) -> Result<KvReport> {
    if config.keys == 0 {
        return Err(SabotError::invalid_argument("--keys must be at least 1"));
    }
    let keys = random_keys(1, config.keys);
    let mut shuffled = keys.clone();
    shuffled.reverse();
    shuffled.sort_by_key(|key| key[15]);
    let missing = random_keys(2, config.keys);
    let mut timings = Vec::new();
    let mut sabot_store = None;
    let mut record = |workload: &str, store: &str, operations: u64, seconds: f64| {
        let timing = KvTiming {
            workload: workload.to_string(),
            store: store.to_string(),
            operations,
            seconds,
        };
        on_timing(&timing);
        timings.push(timing);
    };
    let mut opened = Vec::new();
    for store_name in STORES {
        let dir = config.dir.join(format!("kv-{store_name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let store = open(store_name, &dir, config.io_uring)?;
        let ((), seconds) = timed(|| fill(store.as_ref(), &keys))?;
        record("fill", store_name, keys.len() as u64, seconds);

        let (present, seconds) = timed(|| count_found(store.as_ref(), &shuffled))?;
        check(
            present == keys.len() as u64,
            store_name,
            "a present key was not found",
        )?;
        record("read", store_name, keys.len() as u64, seconds);

        let (present, seconds) = timed(|| count_found(store.as_ref(), &missing))?;
        check(present == 0, store_name, "a missing key was found")?;
        record("read_missing", store_name, missing.len() as u64, seconds);

        let (scanned, seconds) = timed(|| store.scan())?;
        check(
            scanned == keys.len() as u64,
            store_name,
            "the scan missed keys",
        )?;
        record("scan", store_name, scanned, seconds);
        opened.push((store_name, dir, store));
    }

    // Synced writes wait on the disk, whose speed drifts over seconds on a shared machine:
    // the stores take turns, a tenth of the writes each, so both see the same disk.
    let synced = (keys.len() / 100).max(1);
    let mut synced_seconds = [0.0; STORES.len()];
    for round in missing[..synced].chunks(synced.div_ceil(SYNCED_ROUNDS)) {
        for ((_, _, store), seconds) in opened.iter().zip(&mut synced_seconds) {
            let ((), round_seconds) = timed(|| {
                round
                    .iter()
                    .try_for_each(|key| store.put(key, &value_of(key), true))
            })?;
            *seconds += round_seconds;
        }
    }
    for ((store_name, dir, store), seconds) in opened.into_iter().zip(synced_seconds) {
        record("synced_writes", store_name, synced as u64, seconds);
        sabot_store = store.describe().or(sabot_store);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    if config.large_fill {
        for store_name in STORES {
            let dir = config.dir.join(format!("kv-{store_name}"));
            let _ = std::fs::remove_dir_all(&dir);
            let store = open(store_name, &dir, config.io_uring)?;
            let many = random_keys(3, config.keys * 10);
            let ((), seconds) = timed(|| fill(store.as_ref(), &many))?;
            record("fill_compact", store_name, many.len() as u64, seconds);
            sabot_store = store.describe().or(sabot_store);
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(KvReport {
        keys: config.keys,
        io_uring: config.io_uring,
        timings,
        sabot_store,
    })
}

/// Writes `keys` (buffered) and then syncs the log once.
fn fill(store: &dyn Store, keys: &[[u8; 16]]) -> Result<()> {
    for key in keys {
        store.put(key, &value_of(key), false)?;
    }
    store.sync()
}

/// How many of `keys` the store holds, read one by one.
fn count_found(store: &dyn Store, keys: &[[u8; 16]]) -> Result<u64> {
    let mut found = 0;
    for key in keys {
        found += u64::from(store.get(key)?);
    }
    Ok(found)
}

/// What `work` returned and the seconds it took.
fn timed<T>(work: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let started = Instant::now();
    let value = work()?;
    Ok((value, started.elapsed().as_secs_f64()))
}

fn check(holds: bool, store: &str, message: &str) -> Result<()> {
    if holds {
        Ok(())
    } else {
        Err(SabotError::Execution {
            message: format!("{store}: {message}"),
        })
    }
}

impl KvReport {
    /// Each workload's rate on both stores, in the order they ran.
    pub fn summary(&self) -> KvSummary {
        let mut workloads: Vec<KvWorkload> = Vec::new();
        for timing in &self.timings {
            let index = match workloads
                .iter()
                .position(|workload| workload.name == timing.workload)
            {
                Some(index) => index,
                None => {
                    workloads.push(KvWorkload {
                        name: timing.workload.clone(),
                        sabot_ops_per_s: f64::NAN,
                        fjall_ops_per_s: f64::NAN,
                    });
                    workloads.len() - 1
                }
            };
            let rate = timing.operations_per_second();
            match timing.store.as_str() {
                "sabot" => workloads[index].sabot_ops_per_s = rate,
                _ => workloads[index].fjall_ops_per_s = rate,
            }
        }
        KvSummary {
            keys: self.keys,
            io_uring: self.io_uring,
            workloads,
        }
    }

    /// Operations per second per workload and store, and Sabot's throughput over fjall's.
    pub fn to_table(&self) -> String {
        let mut text = format!(
            "key-value stores, N = {} keys (16-byte keys, 100-byte values); operations per second\n",
            self.keys
        );
        let _ = writeln!(
            text,
            "{:<15} {:>14} {:>14} {:>12}",
            "workload", "sabot", "fjall", "sabot/fjall"
        );
        for workload in self.summary().workloads {
            let ratio = workload.sabot_ops_per_s / workload.fjall_ops_per_s;
            let _ = writeln!(
                text,
                "{:<15} {:>14.0} {:>14.0} {ratio:>12.2}",
                workload.name, workload.sabot_ops_per_s, workload.fjall_ops_per_s
            );
        }
        if let Some(store) = &self.sabot_store {
            let _ = writeln!(text, "sabot store after its last fill: {store}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_checks_both_stores_and_reports_every_workload() {
        let dir = tempfile::tempdir().unwrap();
        let config = KvBenchConfig {
            keys: 2_000,
            dir: dir.path().to_path_buf(),
            large_fill: true,
            io_uring: false,
        };
        let report = run(&config, |_| {}).unwrap();
        assert_eq!(report.timings.len(), 12);
        let names: Vec<String> = report
            .summary()
            .workloads
            .into_iter()
            .inspect(|workload| {
                assert!(workload.sabot_ops_per_s > 0.0 && workload.fjall_ops_per_s > 0.0);
            })
            .map(|workload| workload.name)
            .collect();
        assert_eq!(
            names,
            [
                "fill",
                "read",
                "read_missing",
                "scan",
                "synced_writes",
                "fill_compact"
            ]
        );
        let table = report.to_table();
        assert!(table.contains("read_missing"), "{table}");
        assert!(table.contains("write stalls"), "{table}");
    }
}
