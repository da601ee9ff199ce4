//! The exactly-once file sink: rows go to Parquet or JSON-lines files that become visible only
//! when the checkpoint covering them completes. Files are written under `_staging/` (which
//! readers skip, as Spark and Hive do), moved to `_staging/part-<checkpoint>-<n>.<ext>` and
//! synced at the checkpoint's pre-commit, and renamed into the output directory at its commit.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::json::LineDelimitedWriter;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use super::sink::StreamSink;
use crate::error::{ExecError, Result};

const STAGING: &str = "_staging";

/// The format of a [`FileSink`]'s files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    /// One JSON object per row and line.
    JsonLines,
}

impl FileFormat {
    fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::JsonLines => "jsonl",
        }
    }
}

enum Writer {
    Parquet(ArrowWriter<File>),
    Json(LineDelimitedWriter<BufWriter<File>>),
}

struct OpenFile {
    path: PathBuf,
    writer: Writer,
}

/// Writes a stream's rows to files in a directory, exactly once across restarts.
pub struct FileSink {
    dir: PathBuf,
    format: FileFormat,
    open: Option<OpenFile>,
    /// Pre-committed files (names under `_staging/`) not yet committed.
    staged: Vec<String>,
    files_written: u64,
}

impl FileSink {
    /// A sink writing `format` files into `dir` (created if missing).
    pub fn try_new(dir: impl Into<PathBuf>, format: FileFormat) -> Result<FileSink> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join(STAGING)).map_err(io_error(&dir))?;
        Ok(FileSink {
            dir,
            format,
            open: None,
            staged: Vec::new(),
            files_written: 0,
        })
    }

    fn staging(&self) -> PathBuf {
        self.dir.join(STAGING)
    }

    /// Closes the open file (if any) as `part-<checkpoint>-<n>` under `_staging/`, synced.
    fn stage(&mut self, checkpoint: u64) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let file = match open.writer {
            Writer::Parquet(writer) => writer
                .into_inner()
                .map_err(|error| sink_error(&open.path, error))?,
            Writer::Json(mut writer) => {
                writer
                    .finish()
                    .map_err(|error| sink_error(&open.path, error))?;
                writer
                    .into_inner()
                    .into_inner()
                    .map_err(|error| sink_error(&open.path, error.error()))?
            }
        };
        file.sync_all().map_err(io_error(&open.path))?;
        let name = format!(
            "part-{checkpoint:010}-{:05}.{}",
            self.staged.len(),
            self.format.extension()
        );
        let staged = self.staging().join(&name);
        std::fs::rename(&open.path, &staged).map_err(io_error(&staged))?;
        self.staged.push(name);
        Ok(())
    }

    /// Moves every staged file into the output directory.
    fn commit_staged(&mut self) -> Result<()> {
        for name in std::mem::take(&mut self.staged) {
            let staged = self.staging().join(&name);
            if staged.exists() {
                let visible = self.dir.join(&name);
                std::fs::rename(&staged, &visible).map_err(io_error(&visible))?;
            }
        }
        sync_dir(&self.dir)
    }
}

impl StreamSink for FileSink {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            self.files_written += 1;
            let path = self.staging().join(format!(
                "inprogress-{}.{}",
                self.files_written,
                self.format.extension()
            ));
            let file = File::create(&path).map_err(io_error(&path))?;
            let writer = match self.format {
                FileFormat::Parquet => Writer::Parquet(
                    ArrowWriter::try_new(file, batch.schema(), None)
                        .map_err(|error| sink_error(&path, error))?,
                ),
                FileFormat::JsonLines => {
                    Writer::Json(LineDelimitedWriter::new(BufWriter::new(file)))
                }
            };
            self.open = Some(OpenFile { path, writer });
        }
        if let Some(open) = self.open.as_mut() {
            let written = match &mut open.writer {
                Writer::Parquet(writer) => writer.write(&batch).map_err(|error| error.to_string()),
                Writer::Json(writer) => writer.write(&batch).map_err(|error| error.to_string()),
            };
            written.map_err(|message| sink_error(&open.path, message))?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<u8>> {
        self.stage(checkpoint)?;
        sync_dir(&self.staging())?;
        Ok(self.staged.join("\n").into_bytes())
    }

    fn commit(&mut self, _checkpoint: u64) -> Result<()> {
        self.commit_staged()
    }

    /// Commits the files the restored checkpoint pre-committed (if a crash came before their
    /// commit) and deletes every other file under `_staging/`.
    fn restore(&mut self, state: &[u8]) -> Result<()> {
        self.open = None;
        let names = String::from_utf8(state.to_vec()).map_err(|_| ExecError::Sink {
            sink: self.dir.display().to_string(),
            message: "the checkpoint's list of staged files is not text".to_string(),
        })?;
        self.staged = names
            .lines()
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect();
        self.commit_staged()?;
        let staging = self.staging();
        for entry in std::fs::read_dir(&staging).map_err(io_error(&staging))? {
            let path = entry.map_err(io_error(&staging))?.path();
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Without checkpoints, the rows written become visible when the input ends.
    fn finish(&mut self) -> Result<()> {
        if self.open.is_some() {
            self.stage(0)?;
        }
        self.commit_staged()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io_error(dir))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ExecError + '_ {
    move |error| sink_error(path, error)
}

fn sink_error(path: &Path, error: impl std::fmt::Display) -> ExecError {
    ExecError::Sink {
        sink: path.display().to_string(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn visible(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != STAGING)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_become_visible_only_at_commit_and_a_restart_finishes_an_interrupted_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::try_new(dir.path(), FileFormat::JsonLines).unwrap();
        sink.write(batch(&[1, 2])).unwrap();
        assert!(
            visible(dir.path()).is_empty(),
            "an open file is not visible"
        );
        let state = sink.pre_commit(1).unwrap();
        assert!(
            visible(dir.path()).is_empty(),
            "a pre-committed file is not visible"
        );
        sink.write(batch(&[3])).unwrap();
        // A crash: checkpoint 1 completed but its commit never ran; the row 3 was written
        // after it.
        drop(sink);
        let mut restarted = FileSink::try_new(dir.path(), FileFormat::JsonLines).unwrap();
        restarted.restore(&state).unwrap();
        assert_eq!(visible(dir.path()), vec!["part-0000000001-00000.jsonl"]);
        let text = std::fs::read_to_string(dir.path().join("part-0000000001-00000.jsonl")).unwrap();
        assert_eq!(text, "{\"x\":1}\n{\"x\":2}\n");
        assert_eq!(
            std::fs::read_dir(dir.path().join(STAGING)).unwrap().count(),
            0
        );
        restarted.restore(&state).unwrap();
        assert_eq!(visible(dir.path()).len(), 1, "restoring twice commits once");
        restarted.write(batch(&[3])).unwrap();
        restarted.finish().unwrap();
        assert_eq!(
            visible(dir.path()).len(),
            2,
            "finish commits without checkpoints"
        );
    }
}
