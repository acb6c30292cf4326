//! Integer probability tables for the entropy coder.
//!
//! ANS decoding desynchronises if the decoder's model differs from the
//! encoder's by one unit, so every probability the coder uses comes from
//! integer tables that are computed once, when a model is exported, and stored
//! in the model file. Decoding never evaluates `exp`/`erf` (whose last bits
//! differ between libm builds): it only reads these integers.

use constriction::stream::model::{ContiguousCategoricalEntropyModel, DefaultContiguousCategoricalEntropyModel, IterableEntropyModel};

/// Symbols are coded in `[-SYMBOL_RADIUS, SYMBOL_RADIUS]`; values beyond are clamped.
pub const SYMBOL_RADIUS: i32 = 127;
/// Number of symbols in every table.
pub const ALPHABET: usize = (2 * SYMBOL_RADIUS + 1) as usize;
/// Log-spaced Gaussian scales the hyperprior snaps to.
pub const SCALE_COUNT: usize = 64;
pub const SCALE_MIN: f64 = 0.11;
pub const SCALE_MAX: f64 = 64.0;

/// The coder's model type: 24-bit fixed point, symbols `0..ALPHABET`.
pub type Model = DefaultContiguousCategoricalEntropyModel;

/// Scale of table `i` (f64, export time only).
pub fn scale_value(i: usize) -> f64 {
    let t = i as f64 / (SCALE_COUNT - 1) as f64;
    (SCALE_MIN.ln() + t * (SCALE_MAX.ln() - SCALE_MIN.ln())).exp()
}

/// Boundaries in log-scale between neighbouring table scales: table index =
/// number of boundaries below `ln(scale)`. Stored as f32 in the model file.
pub fn log_scale_bounds() -> Vec<f32> {
    (0..SCALE_COUNT - 1).map(|i| (0.5 * (scale_value(i).ln() + scale_value(i + 1).ln())) as f32).collect()
}

/// Index of the table for a predicted log-scale, by comparisons only.
#[inline]
pub fn scale_index(bounds: &[f32], log_scale: f32) -> usize {
    // NaN compares false everywhere and lands on index 0: a valid table.
    bounds.iter().take_while(|&&b| log_scale > b).count()
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Probabilities of the integers `-R..=R` under N(mean, scale) (export time only).
pub fn gaussian_pmf(mean: f64, scale: f64) -> Vec<f64> {
    (-SYMBOL_RADIUS..=SYMBOL_RADIUS)
        .map(|k| {
            let k = k as f64;
            (normal_cdf((k + 0.5 - mean) / scale) - normal_cdf((k - 0.5 - mean) / scale)).max(0.0)
        })
        .collect()
}

/// Quantises float probabilities to the coder's fixed point (every symbol nonzero).
pub fn quantise(pmf: &[f64]) -> Vec<u32> {
    let model = Model::from_floating_point_probabilities_fast(pmf, None).expect("pmf has ALPHABET > 1 nonnegative entries with a positive sum");
    model.symbol_table().map(|(_, _, p)| p.get()).collect()
}

/// Builds a coder model from stored fixed-point probabilities; errors if they
/// do not sum to 2^24 or have a zero (a corrupt or foreign model file).
pub fn model_from_fixed(probs: &[u32]) -> Result<Model, String> {
    if probs.len() != ALPHABET {
        return Err(format!("probability table has {} entries, expected {ALPHABET}", probs.len()));
    }
    let sum: u64 = probs.iter().map(|&p| p as u64).sum();
    if sum != 1 << 24 || probs.contains(&0) {
        return Err("probability table is not a valid 24-bit distribution".into());
    }
    ContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(probs.iter().copied(), false).map_err(|_| "probability table rejected by the coder".to_string())
}

/// All Gaussian tables of the scale ladder, flattened `[SCALE_COUNT][ALPHABET]`.
pub fn gaussian_tables() -> Vec<u32> {
    (0..SCALE_COUNT).flat_map(|i| quantise(&gaussian_pmf(0.0, scale_value(i)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_valid_distributions() {
        let t = gaussian_tables();
        for row in t.chunks(ALPHABET) {
            model_from_fixed(row).unwrap();
        }
    }

    #[test]
    fn scale_index_is_monotone_and_bounded() {
        let b = log_scale_bounds();
        assert_eq!(scale_index(&b, -100.0), 0);
        assert_eq!(scale_index(&b, 100.0), SCALE_COUNT - 1);
        assert_eq!(scale_index(&b, f32::NAN), 0);
        let mut last = 0;
        for i in 0..200 {
            let s = scale_index(&b, -3.0 + i as f32 * 0.05);
            assert!(s >= last);
            last = s;
        }
    }

    #[test]
    fn corrupt_table_rejected() {
        let mut t = gaussian_tables()[..ALPHABET].to_vec();
        t[3] += 1;
        assert!(model_from_fixed(&t).is_err());
        assert!(model_from_fixed(&t[..5]).is_err());
    }
}
