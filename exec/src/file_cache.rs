//! Process-wide caches of what planning and scans read from Parquet files: each file's footer,
//! per file column the statistics `column_stats` derives from it, and each file's read-only
//! memory mapping. An entry is keyed by the file's [`FileStamp`] (path, length and modification
//! time), so a rewritten file is read afresh, and planning a query again reads no file at all.
//!
//! Scans read column chunks straight from the mapping: no `read` call copies them out of the
//! page cache, and a file's pages are mapped once per process, not once per query.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::PageIndexPolicy;
use sabot_storage::ReadMapping;

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

/// The value cached in `cache` for the file version `stamp`, loaded by `load` on first use; the
/// cache keeps only the newest version of each path (an older one is not read again).
fn for_version<T: Clone>(
    cache: &Mutex<HashMap<FileStamp, T>>,
    stamp: &FileStamp,
    load: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(stamp)
    {
        return Ok(found.clone());
    }
    let value = load()?;
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    cache.retain(|cached, _| cached.path != stamp.path);
    cache.insert(stamp.clone(), value.clone());
    Ok(value)
}

/// The error of a Parquet file at `path` that could not be read.
fn unreadable(path: &Path, error: &dyn std::fmt::Display) -> ExecError {
    ExecError::Parquet {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn mappings() -> &'static Mutex<HashMap<FileStamp, Bytes>> {
    static MAPPINGS: OnceLock<Mutex<HashMap<FileStamp, Bytes>>> = OnceLock::new();
    MAPPINGS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The bytes of the file version `stamp`, mapped read-only once per version (a scan still
/// reading an older version keeps its mapping alive). An error when the file is no longer that
/// version.
pub(crate) fn mapped(stamp: &FileStamp) -> Result<Bytes> {
    let path = &stamp.path;
    for_version(mappings(), stamp, || {
        let file = File::open(path).map_err(|error| unreadable(path, &error))?;
        let mapping = ReadMapping::map(&file).map_err(|error| unreadable(path, &error))?;
        if FileStamp::of(path).ok().as_ref() != Some(stamp)
            || mapping.bytes().len() as u64 != stamp.len
        {
            return Err(unreadable(
                path,
                &"the file changed since its footer was read",
            ));
        }
        Ok(Bytes::from_owner(mapping))
    })
}

fn footers() -> &'static Mutex<HashMap<FileStamp, ArrowReaderMetadata>> {
    static FOOTERS: OnceLock<Mutex<HashMap<FileStamp, ArrowReaderMetadata>>> = OnceLock::new();
    FOOTERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The footer of the Parquet file at `path`, read once per file version, with the stamp of the
/// version it was read from.
pub(crate) fn footer(path: &Path) -> Result<(ArrowReaderMetadata, FileStamp)> {
    let stamp = FileStamp::of(path).map_err(|error| unreadable(path, &error))?;
    let metadata = for_version(footers(), &stamp, || {
        let file = File::open(path).map_err(|error| unreadable(path, &error))?;
        // The offset index locates each page, so a scan of part of a row group reads only its
        // pages; the column index (each page's min and max) says which pages may hold a join's
        // keys (`page_pruning`).
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        ArrowReaderMetadata::load(&file, options).map_err(|error| unreadable(path, &error))
    })?;
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

    #[test]
    fn a_mapping_holds_its_version_s_bytes_and_a_changed_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_rows(&path, 10);
        let stamp = FileStamp::of(&path).unwrap();
        let mapped_bytes = mapped(&stamp).unwrap();
        assert_eq!(&mapped_bytes[..], &std::fs::read(&path).unwrap()[..]);
        assert_eq!(mapped(&stamp).unwrap().as_ptr(), mapped_bytes.as_ptr());
        // Replaced by a rename: the old mapping still reads the old bytes.
        let replacement = dir.path().join("new.parquet");
        write_rows(&replacement, 1000);
        std::fs::rename(&replacement, &path).unwrap();
        let newer = FileStamp::of(&path).unwrap();
        assert_eq!(
            &mapped(&newer).unwrap()[..],
            &std::fs::read(&path).unwrap()[..]
        );
        assert_eq!(mapped_bytes.len() as u64, stamp.len);
        assert_ne!(stamp.len, newer.len);
        // A version that was never mapped and is gone by the time a scan maps it.
        write_rows(&path, 20);
        let gone = FileStamp::of(&path).unwrap();
        write_rows(&path, 30);
        let error = mapped(&gone).unwrap_err().to_string();
        assert!(error.contains("changed"), "{error}");
    }
}
