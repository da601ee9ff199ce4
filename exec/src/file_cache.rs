//! Process-wide caches of what planning reads from Parquet files: each file's footer, and per
//! file column the statistics `column_stats` derives from it. An entry is keyed by the file's
//! [`FileStamp`] (path, length and modification time), so a rewritten file is read afresh,
//! and planning a query again reads no file at all.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::PageIndexPolicy;

use crate::error::{ExecError, Result};

/// Which version of a file an entry was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    /// The stamp of the file at `path` as it is now.
    pub(crate) fn of(path: &Path) -> std::io::Result<FileStamp> {
        let metadata = std::fs::metadata(path)?;
        Ok(FileStamp {
            path: path.to_path_buf(),
            len: metadata.len(),
            modified: metadata.modified().ok(),
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Values of type `T` cached by a file version and a column of it.
pub(crate) type ColumnCache<T> = Mutex<HashMap<(FileStamp, usize), T>>;

/// The value cached in `cache` for column `column` of the file version `stamp`, computed by
/// `compute` on first use.
pub(crate) fn cached<T: Clone>(
    cache: &ColumnCache<T>,
    stamp: &FileStamp,
    column: usize,
    compute: impl FnOnce() -> T,
) -> T {
    let key = (stamp.clone(), column);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return found.clone();
    }
    let value = compute();
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, value.clone());
    value
}

fn footers() -> &'static Mutex<HashMap<FileStamp, ArrowReaderMetadata>> {
    static FOOTERS: OnceLock<Mutex<HashMap<FileStamp, ArrowReaderMetadata>>> = OnceLock::new();
    FOOTERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The footer of the Parquet file at `path`, read once per file version (the cache keeps the
/// newest version of each path), with the stamp of the version it was read from.
pub(crate) fn footer(path: &Path) -> Result<(ArrowReaderMetadata, FileStamp)> {
    let unreadable = |error: &dyn std::fmt::Display| ExecError::Parquet {
        path: path.to_path_buf(),
        message: error.to_string(),
    };
    let stamp = FileStamp::of(path).map_err(|error| unreadable(&error))?;
    if let Some(found) = footers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&stamp)
    {
        return Ok((found.clone(), stamp));
    }
    let file = File::open(path).map_err(|error| unreadable(&error))?;
    // The offset index locates each page, so a scan of part of a row group reads only its pages.
    let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
    let metadata = ArrowReaderMetadata::load(&file, options).map_err(|error| unreadable(&error))?;
    let mut footers = footers().lock().unwrap_or_else(PoisonError::into_inner);
    // An older version of the file is not read again.
    footers.retain(|cached, _| cached.path != stamp.path);
    footers.insert(stamp.clone(), metadata.clone());
    Ok((metadata, stamp))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn write_rows(path: &Path, rows: i64) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_rewritten_file_is_read_afresh_and_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_rows(&path, 10);
        let rows = |path: &Path| {
            footer(path)
                .map(|(metadata, _)| metadata.metadata().file_metadata().num_rows())
                .map_err(|error| error.to_string())
        };
        assert_eq!(rows(&path), Ok(10));
        assert_eq!(rows(&path), Ok(10));
        // A longer file is another version.
        write_rows(&path, 1000);
        assert_eq!(rows(&path), Ok(1000));
        std::fs::write(&path, b"not parquet").unwrap();
        assert!(rows(&path).is_err());
        assert!(rows(&dir.path().join("missing.parquet")).is_err());
    }
}
