//! Volume-level encoding and batched block decoding.
//!
//! Encoding walks blocks in id order (x fastest), classifies each (constant,
//! lossless, neural), runs the analysis transform over batches of halo
//! windows, and entropy-codes the batch's blocks in parallel (rayon); results
//! reach the caller's sink in block order, so the container writer streams.
//!
//! Decoding takes any set of block ids: it entropy-decodes those blocks and
//! their neural neighbours (for the latent ring) in parallel, assembles latent
//! windows, and runs the synthesis transform in batches. A block's output
//! depends only on stored bits, never on which other blocks share its batch.

use super::blocks::{crop_core, extract_window, latent_window, Norm};
use super::bound::{BlockStats, BoundSpec};
use super::engine::Engine;
use super::hyper::{EntropyCodec, Latents};
use super::modelfile::ModelFile;
use crate::format::{BlockGrid, BlockId};
use crate::volume::Dims;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use tch::Device;

/// One encoded block, before container framing.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockData {
    /// Every voxel has this value (data units).
    Constant(f32),
    /// Exact samples of the clipped block extent (data units, x fastest).
    Lossless(Vec<f32>),
    /// Side-info and latent ANS streams, the level stream (the quantisation
    /// level of each latent cell, spec §6), and the error-bound residual
    /// stream (spec §6.2) when the block has one.
    Neural { z: Vec<u8>, y: Vec<u8>, levels: Vec<u8>, residual: Option<Vec<u8>> },
}

impl BlockData {
    /// The streams of a neural block, borrowed.
    pub fn streams(&self) -> Option<NeuralStreams<'_>> {
        match self {
            BlockData::Neural { z, y, levels, residual } => Some(NeuralStreams { z, y, levels, residual: residual.as_deref() }),
            _ => None,
        }
    }

    /// Payload bytes this block will occupy (before container framing).
    pub fn stored_len(&self) -> usize {
        match self {
            BlockData::Constant(_) => 4,
            BlockData::Lossless(v) => v.len() * 4,
            BlockData::Neural { z, y, levels, residual } => 4 + 4 * (3 + residual.is_some() as usize) + z.len() + y.len() + levels.len() + residual.as_ref().map_or(0, |r| r.len()),
        }
    }
}

/// A neural block's streams as stored.
#[derive(Clone, Copy, Debug)]
pub struct NeuralStreams<'a> {
    pub z: &'a [u8],
    pub y: &'a [u8],
    /// Stream 2 as stored (empty when absent: level 0).
    pub levels: &'a [u8],
    pub residual: Option<&'a [u8]>,
}

/// Access to one volume's stored blocks (implemented over a container).
pub trait BlockStore: Sync {
    /// The streams of a neural block; Ok(None) if the block is not neural.
    fn neural_streams(&self, block: usize) -> Result<Option<NeuralStreams<'_>>, String>;
    /// A non-neural block decoded to its clipped extent (data units, x fastest).
    fn simple_block(&self, block: usize) -> Result<Vec<f32>, String>;
}

#[derive(Clone, Copy, Debug)]
pub struct EncodeOptions {
    /// Windows per analysis batch.
    pub batch: usize,
    /// Store every block exactly (zstd) instead of with the network.
    pub lossless: bool,
    /// How importance sets each latent cell's quantisation step.
    pub steer: super::hyper::Steer,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { batch: 8, lossless: false, steer: super::hyper::Steer::Strict }
    }
}

/// Blocks held in memory (rate probes, the bounded encoder, tests).
pub struct MemStore<'a>(pub &'a HashMap<usize, BlockData>);

impl BlockStore for MemStore<'_> {
    fn neural_streams(&self, b: usize) -> Result<Option<NeuralStreams<'_>>, String> {
        Ok(self.0.get(&b).and_then(|d| d.streams()))
    }
    fn simple_block(&self, b: usize) -> Result<Vec<f32>, String> {
        Err(format!("block {b}: in-memory store serves neural blocks only"))
    }
}

/// The codec bound to a model and a device.
pub struct Codec {
    pub model: ModelFile,
    pub entropy: EntropyCodec,
    /// libtorch modules are not Sync; one batch runs at a time (it uses every
    /// core anyway), which also makes `Codec` shareable by the FUSE threads.
    engine: Mutex<Engine>,
}

impl Codec {
    pub fn load(model: ModelFile, device: Device) -> Result<Codec, String> {
        model.profile.validate()?;
        let entropy = EntropyCodec::from_model(&model).map_err(|e| e.to_string())?;
        let engine = Engine::load(&model, device)?;
        Ok(Codec { model, entropy, engine: Mutex::new(engine) })
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        // A panic inside libtorch poisons the lock; the engine holds no partial state.
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn device(&self) -> Device {
        self.engine().device
    }

    pub fn core(&self) -> usize {
        self.model.profile.core
    }

    /// Encodes a volume (data units) with importance `imp` (same length, [0,1]).
    /// `sink(block_id, data)` is called in block order.
    pub fn encode_volume<E>(&self, data: &[f32], dims: Dims, imp: &[f32], norm: Norm, opts: EncodeOptions, sink: impl FnMut(usize, BlockData) -> Result<(), E>) -> Result<(), E> {
        let all: Vec<usize> = (0..BlockGrid::cubic(dims, self.core()).len()).collect();
        self.encode_blocks(data, dims, imp, norm, opts, &all, sink)
    }

    /// Encodes the listed blocks only (rate control probes a subsample this way).
    #[allow(clippy::too_many_arguments, reason = "the settings of one encode pass, which `pack::Plan` checks above the codec")]
    pub fn encode_blocks<E>(&self, data: &[f32], dims: Dims, imp: &[f32], norm: Norm, opts: EncodeOptions, ids: &[usize], mut sink: impl FnMut(usize, BlockData) -> Result<(), E>) -> Result<(), E> {
        let p = &self.model.profile;
        let core = p.core;
        let g = BlockGrid::cubic(dims, core);
        let (lo, hi) = crate::volume::value_range(data);
        let tol = (hi - lo).abs() * 1e-6;
        let xn: Vec<f32> = data.iter().map(|&v| norm.forward(v)).collect();
        let w = p.window();
        let hv = p.halo_vox as isize;
        let mut pending: Vec<(usize, Option<BlockData>)> = Vec::new();
        let flush = |pending: &mut Vec<(usize, Option<BlockData>)>, sink: &mut dyn FnMut(usize, BlockData) -> Result<(), E>| -> Result<(), E> {
            let neural: Vec<usize> = pending.iter().filter(|(_, d)| d.is_none()).map(|(id, _)| *id).collect();
            let mut coded: HashMap<usize, BlockData> = HashMap::new();
            if !neural.is_empty() {
                let mut xs = vec![0f32; neural.len() * w * w * w];
                let mut is = vec![0f32; neural.len() * w * w * w];
                for (k, &id) in neural.iter().enumerate() {
                    let b = g.coords(BlockId(id as u64));
                    let start = [0, 1, 2].map(|a| (b[a] * core) as isize - hv);
                    extract_window(&xn, dims, start, w, &mut xs[k * w * w * w..(k + 1) * w * w * w]);
                    extract_window(imp, dims, start, w, &mut is[k * w * w * w..(k + 1) * w * w * w]);
                }
                let (y, z) = self.engine().analyse(&xs, &is, neural.len());
                let (ny, nz) = (p.y_symbols(), p.z_symbols());
                let entropy = &self.entropy; // tch handles are not Sync; the coder is
                let out: Vec<BlockData> = (0..neural.len())
                    .into_par_iter()
                    .map(|k| {
                        let levels = super::hyper::block_levels(&is[k * w * w * w..(k + 1) * w * w * w], p, opts.steer);
                        let (zb, yb, _, levels) = entropy.encode(&z[k * nz..(k + 1) * nz], &y[k * ny..(k + 1) * ny], &levels);
                        BlockData::Neural { z: zb, y: yb, levels: super::hyper::levels_to_bytes(&levels), residual: None }
                    })
                    .collect();
                coded.extend(neural.iter().copied().zip(out));
            }
            for (id, d) in pending.drain(..) {
                let d = d.unwrap_or_else(|| coded.remove(&id).expect("coded above"));
                sink(id, d)?;
            }
            Ok(())
        };
        for &id in ids {
            let (o, s) = g.extent(BlockId(id as u64));
            let mut block = vec![0f32; s[0] * s[1] * s[2]];
            super::blocks::gather(data, dims, o, s, &mut block);
            let (blo, bhi) = crate::volume::value_range(&block);
            let d = if opts.lossless {
                Some(BlockData::Lossless(block))
            } else if bhi - blo <= tol && block.iter().all(|v| v.is_finite()) {
                Some(BlockData::Constant(if blo == bhi { blo } else { 0.5 * (blo + bhi) }))
            } else {
                None
            };
            let is_neural = d.is_none();
            pending.push((id, d));
            let queued = pending.iter().filter(|(_, d)| d.is_none()).count();
            if (is_neural && queued >= opts.batch.max(1)) || pending.len() >= 4096 {
                flush(&mut pending, &mut sink)?;
            }
        }
        flush(&mut pending, &mut sink)
    }

    /// Like `encode_volume`, plus the error-bound residual stream (spec §6.2) for
    /// every neural block with bounded voxels. The prediction is the decoder's
    /// own output, so a block is finished once the blocks of its latent ring are
    /// coded: blocks are held for `latent_halo + 1` slabs, then emitted in order.
    /// `stats` accumulates bounded and corrected voxel counts.
    #[allow(clippy::too_many_arguments, reason = "the settings of one encode pass, which `pack::Plan` checks above the codec")]
    pub fn encode_volume_bounded<E: From<String>>(
        &self,
        data: &[f32],
        dims: Dims,
        imp: &[f32],
        norm: Norm,
        opts: EncodeOptions,
        bound: &BoundSpec,
        stats: &mut BlockStats,
        mut sink: impl FnMut(usize, BlockData) -> Result<(), E>,
    ) -> Result<(), E> {
        let core = self.core();
        let g = BlockGrid::cubic(dims, core);
        let counts = g.counts();
        let per_slab = counts[0] * counts[1];
        let ring = self.model.profile.latent_halo;
        let mut held: HashMap<usize, BlockData> = HashMap::new();
        let mut next = 0usize; // first slab not yet emitted
        let mut finish_slab = |held: &mut HashMap<usize, BlockData>, slab: usize, sink: &mut dyn FnMut(usize, BlockData) -> Result<(), E>| -> Result<(), E> {
            let ids: Vec<usize> = (slab * per_slab..(slab + 1) * per_slab).collect();
            let extent = |id: usize, src: &[f32]| {
                let (o, sz) = g.extent(BlockId(id as u64));
                let mut v = vec![0f32; sz[0] * sz[1] * sz[2]];
                super::blocks::gather(src, dims, o, sz, &mut v);
                (v, sz)
            };
            let bounded: Vec<(usize, Vec<f32>)> = ids
                .iter()
                .filter(|id| matches!(held.get(id), Some(BlockData::Neural { .. })))
                .map(|&id| (id, extent(id, imp).0.iter().map(|&i| bound.at(i)).collect::<Vec<f32>>()))
                .filter(|(_, b)| b.iter().any(|e| e.is_finite()))
                .collect();
            let want: Vec<usize> = bounded.iter().map(|(id, _)| *id).collect();
            let store = MemStore(held);
            let pred = self.decode_blocks(&store, dims, norm, &want, opts.batch.max(1) * 4);
            let coded: Vec<Result<(usize, Option<Vec<u8>>, BlockStats), String>> = bounded
                .par_iter()
                .zip(pred.into_par_iter())
                .map(|((id, b), p)| {
                    let p = p?;
                    let (x, sz) = extent(*id, data);
                    let (r, st) = super::bound::encode(&x, &p, b, sz).map_err(|e| format!("block {id}: {e}"))?;
                    Ok((*id, r, st))
                })
                .collect();
            for c in coded {
                let (id, r, st) = c.map_err(E::from)?;
                *stats = *stats + st;
                if let Some(BlockData::Neural { residual, .. }) = held.get_mut(&id) {
                    *residual = r;
                }
            }
            for id in ids {
                let d = held.get(&id).expect("every block of a finished slab is held").clone();
                sink(id, d)?;
            }
            // Slabs below the next one's ring are no longer needed as neighbours.
            if slab >= ring {
                for id in (slab - ring) * per_slab..(slab - ring + 1) * per_slab {
                    held.remove(&id);
                }
            }
            Ok(())
        };
        self.encode_volume(data, dims, imp, norm, opts, |id, d| -> Result<(), E> {
            held.insert(id, d);
            // Slab s is final once slab s + ring is complete.
            if (id + 1) % per_slab == 0 {
                let complete = id / per_slab;
                if complete >= ring {
                    finish_slab(&mut held, complete - ring, &mut sink)?;
                    next = complete - ring + 1;
                }
            }
            Ok(())
        })?;
        for slab in next..counts[2] {
            finish_slab(&mut held, slab, &mut sink)?;
        }
        Ok(())
    }

    /// The blocks whose stored latents decoding `blocks` reads: each block and
    /// the neighbours within its latent ring (sorted, deduplicated).
    pub fn blocks_needed(&self, dims: Dims, blocks: &[usize]) -> Vec<usize> {
        let g = BlockGrid::cubic(dims, self.core());
        let mut need: Vec<usize> = blocks.iter().flat_map(|&id| ring(g, id, self.model.profile.latent_halo)).collect();
        need.sort_unstable();
        need.dedup();
        need
    }

    /// Decodes `blocks` of one volume; each result is the clipped extent in data units.
    /// `batch` bounds how many blocks' latent windows are assembled at once
    /// (memory), not the result: synthesis runs on one block at a time, so a
    /// block's bytes never depend on which other blocks were decoded with it.
    /// A neural block fails if any neural neighbour in its latent ring fails
    /// (CRC or entropy decode): its synthesis would read that neighbour's latents.
    pub fn decode_blocks(&self, store: &dyn BlockStore, dims: Dims, norm: Norm, blocks: &[usize], batch: usize) -> Vec<Result<Vec<f32>, String>> {
        let p = &self.model.profile;
        let core = p.core;
        let g = BlockGrid::cubic(dims, core);
        let counts = g.counts();
        let need = self.blocks_needed(dims, blocks);
        let entropy = &self.entropy;
        let lat: HashMap<usize, Result<Option<(Latents, Option<&[u8]>)>, String>> = need
            .par_iter()
            .map(|&id| {
                let r = store.neural_streams(id).and_then(|s| match s {
                    Some(s) => entropy.decode(s.z, s.y, s.levels).map(|l| Some((l, s.residual))).map_err(|e| format!("block {id}: {e}")),
                    None => Ok(None),
                });
                (id, r)
            })
            .collect();
        let mut results: Vec<Option<Result<Vec<f32>, String>>> = vec![None; blocks.len()];
        let mut neural: Vec<usize> = Vec::new(); // indices into `blocks`
        for (k, &id) in blocks.iter().enumerate() {
            match lat.get(&id) {
                // An interpolation-mode residual sets every voxel itself: no synthesis needed.
                Some(Ok(Some((_, Some(r))))) if super::bound::interpolates(r) => {
                    let (_, s) = g.extent(BlockId(id as u64));
                    let mut v = vec![0f32; s[0] * s[1] * s[2]];
                    let applied = super::bound::apply(r, &mut v, s).map_err(|e| format!("block {id}: residual stream: {e}"));
                    results[k] = Some(applied.map(|_| v));
                }
                Some(Ok(Some(_))) => {
                    // A missing neighbour would silently change this block's bytes
                    // (latent_window would replicate the block's own edge instead).
                    let bad = ring(g, id, p.latent_halo).find_map(|n| match lat.get(&n) {
                        Some(Err(e)) => Some((n, e)),
                        _ => None,
                    });
                    match bad {
                        Some((n, e)) => results[k] = Some(Err(format!("block {id}: its latent neighbour block {n} is unavailable ({e})"))),
                        None => neural.push(k),
                    }
                }
                Some(Ok(None)) => results[k] = Some(store.simple_block(id)),
                Some(Err(e)) => results[k] = Some(Err(e.clone())),
                None => results[k] = Some(Err(format!("block {id} is outside the volume"))),
            }
        }
        let (m, l, lw) = (p.m, p.latent_core(), p.latent_window());
        let wlen = m * lw * lw * lw;
        for chunk in neural.chunks(batch.max(1)) {
            let mut win = vec![0f32; chunk.len() * wlen];
            for (j, &k) in chunk.iter().enumerate() {
                let b = g.coords(BlockId(blocks[k] as u64));
                let get = |nb: [usize; 3]| match lat.get(&(g.id(nb).0 as usize)) {
                    Some(Ok(Some((t, _)))) => Some(&t.y_hat[..]),
                    _ => None,
                };
                latent_window(b, counts, m, l, p.latent_halo, get, &mut win[j * wlen..(j + 1) * wlen]);
            }
            for (j, &k) in chunk.iter().enumerate() {
                // One block per synthesis call: libtorch picks kernels and splits
                // work by batch shape, so batching blocks together changed their
                // low bits (issue 22, item 7). A fixed shape gives fixed bytes.
                let out = self.engine().synthesise(&win[j * wlen..(j + 1) * wlen], 1);
                let (_, s) = g.extent(BlockId(blocks[k] as u64));
                let mut v = crop_core(&out, core, s);
                for x in &mut v {
                    *x = norm.inverse(*x);
                }
                let residual = match lat.get(&blocks[k]) {
                    Some(Ok(Some((_, r)))) => *r,
                    _ => None,
                };
                let applied = residual.map_or(Ok(()), |r| super::bound::apply(r, &mut v, s).map_err(|e| format!("block {}: residual stream: {e}", blocks[k])));
                results[k] = Some(applied.map(|_| v));
            }
        }
        results.into_iter().map(|r| r.expect("every block got a result")).collect()
    }

    /// Entropy-decodes one block's latents only (no synthesis): latent analysis uses this.
    pub fn latents(&self, z: &[u8], y: &[u8], levels: &[u8]) -> Result<Latents, String> {
        self.entropy.decode(z, y, levels).map_err(|e| e.to_string())
    }
}

/// Ids of the blocks within `halo` blocks of block `id` (itself included), inside the grid.
fn ring(g: BlockGrid, id: usize, halo: usize) -> impl Iterator<Item = usize> {
    let (b, counts) = (g.coords(BlockId(id as u64)), g.counts());
    let h = halo as isize;
    let r = -h..=h;
    r.clone().flat_map(move |dz| r.clone().flat_map(move |dy| (-h..=h).map(move |dx| [dx, dy, dz]))).filter_map(move |d| {
        let n = [0, 1, 2].map(|a| b[a] as isize + d[a]);
        (0..3).all(|a| n[a] >= 0 && (n[a] as usize) < counts[a]).then(|| g.id(n.map(|v| v as usize)).0 as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::net::untrained;
    use crate::codec::profile::Profile;

    struct Mem {
        blocks: Vec<BlockData>,
        dims: Dims,
        core: usize,
    }

    impl BlockStore for Mem {
        fn neural_streams(&self, b: usize) -> Result<Option<NeuralStreams<'_>>, String> {
            self.blocks.get(b).map(|d| d.streams()).ok_or_else(|| "no such block".into())
        }
        fn simple_block(&self, b: usize) -> Result<Vec<f32>, String> {
            let (_, s) = BlockGrid::cubic(self.dims, self.core).extent(BlockId(b as u64));
            match &self.blocks[b] {
                BlockData::Constant(v) => Ok(vec![*v; s[0] * s[1] * s[2]]),
                BlockData::Lossless(v) => Ok(v.clone()),
                _ => Err("neural".into()),
            }
        }
    }

    fn volume(dims: Dims) -> Vec<f32> {
        let mut v = Vec::new();
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    // A constant slab at the top exercises the constant kind.
                    v.push(if z >= 32 { 3.0 } else { ((x as f32) * 0.3).sin() * 5.0 + (y * z) as f32 * 0.01 });
                }
            }
        }
        v
    }

    #[test]
    fn decode_is_independent_of_batching_and_threads() {
        let codec = Codec::load(untrained(&Profile::tiny(), 7), Device::Cpu).unwrap();
        let dims = [37, 23, 40];
        let data = volume(dims);
        let imp: Vec<f32> = (0..data.len()).map(|i| (i % 7) as f32 / 7.0).collect();
        let (lo, hi) = crate::volume::value_range(&data);
        let norm = Norm::from_range(lo, hi);
        let mut blocks = Vec::new();
        codec
            .encode_volume(&data, dims, &imp, norm, EncodeOptions { batch: 3, ..Default::default() }, |id, d| {
                assert_eq!(id, blocks.len());
                blocks.push(d);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert!(blocks.iter().any(|b| matches!(b, BlockData::Constant(v) if *v == 3.0)));
        assert!(blocks.iter().any(|b| matches!(b, BlockData::Neural { .. })));
        let store = Mem { blocks, dims, core: 16 };
        let all: Vec<usize> = (0..store.blocks.len()).collect();
        let reference = codec.decode_blocks(&store, dims, norm, &all, 256);
        // Latent symbols: entropy decoding is pure Rust, so identical bits under any pool size.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for (id, b) in store.blocks.iter().enumerate() {
            if let BlockData::Neural { z, y, levels, .. } = b {
                let a = codec.latents(z, y, levels).unwrap();
                let c = one.install(|| codec.latents(z, y, levels).unwrap());
                assert_eq!(a.y_hat.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), c.y_hat.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "block {id}");
            }
        }
        for batch in [1, 7] {
            let mut order = all.clone();
            order.reverse();
            let got = one.install(|| codec.decode_blocks(&store, dims, norm, &order, batch));
            for (k, &id) in order.iter().enumerate() {
                let (a, b) = (reference[id].as_ref().unwrap(), got[k].as_ref().unwrap());
                assert_eq!(bits(a), bits(b), "block {id} batch {batch}: bytes differ");
            }
        }
        // One block at a time, in any order, with any companions: same bits.
        for &id in all.iter().rev() {
            let got = codec.decode_blocks(&store, dims, norm, &[id, (id * 7 + 3) % all.len()], 2);
            assert_eq!(bits(reference[id].as_ref().unwrap()), bits(got[0].as_ref().unwrap()), "block {id} decoded alone");
        }
        // The constant slab decodes exactly.
        for (id, b) in store.blocks.iter().enumerate() {
            if matches!(b, BlockData::Constant(_)) {
                assert!(reference[id].as_ref().unwrap().iter().all(|&v| v == 3.0));
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn corrupt_block_fails_its_latent_neighbours_and_nothing_else() {
        // 4x1x1 blocks: block 1's latent ring is blocks 0..=2; block 3 is outside it.
        let codec = Codec::load(untrained(&Profile::tiny(), 3), Device::Cpu).unwrap();
        let dims = [64, 16, 16];
        let data = volume(dims);
        let imp = vec![0.5f32; data.len()];
        let norm = Norm::from_range(-6.0, 6.0);
        let mut blocks = Vec::new();
        codec
            .encode_volume(&data, dims, &imp, norm, EncodeOptions::default(), |_, d| {
                blocks.push(d);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert!(blocks.iter().all(|b| matches!(b, BlockData::Neural { .. })));
        let clean = Mem { blocks: blocks.clone(), dims, core: 16 };
        let want = codec.decode_blocks(&clean, dims, norm, &[0, 1, 2, 3], 4);
        if let BlockData::Neural { y, .. } = &mut blocks[1] {
            y.truncate(y.len().saturating_sub(4));
            y.push(0x55);
        }
        let store = Mem { blocks, dims, core: 16 };
        for order in [[0, 1, 2, 3], [3, 2, 1, 0]] {
            let r = codec.decode_blocks(&store, dims, norm, &order, 4);
            for (k, &id) in order.iter().enumerate() {
                match id {
                    1 => assert!(r[k].is_err(), "the damaged block must fail"),
                    0 | 2 => {
                        let e = r[k].as_ref().expect_err("a neighbour of the damaged block must fail, not decode with a substitute");
                        assert!(e.contains(&format!("block {id}")) && e.contains("neighbour block 1"), "{e}");
                    }
                    _ => assert_eq!(bits(r[k].as_ref().unwrap()), bits(want[3].as_ref().unwrap()), "block 3 is outside the ring: unchanged"),
                }
            }
        }
    }

    #[test]
    fn latents_beyond_the_alphabet_move_their_cell_to_a_coarser_level() {
        use crate::codec::hyper::{levels_to_bytes, quant_step, EntropyCodec};
        let p = Profile::tiny();
        let codec = EntropyCodec::from_model(&untrained(&p, 5)).unwrap();
        let n = p.latent_core().pow(3);
        let z = vec![0i32; p.z_symbols()];
        // 300 is 1200 steps of 0.25: no symbol holds it at level -8. Only
        // cell 0 holds such latents (element i belongs to cell i % n).
        let y: Vec<f32> = (0..p.y_symbols()).map(|i| if i % n == 0 { 300.0 } else { 0.01 * (i % 7) as f32 }).collect();
        let (zs, ys, y_hat, levels) = codec.encode(&z, &y, &vec![-8; n]);
        assert!(levels[0] > -8, "cell 0 at level {}", levels[0]);
        assert!(levels[1..].iter().all(|&l| l == -8), "cells that fit keep their level: {levels:?}");
        for (i, (a, b)) in y.iter().zip(&y_hat).enumerate() {
            let step = quant_step(levels[i % n]);
            assert!((a - b).abs() <= 0.5 * step * 1.0001, "{a} coded as {b} at step {step}: clipped");
        }
        let l = codec.decode(&zs, &ys, &levels_to_bytes(&levels)).unwrap();
        assert_eq!(l.y_hat, y_hat);
        assert_eq!(l.levels, levels);
        assert!(l.in_steps().iter().enumerate().all(|(i, s)| *s == y_hat[i] / quant_step(levels[i % n])));
        // A level stream of the wrong length is an error for the block.
        assert!(codec.decode(&zs, &ys, &[0, 1, 2]).is_err());
    }
}
