//! Volume ↔ block plumbing shared by packing, decoding and training: value
//! normalisation, halo windows with edge replication, and assembling a
//! block's latent window from its neighbours' stored latents.

use crate::volume::Dims;

/// The codecs' value normalisation is the one the container stores.
pub use crate::format::Normalisation as Norm;

pub use crate::format::grid::{gather, scatter};

/// Copies the `w`^3 window whose first voxel is `start` (may be negative or
/// run past the end) into `out`, replicating edge voxels outside the volume.
pub fn extract_window(data: &[f32], dims: Dims, start: [isize; 3], w: usize, out: &mut [f32]) {
    let [nx, ny, nz] = dims;
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let xs: Vec<usize> = (0..w).map(|i| clamp(start[0] + i as isize, nx)).collect();
    for k in 0..w {
        let z = clamp(start[2] + k as isize, nz);
        for j in 0..w {
            let y = clamp(start[1] + j as isize, ny);
            let row = &data[(z * ny + y) * nx..(z * ny + y + 1) * nx];
            let o = &mut out[(k * w + j) * w..(k * w + j + 1) * w];
            for (dst, &x) in o.iter_mut().zip(&xs) {
                *dst = row[x];
            }
        }
    }
}

/// Copies the clipped part of a decoded `core`^3 block into a clipped-extent buffer (x fastest).
pub fn crop_core(block: &[f32], core: usize, size: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(size[0] * size[1] * size[2]);
    for z in 0..size[2] {
        for y in 0..size[1] {
            let s = (z * core + y) * core;
            out.extend_from_slice(&block[s..s + size[0]]);
        }
    }
    out
}

/// Assembles the latent window (`m * lw^3`, channel-major) for block `b` from
/// stored latent cores (`m * l^3` each). `get(block)` returns a neighbour's
/// latents or None (outside the grid, not neural, or undecodable); missing
/// positions replicate the nearest latent of block `b` itself, the latent
/// analogue of replicating edge voxels.
pub fn latent_window<'a>(b: [usize; 3], counts: [usize; 3], m: usize, l: usize, halo: usize, get: impl Fn([usize; 3]) -> Option<&'a [f32]>, out: &mut [f32]) {
    let lw = l + 2 * halo;
    let own = get(b).expect("the block itself has latents");
    for k in 0..lw {
        for j in 0..lw {
            for i in 0..lw {
                let rel = [i as isize - halo as isize, j as isize - halo as isize, k as isize - halo as isize];
                // Global latent coordinate, then owning block and local offset.
                let mut nb = b;
                let mut loc = [0usize; 3];
                let mut inside = true;
                for a in 0..3 {
                    let g = (b[a] * l) as isize + rel[a];
                    if g < 0 || g >= (counts[a] * l) as isize {
                        inside = false;
                        break;
                    }
                    nb[a] = g as usize / l;
                    loc[a] = g as usize % l;
                }
                let src = if inside { get(nb) } else { None };
                let (src, loc) = match src {
                    Some(s) => (s, loc),
                    None => (own, [0, 1, 2].map(|a| rel[a].clamp(0, l as isize - 1) as usize)),
                };
                let si = (loc[2] * l + loc[1]) * l + loc[0];
                let di = (k * lw + j) * lw + i;
                for c in 0..m {
                    out[c * lw * lw * lw + di] = src[c * l * l * l + si];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_replicates_edges() {
        let dims = [3, 2, 2];
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut out = vec![0f32; 64];
        extract_window(&data, dims, [-1, -1, -1], 4, &mut out);
        assert_eq!(out[0], 0.0); // clamped corner
        assert_eq!(out[(4 + 1) * 4 + 1], 0.0);
        assert_eq!(out[(4 + 1) * 4 + 3], 2.0);
        assert_eq!(out[(2 * 4 + 2) * 4 + 3], 11.0);
        assert_eq!(out[63], 11.0);
    }

    #[test]
    fn latent_window_takes_neighbours() {
        // 2x1x1 blocks, m = 1, l = 2: block 0 latents all 1, block 1 all 2.
        let a = [1f32; 8];
        let b = [2f32; 8];
        let mut out = vec![0f32; 64];
        latent_window(
            [0, 0, 0],
            [2, 1, 1],
            1,
            2,
            1,
            |p| match p {
                [0, 0, 0] => Some(&a[..]),
                [1, 0, 0] => Some(&b[..]),
                _ => None,
            },
            &mut out,
        );
        // x index 3 is the first latent of block 1; x index 0 replicates block 0.
        assert_eq!(out[(4 + 1) * 4 + 3], 2.0);
        assert_eq!(out[(4 + 1) * 4], 1.0);
        assert_eq!(out[(4 + 1) * 4 + 2], 1.0);
    }

    #[test]
    fn norm_round_trips() {
        let n = Norm::from_range(-3.0, 5.0);
        assert!((n.inverse(n.forward(1.25)) - 1.25).abs() < 1e-6);
        assert_eq!(Norm::from_range(2.0, 2.0).scale, 1.0);
    }
}
