//! Importance-driven error bounds (spec/FORMAT.md §6.2).
//!
//! The neural reconstruction is the predictor. For every voxel with a finite
//! bound `e`, the residual `x - p` is quantised with the block's step
//! `Δ = 2·e_min·(1 - MARGIN)` and the decoder adds `q·Δ` back. Voxels with looser
//! (or no) bounds take the `q` nearest zero that still meets their own bound, so
//! they cost almost nothing. The decoder needs no importance map: it adds `q·Δ`
//! to every voxel of the block.
//!
//! Why the margin: the synthesis network may differ by a few ULPs between
//! devices, batch sizes and thread counts. The packer guarantees `e·(1 - MARGIN/2)`
//! against its own prediction (f32 arithmetic included), leaving `e·MARGIN/2`
//! (e/16) for that drift; bounds below `MIN_REL` of the value range or
//! `PRECISION_REL` of the largest magnitude are refused because drift or f32
//! rounding could exceed them.
//!
//! Blocks whose every voxel is bounded may instead use the interpolation mode
//! (format 1.2): values predicted from already decoded values of the block in
//! SZ3's multilevel interpolation order, no network output at all; the packer
//! keeps whichever mode codes smaller.
//!
//! Probabilities come from integer arithmetic only (two stored bytes select a
//! zero probability and a geometric tail), so any decoder rebuilds the exact
//! table.

use constriction::stream::model::{DefaultContiguousCategoricalEntropyModel, DefaultUniformModel};
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Residual symbols `-RADIUS..=RADIUS` are coded directly, larger ones escaped.
pub const RADIUS: i32 = 64;
const ESC: usize = 2 * RADIUS as usize + 1;
const ALPHABET: usize = ESC + 1;
/// Share of each bound left for decoder drift (CPU vs GPU, batching).
pub const MARGIN: f32 = 0.125;
/// Smallest bound accepted, as a fraction of the volume's value range.
pub const MIN_REL: f64 = 1.0 / 16384.0;
/// Smallest bound accepted, as a fraction of the largest magnitude (128 f32 ULPs).
pub const PRECISION_REL: f64 = 1.0 / 65_536.0;
/// Stream header: f32 step, then (zero index, tail index) bytes per context.
const HEADER: usize = 4 + 2 * CONTEXTS;
/// Escaped residuals must stay exactly representable as f32 multiples of the step.
const MAX_Q: i64 = 1 << 24;

/// Where and how tightly reconstruction error is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundSpec {
    /// Absolute bound E in data units.
    pub abs: f32,
    /// Threshold mode: voxels with importance >= this get bound E.
    pub min_importance: f32,
    /// Graded mode: every voxel with importance I > 0 gets E / I (capped by `max`).
    pub graded: bool,
    /// Cap of graded bounds (data units); none means uncapped.
    pub max: Option<f32>,
}

impl BoundSpec {
    /// The bound of a voxel with importance `i` (INFINITY: unbounded).
    #[inline]
    pub fn at(&self, i: f32) -> f32 {
        if self.graded {
            let e = if i > 0.0 { self.abs / i } else { f32::INFINITY };
            self.max.map_or(e, |m| e.min(m))
        } else if i >= self.min_importance {
            self.abs
        } else {
            f32::INFINITY
        }
    }

    /// Checks the bound against the volume's value range (see `MIN_REL`).
    pub fn check(&self, lo: f32, hi: f32) -> Result<(), String> {
        let smallest = if self.graded { self.max.map_or(self.abs, |m| m.min(self.abs)) } else { self.abs };
        if !(self.abs.is_finite() && self.abs > 0.0) || self.max.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return Err(format!("error bound {} must be a positive finite number", self.abs));
        }
        let min = (hi as f64 - lo as f64) * MIN_REL;
        let precision = (lo.abs().max(hi.abs()) as f64) * PRECISION_REL;
        if (smallest as f64) < precision {
            return Err(format!(
                "error bound {smallest} is below the f32 precision idlat needs for values of magnitude {} ({precision:.3e}); use a larger bound or --lossless",
                lo.abs().max(hi.abs())
            ));
        }
        if (smallest as f64) < min {
            return Err(format!(
                "error bound {smallest} is below the smallest bound idlat can guarantee for this volume \
                 ({min:.3e} = value range / 16384, the margin for decoder rounding drift); use a larger bound or --lossless"
            ));
        }
        Ok(())
    }
}

/// Residual coding outcome of one block.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BlockStats {
    /// Voxels with a finite bound.
    pub bounded: usize,
    /// Voxels whose residual symbol is nonzero.
    pub corrected: usize,
}

impl std::ops::Add for BlockStats {
    type Output = BlockStats;
    fn add(self, o: BlockStats) -> BlockStats {
        BlockStats { bounded: self.bounded + o.bounded, corrected: self.corrected + o.corrected }
    }
}

/// How a reconstruction honours a bound (what `eval` reports).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    pub bound: f32,
    pub graded: bool,
    pub bounded_voxels: u64,
    pub within_bound: u64,
    /// Percentage of bounded voxels within their bound (100 when none are bounded).
    pub share_within_pct: f64,
    /// Largest |x - x̂| over bounded voxels (data units).
    pub max_error_bounded: f64,
    /// Largest |x - x̂| / bound over bounded voxels.
    pub worst_fraction_of_bound: f64,
}

/// Checks `rec` against `orig` for the voxels `spec` bounds under importance `imp`
/// (voxels where `valid` is false, e.g. missing data, are left out).
pub fn report(spec: &BoundSpec, orig: &[f32], rec: &[f32], imp: &[f32], valid: Option<&[bool]>) -> Report {
    let (mut n, mut ok, mut max, mut worst) = (0u64, 0u64, 0f64, 0f64);
    for i in 0..orig.len() {
        if valid.is_some_and(|m| !m[i]) {
            continue;
        }
        let e = spec.at(imp[i]);
        if !e.is_finite() {
            continue;
        }
        let err = (orig[i] as f64 - rec[i] as f64).abs();
        n += 1;
        ok += (err <= e as f64) as u64;
        max = max.max(err);
        worst = worst.max(err / e as f64);
    }
    Report {
        bound: spec.abs,
        graded: spec.graded,
        bounded_voxels: n,
        within_bound: ok,
        share_within_pct: if n == 0 { 100.0 } else { 100.0 * ok as f64 / n as f64 },
        max_error_bounded: max,
        worst_fraction_of_bound: worst,
    }
}

/// Fixed-point probabilities (sum 2^24, all nonzero) for zero index `a` and tail index `b`.
fn table(a: u8, b: u8) -> Vec<u32> {
    const TOTAL: u64 = 1 << 24;
    let p0_min = (2 * a as u64 + 1) << 15; // (a + 1/2) / 256 of the mass
    let b = b as u64;
    // Geometric tail ratio θ = 1 - 4 / (4 + b²) in 16-bit fixed point: mean |q| of 1 + b²/4.
    let theta = 65536 - 262_144 / (4 + b * b);
    let mut w = vec![0u64; RADIUS as usize + 2];
    w[1] = 1 << 40;
    for k in 2..w.len() {
        w[k] = (w[k - 1] * theta) >> 16;
    }
    let esc = w[RADIUS as usize + 1] * (4 + b * b) / 4;
    let total_w: u128 = 2 * w[1..=RADIUS as usize].iter().map(|&v| v as u128).sum::<u128>() + esc as u128;
    let rest = (TOTAL - p0_min - (ALPHABET as u64 - 1)) as u128;
    let share = |v: u64| 1 + (rest * v as u128 / total_w.max(1)) as u32;
    let mut p = vec![0u32; ALPHABET];
    for k in 1..=RADIUS as usize {
        let s = share(w[k]);
        p[RADIUS as usize + k] = s;
        p[RADIUS as usize - k] = s;
    }
    p[ESC] = share(esc);
    let others: u64 = p.iter().map(|&v| v as u64).sum();
    p[RADIUS as usize] = (TOTAL - others) as u32;
    p
}

fn model(a: u8, b: u8) -> DefaultContiguousCategoricalEntropyModel {
    DefaultContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(table(a, b), false).expect("table() sums to 2^24 with no zero")
}

fn zigzag(q: i32) -> u32 {
    ((q << 1) ^ (q >> 31)) as u32
}

fn unzigzag(u: u32) -> i32 {
    ((u >> 1) as i32) ^ -((u & 1) as i32)
}

/// Bits to code a histogram (`hist[s]` counts of symbol s) under table (a, b).
fn cost(hist: &[u64], a: u8, b: u8) -> f64 {
    let t = table(a, b);
    hist.iter().zip(&t).filter(|(&n, _)| n > 0).map(|(&n, &p)| n as f64 * (24.0 - (p as f64).log2())).sum()
}

/// The reconstruction the decoder computes: prediction plus `q` steps (f32).
#[inline]
fn reconstruct(p: f32, q: i32, step: f32) -> f32 {
    p + q as f32 * step
}

/// Number of coding contexts (by the causal neighbours' magnitude).
const CONTEXTS: usize = 6;

/// Causal prediction and context of voxel `i` of a block of size `sz` (x fastest)
/// from the already-coded symbols `q`: the rounded mean of the x-1, y-1 and z-1
/// neighbours inside the block, and a bucket of the sum of their magnitudes.
/// Residual fields are smooth, so neighbours predict both well.
#[inline]
fn predict(q: &[i32], i: usize, sz: [usize; 3]) -> (i32, usize) {
    let (x, y, z) = (i % sz[0], (i / sz[0]) % sz[1], i / (sz[0] * sz[1]));
    let (mut sum, mut mag, mut n) = (0i64, 0u64, 0i64);
    for (has, j) in [(x > 0, 1), (y > 0, sz[0]), (z > 0, sz[0] * sz[1])] {
        if has {
            let v = q[i - j] as i64;
            sum += v;
            mag += v.unsigned_abs();
            n += 1;
        }
    }
    // Round half away from zero, integers only.
    let pred = if n == 0 { 0 } else { ((2 * sum + sum.signum() * n) / (2 * n)) as i32 };
    (pred, bucket(mag))
}

fn symbol(d: i32) -> usize {
    if d.abs() <= RADIUS {
        (d + RADIUS) as usize
    } else {
        ESC
    }
}

/// Chooses the context's (zero index, tail index) minimising the coded size.
fn fit(hist: &[u64]) -> (u8, u8) {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return (255, 0);
    }
    let zeros = hist[RADIUS as usize];
    let a0 = ((zeros as f64 / n as f64) * 256.0 - 0.5).round().clamp(0.0, 255.0) as i32;
    let (mut nz, mut tot) = (0f64, 0f64);
    for (s, &c) in hist.iter().enumerate() {
        if s != RADIUS as usize && c > 0 {
            let mag = if s == ESC { 2.0 * RADIUS as f64 } else { (s as f64 - RADIUS as f64).abs() };
            nz += c as f64;
            tot += c as f64 * mag;
        }
    }
    let mean = if nz > 0.0 { tot / nz } else { 1.0 };
    let b0 = (2.0 * (mean - 1.0).max(0.0).sqrt()).round().clamp(0.0, 63.0) as i32;
    let mut best = (f64::INFINITY, 0u8, 0u8);
    for a in (a0 - 6).max(0)..=(a0 + 6).min(255) {
        for b in (b0 - 3).max(0)..=(b0 + 3).min(63) {
            let c = cost(hist, a as u8, b as u8);
            if c < best.0 {
                best = (c, a as u8, b as u8);
            }
        }
    }
    (best.1, best.2)
}

/// How a residual stream predicts each voxel (spec §6.2; the sign of the stored step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `x̂ = v + q·Δ`, `v` the neural value; `q` predicted by the mean of its causal
    /// neighbours (format 1.1). Best where the network predicts well.
    Neural,
    /// `x̂ = P + q·Δ`, `P` interpolated (multilevel, cubic, as in SZ3) from already
    /// decoded values of the block, the stored offset for its first voxel; no network
    /// output at all (format 1.2). Interpolation weights average the quantisation noise
    /// of the neighbours, so on smooth data most `q` are 0 even at coarse bounds (a
    /// Lorenzo predictor, whose integer weights keep values on one lattice, cannot).
    /// Best on smooth data the network blurs; deterministic on any device (pure-Rust
    /// arithmetic in a fixed order).
    Interp,
}

/// One step of the interpolation order: voxel `i`, its context, and its neighbours
/// along the interpolation axis at distances -3s, -s, +s, +3s (None outside the block).
struct Visit {
    i: usize,
    ctx: usize,
    nb: [Option<usize>; 4],
}

/// The multilevel interpolation order over a block of size `sz` (x fastest), as in
/// SZ3: voxel (0,0,0) first, then for strides s = S/2, S/4, .., 1 (S the smallest power
/// of two >= the largest edge) the voxels at odd multiples of s along x, then y, then z,
/// among those already on the grid of stride s in the other axes. Every voxel is
/// visited once; its neighbours are decoded before it. The context is the level
/// (coarse levels carry larger residuals).
fn interp_order(sz: [usize; 3]) -> Vec<Visit> {
    let n = sz[0] * sz[1] * sz[2];
    let mut out = Vec::with_capacity(n);
    out.push(Visit { i: 0, ctx: CONTEXTS - 1, nb: [None; 4] });
    let top = sz.iter().copied().max().unwrap_or(1).next_power_of_two();
    let stride = [1, sz[0], sz[0] * sz[1]];
    let mut s = top / 2;
    while s >= 1 {
        let ctx = (s.trailing_zeros() as usize).min(CONTEXTS - 1);
        for axis in 0..3 {
            // Steps per axis for this pass: odd multiples of s on `axis`, multiples of s
            // on axes already refined at this level (< axis), of 2s on the others.
            let step = |a: usize| if a < axis { s } else { 2 * s };
            for z in (if axis == 2 { s } else { 0 }..sz[2]).step_by(step(2)) {
                for y in (if axis == 1 { s } else { 0 }..sz[1]).step_by(step(1)) {
                    for x in (if axis == 0 { s } else { 0 }..sz[0]).step_by(step(0)) {
                        let c = [x, y, z][axis];
                        let i = x + sz[0] * (y + sz[1] * z);
                        let at = |d: isize| {
                            let t = c as isize + d * s as isize;
                            (t >= 0 && (t as usize) < sz[axis]).then(|| (i as isize + (t - c as isize) * stride[axis] as isize) as usize)
                        };
                        out.push(Visit { i, ctx, nb: [at(-3), at(-1), at(1), at(3)] });
                    }
                }
            }
        }
        s /= 2;
    }
    debug_assert_eq!(out.len(), n);
    out
}

/// Interpolated prediction from decoded values `v`: cubic (-1, 9, 9, -1)/16 when both
/// outer neighbours exist, linear midpoint with two, the one neighbour otherwise, and
/// `first` for the first voxel. f64 in a fixed order, rounded to f32: every decoder
/// computes the same value.
#[inline]
fn interpolate(v: &[f32], nb: &[Option<usize>; 4], first: f32) -> f32 {
    let g = |k: usize| nb[k].map(|j| v[j] as f64);
    match (g(0), g(1), g(2), g(3)) {
        (Some(a), Some(b), Some(c), Some(d)) => ((-a + 9.0 * b + 9.0 * c - d) / 16.0) as f32,
        (_, Some(b), Some(c), _) => ((b + c) * 0.5) as f32,
        (_, Some(b), None, _) => b as f32,
        (_, None, Some(c), _) => c as f32,
        _ => first,
    }
}

/// Context of a sum of neighbour magnitudes.
#[inline]
fn bucket(mag: u64) -> usize {
    match mag {
        0 => 0,
        1..=2 => 1,
        3..=6 => 2,
        7..=14 => 3,
        15..=30 => 4,
        _ => 5,
    }
}

/// The symbols of one block under one mode, before entropy coding.
struct Coded {
    /// Coded difference `q - q̂` per voxel.
    ds: Vec<i32>,
    /// Context per voxel.
    ctxs: Vec<usize>,
    /// Voxels whose decoded value the stream changes.
    corrected: usize,
}

/// Chooses every voxel's `q` under `mode` (`base(i)`: the value `q = 0` decodes to).
///
/// Each voxel takes, among the `q` its bound admits, the one nearest the causal
/// prediction (so the coded difference is small). Unbounded voxels (neural mode only)
/// take the prediction when that does not move them further from the original than
/// the neural value is (or than half a step), else zero.
fn choose(x: &[f32], base: impl Fn(usize) -> f32, bound: &[f32], sz: [usize; 3], step: f32, mode: Mode) -> Result<Coded, String> {
    let n = x.len();
    let (mut qs, mut ds, mut ctxs) = (vec![0i32; n], vec![0i32; n], vec![0usize; n]);
    let order = (mode == Mode::Interp).then(|| interp_order(sz));
    let mut dec = vec![0f32; if mode == Mode::Interp { n } else { 0 }];
    // Symbols go in coding order k: voxel order (neural) or the interpolation order.
    for k in 0..n {
        // Neural: q predicted from neighbours' q, value base + q·Δ. Interp: the value
        // interpolated from decoded neighbours, q coded as is (q̂ = 0).
        let (i, pred, ctx, b) = match &order {
            None => {
                let (pred, ctx) = predict(&qs, k, sz);
                (k, pred, ctx, base(k))
            }
            Some(o) => (o[k].i, 0, o[k].ctx, interpolate(&dec, &o[k].nb, base(o[k].i))),
        };
        let r = x[i] as f64 - b as f64;
        let err = |q: i32| ((x[i] as f64) - reconstruct(b, q, step) as f64).abs();
        let e = bound[i];
        let q = if e.is_finite() {
            // Step/2 = e·(1 - MARGIN) for the tightest voxel; accepting up to e·(1 - MARGIN/2)
            // absorbs f32 rounding of the sum, and MARGIN/2 remains for decoder drift.
            let t = (e * (1.0 - 0.5 * MARGIN)) as f64;
            let nearest = (r / step as f64).round();
            if !nearest.is_finite() || nearest.abs() >= MAX_Q as f64 {
                return Err(format!("residual {r} at voxel {i} is too large for error bound {e} (prediction {b})"));
            }
            let lo = ((r - t) / step as f64).ceil() as i32;
            let hi = ((r + t) / step as f64).floor() as i32;
            let nearest = nearest as i32;
            [pred.clamp(lo, hi.max(lo)), nearest, nearest - 1, nearest + 1]
                .into_iter()
                .find(|&q| err(q) <= t)
                .ok_or_else(|| format!("error bound {e} cannot be met in f32 at value {} (bound below the value's precision)", x[i]))?
        } else if pred != 0 && err(pred) <= err(0).max(0.5 * step as f64) {
            pred
        } else {
            0
        };
        qs[i] = q;
        if mode == Mode::Interp {
            dec[i] = reconstruct(b, q, step);
        }
        let d = q as i64 - pred as i64;
        if d.abs() >= MAX_Q {
            return Err(format!("residual difference {d} at voxel {i} out of range"));
        }
        ds[k] = d as i32;
        ctxs[k] = ctx;
    }
    let corrected = match mode {
        Mode::Neural => qs.iter().filter(|&&q| q != 0).count(),
        Mode::Interp => n,
    };
    Ok(Coded { ds, ctxs, corrected })
}

/// Entropy-codes chosen symbols into a stream: header (signed step, context models,
/// interpolation offset), then the ANS words.
fn serialise(c: &Coded, step: f32, mode: Mode, offset: f32) -> Result<Vec<u8>, String> {
    let mut hist = vec![vec![0u64; ALPHABET]; CONTEXTS];
    for (&d, &ctx) in c.ds.iter().zip(&c.ctxs) {
        hist[ctx][symbol(d)] += 1;
    }
    let params: Vec<(u8, u8)> = hist.iter().map(|h| fit(h)).collect();
    let models: Vec<_> = params.iter().map(|&(a, b)| model(a, b)).collect();
    let half = DefaultUniformModel::new(1 << 16);
    let mut coder = DefaultAnsCoder::new();
    // A stack coder: encode in reverse so the decoder reads forward.
    for (&d, &ctx) in c.ds.iter().zip(&c.ctxs).rev() {
        let s = symbol(d);
        if s == ESC {
            let u = zigzag(d);
            coder.encode_symbol((u & 0xffff) as usize, half).map_err(|e| e.to_string())?;
            coder.encode_symbol((u >> 16) as usize, half).map_err(|e| e.to_string())?;
        }
        coder.encode_symbol(s, &models[ctx]).map_err(|e| e.to_string())?;
    }
    let words = coder.into_compressed().map_err(|_| "ANS coder failed".to_string())?;
    let mut out = Vec::with_capacity(HEADER + 4 + 4 * words.len());
    let signed = if mode == Mode::Interp { -step } else { step };
    out.extend_from_slice(&signed.to_le_bytes());
    for (a, b) in params {
        out.extend_from_slice(&[a, b]);
    }
    if mode == Mode::Interp {
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.extend(words.iter().flat_map(|w| w.to_le_bytes()));
    Ok(out)
}

/// Codes the residuals of one block of size `sz` (`x` original, `p` prediction,
/// `bound` per voxel; data units, x fastest). None when no voxel needs a correction.
///
/// Tries the neural-prediction mode and, when every voxel of the block is bounded
/// (so no voxel may keep its neural value), the interpolation mode; keeps the smaller.
pub fn encode(x: &[f32], p: &[f32], bound: &[f32], sz: [usize; 3]) -> Result<(Option<Vec<u8>>, BlockStats), String> {
    assert_eq!(x.len(), sz[0] * sz[1] * sz[2], "block size");
    let e_min = bound.iter().copied().filter(|e| e.is_finite()).fold(f32::INFINITY, f32::min);
    let mut stats = BlockStats { bounded: bound.iter().filter(|e| e.is_finite()).count(), corrected: 0 };
    if !e_min.is_finite() {
        return Ok((None, stats));
    }
    let step = 2.0 * e_min * (1.0 - MARGIN);
    let neural = choose(x, |i| p[i], bound, sz, step, Mode::Neural)?;
    if neural.corrected == 0 {
        return Ok((None, stats));
    }
    let mut best = (serialise(&neural, step, Mode::Neural, 0.0)?, neural.corrected);
    let offset = x[0];
    if stats.bounded == x.len() && offset.is_finite() {
        let lz = choose(x, |_| offset, bound, sz, step, Mode::Interp)?;
        let s = serialise(&lz, step, Mode::Interp, offset)?;
        if s.len() < best.0.len() {
            best = (s, lz.corrected);
        }
    }
    stats.corrected = best.1;
    Ok((Some(best.0), stats))
}

/// Parsed stream header: mode, step, context models' parameters, interpolation offset, body.
fn header(stream: &[u8]) -> Result<(Mode, f32, &[u8], f32, &[u8]), String> {
    let h = stream.get(..HEADER).ok_or_else(|| format!("residual stream shorter than its {HEADER}-byte header"))?;
    let signed = f32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let (mode, step) = if crate::format::version::residual_interpolates(h) { (Mode::Interp, -signed) } else { (Mode::Neural, signed) };
    if !(step.is_finite() && step > 0.0) {
        return Err(format!("residual step {signed} is not a finite nonzero number"));
    }
    if h[4..].chunks_exact(2).any(|ab| ab[1] > 63) {
        return Err("residual stream header has a tail index above 63".into());
    }
    let (offset, body) = match mode {
        Mode::Neural => (0.0, &stream[HEADER..]),
        Mode::Interp => {
            let o = stream.get(HEADER..HEADER + 4).ok_or("interpolation residual stream shorter than its offset")?;
            let o = f32::from_le_bytes([o[0], o[1], o[2], o[3]]);
            if !o.is_finite() {
                return Err(format!("interpolation residual offset {o} is not finite"));
            }
            (o, &stream[HEADER + 4..])
        }
    };
    Ok((mode, step, &h[4..], offset, body))
}

/// The step a residual stream uses (for reports), or an error for a bad header.
pub fn step_of(stream: &[u8]) -> Result<f32, String> {
    header(stream).map(|(_, step, ..)| step)
}

/// Whether a stream uses the interpolation mode (which sets every voxel itself).
pub fn interpolates(stream: &[u8]) -> bool {
    matches!(header(stream), Ok((Mode::Interp, ..)))
}

/// Adds a block's decoded residuals to its prediction `p` (data units, block of size `sz`) in place.
/// In the interpolation mode the stream alone sets every voxel and `p` is overwritten.
pub fn apply(stream: &[u8], p: &mut [f32], sz: [usize; 3]) -> Result<(), String> {
    if p.len() != sz[0] * sz[1] * sz[2] {
        return Err(format!("{} predicted voxels for a block of {:?}", p.len(), sz));
    }
    let (mode, step, params, offset, body) = header(stream)?;
    if body.len() % 4 != 0 {
        return Err(format!("residual stream body of {} bytes is not whole words", body.len()));
    }
    let words: Vec<u32> = body.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let mut coder = DefaultAnsCoder::from_compressed(words).map_err(|_| "residual stream ends with a zero word".to_string())?;
    let models: Vec<_> = params.chunks_exact(2).map(|ab| model(ab[0], ab[1])).collect();
    let half = DefaultUniformModel::new(1 << 16);
    let mut qs = vec![0i32; p.len()];
    let order = (mode == Mode::Interp).then(|| interp_order(sz));
    for k in 0..p.len() {
        // In the interpolation mode only voxels decoded earlier in the order are read.
        let (i, pred, ctx, base) = match &order {
            None => {
                let (pred, ctx) = predict(&qs, k, sz);
                (k, pred, ctx, p[k])
            }
            Some(o) => (o[k].i, 0, o[k].ctx, interpolate(p, &o[k].nb, offset)),
        };
        let s = coder.decode_symbol(&models[ctx]).map_err(|e| e.to_string())?;
        let d = if s == ESC {
            let hi = coder.decode_symbol(half).map_err(|e| e.to_string())? as u32;
            let lo = coder.decode_symbol(half).map_err(|e| e.to_string())? as u32;
            unzigzag(hi << 16 | lo) as i64
        } else {
            s as i64 - RADIUS as i64
        };
        let q = pred as i64 + d;
        if q.abs() >= MAX_Q {
            return Err(format!("residual {q} out of range at voxel {i}"));
        }
        qs[i] = q as i32;
        p[i] = reconstruct(base, q as i32, step);
    }
    if !coder.is_empty() {
        return Err("residual stream has data after its last symbol".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tables_are_valid_distributions() {
        for a in [0u8, 1, 100, 254, 255] {
            for b in [0u8, 1, 7, 30, 63] {
                let t = table(a, b);
                assert_eq!(t.iter().map(|&v| v as u64).sum::<u64>(), 1 << 24, "a {a} b {b}");
                assert!(t.iter().all(|&v| v > 0));
                assert!(t[RADIUS as usize] >= (2 * a as u32 + 1) << 15);
            }
        }
        for q in [0, 1, -1, 64, -65, i32::MAX / 2, -(1 << 24)] {
            assert_eq!(unzigzag(zigzag(q)), q);
        }
    }

    #[test]
    fn unbounded_or_exact_blocks_cost_nothing() {
        let x = vec![1.0f32, 2.0, 3.0];
        assert_eq!(encode(&x, &x, &[f32::INFINITY; 3], [3, 1, 1]).unwrap().0, None);
        assert_eq!(encode(&x, &x, &[0.1; 3], [1, 3, 1]).unwrap().0, None);
    }

    #[test]
    fn corrupt_streams_error_without_panic() {
        let x: Vec<f32> = (0..500).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
        let p = vec![0f32; 500];
        let sz = [10, 5, 10];
        let (s, _) = encode(&x, &p, &vec![0.01; 500], sz).unwrap();
        let s = s.unwrap();
        let mut ok = p.clone();
        apply(&s, &mut ok, sz).unwrap();
        assert!(x.iter().zip(&ok).all(|(a, b)| (a - b).abs() <= 0.01));
        assert!(apply(&s[..5], &mut p.clone(), sz).is_err());
        let _ = apply(&s[..s.len() - 4], &mut p.clone(), sz); // may decode garbage; must not panic
        let mut bad = s.clone();
        bad[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(apply(&bad, &mut p.clone(), sz).is_err());
        let mut extra = s.clone();
        extra.extend_from_slice(&[1, 0, 0, 0]);
        assert!(apply(&extra, &mut p.clone(), sz).is_err());
        assert!(apply(&s, &mut vec![0f32; 450], [10, 5, 9]).is_err(), "fewer voxels than coded symbols");
    }

    #[test]
    fn interpolation_mode_wins_on_smooth_blocks_and_ignores_the_prediction() {
        // A smooth ramp with a noisy "neural" prediction: every voxel bounded, so the
        // interpolation mode is tried, codes smaller, and decodes without the prediction.
        let sz = [16, 16, 16];
        let n = 16 * 16 * 16;
        let x: Vec<f32> = (0..n).map(|i| 100.0 + 0.3 * (i % 16) as f32 + 0.2 * ((i / 16) % 16) as f32 + 0.1 * (i / 256) as f32).collect();
        let p: Vec<f32> = x.iter().enumerate().map(|(i, &v)| v + if i % 3 == 0 { 0.7 } else { -0.5 }).collect();
        let bounds = vec![0.05f32; n];
        let (s, st) = encode(&x, &p, &bounds, sz).unwrap();
        let s = s.unwrap();
        assert!(interpolates(&s), "interpolation mode chosen for a smooth block");
        assert_eq!(st.corrected, n);
        let neural = choose(&x, |i| p[i], &bounds, sz, step_of(&s).unwrap(), Mode::Neural).unwrap();
        assert!(s.len() < serialise(&neural, step_of(&s).unwrap(), Mode::Neural, 0.0).unwrap().len());
        // Any prediction (even garbage) decodes to the same values: only the stream matters.
        for junk in [0.0f32, -1e6, 12345.0] {
            let mut rec = vec![junk; n];
            apply(&s, &mut rec, sz).unwrap();
            assert!(x.iter().zip(&rec).all(|(a, b)| (a - b).abs() <= 0.05), "bound holds");
        }
        // Threshold mode with an unbounded voxel keeps the neural mode (format 1.1).
        let mut partial = bounds.clone();
        partial[7] = f32::INFINITY;
        let (s2, _) = encode(&x, &p, &partial, sz).unwrap();
        assert!(!interpolates(&s2.unwrap()));
    }

    #[test]
    fn interpolation_order_visits_each_voxel_once_after_its_neighbours() {
        for sz in [[1, 1, 1], [32, 32, 32], [5, 3, 2], [17, 1, 9], [2, 31, 4], [1, 1, 40]] {
            let n = sz[0] * sz[1] * sz[2];
            let order = interp_order(sz);
            let mut seen = vec![false; n];
            for v in &order {
                assert!(!seen[v.i], "{sz:?}: voxel {} twice", v.i);
                for j in v.nb.iter().flatten() {
                    assert!(seen[*j], "{sz:?}: voxel {} reads {j} before it is decoded", v.i);
                }
                seen[v.i] = true;
            }
            assert!(seen.iter().all(|&s| s), "{sz:?}: every voxel visited");
        }
    }

    #[test]
    fn interpolation_streams_with_bad_offsets_are_rejected() {
        let sz = [8, 8, 8];
        let x: Vec<f32> = (0..512).map(|i| (i as f32 * 0.01).sin()).collect();
        let (s, _) = encode(&x, &vec![5.0; 512], &vec![0.01; 512], sz).unwrap();
        let s = s.unwrap();
        assert!(interpolates(&s));
        let mut bad = s.clone();
        bad[HEADER..HEADER + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert!(apply(&bad, &mut vec![0.0; 512], sz).is_err());
        assert!(apply(&s[..HEADER + 2], &mut vec![0.0; 512], sz).is_err());
        let mut zero = s.clone();
        zero[0..4].copy_from_slice(&(-0.0f32).to_le_bytes());
        assert!(apply(&zero, &mut vec![0.0; 512], sz).is_err(), "a zero step is corrupt in either mode");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The guarantee, with a perturbed decoder-side prediction standing in for device drift.
        #[test]
        fn bound_holds_for_every_bounded_voxel(
            seed in any::<u64>(),
            nx in 1usize..12,
            ny in 1usize..8,
            nz in 1usize..8,
            e_exp in -3i32..2,
            graded in any::<bool>(),
            offset in -1000f32..1000.0,
            spread in 0.01f32..100.0,
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (sz, n) = ([nx, ny, nz], nx * ny * nz);
            let e = 10f32.powi(e_exp) * spread;
            let spec = BoundSpec { abs: e, min_importance: 0.5, graded, max: graded.then_some(e * 20.0) };
            let x: Vec<f32> = (0..n).map(|_| offset + rng.random_range(-spread..spread)).collect();
            let p: Vec<f32> = x.iter().map(|&v| v + rng.random_range(-2.0 * spread..2.0 * spread) * rng.random::<f32>().powi(3)).collect();
            let imp: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
            let bounds: Vec<f32> = imp.iter().map(|&i| spec.at(i)).collect();
            prop_assume!(spec.check(offset - spread, offset + spread).is_ok());
            let (stream, stats) = encode(&x, &p, &bounds, sz).unwrap();
            let drift = MARGIN * e * 0.25;
            let mut rec: Vec<f32> = p.iter().map(|&v| v + rng.random_range(-drift..=drift)).collect();
            if let Some(s) = &stream { apply(s, &mut rec, sz).unwrap(); }
            for i in 0..n {
                if bounds[i].is_finite() {
                    let err = (x[i] as f64 - rec[i] as f64).abs();
                    prop_assert!(err <= bounds[i] as f64, "voxel {i}: |err| {err} > bound {}", bounds[i]);
                }
            }
            prop_assert_eq!(stats.bounded, bounds.iter().filter(|b| b.is_finite()).count());
        }
    }
}
