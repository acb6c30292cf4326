//! 2-D t-SNE projection of latent vectors (the paper's latent space view,
//! section 5.4, after van der Maaten and Hinton 2008) through bhtsne.
//!
//! bhtsne starts from a random embedding drawn from the thread RNG; we pass
//! our own start instead (normal, σ = 1e-4, from a seeded ChaCha stream), so
//! a projection is reproducible for a seed. Up to `EXACT_MAX` points the exact
//! gradient is used (squared Euclidean input distances); above it Barnes-Hut
//! with θ = 0.5 (Euclidean distances, which Barnes-Hut requires to be metric).
//! bhtsne sums gradients in parallel, in an order that varies between runs;
//! the fit runs in a one-thread pool so the result is bit-reproducible.

use super::{param, AnalysisError};
use rand::SeedableRng;
use rand_distr::Distribution;

/// Largest point count projected with the exact O(N²) gradient.
pub const EXACT_MAX: usize = 2000;

#[derive(Clone, Copy, Debug)]
pub struct TsneOptions {
    pub perplexity: f32,
    pub epochs: usize,
    pub seed: u64,
}

impl Default for TsneOptions {
    fn default() -> Self {
        TsneOptions { perplexity: 30.0, epochs: 1000, seed: 0 }
    }
}

/// Perplexity actually used for `n` points: bhtsne needs `n - 1 >= 3 p`.
pub fn usable_perplexity(want: f32, n: usize) -> f32 {
    want.min((n.saturating_sub(1)) as f32 / 3.0)
}

/// Projects `n` rows of `d` values to 2-D; returns `n` (x, y) pairs.
pub fn project(x: &[f32], n: usize, d: usize, opts: TsneOptions) -> Result<Vec<[f32; 2]>, AnalysisError> {
    if d == 0 || x.len() != n * d {
        return Err(param(format!("{} values are not {n} rows of {d}", x.len())));
    }
    if n < 4 {
        return Err(param(format!("t-SNE needs at least 4 vectors, got {n}")));
    }
    #[allow(clippy::neg_cmp_op_on_partial_ord, reason = "NaN must fail the check too")]
    if !(opts.perplexity > 0.0) {
        return Err(param(format!("perplexity {} must be positive", opts.perplexity)));
    }
    if opts.epochs == 0 {
        return Err(param("epochs must be at least 1"));
    }
    let perplexity = usable_perplexity(opts.perplexity, n).max(1.0);
    let rows: Vec<&[f32]> = x.chunks_exact(d).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let normal = rand_distr::Normal::new(0.0f32, 1e-4).expect("valid σ");
    let start: Vec<f32> = (0..2 * n).map(|_| normal.sample(&mut rng)).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().map_err(|e| param(format!("thread pool: {e}")))?;
    let e = pool.install(move || {
        let mut t: bhtsne::tSNE<f32, &[f32]> = bhtsne::tSNE::new(&rows);
        t.perplexity(perplexity).epochs(opts.epochs).initial_embedding(start);
        // The exaggeration phase must end inside the run.
        let switch = 250.min(opts.epochs / 4);
        t.stop_lying_epoch(switch).momentum_switch_epoch(switch);
        let sq = |a: &&[f32], b: &&[f32]| a.iter().zip(b.iter()).map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
        if n <= EXACT_MAX {
            t.exact(sq);
        } else {
            t.barnes_hut(0.5, |a, b| sq(a, b).sqrt());
        }
        t.embedding()
    });
    if e.len() != 2 * n || e.iter().any(|v| !v.is_finite()) {
        return Err(param("t-SNE diverged (non-finite embedding); try a smaller perplexity"));
    }
    Ok(e.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_two_groups_and_is_reproducible() {
        // Two groups of 15 points in 6-D, far apart.
        let mut x = Vec::new();
        for i in 0..30 {
            let base = if i < 15 { 0.0 } else { 20.0 };
            for a in 0..6 {
                x.push(base + ((i * 7 + a * 3) % 5) as f32 * 0.1);
            }
        }
        let o = TsneOptions { perplexity: 5.0, epochs: 300, seed: 1 };
        let e = project(&x, 30, 6, o).unwrap();
        assert_eq!(e, project(&x, 30, 6, o).unwrap());
        let mean = |r: std::ops::Range<usize>| {
            let n = r.len() as f32;
            let s = e[r].iter().fold([0f32; 2], |s, p| [s[0] + p[0], s[1] + p[1]]);
            [s[0] / n, s[1] / n]
        };
        let (a, b) = (mean(0..15), mean(15..30));
        let between = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
        let spread = e[..15].iter().map(|p| ((p[0] - a[0]).powi(2) + (p[1] - a[1]).powi(2)).sqrt()).fold(0f32, f32::max);
        assert!(between > 2.0 * spread, "between {between} spread {spread}");
    }

    #[test]
    fn rejects_tiny_or_bad_input() {
        assert!(project(&[0.0; 6], 3, 2, TsneOptions::default()).is_err());
        assert!(project(&[0.0; 7], 4, 2, TsneOptions::default()).is_err());
        assert!(project(&[0.0; 8], 4, 2, TsneOptions { perplexity: -1.0, ..Default::default() }).is_err());
        assert_eq!(usable_perplexity(30.0, 10), 3.0);
    }
}
