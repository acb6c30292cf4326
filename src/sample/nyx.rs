//! `nyx`: log10 density of a cosmology-like matter field (synthetic stand-in
//! for the paper's Nyx data).
//!
//! A Gaussian random field with power spectrum P(k) ∝ k^-2.5 exp(-(k/kc)^2)
//! gives the linear density contrast δ; the Zel'dovich approximation moves a
//! particle lattice by D·ψ with ψ = -∇φ, ∇²φ = δ (so ψ_hat = i k δ_hat / k²);
//! particles are deposited with cloud-in-cell; output is log10 of the density
//! (mean-normalised, floored at 1e-2) shifted so the mean density sits at 9.5:
//! values span about 8..12. Step `s` uses growth factor D = 1 + 0.35 s, so
//! later steps are more clustered.

use super::spectral::{wavenumber, Fft3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rustfft::num_complex::Complex64;

pub fn generate(dims: [usize; 3], seed: u64, step: usize) -> Vec<f32> {
    let [nx, ny, nz] = dims;
    let n = nx * ny * nz;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4e79);
    let fft = Fft3::new(dims);
    // White noise in real space, coloured in Fourier space: a real GRF.
    let mut d: Vec<Complex64> = (0..n).map(|_| Complex64::new(StandardNormal.sample(&mut rng), 0.0)).collect();
    fft.forward(&mut d);
    let nmax = nx.max(ny).max(nz) as f64;
    let kc = nmax / 6.0;
    let mut kvec = Vec::with_capacity(n);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                // Physical wavenumbers on a box of size nmax (anisotropic grids keep square voxels).
                kvec.push([wavenumber(x, nx) * nmax / nx as f64, wavenumber(y, ny) * nmax / ny as f64, wavenumber(z, nz) * nmax / nz as f64]);
            }
        }
    }
    for (j, k) in kvec.iter().enumerate() {
        let kk = (k[0] * k[0] + k[1] * k[1] + k[2] * k[2]).sqrt();
        let amp = if kk == 0.0 { 0.0 } else { kk.powf(-1.25) * (-(kk / kc).powi(2) * 0.5).exp() };
        d[j] *= amp;
    }
    // Normalise the linear field to unit rms displacement scale.
    let mut disp = Vec::new();
    for a in 0..3 {
        let mut p: Vec<Complex64> = d
            .iter()
            .zip(&kvec)
            .map(|(dv, k)| {
                let k2 = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
                if k2 == 0.0 {
                    Complex64::default()
                } else {
                    Complex64::new(0.0, k[a] / k2) * dv
                }
            })
            .collect();
        fft.inverse(&mut p);
        disp.push(p.iter().map(|c| c.re).collect::<Vec<f64>>());
    }
    let rms = (disp.iter().flat_map(|v| v.iter()).map(|v| v * v).sum::<f64>() / (3 * n) as f64).sqrt().max(1e-12);
    let growth = (1.0 + 0.35 * step as f64) * 1.6 / rms; // ~1.6 voxels rms displacement at step 0
    let mut rho = vec![0f64; n];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let j = (z * ny + y) * nx + x;
                let p = [x as f64 + growth * disp[0][j], y as f64 + growth * disp[1][j], z as f64 + growth * disp[2][j]];
                // Cloud-in-cell deposit, periodic.
                let f = p.map(f64::floor);
                let t = [p[0] - f[0], p[1] - f[1], p[2] - f[2]];
                for c in 0..8 {
                    let o = [c & 1, (c >> 1) & 1, (c >> 2) & 1];
                    let w: f64 = (0..3).map(|a| if o[a] == 1 { t[a] } else { 1.0 - t[a] }).product();
                    let ix = (f[0] as i64 + o[0] as i64).rem_euclid(nx as i64) as usize;
                    let iy = (f[1] as i64 + o[1] as i64).rem_euclid(ny as i64) as usize;
                    let iz = (f[2] as i64 + o[2] as i64).rem_euclid(nz as i64) as usize;
                    rho[(iz * ny + iy) * nx + ix] += w;
                }
            }
        }
    }
    rho.iter().map(|&r| (9.5 + r.max(1e-2).log10()) as f32).collect()
}
