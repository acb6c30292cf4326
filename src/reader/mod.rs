//! Reading containers as a library: open a `.idl` file, pick a volume, read any
//! region of it. Blocks decode lazily, only those a read touches, in batches
//! through a byte-bounded LRU cache shared by every reader of the container
//! (the FUSE mount serves its files from the same cache). Whole-volume reads
//! decode slab by slab and bypass the cache. Decoded values do not depend on
//! the read order, the region shape or the batch size.
//!
//! ```
//! use idlat::pack::{Inputs, Plan, Settings, Sink, Target};
//! use idlat::sample::{generate, Kind};
//!
//! # let mut vol = generate(Kind::Vortex, [48, 40, 32], 1, 0);
//! # vol.info.name = "vortex".into();
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("vortex.idl");
//! # Plan::new(Settings { target: Some(Target::Ratio(50.0)), ..Settings::default() })?.pack(Inputs::from(vec![vol]), Sink::from(path.as_path()))?;
//! let c = idlat::Container::open(&path)?;
//! let v = c.volume("vortex")?;
//! let [nx, ny, nz] = v.info().dims;
//! // A 16³ box at the centre: only the blocks it touches are decoded.
//! let part = v.read_region([nx / 2 - 8, ny / 2 - 8, nz / 2 - 8], [16, 16, 16])?;
//! assert_eq!(part.info.dims, [16, 16, 16]);
//! // The same voxels as in the whole volume, bit for bit.
//! let all = v.read_all(|_, _| {})?;
//! let at = |x: usize, y: usize, z: usize| all.data[(z * ny + y) * nx + x];
//! assert_eq!(part.data[0].to_bits(), at(nx / 2 - 8, ny / 2 - 8, nz / 2 - 8).to_bits());
//! assert_eq!(part.data[16 * 16 * 16 - 1].to_bits(), at(nx / 2 + 7, ny / 2 + 7, nz / 2 + 7).to_bits());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cache;
pub mod source;

use crate::codec::DeviceChoice;
use crate::format::{BlockGrid, BlockId, FormatError, VolumeId, VolumeMeta};
use crate::volume::{Volume, VolumeInfo};
use cache::BlockCache;
use source::BlockSource;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most blocks one decode call and one piece of a read hold at once: a read
/// that touches more proceeds in pieces of this many, so its buffers are
/// bounded whatever the request size.
pub const PIECE_BLOCKS: usize = 16;

/// Why a read failed. Each variant names the volume, block or region at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("no volume '{0}' in this container")]
    NoVolume(String),
    #[error("region at {origin:?} of size {size:?} is not inside volume '{volume}' ({dims:?})")]
    OutOfBounds { volume: String, origin: [usize; 3], size: [usize; 3], dims: [usize; 3] },
    #[error("volume '{volume}', block {block}: {msg}")]
    Block { volume: String, block: u64, msg: String },
    #[error("volume '{volume}': {msg}")]
    Decode { volume: String, msg: String },
    /// The model, the device or the build cannot decode this container.
    #[error("{0}")]
    Codec(String),
}

/// How a container is opened for reading.
#[derive(Clone, Debug)]
pub struct Options {
    /// Model file for neural blocks, when the container's model is neither embedded nor installed.
    pub model: Option<PathBuf>,
    /// Where neural blocks decode (other kinds always decode on the CPU, in pure Rust).
    pub device: DeviceChoice,
    /// Blocks per synthesis batch of the neural codec (memory, not values, depends on it).
    pub batch: usize,
    /// Bytes of decoded blocks the cache keeps.
    pub cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { model: None, device: DeviceChoice::Auto, batch: 16, cache_bytes: 256 << 20 }
    }
}

/// An open container with its decoder and block cache.
pub struct Container {
    file: Arc<crate::format::Container>,
    cache: Arc<BlockCache>,
}

impl Container {
    /// Opens `path` with the default options. Every structure is checked on
    /// open; block checksums are checked as blocks are read.
    pub fn open(path: impl AsRef<Path>) -> Result<Container, ReadError> {
        Container::open_with(path, &Options::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: &Options) -> Result<Container, ReadError> {
        let file = Arc::new(crate::format::Container::open(path.as_ref())?);
        let source = decoder(&file, opts)?;
        Ok(Container::with_source(file, source, opts.cache_bytes))
    }

    /// A reader over an opened container and a decoder of its blocks (the mount
    /// builds its decoder itself, to report the device before it detaches).
    pub fn with_source(file: Arc<crate::format::Container>, source: Arc<dyn BlockSource>, cache_bytes: usize) -> Container {
        Container { file, cache: Arc::new(BlockCache::new(source, cache_bytes)) }
    }

    /// The container's structures: metadata, index, raw block access.
    pub fn file(&self) -> &crate::format::Container {
        &self.file
    }

    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Volume names, in container order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.file.volumes().map(|(_, m)| m.info.name.as_str())
    }

    pub fn volume(&self, name: &str) -> Result<VolumeReader<'_>, ReadError> {
        let id = self.file.find_volume(name).ok_or_else(|| ReadError::NoVolume(name.to_string()))?;
        self.volume_by_id(id)
    }

    pub fn volume_by_id(&self, id: VolumeId) -> Result<VolumeReader<'_>, ReadError> {
        let meta = self.file.volume(id)?;
        Ok(VolumeReader { c: self, id, meta, grid: BlockGrid::new(meta.info.dims, meta.block) })
    }
}

/// The decoder a container needs: the neural codec when a block is neural
/// (and this build has it), else the pure-Rust decoder of the other kinds.
pub fn decoder(file: &Arc<crate::format::Container>, opts: &Options) -> Result<Arc<dyn BlockSource>, ReadError> {
    let simple = || -> Result<Arc<dyn BlockSource>, ReadError> { Ok(Arc::new(source::SimpleSource::new(file.clone()).map_err(ReadError::Codec)?)) };
    #[cfg(feature = "torch")]
    if crate::codec::needs_neural(file) {
        let mf = crate::codec::store::resolve_model(file, opts.model.as_deref()).map_err(ReadError::Codec)?;
        let device = crate::codec::engine::select_device(opts.device).map_err(ReadError::Codec)?;
        let codec = crate::codec::pipeline::Codec::load(mf, device).map_err(ReadError::Codec)?;
        let reader = Arc::new(file.payload_reader()?);
        return Ok(Arc::new(source::CodecSource { container: file.clone(), reader, codec, batch: opts.batch.max(1) }));
    }
    // Without libtorch, volumes of plain blocks still read; a neural block's read says why not.
    let _ = opts;
    simple()
}

/// One volume of an open container.
pub struct VolumeReader<'c> {
    c: &'c Container,
    id: VolumeId,
    meta: &'c VolumeMeta,
    grid: BlockGrid,
}

impl VolumeReader<'_> {
    pub fn id(&self) -> VolumeId {
        self.id
    }

    pub fn info(&self) -> &VolumeInfo {
        &self.meta.info
    }

    pub fn meta(&self) -> &VolumeMeta {
        self.meta
    }

    pub fn grid(&self) -> BlockGrid {
        self.grid
    }

    /// The whole volume, decoded slab by slab of blocks (not through the cache);
    /// `progress(done, total)` in blocks.
    pub fn read_all(&self, mut progress: impl FnMut(usize, usize)) -> Result<Volume, ReadError> {
        let data = self.c.cache.source().decode_volume(self.id, &mut progress).map_err(|msg| self.decode_error(msg))?;
        Ok(Volume::new(self.meta.info.clone(), data))
    }

    /// The box `origin`..`origin + size` (voxels, x y z) as a volume of its own,
    /// with the world origin of its first voxel. Decodes only the blocks it touches.
    pub fn read_region(&self, origin: [usize; 3], size: [usize; 3]) -> Result<Volume, ReadError> {
        let dims = self.meta.info.dims;
        if (0..3).any(|a| size[a] == 0 || origin[a].checked_add(size[a]).is_none_or(|e| e > dims[a])) {
            return Err(ReadError::OutOfBounds { volume: self.meta.info.name.clone(), origin, size, dims });
        }
        let g = self.grid;
        let first = [0, 1, 2].map(|a| origin[a] / g.block[a]);
        let last = [0, 1, 2].map(|a| (origin[a] + size[a] - 1) / g.block[a]);
        let mut ids = Vec::new();
        for bz in first[2]..=last[2] {
            for by in first[1]..=last[1] {
                for bx in first[0]..=last[0] {
                    ids.push(g.id([bx, by, bz]));
                }
            }
        }
        let mut out = vec![0f32; size[0] * size[1] * size[2]];
        for piece in ids.chunks(PIECE_BLOCKS) {
            for (&id, block) in piece.iter().zip(self.read_blocks(piece)?) {
                let (bo, bs) = g.extent(id);
                // The overlap of block and region, copied row by row.
                let lo = [0, 1, 2].map(|a| bo[a].max(origin[a]));
                let hi = [0, 1, 2].map(|a| (bo[a] + bs[a]).min(origin[a] + size[a]));
                let run = hi[0] - lo[0];
                for z in lo[2]..hi[2] {
                    for y in lo[1]..hi[1] {
                        let src = ((z - bo[2]) * bs[1] + (y - bo[1])) * bs[0] + (lo[0] - bo[0]);
                        let dst = ((z - origin[2]) * size[1] + (y - origin[1])) * size[0] + (lo[0] - origin[0]);
                        out[dst..dst + run].copy_from_slice(&block[src..src + run]);
                    }
                }
            }
        }
        let mut info = self.meta.info.clone();
        info.dims = size;
        for a in 0..3 {
            info.origin[a] += origin[a] as f64 * info.spacing[a];
        }
        Ok(Volume::new(info, out))
    }

    /// Voxels `first..end` in file order (x fastest).
    pub fn read_span(&self, first: u64, end: u64) -> Result<Vec<f32>, ReadError> {
        let mut out = Vec::with_capacity(end.saturating_sub(first).min(1 << 28) as usize);
        self.visit_span(first, end, |run| out.extend_from_slice(run))?;
        Ok(out)
    }

    /// Hands `f` the voxels `first..end` in file order, one x-run (one block's
    /// part of a row) at a time, as the mount serves a byte range of the raw
    /// file without another copy; blocks are fetched in pieces of at most
    /// `PIECE_BLOCKS`.
    pub fn visit_span(&self, first: u64, end: u64, mut f: impl FnMut(&[f32])) -> Result<(), ReadError> {
        let g = self.grid;
        let [nx, ny, nz] = g.dims;
        let total = (nx * ny * nz) as u64;
        if first > end || end > total {
            return Err(ReadError::OutOfBounds { volume: self.meta.info.name.clone(), origin: [first as usize, 0, 0], size: [(end.saturating_sub(first)) as usize, 1, 1], dims: g.dims });
        }
        // (block, offset in the block, voxels) per run, in file order.
        let mut runs: Vec<(BlockId, usize, usize)> = Vec::new();
        let mut v = first;
        while v < end {
            let (x, y, z) = ((v % nx as u64) as usize, ((v / nx as u64) % ny as u64) as usize, (v / (nx * ny) as u64) as usize);
            let id = g.id([x / g.block[0], y / g.block[1], z / g.block[2]]);
            let (o, s) = g.extent(id);
            let run = ((o[0] + s[0] - x) as u64).min(end - v) as usize;
            runs.push((id, ((z - o[2]) * s[1] + (y - o[1])) * s[0] + (x - o[0]), run));
            v += run as u64;
        }
        let mut at = 0;
        while at < runs.len() {
            let mut ids: Vec<BlockId> = Vec::new();
            let mut stop = at;
            while stop < runs.len() {
                let id = runs[stop].0;
                if !ids.contains(&id) {
                    if ids.len() == PIECE_BLOCKS {
                        break;
                    }
                    ids.push(id);
                }
                stop += 1;
            }
            let map: HashMap<u64, cache::Block> = ids.iter().map(|b| b.0).zip(self.read_blocks(&ids)?).collect();
            for &(id, o, n) in &runs[at..stop] {
                f(&map[&id.0][o..o + n]);
            }
            at = stop;
        }
        Ok(())
    }

    /// Decoded blocks (each its clipped extent, x fastest) through the cache;
    /// missing ones decode as one batch. The first failure names its block.
    pub fn read_blocks(&self, ids: &[BlockId]) -> Result<Vec<cache::Block>, ReadError> {
        self.c.cache.get(self.id, ids, false).into_iter().zip(ids).map(|(r, b)| r.map_err(|msg| ReadError::Block { volume: self.meta.info.name.clone(), block: b.0, msg })).collect()
    }

    fn decode_error(&self, msg: String) -> ReadError {
        ReadError::Decode { volume: self.meta.info.name.clone(), msg }
    }
}
