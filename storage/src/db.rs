//! The store: a directory holding the write-ahead log, whose records reach the memtable, the
//! tables memtables are flushed and compacted into, and the `MANIFEST` naming those tables by
//! level. Files: `<n>.wal` (logs), `<n>.sst` (tables), `*.tmp` (unfinished, removed at open).
//!
//! A full memtable is frozen (a new log begins) and a background thread flushes it into a
//! level-0 table; another merges tables as the compaction style asks ([`CompactionStyle`]).
//! Writers stall, counted in [`StoreStats`], while [`Options::max_frozen_memtables`] memtables
//! wait for their flush or level 0 holds [`Options::level_zero_stop_tables`] tables. A table's
//! footer records the newest sequence number it holds, so a log that outlived its flush (a
//! crash before its deletion) is not replayed twice. At open, the logs are replayed and
//! flushed, and a fresh log begins. Reads take the state lock only to look at the live
//! memtable and pick up the frozen memtables and the current [`Version`]; table I/O happens
//! outside it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::background::{self, Counters, Frozen, Shared, State, manifest_of, table_number};
use crate::batch::WriteBatch;
use crate::block_cache::BlockCache;
use crate::compaction::{self, CompactionStyle};
use crate::error::{Result, StorageError};
use crate::family::{
    ColumnFamily, DEFAULT_FAMILY, FAMILY_BYTES, REGISTRY_FAMILY, family_bounds, family_key,
};
use crate::manifest;
use crate::memtable::MemTable;
use crate::merge::{Entries, Merged};
use crate::multi_get;
use crate::sstable::{Compression, Entry, Table};
use crate::version::{LEVELS, Version};
use crate::wal::{WalWriter, replay};

/// When a write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// In the operating system's buffers when the call returns: survives a crash of the
    /// process, not of the machine.
    #[default]
    Buffered,
    /// Synced to the device (`fdatasync`) before the call returns.
    Synced,
}

/// How a store is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Memtable size at which it is frozen and flushed into a table.
    pub memtable_bytes: usize,
    /// Make synced log appends and table reads through io_uring where the kernel allows it
    /// (`false` forces plain `write`, `fdatasync` and `pread`).
    pub io_uring: bool,
    /// Bytes of checked table blocks kept in memory for point reads (0: none).
    pub block_cache_bytes: usize,
    /// How new tables store their data blocks.
    pub compression: Compression,
    /// How tables are merged as they accumulate.
    pub compaction: CompactionStyle,
    /// Size at which a leveled compaction starts its next output table.
    pub table_bytes: u64,
    /// Leveled: level 1's size budget (each deeper level gets ten times its parent's).
    pub level_one_bytes: u64,
    /// Frozen memtables waiting for their flush at which writes stall.
    pub max_frozen_memtables: usize,
    /// Level-0 tables at which writes stall until compaction catches up.
    pub level_zero_stop_tables: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_bytes: 64 << 20,
            io_uring: true,
            block_cache_bytes: 64 << 20,
            compression: Compression::None,
            compaction: CompactionStyle::Leveled,
            table_bytes: 64 << 20,
            level_one_bytes: 256 << 20,
            max_frozen_memtables: 2,
            level_zero_stop_tables: 24,
        }
    }
}

/// What a store holds and what its background work has done since it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Tables per level (level 0 first).
    pub tables_per_level: Vec<usize>,
    /// Table bytes per level.
    pub bytes_per_level: Vec<u64>,
    pub flushes: u64,
    /// Merges (table moves not counted).
    pub compactions: u64,
    /// Tables passed to the next level without a rewrite.
    pub table_moves: u64,
    pub compaction_bytes_written: u64,
    /// Writes that waited for a flush or compaction, and how long they waited in all.
    pub write_stalls: u64,
    pub write_stall_time: Duration,
}

/// The name of the family of the methods without `_cf`.
const DEFAULT_FAMILY_NAME: &str = "default";

/// A write waiting to be committed, and how its commit went (`Some(None)`: committed).
struct Ticket {
    /// The encoded batch, its sequence number still 0.
    payload: Vec<u8>,
    batch: WriteBatch,
    sync: bool,
    outcome: Mutex<Option<Option<String>>>,
}

impl Ticket {
    /// The outcome once the write's group has been committed.
    fn outcome(&self) -> Option<Result<()>> {
        let outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        outcome.as_ref().map(|failure| match failure {
            None => Ok(()),
            Some(message) => Err(StorageError::Io {
                path: PathBuf::from("write-ahead log"),
                source: std::io::Error::other(message.clone()),
            }),
        })
    }
}

/// A key-value store in one directory.
pub struct Db {
    shared: Arc<Shared>,
    /// Writes waiting to commit, in arrival order; the first commits them all.
    line: Mutex<VecDeque<Arc<Ticket>>>,
    committed: Condvar,
    /// Held while a column family is looked up and registered, so two threads asking for a
    /// new name get one id.
    registering: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
    /// The `LOCK` file, locked while the store is open: a second opener is refused.
    _lock: std::fs::File,
}

/// The files of kind `extension` in `dir`, by number, ascending.
fn numbered_files(dir: &Path, extension: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let path = entry.map_err(StorageError::io(dir))?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        if let Some(number) = name
            .strip_suffix(extension)
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            files.push((number, path));
        }
    }
    files.sort();
    Ok(files)
}

/// Makes `dir` (which must not exist) hold `tables`, hard-linked (copied where links are not
/// possible), and a manifest naming them by level; all on disk once this returns; the directory
/// appears whole or not at all.
fn link_tables(tables: &[PathBuf], manifest: &manifest::Manifest, dir: &Path) -> Result<()> {
    if dir.exists() {
        return Err(StorageError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the directory must not exist yet",
            ),
        });
    }
    let temporary = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&temporary);
    std::fs::create_dir_all(&temporary).map_err(StorageError::io(&temporary))?;
    for source in tables {
        let target = temporary.join(source.file_name().unwrap_or_default());
        if std::fs::hard_link(source, &target).is_err() {
            std::fs::copy(source, &target).map_err(StorageError::io(&target))?;
            std::fs::File::open(&target)
                .and_then(|file| file.sync_all())
                .map_err(StorageError::io(&target))?;
        }
    }
    manifest::write(&temporary, manifest)?;
    std::fs::rename(&temporary, dir).map_err(StorageError::io(dir))?;
    match dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Locks `dir`'s `LOCK` file for this store, or says that another holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StorageError::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "the store is already open (in this or another process)",
            ),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(StorageError::Io {
            path,
            source: error,
        }),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(StorageError::io(dir))
}

/// The tables of the store in `dir`, as its manifest lists them (tables it does not list are
/// leftovers, deleted). A store without a manifest (made by an earlier build) has all its
/// tables in level 0, the highest-numbered newest.
fn load_version(dir: &Path, io_uring: bool) -> Result<Version> {
    let files = numbered_files(dir, ".sst")?;
    let mut version = Version::default();
    match manifest::read(dir)? {
        Some(listed) => {
            version.flushed_sequence = listed.flushed_sequence;
            for (level, number) in &listed.tables {
                let level = *level as usize;
                if level >= LEVELS {
                    return Err(
                        StorageError::malformed("manifest", format!("level {level}"))
                            .at(&dir.join(manifest::MANIFEST), 0),
                    );
                }
                let path = dir.join(format!("{number}.sst"));
                version.levels[level].push(Arc::new(Table::open(&path, io_uring)?));
            }
            for (number, path) in files {
                if !listed.tables.iter().any(|(_, listed)| *listed == number) {
                    std::fs::remove_file(&path).map_err(StorageError::io(&path))?;
                }
            }
        }
        None => {
            for (_, path) in files.iter().rev() {
                let table = Table::open(path, io_uring)?;
                version.flushed_sequence = version.flushed_sequence.max(table.footer.max_sequence);
                version.levels[0].push(Arc::new(table));
            }
        }
    }
    Ok(version)
}

impl Db {
    /// Opens the store in `dir`, creating it if needed, and recovers every write that was
    /// acknowledged before the last process ended.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
        let lock = lock_dir(&dir)?;
        for extension in [".sst.tmp", ".tmp"] {
            for (_, unfinished) in numbered_files(&dir, extension)? {
                std::fs::remove_file(&unfinished).map_err(StorageError::io(&unfinished))?;
            }
        }
        let _ = std::fs::remove_file(dir.join(format!("{}.tmp", manifest::MANIFEST)));
        let version = load_version(&dir, options.io_uring)?;
        let logs = numbered_files(&dir, ".wal")?;
        let flushed = version.flushed_sequence;
        let mut memtable = MemTable::default();
        let mut last_sequence = flushed;
        for (_, log) in &logs {
            for (sequence, batch) in replay(log)? {
                if sequence > flushed {
                    memtable.apply(&batch);
                    last_sequence = last_sequence.max(sequence);
                }
            }
        }
        let next_file = version
            .tables()
            .filter_map(|table| table_number(table.path()))
            .chain(logs.iter().map(|(number, _)| *number))
            .map(|number| number + 1)
            .max()
            .unwrap_or(1);
        let wal_path = dir.join(format!("{next_file}.wal"));
        let state = State {
            wal: WalWriter::create(&wal_path, options.io_uring)?,
            memtable: MemTable::default(),
            frozen: Arc::new(Vec::new()),
            version: Arc::new(version),
            next_file: next_file + 1,
            last_sequence,
            failed: None,
            background_failure: None,
            log_syncs: 0,
            counters: Counters::default(),
            cursors: vec![Vec::new(); LEVELS],
            closing: false,
        };
        let shared = Arc::new(Shared {
            cache: Arc::new(BlockCache::new(options.block_cache_bytes)),
            dir,
            options,
            state: Mutex::new(state),
            changed: Condvar::new(),
            compacting: Mutex::new(()),
            closing: AtomicBool::new(false),
        });
        // What the logs held goes into a table before the logs are deleted.
        let mut version = shared.lock().version.as_ref().clone();
        if !memtable.is_empty() {
            let replayed = Frozen {
                memtable: Arc::new(memtable),
                max_sequence: last_sequence,
                log: None,
            };
            let table = shared.write_frozen(&replayed)?;
            version = version.replaced(&[], 0, vec![table]);
            version.flushed_sequence = last_sequence;
        }
        manifest::write(&shared.dir, &manifest_of(&version)?)?;
        shared.lock().version = Arc::new(version);
        for (_, log) in logs {
            std::fs::remove_file(&log).map_err(StorageError::io(&log))?;
        }
        let workers = [
            (
                "sabot-storage-flush",
                background::flusher as fn(Arc<Shared>),
            ),
            ("sabot-storage-compact", background::compactor),
        ]
        .into_iter()
        .map(|(name, work)| {
            let worker = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || work(worker))
                .map_err(StorageError::io(&shared.dir))
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(Db {
            shared,
            line: Mutex::new(VecDeque::new()),
            committed: Condvar::new(),
            registering: Mutex::new(()),
            workers,
            _lock: lock,
        })
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &[u8], value: &[u8], durability: Durability) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write(&batch, durability)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &[u8], durability: Durability) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(&batch, durability)
    }

    /// Applies `batch` atomically: after a crash, all of it or none of it is there (all of it
    /// once this returned). Concurrent writers commit in groups: the first in line writes every
    /// waiting batch to the log at once, with one `fdatasync` if any of them asked for it.
    pub fn write(&self, batch: &WriteBatch, durability: Durability) -> Result<()> {
        batch.check_sizes()?;
        let ticket = Arc::new(Ticket {
            payload: batch.encode(0),
            batch: batch.clone(),
            sync: durability == Durability::Synced,
            outcome: Mutex::new(None),
        });
        let mut line = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        line.push_back(Arc::clone(&ticket));
        loop {
            if let Some(outcome) = ticket.outcome() {
                return outcome;
            }
            if line
                .front()
                .is_some_and(|first| Arc::ptr_eq(first, &ticket))
            {
                break;
            }
            line = self
                .committed
                .wait(line)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // First in line: commit everyone waiting, this write included. They stay in line while
        // the log is written, so writers arriving meanwhile wait, and the first of them then
        // commits them all as the next group.
        let group: Vec<Arc<Ticket>> = line.iter().cloned().collect();
        drop(line);
        let result = self.commit_group(&group);
        let message = result.as_ref().err().map(ToString::to_string);
        for member in &group {
            *member
                .outcome
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(message.clone());
        }
        let mut line = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        line.drain(..group.len());
        self.committed.notify_all();
        result
    }

    /// Logs and applies a group of writes, in line order, once the background work leaves
    /// room for them.
    fn commit_group(&self, group: &[Arc<Ticket>]) -> Result<()> {
        let shared = &self.shared;
        let mut state = shared.lock();
        let mut stalled_since = None;
        while state.background_failure.is_none()
            && (state.frozen.len() >= shared.options.max_frozen_memtables
                || state.version.levels[0].len() >= shared.options.level_zero_stop_tables)
        {
            stalled_since.get_or_insert_with(Instant::now);
            state = shared.wait(state);
        }
        if let Some(since) = stalled_since {
            state.counters.write_stalls += 1;
            state.counters.write_stall_time += since.elapsed();
        }
        if let Some(error) = state.background_error() {
            return Err(error);
        }
        if let Some(failure) = &state.failed {
            return Err(StorageError::Io {
                path: state.wal.path().to_path_buf(),
                source: std::io::Error::other(format!(
                    "an earlier write failed ({failure}); reopen the store to recover"
                )),
            });
        }
        let first_sequence = state.last_sequence + 1;
        let payloads: Vec<Vec<u8>> = group
            .iter()
            .zip(first_sequence..)
            .map(|(member, sequence)| {
                let mut payload = member.payload.clone();
                payload[..8].copy_from_slice(&sequence.to_le_bytes());
                payload
            })
            .collect();
        let sync = group.iter().any(|member| member.sync);
        if let Err(error) = state.wal.append(payloads.iter().map(Vec::as_slice), sync) {
            state.failed = Some(error.to_string());
            return Err(error);
        }
        if sync {
            state.log_syncs += 1;
        }
        for member in group {
            state.memtable.apply(&member.batch);
        }
        state.last_sequence = first_sequence + group.len() as u64 - 1;
        if state.memtable.bytes() >= shared.options.memtable_bytes {
            self.freeze(&mut state, true)?;
        }
        Ok(())
    }

    /// Hands the live memtable (if it holds anything) to the flusher. With `new_log`, later
    /// writes go to a new log and the old one is deleted after the flush; without, the log
    /// goes on (and is deleted with a later memtable's flush).
    fn freeze(&self, state: &mut State, new_log: bool) -> Result<()> {
        if state.memtable.is_empty() {
            return Ok(());
        }
        let log = if new_log {
            let number = state.next_file;
            let wal = WalWriter::create(
                &self.shared.dir.join(format!("{number}.wal")),
                self.shared.options.io_uring,
            )?;
            state.next_file += 1;
            Some(std::mem::replace(&mut state.wal, wal).path().to_path_buf())
        } else {
            None
        };
        let mut frozen = state.frozen.as_ref().clone();
        frozen.insert(
            0,
            Frozen {
                memtable: Arc::new(std::mem::take(&mut state.memtable)),
                max_sequence: state.last_sequence,
                log,
            },
        );
        state.frozen = Arc::new(frozen);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Whether synced log appends go through io_uring (asked for in [`Options`] and allowed
    /// here).
    pub fn uses_io_uring(&self) -> bool {
        self.shared.lock().wal.uses_io_uring()
    }

    /// How many times the log was synced: with writers committing in groups, fewer than the
    /// synced writes.
    pub fn log_syncs(&self) -> u64 {
        self.shared.lock().log_syncs
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(DEFAULT_FAMILY, key)
    }

    /// The value of `key` in `family`, if it has one.
    pub fn get_cf(&self, family: &ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(family.id(), key)
    }

    /// The values of `keys`, in their order. Table blocks not in the block cache are read in
    /// batches (through io_uring where it is on and allowed): far fewer waits than one
    /// [`Db::get`] per key when the keys' blocks are not in memory.
    pub fn multi_get<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        self.multi_get_in(DEFAULT_FAMILY, keys)
    }

    /// [`Db::multi_get`] in `family`.
    pub fn multi_get_cf<K: AsRef<[u8]>>(
        &self,
        family: &ColumnFamily,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.multi_get_in(family.id(), keys)
    }

    fn multi_get_in<K: AsRef<[u8]>>(
        &self,
        family: u16,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let keys: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| family_key(family, key.as_ref()))
            .collect();
        let mut answers: Vec<multi_get::Answer> = vec![None; keys.len()];
        let view = {
            let state = self.shared.lock();
            for (key, answer) in keys.iter().zip(&mut answers) {
                *answer = state
                    .memtable
                    .get(key)
                    .map(|value| value.map(<[u8]>::to_vec));
            }
            ReadView::of(&state)
        };
        for frozen in view.frozen.iter() {
            for (key, answer) in keys.iter().zip(&mut answers) {
                if answer.is_none() {
                    *answer = frozen
                        .memtable
                        .get(key)
                        .map(|value| value.map(<[u8]>::to_vec));
                }
            }
        }
        multi_get::lookup_many(
            &view.version,
            &keys,
            &mut answers,
            &self.shared.cache,
            self.shared.options.io_uring,
        )?;
        Ok(answers.into_iter().map(Option::flatten).collect())
    }

    fn get_in(&self, family: u16, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = family_key(family, key);
        let view = {
            let state = self.shared.lock();
            if let Some(value) = state.memtable.get(&key) {
                return Ok(value.map(<[u8]>::to_vec));
            }
            ReadView::of(&state)
        };
        view.get(&key, &self.shared.cache)
    }
    /// Puts `value` under `key` in `family`.
    pub fn put_cf(
        &self,
        family: &ColumnFamily,
        key: &[u8],
        value: &[u8],
        durability: Durability,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put_cf(family, key, value);
        self.write(&batch, durability)
    }

    /// Removes `key` from `family`.
    pub fn delete_cf(
        &self,
        family: &ColumnFamily,
        key: &[u8],
        durability: Durability,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_cf(family, key);
        self.write(&batch, durability)
    }

    /// The column family named `name`, made (and recorded durably) if it does not exist yet.
    /// `"default"` is the family of the methods without `_cf`.
    pub fn column_family(&self, name: &str) -> Result<ColumnFamily> {
        if name == DEFAULT_FAMILY_NAME {
            return Ok(ColumnFamily::new(DEFAULT_FAMILY, name));
        }
        if name.is_empty() || name.len() > 255 {
            return Err(StorageError::malformed(
                "column family name",
                "must be 1 to 255 bytes long",
            ));
        }
        let _registering = self
            .registering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let families = self.column_families()?;
        if let Some(family) = families.iter().find(|family| family.name() == name) {
            return Ok(family.clone());
        }
        let next = families
            .iter()
            .map(|family| family.id() + 1)
            .max()
            .unwrap_or(DEFAULT_FAMILY + 1);
        if next == REGISTRY_FAMILY {
            return Err(StorageError::malformed(
                "column family",
                "too many column families",
            ));
        }
        let mut batch = WriteBatch::new();
        batch.push(REGISTRY_FAMILY, name.as_bytes(), Some(&next.to_be_bytes()));
        self.write(&batch, Durability::Synced)?;
        Ok(ColumnFamily::new(next, name))
    }

    /// The column families made so far (not the default one), by id.
    pub fn column_families(&self) -> Result<Vec<ColumnFamily>> {
        let mut families = Vec::new();
        for entry in self.range_in(REGISTRY_FAMILY, b"", None)? {
            let (name, id) = entry?;
            let (Ok(name), Ok(id)) = (String::from_utf8(name), <[u8; 2]>::try_from(id.as_slice()))
            else {
                return Err(StorageError::malformed(
                    "column family registry",
                    "a damaged entry",
                ));
            };
            families.push(ColumnFamily::new(u16::from_be_bytes(id), &name));
        }
        families.sort_by_key(ColumnFamily::id);
        Ok(families)
    }

    /// A point-in-time view of the store: reads through it see every write acknowledged
    /// before this call and none after, whatever flushes and compactions happen meanwhile.
    /// Taking one freezes the memtable (later writes go to a new one), which is then flushed
    /// in the background like a full one.
    pub fn snapshot(&self) -> Snapshot {
        let mut state = self.shared.lock();
        // Without a new log, freezing cannot fail.
        let _ = self.freeze(&mut state, false);
        Snapshot {
            view: ReadView::of(&state),
            cache: Arc::clone(&self.shared.cache),
        }
    }

    /// Writes the memtable into a table now, and returns once it is there.
    pub fn flush(&self) -> Result<()> {
        let mut state = self.shared.lock();
        self.freeze(&mut state, true)?;
        // The newest write held by a memtable (an empty batch takes a sequence number but
        // reaches no memtable, so `last_sequence` may never be flushed).
        let target = state.frozen.first().map_or(0, |newest| newest.max_sequence);
        while state.version.flushed_sequence < target && state.background_failure.is_none() {
            state = self.shared.wait(state);
        }
        match state.background_error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Waits until the background threads have nothing left to do: every frozen memtable
    /// flushed and no compaction needed (or one of them failed, which is returned).
    pub fn wait_for_background(&self) -> Result<()> {
        let mut state = self.shared.lock();
        loop {
            if let Some(error) = state.background_error() {
                return Err(error);
            }
            if state.frozen.is_empty() && !self.shared.needs_compaction(&state) {
                return Ok(());
            }
            state = self.shared.wait(state);
        }
    }

    /// Point reads whose table block came from the block cache, and those that read it from
    /// the file, so far.
    pub fn block_cache_counts(&self) -> (u64, u64) {
        self.shared.cache.counts()
    }

    /// The tables per level and what flushes, compactions and write stalls there have been.
    pub fn stats(&self) -> StoreStats {
        let state = self.shared.lock();
        let counters = state.counters.clone();
        StoreStats {
            tables_per_level: state.version.levels.iter().map(Vec::len).collect(),
            bytes_per_level: (0..LEVELS)
                .map(|level| state.version.level_bytes(level))
                .collect(),
            flushes: counters.flushes,
            compactions: counters.compactions,
            table_moves: counters.table_moves,
            compaction_bytes_written: counters.compaction_bytes_written,
            write_stalls: counters.write_stalls,
            write_stall_time: counters.write_stall_time,
        }
    }

    /// Writes a consistent copy of the store into `dir` (which must not exist), as of this
    /// call: the memtable is flushed, and the tables, which never change once written, are
    /// hard-linked there (copied where links are not possible) with a manifest. `dir` is a
    /// store of its own: [`Db::open`] opens it.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.flush()?;
        let _compacting = self.compacting();
        let version = Arc::clone(&self.shared.lock().version);
        let sources: Vec<PathBuf> = version
            .tables()
            .map(|table| table.path().to_path_buf())
            .collect();
        link_tables(&sources, &manifest_of(&version)?, dir.as_ref())
    }

    /// Opens a new store in `dir` (which must not exist) holding the tables of the checkpoint
    /// in `checkpoint` (linked, so the checkpoint stays as it is).
    pub fn open_from_checkpoint(
        checkpoint: impl AsRef<Path>,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Db> {
        let version = load_version(checkpoint.as_ref(), false)?;
        let tables: Vec<PathBuf> = version
            .tables()
            .map(|table| table.path().to_path_buf())
            .collect();
        link_tables(&tables, &manifest_of(&version)?, dir.as_ref())?;
        Db::open(dir, options)
    }

    fn compacting(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared
            .compacting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Merges every table down into the deepest level (one sorted run), dropping deleted keys
    /// and overwritten values.
    pub fn compact(&self) -> Result<()> {
        self.compact_span(&[], None)
    }

    /// Compacts the tables holding keys of `[start, end)` (`end` `None`: to the last key) down
    /// to the deepest level, so that reads of the range find each key in one table and deleted
    /// keys take no space. The memtable is flushed first.
    pub fn compact_range(&self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        let (start, end) = family_bounds(DEFAULT_FAMILY, start, end);
        self.compact_span(&start, end.as_deref())
    }

    /// [`Db::compact_range`] over the keys of `family`.
    pub fn compact_range_cf(
        &self,
        family: &ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<()> {
        let (start, end) = family_bounds(family.id(), start, end);
        self.compact_span(&start, end.as_deref())
    }

    fn compact_span(&self, start: &[u8], end: Option<&[u8]>) -> Result<()> {
        self.flush()?;
        let _compacting = self.compacting();
        let current = || Arc::clone(&self.shared.lock().version);
        match self.shared.options.compaction {
            CompactionStyle::Leveled => {
                let deepest = current().deepest_level().unwrap_or(0).max(1);
                for level in 0..deepest {
                    let version = current();
                    let inputs = if level == 0 {
                        if version.overlapping(0, start, end).is_empty() {
                            Vec::new()
                        } else {
                            // Older level-0 tables must not shadow the merged keys.
                            version.levels[0].clone()
                        }
                    } else {
                        version.overlapping(level, start, end)
                    };
                    if !inputs.is_empty() {
                        let merge = compaction::level_merge(&version, inputs, level);
                        self.shared.compact(&merge)?;
                    }
                }
            }
            CompactionStyle::SizeTiered => {
                let version = current();
                let tables = &version.levels[0];
                let overlapping = |table: &&Arc<Table>| table.overlaps(start, end);
                let first = tables.iter().position(|table| overlapping(&table));
                let last = tables.iter().rposition(|table| overlapping(&table));
                if let (Some(first), Some(last)) = (first, last)
                    && (last > first || tables.len() > 1)
                {
                    let run = tables[first..=last.max(first)].to_vec();
                    let merge = compaction::tiered_merge(&version, run);
                    self.shared.compact(&merge)?;
                }
            }
        }
        Ok(())
    }

    /// The keys in `[start, end)` (`end` `None`: to the last key) with their values, in key
    /// order. The entries are read as the iterator advances, from the memtables as they were
    /// and the tables as they were when it was made.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<KeyValues> {
        self.range_in(DEFAULT_FAMILY, start, end)
    }

    /// The keys of `family` in `[start, end)` with their values, in key order.
    pub fn range_cf(
        &self,
        family: &ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<KeyValues> {
        self.range_in(family.id(), start, end)
    }

    /// The keys of `family` starting with `prefix` and their values, in key order.
    pub fn prefix_cf(&self, family: &ColumnFamily, prefix: &[u8]) -> Result<KeyValues> {
        self.range_in(family.id(), prefix, prefix_end(prefix).as_deref())
    }

    fn range_in(&self, family: u16, start: &[u8], end: Option<&[u8]>) -> Result<KeyValues> {
        self.range_in_direction(family, start, end, false)
    }

    fn range_in_direction(
        &self,
        family: u16,
        start: &[u8],
        end: Option<&[u8]>,
        backwards: bool,
    ) -> Result<KeyValues> {
        let (start, end) = family_bounds(family, start, end);
        let (live, view) = {
            let state = self.shared.lock();
            let live = memtable_stream(state.memtable.range(&start, end.as_deref()), backwards);
            (live, ReadView::of(&state))
        };
        view.range(Some(live), &start, end.as_deref(), backwards)
    }

    /// The keys starting with `prefix` and their values, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Result<KeyValues> {
        self.range(prefix, prefix_end(prefix).as_deref())
    }

    /// The keys in `[start, end)` with their values, in reverse key order, read as the
    /// iterator advances (one table block at a time).
    pub fn range_reversed(&self, start: &[u8], end: Option<&[u8]>) -> Result<KeyValues> {
        self.range_in_direction(DEFAULT_FAMILY, start, end, true)
    }

    /// The keys of `family` in `[start, end)` with their values, in reverse key order.
    pub fn range_reversed_cf(
        &self,
        family: &ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<KeyValues> {
        self.range_in_direction(family.id(), start, end, true)
    }
}

impl Drop for Db {
    /// Stops the background threads (a running compaction is abandoned; its inputs stay).
    /// Frozen memtables not flushed yet are in their logs, replayed at the next open.
    fn drop(&mut self) {
        background::close(&self.shared);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// The frozen memtables and tables of one moment, read without the state lock.
struct ReadView {
    /// Newest first.
    frozen: Arc<Vec<Frozen>>,
    version: Arc<Version>,
}

impl ReadView {
    fn of(state: &State) -> ReadView {
        ReadView {
            frozen: Arc::clone(&state.frozen),
            version: Arc::clone(&state.version),
        }
    }

    fn get(&self, key: &[u8], cache: &BlockCache) -> Result<Option<Vec<u8>>> {
        for frozen in self.frozen.iter() {
            if let Some(value) = frozen.memtable.get(key) {
                return Ok(value.map(<[u8]>::to_vec));
            }
        }
        Ok(self.version.get(key, cache)?.flatten())
    }

    /// The live entries of `[start, end)`: `live` (the live memtable's, if any) first, then
    /// the frozen memtables' (copied now) and the tables' (read as the iterator advances).
    fn range(
        &self,
        live: Option<Entries>,
        start: &[u8],
        end: Option<&[u8]>,
        backwards: bool,
    ) -> Result<KeyValues> {
        let mut streams: Vec<Entries> = live.into_iter().collect();
        for frozen in self.frozen.iter() {
            streams.push(memtable_stream(
                frozen.memtable.range(start, end),
                backwards,
            ));
        }
        streams.extend(self.version.streams(start, end, backwards));
        Ok(if backwards {
            KeyValues {
                merged: Merged::descending(streams)?,
                stop: Stop::Below(start.to_vec()),
            }
        } else {
            KeyValues {
                merged: Merged::new(streams)?,
                stop: Stop::AtOrPast(end.map(<[u8]>::to_vec)),
            }
        })
    }
}

/// A point-in-time view of a store ([`Db::snapshot`]). It keeps the memtables and tables it
/// reads alive (a compaction's deleted table files stay readable until it is dropped).
pub struct Snapshot {
    view: ReadView,
    cache: Arc<BlockCache>,
}

impl Snapshot {
    /// The value `key` had when the snapshot was taken.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(DEFAULT_FAMILY, key)
    }

    /// The value `key` of `family` had when the snapshot was taken.
    pub fn get_cf(&self, family: &ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(family.id(), key)
    }

    fn get_in(&self, family: u16, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.view.get(&family_key(family, key), &self.cache)
    }

    /// The keys in `[start, end)` with their values as of the snapshot, in key order.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<KeyValues> {
        self.range_in(DEFAULT_FAMILY, start, end)
    }

    /// The keys of `family` in `[start, end)` with their values as of the snapshot.
    pub fn range_cf(
        &self,
        family: &ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<KeyValues> {
        self.range_in(family.id(), start, end)
    }

    fn range_in(&self, family: u16, start: &[u8], end: Option<&[u8]>) -> Result<KeyValues> {
        let (start, end) = family_bounds(family, start, end);
        self.view.range(None, &start, end.as_deref(), false)
    }

    /// The keys starting with `prefix` and their values as of the snapshot, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Result<KeyValues> {
        self.range(prefix, prefix_end(prefix).as_deref())
    }
}

/// Memtable entries copied into a merge stream (last first, `backwards`).
fn memtable_stream<'a>(
    entries: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    backwards: bool,
) -> Entries {
    let mut copied: Vec<Result<Entry>> = entries
        .map(|(key, value)| Ok((key.to_vec(), value.map(<[u8]>::to_vec))))
        .collect();
    if backwards {
        copied.reverse();
    }
    Box::new(copied.into_iter())
}
/// The smallest key after every key that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Where a range's iteration stops.
enum Stop {
    /// Forwards: at the first key at or past the end (if there is one).
    AtOrPast(Option<Vec<u8>>),
    /// Backwards: at the first key below the start.
    Below(Vec<u8>),
}

/// Live keys and values of a range, in key order (or reverse key order).
pub struct KeyValues {
    merged: Merged,
    stop: Stop,
}

impl Iterator for KeyValues {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (mut key, value) = match self.merged.next()? {
                Ok(entry) => entry,
                Err(error) => return Some(Err(error)),
            };
            let past = match &self.stop {
                Stop::AtOrPast(end) => end.as_ref().is_some_and(|end| key >= *end),
                Stop::Below(start) => key < *start,
            };
            if past {
                return None;
            }
            if let Some(value) = value {
                // The caller's key, without its family's id.
                key.drain(..FAMILY_BYTES.min(key.len()));
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_flushes_and_reopens_and_deletes_shadow_older_values() {
        // Once with log appends through io_uring (where the kernel allows it), once forced to
        // plain writes.
        for io_uring in [true, false] {
            survives_flushes_and_reopens(Options {
                memtable_bytes: 4096,
                io_uring,
                ..Options::default()
            });
        }
    }

    fn survives_flushes_and_reopens(options: Options) {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), options.clone()).unwrap();
            if !options.io_uring {
                assert!(!db.uses_io_uring(), "the option forces plain writes");
            }
            for i in 0..500u32 {
                db.put(
                    format!("k{i}").as_bytes(),
                    format!("v{i}").as_bytes(),
                    Durability::Buffered,
                )
                .unwrap();
            }
            // Flushes run in the background and compactions may merge their tables, so wait
            // for them and count flushes, not tables.
            db.wait_for_background().unwrap();
            assert!(db.stats().flushes > 1, "small memtables flush");
            db.delete(b"k7", Durability::Synced).unwrap();
            db.put(b"k8", b"new", Durability::Synced).unwrap();
            assert_eq!(db.get(b"k7").unwrap(), None);
            assert_eq!(db.get(b"k8").unwrap().as_deref(), Some(&b"new"[..]));
        }
        let db = Db::open(dir.path(), options).unwrap();
        assert_eq!(db.get(b"k7").unwrap(), None);
        assert_eq!(db.get(b"k8").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(db.get(b"k499").unwrap().as_deref(), Some(&b"v499"[..]));
        assert_eq!(db.get(b"missing").unwrap(), None);
        let logs = numbered_files(dir.path(), ".wal").unwrap();
        assert_eq!(logs.len(), 1, "one fresh log after open: {logs:?}");
    }

    #[test]
    fn concurrent_synced_writers_share_log_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let writers: Vec<_> = (0..8)
            .map(|writer| {
                let db = Arc::clone(&db);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let key = format!("w{writer}-{i}");
                        db.put(key.as_bytes(), b"v", Durability::Synced).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        for writer in 0..8 {
            for i in 0..100 {
                let key = format!("w{writer}-{i}");
                assert!(db.get(key.as_bytes()).unwrap().is_some(), "{key}");
            }
        }
        let syncs = db.log_syncs();
        assert!(syncs <= 800, "{syncs}");
        eprintln!("800 synced writes from 8 threads took {syncs} log syncs");
    }

    #[test]
    fn a_checkpoint_keeps_the_state_of_its_moment() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let saved = dir.path().join("checkpoint-1");
        let db = Db::open(&live, Options::default()).unwrap();
        db.put(b"a", b"1", Durability::Buffered).unwrap();
        db.flush().unwrap();
        db.put(b"b", b"2", Durability::Buffered).unwrap();
        db.checkpoint(&saved).unwrap();
        db.put(b"a", b"changed", Durability::Buffered).unwrap();
        db.delete(b"b", Durability::Buffered).unwrap();
        db.compact().unwrap();
        assert!(
            db.checkpoint(&saved).is_err(),
            "an existing checkpoint is not overwritten"
        );
        let restored =
            Db::open_from_checkpoint(&saved, dir.path().join("restored"), Options::default())
                .unwrap();
        let files = numbered_files(&saved, ".sst").unwrap().len();
        assert_eq!(
            std::fs::read_dir(&saved).unwrap().count(),
            files + 1,
            "only tables and the manifest"
        );
        assert_eq!(restored.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(restored.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"changed"[..]));
    }

    #[test]
    fn multi_get_answers_like_get_from_memtables_and_every_level() {
        for io_uring in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(
                dir.path(),
                Options {
                    memtable_bytes: 8 << 10,
                    table_bytes: 8 << 10,
                    level_one_bytes: 32 << 10,
                    io_uring,
                    ..Options::default()
                },
            )
            .unwrap();
            for index in 0..5000u32 {
                let value = format!("value {index}").repeat(3);
                db.put(
                    format!("k{index:05}").as_bytes(),
                    value.as_bytes(),
                    Durability::Buffered,
                )
                .unwrap();
            }
            // Let the first writes reach levels below 0 before the later ones land above them.
            db.wait_for_background().unwrap();
            for index in (0..5000u32).step_by(7) {
                db.delete(format!("k{index:05}").as_bytes(), Durability::Buffered)
                    .unwrap();
            }
            let _snapshot = db.snapshot();
            db.put(b"k00003", b"newest", Durability::Buffered).unwrap();
            let keys: Vec<Vec<u8>> = (0..5200u32)
                .rev()
                .map(|index| format!("k{index:05}").into_bytes())
                .collect();
            let one_by_one: Vec<Option<Vec<u8>>> =
                keys.iter().map(|key| db.get(key).unwrap()).collect();
            assert_eq!(db.multi_get(&keys).unwrap(), one_by_one);
            assert_eq!(one_by_one[5200 - 1 - 3].as_deref(), Some(&b"newest"[..]));
            assert_eq!(one_by_one[5200 - 1 - 7], None, "deleted");
            assert_eq!(one_by_one[0], None, "never written");
            assert!(db.stats().tables_per_level[1..].iter().sum::<usize>() > 0);
        }
    }

    #[test]
    fn flush_and_checkpoint_return_after_an_empty_synced_batch() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("store"), Options::default()).unwrap();
        db.put(b"k", b"v", Durability::Buffered).unwrap();
        db.write(&WriteBatch::new(), Durability::Synced).unwrap();
        db.flush().unwrap();
        db.write(&WriteBatch::new(), Durability::Synced).unwrap();
        db.flush().unwrap();
        db.checkpoint(dir.path().join("copy")).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn oversized_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let key = vec![0u8; crate::batch::MAX_KEY_BYTES + 1];
        let error = db.put(&key, b"v", Durability::Buffered).unwrap_err();
        assert!(error.to_string().starts_with("key of"), "{error}");
    }

    #[test]
    fn a_snapshot_keeps_reading_its_moment_through_writes_flushes_and_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path(),
            Options {
                memtable_bytes: 2048,
                io_uring: false,
                ..Options::default()
            },
        )
        .unwrap();
        for index in 0..200u32 {
            db.put(
                format!("key{index:04}").as_bytes(),
                b"old",
                Durability::Buffered,
            )
            .unwrap();
        }
        let snapshot = db.snapshot();
        let empty_after = db.snapshot();
        for index in 0..200u32 {
            let key = format!("key{index:04}");
            if index % 2 == 0 {
                db.delete(key.as_bytes(), Durability::Buffered).unwrap();
            } else {
                db.put(key.as_bytes(), b"new", Durability::Buffered)
                    .unwrap();
            }
        }
        db.put(b"key9999", b"later", Durability::Buffered).unwrap();
        // Compacts every table the snapshot reads into new ones.
        db.compact().unwrap();
        assert!(
            snapshot
                .view
                .version
                .tables()
                .any(|table| !table.path().exists()),
            "a compaction deleted a table the snapshot reads"
        );
        assert_eq!(
            snapshot.get(b"key0000").unwrap().as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(
            snapshot.get(b"key0001").unwrap().as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(snapshot.get(b"key9999").unwrap(), None);
        let seen: Vec<(Vec<u8>, Vec<u8>)> = snapshot
            .prefix(b"key")
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(seen.len(), 200);
        assert!(seen.iter().all(|(_, value)| value == b"old"));
        assert_eq!(
            empty_after.get(b"key0001").unwrap().as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(db.get(b"key0000").unwrap(), None);
        assert_eq!(db.get(b"key0001").unwrap().as_deref(), Some(&b"new"[..]));
        let live = db.prefix(b"key").unwrap().count();
        assert_eq!(live, 101, "100 odd keys and key9999");
        drop(snapshot);
        drop(empty_after);
        drop(db);
        let reopened = Db::open(dir.path(), Options::default()).unwrap();
        assert_eq!(reopened.get(b"key0000").unwrap(), None);
        assert_eq!(
            reopened.get(b"key9999").unwrap().as_deref(),
            Some(&b"later"[..])
        );
    }

    #[test]
    fn column_families_are_separate_keyspaces_written_atomically_together() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            memtable_bytes: 4096,
            io_uring: false,
            ..Options::default()
        };
        let db = Db::open(dir.path(), options.clone()).unwrap();
        let users = db.column_family("users").unwrap();
        let orders = db.column_family("orders").unwrap();
        assert_eq!(db.column_family("users").unwrap(), users);
        assert_ne!(users, orders);
        let mut batch = WriteBatch::new();
        batch
            .put(b"k", b"default")
            .put_cf(&users, b"k", b"ada")
            .put_cf(&orders, b"k", b"order 1")
            .put_cf(&orders, b"z", b"order 2");
        db.write(&batch, Durability::Synced).unwrap();
        for index in 0..300u32 {
            db.put_cf(
                &users,
                format!("u{index:03}").as_bytes(),
                b"x",
                Durability::Buffered,
            )
            .unwrap();
        }
        db.delete_cf(&orders, b"z", Durability::Buffered).unwrap();
        let snapshot = db.snapshot();
        db.put_cf(&users, b"k", b"grace", Durability::Buffered)
            .unwrap();
        let read_back = |db: &Db| {
            assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"default"[..]));
            assert_eq!(
                db.get_cf(&orders, b"k").unwrap().as_deref(),
                Some(&b"order 1"[..])
            );
            assert_eq!(db.get_cf(&orders, b"z").unwrap(), None);
            assert_eq!(
                db.get_cf(&users, b"k").unwrap().as_deref(),
                Some(&b"grace"[..])
            );
            let all_default: Vec<_> = db.range(b"", None).unwrap().collect::<Result<_>>().unwrap();
            assert_eq!(all_default, vec![(b"k".to_vec(), b"default".to_vec())]);
            let all_orders: Vec<_> = db
                .range_cf(&orders, b"", None)
                .unwrap()
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(all_orders, vec![(b"k".to_vec(), b"order 1".to_vec())]);
            assert_eq!(db.prefix_cf(&users, b"u").unwrap().count(), 300);
        };
        read_back(&db);
        assert_eq!(
            snapshot.get_cf(&users, b"k").unwrap().as_deref(),
            Some(&b"ada"[..])
        );
        assert_eq!(snapshot.range_cf(&users, b"u", None).unwrap().count(), 300);
        drop(snapshot);
        drop(db);
        let reopened = Db::open(dir.path(), options).unwrap();
        let names: Vec<String> = reopened
            .column_families()
            .unwrap()
            .iter()
            .map(|family| family.name().to_string())
            .collect();
        assert_eq!(names, ["users", "orders"]);
        assert_eq!(reopened.column_family("orders").unwrap(), orders);
        read_back(&reopened);
        assert!(reopened.column_family("").is_err());
        assert_eq!(reopened.column_family("default").unwrap().name(), "default");
    }

    #[test]
    fn repeated_point_reads_come_from_the_block_cache() {
        let dir = tempfile::tempdir().unwrap();
        for (cache_bytes, expect_hits) in [(1 << 20, true), (0, false)] {
            let path = dir.path().join(format!("cache-{cache_bytes}"));
            let options = Options {
                block_cache_bytes: cache_bytes,
                ..Options::default()
            };
            let db = Db::open(&path, options).unwrap();
            for index in 0..1000u32 {
                db.put(&index.to_be_bytes(), b"value", Durability::Buffered)
                    .unwrap();
            }
            db.flush().unwrap();
            for _ in 0..3 {
                assert_eq!(
                    db.get(&7u32.to_be_bytes()).unwrap().as_deref(),
                    Some(&b"value"[..])
                );
            }
            let (hits, misses) = db.block_cache_counts();
            if expect_hits {
                assert_eq!((hits, misses), (2, 1));
            } else {
                assert_eq!((hits, misses), (0, 0), "no cache, no counting");
            }
        }
    }
}
