//! Clustering latent vectors (paper section 5.4): hierarchical clustering as
//! in the latent-space tool the paper builds on, and spectral clustering,
//! which the paper prefers because latent clusters have unknown shapes.
//!
//! - Hierarchical: kodama's linkage on Euclidean distances (Ward, average,
//!   complete, single). The dendrogram uses scipy's convention: observations
//!   are clusters `0..n`, merge step `s` creates cluster `n + s`. Cutting it
//!   into `k` clusters replays the first `n - k` merges.
//! - Spectral (Ng, Jordan and Weiss 2002): affinity `W` (Gaussian kernel with
//!   Zelnik-Manor and Perona's local scaling, or clipped cosine similarity),
//!   `M = D^-1/2 W D^-1/2`, its `k` leading eigenvectors (a dense symmetric
//!   eigen-solve: N is a few thousand blocks at most), rows normalised to unit
//!   length, then k-means.
//! - k-means: k-means++ seeding from a seeded ChaCha stream, Lloyd iterations,
//!   the best of several restarts by inertia.
//!
//! Labels are canonical: cluster 0 is the largest, ties broken by the smallest
//! member index, so the same partition always gets the same numbers.

use super::{param, AnalysisError};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

/// Clustering method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Ward,
    Average,
    Complete,
    Single,
    Spectral,
}

/// Affinity of spectral clustering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    /// exp(-d²/(σ_i σ_j)), σ_i = distance to the 7th nearest neighbour.
    #[default]
    Gauss,
    /// max(0, cosine similarity).
    Cosine,
}

crate::choice::named!(Method { Ward => "ward", Average => "average", Complete => "complete", Single => "single", Spectral => "spectral" });

crate::choice::named!(Affinity {
    Gauss => "gauss": "exp(-d²/(σ_i σ_j)), σ_i = distance to the 7th nearest neighbour",
    Cosine => "cosine": "max(0, cosine similarity)",
});

/// One merge of a dendrogram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Merge {
    pub a: usize,
    pub b: usize,
    pub distance: f64,
    pub size: usize,
}

/// Agglomerative clustering tree over `n` observations (`n - 1` merges).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dendrogram {
    pub n: usize,
    pub merges: Vec<Merge>,
}

/// Rows `x` (`n × d`) as f64.
fn check(x: &[f32], n: usize, d: usize, k: usize) -> Result<(), AnalysisError> {
    if d == 0 || x.len() != n * d {
        return Err(param(format!("{} values are not {n} rows of {d}", x.len())));
    }
    if k == 0 {
        return Err(param("k must be at least 1"));
    }
    if k > n {
        return Err(param(format!("k = {k} is larger than the number of vectors ({n})")));
    }
    Ok(())
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&p, &q)| (p as f64 - q as f64).powi(2)).sum()
}

/// Condensed Euclidean distance matrix (pairs `i < j`, row by row).
pub fn condensed_distances(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let a = &x[i * d..(i + 1) * d];
            (i + 1..n).map(move |j| sq_dist(a, &x[j * d..(j + 1) * d]).sqrt())
        })
        .collect()
}

/// Hierarchical clustering of `n` rows of `d` values.
pub fn hierarchical(x: &[f32], n: usize, d: usize, method: Method) -> Result<Dendrogram, AnalysisError> {
    check(x, n, d, 1)?;
    let m = match method {
        Method::Ward => kodama::Method::Ward,
        Method::Average => kodama::Method::Average,
        Method::Complete => kodama::Method::Complete,
        Method::Single => kodama::Method::Single,
        Method::Spectral => return Err(param("spectral clustering has no dendrogram")),
    };
    let mut cond = condensed_distances(x, n, d);
    let den = kodama::linkage(&mut cond, n, m);
    let merges = den.steps().iter().map(|s| Merge { a: s.cluster1, b: s.cluster2, distance: s.dissimilarity, size: s.size }).collect();
    Ok(Dendrogram { n, merges })
}

impl Dendrogram {
    /// Labels of the `k`-cluster cut (canonical numbering).
    pub fn cut(&self, k: usize) -> Result<Vec<usize>, AnalysisError> {
        if k == 0 || k > self.n {
            return Err(param(format!("cannot cut {} observations into {k} clusters", self.n)));
        }
        let mut parent: Vec<usize> = (0..self.n + self.merges.len()).collect();
        fn root(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        for (s, m) in self.merges.iter().take(self.n - k).enumerate() {
            let new = self.n + s;
            let (ra, rb) = (root(&mut parent, m.a), root(&mut parent, m.b));
            parent[ra] = new;
            parent[rb] = new;
        }
        let raw: Vec<usize> = (0..self.n).map(|i| root(&mut parent, i)).collect();
        Ok(canonical(&raw))
    }
}

/// Renumbers labels: largest cluster 0, ties by smallest member index.
pub fn canonical(raw: &[usize]) -> Vec<usize> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<usize, (usize, usize)> = BTreeMap::new(); // raw → (size, first)
    for (i, &r) in raw.iter().enumerate() {
        let e = groups.entry(r).or_insert((0, i));
        e.0 += 1;
    }
    let mut order: Vec<(usize, usize, usize)> = groups.iter().map(|(&r, &(s, f))| (r, s, f)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let map: BTreeMap<usize, usize> = order.iter().enumerate().map(|(new, o)| (o.0, new)).collect();
    raw.iter().map(|r| map[r]).collect()
}

/// Spectral clustering into `k` clusters.
pub fn spectral(x: &[f32], n: usize, d: usize, k: usize, affinity: Affinity, seed: u64) -> Result<Vec<usize>, AnalysisError> {
    check(x, n, d, k)?;
    if n == 1 || k == 1 {
        return Ok(vec![0; n]);
    }
    let w = affinity_matrix(x, n, d, affinity);
    let deg: Vec<f64> = (0..n).map(|i| w[i * n..(i + 1) * n].iter().sum::<f64>()).collect();
    // An isolated vector (no affinity to anything) keeps a tiny degree: its
    // row of M is zero and it ends up in whichever cluster is nearest the origin.
    let inv: Vec<f64> = deg.iter().map(|&g| if g > 1e-300 { 1.0 / g.sqrt() } else { 0.0 }).collect();
    let m = nalgebra::DMatrix::from_fn(n, n, |i, j| w[i * n + j] * inv[i] * inv[j]);
    let eig = nalgebra::SymmetricEigen::new(m);
    let mut idx: Vec<usize> = (0..n).collect();
    // Leading eigenvalues first; ties by index for a stable choice.
    idx.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]).then(a.cmp(&b)));
    let mut u = vec![0f64; n * k];
    for (c, &e) in idx.iter().take(k).enumerate() {
        // Fix each eigenvector's sign (largest-magnitude entry positive) so the
        // embedding does not depend on the solver's sign choice.
        let col = eig.eigenvectors.column(e);
        let big = (0..n).max_by(|&a, &b| col[a].abs().total_cmp(&col[b].abs()).then(b.cmp(&a))).unwrap_or(0);
        let s = if col[big] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            u[i * k + c] = s * col[i];
        }
    }
    for r in u.chunks_exact_mut(k) {
        let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            r.iter_mut().for_each(|v| *v /= norm);
        }
    }
    Ok(kmeans(&u, n, k, k, seed, 10))
}

/// Dense affinity matrix with a zero diagonal.
fn affinity_matrix(x: &[f32], n: usize, d: usize, affinity: Affinity) -> Vec<f64> {
    let row = |i: usize| &x[i * d..(i + 1) * d];
    match affinity {
        Affinity::Gauss => {
            let d2: Vec<f64> = (0..n).into_par_iter().flat_map_iter(|i| (0..n).map(move |j| sq_dist(row(i), row(j)))).collect();
            // Local scale: distance to the 7th nearest neighbour (fewer for tiny n).
            let nn = 7.min(n - 1);
            let sigma: Vec<f64> = (0..n)
                .map(|i| {
                    let mut r: Vec<f64> = d2[i * n..(i + 1) * n].to_vec();
                    r.sort_by(f64::total_cmp);
                    r[nn].sqrt()
                })
                .collect();
            // Duplicate-heavy data can give σ = 0; fall back to the mean positive scale.
            let pos: Vec<f64> = sigma.iter().copied().filter(|&s| s > 0.0).collect();
            let fallback = if pos.is_empty() { 1.0 } else { pos.iter().sum::<f64>() / pos.len() as f64 };
            let sigma: Vec<f64> = sigma.iter().map(|&s| if s > 0.0 { s } else { fallback }).collect();
            (0..n * n).map(|p| if p / n == p % n { 0.0 } else { (-d2[p] / (sigma[p / n] * sigma[p % n])).exp() }).collect()
        }
        Affinity::Cosine => {
            let norms: Vec<f64> = (0..n).map(|i| row(i).iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()).collect();
            (0..n * n)
                .into_par_iter()
                .map(|p| {
                    let (i, j) = (p / n, p % n);
                    if i == j || norms[i] == 0.0 || norms[j] == 0.0 {
                        return 0.0;
                    }
                    let dot: f64 = row(i).iter().zip(row(j)).map(|(&a, &b)| a as f64 * b as f64).sum();
                    (dot / (norms[i] * norms[j])).max(0.0)
                })
                .collect()
        }
    }
}

/// k-means of `n` points of dimension `d` (row-major) into `k` clusters:
/// k-means++ seeding, Lloyd iterations, best of `restarts` by inertia.
pub fn kmeans(p: &[f64], n: usize, d: usize, k: usize, seed: u64, restarts: usize) -> Vec<usize> {
    let pt = |i: usize| &p[i * d..(i + 1) * d];
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..restarts.max(1) {
        // k-means++: each next centre drawn with probability ∝ squared distance.
        let mut centres: Vec<f64> = Vec::with_capacity(k * d);
        centres.extend_from_slice(pt(rng.random_range(0..n)));
        let mut near: Vec<f64> = (0..n).map(|i| dist(pt(i), &centres[..d])).collect();
        for _ in 1..k {
            let total: f64 = near.iter().sum();
            let pick = if total > 0.0 {
                let mut t = rng.random::<f64>() * total;
                let mut pick = n - 1;
                for (i, &w) in near.iter().enumerate() {
                    if t < w {
                        pick = i;
                        break;
                    }
                    t -= w;
                }
                pick
            } else {
                rng.random_range(0..n)
            };
            let c = pt(pick).to_vec();
            for (i, v) in near.iter_mut().enumerate() {
                *v = v.min(dist(pt(i), &c));
            }
            centres.extend(c);
        }
        let mut labels = vec![0usize; n];
        for _ in 0..300 {
            let mut changed = false;
            for (i, l) in labels.iter_mut().enumerate() {
                let b = (0..k).min_by(|&a, &b| dist(pt(i), &centres[a * d..(a + 1) * d]).total_cmp(&dist(pt(i), &centres[b * d..(b + 1) * d])).then(a.cmp(&b))).unwrap_or(0);
                changed |= *l != b;
                *l = b;
            }
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0usize; k];
            for (i, &l) in labels.iter().enumerate() {
                counts[l] += 1;
                for (s, v) in sums[l * d..(l + 1) * d].iter_mut().zip(pt(i)) {
                    *s += v;
                }
            }
            for c in 0..k {
                // An empty cluster keeps its centre.
                if counts[c] > 0 {
                    for a in 0..d {
                        centres[c * d + a] = sums[c * d + a] / counts[c] as f64;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let inertia: f64 = labels.iter().enumerate().map(|(i, &l)| dist(pt(i), &centres[l * d..(l + 1) * d])).sum();
        if best.as_ref().is_none_or(|(b, _)| inertia < *b - 1e-12 * b.abs()) {
            best = Some((inertia, labels));
        }
    }
    canonical(&best.map(|b| b.1).unwrap_or_else(|| vec![0; n]))
}

/// Purity of `labels` against a true class per item: the fraction of items
/// that belong to their cluster's majority class.
pub fn purity(labels: &[usize], truth: &[usize]) -> f64 {
    use std::collections::HashMap;
    let mut table: HashMap<(usize, usize), usize> = HashMap::new();
    for (&l, &t) in labels.iter().zip(truth) {
        *table.entry((l, t)).or_insert(0) += 1;
    }
    let mut best: HashMap<usize, usize> = HashMap::new();
    for (&(l, _), &c) in &table {
        let e = best.entry(l).or_insert(0);
        *e = (*e).max(c);
    }
    best.values().sum::<usize>() as f64 / labels.len().max(1) as f64
}

/// Adjusted Rand index of two labelings (1 = identical partitions, about 0 = chance).
pub fn adjusted_rand(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::HashMap;
    let c2 = |x: usize| (x * x.saturating_sub(1)) as f64 / 2.0;
    let mut table: HashMap<(usize, usize), usize> = HashMap::new();
    let (mut ra, mut rb): (HashMap<usize, usize>, HashMap<usize, usize>) = (HashMap::new(), HashMap::new());
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_insert(0) += 1;
        *ra.entry(x).or_insert(0) += 1;
        *rb.entry(y).or_insert(0) += 1;
    }
    let index: f64 = table.values().map(|&c| c2(c)).sum();
    let (sa, sb): (f64, f64) = (ra.values().map(|&c| c2(c)).sum(), rb.values().map(|&c| c2(c)).sum());
    let expected = sa * sb / c2(a.len()).max(1.0);
    let max = 0.5 * (sa + sb);
    if (max - expected).abs() < 1e-12 {
        return if index == expected { 1.0 } else { 0.0 };
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight, well separated 4-D blobs of 5, 4 and 3 points.
    fn blobs() -> (Vec<f32>, Vec<usize>) {
        let centres = [[0.0f32, 0.0, 0.0, 0.0], [10.0, 0.0, 5.0, 0.0], [0.0, 12.0, 0.0, -6.0]];
        let sizes = [5, 4, 3];
        let mut x = Vec::new();
        let mut truth = Vec::new();
        let mut s = 1u32;
        for (c, (&n, centre)) in sizes.iter().zip(&centres).enumerate() {
            for _ in 0..n {
                for &v in centre {
                    s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                    x.push(v + (s >> 8) as f32 / (1u32 << 24) as f32 * 0.5);
                }
                truth.push(c);
            }
        }
        (x, truth)
    }

    #[test]
    fn every_method_finds_separated_blobs() {
        let (x, truth) = blobs();
        for m in [Method::Ward, Method::Average, Method::Complete, Method::Single] {
            let den = hierarchical(&x, 12, 4, m).unwrap();
            assert_eq!(den.merges.len(), 11);
            assert_eq!(den.cut(3).unwrap(), truth, "{m:?}");
            assert_eq!(den.cut(1).unwrap(), vec![0; 12]);
            assert_eq!(den.cut(12).unwrap(), (0..12).collect::<Vec<_>>());
        }
        for a in [Affinity::Gauss, Affinity::Cosine] {
            let l = spectral(&x, 12, 4, 3, a, 0).unwrap();
            if a == Affinity::Gauss {
                assert_eq!(l, truth);
            }
            assert_eq!(l, spectral(&x, 12, 4, 3, a, 0).unwrap(), "deterministic");
        }
        assert_eq!(purity(&truth, &truth), 1.0);
        assert!((adjusted_rand(&truth, &truth) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn labels_are_canonical() {
        assert_eq!(canonical(&[7, 3, 3, 9, 7, 3]), vec![1, 0, 0, 2, 1, 0]);
        let p: Vec<f64> = vec![0.0, 0.1, 5.0, 5.1, 5.2];
        assert_eq!(kmeans(&p, 5, 1, 2, 3, 4), vec![1, 1, 0, 0, 0]);
    }

    #[test]
    fn purity_and_rand_index() {
        // Two clusters, one item misplaced: purity 5/6.
        let l = [0, 0, 0, 1, 1, 1];
        let t = [0, 0, 1, 1, 1, 1];
        assert!((purity(&l, &t) - 5.0 / 6.0).abs() < 1e-12);
        assert!(adjusted_rand(&l, &t) < 1.0 && adjusted_rand(&l, &t) > 0.0);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let (x, _) = blobs();
        assert!(spectral(&x, 12, 4, 13, Affinity::Gauss, 0).unwrap_err().to_string().contains("larger than"));
        assert!(spectral(&x, 12, 4, 0, Affinity::Gauss, 0).is_err());
        assert!(hierarchical(&x, 11, 4, Method::Ward).is_err());
        assert!(hierarchical(&x, 12, 4, Method::Spectral).is_err());
        assert!(hierarchical(&x, 12, 4, Method::Ward).unwrap().cut(13).is_err());
    }
}
