//! Rate control: a global importance scale s (I' = clamp(s * I, 0, 1)) found by
//! bisection on a subsample of blocks so that the estimated ratio or the
//! estimated importance-weighted PSNR meets the user's target; the full pack
//! then runs once with that scale.

use super::blocks::{gather, Norm};
use super::bound::BoundSpec;
use super::pipeline::{BlockData, Codec, EncodeOptions, MemStore};
use crate::format::{BlockGrid, BlockId};
use crate::volume::Dims;
use std::collections::HashMap;

/// What the user asked for.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Original bytes / stored bytes at least this.
    Ratio(f64),
    /// Importance-weighted PSNR (dB) at least this.
    WPsnr(f64),
}

/// Outcome of the search on the subsample.
#[derive(Clone, Copy, Debug)]
pub struct Choice {
    pub scale: f32,
    pub est_ratio: f64,
    pub est_wpsnr: f64,
    /// False when no scale in the search range meets the target; `scale` is then the closest.
    pub met: bool,
}

/// Evenly spaced block ids, at most `n`.
pub fn subsample(nblocks: usize, n: usize) -> Vec<usize> {
    if nblocks <= n {
        return (0..nblocks).collect();
    }
    (0..n).map(|i| i * nblocks / n).collect()
}

/// Estimated (ratio, wPSNR) of packing with importance scale `s`, from the sample blocks.
/// Ratio counts payload bytes against f32 input; a neural block's latent ring
/// uses only sampled neighbours, a slight pessimism. With an error bound the
/// residual streams are coded too (they need the prediction, so quality is
/// then always measured).
#[allow(clippy::too_many_arguments, reason = "the inputs of one rate-control probe, each used directly; `pack::Plan` checks them above the codec")]
pub fn probe(codec: &Codec, data: &[f32], dims: Dims, imp: &[f32], norm: Norm, opts: EncodeOptions, sample: &[usize], s: f32, with_quality: bool, bound: Option<&BoundSpec>) -> (f64, f64) {
    let scaled: Vec<f32> = imp.iter().map(|&v| (v * s).clamp(0.0, 1.0)).collect();
    let mut blocks = HashMap::new();
    let mut bytes = 0usize;
    let mut voxels = 0usize;
    let core = codec.core();
    let g = BlockGrid::cubic(dims, core);
    codec
        .encode_blocks(data, dims, &scaled, norm, opts, sample, |id, d| {
            bytes += d.stored_len() + 24; // plus the index entry
            let (_, sz) = g.extent(BlockId(id as u64));
            voxels += sz[0] * sz[1] * sz[2];
            blocks.insert(id, d);
            Ok::<_, ()>(())
        })
        .expect("probe sink cannot fail");
    if !with_quality && bound.is_none() {
        return ((voxels * 4) as f64 / bytes.max(1) as f64, f64::NAN);
    }
    let neural: Vec<usize> = sample.iter().copied().filter(|b| matches!(blocks.get(b), Some(BlockData::Neural { .. }))).collect();
    let dec = codec.decode_blocks(&MemStore(&blocks), dims, norm, &neural, 16);
    let (mut wse, mut wsum) = (0f64, 0f64);
    for (k, &id) in neural.iter().enumerate() {
        let Ok(rec) = &dec[k] else { continue };
        let mut rec = rec.clone();
        let (o, sz) = g.extent(BlockId(id as u64));
        let mut orig = vec![0f32; rec.len()];
        let mut w = vec![0f32; rec.len()];
        gather(data, dims, o, sz, &mut orig);
        // wPSNR weighs by the map as given (as `eval` does); bounds follow the scaled map, as packing does.
        gather(imp, dims, o, sz, &mut w);
        if let Some(b) = bound {
            let mut ws = vec![0f32; rec.len()];
            gather(&scaled, dims, o, sz, &mut ws);
            let e: Vec<f32> = ws.iter().map(|&i| b.at(i)).collect();
            if let Ok((Some(r), _)) = super::bound::encode(&orig, &rec, &e, sz) {
                bytes += r.len() + 4;
                let _ = super::bound::apply(&r, &mut rec, sz);
            }
        }
        for i in 0..rec.len() {
            let e = (orig[i] - rec[i]) as f64;
            wse += w[i] as f64 * e * e;
            wsum += w[i] as f64;
        }
    }
    let ratio = (voxels * 4) as f64 / bytes.max(1) as f64;
    let (lo, hi) = crate::volume::value_range(data);
    let v = (hi - lo) as f64;
    let wpsnr = if wsum > 0.0 && wse > 0.0 { 10.0 * (v * v / (wse / wsum)).log10() } else { f64::INFINITY };
    (ratio, wpsnr)
}

/// Bisection over log2(s) in [-6, 3] (ratio falls and wPSNR rises with s).
#[allow(clippy::too_many_arguments, reason = "the inputs of one rate-control probe, each used directly; `pack::Plan` checks them above the codec")]
pub fn search(codec: &Codec, data: &[f32], dims: Dims, imp: &[f32], norm: Norm, opts: EncodeOptions, target: Target, sample: &[usize], bound: Option<&BoundSpec>) -> Choice {
    let quality = matches!(target, Target::WPsnr(_));
    let eval = |ls: f64| {
        let s = 2f64.powf(ls) as f32;
        let (r, q) = probe(codec, data, dims, imp, norm, opts, sample, s, quality, bound);
        (s, r, q)
    };
    let meets = |r: f64, q: f64| match target {
        Target::Ratio(t) => r >= t,
        Target::WPsnr(t) => q >= t,
    };
    // Meeting the target gets easier as s falls for a ratio, harder for quality.
    let (lo, hi) = (-6.0f64, 3.0f64);
    let (s_lo, r_lo, q_lo) = eval(lo);
    let (s_hi, r_hi, q_hi) = eval(hi);
    match target {
        Target::Ratio(_) if !meets(r_lo, q_lo) => return Choice { scale: s_lo, est_ratio: r_lo, est_wpsnr: q_lo, met: false },
        Target::Ratio(_) if meets(r_hi, q_hi) => return Choice { scale: s_hi, est_ratio: r_hi, est_wpsnr: q_hi, met: true },
        Target::WPsnr(_) if !meets(r_hi, q_hi) => return Choice { scale: s_hi, est_ratio: r_hi, est_wpsnr: q_hi, met: false },
        Target::WPsnr(_) if meets(r_lo, q_lo) => return Choice { scale: s_lo, est_ratio: r_lo, est_wpsnr: q_lo, met: true },
        _ => {}
    }
    // Invariant: the target is met at `good` and not at `bad`.
    let (mut good, mut bad) = match target {
        Target::Ratio(_) => (lo, hi),
        Target::WPsnr(_) => (hi, lo),
    };
    let mut best = if matches!(target, Target::Ratio(_)) { (s_lo, r_lo, q_lo) } else { (s_hi, r_hi, q_hi) };
    for _ in 0..9 {
        let mid = 0.5 * (good + bad);
        let (s, r, q) = eval(mid);
        if meets(r, q) {
            good = mid;
            best = (s, r, q);
        } else {
            bad = mid;
        }
    }
    Choice { scale: best.0, est_ratio: best.1, est_wpsnr: best.2, met: true }
}
