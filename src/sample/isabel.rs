//! `isabel`: hurricane-like pressure perturbation (synthetic stand-in for the
//! paper's Isabel pressure field), in Pa relative to the environment.
//!
//! Holland (1980) profile p'(r) = -Δp exp(-(R_max / r)^B) around an eye placed
//! off-centre, a pressure deficit that weakens with height (z), a weak
//! large-scale gradient, and multi-octave smooth noise (value noise with
//! seeded lattices, trilinear interpolation). Values span about -5000..+1500
//! Pa like the real field. Step `s` moves the eye along a curved track and
//! deepens it slightly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Smooth noise: one octave = random values on a coarse periodic lattice, trilinear.
fn octave(dims: [usize; 3], cells: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let c = cells.max(1);
    let lat: Vec<f32> = (0..(c + 1).pow(3)).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let at = |i: usize, j: usize, k: usize| lat[(k * (c + 1) + j) * (c + 1) + i];
    let mut out = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    for z in 0..dims[2] {
        let fz = z as f32 / dims[2] as f32 * c as f32;
        for y in 0..dims[1] {
            let fy = y as f32 / dims[1] as f32 * c as f32;
            for x in 0..dims[0] {
                let fx = x as f32 / dims[0] as f32 * c as f32;
                let (i, j, k) = (fx as usize, fy as usize, fz as usize);
                let (tx, ty, tz) = (fx - i as f32, fy - j as f32, fz - k as f32);
                let s = |t: f32| t * t * (3.0 - 2.0 * t);
                let (tx, ty, tz) = (s(tx), s(ty), s(tz));
                let l = |a: f32, b: f32, t: f32| a + (b - a) * t;
                let v = l(
                    l(l(at(i, j, k), at(i + 1, j, k), tx), l(at(i, j + 1, k), at(i + 1, j + 1, k), tx), ty),
                    l(l(at(i, j, k + 1), at(i + 1, j, k + 1), tx), l(at(i, j + 1, k + 1), at(i + 1, j + 1, k + 1), tx), ty),
                    tz,
                );
                out.push(v);
            }
        }
    }
    out
}

pub fn generate(dims: [usize; 3], seed: u64, step: usize) -> Vec<f32> {
    let [nx, ny, nz] = dims;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x15ab);
    let t = step as f32;
    let (fx, fy) = (nx as f32, ny as f32);
    // Eye off-centre, drifting along a gentle curve with time.
    let cx0 = fx * (0.42 + 0.12 * rng.random::<f32>());
    let cy0 = fy * (0.40 + 0.12 * rng.random::<f32>());
    let cx = cx0 + t * fx * 0.02;
    let cy = cy0 + t * fy * 0.012 + (t * 0.4).sin() * fy * 0.01;
    let rmax = fx.min(fy) * (0.05 + 0.02 * rng.random::<f32>());
    let b = 1.4 + 0.4 * rng.random::<f32>();
    let dp = 4500.0 + 300.0 * t.min(5.0) + 400.0 * rng.random::<f32>();
    let mut noise = vec![0f32; nx * ny * nz];
    for (o, amp) in [(3usize, 350.0f32), (7, 160.0), (15, 70.0), (31, 30.0)] {
        for (n, v) in noise.iter_mut().zip(octave(dims, o, &mut rng)) {
            *n += amp * v;
        }
    }
    let gx = 200.0 * (rng.random::<f32>() - 0.5);
    let mut out = Vec::with_capacity(nx * ny * nz);
    for z in 0..nz {
        let h = z as f32 / nz.max(2) as f32;
        let deficit = dp * (1.0 - 0.75 * h);
        // The eye tilts with height.
        let (ex, ey) = (cx + h * rmax * 1.5, cy - h * rmax);
        for y in 0..ny {
            for x in 0..nx {
                let r = (((x as f32 - ex).powi(2) + (y as f32 - ey).powi(2)).sqrt()).max(0.5);
                let holland = -deficit * (1.0 - (-(rmax / r).powf(b)).exp());
                let env = gx * (x as f32 / fx - 0.5) + 800.0 * (1.0 - h) - 400.0;
                out.push(holland + env + noise[(z * ny + y) * nx + x] * (0.4 + 0.6 * h));
            }
        }
    }
    out
}
