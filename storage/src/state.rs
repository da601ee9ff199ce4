//! State backends: where streaming operators keep keyed state between events and across
//! checkpoints. A backend holds value, list and map state, each under a state name (one per
//! operator's kind of state) and a key (the operator's grouping key, a window, …); `clear`
//! removes all of a key's state (a closed window). `snapshot(checkpoint)` makes the state as of
//! now restorable; `restore(checkpoint)` brings it back, dropping what came after.
//!
//! (A third backend, in Redis, is in the `redis` module.)
//!
//! Both backends store entries under one composite key, `[kind][state name][key][suffix]`
//! with length-prefixed parts, so a key's state of one kind is a contiguous range: the memory
//! backend in a sorted map (snapshots are copies), the LSM backend in a [`Db`] (snapshots are
//! [`Db::checkpoint`]s, restores open a copy of one).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use crate::db::{Db, Durability, Options};
use crate::error::{Result, StorageError};

/// Keyed state for streaming operators.
pub trait StateBackend: Send + Sync {
    /// The value state of `key`.
    fn value(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Sets the value state of `key`.
    fn set_value(&self, state: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Appends `item` to the list state of `key`.
    fn append(&self, state: &str, key: &[u8], item: &[u8]) -> Result<()>;
    /// The list state of `key`, in append order.
    fn list(&self, state: &str, key: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Sets `entry` of the map state of `key`.
    fn map_put(&self, state: &str, key: &[u8], entry: &[u8], value: &[u8]) -> Result<()>;
    /// The map state of `key`, by entry.
    fn map_entries(&self, state: &str, key: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Removes the value, list and map state of `key` under `state`.
    fn clear(&self, state: &str, key: &[u8]) -> Result<()>;
    /// Makes the current state restorable as `checkpoint`.
    fn snapshot(&self, checkpoint: u64) -> Result<()>;
    /// Returns to the state snapshotted as `checkpoint`.
    fn restore(&self, checkpoint: u64) -> Result<()>;
}

pub(crate) const VALUE: u8 = b'v';
pub(crate) const LIST: u8 = b'l';
pub(crate) const MAP: u8 = b'm';

/// The composite key prefix of `key`'s state of `kind` under `state`.
pub(crate) fn prefix(kind: u8, state: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + state.len() + key.len());
    out.push(kind);
    out.extend_from_slice(&(state.len() as u32).to_be_bytes());
    out.extend_from_slice(state.as_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// A sorted key-value map a backend keeps its entries in.
trait Entries: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&self, key: Vec<u8>, value: &[u8]) -> Result<()>;
    fn delete(&self, key: &[u8]) -> Result<()>;
    /// The entries whose key starts with `prefix`, in key order.
    fn with_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// List items are ordered by a counter that starts, in each process, past any earlier one's.
fn list_counter() -> AtomicU64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    AtomicU64::new(nanos)
}

fn value<E: Entries + ?Sized>(entries: &E, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
    entries.get(&prefix(VALUE, state, key))
}

fn append<E: Entries + ?Sized>(
    entries: &E,
    counter: &AtomicU64,
    state: &str,
    key: &[u8],
    item: &[u8],
) -> Result<()> {
    let mut entry_key = prefix(LIST, state, key);
    entry_key.extend_from_slice(&counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    entries.put(entry_key, item)
}

fn map_entries<E: Entries + ?Sized>(
    entries: &E,
    state: &str,
    key: &[u8],
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let start = prefix(MAP, state, key);
    Ok(entries
        .with_prefix(&start)?
        .into_iter()
        .map(|(entry_key, value)| (entry_key[start.len()..].to_vec(), value))
        .collect())
}

fn clear<E: Entries + ?Sized>(entries: &E, state: &str, key: &[u8]) -> Result<()> {
    entries.delete(&prefix(VALUE, state, key))?;
    for kind in [LIST, MAP] {
        for (entry_key, _) in entries.with_prefix(&prefix(kind, state, key))? {
            entries.delete(&entry_key)?;
        }
    }
    Ok(())
}

/// Composite keys and values, sorted.
type SortedEntries = BTreeMap<Vec<u8>, Vec<u8>>;

/// State in memory: fast, lost with the process; snapshots are copies.
pub struct MemoryState {
    entries: RwLock<SortedEntries>,
    snapshots: Mutex<HashMap<u64, SortedEntries>>,
    counter: AtomicU64,
}

impl Default for MemoryState {
    fn default() -> Self {
        MemoryState {
            entries: RwLock::new(BTreeMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            counter: list_counter(),
        }
    }
}

impl Entries for RwLock<SortedEntries> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned())
    }

    fn put(&self, key: Vec<u8>, value: &[u8]) -> Result<()> {
        self.write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }

    fn with_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

/// State in Sabot's LSM store under a directory: `live-<n>/` holds the current state,
/// `checkpoints/<id>/` each snapshot.
pub struct LsmState {
    root: PathBuf,
    db: RwLock<Db>,
    generation: AtomicU64,
    counter: AtomicU64,
}

impl LsmState {
    /// Opens (or creates) the state under `root`, continuing from its newest live store.
    pub fn open(root: impl AsRef<Path>) -> Result<LsmState> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root).map_err(StorageError::io(&root))?;
        let mut generation = 0;
        for entry in std::fs::read_dir(&root).map_err(StorageError::io(&root))? {
            let name = entry.map_err(StorageError::io(&root))?.file_name();
            if let Some(number) = name
                .to_str()
                .and_then(|name| name.strip_prefix("live-"))
                .and_then(|number| number.parse::<u64>().ok())
            {
                generation = generation.max(number);
            }
        }
        let db = Db::open(root.join(format!("live-{generation}")), Options::default())?;
        Ok(LsmState {
            root,
            db: RwLock::new(db),
            generation: AtomicU64::new(generation),
            counter: list_counter(),
        })
    }

    fn checkpoint_dir(&self, checkpoint: u64) -> PathBuf {
        self.root.join("checkpoints").join(checkpoint.to_string())
    }

    /// The ids of the snapshots kept, ascending.
    pub fn checkpoints(&self) -> Result<Vec<u64>> {
        let dir = self.root.join("checkpoints");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(StorageError::io(&dir))? {
            let name = entry.map_err(StorageError::io(&dir))?.file_name();
            if let Some(id) = name.to_str().and_then(|name| name.parse::<u64>().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Deletes snapshot `checkpoint` (nothing when there is none).
    pub fn remove_checkpoint(&self, checkpoint: u64) -> Result<()> {
        let dir = self.checkpoint_dir(checkpoint);
        match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(StorageError::io(&dir)(error))
            }
            _ => Ok(()),
        }
    }
}

impl Entries for RwLock<Db> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read().unwrap_or_else(PoisonError::into_inner).get(key)
    }

    fn put(&self, key: Vec<u8>, value: &[u8]) -> Result<()> {
        self.read()
            .unwrap_or_else(PoisonError::into_inner)
            .put(&key, value, Durability::Buffered)
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        self.read()
            .unwrap_or_else(PoisonError::into_inner)
            .delete(key, Durability::Buffered)
    }

    fn with_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.read()
            .unwrap_or_else(PoisonError::into_inner)
            .prefix(prefix)?
            .collect()
    }
}

macro_rules! keyed_state {
    ($backend:ty, $entries:ident) => {
        fn value(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
            value(&self.$entries, state, key)
        }

        fn set_value(&self, state: &str, key: &[u8], value: &[u8]) -> Result<()> {
            self.$entries.put(prefix(VALUE, state, key), value)
        }

        fn append(&self, state: &str, key: &[u8], item: &[u8]) -> Result<()> {
            append(&self.$entries, &self.counter, state, key, item)
        }

        fn list(&self, state: &str, key: &[u8]) -> Result<Vec<Vec<u8>>> {
            Ok(self
                .$entries
                .with_prefix(&prefix(LIST, state, key))?
                .into_iter()
                .map(|(_, item)| item)
                .collect())
        }

        fn map_put(&self, state: &str, key: &[u8], entry: &[u8], value: &[u8]) -> Result<()> {
            let mut entry_key = prefix(MAP, state, key);
            entry_key.extend_from_slice(entry);
            self.$entries.put(entry_key, value)
        }

        fn map_entries(&self, state: &str, key: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            map_entries(&self.$entries, state, key)
        }

        fn clear(&self, state: &str, key: &[u8]) -> Result<()> {
            clear(&self.$entries, state, key)
        }
    };
}

impl StateBackend for MemoryState {
    keyed_state!(MemoryState, entries);

    fn snapshot(&self, checkpoint: u64) -> Result<()> {
        let copy = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(checkpoint, copy);
        Ok(())
    }

    fn restore(&self, checkpoint: u64) -> Result<()> {
        let snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let copy = snapshots
            .get(&checkpoint)
            .ok_or_else(|| unknown_checkpoint(checkpoint))?;
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = copy.clone();
        Ok(())
    }
}

impl StateBackend for LsmState {
    keyed_state!(LsmState, db);

    fn snapshot(&self, checkpoint: u64) -> Result<()> {
        let dir = self.checkpoint_dir(checkpoint);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(StorageError::io(parent))?;
        }
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .checkpoint(&dir)
    }

    fn restore(&self, checkpoint: u64) -> Result<()> {
        let saved = self.checkpoint_dir(checkpoint);
        if !saved.is_dir() {
            return Err(unknown_checkpoint(checkpoint));
        }
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // A new live store made of links to the checkpoint's tables, so that the checkpoint
        // stays as it is and can be restored again.
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let live = self.root.join(format!("live-{generation}"));
        let restored = Db::open_from_checkpoint(&saved, &live, Options::default())?;
        let previous = std::mem::replace(&mut *db, restored);
        drop(previous);
        let old = self.root.join(format!("live-{}", generation - 1));
        let _ = std::fs::remove_dir_all(old);
        Ok(())
    }
}

pub(crate) fn unknown_checkpoint(checkpoint: u64) -> StorageError {
    StorageError::Io {
        path: PathBuf::from(format!("checkpoint {checkpoint}")),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no snapshot was taken at this checkpoint",
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn exercise(backend: &dyn StateBackend) {
        backend.set_value("count", b"k1", b"3").unwrap();
        backend.append("events", b"k1", b"first").unwrap();
        backend.append("events", b"k1", b"second").unwrap();
        backend.append("events", b"k2", b"other").unwrap();
        backend.map_put("seen", b"k1", b"b", b"2").unwrap();
        backend.map_put("seen", b"k1", b"a", b"1").unwrap();
        assert_eq!(
            backend.value("count", b"k1").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(backend.value("count", b"k2").unwrap(), None);
        assert_eq!(
            backend.list("events", b"k1").unwrap(),
            [b"first".to_vec(), b"second".to_vec()]
        );
        assert_eq!(
            backend.map_entries("seen", b"k1").unwrap(),
            [
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        backend.snapshot(7).unwrap();
        backend.clear("events", b"k1").unwrap();
        backend.set_value("count", b"k1", b"4").unwrap();
        assert!(backend.list("events", b"k1").unwrap().is_empty());
        assert_eq!(backend.list("events", b"k2").unwrap(), [b"other".to_vec()]);
        backend.restore(7).unwrap();
        assert_eq!(
            backend.value("count", b"k1").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(backend.list("events", b"k1").unwrap().len(), 2);
        backend.append("events", b"k1", b"third").unwrap();
        backend.restore(7).unwrap();
        assert_eq!(
            backend.list("events", b"k1").unwrap().len(),
            2,
            "restorable again"
        );
        assert!(backend.restore(8).is_err());
    }

    #[test]
    fn memory_state_keeps_values_lists_maps_and_snapshots() {
        exercise(&MemoryState::default());
    }

    #[test]
    fn lsm_state_keeps_values_lists_maps_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LsmState::open(dir.path()).unwrap();
        exercise(&backend);
        backend.set_value("count", b"k9", b"9").unwrap();
        drop(backend);
        let reopened = LsmState::open(dir.path()).unwrap();
        assert_eq!(
            reopened.value("count", b"k9").unwrap().as_deref(),
            Some(&b"9"[..])
        );
        assert_eq!(reopened.list("events", b"k1").unwrap().len(), 2);
    }
}
