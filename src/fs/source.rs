//! Where decoded blocks come from. The FUSE layer only needs "decode these
//! blocks of this volume as one batch"; the neural codec or the plain block
//! kinds answer it.

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
}

impl BlockSource for SimpleSource {
    fn decode_blocks(&self, vol: VolumeId, blocks: &[BlockId]) -> Vec<Result<Vec<f32>, String>> {
        use rayon::prelude::*;
        blocks.par_iter().map(|&b| crate::codec::wavelet::decode_block(&self.container, vol, b)).collect()
    }

    fn device(&self) -> String {
        "cpu (pure Rust: no neural blocks)".into()
    }
}

/// The neural codec over a container.
#[cfg(feature = "torch")]
pub struct CodecSource {
    pub container: Arc<Container>,
    pub codec: crate::codec::pipeline::Codec,
    /// Synthesis batch bound.
    pub batch: usize,
}

#[cfg(feature = "torch")]
impl BlockSource for CodecSource {
    fn decode_blocks(&self, vol: VolumeId, blocks: &[BlockId]) -> Vec<Result<Vec<f32>, String>> {
        let prep = || -> Result<_, String> {
            let store = crate::codec::store::ContainerStore::new(&self.container, vol)?;
            let norm = crate::codec::store::norm_of(&self.container, vol)?;
            Ok((store, norm))
        };
        match prep() {
            Ok((store, norm)) => {
                let ids: Vec<usize> = blocks.iter().map(|b| b.0 as usize).collect();
                self.codec.decode_blocks(&store, store.grid.dims, norm, &ids, self.batch)
            }
            Err(e) => blocks.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn device(&self) -> String {
        crate::codec::engine::describe(self.codec.device())
    }
}
