//! Training (`idlat train`): paper section 5.3 and 5.5.
//!
//! Loss = bits per voxel + lambda * mean(exp(a * I) * (x - x_hat)^2) over block
//! cores, with uniform-noise relaxation for the rate and straight-through
//! rounding for the decoder input (so the decoder trains on what it will see).
//! Each window is quantised at the step packing would give it for its random
//! importance map (`hyper::block_level`), so the model trains at the operating
//! points it is used at.
//! Training windows are sampled complexity-aware (about ten high-variance
//! windows per low-variance one) and each step draws fresh random importance
//! maps: distance ramps, Gaussian blobs, gradient magnitude, value bands
//! (iso-surface-like) and uniform values. Validation runs the real quantisation
//! and the real Rust entropy coder and counts bytes.

use super::blocks::{extract_window, Norm};
use super::hyper::{block_levels, cell_levels, quant_step, EntropyCodec, Steer};
use super::modelfile::ModelFile;
use super::net::{self, gaussian_bits, ste_round, Nets, ZDensity};
use super::profile::Profile;
use crate::volume::Volume;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub profile: Profile,
    pub steps: usize,
    pub batch: usize,
    /// Number of training windows sampled from the inputs.
    pub blocks: usize,
    pub lambda: f64,
    /// Distortion weight exponent: w = exp(a * I).
    pub a: f64,
    pub lr: f64,
    pub lr_density: f64,
    pub seed: u64,
    pub baseline: bool,
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    pub validate_every: usize,
    pub device: Device,
    pub recipe: String,
}

/// One validation measurement with real bitstreams.
#[derive(Clone, Copy, Debug, Default)]
pub struct Validation {
    pub bits_per_voxel: f64,
    pub psnr: f64,
    pub wpsnr: f64,
}

pub struct Trained {
    pub model: ModelFile,
    pub validation: Validation,
}

/// Picks `count` window origins, about 10 high-complexity per low-complexity one.
fn sample_windows(vols: &[Vec<f32>], dims: &[[usize; 3]], w: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let cand = count * 3;
    let mut cands: Vec<(f64, Vec<f32>)> = Vec::with_capacity(cand);
    let mut buf = vec![0f32; w * w * w];
    for _ in 0..cand {
        let v = rng.random_range(0..vols.len());
        let d = dims[v];
        let start = [0, 1, 2].map(|a| rng.random_range(0..d[a].max(w) - w + 1) as isize);
        extract_window(&vols[v], d, start, w, &mut buf);
        let mean = buf.iter().map(|&x| x as f64).sum::<f64>() / buf.len() as f64;
        let var = buf.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / buf.len() as f64;
        cands.push((var, buf.clone()));
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n_low = count / 11;
    let n_high = count - n_low;
    let (high, low) = cands.split_at(cand / 2);
    let mut out: Vec<Vec<f32>> = high.iter().take(n_high).map(|c| c.1.clone()).collect();
    for _ in 0..n_low {
        out.push(low[rng.random_range(0..low.len())].1.clone());
    }
    out
}

/// A random training importance map for window `x` (`w`^3), values in [0, 1].
pub fn random_importance(x: &[f32], w: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = w * w * w;
    let coord = |i: usize| [(i % w) as f32, ((i / w) % w) as f32, (i / (w * w)) as f32];
    match rng.random_range(0..6) {
        0 => vec![rng.random::<f32>(); n],
        1 => {
            // Distance ramp from a random plane.
            let dir: [f32; 3] = [rng.random::<f32>() - 0.5, rng.random::<f32>() - 0.5, rng.random::<f32>() - 0.5];
            let norm = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt().max(1e-3);
            let off = rng.random::<f32>() * w as f32;
            let k = 0.05 + 0.3 * rng.random::<f32>();
            (0..n)
                .map(|i| {
                    let c = coord(i);
                    let d = (c[0] * dir[0] + c[1] * dir[1] + c[2] * dir[2]) / norm - off;
                    (-k * d.max(0.0)).exp()
                })
                .collect()
        }
        2 => {
            // Gaussian blobs at random centres.
            let blobs: Vec<([f32; 3], f32)> = (0..rng.random_range(1..4)).map(|_| ([0; 3].map(|_| rng.random::<f32>() * w as f32), 2.0 + rng.random::<f32>() * w as f32 * 0.4)).collect();
            (0..n)
                .map(|i| {
                    let c = coord(i);
                    blobs
                        .iter()
                        .map(|(m, s)| {
                            let d2: f32 = (0..3).map(|a| (c[a] - m[a]).powi(2)).sum();
                            (-d2 / (2.0 * s * s)).exp()
                        })
                        .fold(0.0, f32::max)
                })
                .collect()
        }
        3 => {
            // Gradient magnitude, normalised to the window maximum.
            let at = |xx: usize, yy: usize, zz: usize| x[(zz * w + yy) * w + xx];
            let mut g = vec![0f32; n];
            for i in 0..n {
                let [a, b, c] = [i % w, (i / w) % w, i / (w * w)];
                let d = |lo: f32, hi: f32| hi - lo;
                let gx = d(at(a.saturating_sub(1), b, c), at((a + 1).min(w - 1), b, c));
                let gy = d(at(a, b.saturating_sub(1), c), at(a, (b + 1).min(w - 1), c));
                let gz = d(at(a, b, c.saturating_sub(1)), at(a, b, (c + 1).min(w - 1)));
                g[i] = (gx * gx + gy * gy + gz * gz).sqrt();
            }
            let mx = g.iter().cloned().fold(0.0, f32::max).max(1e-9);
            g.iter().map(|v| v / mx).collect()
        }
        4 => {
            // Value band around a random level (what iso-distance and value maps look like).
            let lo = x.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let t = lo + rng.random::<f32>() * (hi - lo);
            let width = (hi - lo).max(1e-6) * (0.02 + 0.2 * rng.random::<f32>());
            x.iter().map(|&v| (-((v - t) / width).abs()).exp()).collect()
        }
        _ => {
            // Threshold map (value above a level), as for Nyx-style maps.
            let lo = x.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let t = lo + rng.random::<f32>() * (hi - lo);
            x.iter().map(|&v| if v > t { 1.0 } else { 0.0 }).collect()
        }
    }
}

struct Batch {
    x: Tensor,
    imp: Tensor,
    /// The quantisation step of each latent cell of each window `[B,1,Lw,Lw,Lw]`,
    /// from its importance as packing derives it; 1 for the baseline.
    step: Tensor,
}

/// Levels of every latent cell of a window `[Lw][Lw][Lw]`: the stored cells
/// as packing chooses them (`hyper::block_levels`), the ring as each cell's own
/// (the neighbouring blocks' levels, up to their span limit).
fn window_levels(imp: &[f32], p: &Profile) -> Vec<i8> {
    let (lw, h, l) = (p.latent_window(), p.latent_halo, p.latent_core());
    let mut lv = cell_levels(imp, p, 0, lw, Steer::Strict);
    for (k, v) in block_levels(imp, p, Steer::Strict).into_iter().enumerate() {
        lv[((k / (l * l) + h) * lw + (k / l) % l + h) * lw + k % l + h] = v;
    }
    lv
}

fn make_batch(windows: &[Vec<f32>], idx: &[usize], p: &Profile, rng: &mut ChaCha8Rng, device: Device, zero_imp: bool) -> Batch {
    let w = p.window();
    let n = w * w * w;
    let mut xs = Vec::with_capacity(idx.len() * n);
    let mut is = Vec::with_capacity(idx.len() * n);
    let lw = p.latent_window();
    let mut steps = Vec::with_capacity(idx.len() * lw * lw * lw);
    for &i in idx {
        xs.extend_from_slice(&windows[i]);
        if zero_imp {
            is.extend(std::iter::repeat_n(0f32, n));
            steps.extend(std::iter::repeat_n(1f32, lw * lw * lw));
        } else {
            let imp = random_importance(&windows[i], w, rng);
            steps.extend(window_levels(&imp, p).into_iter().map(quant_step));
            is.extend(imp);
        }
    }
    let b = idx.len() as i64;
    let (w, lw) = (w as i64, lw as i64);
    Batch {
        x: Tensor::from_slice(&xs).view([b, 1, w, w, w]).to_device(device),
        imp: Tensor::from_slice(&is).view([b, 1, w, w, w]).to_device(device),
        step: Tensor::from_slice(&steps).view([b, 1, lw, lw, lw]).to_device(device),
    }
}

fn core_of(t: &Tensor, p: &Profile) -> Tensor {
    let (h, c) = (p.halo_vox as i64, p.core as i64);
    t.narrow(2, h, c).narrow(3, h, c).narrow(4, h, c)
}

/// Forward pass with the training relaxations; returns (loss, bpv, mse, wmse).
fn forward(nets: &Nets, zd: &ZDensity, b: &Batch, cfg: &TrainConfig) -> (Tensor, Tensor, Tensor) {
    let p = &cfg.profile;
    let (l, h) = (p.latent_core() as i64, p.latent_halo as i64);
    let y = nets.analysis(&b.x, &b.imp);
    let xc = core_of(&b.x, p);
    let voxels = (b.x.size()[0] * (p.core as i64).pow(3)) as f64;
    if cfg.baseline {
        let xh = nets.synthesis(&y);
        let mse = (&xc - xh).square().mean(Kind::Float);
        return (mse.shallow_clone(), Tensor::zeros([], (Kind::Float, cfg.device)), mse);
    }
    let yc = y.narrow(2, h, l).narrow(3, h, l).narrow(4, h, l);
    let z = nets.hyper_analysis(&yc);
    let bits_z = zd.bits(&(&z + z.rand_like() - 0.5)).sum(Kind::Float);
    let (mu, logs) = nets.hyper_synthesis(&ste_round(&z));
    // Latents are coded in units of their cell's step, as EntropyCodec does:
    // residual (y - mu) / step against the scale divided by the step.
    let step = b.step.narrow(2, h, l).narrow(3, h, l).narrow(4, h, l);
    let scale = (logs.exp() / &step).clamp(super::tables::SCALE_MIN, super::tables::SCALE_MAX);
    let r = (&yc - &mu) / &step;
    let bits_y = gaussian_bits(&(&r + r.rand_like() - 0.5), &r.zeros_like(), &scale).sum(Kind::Float);
    let yc_hat = ste_round(&r) * &step + &mu;
    let pad = [h, h, h, h, h, h];
    let mask = Tensor::ones_like(&yc).constant_pad_nd(pad);
    let y_win = ste_round(&(&y / &b.step)) * &b.step * (1.0 - &mask) + yc_hat.constant_pad_nd(pad);
    let xh = nets.synthesis(&y_win);
    let w = (core_of(&b.imp, p) * cfg.a).exp();
    let err = (&xc - &xh).square();
    let bpv = (bits_y + bits_z) / voxels;
    let wd = (&w * &err).mean(Kind::Float);
    let loss = &bpv + wd * cfg.lambda;
    (loss, bpv, err.mean(Kind::Float))
}

/// Real-bitstream validation: quantise, entropy-code with the Rust coder, decode.
pub fn validate(mf: &ModelFile, device: Device, windows: &[Vec<f32>], seed: u64) -> Validation {
    let engine = super::engine::Engine::load(mf, device).expect("freshly exported model loads");
    let codec = EntropyCodec::from_model(mf).expect("freshly exported tables are valid");
    let p = &mf.profile;
    let w = p.window();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut bytes, mut se, mut wse, mut wsum, mut n) = (0usize, 0f64, 0f64, 0f64, 0usize);
    for win in windows {
        let imp = random_importance(win, w, &mut rng);
        let (y, z) = engine.analyse(win, &imp, 1);
        let (zs, ys, y_hat, levels) = codec.encode(&z, &y, &block_levels(&imp, p, Steer::Strict));
        bytes += zs.len() + ys.len() + super::hyper::levels_to_bytes(&levels).len();
        // The window's ring latents come from its own analysis, rounded at their cells' steps.
        let lw = p.latent_window();
        let steps: Vec<f32> = window_levels(&imp, p).into_iter().map(quant_step).collect();
        let mut full = vec![0f32; p.m * lw * lw * lw];
        for (i, v) in engine.analyse_full(win, &imp).iter().enumerate() {
            let s = steps[i % steps.len()];
            full[i] = (v / s).round() * s;
        }
        let (l, h) = (p.latent_core(), p.latent_halo);
        for c in 0..p.m {
            for k in 0..l {
                for j in 0..l {
                    for i in 0..l {
                        full[((c * lw + k + h) * lw + j + h) * lw + i + h] = y_hat[((c * l + k) * l + j) * l + i];
                    }
                }
            }
        }
        let rec = engine.synthesise(&full, 1);
        let mut orig = vec![0f32; p.core.pow(3)];
        let mut impc = vec![0f32; p.core.pow(3)];
        let hv = p.halo_vox as isize;
        extract_window(win, [w, w, w], [hv, hv, hv], p.core, &mut orig);
        extract_window(&imp, [w, w, w], [hv, hv, hv], p.core, &mut impc);
        for i in 0..orig.len() {
            let e = (orig[i] - rec[i]) as f64;
            se += e * e;
            wse += impc[i] as f64 * e * e;
            wsum += impc[i] as f64;
        }
        n += orig.len();
    }
    let mse = se / n.max(1) as f64;
    let wmse = if wsum > 0.0 { wse / wsum } else { mse };
    Validation { bits_per_voxel: bytes as f64 * 8.0 / n.max(1) as f64, psnr: -10.0 * mse.log10(), wpsnr: -10.0 * wmse.log10() }
}

/// Normalises each input to [0, 1] (min-max), as packing does.
pub fn normalised(vols: &[Volume]) -> Vec<Vec<f32>> {
    vols.iter()
        .map(|v| {
            let (lo, hi) = v.range();
            let n = Norm::from_range(lo, hi);
            v.data.iter().map(|&x| if x.is_finite() { n.forward(x) } else { 0.0 }).collect()
        })
        .collect()
}

pub fn train(vols: &[Volume], cfg: &TrainConfig, mut progress: impl FnMut(usize, f64, f64, f64, Option<Validation>)) -> Result<Trained, String> {
    let p = &cfg.profile;
    let w = p.window();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let norm = normalised(vols);
    let dims: Vec<[usize; 3]> = vols.iter().map(|v| v.dims()).collect();
    let mut windows = sample_windows(&norm, &dims, w, cfg.blocks + cfg.blocks / 10 + 1, &mut rng);
    let val: Vec<Vec<f32>> = windows.split_off(cfg.blocks).into_iter().take(8).collect();

    let mut vs = nn::VarStore::new(cfg.device);
    let mut vsd = nn::VarStore::new(cfg.device);
    let mut nets = Nets::new(&vs.root(), p);
    let mut zd = ZDensity::new(&vsd.root(), p.nz);
    if let Some(r) = &cfg.resume {
        let mf = ModelFile::load(r).map_err(|e| e.to_string())?;
        if mf.profile != *p {
            return Err(format!("{}: profile {} differs from the requested one", r.display(), mf.profile.name));
        }
        net::import(&mut vs, &mf)?;
        net::import_density(&mut zd, &mf)?;
    } else if !cfg.baseline {
        let (l, h) = (p.latent_core() as i64, p.latent_halo as i64);
        let idx: Vec<usize> = (0..windows.len().min(64)).collect();
        let ys: Vec<Tensor> = idx
            .chunks(cfg.batch.max(1))
            .map(|c| {
                let b = make_batch(&windows, c, p, &mut rng, cfg.device, false);
                tch::no_grad(|| nets.analysis(&b.x, &b.imp)).narrow(2, h, l).narrow(3, h, l).narrow(4, h, l)
            })
            .collect();
        nets.warm_start_entropy(&Tensor::cat(&ys, 0));
    }
    let mut opt = nn::Adam::default().build(&vs, cfg.lr).map_err(|e| e.to_string())?;
    opt.set_lr_group(net::HYPER_GROUP, cfg.lr_density);
    let mut optd = nn::Adam::default().build(&vsd, cfg.lr_density).map_err(|e| e.to_string())?;
    let mut meta = BTreeMap::new();
    meta.insert("recipe".into(), cfg.recipe.clone());
    meta.insert("lambda".into(), cfg.lambda.to_string());
    meta.insert("a".into(), cfg.a.to_string());
    meta.insert("baseline".into(), cfg.baseline.to_string());
    meta.insert("normalisation".into(), "minmax-0-1".into());
    let mut last_val = Validation::default();
    let mut order: Vec<usize> = (0..windows.len()).collect();
    let mut cursor = order.len();
    for step in 0..cfg.steps {
        if step == cfg.steps * 4 / 5 {
            opt.set_lr(cfg.lr * 0.1);
            opt.set_lr_group(net::HYPER_GROUP, cfg.lr_density * 0.1);
            optd.set_lr(cfg.lr_density * 0.1);
        }
        let mut idx = Vec::with_capacity(cfg.batch);
        for _ in 0..cfg.batch {
            if cursor == order.len() {
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                cursor = 0;
            }
            idx.push(order[cursor]);
            cursor += 1;
        }
        let b = make_batch(&windows, &idx, p, &mut rng, cfg.device, cfg.baseline);
        let (loss, bpv, mse) = forward(&nets, &zd, &b, cfg);
        opt.zero_grad();
        optd.zero_grad();
        loss.backward();
        opt.clip_grad_norm(1.0);
        opt.step();
        optd.step();
        let val = if (step + 1) % cfg.validate_every == 0 || step + 1 == cfg.steps {
            let mf = net::export(p, &vs, &zd, meta.clone());
            if !cfg.baseline {
                last_val = validate(&mf, cfg.device, &val, cfg.seed ^ 0x5eed);
            }
            mf.save(&cfg.out).map_err(|e| e.to_string())?;
            Some(last_val)
        } else {
            None
        };
        let mse = mse.double_value(&[]);
        progress(step, loss.double_value(&[]), bpv.double_value(&[]), -10.0 * mse.max(1e-12).log10(), val);
    }
    let model = net::export(p, &vs, &zd, meta);
    model.save(&cfg.out).map_err(|e| e.to_string())?;
    let _ = &mut vsd;
    Ok(Trained { model, validation: last_val })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeInfo;

    fn smooth(dims: [usize; 3], f: f32) -> Volume {
        let mut data = Vec::new();
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    data.push((x as f32 * f).sin() + (y as f32 * f * 0.7).cos() * (z as f32 * 0.1).sin());
                }
            }
        }
        Volume::new(VolumeInfo::new("s", dims), data)
    }

    #[test]
    fn training_runs_and_validates_with_real_bitstreams() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TrainConfig {
            profile: Profile::tiny(),
            steps: 4,
            batch: 2,
            blocks: 8,
            lambda: 10.0,
            a: 5.0,
            lr: 1e-3,
            lr_density: 1e-2,
            seed: 1,
            baseline: false,
            out: dir.path().join("m.safetensors"),
            resume: None,
            validate_every: 2,
            device: Device::Cpu,
            recipe: "test".into(),
        };
        let vols = [smooth([40, 36, 34], 0.2)];
        let mut steps = 0;
        let t = train(&vols, &cfg, |_, loss, _, _, _| {
            assert!(loss.is_finite());
            steps += 1;
        })
        .unwrap();
        assert_eq!(steps, 4);
        assert!(t.validation.bits_per_voxel > 0.0 && t.validation.psnr.is_finite());
        // The saved file reloads with the same hash and a usable entropy coder.
        let mf = ModelFile::load(&cfg.out).unwrap();
        assert_eq!(mf.hash, t.model.hash);
        EntropyCodec::from_model(&mf).unwrap();
    }
}
