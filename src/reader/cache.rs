//! Byte-bounded LRU of decoded blocks, shared by every reader of a container
//! (all FUSE worker threads of a mount).
//!
//! The cache lock is held only for lookups and inserts, never during a
//! decode, so reads of cached data never wait for someone else's decode.
//! Concurrent misses of the same block decode once: the first reader
//! registers the block as in flight, later ones wait on its slot.

use super::source::BlockSource;
use crate::format::{BlockId, VolumeId};
use lru::LruCache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

pub type Key = (u32, u64);
pub type Block = Arc<Vec<f32>>;
type Slot = Arc<(Mutex<Option<Result<Block, String>>>, Condvar)>;

#[derive(Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub blocks_decoded: AtomicU64,
    pub decode_errors: AtomicU64,
    pub decode_nanos: AtomicU64,
    pub prefetched: AtomicU64,
}

struct Lru {
    map: LruCache<Key, Block>,
    bytes: usize,
}

pub struct BlockCache {
    lru: Mutex<Lru>,
    inflight: Mutex<HashMap<Key, Slot>>,
    pub capacity: usize,
    pub stats: Stats,
    source: Arc<dyn BlockSource>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking decode must not take the whole mount down with a poisoned lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl BlockCache {
    pub fn new(source: Arc<dyn BlockSource>, capacity_bytes: usize) -> BlockCache {
        BlockCache { lru: Mutex::new(Lru { map: LruCache::unbounded(), bytes: 0 }), inflight: Mutex::new(HashMap::new()), capacity: capacity_bytes, stats: Stats::default(), source }
    }

    /// The decoder behind the cache (whole-volume reads go to it directly).
    pub fn source(&self) -> &Arc<dyn BlockSource> {
        &self.source
    }

    pub fn device(&self) -> String {
        self.source.device()
    }

    pub fn used_bytes(&self) -> usize {
        lock(&self.lru).bytes
    }

    pub fn contains(&self, vol: VolumeId, b: BlockId) -> bool {
        lock(&self.lru).map.contains(&(vol.0, b.0))
    }

    fn insert(&self, key: Key, block: Block) {
        let size = block.len() * 4;
        let mut l = lock(&self.lru);
        if let Some(old) = l.map.put(key, block) {
            l.bytes -= old.len() * 4;
        }
        l.bytes += size;
        while l.bytes > self.capacity && l.map.len() > 1 {
            match l.map.pop_lru() {
                Some((_, v)) => l.bytes -= v.len() * 4,
                None => break,
            }
        }
    }

    /// Returns the blocks in order; missing ones decode as one batch.
    pub fn get(&self, vol: VolumeId, blocks: &[BlockId], prefetch: bool) -> Vec<Result<Block, String>> {
        let mut out: Vec<Option<Result<Block, String>>> = vec![None; blocks.len()];
        let mut mine: Vec<(usize, Slot)> = Vec::new();
        let mut theirs: Vec<(usize, Slot)> = Vec::new();
        {
            let mut l = lock(&self.lru);
            let mut inflight = lock(&self.inflight);
            for (i, b) in blocks.iter().enumerate() {
                let key = (vol.0, b.0);
                if let Some(v) = l.map.get(&key) {
                    out[i] = Some(Ok(v.clone()));
                    if !prefetch {
                        self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    }
                } else if let Some(s) = inflight.get(&key) {
                    theirs.push((i, s.clone()));
                } else {
                    let s: Slot = Arc::new((Mutex::new(None), Condvar::new()));
                    inflight.insert(key, s.clone());
                    mine.push((i, s));
                }
            }
        }
        if !mine.is_empty() {
            if prefetch {
                self.stats.prefetched.fetch_add(mine.len() as u64, Ordering::Relaxed);
            } else {
                self.stats.misses.fetch_add(mine.len() as u64, Ordering::Relaxed);
            }
            let ids: Vec<BlockId> = mine.iter().map(|(i, _)| blocks[*i]).collect();
            let t = Instant::now();
            let res = self.source.decode_blocks(vol, &ids);
            self.stats.decode_nanos.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            for ((i, slot), r) in mine.iter().zip(res) {
                let key = (vol.0, blocks[*i].0);
                let r = r.map(Arc::new);
                match &r {
                    Ok(b) => {
                        self.stats.blocks_decoded.fetch_add(1, Ordering::Relaxed);
                        self.insert(key, b.clone());
                    }
                    Err(e) => {
                        self.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("idlat: volume {} block {}: {e}", vol.0, blocks[*i].0);
                    }
                }
                *lock(&slot.0) = Some(r.clone());
                slot.1.notify_all();
                lock(&self.inflight).remove(&key);
                out[*i] = Some(r);
            }
        }
        for (i, slot) in theirs {
            let mut g = lock(&slot.0);
            while g.is_none() {
                g = slot.1.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            out[i] = g.clone();
            if !prefetch {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
            }
        }
        out.into_iter().map(|r| r.expect("every block resolved")).collect()
    }
}
