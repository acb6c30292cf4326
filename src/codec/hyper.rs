//! The hyper-decoder h_s in plain Rust, and the per-block entropy coder.
//!
//! h_s turns the decoded side info z_hat into a mean and a scale-table index
//! for every latent y. Both the packer and every decoder run exactly this code,
//! in a fixed summation order with no fused or reordered float operations, so
//! they derive bit-identical probabilities on any machine, thread count or
//! device (ARCHITECTURE.md). libtorch evaluates the same network only while
//! training, where small differences do not matter.
//!
//! Network (weights in torch layout): ConvTranspose3d(nz→nh, k2, s2) → ReLU →
//! Conv1x1(nh→nh) → ReLU → Conv1x1(nh→2m); channels `0..m` are means, `m..2m`
//! natural-log scales.

use super::modelfile::{ModelError, ModelFile};
use super::profile::Profile;
use super::tables::{self, Model, ALPHABET, SCALE_COUNT, SYMBOL_RADIUS};
use constriction::stream::{stack::DefaultAnsCoder, Decode};
use constriction::UnwrapInfallible;

/// Everything the entropy-coding half of the codec needs; pure Rust.
pub struct EntropyCodec {
    pub profile: Profile,
    w0: Vec<f32>, // [nz][nh][2][2][2]
    b0: Vec<f32>,
    w1: Vec<f32>, // [nh][nh]
    b1: Vec<f32>,
    w2: Vec<f32>, // [2m][nh]
    b2: Vec<f32>,
    bounds: Vec<f32>,
    y_models: Vec<Model>,
    z_models: Vec<Model>,
}

/// A block's entropy-decoded latents.
pub struct Latents {
    /// Dequantised y, `[m][L][L][L]`, L = latent core.
    pub y_hat: Vec<f32>,
    /// Side-info symbols, `[nz][G][G][G]`.
    pub z: Vec<i32>,
    /// Quantisation level of each latent cell, `[L][L][L]` (step 2^(level/4)).
    pub levels: Vec<i8>,
}

impl Latents {
    /// y_hat in units of each cell's quantisation step. The paper's encoder
    /// rounds at unit step and its SFT layers shrink the latents of unimportant
    /// regions; ours shrinks them by coding them with a coarser step, so y_hat / step
    /// is the paper's importance-driven latent (with a uniform map every cell has
    /// the same step and this is y_hat up to one factor).
    pub fn in_steps(&self) -> Vec<f32> {
        let steps = cell_steps(&self.levels);
        self.y_hat.iter().enumerate().map(|(i, v)| v / steps[i % steps.len()]).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{stream} stream length {len} is not a multiple of 4")]
    Misaligned { stream: &'static str, len: usize },
    #[error("{stream} stream is empty or ends with a zero word (not an ANS stream)")]
    Invalid { stream: &'static str },
    #[error("{stream} stream has {left} unread bits after the last symbol (corrupt)")]
    Trailing { stream: &'static str, left: usize },
    #[error("level stream: {0}")]
    Levels(String),
}

pub const H_S_TCONV: &str = "h_s.0";
pub const H_S_MID: &str = "h_s.2";
pub const H_S_OUT: &str = "h_s.4";

impl EntropyCodec {
    pub fn from_model(mf: &ModelFile) -> Result<EntropyCodec, ModelError> {
        let p = mf.profile.clone();
        let (nz, nh, m) = (p.nz, p.nh, p.m);
        let tab = |name: &str, rows: usize| -> Result<Vec<Model>, ModelError> {
            let t = mf.i32s(name, rows * ALPHABET)?;
            t.chunks(ALPHABET)
                .map(|row| {
                    let row: Vec<u32> = row.iter().map(|&v| v as u32).collect();
                    tables::model_from_fixed(&row).map_err(|msg| ModelError::Tensor { name: name.into(), msg })
                })
                .collect()
        };
        Ok(EntropyCodec {
            w0: mf.f32s(&format!("{H_S_TCONV}.weight"), nz * nh * 8)?.to_vec(),
            b0: mf.f32s(&format!("{H_S_TCONV}.bias"), nh)?.to_vec(),
            w1: mf.f32s(&format!("{H_S_MID}.weight"), nh * nh)?.to_vec(),
            b1: mf.f32s(&format!("{H_S_MID}.bias"), nh)?.to_vec(),
            w2: mf.f32s(&format!("{H_S_OUT}.weight"), 2 * m * nh)?.to_vec(),
            b2: mf.f32s(&format!("{H_S_OUT}.bias"), 2 * m)?.to_vec(),
            bounds: mf.f32s("tables.log_scale_bounds", SCALE_COUNT - 1)?.to_vec(),
            y_models: tab("tables.y", SCALE_COUNT)?,
            z_models: tab("tables.z", nz)?,
            profile: p,
        })
    }

    /// h_s: side-info symbols → (means, scale-table indices), both `[m][L][L][L]`,
    /// for latents whose cell `k` is quantised with step 2^(levels[k]/4) (the
    /// scale shrinks by the step). `levels` has one entry per latent cell.
    pub fn hyper_decode(&self, z: &[i32], levels: &[i8]) -> (Vec<f32>, Vec<u8>) {
        let (mean, log_scale) = self.hyper_synthesis(z);
        (mean, self.scale_indices(&log_scale, levels))
    }

    /// Scale-table index of each latent from h_s's log-scales and its cell's level.
    fn scale_indices(&self, log_scale: &[f32], levels: &[i8]) -> Vec<u8> {
        let shift: Vec<f32> = levels.iter().map(|&l| l as f32 * (0.25 * std::f32::consts::LN_2)).collect();
        log_scale.iter().enumerate().map(|(i, &s)| tables::scale_index(&self.bounds, s - shift[i % shift.len()]) as u8).collect()
    }

    /// h_s: side-info symbols → (means, natural-log scales), both `[m][L][L][L]`.
    fn hyper_synthesis(&self, z: &[i32]) -> (Vec<f32>, Vec<f32>) {
        let p = &self.profile;
        let (nz, nh, m, g) = (p.nz, p.nh, p.m, p.z_grid());
        let l = 2 * g; // tconv k2 s2 output edge
        let lc = p.latent_core();
        let nvox = l * l * l;
        // Transposed conv, kernel 2 stride 2: each input voxel feeds a disjoint 2x2x2 cell.
        let mut h = vec![0f32; nh * nvox];
        for co in 0..nh {
            for v in 0..nvox {
                h[co * nvox + v] = self.b0[co];
            }
        }
        for ci in 0..nz {
            for gz in 0..g {
                for gy in 0..g {
                    for gx in 0..g {
                        let zin = z[((ci * g + gz) * g + gy) * g + gx] as f32;
                        if zin == 0.0 {
                            continue;
                        }
                        for co in 0..nh {
                            let w = &self.w0[(ci * nh + co) * 8..(ci * nh + co) * 8 + 8];
                            for k in 0..8 {
                                let (a, b, c) = (k >> 2, (k >> 1) & 1, k & 1);
                                let v = ((2 * gz + a) * l + 2 * gy + b) * l + 2 * gx + c;
                                h[co * nvox + v] += zin * w[k];
                            }
                        }
                    }
                }
            }
        }
        relu(&mut h);
        let h = pointwise(&h, &self.w1, &self.b1, nh, nh, nvox);
        let mut h = h;
        relu(&mut h);
        let out = pointwise(&h, &self.w2, &self.b2, nh, 2 * m, nvox);
        // Crop to the latent core (l == lc unless the core is odd).
        let n = lc * lc * lc;
        let mut mean = vec![0f32; m * n];
        let mut log_scale = vec![0f32; m * n];
        for c in 0..m {
            for zz in 0..lc {
                for yy in 0..lc {
                    for xx in 0..lc {
                        let src = (zz * l + yy) * l + xx;
                        let dst = c * n + (zz * lc + yy) * lc + xx;
                        mean[dst] = out[c * nvox + src];
                        log_scale[dst] = out[(m + c) * nvox + src];
                    }
                }
            }
        }
        (mean, log_scale)
    }

    /// Codes one block. `z` are the rounded hyper-latents (clamped here), `y`
    /// the analysis output, `levels` the requested quantisation level of each
    /// latent cell (step 2^(level/4)). A cell whose latents' symbols would
    /// leave the alphabet moves to the next coarser level that fits instead of
    /// being clipped, and the block's levels are then brought within the span
    /// the level stream can hold (by coarsening its finest cells), so the
    /// levels returned (and stored) may exceed the ones asked for.
    /// Returns (z stream, y stream, y_hat, levels used).
    pub fn encode(&self, z: &[i32], y: &[f32], levels: &[i8]) -> (Vec<u8>, Vec<u8>, Vec<f32>, Vec<i8>) {
        let p = &self.profile;
        let n = p.latent_core().pow(3);
        assert_eq!(levels.len(), n, "one level per latent cell");
        let zc: Vec<i32> = z.iter().map(|&s| s.clamp(-SYMBOL_RADIUS, SYMBOL_RADIUS)).collect();
        let gz3 = p.z_grid().pow(3);
        let mut zc_coder = DefaultAnsCoder::new();
        zc_coder.encode_symbols_reverse(zc.iter().enumerate().map(|(i, &s)| ((s + SYMBOL_RADIUS) as usize, &self.z_models[i / gz3]))).expect("clamped symbols are inside every table");
        // The means do not depend on the levels: the fit search needs only them,
        // and the scale indices follow from the levels it settles on.
        let (mean, log_scale) = self.hyper_synthesis(&zc);
        #[allow(clippy::neg_cmp_op_on_partial_ord, reason = "a NaN residual must count as fitting, as it always has (the encoder's bytes)")]
        let fits = |cell: usize, l: i8| {
            let step = quant_step(l);
            (cell..y.len()).step_by(n).all(|i| !(((y[i] - mean[i]) / step).round().abs() > SYMBOL_RADIUS as f32))
        };
        let mut used = levels.to_vec();
        for (cell, l) in used.iter_mut().enumerate() {
            while *l < i8::MAX - LEVEL_SPAN && !fits(cell, *l) {
                *l += 1;
            }
        }
        let used = within_span(&used);
        let idx = self.scale_indices(&log_scale, &used);
        let steps = cell_steps(&used);
        let mut y_hat = vec![0f32; y.len()];
        let mut syms = vec![0usize; y.len()];
        for i in 0..y.len() {
            let step = steps[i % n];
            let q = ((y[i] - mean[i]) / step).round();
            let q = if q.is_finite() { (q as i32).clamp(-SYMBOL_RADIUS, SYMBOL_RADIUS) } else { 0 };
            syms[i] = (q + SYMBOL_RADIUS) as usize;
            y_hat[i] = q as f32 * step + mean[i];
        }
        let mut yc = DefaultAnsCoder::new();
        yc.encode_symbols_reverse(syms.iter().zip(&idx).map(|(&s, &k)| (s, &self.y_models[k as usize]))).expect("clamped symbols are inside every table");
        (words_to_bytes(zc_coder.into_compressed().unwrap_infallible()), words_to_bytes(yc.into_compressed().unwrap_infallible()), y_hat, used)
    }

    /// Decodes one block's streams; garbage gives an error, never a panic or a hang
    /// (the symbol count is fixed by the profile).
    /// `levels` is the stored level stream (spec §6, stream 2).
    pub fn decode(&self, z_bytes: &[u8], y_bytes: &[u8], levels: &[u8]) -> Result<Latents, StreamError> {
        let p = &self.profile;
        let n = p.latent_core().pow(3);
        let levels = levels_from_bytes(levels, n).map_err(StreamError::Levels)?;
        let steps = cell_steps(&levels);
        let gz3 = p.z_grid().pow(3);
        let mut zc = coder_from("z", z_bytes)?;
        let mut z = Vec::with_capacity(p.z_symbols());
        for i in 0..p.z_symbols() {
            let s = zc.decode_symbol(&self.z_models[i / gz3]).unwrap_infallible();
            z.push(s as i32 - SYMBOL_RADIUS);
        }
        check_drained("z", &zc)?;
        let (mean, idx) = self.hyper_decode(&z, &levels);
        let mut yc = coder_from("y", y_bytes)?;
        let mut y_hat = Vec::with_capacity(p.y_symbols());
        for i in 0..p.y_symbols() {
            let s = yc.decode_symbol(&self.y_models[idx[i] as usize]).unwrap_infallible();
            y_hat.push((s as i32 - SYMBOL_RADIUS) as f32 * steps[i % n] + mean[i]);
        }
        check_drained("y", &yc)?;
        Ok(Latents { y_hat, z, levels })
    }
}

/// The quantisation step of each cell; latent `i` of a block uses `steps[i % L³]`.
fn cell_steps(levels: &[i8]) -> Vec<f32> {
    levels.iter().map(|&l| quant_step(l)).collect()
}

/// Quantisation step 2^(level/4), computed exactly (no libm): a power of two
/// times one of four f32 constants.
pub fn quant_step(level: i8) -> f32 {
    // 1.414_213_6 rounds to the f32 above SQRT_2: these are the steps files were written with.
    #[allow(clippy::approx_constant, reason = "the f32 of 1.4142136, one ulp above SQRT_2, is on disk")]
    const FRAC: [f32; 4] = [1.0, 1.189_207_1, 1.414_213_6, 1.681_792_8];
    let (k, r) = ((level as i32).div_euclid(4), (level as i32).rem_euclid(4));
    let mut s = FRAC[r as usize];
    for _ in 0..k.abs() {
        if k > 0 {
            s *= 2.0
        } else {
            s *= 0.5
        }
    }
    s
}

/// How importance sets a latent cell's quantisation level (`pack --steer`).
/// Both map importance 1 to step 1/4 (level -8) and spend step 4 (level 8)
/// where nothing matters; decoding never needs to know which one packed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Steer {
    /// Level linear in importance, level = round(4 (2 - 4 I)): middling
    /// importance already coarsens, so important voxels end up far sharper
    /// than the rest. Training codes cells this way.
    #[default]
    Strict,
    /// Step ∝ I^-1/2, level = round(-8 - 2 log2 I) (I <= 1/256 is level 8):
    /// the steps that minimise the importance-weighted squared error (wPSNR)
    /// for a given size, since a cell's error grows as step² and its bits fall
    /// as log2(step). A distance ramp keeps finer steps than under `strict`.
    Wpsnr,
}

crate::choice::named!(Steer {
    Strict => "strict": "level linear in importance (as training codes cells): important voxels far sharper than the rest",
    Wpsnr => "wpsnr": "step ∝ importance^-1/2: the best importance-weighted PSNR for the size",
});

impl Steer {
    /// The level of a cell whose importance summary (in [0, 1]) is `imp`.
    pub fn level(self, imp: f32) -> i8 {
        let imp = if imp.is_finite() { imp.clamp(0.0, 1.0) } else { 0.0 };
        match self {
            Steer::Strict => (4.0 * (2.0 - 4.0 * imp)).round() as i8,
            Steer::Wpsnr if imp <= 1.0 / 256.0 => 8,
            Steer::Wpsnr => (-8.0 - 2.0 * imp.log2()).round().clamp(-8.0, 8.0) as i8,
        }
    }
}

/// Quantisation levels of latent cells from the importance over the window
/// (`p.window()`³, x fastest): cell `(a, b, c)` of the `n`³ cells starting at
/// latent index `first` covers the `stride`³ voxels under it, and gets the
/// level of its mean importance raised by its hot spots (0.75 × its maximum),
/// so a thin important feature still gets a fine step while the rest of the
/// block coarsens. `[n][n][n]`, x fastest.
pub fn cell_levels(win: &[f32], p: &Profile, first: usize, n: usize, steer: Steer) -> Vec<i8> {
    let (w, s) = (p.window(), p.stride);
    let mut out = Vec::with_capacity(n * n * n);
    for cz in first..first + n {
        for cy in first..first + n {
            for cx in first..first + n {
                let (mut sum, mut max) = (0f64, 0f32);
                for zz in cz * s..(cz + 1) * s {
                    for yy in cy * s..(cy + 1) * s {
                        for &v in &win[(zz * w + yy) * w + cx * s..(zz * w + yy) * w + (cx + 1) * s] {
                            sum += v as f64;
                            max = max.max(v);
                        }
                    }
                }
                out.push(steer.level(((sum / (s * s * s) as f64) as f32).max(0.75 * max)));
            }
        }
    }
    out
}

/// Quantisation levels a block is packed with: those of its stored latent
/// cells, within the span the level stream holds. Packing and training both
/// call this, so the model trains at the steps it will be coded with.
pub fn block_levels(win: &[f32], p: &Profile, steer: Steer) -> Vec<i8> {
    within_span(&cell_levels(win, p, p.latent_halo, p.latent_core(), steer))
}

/// Largest difference between the levels of one block's cells (4-bit offsets).
pub const LEVEL_SPAN: i8 = 15;

/// Raises the finest levels until no cell is more than `LEVEL_SPAN` finer
/// than the coarsest (a coarser step always keeps symbols in the alphabet).
fn within_span(levels: &[i8]) -> Vec<i8> {
    let max = levels.iter().copied().max().unwrap_or(0);
    levels.iter().map(|&l| l.max(max.saturating_sub(LEVEL_SPAN))).collect()
}

/// Stream 2 of a neural block (spec §6): one byte when every cell shares a
/// level, else the finest level then one 4-bit offset per cell (low nibble
/// first, cells x fastest).
pub fn levels_to_bytes(levels: &[i8]) -> Vec<u8> {
    let base = levels.iter().copied().min().unwrap_or(0);
    if levels.iter().all(|&l| l == base) {
        return vec![base as u8];
    }
    let mut out = vec![base as u8];
    for pair in levels.chunks(2) {
        let off = |l: i8| {
            let d = l as i16 - base as i16;
            assert!((0..=LEVEL_SPAN as i16).contains(&d), "levels exceed the stream's span");
            d as u8
        };
        out.push(off(pair[0]) | pair.get(1).map_or(0, |&l| off(l) << 4));
    }
    out
}

/// Parses stream 2 for `n` latent cells; an absent stream means level 0.
pub fn levels_from_bytes(b: &[u8], n: usize) -> Result<Vec<i8>, String> {
    match b {
        [] => Ok(vec![0; n]),
        [l] => Ok(vec![*l as i8; n]),
        [base, offs @ ..] if offs.len() == n.div_ceil(2) => {
            let base = *base as i8;
            if base > i8::MAX - LEVEL_SPAN {
                return Err(format!("base level {base} leaves no room for offsets"));
            }
            if n % 2 == 1 && offs[n / 2] >> 4 != 0 {
                return Err("padding nibble is not zero".into());
            }
            Ok((0..n).map(|k| base + ((offs[k / 2] >> (4 * (k % 2))) & 15) as i8).collect())
        }
        _ => Err(format!("{} bytes (expected 1 or {} for {n} cells)", b.len(), 1 + n.div_ceil(2))),
    }
}

fn relu(v: &mut [f32]) {
    for x in v {
        if *x < 0.0 {
            *x = 0.0;
        }
    }
}

/// 1x1x1 convolution over `[cin][n]` with torch weights `[cout][cin]`.
fn pointwise(x: &[f32], w: &[f32], b: &[f32], cin: usize, cout: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; cout * n];
    for co in 0..cout {
        let o = &mut out[co * n..(co + 1) * n];
        o.fill(b[co]);
        for ci in 0..cin {
            let wv = w[co * cin + ci];
            let xi = &x[ci * n..(ci + 1) * n];
            for v in 0..n {
                o[v] += wv * xi[v];
            }
        }
    }
    out
}

fn words_to_bytes(words: Vec<u32>) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn coder_from(stream: &'static str, bytes: &[u8]) -> Result<DefaultAnsCoder, StreamError> {
    if bytes.len() % 4 != 0 {
        return Err(StreamError::Misaligned { stream, len: bytes.len() });
    }
    let words: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    DefaultAnsCoder::from_compressed(words).map_err(|_| StreamError::Invalid { stream })
}

fn check_drained(stream: &'static str, c: &DefaultAnsCoder) -> Result<(), StreamError> {
    if c.is_empty() {
        Ok(())
    } else {
        Err(StreamError::Trailing { stream, left: c.num_valid_bits() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_steps_are_exact_powers() {
        assert_eq!(quant_step(0), 1.0);
        assert_eq!(quant_step(4), 2.0);
        assert_eq!(quant_step(-8), 0.25);
        #[allow(clippy::approx_constant, reason = "the step as written, one ulp above SQRT_2")]
        let sqrt2 = 1.414_213_6;
        assert_eq!(quant_step(2), sqrt2);
        assert!((quant_step(-3) - 2f32.powf(-0.75)).abs() < 1e-6);
        for steer in [Steer::Strict, Steer::Wpsnr] {
            assert_eq!(steer.level(0.0), 8);
            assert_eq!(steer.level(1.0), -8);
            assert_eq!(steer.level(f32::NAN), 8);
        }
        assert!((-8..=8).all(|l| quant_step(l) > 0.0));
    }

    #[test]
    fn wpsnr_steer_halves_the_step_per_quadrupled_importance() {
        let w = Steer::Wpsnr;
        assert_eq!(w.level(0.25), -4);
        assert_eq!(w.level(1.0 / 16.0), 0);
        assert_eq!(w.level(1.0 / 256.0), 8);
        assert_eq!(w.level(1e-9), 8);
        // Monotone, and never coarser than strict: middling importance keeps finer steps.
        let mut last = i8::MIN;
        for k in (0..=1000).rev() {
            let i = k as f32 / 1000.0;
            assert!(w.level(i) >= last && w.level(i) <= Steer::Strict.level(i), "importance {i}");
            last = w.level(i);
        }
        // The wPSNR optimum: weighted error I·step² equal across cells (within rounding).
        for i in [1.0f32, 0.5, 0.1, 0.02] {
            let e = i * quant_step(w.level(i)).powi(2);
            assert!((e / 0.0625 - 1.0).abs() < 0.5, "importance {i}: {e}");
        }
    }

    #[test]
    fn cell_levels_follow_each_cells_importance() {
        let p = Profile::fast();
        let (w, n) = (p.window(), p.latent_core().pow(3));
        let mut win = vec![0f32; w * w * w];
        assert_eq!(block_levels(&win, &p, Steer::Strict), vec![8; n]);
        // A hot voxel in the halo belongs to a neighbouring block.
        win[0] = 1.0;
        assert_eq!(block_levels(&win, &p, Steer::Strict), vec![8; n]);
        // One hot voxel in the first stored cell: 0.75 × max wins over its mean;
        // the other cells stay coarse.
        let at = |x: usize, y: usize, z: usize| (z * w + y) * w + x;
        win[at(9, 10, 11)] = 1.0;
        let l = block_levels(&win, &p, Steer::Strict);
        assert_eq!(l[0], Steer::Strict.level(0.75));
        assert!(l[1..].iter().all(|&v| v == 8));
        // A fully important last cell (voxels 32..40 on each axis).
        for z in 32..40 {
            for y in 32..40 {
                win[at(32, y, z)..at(40, y, z)].fill(1.0);
            }
        }
        let l = block_levels(&win, &p, Steer::Strict);
        assert_eq!(l[n - 1], -7, "finest cell raised to the coarsest minus the span");
        assert_eq!(*l.iter().max().unwrap() - *l.iter().min().unwrap(), LEVEL_SPAN);
    }

    #[test]
    fn level_streams_round_trip_and_reject_garbage() {
        let n = 64;
        for levels in [vec![-3i8; n], (0..n).map(|k| (k % 16) as i8 - 8).collect(), (0..n).map(|k| if k == 5 { 20 } else { 5 }).collect()] {
            let b = levels_to_bytes(&levels);
            assert_eq!(b.len(), if levels.iter().all(|&l| l == levels[0]) { 1 } else { 1 + n / 2 });
            assert_eq!(levels_from_bytes(&b, n).unwrap(), levels);
        }
        assert_eq!(levels_from_bytes(&[], n).unwrap(), vec![0; n]);
        assert!(levels_from_bytes(&[0, 1, 2], n).is_err());
        assert!(levels_from_bytes(&[120; 33], n).is_err());
        // Odd cell counts: the last byte's high nibble must be zero.
        assert_eq!(levels_from_bytes(&[0, 0x21, 0x03], 3).unwrap(), vec![1, 2, 3]);
        assert!(levels_from_bytes(&[0, 0x21, 0x13], 3).is_err());
    }
}
