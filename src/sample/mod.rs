//! Deterministic synthetic stand-ins for the paper's datasets (`idlat sample`).
//!
//! These are synthetic fields, documented as such, generated in Rust with
//! fixed seeds: the same (kind, dims, seed, step) gives bit-identical output on
//! any machine and thread count (parallel work is over independent FFT lines;
//! every reduction runs in a fixed order).
//! - `vortex`: vorticity magnitude of a pseudo-spectral Navier-Stokes run, 0..12.
//! - `nyx`: log10 density from Zel'dovich-displaced particles, about 8..12.
//! - `isabel`: hurricane pressure perturbation (Holland profile), Pa.
//!
//! Seeds 1-9 are used by tests, the demo and benchmarks; the default model is
//! trained on seeds 101-103 so benchmarks stay held out.

pub mod isabel;
pub mod nyx;
pub mod spectral;
pub mod vortex;

use crate::volume::{Dims, Volume, VolumeInfo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vortex,
    Nyx,
    Isabel,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vortex => "vortex",
            Kind::Nyx => "nyx",
            Kind::Isabel => "isabel",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "vortex" => Ok(Kind::Vortex),
            "nyx" => Ok(Kind::Nyx),
            "isabel" => Ok(Kind::Isabel),
            _ => Err(format!("unknown sample kind '{s}' (expected vortex, nyx or isabel)")),
        }
    }
}

/// Several time steps of one run (cheaper than one `generate` per step for vortex).
pub fn generate_series(kind: Kind, dims: Dims, seed: u64, steps: &[usize]) -> Vec<Volume> {
    let data: Vec<Vec<f32>> = match kind {
        Kind::Vortex => vortex::generate_series(dims, seed, steps),
        _ => steps.iter().map(|&s| generate(kind, dims, seed, s).data).collect(),
    };
    data.into_iter().map(|d| Volume::new(VolumeInfo::new(kind.name(), dims), d)).collect()
}

/// Generates one volume; `step` selects a time step of the same run.
pub fn generate(kind: Kind, dims: Dims, seed: u64, step: usize) -> Volume {
    let data = match kind {
        Kind::Vortex => vortex::generate(dims, seed, step),
        Kind::Nyx => nyx::generate(dims, seed, step),
        Kind::Isabel => isabel::generate(dims, seed, step),
    };
    Volume::new(VolumeInfo::new(kind.name(), dims), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_independent(kind: Kind) {
        let dims = [24, 20, 16];
        let a = generate(kind, dims, 3, 1).data;
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = one.install(|| generate(kind, dims, 3, 1).data);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{kind:?} differs with 1 thread");
        let c = generate(kind, dims, 4, 1).data;
        assert!(a != c, "{kind:?}: seeds must differ");
        assert!(a.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn deterministic_across_threads_and_seeds() {
        for k in [Kind::Vortex, Kind::Nyx, Kind::Isabel] {
            thread_independent(k);
        }
    }

    #[test]
    fn series_matches_single_steps() {
        let s = generate_series(Kind::Vortex, [16, 16, 16], 5, &[2, 0]);
        assert_eq!(s[0].data, generate(Kind::Vortex, [16, 16, 16], 5, 2).data);
        assert_eq!(s[1].data, generate(Kind::Vortex, [16, 16, 16], 5, 0).data);
    }

    #[test]
    fn vortex_has_tubes_in_range() {
        let v = generate(Kind::Vortex, [32, 32, 32], 1, 0);
        let (lo, hi) = v.range();
        assert!(lo >= 0.0 && (hi - 12.0).abs() < 1e-3, "range {lo}..{hi}");
        // Tubes: strong vorticity is concentrated in a small fraction of the volume.
        let frac = v.data.iter().filter(|&&x| x > 6.0).count() as f64 / v.data.len() as f64;
        assert!(frac > 0.002 && frac < 0.2, "fraction above half max {frac}");
    }

    #[test]
    fn nyx_is_skewed_and_in_range() {
        let v = generate(Kind::Nyx, [32, 32, 32], 1, 0);
        let (lo, hi) = v.range();
        assert!(lo > 7.0 && hi < 13.0, "range {lo}..{hi}");
        // Clustering makes the linear density right-skewed: mean well above median.
        let mut rho: Vec<f64> = v.data.iter().map(|&x| 10f64.powf(x as f64 - 9.5)).collect();
        let mean = rho.iter().sum::<f64>() / rho.len() as f64;
        rho.sort_by(f64::total_cmp);
        let median = rho[rho.len() / 2];
        assert!(mean > 1.15 * median, "mean {mean} median {median}");
    }

    #[test]
    fn isabel_minimum_near_eye() {
        let v = generate(Kind::Isabel, [64, 64, 8], 2, 0);
        let (i, _) = v.data.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        let (x, y) = (i % 64, (i / 64) % 64);
        // The eye is placed in the central third of the domain.
        assert!((15..50).contains(&x) && (15..50).contains(&y), "minimum at {x},{y}");
        let (lo, hi) = v.range();
        assert!(lo < -2500.0 && hi < 3000.0, "range {lo}..{hi}");
    }
}
