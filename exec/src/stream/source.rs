//! Stream sources: where a streaming pipeline's rows come from, per partition, with offsets a
//! checkpoint records and a restart seeks back to.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::nexmark::{NexmarkConfig, NexmarkGenerator, NexmarkTable};
use crate::error::{ExecError, Result};

/// What a poll of a source gives.
#[derive(Debug)]
pub enum SourcePoll {
    /// Rows of one partition.
    Batch {
        partition: usize,
        batch: RecordBatch,
    },
    /// Nothing right now; poll again later.
    Pending,
    /// The source has no more rows, ever.
    Finished,
}

/// A source of rows for a streaming pipeline. Sources with several partitions (files, topic
/// partitions) say which partition each batch comes from, so watermarks are made per partition.
pub trait StreamSource: Send {
    /// A name for messages and errors.
    fn name(&self) -> String;

    /// The schema of every batch.
    fn schema(&self) -> SchemaRef;

    /// How many partitions batches come from.
    fn partitions(&self) -> usize {
        1
    }

    /// The next batch, if one is ready.
    fn poll(&mut self) -> Result<SourcePoll>;

    /// Where each partition stands: `seek` with these offsets resumes right after the rows
    /// polled so far.
    fn offsets(&self) -> Vec<u64>;

    /// Resumes at `offsets` (one per partition, as `offsets` gave them).
    fn seek(&mut self, offsets: &[u64]) -> Result<()>;
}

fn one_offset(source: &dyn StreamSource, offsets: &[u64]) -> Result<u64> {
    match offsets {
        [offset] => Ok(*offset),
        _ => Err(ExecError::Source {
            source_name: source.name(),
            message: format!("expected 1 offset to seek to, got {}", offsets.len()),
        }),
    }
}

/// Nexmark events of one table, generated as batches (one partition; its offset is the next
/// event number).
pub struct NexmarkSource {
    generator: NexmarkGenerator,
    table: NexmarkTable,
    columns: Vec<usize>,
    next_event: u64,
    end_event: Option<u64>,
    batch_events: u64,
}

impl NexmarkSource {
    /// An endless source of `table`'s rows under `config`, from event 0.
    pub fn try_new(config: NexmarkConfig, table: NexmarkTable) -> Result<NexmarkSource> {
        Ok(NexmarkSource {
            generator: NexmarkGenerator::try_new(config)?,
            table,
            columns: (0..table.schema().fields().len()).collect(),
            next_event: 0,
            end_event: None,
            batch_events: 10_000,
        })
    }

    /// Stops after the first `events` events (of all tables; this source yields its table's
    /// share of them).
    pub fn with_events(mut self, events: u64) -> NexmarkSource {
        self.end_event = Some(events);
        self
    }

    /// Generates only the columns `columns`, in that order (projection pushdown: the strings
    /// of the other columns are never built; the values are those of the full table).
    pub fn with_columns(mut self, columns: &[&str]) -> Result<NexmarkSource> {
        let schema = self.table.schema();
        self.columns = columns
            .iter()
            .map(|column| {
                schema.index_of(column).map_err(|_| {
                    ExecError::InvalidStream(format!(
                        "Nexmark table {} has no column {column}",
                        self.table.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self)
    }

    /// Generates `events` events per batch (default 10,000).
    pub fn with_batch_events(mut self, events: u64) -> NexmarkSource {
        self.batch_events = events.max(1);
        self
    }
}

impl StreamSource for NexmarkSource {
    fn name(&self) -> String {
        format!("nexmark {}", self.table.name())
    }

    fn schema(&self) -> SchemaRef {
        let schema = self.table.schema();
        schema
            .project(&self.columns)
            .map(std::sync::Arc::new)
            .unwrap_or(schema)
    }

    fn poll(&mut self) -> Result<SourcePoll> {
        let start = self.next_event;
        let end = match self.end_event {
            Some(last) if start >= last => return Ok(SourcePoll::Finished),
            Some(last) => (start + self.batch_events).min(last),
            None => start + self.batch_events,
        };
        self.next_event = end;
        let batch = self
            .generator
            .generate_columns(self.table, start, end, &self.columns)?;
        Ok(SourcePoll::Batch {
            partition: 0,
            batch,
        })
    }

    fn offsets(&self) -> Vec<u64> {
        vec![self.next_event]
    }

    fn seek(&mut self, offsets: &[u64]) -> Result<()> {
        self.next_event = one_offset(self, offsets)?;
        Ok(())
    }
}

/// Batches a program hands over through bounded channels, one per partition (watermarks are
/// made per partition; a partition without batches for a while stops holding them back). A
/// partition's offset counts the rows received; it finishes when its senders are dropped, and
/// the source when every partition has.
pub struct ChannelSource {
    schema: SchemaRef,
    partitions: Vec<ChannelPartition>,
    next: usize,
}

struct ChannelPartition {
    receiver: Receiver<RecordBatch>,
    received_rows: u64,
    rows_to_skip: u64,
    finished: bool,
}

/// The sending end of one partition of a [`ChannelSource`]; `send` blocks while the channel is
/// full.
#[derive(Clone)]
pub struct ChannelSender {
    schema: SchemaRef,
    sender: SyncSender<RecordBatch>,
}

impl ChannelSource {
    /// A one-partition source of batches of `schema`, holding up to `capacity` batches not yet
    /// polled.
    pub fn new(schema: SchemaRef, capacity: usize) -> (ChannelSender, ChannelSource) {
        let (mut senders, source) = ChannelSource::partitioned(schema, 1, capacity);
        (senders.remove(0), source)
    }

    /// A source of `partitions` partitions (at least one), each with its sender and room for
    /// `capacity` batches.
    pub fn partitioned(
        schema: SchemaRef,
        partitions: usize,
        capacity: usize,
    ) -> (Vec<ChannelSender>, ChannelSource) {
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..partitions.max(1) {
            let (sender, receiver) = sync_channel(capacity.max(1));
            senders.push(ChannelSender {
                schema: schema.clone(),
                sender,
            });
            receivers.push(ChannelPartition {
                receiver,
                received_rows: 0,
                rows_to_skip: 0,
                finished: false,
            });
        }
        let source = ChannelSource {
            schema,
            partitions: receivers,
            next: 0,
        };
        (senders, source)
    }
}

impl ChannelSender {
    /// Hands `batch` to the stream; an error when its schema differs from the source's or the
    /// stream has stopped.
    pub fn send(&self, batch: RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(ExecError::Source {
                source_name: "channel".to_string(),
                message: format!(
                    "batch schema {:?} differs from the source's {:?}",
                    batch.schema(),
                    self.schema
                ),
            });
        }
        self.sender.send(batch).map_err(|_| ExecError::Source {
            source_name: "channel".to_string(),
            message: "the stream reading this channel has stopped".to_string(),
        })
    }
}

impl StreamSource for ChannelSource {
    fn name(&self) -> String {
        "channel".to_string()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// The next batch of any partition, taking partitions in turn.
    fn poll(&mut self) -> Result<SourcePoll> {
        let count = self.partitions.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            let partition = &mut self.partitions[index];
            while !partition.finished {
                let batch = match partition.receiver.try_recv() {
                    Ok(batch) => batch,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        partition.finished = true;
                        break;
                    }
                };
                let rows = batch.num_rows() as u64;
                let skip = partition.rows_to_skip.min(rows);
                partition.rows_to_skip -= skip;
                partition.received_rows += rows;
                if skip < rows {
                    self.next = (index + 1) % count;
                    let batch = batch.slice(skip as usize, (rows - skip) as usize);
                    return Ok(SourcePoll::Batch {
                        partition: index,
                        batch,
                    });
                }
            }
        }
        if self.partitions.iter().all(|partition| partition.finished) {
            Ok(SourcePoll::Finished)
        } else {
            Ok(SourcePoll::Pending)
        }
    }

    fn offsets(&self) -> Vec<u64> {
        self.partitions
            .iter()
            .map(|partition| partition.received_rows + partition.rows_to_skip)
            .collect()
    }

    /// Senders replay from their first row after a restart; each partition skips the first
    /// `offset` rows sent to it, having processed them before.
    fn seek(&mut self, offsets: &[u64]) -> Result<()> {
        if offsets.len() != self.partitions.len() {
            return Err(ExecError::Source {
                source_name: self.name(),
                message: format!(
                    "expected {} offsets to seek to, got {}",
                    self.partitions.len(),
                    offsets.len()
                ),
            });
        }
        for (partition, &offset) in self.partitions.iter_mut().zip(offsets) {
            partition.rows_to_skip = offset;
            partition.received_rows = 0;
        }
        Ok(())
    }
}
