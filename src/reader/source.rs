//! Where decoded blocks come from. The cache only needs "decode these blocks
//! of this volume as one batch", and a whole-volume read "decode it all, slab
//! by slab"; the neural codec or the plain block kinds answer both. Both read payloads through a `PayloadReader` (pread, never
//! the mapping), so a container truncated or rewritten under the mount gives
//! errors for the blocks read after the change, not a SIGBUS.

use crate::format::reader::PayloadReader;
use crate::format::{BlockId, Container, VolumeId};
use std::sync::Arc;

/// Why a build without libtorch cannot decode a container.
pub const NEEDS_TORCH: &str = "this container holds neural blocks, which need the full build (the `torch` feature); this build decodes constant, raw, lossless and wavelet blocks";

pub trait BlockSource: Send + Sync {
    /// Decodes one batch; each output is that block's clipped extent (f32, x fastest).
    fn decode_blocks(&self, vol: VolumeId, blocks: &[BlockId]) -> Vec<Result<Vec<f32>, String>>;
    /// Decodes a whole volume (f32, x fastest), a slab of blocks at a time;
    /// `progress(done, total)` in blocks. Bypasses the cache: a whole-volume read
    /// would only evict what other readers use.
    fn decode_volume(&self, vol: VolumeId, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<f32>, String>;
    /// Device description for the stats file.
    fn device(&self) -> String;
}

/// Constant, raw, lossless and wavelet blocks (no model needed).
pub struct SimpleSource {
    pub container: Arc<Container>,
    pub reader: Arc<PayloadReader>,
}

impl SimpleSource {
    pub fn new(container: Arc<Container>) -> Result<SimpleSource, String> {
        let reader = Arc::new(container.payload_reader().map_err(|e| e.to_string())?);
        Ok(SimpleSource { container, reader })
    }
}

impl BlockSource for SimpleSource {
    fn decode_blocks(&self, vol: VolumeId, blocks: &[BlockId]) -> Vec<Result<Vec<f32>, String>> {
        use rayon::prelude::*;
        let prep = || -> Result<_, String> { Ok((self.container.grid(vol).map_err(|e| e.to_string())?, crate::codec::store_norm(&self.container, vol)?)) };
        let (g, norm) = match prep() {
            Ok(p) => p,
            Err(e) => return blocks.iter().map(|_| Err(e.clone())).collect(),
        };
        blocks
            .par_iter()
            .map(|&b| {
                let r = self.reader.block(vol, b).map_err(|e| e.to_string())?;
                crate::codec::wavelet::decode_plain(r.kind, &r.payload, g.extent(b).1, norm).map_err(|e| format!("block {} of volume {}: {e}", b.0, vol.0))
            })
            .collect()
    }

    fn decode_volume(&self, vol: VolumeId, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<f32>, String> {
        if crate::codec::volume_needs_neural(&self.container, vol) {
            return Err(NEEDS_TORCH.into());
        }
        crate::codec::wavelet::decode_volume(&self.container, vol, progress)
    }

    fn device(&self) -> String {
        "cpu (pure Rust: no neural blocks)".into()
    }
}

/// The neural codec over a container.
#[cfg(feature = "torch")]
pub struct CodecSource {
    pub container: Arc<Container>,
    pub reader: Arc<PayloadReader>,
    pub codec: crate::codec::pipeline::Codec,
    /// Synthesis batch bound.
    pub batch: usize,
}

#[cfg(feature = "torch")]
impl BlockSource for CodecSource {
    fn decode_blocks(&self, vol: VolumeId, blocks: &[BlockId]) -> Vec<Result<Vec<f32>, String>> {
        let prep = || -> Result<_, String> {
            let grid = self.container.grid(vol).map_err(|e| e.to_string())?;
            let norm = crate::codec::store::norm_of(&self.container, vol)?;
            Ok((grid, norm))
        };
        match prep() {
            Ok((grid, norm)) => {
                let ids: Vec<usize> = blocks.iter().map(|b| b.0 as usize).collect();
                // Read the blocks and their latent ring up front: the decoder borrows from the store.
                let store = crate::codec::store::OwnedStore::read(&self.reader, vol, grid, &self.codec.blocks_needed(grid.dims, &ids));
                self.codec.decode_blocks(&store, grid.dims, norm, &ids, self.batch)
            }
            Err(e) => blocks.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn decode_volume(&self, vol: VolumeId, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<f32>, String> {
        crate::codec::store::decode_volume(Some(&self.codec), &self.container, vol, self.batch.max(1), progress)
    }

    fn device(&self) -> String {
        crate::codec::engine::describe(self.codec.device())
    }
}
