//! The store: a directory holding the write-ahead log, whose records reach the memtable, and the
//! tables the memtable is flushed into. Reads look at the memtable, then the tables from newest
//! to oldest. Files: `<n>.wal` (the log), `<n>.sst` (tables), `<n>.sst.tmp` (a flush that did not
//! finish, removed at open).
//!
//! Flushes write the table under a temporary name, sync it, rename it into place and sync the
//! directory, then start a new log and delete the old one. A table's footer records the newest
//! sequence number it holds, so a log that outlived its flush (a crash before its deletion) is
//! not replayed twice. At open, the logs are replayed and flushed, and a fresh log begins.
//! Past [`MAX_TABLES`] tables, a flush merges all of them into one (a full compaction); reads of
//! a range merge the memtable's entries with every table's, the newest winning.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::batch::WriteBatch;
use crate::block_cache::BlockCache;
use crate::error::{Result, StorageError};
use crate::family::{
    ColumnFamily, DEFAULT_FAMILY, FAMILY_BYTES, REGISTRY_FAMILY, family_bounds, family_key,
};
use crate::memtable::MemTable;
use crate::merge::{Entries, Merged};
use crate::sstable::{Compression, Entry, Table, TableEntries, TableEntriesBackwards, write_table};
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
    /// Memtable size at which it is flushed into a table.
    pub memtable_bytes: usize,
    /// Make synced log appends through io_uring where the kernel allows it (`false` forces
    /// plain `write` and `fdatasync`).
    pub io_uring: bool,
    /// Bytes of checked table blocks kept in memory for point reads (0: none).
    pub block_cache_bytes: usize,
    /// How new tables store their data blocks.
    pub compression: Compression,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_bytes: 64 << 20,
            io_uring: true,
            block_cache_bytes: 64 << 20,
            compression: Compression::None,
        }
    }
}

/// The name of the family of the methods without `_cf`.
const DEFAULT_FAMILY_NAME: &str = "default";

/// Past this many tables, a flush merges them all into one.
const MAX_TABLES: usize = 8;

struct State {
    wal: WalWriter,
    memtable: MemTable,
    /// Memtables frozen by snapshots, newest first: read after `memtable`, flushed with it.
    frozen: Vec<Arc<MemTable>>,
    frozen_bytes: usize,
    /// Newest first.
    tables: Vec<Arc<Table>>,
    next_file: u64,
    last_sequence: u64,
    /// Set when a log append failed: the log's end is unknown, so no write may follow it until
    /// the store is reopened (which discards the torn record).
    failed: Option<String>,
    log_syncs: u64,
}

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
    dir: PathBuf,
    options: Options,
    state: Mutex<State>,
    /// Writes waiting to commit, in arrival order; the first commits them all.
    line: Mutex<VecDeque<Arc<Ticket>>>,
    committed: Condvar,
    /// Held while a column family is looked up and registered, so two threads asking for a
    /// new name get one id.
    registering: Mutex<()>,
    cache: Arc<BlockCache>,
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
/// possible), all on disk once this returns; the directory appears whole or not at all.
fn link_tables(tables: &[PathBuf], dir: &Path) -> Result<()> {
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
    sync_dir(&temporary)?;
    std::fs::rename(&temporary, dir).map_err(StorageError::io(dir))?;
    match dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(StorageError::io(dir))
}

impl Db {
    /// Opens the store in `dir`, creating it if needed, and recovers every write that was
    /// acknowledged before the last process ended.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
        for (_, unfinished) in numbered_files(&dir, ".sst.tmp")? {
            std::fs::remove_file(&unfinished).map_err(StorageError::io(&unfinished))?;
        }
        let table_files = numbered_files(&dir, ".sst")?;
        let logs = numbered_files(&dir, ".wal")?;
        let mut tables = table_files
            .iter()
            .map(|(_, path)| Table::open(path).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        tables.reverse();
        let flushed = tables
            .iter()
            .map(|table| table.footer.max_sequence)
            .max()
            .unwrap_or(0);
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
        let next_file = table_files
            .iter()
            .chain(&logs)
            .map(|(number, _)| number + 1)
            .max()
            .unwrap_or(1);
        let wal_path = dir.join(format!("{next_file}.wal"));
        let state = State {
            wal: WalWriter::create(&wal_path, options.io_uring)?,
            memtable,
            frozen: Vec::new(),
            frozen_bytes: 0,
            tables,
            next_file: next_file + 1,
            last_sequence,
            failed: None,
            log_syncs: 0,
        };
        let cache = Arc::new(BlockCache::new(options.block_cache_bytes));
        let db = Db {
            dir,
            options,
            state: Mutex::new(state),
            line: Mutex::new(VecDeque::new()),
            committed: Condvar::new(),
            registering: Mutex::new(()),
            cache,
        };
        {
            let mut state = db.lock();
            db.flush_locked(&mut state)?;
            sync_dir(&db.dir)?;
        }
        for (_, log) in logs {
            std::fs::remove_file(&log).map_err(StorageError::io(&log))?;
        }
        Ok(db)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
        let result = {
            let mut state = self.lock();
            self.commit_group(&mut state, &group)
        };
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

    /// Logs and applies a group of writes, in line order.
    fn commit_group(&self, state: &mut State, group: &[Arc<Ticket>]) -> Result<()> {
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
        if state.memtable.bytes() + state.frozen_bytes >= self.options.memtable_bytes {
            self.flush_locked(state)?;
        }
        Ok(())
    }

    /// Whether synced log appends go through io_uring (asked for in [`Options`] and allowed
    /// here).
    pub fn uses_io_uring(&self) -> bool {
        self.lock().wal.uses_io_uring()
    }

    /// How many times the log was synced: with writers committing in groups, fewer than the
    /// synced writes.
    pub fn log_syncs(&self) -> u64 {
        self.lock().log_syncs
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(DEFAULT_FAMILY, key)
    }

    /// The value of `key` in `family`, if it has one.
    pub fn get_cf(&self, family: &ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(family.id(), key)
    }

    fn get_in(&self, family: u16, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = family_key(family, key);
        let state = self.lock();
        let memtables =
            std::iter::once(&state.memtable).chain(state.frozen.iter().map(Arc::as_ref));
        point_lookup(&key, memtables, &state.tables, &self.cache)
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
    /// Taking one freezes the memtable (later writes go to a new one); frozen memtables are
    /// written out with the next flush.
    pub fn snapshot(&self) -> Snapshot {
        let mut state = self.lock();
        if !state.memtable.is_empty() {
            let active = std::mem::take(&mut state.memtable);
            state.frozen_bytes += active.bytes();
            state.frozen.insert(0, Arc::new(active));
        }
        Snapshot {
            memtables: state.frozen.clone(),
            tables: state.tables.clone(),
            cache: Arc::clone(&self.cache),
        }
    }

    /// Writes the memtable into a table now.
    pub fn flush(&self) -> Result<()> {
        let mut state = self.lock();
        self.flush_locked(&mut state)
    }

    /// Point reads whose table block came from the block cache, and those that read it from
    /// the file, so far.
    pub fn block_cache_counts(&self) -> (u64, u64) {
        self.cache.counts()
    }

    /// The number of tables on disk.
    pub fn table_count(&self) -> usize {
        self.lock().tables.len()
    }

    fn flush_locked(&self, state: &mut State) -> Result<()> {
        if state.memtable.is_empty() && state.frozen.is_empty() {
            return Ok(());
        }
        let number = state.next_file;
        let temporary = self.dir.join(format!("{number}.sst.tmp"));
        let path = self.dir.join(format!("{number}.sst"));
        if state.frozen.is_empty() {
            write_table(
                &temporary,
                state.memtable.entries().map(Ok),
                state.last_sequence,
                self.options.compression,
            )?;
        } else {
            let memtables =
                std::iter::once(&state.memtable).chain(state.frozen.iter().map(Arc::as_ref));
            let streams = memtables
                .map(|memtable| memtable_stream(memtable.entries(), false))
                .collect();
            write_table(
                &temporary,
                Merged::new(streams)?,
                state.last_sequence,
                self.options.compression,
            )?;
            state.frozen.clear();
            state.frozen_bytes = 0;
        }
        std::fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
        sync_dir(&self.dir)?;
        state.tables.insert(0, Arc::new(Table::open(&path)?));
        state.memtable = MemTable::default();
        let old_log = state.wal.path().to_path_buf();
        state.wal = WalWriter::create(
            &self.dir.join(format!("{}.wal", number + 1)),
            self.options.io_uring,
        )?;
        state.next_file = number + 2;
        sync_dir(&self.dir)?;
        std::fs::remove_file(&old_log).map_err(StorageError::io(&old_log))?;
        if state.tables.len() > MAX_TABLES {
            self.compact_locked(state)?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the store into `dir` (which must not exist), as of this
    /// call: the memtable is flushed, and the tables, which never change once written, are
    /// hard-linked there (copied where links are not possible). `dir` is a store of its own:
    /// [`Db::open`] opens it.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let mut state = self.lock();
        self.flush_locked(&mut state)?;
        let sources: Vec<PathBuf> = state
            .tables
            .iter()
            .map(|table| table.path().to_path_buf())
            .collect();
        link_tables(&sources, dir)
    }

    /// Opens a new store in `dir` (which must not exist) holding the tables of the checkpoint
    /// in `checkpoint` (linked, so the checkpoint stays as it is).
    pub fn open_from_checkpoint(
        checkpoint: impl AsRef<Path>,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Db> {
        let tables: Vec<PathBuf> = numbered_files(checkpoint.as_ref(), ".sst")?
            .into_iter()
            .map(|(_, path)| path)
            .collect();
        link_tables(&tables, dir.as_ref())?;
        Db::open(dir, options)
    }

    /// Merges every table into one, dropping deleted keys and overwritten values.
    pub fn compact(&self) -> Result<()> {
        let mut state = self.lock();
        self.compact_locked(&mut state)
    }

    fn compact_locked(&self, state: &mut State) -> Result<()> {
        if state.tables.len() < 2 {
            return Ok(());
        }
        let number = state.next_file;
        state.next_file += 1;
        let temporary = self.dir.join(format!("{number}.sst.tmp"));
        let path = self.dir.join(format!("{number}.sst"));
        let max_sequence = state
            .tables
            .iter()
            .map(|table| table.footer.max_sequence)
            .max()
            .unwrap_or(0);
        let streams = state
            .tables
            .iter()
            .map(|table| Box::new(TableEntries::from_key(Arc::clone(table), &[])) as Entries)
            .collect();
        // Every table takes part, so no older value can be behind a delete: deletes go too.
        let live = Merged::new(streams)?.filter(|entry| !matches!(entry, Ok((_, None))));
        write_table(&temporary, live, max_sequence, self.options.compression)?;
        std::fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
        sync_dir(&self.dir)?;
        let replaced = std::mem::replace(&mut state.tables, vec![Arc::new(Table::open(&path)?)]);
        for table in replaced {
            std::fs::remove_file(table.path()).map_err(StorageError::io(table.path()))?;
        }
        sync_dir(&self.dir)
    }

    /// The keys in `[start, end)` (`end` `None`: to the last key) with their values, in key
    /// order. The entries are read as the iterator advances, from the memtable as it was and
    /// the tables as they were when it was made.
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
        let state = self.lock();
        let memtables =
            std::iter::once(&state.memtable).chain(state.frozen.iter().map(Arc::as_ref));
        range_of(memtables, &state.tables, &start, end.as_deref(), backwards)
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

/// A point-in-time view of a store ([`Db::snapshot`]). It keeps the memtables and tables it
/// reads alive (a compaction's deleted table files stay readable until it is dropped).
pub struct Snapshot {
    /// Newest first.
    memtables: Vec<Arc<MemTable>>,
    tables: Vec<Arc<Table>>,
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
        let key = family_key(family, key);
        point_lookup(
            &key,
            self.memtables.iter().map(Arc::as_ref),
            &self.tables,
            &self.cache,
        )
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
        let memtables = self.memtables.iter().map(Arc::as_ref);
        range_of(memtables, &self.tables, &start, end.as_deref(), false)
    }

    /// The keys starting with `prefix` and their values as of the snapshot, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Result<KeyValues> {
        self.range(prefix, prefix_end(prefix).as_deref())
    }
}

/// The value of `key` in `memtables` (newest first), else in `tables` (newest first).
fn point_lookup<'a>(
    key: &[u8],
    memtables: impl Iterator<Item = &'a MemTable>,
    tables: &[Arc<Table>],
    cache: &BlockCache,
) -> Result<Option<Vec<u8>>> {
    for memtable in memtables {
        if let Some(value) = memtable.get(key) {
            return Ok(value.map(<[u8]>::to_vec));
        }
    }
    for table in tables {
        if let Some(value) = table.get(key, cache)? {
            return Ok(value);
        }
    }
    Ok(None)
}

/// The live entries of `[start, end)` over `memtables` and `tables` (both newest first): the
/// memtables' entries copied now, the tables' read as the iterator advances.
fn range_of<'a>(
    memtables: impl Iterator<Item = &'a MemTable>,
    tables: &[Arc<Table>],
    start: &[u8],
    end: Option<&[u8]>,
    backwards: bool,
) -> Result<KeyValues> {
    let mut streams: Vec<Entries> = memtables
        .map(|memtable| memtable_stream(memtable.range(start, end), backwards))
        .collect();
    for table in tables {
        let table = Arc::clone(table);
        streams.push(if backwards {
            Box::new(TableEntriesBackwards::before_key(table, end))
        } else {
            Box::new(TableEntries::from_key(table, start))
        });
    }
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
            assert!(db.table_count() > 1, "small memtables flush");
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
            files,
            "only tables"
        );
        assert_eq!(restored.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(restored.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"changed"[..]));
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
        // Enough flushes to compact every table the snapshot reads into a new one.
        for round in 0..3 * MAX_TABLES as u32 {
            db.put(
                format!("filler{round:04}").as_bytes(),
                &[0u8; 3000],
                Durability::Buffered,
            )
            .unwrap();
        }
        assert!(
            snapshot.tables.iter().any(|table| !table.path().exists()),
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
