//! 3D FFTs on periodic grids (x fastest) built from rustfft line transforms,
//! parallel over independent lines, so results do not depend on thread count.

use rayon::prelude::*;
use rustfft::{num_complex::Complex64, Fft, FftPlanner};
use std::sync::Arc;

pub struct Fft3 {
    pub dims: [usize; 3],
    fwd: [Arc<dyn Fft<f64>>; 3],
    inv: [Arc<dyn Fft<f64>>; 3],
}

impl Fft3 {
    pub fn new(dims: [usize; 3]) -> Fft3 {
        let mut p = FftPlanner::new();
        let f = |p: &mut FftPlanner<f64>, n: usize, inv: bool| if inv { p.plan_fft_inverse(n) } else { p.plan_fft_forward(n) };
        Fft3 { dims, fwd: [f(&mut p, dims[0], false), f(&mut p, dims[1], false), f(&mut p, dims[2], false)], inv: [f(&mut p, dims[0], true), f(&mut p, dims[1], true), f(&mut p, dims[2], true)] }
    }

    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn transform(&self, data: &mut [Complex64], plans: &[Arc<dyn Fft<f64>>; 3]) {
        let [nx, ny, nz] = self.dims;
        // x: contiguous rows.
        data.par_chunks_mut(nx).for_each(|row| plans[0].process(row));
        // y: per z-plane, gather columns.
        data.par_chunks_mut(nx * ny).for_each(|plane| {
            let mut buf = vec![Complex64::new(0.0, 0.0); ny];
            for x in 0..nx {
                for y in 0..ny {
                    buf[y] = plane[y * nx + x];
                }
                plans[1].process(&mut buf);
                for y in 0..ny {
                    plane[y * nx + x] = buf[y];
                }
            }
        });
        // z: gather pencils; each (x, y) column is independent.
        let plane = nx * ny;
        let cols: Vec<Vec<Complex64>> = (0..plane)
            .into_par_iter()
            .map(|c| {
                let mut buf: Vec<Complex64> = (0..nz).map(|z| data[z * plane + c]).collect();
                plans[2].process(&mut buf);
                buf
            })
            .collect();
        for (c, col) in cols.iter().enumerate() {
            for z in 0..nz {
                data[z * plane + c] = col[z];
            }
        }
    }

    pub fn forward(&self, data: &mut [Complex64]) {
        self.transform(data, &self.fwd);
    }

    /// Inverse transform, normalised (forward then inverse is the identity).
    pub fn inverse(&self, data: &mut [Complex64]) {
        self.transform(data, &self.inv);
        let s = 1.0 / self.len() as f64;
        data.par_iter_mut().for_each(|v| *v *= s);
    }
}

/// Signed integer wavenumber of index `i` on an axis of length `n`.
#[inline]
pub fn wavenumber(i: usize, n: usize) -> f64 {
    if i <= n / 2 {
        i as f64
    } else {
        i as f64 - n as f64
    }
}

/// Band-limited resampling of a periodic field given by its spectrum `spec`
/// (dims `from`) onto a grid of `to` points: zero-pads or truncates each axis's
/// spectrum, then inverse transforms. Returns the real part.
pub fn resample(spec: &[Complex64], from: [usize; 3], to: [usize; 3]) -> Vec<f64> {
    let mut out = vec![Complex64::new(0.0, 0.0); to[0] * to[1] * to[2]];
    let map = |i: usize, n: usize, m: usize| -> Option<usize> {
        let k = wavenumber(i, n) as i64;
        let half = (m as i64 - 1) / 2;
        if k.abs() > half || (n % 2 == 0 && k == n as i64 / 2) {
            return None; // dropped (or the ambiguous Nyquist mode)
        }
        Some(if k >= 0 { k as usize } else { (m as i64 + k) as usize })
    };
    for z in 0..from[2] {
        let Some(tz) = map(z, from[2], to[2]) else { continue };
        for y in 0..from[1] {
            let Some(ty) = map(y, from[1], to[1]) else { continue };
            for x in 0..from[0] {
                let Some(tx) = map(x, from[0], to[0]) else { continue };
                out[(tz * to[1] + ty) * to[0] + tx] = spec[(z * from[1] + y) * from[0] + x];
            }
        }
    }
    let fft = Fft3::new(to);
    fft.inverse(&mut out);
    let scale = (to[0] * to[1] * to[2]) as f64 / (from[0] * from[1] * from[2]) as f64;
    out.iter().map(|c| c.re * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_resample_of_a_mode() {
        let dims = [8, 6, 4];
        let fft = Fft3::new(dims);
        let mut v: Vec<Complex64> = (0..fft.len()).map(|i| Complex64::new((i as f64 * 0.37).sin(), 0.0)).collect();
        let orig = v.clone();
        fft.forward(&mut v);
        fft.inverse(&mut v);
        for (a, b) in v.iter().zip(&orig) {
            assert!((a - b).norm() < 1e-12);
        }
        // cos(2 pi x / 8) resampled onto 16 points is cos(2 pi x / 16 * 2).
        let mut w: Vec<Complex64> = (0..fft.len()).map(|i| Complex64::new((2.0 * std::f64::consts::PI * (i % 8) as f64 / 8.0).cos(), 0.0)).collect();
        fft.forward(&mut w);
        let r = resample(&w, dims, [16, 6, 4]);
        for x in 0..16 {
            assert!((r[x] - (2.0 * std::f64::consts::PI * x as f64 / 16.0).cos()).abs() < 1e-9);
        }
    }
}
