//! Sorted string tables: the immutable files memtables are flushed and compacted into. Layout:
//! data blocks of about 4 KiB (prefix-compressed keys with restart points, see [`crate::block`]),
//! each optionally LZ4-compressed; an index block (the table's first key, then each data block's
//! last key, offset and length); a bloom filter block; then a fixed footer (offsets, entry
//! count, the largest sequence number the table holds, format version, magic). Every block is
//! followed by its CRC-32C; a block that fails it is reported as corruption naming the file and
//! offset, never returned as data.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::block::BlockBuilder;
use crate::block_cache::{BlockCache, BlockId, next_table_id};
use crate::bloom::BloomFilter;
use crate::codec::{Reader, put_varint};
use crate::error::{Result, StorageError};
use crate::uring::ReadAhead;

const BLOCK_BYTES: usize = 4 << 10;
const FORMAT_VERSION: u32 = 3;
const MAGIC: u64 = u64::from_le_bytes(*b"SABOTSST");
const FOOTER_BYTES: usize = 52;

/// Where a table's parts lie, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    index_offset: u64,
    index_len: u32,
    bloom_offset: u64,
    bloom_len: u32,
    entries: u64,
    pub(crate) max_sequence: u64,
}

impl Footer {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FOOTER_BYTES);
        out.extend_from_slice(&self.index_offset.to_le_bytes());
        out.extend_from_slice(&self.index_len.to_le_bytes());
        out.extend_from_slice(&self.bloom_offset.to_le_bytes());
        out.extend_from_slice(&self.bloom_len.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&self.max_sequence.to_le_bytes());
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Footer> {
        let mut reader = Reader::new(bytes, "table footer");
        let footer = Footer {
            index_offset: reader.u64()?,
            index_len: reader.u32()?,
            bloom_offset: reader.u64()?,
            bloom_len: reader.u32()?,
            entries: reader.u64()?,
            max_sequence: reader.u64()?,
        };
        let version = reader.u32()?;
        let magic = reader.u64()?;
        if magic != MAGIC {
            return Err(StorageError::malformed(
                "table footer",
                "not a Sabot table (bad magic)",
            ));
        }
        if version != FORMAT_VERSION {
            return Err(StorageError::malformed(
                "table footer",
                format!("format version {version}, this build reads {FORMAT_VERSION}"),
            ));
        }
        Ok(footer)
    }
}

/// One index entry: a data block and the last key in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    last_key: Vec<u8>,
    offset: u64,
    len: u32,
}

/// A table's index block: its first key and its data blocks.
pub(crate) fn decode_index(bytes: &[u8]) -> Result<(Vec<u8>, Vec<BlockHandle>)> {
    let mut reader = Reader::new(bytes, "table index");
    let first_key = reader.length_prefixed()?.to_vec();
    let mut handles = Vec::new();
    while !reader.is_empty() {
        handles.push(BlockHandle {
            last_key: reader.length_prefixed()?.to_vec(),
            offset: reader.u64()?,
            len: reader.u32()?,
        });
    }
    Ok((first_key, handles))
}

pub(crate) use crate::block::{Entry, decode_block, search_block};

/// How a table's data blocks are stored: each block's first byte names its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Entries as they are (fastest when the table's pages are in memory).
    #[default]
    None,
    /// LZ4 block compression (smaller files, less I/O, some CPU per block read).
    Lz4,
}

const RAW_BLOCK: u8 = 0;
const LZ4_BLOCK: u8 = 1;
/// The largest block a table's reader will decompress (blocks are written at about 4 KiB).
const MAX_BLOCK_BYTES: usize = 16 << 20;

/// The entries of a checked data block: its codec byte read, decompressed if need be.
pub(crate) fn data_block_entries(block: &[u8]) -> Result<Cow<'_, [u8]>> {
    let Some((&codec, body)) = block.split_first() else {
        return Err(StorageError::malformed("data block", "empty"));
    };
    match codec {
        RAW_BLOCK => Ok(Cow::Borrowed(body)),
        LZ4_BLOCK => {
            let Some((size, compressed)) = body.split_first_chunk::<4>() else {
                return Err(StorageError::malformed(
                    "data block",
                    "no decompressed size",
                ));
            };
            let size = u32::from_le_bytes(*size) as usize;
            if size > MAX_BLOCK_BYTES {
                return Err(StorageError::malformed(
                    "data block",
                    format!("claims {size} bytes decompressed"),
                ));
            }
            lz4_flex::block::decompress(compressed, size)
                .map(Cow::Owned)
                .map_err(|error| StorageError::malformed("data block", error.to_string()))
        }
        other => Err(StorageError::malformed(
            "data block",
            format!("unknown codec {other}"),
        )),
    }
}

/// The checked contents of a block stored with its CRC-32C after it.
pub(crate) fn verified<'a>(stored: &'a [u8], what: &'static str) -> Result<&'a [u8]> {
    if stored.len() < 4 {
        return Err(StorageError::malformed(what, "shorter than its checksum"));
    }
    let (block, crc) = stored.split_at(stored.len() - 4);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(block) != expected {
        return Err(StorageError::malformed(what, "checksum mismatch"));
    }
    Ok(block)
}

/// Writes the sorted `entries` (a `None` value is a delete) as a table at `path`, synced,
/// streaming blocks to the file as they fill. `max_sequence` is the newest write they hold.
/// Returns how many entries it wrote.
pub(crate) fn write_table<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    path: &Path,
    entries: impl Iterator<Item = Result<(K, Option<V>)>>,
    max_sequence: u64,
    compression: Compression,
) -> Result<u64> {
    let mut builder = TableBuilder::create(path, compression)?;
    for entry in entries {
        let (key, value) = entry?;
        builder.add(key.as_ref(), value.as_ref().map(AsRef::as_ref))?;
    }
    builder.finish(max_sequence)
}

/// A table being written: blocks go to the file as they fill.
pub(crate) struct TableBuilder {
    path: PathBuf,
    file: BufWriter<File>,
    offset: u64,
    compression: Compression,
    block: BlockBuilder,
    /// A data block as stored: codec byte, then its entries (compressed or not).
    stored: Vec<u8>,
    encoded: Vec<u8>,
    first_key: Option<Vec<u8>>,
    index: Vec<u8>,
    key_hashes: Vec<u64>,
}

impl TableBuilder {
    pub(crate) fn create(path: &Path, compression: Compression) -> Result<TableBuilder> {
        let file = File::create(path).map_err(StorageError::io(path))?;
        Ok(TableBuilder {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, file),
            offset: 0,
            compression,
            block: BlockBuilder::default(),
            stored: Vec::with_capacity(BLOCK_BYTES + 256),
            encoded: Vec::with_capacity(BLOCK_BYTES + 256),
            first_key: None,
            index: Vec::new(),
            key_hashes: Vec::new(),
        })
    }

    /// Appends an entry; keys must come in ascending order.
    pub(crate) fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        if self.first_key.is_none() {
            self.first_key = Some(key.to_vec());
        }
        self.block.add(key, value);
        self.key_hashes.push(crate::bloom::key_hash(key));
        if self.block.len() >= BLOCK_BYTES {
            self.data_block()?;
        }
        Ok(())
    }

    /// Bytes written so far (the unfinished block left out).
    pub(crate) fn written_bytes(&self) -> u64 {
        self.offset
    }

    /// Writes the last block, the index, the bloom filter and the footer, and syncs the file.
    /// `max_sequence` is the newest write the table holds. Returns how many entries it has.
    pub(crate) fn finish(mut self, max_sequence: u64) -> Result<u64> {
        if !self.block.is_empty() {
            self.data_block()?;
        }
        let mut index = Vec::with_capacity(self.index.len() + 64);
        let first_key = self.first_key.take().unwrap_or_default();
        put_varint(&mut index, first_key.len() as u64);
        index.extend_from_slice(&first_key);
        index.extend_from_slice(&self.index);
        let (index_offset, index_len) = self.checked_block(&index)?;
        let bloom = BloomFilter::from_hashes(&self.key_hashes).encode();
        let (bloom_offset, bloom_len) = self.checked_block(&bloom)?;
        let footer = Footer {
            index_offset,
            index_len,
            bloom_offset,
            bloom_len,
            entries: self.key_hashes.len() as u64,
            max_sequence,
        };
        self.write(&footer.encode())?;
        let path = self.path;
        let file = self.file.into_inner().map_err(|error| StorageError::Io {
            path: path.clone(),
            source: error.into_error(),
        })?;
        file.sync_all().map_err(StorageError::io(&path))?;
        Ok(self.key_hashes.len() as u64)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(StorageError::io(&self.path))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes `block` and its checksum; returns where it starts and its stored length.
    fn checked_block(&mut self, block: &[u8]) -> Result<(u64, u32)> {
        let offset = self.offset;
        self.write(block)?;
        self.write(&crc32c::crc32c(block).to_le_bytes())?;
        Ok((offset, (block.len() + 4) as u32))
    }

    /// Writes the filled data block and indexes it under its last key.
    fn data_block(&mut self) -> Result<()> {
        let mut stored = std::mem::take(&mut self.stored);
        let mut encoded = std::mem::take(&mut self.encoded);
        stored.clear();
        encoded.clear();
        put_varint(&mut self.index, self.block.last_key().len() as u64);
        self.index.extend_from_slice(self.block.last_key());
        self.block.finish_into(&mut encoded);
        match self.compression {
            Compression::None => {
                stored.push(RAW_BLOCK);
                stored.extend_from_slice(&encoded);
            }
            Compression::Lz4 => {
                stored.push(LZ4_BLOCK);
                stored.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
                stored.extend_from_slice(&lz4_flex::block::compress(&encoded));
            }
        }
        let written = self.checked_block(&stored);
        self.stored = stored;
        self.encoded = encoded;
        let (offset, len) = written?;
        self.index.extend_from_slice(&offset.to_le_bytes());
        self.index.extend_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

/// An open table: its index and bloom filter in memory, data blocks read on demand.
pub(crate) struct Table {
    /// The table's key in the block cache.
    cache_id: u64,
    path: PathBuf,
    file: File,
    /// Scans read ahead through io_uring.
    io_uring: bool,
    file_bytes: u64,
    first_key: Vec<u8>,
    index: Vec<BlockHandle>,
    bloom: BloomFilter,
    pub(crate) footer: Footer,
}

impl Table {
    /// Opens the table at `path`; with `io_uring`, its scans read ahead through io_uring (where
    /// the kernel allows it).
    pub(crate) fn open(path: &Path, io_uring: bool) -> Result<Table> {
        let file = File::open(path).map_err(StorageError::io(path))?;
        let len = file.metadata().map_err(StorageError::io(path))?.len();
        let footer_offset = len.checked_sub(FOOTER_BYTES as u64).ok_or_else(|| {
            StorageError::malformed("table footer", format!("file of {len} bytes is too short"))
                .at(path, 0)
        })?;
        let footer_bytes = read_at(&file, path, footer_offset, FOOTER_BYTES)?;
        let footer =
            Footer::decode(&footer_bytes).map_err(|error| error.at(path, footer_offset))?;
        let part = |offset: u64, len: u32, what: &'static str| -> Result<Vec<u8>> {
            if offset.saturating_add(u64::from(len)) > footer_offset {
                return Err(
                    StorageError::malformed(what, "lies beyond the footer").at(path, offset)
                );
            }
            let stored = read_at(&file, path, offset, len as usize)?;
            verified(&stored, what)
                .map(<[u8]>::to_vec)
                .map_err(|error| error.at(path, offset))
        };
        let (first_key, index) =
            decode_index(&part(footer.index_offset, footer.index_len, "table index")?)
                .map_err(|error| error.at(path, footer.index_offset))?;
        let bloom = BloomFilter::decode(&part(
            footer.bloom_offset,
            footer.bloom_len,
            "bloom filter",
        )?)
        .map_err(|error| error.at(path, footer.bloom_offset))?;
        Ok(Table {
            cache_id: next_table_id(),
            path: path.to_path_buf(),
            file,
            io_uring,
            file_bytes: len,
            first_key,
            index,
            bloom,
            footer,
        })
    }

    /// The smallest key in the table (empty for a table without entries).
    pub(crate) fn first_key(&self) -> &[u8] {
        &self.first_key
    }

    /// The largest key in the table (empty for a table without entries).
    pub(crate) fn last_key(&self) -> &[u8] {
        self.index
            .last()
            .map_or(&[][..], |handle| handle.last_key.as_slice())
    }

    /// Whether the table may hold keys in `[start, end]` (both inclusive; `None`: unbounded).
    pub(crate) fn overlaps(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        !self.index.is_empty()
            && self.last_key() >= start
            && end.is_none_or(|end| self.first_key.as_slice() <= end)
    }

    /// The table file's size.
    pub(crate) fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// The value of `key`: `Some(None)` when the table deletes it, `None` when it does not know it.
    /// The key's block comes from `cache` when it is there, else from the file (and then stays).
    pub(crate) fn get(&self, key: &[u8], cache: &BlockCache) -> Result<Option<Option<Vec<u8>>>> {
        let Some(block) = self.block_for(key) else {
            return Ok(None);
        };
        let entries = cache.get_or_load(self.cache_key(block), || {
            let handle = &self.index[block];
            let stored = read_at(&self.file, &self.path, handle.offset, handle.len as usize)?;
            self.checked_block(block, &stored)
        })?;
        self.search(block, &entries, key)
    }

    /// The data block that may hold `key` (after its bloom filter), if any.
    pub(crate) fn block_for(&self, key: &[u8]) -> Option<usize> {
        if !self.bloom.may_contain(key) {
            return None;
        }
        let position = self
            .index
            .partition_point(|handle| handle.last_key.as_slice() < key);
        (position < self.index.len()).then_some(position)
    }

    /// Block `block`'s key in the block cache.
    pub(crate) fn cache_key(&self, block: usize) -> BlockId {
        (self.cache_id, block as u32)
    }

    /// Where data block `block` is stored: the file, offset and length.
    pub(crate) fn block_location(&self, block: usize) -> (&File, u64, usize) {
        let handle = &self.index[block];
        (&self.file, handle.offset, handle.len as usize)
    }

    /// The entries of data block `block` from its bytes as stored: checked, decompressed.
    pub(crate) fn checked_block(&self, block: usize, stored: &[u8]) -> Result<Arc<[u8]>> {
        verified(stored, "data block")
            .and_then(data_block_entries)
            .map(|entries| Arc::<[u8]>::from(entries.as_ref()))
            .map_err(|error| error.at(&self.path, self.index[block].offset))
    }

    /// The value of `key` in data block `block`, whose checked entries are `entries`.
    pub(crate) fn search(
        &self,
        block: usize,
        entries: &[u8],
        key: &[u8],
    ) -> Result<Option<Option<Vec<u8>>>> {
        search_block(entries, key).map_err(|error| error.at(&self.path, self.index[block].offset))
    }

    /// The entries of data block `block` from its bytes as stored, decoded.
    fn decoded_block(&self, block: usize, stored: &[u8]) -> Result<Vec<Entry>> {
        verified(stored, "data block")
            .and_then(data_block_entries)
            .and_then(|entries| decode_block(&entries))
            .map_err(|error| error.at(&self.path, self.index[block].offset))
    }

    /// The entries of data block `block`, read now.
    fn block_entries(&self, block: usize) -> Result<Vec<Entry>> {
        let (file, offset, len) = self.block_location(block);
        self.decoded_block(block, &read_at(file, &self.path, offset, len)?)
    }

    /// Blocks `first..` up to [`READ_AHEAD_BYTES`] (at least one): how many, and where their
    /// bytes start and end in the file.
    fn span_from(&self, first: usize) -> Span {
        let start = self.index[first].offset;
        let mut blocks = 0;
        let mut end = start;
        for handle in &self.index[first..] {
            let block_end = handle.offset + u64::from(handle.len);
            if blocks > 0 && block_end - start > READ_AHEAD_BYTES {
                break;
            }
            blocks += 1;
            end = block_end;
        }
        Span {
            first,
            blocks,
            offset: start,
            len: (end - start) as usize,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes a scan reads at once, ahead of the block it decodes, from its third block on.
const READ_AHEAD_BYTES: u64 = 256 << 10;
/// Blocks a scan reads one at a time before it starts reading ahead (short scans never do).
const BLOCKS_BEFORE_READ_AHEAD: usize = 2;

/// Consecutive data blocks, stored one after another in the file.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: usize,
    blocks: usize,
    offset: u64,
    len: usize,
}

impl Span {
    fn holds(&self, block: usize) -> bool {
        (self.first..self.first + self.blocks).contains(&block)
    }
}

/// A forward scan's block reads: one block at a time at first, then spans of blocks, with the
/// next span read (through io_uring, where the table allows it) while the current one is
/// decoded.
#[derive(Default)]
struct SequentialBlocks {
    /// Declared first: dropped (waiting for its read) before anything it reads into.
    ahead: Option<ReadAhead>,
    /// io_uring could not be used for this scan.
    no_ring: bool,
    in_flight: Option<Span>,
    ready: Option<(Span, Vec<u8>)>,
    single_reads: usize,
}

impl SequentialBlocks {
    fn block(&mut self, table: &Table, block: usize) -> Result<Vec<Entry>> {
        if !self
            .ready
            .as_ref()
            .is_some_and(|(span, _)| span.holds(block))
        {
            if self.single_reads < BLOCKS_BEFORE_READ_AHEAD {
                self.single_reads += 1;
                return table.block_entries(block);
            }
            let span = match self.in_flight.take() {
                Some(span) if span.holds(block) => {
                    let bytes = self
                        .ahead
                        .as_mut()
                        .map(ReadAhead::finish)
                        .unwrap_or_else(|| Err(std::io::Error::other("no read in flight")))
                        .map_err(StorageError::io(&table.path))?;
                    (span, bytes)
                }
                _ => {
                    let span = table.span_from(block);
                    let bytes = read_at(&table.file, &table.path, span.offset, span.len)?;
                    (span, bytes)
                }
            };
            self.ready = Some(span);
            self.read_next_span(table);
        }
        let Some((span, bytes)) = &self.ready else {
            return table.block_entries(block);
        };
        let handle = &table.index[block];
        let start = (handle.offset - span.offset) as usize;
        table.decoded_block(block, &bytes[start..start + handle.len as usize])
    }

    /// Starts reading the span after the ready one, where io_uring is available.
    fn read_next_span(&mut self, table: &Table) {
        let Some((ready, _)) = &self.ready else {
            return;
        };
        let next = ready.first + ready.blocks;
        if !table.io_uring || self.no_ring || next >= table.index.len() {
            return;
        }
        if self.ahead.is_none() {
            match ReadAhead::new() {
                Ok(ahead) => self.ahead = Some(ahead),
                Err(_) => {
                    self.no_ring = true;
                    return;
                }
            }
        }
        let span = table.span_from(next);
        if let Some(ahead) = self.ahead.as_mut()
            && ahead.start(&table.file, span.offset, span.len).is_ok()
        {
            self.in_flight = Some(span);
        }
    }
}

/// The entries of a table from a key on, in key order, one block in memory at a time.
pub(crate) struct TableEntries {
    /// Declared before `table`: its reads in flight finish before the table can close.
    reads: SequentialBlocks,
    table: Arc<Table>,
    next_block: usize,
    block: std::vec::IntoIter<Entry>,
    start: Vec<u8>,
}

impl TableEntries {
    /// The entries of `table` whose key is at least `start`.
    pub(crate) fn from_key(table: Arc<Table>, start: &[u8]) -> TableEntries {
        let next_block = table
            .index
            .partition_point(|handle| handle.last_key.as_slice() < start);
        TableEntries {
            reads: SequentialBlocks::default(),
            table,
            next_block,
            block: Vec::new().into_iter(),
            start: start.to_vec(),
        }
    }
}

impl Iterator for TableEntries {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(entry) = self.block.next() {
                return Some(Ok(entry));
            }
            if self.next_block >= self.table.index.len() {
                return None;
            }
            match self.reads.block(&self.table, self.next_block) {
                Ok(entries) => {
                    self.next_block += 1;
                    let start = std::mem::take(&mut self.start);
                    self.block = entries
                        .into_iter()
                        .skip_while(|(key, _)| key.as_slice() < start.as_slice())
                        .collect::<Vec<_>>()
                        .into_iter();
                }
                Err(error) => {
                    self.next_block = self.table.index.len();
                    return Some(Err(error));
                }
            }
        }
    }
}

/// The entries of a table below a key, in reverse key order, one block in memory at a time.
pub(crate) struct TableEntriesBackwards {
    table: Arc<Table>,
    /// Blocks not read yet: the ones before this index.
    blocks_left: usize,
    block: std::iter::Rev<std::vec::IntoIter<Entry>>,
    end: Option<Vec<u8>>,
}

impl TableEntriesBackwards {
    /// The entries of `table` whose key is below `end` (all of them for `None`), last first.
    pub(crate) fn before_key(table: Arc<Table>, end: Option<&[u8]>) -> TableEntriesBackwards {
        let blocks = table.index.len();
        let blocks_left = match end {
            None => blocks,
            // The first block whose last key reaches `end` may still hold keys below it.
            Some(end) => (table
                .index
                .partition_point(|handle| handle.last_key.as_slice() < end)
                + 1)
            .min(blocks),
        };
        TableEntriesBackwards {
            table,
            blocks_left,
            block: Vec::new().into_iter().rev(),
            end: end.map(<[u8]>::to_vec),
        }
    }
}

impl Iterator for TableEntriesBackwards {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            if let Some(entry) = self.block.next() {
                return Some(Ok(entry));
            }
            if self.blocks_left == 0 {
                return None;
            }
            self.blocks_left -= 1;
            match self.table.block_entries(self.blocks_left) {
                Ok(mut entries) => {
                    if let Some(end) = &self.end {
                        entries.retain(|(key, _)| key < end);
                    }
                    self.block = entries.into_iter().rev();
                }
                Err(error) => {
                    self.blocks_left = 0;
                    return Some(Err(error));
                }
            }
        }
    }
}

fn read_at(file: &File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buffer = vec![0u8; len];
    file.read_exact_at(&mut buffer, offset)
        .map_err(StorageError::io(path))?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(count: u32) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        (0..count)
            .map(|i| {
                let key = format!("key{i:08}").into_bytes();
                let value = (i % 10 != 3).then(|| format!("value {i}").repeat(3).into_bytes());
                (key, value)
            })
            .collect()
    }

    fn write(path: &Path, entries: &[(Vec<u8>, Option<Vec<u8>>)]) {
        write_with(path, entries, Compression::None);
    }

    fn write_with(path: &Path, entries: &[(Vec<u8>, Option<Vec<u8>>)], compression: Compression) {
        write_table(
            path,
            entries
                .iter()
                .map(|(key, value)| Ok((key.as_slice(), value.as_deref()))),
            9,
            compression,
        )
        .unwrap();
    }

    #[test]
    fn lz4_tables_read_like_raw_ones_and_are_smaller() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries(5000);
        let (raw, lz4) = (dir.path().join("raw.sst"), dir.path().join("lz4.sst"));
        write_with(&raw, &entries, Compression::None);
        write_with(&lz4, &entries, Compression::Lz4);
        let size = |path: &Path| std::fs::metadata(path).unwrap().len();
        assert!(
            size(&lz4) * 2 < size(&raw),
            "{} vs {} bytes",
            size(&lz4),
            size(&raw)
        );
        let table = Arc::new(Table::open(&lz4, true).unwrap());
        let cache = BlockCache::new(1 << 20);
        for (key, value) in &entries {
            assert_eq!(table.get(key, &cache).unwrap(), Some(value.clone()));
        }
        let scanned: Vec<Entry> = TableEntries::from_key(Arc::clone(&table), b"")
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(scanned, entries);
        let backwards: Vec<Entry> = TableEntriesBackwards::before_key(table, None)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(backwards, entries.iter().rev().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn long_scans_read_ahead_with_and_without_io_uring_and_report_damage_in_a_span() {
        let dir = tempfile::tempdir().unwrap();
        let entries = entries(20_000);
        let path = dir.path().join("scan.sst");
        write(&path, &entries);
        for io_uring in [false, true] {
            let table = Arc::new(Table::open(&path, io_uring).unwrap());
            assert!(table.index.len() > 100, "spans of many blocks");
            let scanned: Vec<Entry> = TableEntries::from_key(Arc::clone(&table), b"")
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(scanned, entries, "io_uring {io_uring}");
            let from_middle: Vec<Entry> = TableEntries::from_key(table, b"key00012345")
                .collect::<Result<_>>()
                .unwrap();
            assert_eq!(from_middle, entries[12345..], "io_uring {io_uring}");
        }
        let damaged_block = Table::open(&path, false).unwrap().index[90].clone();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[damaged_block.offset as usize + 9] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        for io_uring in [false, true] {
            let table = Arc::new(Table::open(&path, io_uring).unwrap());
            let error = TableEntries::from_key(table, b"")
                .find_map(Result::err)
                .expect("the damaged block is reported")
                .to_string();
            assert!(
                error.contains(&format!("at offset {}", damaged_block.offset)),
                "{error}"
            );
        }
    }

    #[test]
    fn a_block_claiming_a_huge_or_unknown_decompression_is_an_error() {
        let mut huge = vec![LZ4_BLOCK];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 8]);
        assert!(data_block_entries(&huge).is_err());
        assert!(data_block_entries(&[7, 1, 2, 3]).is_err());
        assert!(data_block_entries(&[]).is_err());
        let mut garbage = vec![LZ4_BLOCK];
        garbage.extend_from_slice(&100u32.to_le_bytes());
        garbage.extend_from_slice(&[0xff; 20]);
        assert!(data_block_entries(&garbage).is_err());
    }

    #[test]
    fn every_key_reads_back_and_missing_keys_are_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.sst");
        let entries = entries(5000);
        write(&path, &entries);
        let table = Table::open(&path, false).unwrap();
        let cache = BlockCache::new(1 << 20);
        assert!(table.index.len() > 10, "several blocks");
        assert_eq!(table.footer.max_sequence, 9);
        for (key, value) in &entries {
            assert_eq!(table.get(key, &cache).unwrap(), Some(value.clone()));
        }
        assert_eq!(table.get(b"key99999999", &cache).unwrap(), None);
        assert_eq!(table.get(b"a", &cache).unwrap(), None);
        let (hits, misses) = cache.counts();
        assert!(
            hits > 0 && misses as usize <= table.index.len(),
            "{hits} hits, {misses} misses"
        );
    }

    #[test]
    fn a_damaged_block_is_an_error_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2.sst");
        let entries = entries(2000);
        write(&path, &entries);
        let table = Table::open(&path, false).unwrap();
        let second = table.index[1].clone();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second.offset as usize + 5] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        let table = Table::open(&path, false).unwrap();
        let key = entries
            .iter()
            .map(|(key, _)| key)
            .find(|key| key.as_slice() > table.index[0].last_key.as_slice())
            .unwrap();
        let error = table
            .get(key, &BlockCache::new(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("corrupt data block")
                && error.contains(&format!("at offset {}", second.offset)),
            "{error}"
        );
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 3);
        std::fs::write(&path, &truncated).unwrap();
        assert!(Table::open(&path, false).is_err());
    }
}
