//! The block cache: a store's recently read table blocks, checked and kept in memory, so a
//! point read of a hot key costs neither a read from the file nor a checksum. Shards
//! (by block) each run the CLOCK policy under their own lock: a hit marks its block, and
//! eviction passes over marked blocks once, unmarking them, before dropping one. Scans read
//! around it, so one scan does not flush what point reads keep warm.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::collections::HashMap;

const SHARDS: usize = 16;

/// A block's place: the table's cache id and the block's index in it.
pub(crate) type BlockId = (u64, u32);

struct Cached {
    block: Arc<[u8]>,
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    blocks: HashMap<BlockId, Cached>,
    /// Blocks in insertion order: the CLOCK's hand goes round this.
    order: VecDeque<BlockId>,
    bytes: usize,
}

/// A byte-bounded cache of checked table blocks, shared by a store's tables.
pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BlockCache {
    /// A cache holding up to about `bytes` bytes of blocks (none for 0).
    pub(crate) fn new(bytes: usize) -> BlockCache {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_bytes: bytes / SHARDS,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: BlockId) -> &Mutex<Shard> {
        let mixed = (id.0 ^ u64::from(id.1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
        &self.shards[(mixed >> 60) as usize % SHARDS]
    }

    /// The cached block `id`, or the one `load` reads (kept if it fits).
    pub(crate) fn get_or_load<E>(
        &self,
        id: BlockId,
        load: impl FnOnce() -> Result<Arc<[u8]>, E>,
    ) -> Result<Arc<[u8]>, E> {
        if let Some(block) = self.lookup(id) {
            return Ok(block);
        }
        let block = load()?;
        self.insert(id, &block);
        Ok(block)
    }

    /// The cached block `id`, counted as a hit or a miss (nothing is counted without a cache).
    pub(crate) fn lookup(&self, id: BlockId) -> Option<Arc<[u8]>> {
        if self.shard_bytes == 0 {
            return None;
        }
        let mut shard = self
            .shard(id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = shard.blocks.get_mut(&id) {
            cached.referenced = true;
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(Arc::clone(&cached.block));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Keeps `block` as block `id`, if it fits.
    pub(crate) fn insert(&self, id: BlockId, block: &Arc<[u8]>) {
        if self.shard_bytes == 0 || block.len() > self.shard_bytes {
            return;
        }
        let mut shard = self
            .shard(id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !shard.blocks.contains_key(&id) {
            shard.bytes += block.len();
            shard.order.push_back(id);
            shard.blocks.insert(
                id,
                Cached {
                    block: Arc::clone(block),
                    referenced: false,
                },
            );
            while shard.bytes > self.shard_bytes {
                evict_one(&mut shard);
            }
        }
    }

    /// (hits, misses) so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Drops the first unmarked block the hand reaches, unmarking marked ones on the way.
fn evict_one(shard: &mut Shard) {
    while let Some(id) = shard.order.pop_front() {
        let Some(cached) = shard.blocks.get_mut(&id) else {
            continue;
        };
        if cached.referenced {
            cached.referenced = false;
            shard.order.push_back(id);
            continue;
        }
        if let Some(evicted) = shard.blocks.remove(&id) {
            shard.bytes -= evicted.block.len();
        }
        return;
    }
}

/// Cache ids of tables: unique within the process.
pub(crate) fn next_table_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8, len: usize) -> Result<Arc<[u8]>, ()> {
        Ok(vec![byte; len].into())
    }

    #[test]
    fn hits_skip_the_load_and_the_budget_holds_with_hot_blocks_kept() {
        let cache = BlockCache::new(SHARDS * 100);
        let first = cache.get_or_load((1, 0), || block(1, 40)).unwrap();
        let again = cache
            .get_or_load((1, 0), || -> Result<Arc<[u8]>, ()> {
                panic!("a hit must not load")
            })
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.counts(), (1, 1));
        // Fill one shard well past its 100 bytes while block (1, 0) stays hot.
        let hot_shard = cache.shard((1, 0)) as *const _;
        let mut inserted = 0;
        for index in 1..10_000u32 {
            let id = (2, index);
            if !std::ptr::eq(cache.shard(id), hot_shard) {
                continue;
            }
            cache.get_or_load(id, || block(2, 30)).unwrap();
            cache.get_or_load((1, 0), || block(9, 40)).unwrap();
            inserted += 1;
            if inserted == 20 {
                break;
            }
        }
        let shard = cache.shard((1, 0)).lock().unwrap();
        assert!(shard.bytes <= 100, "{} bytes", shard.bytes);
        assert_eq!(
            &shard.blocks[&(1, 0)].block[..],
            &[1u8; 40][..],
            "the hot block stayed"
        );
        drop(shard);
        let disabled = BlockCache::new(0);
        disabled.get_or_load((1, 0), || block(1, 1)).unwrap();
        assert_eq!(disabled.counts(), (0, 0));
    }
}
