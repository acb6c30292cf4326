//! Quality metrics (paper section 6.2.1, DESIGN section 9).
//!
//! - LSR = original bytes / stored bytes.
//! - wMSE = sum(I_i (x_i - x̂_i)^2) / sum(I_i); wPSNR = 10 log10(v^2 / wMSE),
//!   v = value range of the original (paper eq. 13-14).
//! - plain PSNR (I = 1) and max abs error.
//!
//! Voxels flagged missing (e.g. Isabel's land) are left out of every sum.
//! Accumulation is in f64 so large volumes do not lose precision.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
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

/// Compares `orig` with `rec`; `imp` (same length) weights wMSE, `None` means
/// uniform; `valid` excludes voxels where it is false.
pub fn quality(orig: &[f32], rec: &[f32], imp: Option<&[f32]>, valid: Option<&[bool]>) -> Quality {
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
    let range = if n > 0 { hi - lo } else { 0.0 };
    let mse = if n > 0 { se / n as f64 } else { 0.0 };
    let wmse = if wsum > 0.0 { wse / wsum } else { mse };
    Quality { voxels: n, value_range: range, mse, psnr: psnr(range, mse), wmse, wpsnr: psnr(range, wmse), max_abs_error: maxe }
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
}
