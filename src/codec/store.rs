//! The codec over a container: resolving the model a container names,
//! serving blocks to the decoder, and whole-volume decoding.

use super::blocks::Norm;
use super::modelfile::{find_by_hash, ModelFile};
use super::pipeline::{BlockStore, Codec, NeuralStreams};
use crate::format::reader::{OwnedBlock, PayloadReader};
use crate::format::{grid, BlockGrid, BlockId, BlockKind, Container, NeuralPayload, VolumeId};
use std::collections::HashMap;
use std::path::Path;

/// One volume of a container as a `BlockStore`.
pub struct ContainerStore<'a> {
    pub container: &'a Container,
    pub volume: VolumeId,
    pub grid: BlockGrid,
}

impl<'a> ContainerStore<'a> {
    pub fn new(container: &'a Container, volume: VolumeId) -> Result<Self, String> {
        let grid = container.grid(volume).map_err(|e| e.to_string())?;
        Ok(ContainerStore { container, volume, grid })
    }
}

impl BlockStore for ContainerStore<'_> {
    fn neural_streams(&self, b: usize) -> Result<Option<NeuralStreams<'_>>, String> {
        let r = self.container.block(self.volume, BlockId(b as u64)).map_err(|e| e.to_string())?;
        if r.kind != BlockKind::Neural {
            return Ok(None);
        }
        let p = NeuralPayload::parse(r.payload).map_err(|e| format!("block {b} of volume {}: {e}", self.volume.0))?;
        // Stream 2 holds the quantisation levels (parsed by the entropy decoder).
        let levels = p.streams.get(2).copied().unwrap_or(&[]);
        // Stream 3 (format 1.1) is the error-bound residual stream.
        Ok(Some(NeuralStreams { z: p.streams[0], y: p.streams[1], levels, residual: p.streams.get(3).copied() }))
    }

    fn simple_block(&self, b: usize) -> Result<Vec<f32>, String> {
        super::wavelet::decode_block(self.container, self.volume, BlockId(b as u64))
    }
}

/// Blocks of one volume read up front through a `PayloadReader` (pread, owned
/// bytes): the mount's store, which must never touch the file's mapping. A
/// block that could not be read is an error for whoever asks for it.
pub struct OwnedStore {
    pub volume: VolumeId,
    pub grid: BlockGrid,
    blocks: HashMap<usize, Result<OwnedBlock, String>>,
}

impl OwnedStore {
    pub fn read(reader: &PayloadReader, volume: VolumeId, grid: BlockGrid, ids: &[usize]) -> OwnedStore {
        let blocks = ids.iter().map(|&b| (b, reader.block(volume, BlockId(b as u64)).map_err(|e| e.to_string()))).collect();
        OwnedStore { volume, grid, blocks }
    }

    fn get(&self, b: usize) -> Result<&OwnedBlock, String> {
        match self.blocks.get(&b) {
            Some(r) => r.as_ref().map_err(|e| e.clone()),
            None => Err(format!("block {b} of volume {} was not read", self.volume.0)),
        }
    }
}

impl BlockStore for OwnedStore {
    fn neural_streams(&self, b: usize) -> Result<Option<NeuralStreams<'_>>, String> {
        let r = self.get(b)?;
        if r.kind != BlockKind::Neural {
            return Ok(None);
        }
        let p = NeuralPayload::parse(&r.payload).map_err(|e| format!("block {b} of volume {}: {e}", self.volume.0))?;
        let levels = p.streams.get(2).copied().unwrap_or(&[]);
        Ok(Some(NeuralStreams { z: p.streams[0], y: p.streams[1], levels, residual: p.streams.get(3).copied() }))
    }

    fn simple_block(&self, b: usize) -> Result<Vec<f32>, String> {
        let id = BlockId(b as u64);
        let r = self.get(b)?;
        crate::format::block::decode_simple(r.kind, &r.payload, self.grid.voxels(id)).map_err(|e| format!("block {b} of volume {}: {e}", self.volume.0))
    }
}

/// Does any block of the container need the neural codec?
pub fn needs_codec(c: &Container) -> bool {
    super::needs_neural(c)
}

/// The model a container was packed with: `explicit` if given (its hash must
/// match), else the embedded copy, else a file with that hash in the model dirs.
pub fn resolve_model(c: &Container, explicit: Option<&Path>) -> Result<ModelFile, String> {
    let want = &c.meta().model.hash;
    let mf = if let Some(p) = explicit {
        ModelFile::load(p).map_err(|e| e.to_string())?
    } else if let Some(bytes) = c.embedded_model().map_err(|e| e.to_string())? {
        ModelFile::from_bytes(&bytes).map_err(|e| format!("embedded model: {e}"))?
    } else {
        let (_, bytes) = find_by_hash(want)
            .ok_or_else(|| format!("the container references model {want} which is neither embedded nor found in the model directories (pass --model PATH or set IDLAT_MODEL_PATH)"))?;
        ModelFile::from_bytes(&bytes).map_err(|e| e.to_string())?
    };
    if &mf.hash != want {
        return Err(format!("model hash {} does not match the container's {want}", mf.hash));
    }
    Ok(mf)
}

/// Volume normalisation as the codec uses it.
pub fn norm_of(c: &Container, v: VolumeId) -> Result<Norm, String> {
    super::store_norm(c, v)
}

/// Decodes a whole volume, slab by slab of blocks; `progress(done, total)`.
/// Without a codec, only non-neural blocks can be decoded.
pub fn decode_volume(codec: Option<&Codec>, c: &Container, v: VolumeId, batch: usize, mut progress: impl FnMut(usize, usize)) -> Result<Vec<f32>, String> {
    let store = ContainerStore::new(c, v)?;
    let g = store.grid;
    let dims = g.dims;
    let norm = norm_of(c, v)?;
    let mut out = vec![0f32; dims[0] * dims[1] * dims[2]];
    let counts = g.counts();
    let per_slab = counts[0] * counts[1];
    for bz in 0..counts[2] {
        let ids: Vec<usize> = (bz * per_slab..(bz + 1) * per_slab).collect();
        let res: Vec<Result<Vec<f32>, String>> = match codec {
            Some(codec) => codec.decode_blocks(&store, dims, norm, &ids, batch),
            None => ids.iter().map(|&b| store.simple_block(b)).collect(),
        };
        for (&id, r) in ids.iter().zip(res) {
            let block = r?;
            let (o, s) = g.extent(BlockId(id as u64));
            grid::scatter(&mut out, dims, o, s, &block);
        }
        progress((bz + 1) * per_slab, g.len());
    }
    Ok(out)
}
