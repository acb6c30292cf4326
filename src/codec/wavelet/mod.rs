//! The `wavelet` profile: importance-driven quantisation of a multi-level
//! CDF 9/7 transform, coded per tile with adaptive binary contexts (pure Rust,
//! no libtorch; spec/FORMAT.md §6.3).
//!
//! Every tile (block of the container grid) is transformed and coded on its
//! own, so the mount decodes only what a read touches. Each tile keeps the
//! cheapest of three decompositions (`lift::Layout`: Mallat, packet, tensor;
//! `prepare`). Rate control picks one base step for the whole
//! volume: with every coefficient's step set to `Δ0 / sqrt(importance)`, a
//! common `Δ0` puts every tile at the same slope of its rate-distortion curve
//! (the Lagrangian optimum for importance-weighted MSE at high rate), so
//! searching `Δ0` alone is searching the Lagrangian.

pub mod bits;
pub mod lift;
pub mod stream;
pub mod tile;

use crate::codec::blocks::Norm;
use crate::codec::bound::{self, BlockStats, BoundSpec};
use crate::format::{block, grid, BlockGrid, BlockId, BlockKind, Container, StreamTable, VolumeId};
pub use lift::Layout;
use rayon::prelude::*;

/// Default tile edge (voxels), SPERR's chunk edge too. Measured with
/// `tools/bench_peers.py`: 128³ tiles beat 64³ by 0.4 to 2 dB at equal size on every
/// sample (tile faces cost bits: symmetric extension makes their detail coefficients
/// large), and 256³ beat 128³ by another 1.2-1.7 dB on the smooth isabel sample and
/// 0.4 dB on a 256x128x128 vortex. Slices keep a tile on several cores; the price is
/// the mount's decode granularity, up to 64 MiB of f32 per tile (`--tile 128`: 8 MiB).
pub const DEFAULT_TILE: usize = 256;
/// Default base step (normalised units) when no target is given: about 50 dB PSNR.
pub const DEFAULT_STEP: f32 = 1.0 / 256.0;

/// One tile ready for (re)quantisation.
pub enum Prepared {
    /// Every voxel has this value (data units).
    Constant(f32),
    /// Non-finite values: stored exactly.
    Exact(Vec<f32>),
    Coded {
        t: tile::Transformed,
        orig: Vec<f32>,
        bound: Option<Vec<f32>>,
    },
}

/// Transforms every tile of a volume (parallel over tiles), in `layout` or (None)
/// the best of the three per tile.
pub fn prepare(data: &[f32], imp: &[f32], g: &BlockGrid, norm: Norm, bound: Option<(&BoundSpec, &[f32])>, layout: Option<Layout>) -> Vec<Prepared> {
    prepare_part(&Part { data, imp, region: crate::volume::Region::whole(g.dims), ids: 0..g.len() }, g, norm, bound, layout)
}

/// The tiles one rank (or one step of a streaming pack) prepares: `ids` of the grid,
/// from a region of the volume that covers them (a z-slab, a tile, the volume);
/// `imp` (and a bound's map) over the same region.
pub struct Part<'a> {
    pub data: &'a [f32],
    pub imp: &'a [f32],
    pub region: crate::volume::Region,
    pub ids: std::ops::Range<usize>,
}

impl Part<'_> {
    /// Tile `id`'s samples of `src`, a field over the same region as `data` (the
    /// data, the importance or a bound's map).
    pub fn tile(&self, g: &BlockGrid, id: usize, src: &[f32]) -> Vec<f32> {
        let (o, sz) = g.extent(BlockId(id as u64));
        let r = &self.region;
        assert!(src.len() == r.len() && (0..3).all(|a| o[a] >= r.origin[a] && o[a] + sz[a] <= r.origin[a] + r.size[a]), "tile {id} outside the region");
        grid::cut(src, r.size, crate::volume::Region { origin: [0, 1, 2].map(|a| o[a] - r.origin[a]), size: sz })
    }
}

/// `prepare` for the tiles of a `Part`, in id order.
pub fn prepare_part(part: &Part, g: &BlockGrid, norm: Norm, bound: Option<(&BoundSpec, &[f32])>, layout: Option<Layout>) -> Vec<Prepared> {
    part.ids
        .clone()
        .into_par_iter()
        .map(|id| {
            let sz = g.extent(BlockId(id as u64)).1;
            let x = part.tile(g, id, part.data);
            if x.iter().any(|v| !v.is_finite()) {
                return Prepared::Exact(x);
            }
            if x.iter().all(|&v| v.to_bits() == x[0].to_bits()) {
                return Prepared::Constant(x[0]);
            }
            let w = part.tile(g, id, part.imp);
            let bound = bound.map(|(b, bimp)| part.tile(g, id, bimp).iter().map(|&i| b.at(i)).collect());
            let xn: Vec<f32> = x.iter().map(|&v| norm.forward(v)).collect();
            let cells = tile::cell_levels(&w, sz);
            let t = match layout {
                Some(l) => tile::transform(&xn, sz, cells, l),
                // Best basis per tile: the layout whose detail coefficients are sparsest
                // in units of their steps (step-free, so rate control can come after).
                // In parallel too: a volume may have fewer tiles than cores. Re-checking
                // close rivals by their exact rate-distortion cost at the target's step
                // (as earlier versions did) changed no tile of the benchmark samples at the default
                // tile and moved 64³ and 128³ tiles by -0.17 to +0.15 dB (mean about 0),
                // for a quarter of the pack time of a volume with rivals.
                None => {
                    let all: Vec<(f64, tile::Transformed)> = Layout::ALL
                        .par_iter()
                        .map(|&l| {
                            let t = tile::transform(&xn, sz, cells.clone(), l);
                            (tile::l1_cost(&t), t)
                        })
                        .collect();
                    // The first of equal costs: the same choice on any thread count.
                    let best = all.iter().map(|a| a.0).fold(f64::INFINITY, f64::min);
                    all.into_iter().find(|a| a.0 == best).map(|a| a.1).expect("three layouts")
                }
            };
            Prepared::Coded { t, orig: x, bound }
        })
        .collect()
}

/// A coded tile: its block kind and payload, plus error-bound statistics.
pub struct Coded {
    pub kind: BlockKind,
    pub payload: Vec<u8>,
    pub stats: BlockStats,
}

/// Codes one prepared tile at base step `step0`. A tile whose stream would not be
/// smaller than its raw samples is stored losslessly (never worse than 1×).
pub fn code(p: &Prepared, step0: f32, norm: Norm) -> Result<Coded, String> {
    let simple = |kind, payload| Ok(Coded { kind, payload, stats: BlockStats::default() });
    match p {
        Prepared::Constant(v) => simple(BlockKind::Constant, v.to_le_bytes().to_vec()),
        Prepared::Exact(x) => simple(BlockKind::Lossless, block::lossless_payload(x)),
        Prepared::Coded { t, orig, bound, .. } => {
            let s = tile::encode(t, step0);
            let mut stats = BlockStats::default();
            let payload = match bound {
                None => StreamTable::encode(&[&s]),
                Some(b) => {
                    // The residuals correct what a reader decodes, so decode exactly as it will.
                    let pred = decode_stream(&s, t.size, norm)?;
                    let (r, st) = bound::encode(orig, &pred, b, t.size)?;
                    stats = st;
                    match r {
                        Some(r) => StreamTable::encode(&[&s, &r]),
                        None => StreamTable::encode(&[&s]),
                    }
                }
            };
            if payload.len() >= 4 * orig.len() {
                let l = block::lossless_payload(orig);
                let (kind, payload) = if l.len() < 4 * orig.len() { (BlockKind::Lossless, l) } else { (BlockKind::Raw, block::f32s_to_bytes(orig)) };
                return Ok(Coded { kind, payload, stats: BlockStats { bounded: stats.bounded, corrected: 0 } });
            }
            Ok(Coded { kind: BlockKind::Wavelet, payload, stats })
        }
    }
}

/// About the bytes `code` would store for one tile, its index entry included.
fn estimate_tile(p: &Prepared, step0: f32) -> u64 {
    let payload = match p {
        Prepared::Constant(_) => 4,
        Prepared::Exact(x) => 4 * x.len() as u64,
        // Stream table of one stream: 8 bytes; never more than the raw samples.
        Prepared::Coded { t, orig, .. } => (8 + tile::estimate(t, step0)).min(4 * orig.len() as u64),
    };
    payload + crate::format::layout::ENTRY_LEN
}

/// The size proxy's counts of one tile (none for tiles that are not transformed).
fn tile_magnitudes(p: &Prepared) -> Vec<u64> {
    match p {
        Prepared::Coded { t, .. } => tile::magnitudes(t),
        _ => vec![0; tile::MAGNITUDE_BINS],
    }
}

/// What rate control measures its probes on: tiles prepared in memory, or tiles
/// prepared again from the input one group at a time (`Stream`, a volume larger
/// than memory). Sums are integers, so any order gives the same result.
pub trait Tiles: Sync {
    /// Sums `f` (`n` integers per tile) over every tile.
    fn sum(&self, n: usize, f: &(dyn Fn(&Prepared) -> Result<Vec<u64>, String> + Sync)) -> Result<Vec<u64>, String>;
    /// Whether any tile carries an error bound.
    fn bounded(&self) -> bool;
    /// Every tile, when they are all in memory (quality targets need them).
    fn all(&self) -> Option<&[Prepared]>;
    /// The size proxy's histogram over every tile.
    fn magnitudes(&self) -> Result<Vec<u64>, String> {
        self.sum(tile::MAGNITUDE_BINS, &|p| Ok(tile_magnitudes(p)))
    }
}

impl Tiles for [Prepared] {
    fn sum(&self, n: usize, f: &(dyn Fn(&Prepared) -> Result<Vec<u64>, String> + Sync)) -> Result<Vec<u64>, String> {
        self.par_iter().map(f).try_reduce(|| vec![0; n], |a, b| Ok(tile::add_counts(a, b)))
    }

    fn bounded(&self) -> bool {
        self.iter().any(|p| matches!(p, Prepared::Coded { bound: Some(_), .. }))
    }

    fn all(&self) -> Option<&[Prepared]> {
        Some(self)
    }
}

/// Codes every tile (parallel); results in tile order.
pub fn code_all(ps: &[Prepared], step0: f32, norm: Norm) -> Result<Vec<Coded>, String> {
    ps.par_iter().map(|p| code(p, step0, norm)).collect()
}

fn decode_stream(s: &[u8], sz: [usize; 3], norm: Norm) -> Result<Vec<f32>, String> {
    let mut v = tile::decode(s, sz)?;
    v.par_chunks_mut(1 << 16).for_each(|c| c.iter_mut().for_each(|x| *x = norm.inverse(*x)));
    Ok(v)
}

/// Decodes a wavelet payload (tile stream, optional §6.2 residual stream) to data units.
pub fn decode_payload(payload: &[u8], sz: [usize; 3], norm: Norm) -> Result<Vec<f32>, String> {
    let t = StreamTable::parse(payload, 1, 2)?;
    let mut v = decode_stream(t.streams[0], sz, norm)?;
    if let Some(r) = t.streams.get(1) {
        bound::apply(r, &mut v, sz)?;
    }
    Ok(v)
}

/// Decodes any block that needs no neural network: constant, raw, lossless, wavelet.
pub fn decode_plain(kind: BlockKind, payload: &[u8], sz: [usize; 3], norm: Norm) -> Result<Vec<f32>, String> {
    match kind {
        BlockKind::Wavelet => decode_payload(payload, sz, norm),
        k => block::decode_simple(k, payload, sz[0] * sz[1] * sz[2]),
    }
}

/// Decodes block `b` of volume `v` of a container when it needs no neural network.
pub fn decode_block(c: &Container, v: VolumeId, b: BlockId) -> Result<Vec<f32>, String> {
    decode_in(c, v, &c.grid(v).map_err(|e| e.to_string())?, crate::codec::store_norm(c, v)?, b)
}

/// `decode_block` with the volume's grid and normalisation already at hand.
fn decode_in(c: &Container, v: VolumeId, g: &BlockGrid, norm: Norm, b: BlockId) -> Result<Vec<f32>, String> {
    let r = c.block(v, b).map_err(|e| e.to_string())?;
    decode_plain(r.kind, r.payload, g.extent(b).1, norm).map_err(|e| {
        let name = c.volume(v).map_or("?", |m| m.info.name.as_str());
        format!("block {} of volume {} ({name}): {e}", b.0, v.0)
    })
}

/// Decodes a whole volume without a neural network, one slab of blocks at a time
/// (blocks of a slab in parallel); `progress(done, total)` after each slab.
pub fn decode_volume(c: &Container, v: VolumeId, mut progress: impl FnMut(usize, usize)) -> Result<Vec<f32>, String> {
    let g = c.grid(v).map_err(|e| e.to_string())?;
    if g.len() == 1 {
        // One tile is the volume: no second buffer to scatter it into.
        let out = decode_in(c, v, &g, crate::codec::store_norm(c, v)?, BlockId(0))?;
        progress(1, 1);
        return Ok(out);
    }
    decode_layers(c, v, 0..g.counts()[2], progress)
}

/// Decodes the layers `layers` of blocks (z block coordinates) of a volume without a
/// neural network: the planes they cover (`BlockGrid::planes`), x fastest, one layer
/// at a time (its blocks in parallel); `progress(done, total)` after each layer.
pub fn decode_layers(c: &Container, v: VolumeId, layers: std::ops::Range<usize>, mut progress: impl FnMut(usize, usize)) -> Result<Vec<f32>, String> {
    let g = c.grid(v).map_err(|e| e.to_string())?;
    let norm = crate::codec::store_norm(c, v)?;
    let counts = g.counts();
    let per_layer = counts[0] * counts[1];
    let planes = g.planes(layers.start * per_layer..layers.end * per_layer);
    let dims = [g.dims[0], g.dims[1], planes.len()];
    let mut out = vec![0f32; dims[0] * dims[1] * dims[2]];
    for bz in layers.clone() {
        let ids: Vec<u64> = (bz * per_layer..(bz + 1) * per_layer).map(|i| i as u64).collect();
        let blocks: Vec<Result<Vec<f32>, String>> = ids.par_iter().map(|&b| decode_in(c, v, &g, norm, BlockId(b))).collect();
        for (&id, r) in ids.iter().zip(blocks) {
            let (mut o, s) = g.extent(BlockId(id));
            o[2] -= planes.start;
            grid::scatter(&mut out, dims, o, s, &r?);
        }
        progress((bz + 1 - layers.start) * per_layer, layers.len() * per_layer);
    }
    Ok(out)
}

/// What the reader gets for every tile at `step0` (no entropy coding), as a volume.
pub fn reconstruct_volume(ps: &[Prepared], g: &BlockGrid, step0: f32, norm: Norm) -> Vec<f32> {
    let tiles: Vec<Vec<f32>> = ps
        .par_iter()
        .enumerate()
        .map(|(id, p)| match p {
            Prepared::Constant(v) => vec![*v; g.voxels(BlockId(id as u64))],
            Prepared::Exact(x) => x.clone(),
            Prepared::Coded { t, .. } => tile::reconstruct(t, step0).into_iter().map(|v| norm.inverse(v)).collect(),
        })
        .collect();
    let mut out = vec![0f32; g.dims[0] * g.dims[1] * g.dims[2]];
    for (id, t) in tiles.iter().enumerate() {
        let (o, sz) = g.extent(BlockId(id as u64));
        grid::scatter(&mut out, g.dims, o, sz, t);
    }
    out
}

/// Bytes a set of coded tiles takes in the container (payloads + index entries).
pub fn stored_bytes(c: &[Coded]) -> u64 {
    c.iter().map(|b| b.payload.len() as u64 + crate::format::layout::ENTRY_LEN).sum()
}

/// What rate control aims at.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// f32 bytes / stored bytes.
    Ratio(f64),
    /// PSNR over the value range (dB).
    Psnr(f64),
    /// Importance-weighted PSNR (dB).
    WPsnr(f64),
}

/// The outcome of a search: the base step, what it achieves, and whether the target was met.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    pub step: f32,
    pub achieved: f64,
    pub met: bool,
}

/// Rate control's size proxy: every coded tile's coefficient magnitudes (at base step
/// 1), whose rough bits at a base step, times a scale fitted to a real estimate, predict
/// the payload bytes there.
struct Proxy {
    /// (|c| / step at base step 1, how many coefficients) over non-empty bins.
    bins: Vec<(f32, u64)>,
    /// Payload bytes the target allows.
    want: f64,
}

impl Proxy {
    fn new<T: Tiles + ?Sized>(ps: &T, want: f64, red: &dyn crate::dist::Reduce) -> Result<Proxy, String> {
        let mut h = ps.magnitudes()?;
        red.sum_u64(&mut h);
        let bins = h.iter().enumerate().filter(|(_, &n)| n > 0).map(|(b, &n)| (tile::magnitude_of_bin(b), n)).collect();
        Ok(Proxy { bins, want })
    }

    /// Proxy bytes at log2 base step `x`.
    fn bytes(&self, x: f64) -> f64 {
        let inv = 2f64.powf(-x) as f32;
        self.bins.iter().map(|&(m, n)| n as f64 * tile::proxy_bits(m * inv)).sum::<f64>() / 8.0
    }

    /// The scale that makes the proxy say `bytes` at `x`.
    fn scale_at(&self, x: f64, bytes: f64) -> f64 {
        bytes / self.bytes(x).max(1.0)
    }

    /// The log2 base step where `scale` times the proxy meets the target (bisection: the
    /// proxy falls as the step grows).
    fn root(&self, scale: f64) -> f64 {
        let (mut lo, mut hi) = ((tile::MIN_STEP as f64).log2(), (tile::MAX_STEP as f64).log2());
        for _ in 0..50 {
            let mid = 0.5 * (lo + hi);
            if scale * self.bytes(mid) > self.want {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

/// What a step search needs of the volume besides its prepared tiles.
#[derive(Clone, Copy)]
pub struct Searched<'a> {
    pub grid: &'a BlockGrid,
    pub norm: Norm,
    /// The volume's values and importance (empty when only a ratio is searched on a share or a stream).
    pub data: &'a [f32],
    pub imp: &'a [f32],
    /// Voxels that count in quality targets (missing ones excluded).
    pub valid: Option<&'a [bool]>,
    /// Container bytes besides the blocks.
    pub overhead: u64,
}

/// Searches the base step for `target` over the whole volume on log2 Δ0 (ratio and
/// PSNR are close to linear in it): a bracket found by jumps of the expected distance,
/// then regula falsi; a ratio target starts where a proxy of the size predicts it (measured
/// on the benchmark samples: 2-3 probes instead of 4-6). Ratio targets land within about 1% when reachable (2% on tiny
/// volumes, where the size moves in steps); quality targets meet the target with the
/// largest step found. `overhead`: container bytes besides the blocks (header,
/// metadata, trailer), so a ratio target is met by the file, not just its blocks.
///
/// `ps` may be one rank's share of the tiles (`prepare_part`): sizes are then summed
/// across ranks by `red` (integers: every rank takes the same steps, and the same
/// as one process), or a `Stream`. Quality targets need every tile in memory here
/// (`data`, `imp`: the volume).
pub fn search<T: Tiles + ?Sized>(ps: &T, volume: &Searched<'_>, target: Target, red: &dyn crate::dist::Reduce) -> Result<Choice, String> {
    let Searched { grid: g, norm, data, imp, valid, overhead } = *volume;
    let f32_bytes = (g.dims.iter().product::<usize>() * 4) as f64;
    let mut bounded = [ps.bounded() as u64];
    red.sum_u64(&mut bounded);
    let bounded = bounded[0] > 0;
    let all = ps.all().filter(|a| a.len() == g.len() && data.len() == g.dims.iter().product::<usize>());
    if !matches!(target, Target::Ratio(_)) && all.is_none() {
        return Err("a quality target needs the whole volume in memory in one process (a ratio target or --step works across ranks and on volumes streamed from their input)".into());
    }
    let one = |f: &(dyn Fn(&Prepared) -> Result<u64, String> + Sync)| ps.sum(1, &|p| Ok(vec![f(p)?])).map(|v| v[0]);
    // Bytes over every rank's tiles.
    let total = |b: u64| {
        let mut v = [b];
        red.sum_u64(&mut v);
        v[0]
    };
    let measure = |step: f32| -> Result<f64, String> {
        Ok(match target {
            // Residual streams only exist once coded: with a bound, code for real.
            Target::Ratio(_) if bounded => f32_bytes / (overhead + total(one(&|p| Ok(code(p, step, norm)?.payload.len() as u64 + crate::format::layout::ENTRY_LEN))?)) as f64,
            Target::Ratio(_) => f32_bytes / (overhead + total(one(&|p| Ok(estimate_tile(p, step)))?)) as f64,
            Target::Psnr(_) | Target::WPsnr(_) => {
                let ps = all.expect("checked above");
                let q = crate::metrics::quality(data, &reconstruct_volume(ps, g, step, norm), Some(imp), valid);
                if matches!(target, Target::Psnr(_)) {
                    q.psnr
                } else {
                    q.wpsnr
                }
            }
        })
    };
    let ratio = matches!(target, Target::Ratio(_));
    let t = match target {
        Target::Ratio(r) => r.ln(),
        Target::Psnr(p) | Target::WPsnr(p) => p,
    };
    // g(log2 step) rises with the step: log ratio above the target, or quality below it.
    let val = |ls: f64| -> Result<(f64, f64), String> {
        let v = measure(2f64.powf(ls) as f32)?;
        Ok((v, if ratio { v.ln() - t } else { t - v }))
    };
    let (min, max) = ((tile::MIN_STEP as f64).log2(), (tile::MAX_STEP as f64).log2());

    // Bracket the root from the proxy's guess or the default step. Each
    // probe codes every tile, so jump by the expected distance (the proxy's, or g's
    // slope: about 0.9 per octave for log ratio, 6 dB for quality, then the secant of the
    // last two probes), at most 4 octaves at a time.
    let typical = if ratio { 0.9 } else { 6.0 };
    let max_jump = 4.0;
    // A size target without residual streams: a proxy predicts the root from the
    // coefficients' magnitudes, so the first probe starts near it and each probe
    // recalibrates the proxy (two or three probes instead of four to six).
    let proxy = match target {
        Target::Ratio(r) if !bounded => Some(Proxy::new(ps, f32_bytes / r - overhead as f64, red)?),
        _ => None,
    };
    let x0 = match &proxy {
        Some(p) => p.root(1.0).clamp(min, max),
        None => (DEFAULT_STEP as f64).log2(),
    };
    let (v0, g0) = val(x0)?;
    // Ratio: within 1% (measured on the benchmark samples: the file lands within 1.2% of
    // the target, the estimate being a few tenths of a percent off; a tolerance of 0.5%
    // cost a third probe on most of them). Quality: met, and by less than 0.03 dB too much.
    let close = |g: f64| if ratio { g.abs() < 0.01 } else { g < 0.0 && -g < 0.03 };
    if close(g0) {
        return Ok(Choice { step: 2f64.powf(x0) as f32, achieved: v0, met: true });
    }
    let down = g0 >= 0.0;
    let (mut xa, mut ga, mut va) = (x0, g0, v0);
    let (mut slope, mut secant) = (typical, false);
    let (mut lo, mut glo, vlo, mut hi, mut ghi, vhi);
    loop {
        if down && xa <= min {
            // Even the finest step gives a larger ratio (or less quality) than asked.
            return Ok(Choice { step: tile::MIN_STEP, achieved: va, met: false });
        }
        if !down && xa >= max {
            return Ok(Choice { step: tile::MAX_STEP, achieved: va, met: false });
        }
        // With a proxy, aim at the root (2% past it): by the secant of the last two probes
        // once there are two (the real local slope), else by the proxy recalibrated here
        // when it points the same way. Without one, 20% past the slope's guess.
        let aimed = match &proxy {
            Some(_) if secant => Some(ga.abs() / slope),
            Some(p) => Some(p.root(p.scale_at(xa, f32_bytes / va - overhead as f64)) - xa).filter(|d| (*d < 0.0) == down && d.is_finite()).map(f64::abs),
            None => None,
        };
        let jump = match aimed {
            Some(d) => (1.02 * d).clamp(0.01, max_jump),
            None => (1.2 * ga.abs() / slope).clamp(0.05, max_jump),
        };
        let xn = if down { (xa - jump).max(min) } else { (xa + jump).min(max) };
        let (vn, gn) = val(xn)?;
        if close(gn) {
            return Ok(Choice { step: 2f64.powf(xn) as f32, achieved: vn, met: true });
        }
        if down && gn < 0.0 {
            (lo, glo, vlo, hi, ghi, vhi) = (xn, gn, vn, xa, ga, va);
            break;
        }
        if !down && gn >= 0.0 {
            (lo, glo, vlo, hi, ghi, vhi) = (xa, ga, va, xn, gn, vn);
            break;
        }
        let s = ((gn - ga) / (xn - xa)).abs();
        slope = if s.is_finite() && s > 0.0 { s.clamp(typical / 4.0, typical * 4.0) } else { typical };
        // A flat curve (tiles whose size ignores the step) gives no secant to aim by.
        secant = s.is_finite() && s > 1e-3;
        (xa, ga, va) = (xn, gn, vn);
    }
    // Ratio: the point closest to the target on either side. Quality: the largest step
    // that still meets it (the `lo` side).
    let mut best = if ratio && ghi < -glo { (hi, vhi, ghi) } else { (lo, vlo, glo) };
    // Regula falsi, Illinois variant: an end kept twice in a row has its g halved, so
    // the secant cannot creep from one side (converges about as fast as the secant on
    // smooth curves, and stays inside the bracket).
    let mut kept = 0i32;
    for _ in 0..40 {
        if close(best.2) || hi - lo < 1e-4 {
            break;
        }
        let secant = lo + (hi - lo) * (-glo / (ghi - glo));
        let x = if secant.is_finite() { secant.clamp(lo + 0.01 * (hi - lo), hi - 0.01 * (hi - lo)) } else { 0.5 * (lo + hi) };
        let (v, gx) = val(x)?;
        if gx >= 0.0 {
            (hi, ghi) = (x, gx);
            kept = if kept < 0 { kept - 1 } else { -1 };
            if kept <= -2 {
                glo *= 0.5;
            }
        } else {
            (lo, glo) = (x, gx);
            kept = if kept > 0 { kept + 1 } else { 1 };
            if kept >= 2 {
                ghi *= 0.5;
            }
        }
        if (ratio && gx.abs() < best.2.abs()) || (!ratio && gx < 0.0) {
            best = (x, v, gx);
        }
    }
    // `achieved` is the estimate for a ratio without a bound; the caller reports the real one.
    Ok(Choice { step: 2f64.powf(best.0) as f32, achieved: best.1, met: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decode_round_trips_a_volume_with_a_bound() {
        let dims = [40, 33, 20];
        let n = dims.iter().product::<usize>();
        let data: Vec<f32> = (0..n).map(|i| ((i % 40) as f32 * 0.2).sin() * 10.0 + (i / 1320) as f32).collect();
        let imp: Vec<f32> = (0..n).map(|i| if i % 40 < 10 { 1.0 } else { 0.1 }).collect();
        let g = BlockGrid::cubic(dims, 16);
        let (lo, hi) = data.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let norm = Norm::from_range(lo, hi);
        let spec = BoundSpec { abs: 0.01, min_importance: 0.5, graded: false, max: None };
        let ps = prepare(&data, &imp, &g, norm, Some((&spec, &imp)), None);
        let coded = code_all(&ps, 0.02, norm).unwrap();
        let mut out = vec![0f32; n];
        for (id, c) in coded.iter().enumerate() {
            let (o, sz) = g.extent(BlockId(id as u64));
            let v = decode_plain(c.kind, &c.payload, sz, norm).unwrap();
            grid::scatter(&mut out, dims, o, sz, &v);
        }
        for i in 0..n {
            if imp[i] >= 0.5 {
                assert!((out[i] - data[i]).abs() <= 0.01, "voxel {i}: {} vs {}", out[i], data[i]);
            }
        }
    }

    #[test]
    fn ratio_search_lands_within_two_percent() {
        let dims = [64, 64, 32];
        let n = dims.iter().product::<usize>();
        let data: Vec<f32> = (0..n).map(|i| ((i % 64) as f32 * 0.3).sin() + ((i / 4096) as f32 * 0.2).cos() + ((i / 64 % 64) as f32 * 0.1).sin()).collect();
        let imp = vec![0.5f32; n];
        let g = BlockGrid::cubic(dims, 32);
        let norm = Norm::from_range(-3.0, 3.0);
        let ps = prepare(&data, &imp, &g, norm, None, None);
        let c = search(&ps[..], &Searched { grid: &g, norm, data: &data, imp: &imp, valid: None, overhead: 0 }, Target::Ratio(60.0), &crate::dist::Local).unwrap();
        assert!(c.met);
        let got = (n * 4) as f64 / stored_bytes(&code_all(&ps, c.step, norm).unwrap()) as f64;
        assert!((got / 60.0 - 1.0).abs() < 0.02, "ratio {got}");
    }
}
