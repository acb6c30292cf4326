//! Isosurface similarity maps and representative isovalues (paper section
//! 6.4.2, case study 2), two ways:
//!
//! **Latents (IDLat).** For each isovalue the volume is encoded under a
//! value-based importance map centred on it, and the isosurface is
//! represented by the concatenation of every block's quantised latents y_hat
//! in block order (the paper's choice: "we concatenate them into a single
//! latent to represent the whole isosurface"). Concatenation keeps *where*
//! each block's response sits; per-block averaging would mix the vortices of
//! one isovalue with the empty space of another. Similarity is the cosine of
//! two such vectors ([`cosine_matrix`]); with `centre` the mean vector over
//! all isovalues is subtracted first, so the large part every encoding of the
//! same volume shares does not push every similarity towards 1.
//!
//! **Distance fields (Bruckner and Möller 2010, "Isosurface similarity
//! maps").** Each isosurface is represented by its distance field (exact
//! Euclidean distance from every voxel to the surface, `importance::edt`),
//! quantised into `bins` equal bins over [0, the field's maximum]
//! ([`BinnedField`]). Similarity is the normalised mutual information of two
//! fields' joint histogram, `NMI = 2 I(X;Y) / (H(X) + H(Y))`, which is 1 for
//! identical fields and 0 for independent ones ([`nmi_matrix`]). Isovalues
//! with no surface in the volume get similarity 0 to everything else.
//!
//! **Selecting representative isovalues** ([`select_representatives`]),
//! following Bruckner and Möller: first every isovalue gets a priority by
//! recursive splitting of the isovalue range. In an interval, the isovalue
//! with the largest mean similarity to the others in that interval is its
//! representative; its priority is its summed similarity over the interval;
//! then the parts left and right of it are treated the same way, until every
//! isovalue has a priority. Then the highest priority is taken, the priority
//! of every remaining isovalue j is divided by `1 + S(taken, j)` (so values
//! similar to one already chosen fall back), and this repeats until `count`
//! are chosen. Similarities below 0 (possible for cosines) count as 0 there.
//! Ties go to the lower isovalue, so the selection is deterministic.
//!
//! Every matrix here is symmetric with a unit diagonal by construction.

use super::{param, AnalysisError};
use rayon::prelude::*;

/// `A:B:N` → N evenly spaced values from A to B inclusive.
pub fn parse_isovalues(s: &str) -> Result<Vec<f64>, AnalysisError> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || param(format!("--isovalues '{s}': expected A:B:N, e.g. 1:11:20 (N values from A to B)"));
    let [a, b, n] = parts[..] else { return Err(bad()) };
    let (a, b): (f64, f64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if !a.is_finite() || !b.is_finite() || a >= b {
        return Err(param(format!("--isovalues '{s}': need finite A < B")));
    }
    if !(2..=1000).contains(&n) {
        return Err(param(format!("--isovalues '{s}': N must be 2 to 1000")));
    }
    Ok((0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect())
}

/// Cosine similarity of every pair of equally long vectors (optionally after
/// subtracting their mean vector). A zero vector is similar to nothing but itself.
pub fn cosine_matrix(reps: &[Vec<f32>], centre: bool) -> Result<Vec<f64>, AnalysisError> {
    let n = reps.len();
    let len = reps.first().map_or(0, |r| r.len());
    if reps.iter().any(|r| r.len() != len) {
        return Err(param("latent representations differ in length"));
    }
    let mean: Vec<f64> = if centre { (0..len).map(|k| reps.iter().map(|r| r[k] as f64).sum::<f64>() / n.max(1) as f64).collect() } else { vec![0.0; len] };
    let cen: Vec<Vec<f64>> = reps.iter().map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect()).collect();
    let norms: Vec<f64> = cen.iter().map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
    let mut s = vec![0f64; n * n];
    for i in 0..n {
        s[i * n + i] = 1.0;
        for j in i + 1..n {
            let v = if norms[i] > 0.0 && norms[j] > 0.0 { (cen[i].iter().zip(&cen[j]).map(|(a, b)| a * b).sum::<f64>() / (norms[i] * norms[j])).clamp(-1.0, 1.0) } else { 0.0 };
            s[i * n + j] = v;
            s[j * n + i] = v;
        }
    }
    Ok(s)
}

/// A distance field quantised for joint histograms.
#[derive(Clone, Debug)]
pub struct BinnedField {
    pub bins: Vec<u16>,
    pub nbins: usize,
    /// False when the isovalue has no surface in the volume.
    pub has_surface: bool,
}

impl BinnedField {
    /// Distance field of the isosurface `iso`, quantised into `nbins` bins.
    pub fn new(data: &[f32], dims: [usize; 3], spacing: [f64; 3], iso: f64, nbins: usize) -> Result<BinnedField, AnalysisError> {
        if !(2..=4096).contains(&nbins) {
            return Err(param(format!("bins {nbins} must be 2 to 4096")));
        }
        if data.len() != dims.iter().product::<usize>() {
            return Err(param("data length does not match dims"));
        }
        let d = crate::importance::edt::iso_distance(data, dims, spacing, iso);
        let max = d.iter().copied().filter(|v| v.is_finite()).fold(0f64, f64::max);
        let has_surface = d.iter().any(|v| v.is_finite());
        let scale = if max > 0.0 { nbins as f64 / max } else { 0.0 };
        let bins = d.par_iter().map(|&v| if v.is_finite() { ((v * scale) as usize).min(nbins - 1) as u16 } else { 0 }).collect();
        Ok(BinnedField { bins, nbins, has_surface })
    }
}

fn entropy(counts: &[u64], total: f64) -> f64 {
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.ln()
        })
        .sum()
}

/// Normalised mutual information of two binned fields.
pub fn nmi(a: &BinnedField, b: &BinnedField) -> f64 {
    if !a.has_surface || !b.has_surface || a.bins.len() != b.bins.len() || a.bins.is_empty() {
        return 0.0;
    }
    let (na, nb) = (a.nbins, b.nbins);
    let mut joint = vec![0u64; na * nb];
    for (&x, &y) in a.bins.iter().zip(&b.bins) {
        joint[x as usize * nb + y as usize] += 1;
    }
    let total = a.bins.len() as f64;
    let ra: Vec<u64> = (0..na).map(|i| joint[i * nb..(i + 1) * nb].iter().sum()).collect();
    let rb: Vec<u64> = (0..nb).map(|j| (0..na).map(|i| joint[i * nb + j]).sum()).collect();
    let (ha, hb, hab) = (entropy(&ra, total), entropy(&rb, total), entropy(&joint, total));
    if ha + hb <= 0.0 {
        return 0.0;
    }
    (2.0 * (ha + hb - hab) / (ha + hb)).clamp(0.0, 1.0)
}

/// NMI of every pair (pairs in parallel); unit diagonal.
pub fn nmi_matrix(fields: &[BinnedField]) -> Vec<f64> {
    let n = fields.len();
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let vals: Vec<f64> = pairs.par_iter().map(|&(i, j)| nmi(&fields[i], &fields[j])).collect();
    let mut s = vec![0f64; n * n];
    for i in 0..n {
        s[i * n + i] = 1.0;
    }
    for (&(i, j), v) in pairs.iter().zip(vals) {
        s[i * n + j] = v;
        s[j * n + i] = v;
    }
    s
}

/// Bruckner and Möller's selection of `count` representative isovalues from an
/// `n × n` similarity map (indices, in the order chosen). See the module docs.
pub fn select_representatives(sim: &[f64], n: usize, count: usize) -> Result<Vec<usize>, AnalysisError> {
    if sim.len() != n * n {
        return Err(param(format!("similarity map has {} entries, not {n}²", sim.len())));
    }
    if count == 0 || count > n {
        return Err(param(format!("cannot select {count} of {n} isovalues")));
    }
    let s = |i: usize, j: usize| sim[i * n + j].max(0.0);
    // Phase 1: priorities by recursive splitting (explicit stack of [lo, hi)).
    let mut priority = vec![0f64; n];
    let mut stack = vec![(0usize, n)];
    while let Some((lo, hi)) = stack.pop() {
        if lo >= hi {
            continue;
        }
        let mut best = lo;
        let mut best_sum = f64::NEG_INFINITY;
        for i in lo..hi {
            let sum: f64 = (lo..hi).map(|j| s(i, j)).sum();
            if sum > best_sum + 1e-12 {
                best = i;
                best_sum = sum;
            }
        }
        priority[best] = best_sum;
        stack.push((best + 1, hi));
        stack.push((lo, best));
    }
    // Phase 2: take the highest priority, damp those similar to it, repeat.
    let mut taken = vec![false; n];
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut pick = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            if pick.is_none_or(|p: usize| priority[i] > priority[p] + 1e-12) {
                pick = Some(i);
            }
        }
        let p = pick.expect("count <= n leaves a candidate");
        taken[p] = true;
        out.push(p);
        for j in (0..n).filter(|&j| !taken[j]) {
            priority[j] /= 1.0 + s(p, j);
        }
    }
    Ok(out)
}

/// Largest |S - Sᵀ| and largest |diag - 1| of an `n × n` matrix (for checks and reports).
pub fn asymmetry(sim: &[f64], n: usize) -> (f64, f64) {
    let mut asym = 0f64;
    let mut diag = 0f64;
    for i in 0..n {
        diag = diag.max((sim[i * n + i] - 1.0).abs());
        for j in 0..n {
            asym = asym.max((sim[i * n + j] - sim[j * n + i]).abs());
        }
    }
    (asym, diag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_isovalue_ranges() {
        assert_eq!(parse_isovalues("1:3:3").unwrap(), vec![1.0, 2.0, 3.0]);
        for bad in ["1:3", "3:1:4", "1:3:1", "a:b:c", "1:3:x", "1:inf:3"] {
            assert!(parse_isovalues(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cosine_is_symmetric_with_unit_diagonal() {
        let reps = vec![vec![1.0, 0.0, 0.0], vec![1.0, 1.0, 0.0], vec![0.0, 0.0, 0.0], vec![-1.0, 0.0, 0.0]];
        let s = cosine_matrix(&reps, false).unwrap();
        assert_eq!(asymmetry(&s, 4), (0.0, 0.0));
        assert!((s[1] - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(s[2], 0.0); // zero vector
        assert!((s[3] + 1.0).abs() < 1e-12);
        let c = cosine_matrix(&reps, true).unwrap();
        assert_eq!(asymmetry(&c, 4).1, 0.0);
        assert!(cosine_matrix(&[vec![1.0], vec![1.0, 2.0]], false).is_err());
    }

    /// Two Gaussian bumps (heights 1 and 0.6) on a 24×12×12 grid: low
    /// isosurfaces enclose both, high ones only the taller bump.
    fn bumps() -> (Vec<f32>, [usize; 3]) {
        let dims = [24, 12, 12];
        let mut v = Vec::new();
        for z in 0..12 {
            for y in 0..12 {
                for x in 0..24 {
                    let r2 = |cx: f32| ((x as f32 - cx).powi(2) + (y as f32 - 6.0).powi(2) + (z as f32 - 6.0).powi(2)) / 18.0;
                    v.push((-r2(6.0)).exp().max(0.6 * (-r2(18.0)).exp()));
                }
            }
        }
        (v, dims)
    }

    #[test]
    fn nmi_of_distance_fields() {
        let (data, dims) = bumps();
        let f: Vec<BinnedField> = [0.3, 0.35, 0.8, 40.0].iter().map(|&v| BinnedField::new(&data, dims, [1.0; 3], v, 16).unwrap()).collect();
        let s = nmi_matrix(&f);
        assert_eq!(asymmetry(&s, 4), (0.0, 0.0));
        // Surfaces around both bumps are more alike than one around a single bump.
        assert!(s[1] > s[2], "{s:?}");
        assert!(s[1] <= 1.0 && s[2] >= 0.0);
        // No surface at 40: similar to nothing.
        assert!(!f[3].has_surface);
        assert_eq!(s[3], 0.0);
        assert!(BinnedField::new(&data, dims, [1.0; 3], 0.3, 1).is_err());
    }

    #[test]
    fn selection_picks_one_per_group_and_is_deterministic() {
        // Two blocks of mutually similar isovalues: 0-3 and 4-6.
        let n = 7;
        let mut s = vec![0.1f64; n * n];
        for i in 0..n {
            for j in 0..n {
                if (i < 4) == (j < 4) {
                    s[i * n + j] = if i == j { 1.0 } else { 0.9 };
                }
            }
        }
        let sel = select_representatives(&s, n, 2).unwrap();
        assert_eq!(sel.len(), 2);
        assert!(sel.iter().any(|&i| i < 4) && sel.iter().any(|&i| i >= 4), "{sel:?}");
        assert_eq!(sel, select_representatives(&s, n, 2).unwrap());
        assert_eq!(select_representatives(&s, n, 7).unwrap().len(), 7);
        assert!(select_representatives(&s, n, 8).is_err());
        assert!(select_representatives(&s, n, 0).is_err());
        assert!(select_representatives(&s[..10], n, 1).is_err());
    }
}
