//! A directory of Parquet, CSV or JSON-lines files as a stream source: files are read in name
//! order (names starting with `_` or `.` are skipped, as are other extensions), batch by
//! batch; when watching, files that appear later are read too. Its offset is (files finished,
//! rows read of the next file), so a restart skips exactly the rows already processed.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use arrow::csv;
use arrow::datatypes::SchemaRef;
use arrow::json;
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::source::{SourcePoll, StreamSource};
use crate::error::{ExecError, Result};

const BATCH_ROWS: usize = 8192;

/// The format of a [`FileSource`]'s files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Parquet,
    /// Comma-separated, with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl SourceFormat {
    fn extension(self) -> &'static str {
        match self {
            SourceFormat::Parquet => "parquet",
            SourceFormat::Csv => "csv",
            SourceFormat::JsonLines => "jsonl",
        }
    }
}

/// Rows of the files in a directory.
pub struct FileSource {
    dir: PathBuf,
    format: SourceFormat,
    schema: SchemaRef,
    watch: bool,
    files: Vec<PathBuf>,
    finished_files: usize,
    reader: Option<Box<dyn RecordBatchReader + Send>>,
    rows_into_file: u64,
    rows_to_skip: u64,
}

impl FileSource {
    /// The files of `format` in `dir`; the schema is the first file's (inferred from up to
    /// 1,000 rows for CSV and JSON). An error names the directory when it has no such file.
    pub fn try_new(dir: impl Into<PathBuf>, format: SourceFormat) -> Result<FileSource> {
        let dir = dir.into();
        let files = list(&dir, format)?;
        let Some(first) = files.first() else {
            return Err(source_error(
                &dir,
                format!(
                    "has no .{} file to take the schema from",
                    format.extension()
                ),
            ));
        };
        let schema = open(first, format, None)?.schema();
        Ok(FileSource {
            dir,
            format,
            schema,
            watch: false,
            files,
            finished_files: 0,
            reader: None,
            rows_into_file: 0,
            rows_to_skip: 0,
        })
    }

    /// Keeps polling the directory for new files instead of finishing after the last one.
    pub fn watching(mut self) -> FileSource {
        self.watch = true;
        self
    }
}

impl StreamSource for FileSource {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        loop {
            if self.reader.is_none() {
                if self.finished_files == self.files.len() {
                    if !self.watch {
                        return Ok(SourcePoll::Finished);
                    }
                    let listed = list(&self.dir, self.format)?;
                    let known = self.files.last().cloned();
                    self.files.extend(
                        listed
                            .into_iter()
                            .filter(|file| Some(file) > known.as_ref()),
                    );
                    if self.finished_files == self.files.len() {
                        return Ok(SourcePoll::Pending);
                    }
                }
                let path = &self.files[self.finished_files];
                self.reader = Some(open(path, self.format, Some(self.schema.clone()))?);
                self.rows_into_file = 0;
            }
            let next = self.reader.as_mut().and_then(|reader| reader.next());
            match next {
                None => {
                    self.reader = None;
                    self.finished_files += 1;
                    self.rows_into_file = 0;
                }
                Some(Err(error)) => {
                    return Err(source_error(&self.files[self.finished_files], error));
                }
                Some(Ok(batch)) => {
                    let rows = batch.num_rows() as u64;
                    let skip = self.rows_to_skip.min(rows);
                    self.rows_to_skip -= skip;
                    self.rows_into_file += rows;
                    if skip < rows {
                        let batch = batch.slice(skip as usize, (rows - skip) as usize);
                        return Ok(SourcePoll::Batch {
                            partition: 0,
                            batch,
                        });
                    }
                }
            }
        }
    }

    /// (files finished, rows read of the next file).
    fn offsets(&self) -> Vec<u64> {
        vec![
            self.finished_files as u64,
            self.rows_into_file + self.rows_to_skip,
        ]
    }

    fn seek(&mut self, offsets: &[u64]) -> Result<()> {
        let [files, rows] = offsets else {
            return Err(source_error(
                &self.dir,
                format!("expected 2 offsets, got {}", offsets.len()),
            ));
        };
        let files = *files as usize;
        while self.files.len() < files {
            let listed = list(&self.dir, self.format)?;
            if listed.len() < files {
                return Err(source_error(
                    &self.dir,
                    format!(
                        "the checkpoint had read {files} files, only {} are left",
                        listed.len()
                    ),
                ));
            }
            self.files = listed;
        }
        self.finished_files = files;
        self.reader = None;
        self.rows_into_file = 0;
        self.rows_to_skip = *rows;
        Ok(())
    }
}

fn list(dir: &Path, format: SourceFormat) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|error| source_error(dir, error))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| source_error(dir, error))?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        if path.is_file()
            && !name.starts_with(['_', '.'])
            && path
                .extension()
                .is_some_and(|extension| extension == format.extension())
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn open(
    path: &Path,
    format: SourceFormat,
    schema: Option<SchemaRef>,
) -> Result<Box<dyn RecordBatchReader + Send>> {
    let fail = |error: &dyn std::fmt::Display| source_error(path, error);
    let mut file = File::open(path).map_err(|error| fail(&error))?;
    let reader: Box<dyn RecordBatchReader + Send> = match format {
        SourceFormat::Parquet => Box::new(
            ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|builder| builder.with_batch_size(BATCH_ROWS).build())
                .map_err(|error| fail(&error))?,
        ),
        SourceFormat::Csv => {
            let schema = match schema {
                Some(schema) => schema,
                None => {
                    let format = csv::reader::Format::default().with_header(true);
                    let (schema, _) = format
                        .infer_schema(&mut file, Some(1000))
                        .map_err(|error| fail(&error))?;
                    file.rewind().map_err(|error| fail(&error))?;
                    std::sync::Arc::new(schema)
                }
            };
            Box::new(
                csv::ReaderBuilder::new(schema)
                    .with_header(true)
                    .with_batch_size(BATCH_ROWS)
                    .build(file)
                    .map_err(|error| fail(&error))?,
            )
        }
        SourceFormat::JsonLines => {
            let mut buffered = BufReader::new(file);
            let schema = match schema {
                Some(schema) => schema,
                None => {
                    let (schema, _) =
                        json::reader::infer_json_schema_from_seekable(&mut buffered, Some(1000))
                            .map_err(|error| fail(&error))?;
                    std::sync::Arc::new(schema)
                }
            };
            Box::new(
                json::ReaderBuilder::new(schema)
                    .with_batch_size(BATCH_ROWS)
                    .build(buffered)
                    .map_err(|error| fail(&error))?,
            )
        }
    };
    Ok(reader)
}

fn source_error(path: &Path, error: impl std::fmt::Display) -> ExecError {
    ExecError::Source {
        source_name: path.display().to_string(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    use super::*;

    fn drain(source: &mut FileSource) -> Vec<i64> {
        let mut values = Vec::new();
        while let SourcePoll::Batch { batch, .. } = source.poll().unwrap() {
            values.extend(batch.column(0).as_primitive::<Int64Type>().values());
        }
        values
    }

    #[test]
    fn files_are_read_in_name_order_resumed_at_an_offset_and_watched_for() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.csv"), "x,y\n3,c\n4,d\n").unwrap();
        std::fs::write(dir.path().join("a.csv"), "x,y\n1,a\n2,b\n").unwrap();
        std::fs::write(dir.path().join("_partial.csv"), "x,y\n99,z\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a csv").unwrap();
        let mut source = FileSource::try_new(dir.path(), SourceFormat::Csv).unwrap();
        assert_eq!(drain(&mut source), vec![1, 2, 3, 4]);
        assert!(matches!(source.poll().unwrap(), SourcePoll::Finished));

        let mut resumed = FileSource::try_new(dir.path(), SourceFormat::Csv)
            .unwrap()
            .watching();
        resumed.seek(&[0, 1]).unwrap();
        assert_eq!(drain(&mut resumed), vec![2, 3, 4]);
        assert_eq!(resumed.offsets(), vec![2, 0]);
        std::fs::write(dir.path().join("c.csv"), "x,y\n5,e\n").unwrap();
        assert_eq!(drain(&mut resumed), vec![5]);
        assert!(matches!(resumed.poll().unwrap(), SourcePoll::Pending));
    }

    #[test]
    fn a_directory_without_files_or_with_a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = FileSource::try_new(dir.path(), SourceFormat::Parquet)
            .err()
            .unwrap();
        assert!(error.to_string().contains(".parquet"), "{error}");
        std::fs::write(dir.path().join("a.jsonl"), "{\"x\": 1}\n{\"x\": 2}\n").unwrap();
        let mut source = FileSource::try_new(dir.path(), SourceFormat::JsonLines).unwrap();
        assert_eq!(drain(&mut source), vec![1, 2]);
        std::fs::write(dir.path().join("b.parquet"), "not parquet").unwrap();
        let error = FileSource::try_new(dir.path(), SourceFormat::Parquet)
            .err()
            .unwrap();
        assert!(error.to_string().contains("b.parquet"), "{error}");
    }
}
