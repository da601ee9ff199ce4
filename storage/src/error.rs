//! Errors of the key-value store, each naming the file (and offset) it concerns.

use std::path::PathBuf;

/// Result alias of the `sabot-storage` crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What the store can report.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O failure (a full disk, a missing permission).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk that do not decode: never returned as data.
    #[error("corrupt {what} in {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A decoder found bytes that are not a valid record (before the file is known).
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A key or value larger than the store accepts.
    #[error("{what} of {len} bytes is larger than the {limit} bytes allowed")]
    TooLarge {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    /// The store is closing: background work stops where it is.
    #[error("the store is closing")]
    Closed,
    /// A background flush or compaction failed; the store takes no more writes until it is
    /// reopened (acknowledged writes are still in its log).
    #[error("background {task} failed: {reason}; reopen the store to recover")]
    Background { task: &'static str, reason: String },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }

    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> StorageError {
        StorageError::Malformed {
            what,
            reason: reason.into(),
        }
    }

    /// This error placed in `path` at `offset` (a decoder's `Malformed` becomes `Corrupt`).
    pub(crate) fn at(self, path: &std::path::Path, offset: u64) -> StorageError {
        match self {
            StorageError::Malformed { what, reason } => StorageError::Corrupt {
                what,
                path: path.to_path_buf(),
                offset,
                reason,
            },
            other => other,
        }
    }
}
