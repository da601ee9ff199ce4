//! Checkpoints of a streaming pipeline. At a checkpoint the driver stands between two
//! batches, so every operator has processed all earlier rows and none of the later ones: the
//! barrier of asynchronous barrier snapshotting, aligned trivially in a single-threaded
//! pipeline. The source's offsets, each operator's state and the sink's pre-commit go into an
//! LSM state backend, which snapshots them durably; then the `LATEST` file is replaced
//! atomically with the checkpoint's id, which is the moment the checkpoint is complete. A
//! restart restores the latest complete checkpoint and drops any later, incomplete one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sabot_storage::{LsmState, StateBackend};

use crate::error::{ExecError, Result};

const STATE: &str = "checkpoint";
const LATEST: &str = "LATEST";

/// Where and how often a pipeline checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The directory holding the checkpoints (created if missing).
    pub dir: PathBuf,
    /// Processing time between checkpoints.
    pub interval: Duration,
}

/// What a complete checkpoint saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedCheckpoint {
    pub(crate) id: u64,
    pub(crate) source_offsets: Vec<u64>,
    pub(crate) operators: Vec<Vec<u8>>,
    pub(crate) sink: Vec<u8>,
}

/// Takes a pipeline's checkpoints and finds the latest complete one.
pub(crate) struct Checkpointer {
    dir: PathBuf,
    interval: Duration,
    state: LsmState,
    last_id: u64,
    last_taken: Instant,
}

impl Checkpointer {
    /// Opens the checkpoints in `config.dir`, with the latest complete one if there is one.
    pub(crate) fn open(
        config: &CheckpointConfig,
    ) -> Result<(Checkpointer, Option<SavedCheckpoint>)> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(failure(&dir))?;
        let state = LsmState::open(dir.join("state")).map_err(failure(&dir))?;
        let latest = read_latest(&dir)?;
        for id in state.checkpoints().map_err(failure(&dir))? {
            if latest.is_none_or(|latest| id > latest) {
                state.remove_checkpoint(id).map_err(failure(&dir))?;
            }
        }
        let saved = match latest {
            None => None,
            Some(id) => {
                state.restore(id).map_err(failure(&dir))?;
                Some(
                    read_saved(&state, id).map_err(|message| ExecError::Checkpoint {
                        dir: dir.clone(),
                        message,
                    })?,
                )
            }
        };
        let checkpointer = Checkpointer {
            dir: dir.clone(),
            interval: config.interval,
            state,
            last_id: latest.unwrap_or(0),
            last_taken: Instant::now(),
        };
        Ok((checkpointer, saved))
    }

    /// Whether the interval has passed since the last checkpoint.
    pub(crate) fn due(&self) -> bool {
        self.last_taken.elapsed() >= self.interval
    }

    /// The id the next checkpoint gets.
    pub(crate) fn next_id(&self) -> u64 {
        self.last_id + 1
    }

    /// Saves checkpoint `next_id()` durably and marks it complete.
    pub(crate) fn complete(&mut self, saved: &SavedCheckpoint) -> Result<()> {
        let offsets: Vec<u8> = saved
            .source_offsets
            .iter()
            .flat_map(|offset| offset.to_le_bytes())
            .collect();
        self.state
            .set_value(STATE, b"source", &offsets)
            .map_err(failure(&self.dir))?;
        self.state
            .set_value(
                STATE,
                b"operators",
                &(saved.operators.len() as u64).to_le_bytes(),
            )
            .map_err(failure(&self.dir))?;
        for (index, operator) in saved.operators.iter().enumerate() {
            self.state
                .set_value(STATE, format!("operator/{index}").as_bytes(), operator)
                .map_err(failure(&self.dir))?;
        }
        self.state
            .set_value(STATE, b"sink", &saved.sink)
            .map_err(failure(&self.dir))?;
        self.state.snapshot(saved.id).map_err(failure(&self.dir))?;
        write_latest(&self.dir, saved.id)?;
        if self.last_id > 0 {
            self.state
                .remove_checkpoint(self.last_id)
                .map_err(failure(&self.dir))?;
        }
        self.last_id = saved.id;
        self.last_taken = Instant::now();
        Ok(())
    }
}

fn read_saved(state: &LsmState, id: u64) -> std::result::Result<SavedCheckpoint, String> {
    let value = |key: &[u8]| -> std::result::Result<Vec<u8>, String> {
        state
            .value(STATE, key)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("checkpoint {id} lacks {}", String::from_utf8_lossy(key)))
    };
    let offsets = value(b"source")?;
    if offsets.len() % 8 != 0 {
        return Err(format!("checkpoint {id} has damaged source offsets"));
    }
    let source_offsets = offsets
        .chunks_exact(8)
        .map(|word| u64::from_le_bytes(word.try_into().unwrap_or_default()))
        .collect();
    let count = value(b"operators")?;
    let count = <[u8; 8]>::try_from(count.as_slice())
        .map(u64::from_le_bytes)
        .map_err(|_| format!("checkpoint {id} has a damaged operator count"))?;
    let operators = (0..count)
        .map(|index| value(format!("operator/{index}").as_bytes()))
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(SavedCheckpoint {
        id,
        source_offsets,
        operators,
        sink: value(b"sink")?,
    })
}

/// Turns any error into a checkpoint error naming `dir`.
fn failure<E: std::fmt::Display>(dir: &Path) -> impl Fn(E) -> ExecError + '_ {
    move |error| ExecError::Checkpoint {
        dir: dir.to_path_buf(),
        message: error.to_string(),
    }
}

fn read_latest(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(LATEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(failure(dir)(format!("{}: {error}", path.display()))),
    };
    text.trim().parse().map(Some).map_err(|_| {
        failure(dir)(format!(
            "{} holds {text:?}, not a checkpoint id",
            path.display()
        ))
    })
}

/// Replaces `LATEST` with `id`: written to a temporary file, synced, renamed over the old one,
/// and the directory synced, so a crash leaves either the old id or the new one.
fn write_latest(dir: &Path, id: u64) -> Result<()> {
    let temporary = dir.join("LATEST.tmp");
    std::fs::write(&temporary, id.to_string()).map_err(failure(dir))?;
    std::fs::File::open(&temporary)
        .and_then(|file| file.sync_all())
        .map_err(failure(dir))?;
    std::fs::rename(&temporary, dir.join(LATEST)).map_err(failure(dir))?;
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(failure(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_complete_checkpoint_comes_back_and_later_partial_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let config = CheckpointConfig {
            dir: dir.path().to_path_buf(),
            interval: Duration::ZERO,
        };
        let (mut checkpointer, saved) = Checkpointer::open(&config).unwrap();
        assert_eq!(saved, None);
        let first = SavedCheckpoint {
            id: checkpointer.next_id(),
            source_offsets: vec![10, 20],
            operators: vec![vec![1, 2, 3], Vec::new()],
            sink: b"files".to_vec(),
        };
        checkpointer.complete(&first).unwrap();
        // A second checkpoint's state is snapshotted but LATEST is never replaced (a crash).
        checkpointer
            .state
            .set_value(STATE, b"source", &[0; 8])
            .unwrap();
        checkpointer.state.snapshot(2).unwrap();
        drop(checkpointer);
        let (checkpointer, saved) = Checkpointer::open(&config).unwrap();
        assert_eq!(saved, Some(first));
        assert_eq!(checkpointer.next_id(), 2);
        assert_eq!(checkpointer.state.checkpoints().unwrap(), vec![1]);
        std::fs::write(dir.path().join(LATEST), "garbage").unwrap();
        drop(checkpointer);
        assert!(matches!(
            Checkpointer::open(&config),
            Err(ExecError::Checkpoint { .. })
        ));
    }
}
