//! CDF 9/7 lifting on arbitrary lengths (whole-sample symmetric extension),
//! and its multi-level 3D (Mallat) form over one tile.
//!
//! After a level, each transformed axis holds its `ceil(n/2)` low-pass
//! coefficients first, then the `floor(n/2)` high-pass ones; the next level
//! works on the low-low-low corner. Scaling makes the transform close to
//! orthonormal (a constant line's low band gains √2), so one quantiser step
//! means about the same error in every subband.
//!
//! Everything is plain f32 arithmetic in a fixed order: encoder and decoder
//! run the same code, so a tile decodes to the same bits on any machine and
//! thread count.

use rayon::prelude::*;

const ALPHA: f32 = -1.586_134_3;
const BETA: f32 = -0.052_980_118;
const GAMMA: f32 = 0.882_911_1;
const DELTA: f32 = 0.443_506_87;
/// Low band scale; the high band gets its inverse, so lifting stays exactly invertible
/// up to rounding. Chosen so a constant line's low band is √2 × the value.
const ZETA: f32 = 1.149_604_4;

/// One lifting step over the odd (`odd = true`) or even samples: x[i] += c (x[i-1] + x[i+1]),
/// neighbours mirrored at the ends (x[-1] = x[1], x[n] = x[n-2]).
#[inline]
fn step(x: &mut [f32], c: f32, odd: bool) {
    let n = x.len();
    let at = |x: &[f32], j: isize| -> f32 {
        let j = if j < 0 {
            -j
        } else if j as usize >= n {
            2 * (n as isize - 1) - j
        } else {
            j
        };
        x[j as usize]
    };
    let first = if odd { 1 } else { 0 };
    // Interior points without bounds juggling; the two ends through `at`.
    let mut i = first;
    while i < n {
        let l = if i >= 1 { x[i - 1] } else { at(x, i as isize - 1) };
        let r = if i + 1 < n { x[i + 1] } else { at(x, i as isize + 1) };
        x[i] += c * (l + r);
        i += 2;
    }
}

/// Forward transform of one line in place, then deinterleave into `scratch` and back:
/// lows first, highs after.
pub fn forward_line(x: &mut [f32], scratch: &mut Vec<f32>) {
    let n = x.len();
    if n < 2 {
        return;
    }
    step(x, ALPHA, true);
    step(x, BETA, false);
    step(x, GAMMA, true);
    step(x, DELTA, false);
    scratch.clear();
    scratch.extend(x.iter().step_by(2).map(|v| v * ZETA));
    scratch.extend(x.iter().skip(1).step_by(2).map(|v| v / ZETA));
    x.copy_from_slice(scratch);
}

/// Inverse of `forward_line`.
pub fn inverse_line(x: &mut [f32], scratch: &mut Vec<f32>) {
    let n = x.len();
    if n < 2 {
        return;
    }
    let lows = n.div_ceil(2);
    scratch.clear();
    scratch.resize(n, 0.0);
    for (i, v) in x[..lows].iter().enumerate() {
        scratch[2 * i] = v / ZETA;
    }
    for (i, v) in x[lows..].iter().enumerate() {
        scratch[2 * i + 1] = v * ZETA;
    }
    x.copy_from_slice(scratch);
    step(x, -DELTA, false);
    step(x, -GAMMA, true);
    step(x, -BETA, false);
    step(x, -ALPHA, true);
}

// The tile geometry the format defines (spec §6.3).
pub use crate::format::version::{low_len, wavelet_levels as levels_for};

/// One lifting step over rows: row[i] += c (row[i-1] + row[i+1]) for odd (or even) i,
/// mirrored at the ends. Whole rows at a time, so the inner loop is contiguous and
/// vectorises.
fn step_rows(rs: &mut [&mut [f32]], c: f32, odd: bool, tmp: &mut Vec<f32>) {
    let n = rs.len();
    let mirror = |j: isize| -> usize {
        let j = if j < 0 {
            -j
        } else if j as usize >= n {
            2 * (n as isize - 1) - j
        } else {
            j
        };
        j as usize
    };
    let w = rs[0].len();
    tmp.clear();
    tmp.resize(w, 0.0);
    let mut i = if odd { 1 } else { 0 };
    while i < n {
        let (l, r) = (mirror(i as isize - 1), mirror(i as isize + 1));
        for ((t, a), b) in tmp.iter_mut().zip(rs[l].iter()).zip(rs[r].iter()) {
            *t = a + b;
        }
        for (v, t) in rs[i].iter_mut().zip(tmp.iter()) {
            *v += c * t;
        }
        i += 2;
    }
}

/// Scratch of one thread's row transforms.
#[derive(Default)]
struct Scratch {
    rows: Vec<f32>,
    tmp: Vec<f32>,
}

/// Forward (or inverse) transform along a non-contiguous axis: the rows `rs` (equally
/// wide, in axis order), deinterleaved through scratch (lows first).
fn rows(rs: &mut [&mut [f32]], s: &mut Scratch, inverse: bool) {
    let n = rs.len();
    if n < 2 {
        return;
    }
    let w = rs[0].len();
    let lows = n.div_ceil(2);
    if !inverse {
        step_rows(rs, ALPHA, true, &mut s.tmp);
        step_rows(rs, BETA, false, &mut s.tmp);
        step_rows(rs, GAMMA, true, &mut s.tmp);
        step_rows(rs, DELTA, false, &mut s.tmp);
        s.rows.clear();
        for i in (0..n).step_by(2).chain((1..n).step_by(2)) {
            let even = i % 2 == 0;
            s.rows.extend(rs[i].iter().map(|v| if even { v * ZETA } else { v / ZETA }));
        }
        for (i, r) in rs.iter_mut().enumerate() {
            r.copy_from_slice(&s.rows[i * w..(i + 1) * w]);
        }
    } else {
        s.rows.clear();
        s.rows.resize(n * w, 0.0);
        for (i, r) in rs.iter().enumerate() {
            let low = i < lows;
            let dst = if low { 2 * i } else { 2 * (i - lows) + 1 };
            for (o, v) in s.rows[dst * w..(dst + 1) * w].iter_mut().zip(r.iter()) {
                *o = if low { v / ZETA } else { v * ZETA };
            }
        }
        for (i, r) in rs.iter_mut().enumerate() {
            r.copy_from_slice(&s.rows[i * w..(i + 1) * w]);
        }
        step_rows(rs, -DELTA, false, &mut s.tmp);
        step_rows(rs, -GAMMA, true, &mut s.tmp);
        step_rows(rs, -BETA, false, &mut s.tmp);
        step_rows(rs, -ALPHA, true, &mut s.tmp);
    }
}

/// Regions of at least this many samples run their x and y passes on several threads.
const PARALLEL_REGION: usize = 1 << 16;

/// Transforms every line along `axis` of the region `r` (a corner of the tile `sz`).
fn axis_pass(data: &mut [f32], sz: [usize; 3], r: [usize; 3], axis: usize, scratch: &mut Scratch, inverse: bool) {
    let (sx, sxy) = (sz[0], sz[0] * sz[1]);
    if r[axis] < 2 {
        return;
    }
    let large = r[0] * r[1] * r[2] >= PARALLEL_REGION;
    // Every line is transformed alone, so the result is the same on any thread count
    // (a volume may have fewer tiles than cores: large regions use them all).
    if axis == 2 {
        // z: per y, the region's rows along z (a plane apart), gathered as disjoint slices.
        let mut by_y: Vec<Vec<&mut [f32]>> = (0..r[1]).map(|_| Vec::with_capacity(r[2])).collect();
        for p in data.chunks_mut(sxy).take(r[2]) {
            for (y, row) in p.chunks_mut(sx).take(r[1]).enumerate() {
                by_y[y].push(&mut row[..r[0]]);
            }
        }
        if large {
            by_y.par_iter_mut().for_each_init(Scratch::default, |s, rs| rows(rs, s, inverse));
        } else {
            by_y.iter_mut().for_each(|rs| rows(rs, scratch, inverse));
        }
        return;
    }
    // x and y: plane by plane.
    let plane = |p: &mut [f32], s: &mut Scratch| {
        if axis == 0 {
            let f = if inverse { inverse_line } else { forward_line };
            for y in 0..r[1] {
                f(&mut p[y * sx..y * sx + r[0]], &mut s.rows);
            }
        } else {
            let mut rs: Vec<&mut [f32]> = p.chunks_mut(sx).take(r[1]).map(|row| &mut row[..r[0]]).collect();
            rows(&mut rs, s, inverse);
        }
    };
    if large {
        data.par_chunks_mut(sxy).take(r[2]).for_each_init(Scratch::default, |s, p| plane(p, s));
    } else {
        data.chunks_mut(sxy).take(r[2]).for_each(|p| plane(p, scratch));
    }
}

/// The low-band region of each level: `regions[l]` is the corner transformed at level l.
fn regions(sz: [usize; 3], levels: usize) -> Vec<[usize; 3]> {
    (0..=levels).map(|l| [low_len(sz[0], l), low_len(sz[1], l), low_len(sz[2], l)]).collect()
}

/// How a tile's levels are arranged. Mallat's (dyadic) splits only the low band at
/// each level. Packet: `levels` z-only levels on whole columns, then `levels` 2D
/// (x, y) levels on every z band. Tensor: each axis fully on its own. Fields smooth
/// in-plane but rough along z (stratified flows, thin slabs) or anisotropic in
/// general put energy in bands that Mallat's decomposition never splits again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Mallat = 0,
    Packet = 1,
    Tensor = 2,
}

impl Layout {
    pub const ALL: [Layout; 3] = [Layout::Mallat, Layout::Packet, Layout::Tensor];

    pub fn from_byte(b: u8) -> Option<Layout> {
        Layout::ALL.get(b as usize).copied()
    }
}

/// Energy of the 1D synthesis basis function of a coefficient (long lines, centre):
/// `[low half at level l, high half at level l]` for l = 1..6. A band's gain is
/// the product over its axes; quantisation error in a coefficient reaches the
/// voxels scaled by it (CDF 9/7 is close to, not exactly, orthonormal).
const GAIN: [[f64; 2]; 6] = [[0.9830, 1.0404], [1.0306, 0.9672], [1.0521, 1.0396], [1.0585, 1.0751], [1.0602, 1.0858], [1.0606, 1.0890]];

/// Synthesis energy of a band with per-axis levels `lv` (0: untransformed axis) and
/// orientation bits `orient` (bit a: high along a).
pub fn band_gain(lv: [usize; 3], orient: usize) -> f64 {
    (0..3).map(|a| if lv[a] == 0 { 1.0 } else { GAIN[lv[a].min(6) - 1][orient >> a & 1] }).product()
}

/// The passes of a layout in forward order: (region, axis).
fn passes(sz: [usize; 3], levels: usize, layout: Layout) -> Vec<([usize; 3], usize)> {
    let mut out = Vec::new();
    let along = |a: usize, l: usize| {
        let mut r = sz;
        r[a] = low_len(sz[a], l);
        r
    };
    match layout {
        Layout::Mallat => {
            for r in regions(sz, levels).into_iter().take(levels) {
                out.extend((0..3).map(|a| (r, a)));
            }
        }
        Layout::Packet => {
            out.extend((0..levels).map(|l| (along(2, l), 2)));
            for l in 0..levels {
                let r = [low_len(sz[0], l), low_len(sz[1], l), sz[2]];
                out.extend([(r, 0), (r, 1)]);
            }
        }
        Layout::Tensor => {
            for a in 0..3 {
                out.extend((0..levels).map(|l| (along(a, l), a)));
            }
        }
    }
    out
}

/// Multi-level forward transform of a tile (x fastest) in place, in `layout`.
pub fn forward(data: &mut [f32], sz: [usize; 3], levels: usize, layout: Layout) {
    let mut scratch = Scratch::default();
    for (r, a) in passes(sz, levels, layout) {
        axis_pass(data, sz, r, a, &mut scratch, false);
    }
}

/// Inverse of `forward`.
pub fn inverse(data: &mut [f32], sz: [usize; 3], levels: usize, layout: Layout) {
    let mut scratch = Scratch::default();
    for (r, a) in passes(sz, levels, layout).into_iter().rev() {
        axis_pass(data, sz, r, a, &mut scratch, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn lines_of_every_length_invert() {
        for n in 1..40 {
            let x = noise(n, n as u32);
            let mut y = x.clone();
            let mut s = Vec::new();
            forward_line(&mut y, &mut s);
            inverse_line(&mut y, &mut s);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-5, "n={n}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn constant_line_goes_to_the_low_band_with_gain_sqrt2() {
        let mut y = vec![1.0f32; 32];
        forward_line(&mut y, &mut Vec::new());
        for v in &y[..16] {
            assert!((v - std::f32::consts::SQRT_2).abs() < 1e-3, "low {v}");
        }
        for v in &y[16..] {
            assert!(v.abs() < 1e-5, "high {v}");
        }
    }

    #[test]
    fn transform_is_close_to_orthonormal() {
        let x = noise(64 * 64, 7);
        let mut y = x.clone();
        forward(&mut y, [64, 64, 1], 4, Layout::Mallat);
        let e0: f32 = x.iter().map(|v| v * v).sum();
        let e1: f32 = y.iter().map(|v| v * v).sum();
        assert!((e1 / e0 - 1.0).abs() < 0.1, "energy ratio {}", e1 / e0);
    }

    #[test]
    fn row_passes_equal_line_passes() {
        // The y/z passes lift whole rows; each column must come out as the 1-D transform.
        for n in [2usize, 3, 8, 13] {
            let w = 5;
            let x = noise(n * w, n as u32 + 99);
            let mut d = x.clone();
            let mut s = Scratch::default();
            rows(&mut d.chunks_mut(w).collect::<Vec<_>>(), &mut s, false);
            for k in 0..w {
                let mut col: Vec<f32> = (0..n).map(|i| x[i * w + k]).collect();
                forward_line(&mut col, &mut s.rows);
                for i in 0..n {
                    assert_eq!(col[i].to_bits(), d[i * w + k].to_bits(), "n={n} k={k} i={i}");
                }
            }
            rows(&mut d.chunks_mut(w).collect::<Vec<_>>(), &mut s, true);
            assert!(x.iter().zip(&d).all(|(a, b)| (a - b).abs() < 1e-5));
        }
    }

    #[test]
    fn every_layout_inverts_and_shares_the_low_band() {
        for sz in [[16, 16, 16], [13, 9, 20], [64, 64, 48], [8, 8, 1]] {
            let x = noise(sz.iter().product(), 7);
            let levels = levels_for(sz, 6);
            let mut d = x.clone();
            forward(&mut d, sz, levels, Layout::Mallat);
            for layout in [Layout::Packet, Layout::Tensor] {
                let mut p = x.clone();
                forward(&mut p, sz, levels, layout);
                // The all-low band is the same separable low-pass either way.
                let l = [low_len(sz[0], levels), low_len(sz[1], levels), low_len(sz[2], levels)];
                for z in 0..l[2] {
                    for y in 0..l[1] {
                        for i in 0..l[0] {
                            let k = (z * sz[1] + y) * sz[0] + i;
                            assert!((p[k] - d[k]).abs() < 1e-3 * (1.0 + d[k].abs()), "{sz:?} {k}: {} vs {}", p[k], d[k]);
                        }
                    }
                }
                inverse(&mut p, sz, levels, layout);
                let e = x.iter().zip(&p).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(e < 1e-4, "{sz:?} {layout:?}: {e}");
            }
        }
    }

    #[test]
    fn odd_tiles_invert() {
        for sz in [[13, 7, 5], [64, 64, 64], [33, 1, 17], [2, 2, 2], [100, 3, 1]] {
            let n = sz[0] * sz[1] * sz[2];
            let x = noise(n, n as u32);
            let mut y = x.clone();
            let l = levels_for(sz, 5);
            forward(&mut y, sz, l, Layout::Mallat);
            inverse(&mut y, sz, l, Layout::Mallat);
            let e = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(e < 1e-4, "{sz:?}: max error {e}");
        }
    }
}
