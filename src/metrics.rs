//! Quality metrics (paper section 6.2.1).
//!
//! - LSR = original bytes / stored bytes.
//! - wMSE = sum(I_i (x_i - x̂_i)^2) / sum(I_i); wPSNR = 10 log10(v^2 / wMSE),
//!   v = value range of the original (paper eq. 13-14).
//! - plain PSNR (I = 1) and max abs error.
//!
//! Voxels flagged missing (e.g. Isabel's land) are left out of every sum.
//! Accumulation is in f64 so large volumes do not lose precision.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Quality {
    pub voxels: u64,
    pub value_range: f64,
    pub mse: f64,
    pub psnr: f64,
    pub wmse: f64,
    pub wpsnr: f64,
    pub max_abs_error: f64,
}

fn psnr(range: f64, mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else if range <= 0.0 {
        f64::NEG_INFINITY
    } else {
        10.0 * (range * range / mse).log10()
    }
}

/// The running sums behind a `Quality`. Several volumes combine by adding their
/// sums (`merge`), so an overall PSNR is voxel-weighted over the whole data set
/// rather than an average of per-volume PSNRs (which over-weights small or
/// nearly exact volumes, since PSNR is logarithmic).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Sums {
    pub voxels: u64,
    /// Smallest and largest valid original value (the range of the union).
    pub lo: f64,
    pub hi: f64,
    pub sq_err: f64,
    pub weighted_sq_err: f64,
    pub weight: f64,
    pub max_abs_error: f64,
}

impl Default for Sums {
    fn default() -> Sums {
        Sums { voxels: 0, lo: f64::INFINITY, hi: f64::NEG_INFINITY, sq_err: 0.0, weighted_sq_err: 0.0, weight: 0.0, max_abs_error: 0.0 }
    }
}

impl Sums {
    pub fn merge(&self, o: &Sums) -> Sums {
        Sums {
            voxels: self.voxels + o.voxels,
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
            sq_err: self.sq_err + o.sq_err,
            weighted_sq_err: self.weighted_sq_err + o.weighted_sq_err,
            weight: self.weight + o.weight,
            max_abs_error: self.max_abs_error.max(o.max_abs_error),
        }
    }

    /// MSE, wMSE and PSNRs from the sums; the value range is that of all voxels summed.
    pub fn quality(&self) -> Quality {
        let n = self.voxels;
        let range = if n > 0 { self.hi - self.lo } else { 0.0 };
        let mse = if n > 0 { self.sq_err / n as f64 } else { 0.0 };
        let wmse = if self.weight > 0.0 { self.weighted_sq_err / self.weight } else { mse };
        Quality { voxels: n, value_range: range, mse, psnr: psnr(range, mse), wmse, wpsnr: psnr(range, wmse), max_abs_error: self.max_abs_error }
    }
}

/// Compares `orig` with `rec`; `imp` (same length) weights wMSE, `None` means
/// uniform; `valid` excludes voxels where it is false.
pub fn quality(orig: &[f32], rec: &[f32], imp: Option<&[f32]>, valid: Option<&[bool]>) -> Quality {
    sums(orig, rec, imp, valid).quality()
}

/// The sums `quality` is computed from; see `Sums::merge` for several volumes.
pub fn sums(orig: &[f32], rec: &[f32], imp: Option<&[f32]>, valid: Option<&[bool]>) -> Sums {
    assert_eq!(orig.len(), rec.len(), "reference and reconstruction differ in length");
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut se, mut wse, mut wsum, mut maxe, mut n) = (0f64, 0f64, 0f64, 0f64, 0u64);
    for i in 0..orig.len() {
        if valid.is_some_and(|v| !v[i]) || !orig[i].is_finite() {
            continue;
        }
        let (x, y) = (orig[i] as f64, rec[i] as f64);
        lo = lo.min(x);
        hi = hi.max(x);
        let e = (x - y) * (x - y);
        let e = if e.is_finite() { e } else { f64::INFINITY };
        se += e;
        let w = imp.map_or(1.0, |m| m[i] as f64);
        wse += w * e;
        wsum += w;
        maxe = maxe.max((x - y).abs());
        n += 1;
    }
    Sums { voxels: n, lo, hi, sq_err: se, weighted_sq_err: wse, weight: wsum, max_abs_error: maxe }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let o = [0.0f32, 1.0, 2.0, 4.0];
        let r = [0.0f32, 1.0, 2.0, 3.0];
        let q = quality(&o, &r, None, None);
        assert_eq!(q.mse, 0.25);
        assert_eq!(q.max_abs_error, 1.0);
        assert!((q.psnr - 10.0 * (16.0f64 / 0.25).log10()).abs() < 1e-12);
        // Importance only on the exact voxels: wMSE 0, wPSNR infinite.
        let q = quality(&o, &r, Some(&[1.0, 1.0, 0.0, 0.0]), None);
        assert_eq!(q.wmse, 0.0);
        assert!(q.wpsnr.is_infinite());
        // Weighted: voxel 3 weight 0.5 of total 1.5.
        let q = quality(&o, &r, Some(&[1.0, 0.0, 0.0, 0.5]), None);
        assert!((q.wmse - 0.5 / 1.5).abs() < 1e-12);
        // Missing voxels leave the sums and the range.
        let q = quality(&o, &r, None, Some(&[true, true, true, false]));
        assert_eq!((q.mse, q.voxels, q.value_range), (0.0, 3, 2.0));
    }

    #[test]
    fn merged_sums_equal_one_volume_of_both() {
        let (o1, r1, i1) = ([0.0f32, 1.0, 2.0], [0.5f32, 1.0, 2.0], [1.0f32, 0.5, 0.0]);
        let (o2, r2, i2) = ([10.0f32, 4.0], [9.0f32, 4.0], [0.25f32, 1.0]);
        let both = quality(&[o1.as_slice(), &o2].concat(), &[r1.as_slice(), &r2].concat(), Some(&[i1.as_slice(), &i2].concat()), None);
        let merged = sums(&o1, &r1, Some(&i1), None).merge(&sums(&o2, &r2, Some(&i2), None)).quality();
        assert_eq!(merged, both);
        assert_eq!((merged.voxels, merged.value_range, merged.max_abs_error), (5, 10.0, 1.0));
        assert!((merged.mse - 1.25 / 5.0).abs() < 1e-15 && (merged.wmse - 0.5 / 2.75).abs() < 1e-15);
        // No volumes: no voxels and no NaN.
        let empty = Sums::default().merge(&Sums::default()).quality();
        assert!(empty.voxels == 0 && empty.value_range == 0.0 && !empty.psnr.is_nan() && !empty.wpsnr.is_nan());
    }
}
