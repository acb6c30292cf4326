//! The IDLat networks in libtorch (tch): analysis g_a with SFT conditioning on
//! the importance map, hyper-analysis h_a, hyper-synthesis h_s (training twin
//! of `hyper.rs`), the factorised density of z, and synthesis g_s conditioned
//! only on decoded latents (T_g over y_hat), never on the importance map.
//!
//! libtorch runs g_a/h_a at pack time and g_s at decode time only; nothing it
//! computes sets a probability (DESIGN section 4).

use super::hyper::{H_S_MID, H_S_OUT, H_S_TCONV};
use super::modelfile::{Data, ModelFile, Tensor as MTensor};
use super::profile::Profile;
use super::tables;
use std::collections::BTreeMap;
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// Spatial feature transform: F' = F * (1 + gamma(c)) + beta(c).
#[derive(Debug)]
struct Sft {
    shared: nn::Conv3D,
    gamma: nn::Conv3D,
    beta: nn::Conv3D,
}

impl Sft {
    fn new(p: nn::Path, cond: usize, hidden: usize, ch: usize, k: i64) -> Sft {
        let cfg = nn::ConvConfig { padding: k / 2, ..Default::default() };
        // Start as identity so early training is not disturbed by random modulation.
        let zero = nn::ConvConfig { padding: k / 2, ws_init: nn::Init::Const(0.0), ..Default::default() };
        Sft {
            shared: nn::conv3d(&p / "shared", cond as i64, hidden as i64, k, cfg),
            gamma: nn::conv3d(&p / "gamma", hidden as i64, ch as i64, k, zero),
            beta: nn::conv3d(&p / "beta", hidden as i64, ch as i64, k, zero),
        }
    }

    fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let h = self.shared.forward(c).relu();
        x * (self.gamma.forward(&h) + 1.0) + self.beta.forward(&h)
    }
}

#[derive(Debug)]
pub struct Nets {
    pub profile: Profile,
    cond: Vec<nn::Conv3D>,
    enc: Vec<nn::Conv3D>,
    enc_sft: Vec<Sft>,
    enc_out: nn::Conv3D,
    ha0: nn::Conv3D,
    ha1: nn::Conv3D,
    hs0: nn::ConvTranspose3D,
    hs2: nn::Conv3D,
    hs4: nn::Conv3D,
    tg0: nn::Conv3D,
    tg1: nn::Conv3D,
    dec_sft: Sft,
    dec: Vec<nn::ConvTranspose3D>,
    dec_out: nn::Conv3D,
}

/// Per-channel Gaussian density of z (learned mean and log-scale); kept in its
/// own VarStore so it trains with its own learning rate.
#[derive(Debug)]
pub struct ZDensity {
    pub mean: Tensor,
    pub log_scale: Tensor,
}

pub fn ste_round(x: &Tensor) -> Tensor {
    x + (x.round() - x).detach()
}

/// -log2 P(value in [x-0.5, x+0.5]) under N(mean, scale), elementwise.
pub fn gaussian_bits(x: &Tensor, mean: &Tensor, scale: &Tensor) -> Tensor {
    let c = |t: Tensor| (t / std::f64::consts::SQRT_2).neg().erfc() * 0.5;
    let d = x - mean;
    let p = c((&d + 0.5) / scale) - c((&d - 0.5) / scale);
    -(p.clamp_min(1e-9).log2())
}

impl Nets {
    pub fn new(vs: &nn::Path, profile: &Profile) -> Nets {
        let p = profile;
        let (m, nz, nh, ce, cc, sh) = (p.m as i64, p.nz as i64, p.nh as i64, p.enc_ch as i64, p.cond_ch as i64, p.sft_hidden);
        let s2k5 = nn::ConvConfig { stride: 2, padding: 2, ..Default::default() };
        let s2k3 = nn::ConvConfig { stride: 2, padding: 1, ..Default::default() };
        let k3 = nn::ConvConfig { padding: 1, ..Default::default() };
        let ga = vs / "g_a";
        let cond = (0..3).map(|i| nn::conv3d(&ga / format!("cond{i}"), if i == 0 { 1 } else { cc }, cc, 3, s2k3)).collect();
        let enc = (0..3)
            .map(|i| nn::conv3d(&ga / format!("conv{i}"), if i == 0 { 1 } else { ce }, if i == 2 { m } else { ce }, 5, s2k5))
            .collect();
        // Full-resolution stages use 1x1 SFT (cheap); the latent-resolution one 3x3x3.
        let enc_sft = (0..3)
            .map(|i| Sft::new(&ga / format!("sft{i}"), cc as usize, sh, if i == 2 { m as usize } else { ce as usize }, if i == 2 { 3 } else { 1 }))
            .collect();
        let enc_out = nn::conv3d(&ga / "out", m, m, 1, Default::default());
        let ha = vs / "h_a";
        let ha0 = nn::conv3d(&ha / "0", m, nh, 3, k3);
        let ha1 = nn::conv3d(&ha / "1", nh, nz, 2, nn::ConvConfig { stride: 2, ..Default::default() });
        let hs = vs / "h_s";
        let hs0 = nn::conv_transpose3d(&hs / "0", nz, nh, 2, nn::ConvTransposeConfig { stride: 2, ..Default::default() });
        let hs2 = nn::conv3d(&hs / "2", nh, nh, 1, Default::default());
        let hs4 = nn::conv3d(&hs / "4", nh, 2 * m, 1, Default::default());
        let gs = vs / "g_s";
        let tg0 = nn::conv3d(&gs / "tg0", m, cc, 1, Default::default());
        let tg1 = nn::conv3d(&gs / "tg1", cc, cc, 1, Default::default());
        let dec_sft = Sft::new(&gs / "sft", cc as usize, sh, m as usize, 1);
        let up = nn::ConvTransposeConfig { stride: 2, padding: 1, ..Default::default() };
        let ch = [m, p.dec_ch[0] as i64, p.dec_ch[1] as i64, p.dec_ch[2] as i64];
        let dec = (0..3).map(|i| nn::conv_transpose3d(&gs / format!("up{i}"), ch[i], ch[i + 1], 4, up)).collect();
        let dec_out = nn::conv3d(&gs / "out", ch[3], 1, 3, k3);
        // h_s's names are fixed: the Rust twin reads them from the model file.
        debug_assert_eq!(H_S_TCONV, "h_s.0");
        let _ = (H_S_MID, H_S_OUT);
        Nets { profile: p.clone(), cond, enc, enc_sft, enc_out, ha0, ha1, hs0, hs2, hs4, tg0, tg1, dec_sft, dec, dec_out }
    }

    /// g_a: x and importance `[B,1,W,W,W]` → y `[B,M,Lw,Lw,Lw]`.
    pub fn analysis(&self, x: &Tensor, imp: &Tensor) -> Tensor {
        let mut c = imp.shallow_clone();
        let mut h = x.shallow_clone();
        for i in 0..3 {
            c = self.cond[i].forward(&c).leaky_relu();
            h = self.enc[i].forward(&h);
            if i < 2 {
                h = h.leaky_relu();
            }
            h = self.enc_sft[i].forward(&h, &c);
        }
        self.enc_out.forward(&h)
    }

    /// h_a: latent core `[B,M,L,L,L]` → z `[B,nz,G,G,G]`.
    pub fn hyper_analysis(&self, y: &Tensor) -> Tensor {
        self.ha1.forward(&self.ha0.forward(&y.abs()).leaky_relu())
    }

    /// h_s (training twin of the Rust one): z → (mean, log-scale), each `[B,M,L,L,L]`.
    pub fn hyper_synthesis(&self, z: &Tensor) -> (Tensor, Tensor) {
        let h = self.hs0.forward(z).relu();
        let h = self.hs2.forward(&h).relu();
        let o = self.hs4.forward(&h);
        let m = self.profile.m as i64;
        (o.narrow(1, 0, m), o.narrow(1, m, m))
    }

    /// g_s: latent window `[B,M,Lw,Lw,Lw]` → reconstruction `[B,1,W,W,W]`.
    pub fn synthesis(&self, y: &Tensor) -> Tensor {
        let t = self.tg1.forward(&self.tg0.forward(y).leaky_relu()).leaky_relu();
        let mut h = self.dec_sft.forward(y, &t);
        for d in &self.dec {
            h = d.forward(&h).leaky_relu();
        }
        self.dec_out.forward(&h)
    }
}

impl ZDensity {
    pub fn new(vs: &nn::Path, nz: usize) -> ZDensity {
        ZDensity {
            mean: vs.var("z_mean", &[nz as i64], nn::Init::Const(0.0)),
            log_scale: vs.var("z_log_scale", &[nz as i64], nn::Init::Const(0.5)),
        }
    }

    /// Bits of `z` (any shape `[B,nz,...]`) under the per-channel density.
    pub fn bits(&self, z: &Tensor) -> Tensor {
        let nz = self.mean.size()[0];
        let mean = self.mean.view([1, nz, 1, 1, 1]);
        let scale = self.log_scale.exp().clamp(0.05, 100.0).view([1, nz, 1, 1, 1]);
        gaussian_bits(z, &mean, &scale)
    }
}

fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).expect("float tensor converts")
}

/// Builds a model file from trained variables plus the integer coding tables.
pub fn export(profile: &Profile, vs: &nn::VarStore, zd: &ZDensity, meta: BTreeMap<String, String>) -> ModelFile {
    let mut tensors = BTreeMap::new();
    for (name, t) in vs.variables() {
        let shape = t.size().iter().map(|&d| d as usize).collect();
        tensors.insert(name, MTensor::f32(shape, to_vec_f32(&t)));
    }
    let ytab: Vec<i32> = tables::gaussian_tables().into_iter().map(|v| v as i32).collect();
    tensors.insert("tables.y".into(), MTensor { shape: vec![tables::SCALE_COUNT, tables::ALPHABET], data: Data::I32(ytab) });
    let zm = to_vec_f32(&zd.mean);
    let zs = to_vec_f32(&zd.log_scale.exp().clamp(0.05, 100.0));
    let mut ztab = Vec::new();
    for c in 0..profile.nz {
        ztab.extend(tables::quantise(&tables::gaussian_pmf(zm[c] as f64, zs[c] as f64)).into_iter().map(|v| v as i32));
    }
    tensors.insert("tables.z".into(), MTensor { shape: vec![profile.nz, tables::ALPHABET], data: Data::I32(ztab) });
    tensors.insert("tables.log_scale_bounds".into(), MTensor::f32(vec![tables::SCALE_COUNT - 1], tables::log_scale_bounds()));
    tensors.insert("z_density.mean".into(), MTensor::f32(vec![profile.nz], zm));
    tensors.insert("z_density.log_scale".into(), MTensor::f32(vec![profile.nz], to_vec_f32(&zd.log_scale)));
    let mut mf = ModelFile { profile: profile.clone(), meta, tensors, hash: String::new() };
    mf.hash = super::modelfile::sha256_hex(&mf.to_bytes());
    mf
}

/// Copies a model file's weights into a VarStore built with `Nets::new`.
pub fn import(vs: &mut nn::VarStore, mf: &ModelFile) -> Result<(), String> {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let t = mf.tensors.get(&name).ok_or_else(|| format!("model file lacks weight {name}"))?;
            let Data::F32(v) = &t.data else { return Err(format!("weight {name} is not f32")) };
            let shape: Vec<i64> = var.size();
            if shape.iter().product::<i64>() as usize != v.len() {
                return Err(format!("weight {name}: {} values for shape {shape:?}", v.len()));
            }
            let src = Tensor::from_slice(v).view(shape.as_slice()).to_device(var.device());
            var.copy_(&src);
        }
        Ok(())
    })
}

/// Density variables into a ZDensity store (training resume).
pub fn import_density(zd: &mut ZDensity, mf: &ModelFile) -> Result<(), String> {
    let nz = mf.profile.nz;
    let m = mf.f32s("z_density.mean", nz).map_err(|e| e.to_string())?;
    let s = mf.f32s("z_density.log_scale", nz).map_err(|e| e.to_string())?;
    tch::no_grad(|| {
        zd.mean.copy_(&Tensor::from_slice(m).to_device(zd.mean.device()));
        zd.log_scale.copy_(&Tensor::from_slice(s).to_device(zd.log_scale.device()));
    });
    Ok(())
}
