//! `vortex`: vorticity magnitude from a small pseudo-spectral incompressible
//! Navier-Stokes run (synthetic stand-in for the paper's Vortex data).
//!
//! Periodic box [0, 2π)^3, rotational form u_t = P[u × ω] + ν∇²u, 2/3-rule
//! dealiasing, Heun (RK2) with an integrating factor for viscosity. Start:
//! Taylor-Green vortex plus a seeded divergence-free perturbation of a few
//! low modes; the flow rolls up into sheets and tubes by t ≈ 3-5. Step `s`
//! of a run is the field at t = 3.5 + 0.5 s. The simulation grid is 32^3 or
//! 64^3; the output is its band-limited (spectral) interpolation onto the
//! requested grid, scaled so the maximum vorticity magnitude is 12.

use super::spectral::{resample, wavenumber, Fft3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use rustfft::num_complex::Complex64;

type Field = Vec<Complex64>;

struct Solver {
    n: usize,
    fft: Fft3,
    nu: f64,
    k: Vec<[f64; 3]>,
    k2: Vec<f64>,
    dealias: Vec<bool>,
}

impl Solver {
    fn new(n: usize, nu: f64) -> Solver {
        let mut k = Vec::with_capacity(n * n * n);
        let mut k2 = Vec::with_capacity(n * n * n);
        let mut dealias = Vec::with_capacity(n * n * n);
        let cut = n as f64 / 3.0;
        for z in 0..n {
            for y in 0..n {
                for x in 0..n {
                    let kv = [wavenumber(x, n), wavenumber(y, n), wavenumber(z, n)];
                    k2.push(kv[0] * kv[0] + kv[1] * kv[1] + kv[2] * kv[2]);
                    dealias.push(kv.iter().all(|c| c.abs() < cut));
                    k.push(kv);
                }
            }
        }
        Solver { n, fft: Fft3::new([n, n, n]), nu, k, k2, dealias }
    }

    fn to_physical(&self, f: &Field) -> Vec<f64> {
        let mut t = f.clone();
        self.fft.inverse(&mut t);
        t.iter().map(|c| c.re).collect()
    }

    fn curl(&self, u: &[Field; 3]) -> [Field; 3] {
        let i = Complex64::new(0.0, 1.0);
        let n = u[0].len();
        let mut w = [vec![Complex64::default(); n], vec![Complex64::default(); n], vec![Complex64::default(); n]];
        for j in 0..n {
            let k = self.k[j];
            w[0][j] = i * (k[1] * u[2][j] - k[2] * u[1][j]);
            w[1][j] = i * (k[2] * u[0][j] - k[0] * u[2][j]);
            w[2][j] = i * (k[0] * u[1][j] - k[1] * u[0][j]);
        }
        w
    }

    /// Nonlinear term P[u × ω], dealiased.
    fn rhs(&self, u: &[Field; 3]) -> [Field; 3] {
        let w = self.curl(u);
        let up: Vec<Vec<f64>> = u.iter().map(|f| self.to_physical(f)).collect();
        let wp: Vec<Vec<f64>> = w.iter().map(|f| self.to_physical(f)).collect();
        let len = up[0].len();
        let mut c: [Field; 3] = [vec![Complex64::default(); len], vec![Complex64::default(); len], vec![Complex64::default(); len]];
        for j in 0..len {
            c[0][j] = Complex64::new(up[1][j] * wp[2][j] - up[2][j] * wp[1][j], 0.0);
            c[1][j] = Complex64::new(up[2][j] * wp[0][j] - up[0][j] * wp[2][j], 0.0);
            c[2][j] = Complex64::new(up[0][j] * wp[1][j] - up[1][j] * wp[0][j], 0.0);
        }
        for f in c.iter_mut() {
            self.fft.forward(f);
        }
        for j in 0..len {
            if !self.dealias[j] || self.k2[j] == 0.0 {
                for f in c.iter_mut() {
                    f[j] = Complex64::default();
                }
                continue;
            }
            let k = self.k[j];
            let kc = (k[0] * c[0][j] + k[1] * c[1][j] + k[2] * c[2][j]) / self.k2[j];
            for a in 0..3 {
                c[a][j] -= k[a] * kc;
            }
        }
        c
    }

    /// One Heun step with integrating factor E = exp(-ν k² dt).
    fn step(&self, u: &mut [Field; 3], dt: f64) {
        let e: Vec<f64> = self.k2.par_iter().map(|k2| (-self.nu * k2 * dt).exp()).collect();
        let n0 = self.rhs(u);
        let mut u1 = u.clone();
        for a in 0..3 {
            for j in 0..e.len() {
                u1[a][j] = e[j] * (u[a][j] + dt * n0[a][j]);
            }
        }
        let n1 = self.rhs(&u1);
        for a in 0..3 {
            for j in 0..e.len() {
                u[a][j] = e[j] * (u[a][j] + 0.5 * dt * n0[a][j]) + 0.5 * dt * n1[a][j];
            }
        }
    }
}

/// Taylor-Green plus a seeded divergence-free perturbation, in spectral space.
fn initial(s: &Solver, seed: u64) -> [Field; 3] {
    let n = s.n;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a11);
    let h = 2.0 * std::f64::consts::PI / n as f64;
    // Perturbation modes: a cos(k·x + φ) with a ⟂ k is divergence-free.
    let modes: Vec<([f64; 3], [f64; 3], f64)> = (0..12)
        .map(|_| {
            let k = loop {
                let k = [0; 3].map(|_| rng.random_range(-3i32..=3) as f64);
                if k.iter().any(|&c| c != 0.0) {
                    break k;
                }
            };
            let r = [0; 3].map(|_| rng.random::<f64>() - 0.5);
            let kk = k[0] * k[0] + k[1] * k[1] + k[2] * k[2];
            let d = (r[0] * k[0] + r[1] * k[1] + r[2] * k[2]) / kk;
            let a = [0, 1, 2].map(|i| 0.12 * (r[i] - d * k[i]));
            (k, a, rng.random::<f64>() * 2.0 * std::f64::consts::PI)
        })
        .collect();
    let mut u: [Field; 3] = [vec![Complex64::default(); n * n * n], vec![Complex64::default(); n * n * n], vec![Complex64::default(); n * n * n]];
    for z in 0..n {
        for y in 0..n {
            for x in 0..n {
                let p = [x as f64 * h, y as f64 * h, z as f64 * h];
                let j = (z * n + y) * n + x;
                let mut v = [p[0].sin() * p[1].cos() * p[2].cos(), -p[0].cos() * p[1].sin() * p[2].cos(), 0.0];
                for (k, a, ph) in &modes {
                    let c = (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + ph).cos();
                    for i in 0..3 {
                        v[i] += a[i] * c;
                    }
                }
                for i in 0..3 {
                    u[i][j] = Complex64::new(v[i], 0.0);
                }
            }
        }
    }
    for f in u.iter_mut() {
        s.fft.forward(f);
    }
    u
}

pub fn generate(dims: [usize; 3], seed: u64, step: usize) -> Vec<f32> {
    generate_series(dims, seed, &[step]).pop().expect("one step requested")
}

/// Several time steps of one run (one simulation, snapshots in order).
pub fn generate_series(dims: [usize; 3], seed: u64, steps: &[usize]) -> Vec<Vec<f32>> {
    let big = dims.iter().copied().max().unwrap_or(1) > 64;
    let (n, nu, dt) = if big { (64, 0.004, 0.025) } else { (32, 0.008, 0.04) };
    let s = Solver::new(n, nu);
    let mut u = initial(&s, seed);
    let mut t = 0.0f64;
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&i| steps[i]);
    let mut out = vec![Vec::new(); steps.len()];
    for i in order {
        // Fixed sub-steps per unit of output time, so a step's field does not
        // depend on which other steps were requested with it.
        let t_end = 3.5 + 0.5 * steps[i] as f64;
        while t < t_end - 1e-9 {
            let h: f64 = if t == 0.0 { 3.5 } else { 0.5 };
            let k = (h / dt).ceil() as usize;
            for _ in 0..k {
                s.step(&mut u, h / k as f64);
            }
            t += h;
        }
        out[i] = snapshot(&s, &u, n, dims);
    }
    out
}

fn snapshot(s: &Solver, u: &[Field; 3], n: usize, dims: [usize; 3]) -> Vec<f32> {
    let w = s.curl(u);
    let comps: Vec<Vec<f64>> = w.iter().map(|f| resample(f, [n, n, n], dims)).collect();
    let mag: Vec<f64> = (0..comps[0].len()).map(|j| (comps[0][j].powi(2) + comps[1][j].powi(2) + comps[2][j].powi(2)).sqrt()).collect();
    let max = mag.iter().cloned().fold(0.0, f64::max).max(1e-12);
    mag.iter().map(|&v| (v / max * 12.0) as f32).collect()
}
