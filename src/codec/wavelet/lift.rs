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
        let j = if j < 0 { -j } else if j as usize >= n { 2 * (n as isize - 1) - j } else { j };
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

/// Size of the low band after `levels` halvings of `n` (each level: ceil(n/2)).
pub fn low_len(n: usize, levels: usize) -> usize {
    (0..levels).fold(n, |m, _| if m >= 2 { m.div_ceil(2) } else { m })
}

/// Levels a tile of size `sz` gets: halve while the largest edge's low band is at least 8,
/// at most `max` (an axis shorter than 2 is simply not split further).
pub fn levels_for(sz: [usize; 3], max: usize) -> usize {
    let e = *sz.iter().max().unwrap_or(&1);
    let mut l = 0;
    while l < max && low_len(e, l + 1) >= 4 && low_len(e, l) >= 8 {
        l += 1;
    }
    l
}

/// Applies `f` to every line along `axis` of the region `r` (a corner of the tile `sz`).
fn lines(data: &mut [f32], sz: [usize; 3], r: [usize; 3], axis: usize, line: &mut Vec<f32>, scratch: &mut Vec<f32>, f: fn(&mut [f32], &mut Vec<f32>)) {
    let stride = [1, sz[0], sz[0] * sz[1]];
    let (a, b) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let n = r[axis];
    if n < 2 {
        return;
    }
    for j in 0..r[b] {
        for i in 0..r[a] {
            let base = i * stride[a] + j * stride[b];
            if axis == 0 {
                f(&mut data[base..base + n], scratch);
            } else {
                line.clear();
                line.extend((0..n).map(|k| data[base + k * stride[axis]]));
                f(line, scratch);
                for (k, v) in line.iter().enumerate() {
                    data[base + k * stride[axis]] = *v;
                }
            }
        }
    }
}

/// The low-band region of each level: `regions[l]` is the corner transformed at level l.
pub fn regions(sz: [usize; 3], levels: usize) -> Vec<[usize; 3]> {
    (0..=levels).map(|l| [low_len(sz[0], l), low_len(sz[1], l), low_len(sz[2], l)]).collect()
}

/// Multi-level forward 3D transform of a tile (x fastest) in place.
pub fn forward3(data: &mut [f32], sz: [usize; 3], levels: usize) {
    let (mut line, mut scratch) = (Vec::new(), Vec::new());
    for r in regions(sz, levels).into_iter().take(levels) {
        for axis in 0..3 {
            lines(data, sz, r, axis, &mut line, &mut scratch, forward_line);
        }
    }
}

/// Inverse of `forward3`.
pub fn inverse3(data: &mut [f32], sz: [usize; 3], levels: usize) {
    let (mut line, mut scratch) = (Vec::new(), Vec::new());
    for r in regions(sz, levels).into_iter().take(levels).rev() {
        for axis in (0..3).rev() {
            lines(data, sz, r, axis, &mut line, &mut scratch, inverse_line);
        }
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
        forward3(&mut y, [64, 64, 1], 4);
        let e0: f32 = x.iter().map(|v| v * v).sum();
        let e1: f32 = y.iter().map(|v| v * v).sum();
        assert!((e1 / e0 - 1.0).abs() < 0.1, "energy ratio {}", e1 / e0);
    }

    #[test]
    fn odd_tiles_invert() {
        for sz in [[13, 7, 5], [64, 64, 64], [33, 1, 17], [2, 2, 2], [100, 3, 1]] {
            let n = sz[0] * sz[1] * sz[2];
            let x = noise(n, n as u32);
            let mut y = x.clone();
            let l = levels_for(sz, 5);
            forward3(&mut y, sz, l);
            inverse3(&mut y, sz, l);
            let e = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(e < 1e-4, "{sz:?}: max error {e}");
        }
    }
}
