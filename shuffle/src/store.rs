//! The shuffle outputs a worker holds until their query ends: per task, one list of batches per
//! output partition. Outputs stay in memory up to a byte budget; past it, a task's output is
//! written to the worker's spill directory as Arrow IPC files, one per partition, and read back
//! when fetched.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use crate::error::{Result, ShuffleError};

type OutputKey = (u64, usize, usize);

/// Shuffle outputs by (query, stage, task).
#[derive(Debug)]
pub struct OutputStore {
    spill_dir: PathBuf,
    memory_budget: usize,
    state: Mutex<StoreState>,
    /// Numbers spill directories, so a task's retry never writes where its earlier output is.
    spills: AtomicU64,
}

#[derive(Debug, Default)]
struct StoreState {
    outputs: HashMap<OutputKey, Arc<TaskOutput>>,
    memory_bytes: usize,
}

#[derive(Debug)]
enum TaskOutput {
    Memory {
        buckets: Vec<Vec<RecordBatch>>,
        bytes: usize,
    },
    /// One IPC file per partition (none for an empty partition).
    Spilled {
        files: Vec<Option<PathBuf>>,
        schema: SchemaRef,
    },
}

impl OutputStore {
    /// A store keeping up to `memory_budget` bytes in memory and spilling the rest under
    /// `spill_dir` (created when first needed).
    pub fn new(spill_dir: impl Into<PathBuf>, memory_budget: usize) -> OutputStore {
        OutputStore {
            spill_dir: spill_dir.into(),
            memory_budget,
            state: Mutex::new(StoreState::default()),
            spills: AtomicU64::new(0),
        }
    }

    /// Keeps the output of a task: `buckets[p]` are the batches for partition `p`. Returns
    /// the bytes of each partition.
    pub fn insert(
        &self,
        (query, stage, task): OutputKey,
        schema: &SchemaRef,
        buckets: Vec<Vec<RecordBatch>>,
    ) -> Result<Vec<u64>> {
        let bucket_bytes: Vec<u64> = buckets
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .map(|batch| batch.get_array_memory_size() as u64)
                    .sum()
            })
            .collect();
        let bytes = bucket_bytes.iter().sum::<u64>() as usize;
        let fits = {
            let mut state = self.lock();
            if state.memory_bytes + bytes <= self.memory_budget {
                state.memory_bytes += bytes;
                true
            } else {
                false
            }
        };
        let output = if fits {
            TaskOutput::Memory { buckets, bytes }
        } else {
            let number = self.spills.fetch_add(1, Ordering::Relaxed);
            let directory = self
                .spill_dir
                .join(format!("q{query}-s{stage}-t{task}-{number}"));
            TaskOutput::Spilled {
                files: spill(&directory, schema, &buckets)?,
                schema: Arc::clone(schema),
            }
        };
        let previous = self
            .lock()
            .outputs
            .insert((query, stage, task), Arc::new(output));
        if let Some(previous) = previous {
            self.release(&previous);
        }
        Ok(bucket_bytes)
    }

    /// The batches of partition `bucket` of a task's output.
    pub fn get(&self, key: OutputKey, bucket: usize) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let output = self
            .lock()
            .outputs
            .get(&key)
            .cloned()
            .ok_or(ShuffleError::MissingOutput {
                query: key.0,
                stage: key.1,
                task: key.2,
            })?;
        match output.as_ref() {
            TaskOutput::Memory { buckets, .. } => {
                let batches = buckets.get(bucket).cloned().unwrap_or_default();
                let schema = batches
                    .first()
                    .map(RecordBatch::schema)
                    .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
                Ok((schema, batches))
            }
            TaskOutput::Spilled { files, schema } => match files.get(bucket).cloned().flatten() {
                Some(path) => Ok((Arc::clone(schema), read_spilled(&path)?)),
                None => Ok((Arc::clone(schema), Vec::new())),
            },
        }
    }

    /// Drops every output of `query` (its spill files too).
    pub fn remove_query(&self, query: u64) {
        let removed: Vec<Arc<TaskOutput>> = {
            let mut state = self.lock();
            let keys: Vec<OutputKey> = state
                .outputs
                .keys()
                .filter(|key| key.0 == query)
                .copied()
                .collect();
            keys.iter()
                .filter_map(|key| state.outputs.remove(key))
                .collect()
        };
        for output in removed {
            self.release(&output);
        }
    }

    /// Bytes held in memory now.
    pub fn memory_bytes(&self) -> usize {
        self.lock().memory_bytes
    }

    fn release(&self, output: &TaskOutput) {
        match output {
            TaskOutput::Memory { bytes, .. } => self.lock().memory_bytes -= bytes,
            TaskOutput::Spilled { files, .. } => {
                for path in files.iter().flatten() {
                    // A file already gone is as good as removed.
                    let _ = std::fs::remove_file(path);
                }
                if let Some(directory) = files.iter().flatten().next().and_then(|p| p.parent()) {
                    let _ = std::fs::remove_dir(directory);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn spill(
    directory: &Path,
    schema: &SchemaRef,
    buckets: &[Vec<RecordBatch>],
) -> Result<Vec<Option<PathBuf>>> {
    let spill_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| ShuffleError::Spill { path, source }
    };
    std::fs::create_dir_all(directory).map_err(spill_error(directory))?;
    buckets
        .iter()
        .enumerate()
        .map(|(bucket, batches)| {
            if batches.is_empty() {
                return Ok(None);
            }
            let path = directory.join(format!("{bucket}.arrow"));
            let file = File::create(&path).map_err(spill_error(&path))?;
            let mut writer = FileWriter::try_new(BufWriter::new(file), schema)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            Ok(Some(path))
        })
        .collect()
}

fn read_spilled(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|source| ShuffleError::Spill {
        path: path.display().to_string(),
        source,
    })?;
    let reader = FileReader::try_new(BufReader::new(file), None)?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))]).unwrap()
    }

    #[test]
    fn outputs_over_the_budget_spill_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let small = batch(0..10);
        let large = batch(0..100_000);
        let store = OutputStore::new(dir.path(), small.get_array_memory_size() * 2);
        let schema = small.schema();
        store
            .insert((1, 0, 0), &schema, vec![vec![small.clone()], vec![]])
            .unwrap();
        let bytes = store
            .insert(
                (1, 0, 1),
                &schema,
                vec![vec![], vec![large.clone(), small.clone()]],
            )
            .unwrap();
        assert_eq!(bytes[0], 0);
        assert!(bytes[1] > 0);
        assert_eq!(store.memory_bytes(), small.get_array_memory_size());
        assert_eq!(store.get((1, 0, 0), 0).unwrap().1, vec![small.clone()]);
        assert_eq!(store.get((1, 0, 1), 1).unwrap().1, vec![large, small]);
        assert!(store.get((1, 0, 1), 0).unwrap().1.is_empty());
        assert!(dir.path().join("q1-s0-t1-0").join("1.arrow").exists());

        store.remove_query(1);
        assert_eq!(store.memory_bytes(), 0);
        assert!(!dir.path().join("q1-s0-t1-0").exists());
        assert!(matches!(
            store.get((1, 0, 0), 0),
            Err(ShuffleError::MissingOutput { .. })
        ));
    }
}
