//! Where decoded blocks come from. The FUSE layer only needs "decode these
//! blocks of this volume as one batch"; the neural codec or the plain block
//! kinds answer it. Both read payloads through a `PayloadReader` (pread, never
//! the mapping), so a container truncated or rewritten under the mount gives
//! errors for the blocks read after the change, not a SIGBUS.

use crate::format::reader::PayloadReader;
use crate::format::{BlockId, Container, VolumeId};
use std::sync::Arc;

pub trait BlockSource: Send + Sync {
    /// Decodes one batch; each output is that block's clipped extent (f32, x fastest).
    fn decode_blocks(&self, vol: VolumeId, blocks: &[BlockId]) -> Vec<Result<Vec<f32>, String>>;
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

    fn device(&self) -> String {
        crate::codec::engine::describe(self.codec.device())
    }
}
