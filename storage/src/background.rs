//! The store's state shared with its two background threads, and their work: the flusher
//! writes frozen memtables (oldest first) into level-0 tables, the compactor merges tables as
//! [`crate::compaction`] picks them. Each result is installed as a new [`Version`] under the
//! state lock, recorded in the manifest, and only then are the files it replaced deleted (a
//! flushed memtable's log, a compaction's inputs). A failure stops background work and makes
//! later writes fail with it; everything acknowledged stays in the logs and tables.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::block_cache::BlockCache;
use crate::compaction::{self, Compaction, CompactionStyle, MergeTarget};
use crate::db::Options;
use crate::error::{Result, StorageError};
use crate::manifest;
use crate::memtable::MemTable;
use crate::sstable::{Table, write_table};
use crate::version::{LEVELS, Version};
use crate::wal::WalWriter;

/// A memtable no longer written to, waiting for its flush.
#[derive(Clone)]
pub(crate) struct Frozen {
    pub(crate) memtable: Arc<MemTable>,
    /// The newest write it holds.
    pub(crate) max_sequence: u64,
    /// The log to delete once it is flushed (`None` when the log also holds later writes).
    pub(crate) log: Option<PathBuf>,
}

/// Counters of background work and of writes held back for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) flushes: u64,
    pub(crate) compactions: u64,
    pub(crate) table_moves: u64,
    pub(crate) compaction_bytes_written: u64,
    pub(crate) write_stalls: u64,
    pub(crate) write_stall_time: Duration,
}

pub(crate) struct State {
    pub(crate) wal: WalWriter,
    pub(crate) memtable: MemTable,
    /// Newest first.
    pub(crate) frozen: Arc<Vec<Frozen>>,
    pub(crate) version: Arc<Version>,
    pub(crate) next_file: u64,
    pub(crate) last_sequence: u64,
    /// Set when a log append failed: the log's end is unknown, so no write may follow it until
    /// the store is reopened (which discards the torn record).
    pub(crate) failed: Option<String>,
    /// Set when a flush or compaction failed.
    pub(crate) background_failure: Option<(&'static str, String)>,
    pub(crate) log_syncs: u64,
    pub(crate) counters: Counters,
    /// Per level, the last key a compaction passed down from it.
    pub(crate) cursors: Vec<Vec<u8>>,
    pub(crate) closing: bool,
}

impl State {
    pub(crate) fn background_error(&self) -> Option<StorageError> {
        self.background_failure
            .as_ref()
            .map(|(task, reason)| StorageError::Background {
                task,
                reason: reason.clone(),
            })
    }

    /// A new table file's temporary and final paths in `dir`.
    fn new_table_paths(&mut self, dir: &std::path::Path) -> (PathBuf, PathBuf) {
        let number = self.next_file;
        self.next_file += 1;
        (
            dir.join(format!("{number}.sst.tmp")),
            dir.join(format!("{number}.sst")),
        )
    }
}

/// What the store's handle and its background threads share.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) state: Mutex<State>,
    /// Signalled whenever the state changes in a way someone may wait for: a memtable frozen,
    /// a flush or compaction installed, a failure, closing.
    pub(crate) changed: Condvar,
    /// Held by whoever runs a compaction (the compactor or a caller of `compact_range`), and
    /// while a checkpoint links tables (so none is deleted under it).
    pub(crate) compacting: Mutex<()>,
    pub(crate) closing: AtomicBool,
    pub(crate) cache: Arc<BlockCache>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `frozen` into a new table (not yet installed).
    pub(crate) fn write_frozen(&self, frozen: &Frozen) -> Result<Arc<Table>> {
        let (temporary, path) = self.lock().new_table_paths(&self.dir);
        write_table(
            &temporary,
            frozen.memtable.entries().map(Ok),
            frozen.max_sequence,
            self.options.compression,
        )?;
        std::fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
        Ok(Arc::new(Table::open(&path, self.options.io_uring)?))
    }

    /// Puts a flushed memtable's table in front of level 0, records it, and deletes the
    /// memtable's log.
    fn install_flush(&self, flushed: Arc<Table>, sequence: u64) -> Result<()> {
        let mut state = self.lock();
        let mut version = state.version.replaced(&[], 0, vec![flushed]);
        version.flushed_sequence = sequence;
        manifest::write(&self.dir, &manifest_of(&version)?)?;
        state.version = Arc::new(version);
        let mut frozen = state.frozen.as_ref().clone();
        let done = frozen.pop();
        state.frozen = Arc::new(frozen);
        state.counters.flushes += 1;
        self.changed.notify_all();
        drop(state);
        if let Some(log) = done.and_then(|done| done.log) {
            std::fs::remove_file(&log).map_err(StorageError::io(&log))?;
        }
        Ok(())
    }

    /// Runs `compaction` and installs its result. The caller holds `compacting`.
    pub(crate) fn compact(&self, compaction: &Compaction) -> Result<()> {
        let outputs = if compaction.is_move {
            compaction.inputs.clone()
        } else {
            let mut new_table = || Ok(self.lock().new_table_paths(&self.dir));
            compaction::merge(
                compaction,
                MergeTarget {
                    new_table: &mut new_table,
                    compression: self.options.compression,
                    table_bytes: match self.options.compaction {
                        CompactionStyle::Leveled => self.options.table_bytes,
                        CompactionStyle::SizeTiered => u64::MAX,
                    },
                    cancel: &self.closing,
                    io_uring: self.options.io_uring,
                },
            )?
        };
        let mut state = self.lock();
        let version =
            state
                .version
                .replaced(&compaction.inputs, compaction.output_level, outputs.clone());
        manifest::write(&self.dir, &manifest_of(&version)?)?;
        state.version = Arc::new(version);
        if compaction.is_move {
            state.counters.table_moves += 1;
        } else {
            state.counters.compactions += 1;
            state.counters.compaction_bytes_written +=
                outputs.iter().map(|table| table.file_bytes()).sum::<u64>();
        }
        self.changed.notify_all();
        drop(state);
        if !compaction.is_move {
            for table in &compaction.inputs {
                std::fs::remove_file(table.path()).map_err(StorageError::io(table.path()))?;
            }
            crate::db::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Whether the current version calls for a compaction.
    pub(crate) fn needs_compaction(&self, state: &State) -> bool {
        let mut cursors = state.cursors.clone();
        compaction::pick(
            &state.version,
            self.options.compaction,
            self.options.level_one_bytes,
            &mut cursors,
        )
        .is_some()
    }

    fn fail(&self, task: &'static str, error: StorageError) {
        let mut state = self.lock();
        state
            .background_failure
            .get_or_insert((task, error.to_string()));
        self.changed.notify_all();
    }
}

/// The manifest of `version`.
pub(crate) fn manifest_of(version: &Version) -> Result<manifest::Manifest> {
    let mut records = Vec::with_capacity(version.table_count());
    for (level, tables) in version.levels.iter().enumerate() {
        for table in tables {
            let number = table_number(table.path()).ok_or_else(|| {
                StorageError::malformed(
                    "table name",
                    format!("{} is not numbered", table.path().display()),
                )
            })?;
            records.push((level as u8, number));
        }
    }
    debug_assert!(records.iter().all(|(level, _)| (*level as usize) < LEVELS));
    Ok(manifest::Manifest {
        flushed_sequence: version.flushed_sequence,
        tables: records,
    })
}

/// The number in a table file's name (`<number>.sst`).
pub(crate) fn table_number(path: &std::path::Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".sst")?
        .parse()
        .ok()
}

/// The flusher's loop: flush the oldest frozen memtable, until the store closes.
pub(crate) fn flusher(shared: Arc<Shared>) {
    loop {
        let oldest = {
            let mut state = shared.lock();
            loop {
                if state.closing {
                    return;
                }
                if state.background_failure.is_none()
                    && let Some(oldest) = state.frozen.last()
                {
                    break oldest.clone();
                }
                state = shared.wait(state);
            }
        };
        if let Err(error) = shared
            .write_frozen(&oldest)
            .and_then(|table| shared.install_flush(table, oldest.max_sequence))
        {
            shared.fail("flush", error);
        }
    }
}

/// The compactor's loop: run the compaction the store needs, until the store closes.
pub(crate) fn compactor(shared: Arc<Shared>) {
    loop {
        {
            let mut state = shared.lock();
            loop {
                if state.closing {
                    return;
                }
                if state.background_failure.is_none() && shared.needs_compaction(&state) {
                    break;
                }
                state = shared.wait(state);
            }
        }
        let _compacting = shared
            .compacting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let picked = {
            let mut state = shared.lock();
            let state = &mut *state;
            compaction::pick(
                &state.version,
                shared.options.compaction,
                shared.options.level_one_bytes,
                &mut state.cursors,
            )
        };
        let Some(picked) = picked else {
            continue;
        };
        match shared.compact(&picked) {
            Ok(()) => {}
            Err(StorageError::Closed) => return,
            Err(error) => shared.fail("compaction", error),
        }
    }
}

/// Tells the background threads to stop (a running compaction stops at its next check).
pub(crate) fn close(shared: &Shared) {
    shared.closing.store(true, Ordering::Relaxed);
    shared.lock().closing = true;
    shared.changed.notify_all();
}
