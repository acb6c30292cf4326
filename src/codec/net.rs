//! The IDLat networks in libtorch (tch): analysis g_a with SFT conditioning on
//! the importance map, hyper-analysis h_a, hyper-synthesis h_s (training twin
//! of `hyper.rs`), the factorised density of z, and synthesis g_s conditioned
//! only on decoded latents (T_g over y_hat), never on the importance map.
//!
//! libtorch runs g_a/h_a at pack time and g_s at decode time only; nothing it
//! computes sets a probability (ARCHITECTURE.md).

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

/// The networks of either architecture; h_a/h_s are shared.
#[derive(Debug)]
pub struct Nets {
    pub profile: Profile,
    hyper: Hyper,
    body: Body,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one Body per loaded model, never moved in a hot path")]
enum Body {
    Fast(FastNets),
    Paper(PaperNets),
}

#[derive(Debug)]
struct Hyper {
    ha0: nn::Conv3D,
    ha1: nn::Conv3D,
    hs0: nn::ConvTranspose3D,
    hs2: nn::Conv3D,
    hs4: nn::Conv3D,
}

#[derive(Debug)]
struct FastNets {
    profile: Profile,
    cond: Vec<nn::Conv3D>,
    enc: Vec<nn::Conv3D>,
    enc_sft: Vec<Sft>,
    enc_out: nn::Conv3D,
    tg0: nn::Conv3D,
    tg1: nn::Conv3D,
    dec_sft: Sft,
    dec: Vec<nn::ConvTranspose3D>,
    dec_out: nn::Conv3D,
    /// Coarse path: one channel at latent resolution, upsampled trilinearly and
    /// added to the output, so latents can carry the block's low frequencies
    /// directly and the convolutional stack learns only the detail.
    coarse: nn::Conv3D,
    /// Linear block-transform path (`profile.transform`): analysis basis
    /// (k = s = stride) and synthesis basis (its transpose).
    basis: Option<(nn::Conv3D, nn::ConvTranspose3D)>,
}

/// Gain of the DCT initialisation: unit-step rounding of the latents then
/// costs about 35 dB PSNR on [0, 1] data before training tunes it.
const BASIS_GAIN: f64 = 4.0;
/// The basis codes x - 1/2 so DC latents of [0, 1] data are centred on zero.
const BASIS_CENTRE: f64 = 0.5;

/// The `m` lowest-frequency orthonormal DCT-II functions on an `n`³ cell
/// (ordered by u+v+w, then lexicographically), `[m][n][n][n]` with x fastest.
fn dct_basis(n: usize, m: usize) -> Vec<f32> {
    let mut freqs: Vec<[usize; 3]> = (0..n * n * n).map(|i| [i / (n * n), (i / n) % n, i % n]).collect();
    freqs.sort_by_key(|f| (f[0] + f[1] + f[2], *f));
    let c = |u: usize, x: usize| {
        let a = if u == 0 { (1.0 / n as f64).sqrt() } else { (2.0 / n as f64).sqrt() };
        a * (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * n) as f64).cos()
    };
    let mut out = Vec::with_capacity(m * n * n * n);
    for f in freqs.iter().take(m) {
        for z in 0..n {
            for y in 0..n {
                for x in 0..n {
                    out.push((c(f[0], z) * c(f[1], y) * c(f[2], x)) as f32);
                }
            }
        }
    }
    out
}

/// Optimiser group of the entropy-model networks (h_a, h_s); see `Nets::new`.
pub const HYPER_GROUP: usize = 1;

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

impl FastNets {
    fn new(vs: &nn::Path, profile: &Profile) -> FastNets {
        let p = profile;
        let (m, ce, cc, sh) = (p.m as i64, p.enc_ch as i64, p.cond_ch as i64, p.sft_hidden);
        let s2k5 = nn::ConvConfig { stride: 2, padding: 2, ..Default::default() };
        let s2k3 = nn::ConvConfig { stride: 2, padding: 1, ..Default::default() };
        let ga = vs / "g_a";
        let cond = (0..3).map(|i| nn::conv3d(&ga / format!("cond{i}"), if i == 0 { 1 } else { cc }, cc, 3, s2k3)).collect();
        let enc = (0..3).map(|i| nn::conv3d(&ga / format!("conv{i}"), if i == 0 { 1 } else { ce }, if i == 2 { m } else { ce }, 5, s2k5)).collect();
        // Full-resolution stages use 1x1 SFT (cheap); the latent-resolution one 3x3x3.
        let enc_sft = (0..3).map(|i| Sft::new(&ga / format!("sft{i}"), cc as usize, sh, if i == 2 { m as usize } else { ce as usize }, if i == 2 { 3 } else { 1 })).collect();
        let enc_out = nn::conv3d(&ga / "out", m, m, 1, Default::default());
        let gs = vs / "g_s";
        let tg0 = nn::conv3d(&gs / "tg0", m, cc, 1, Default::default());
        let tg1 = nn::conv3d(&gs / "tg1", cc, cc, 1, Default::default());
        let dec_sft = Sft::new(&gs / "sft", cc as usize, sh, m as usize, 1);
        let up = nn::ConvTransposeConfig { stride: 2, padding: 1, ..Default::default() };
        let ch = [m, p.dec_ch[0] as i64, p.dec_ch[1] as i64, p.dec_ch[2] as i64];
        let dec = (0..3).map(|i| nn::conv_transpose3d(&gs / format!("up{i}"), ch[i], ch[i + 1], 4, up)).collect();
        let dec_out = nn::conv3d(&gs / "out", ch[3], 1, p.out_kernel as i64, Default::default());
        let coarse = nn::conv3d(&gs / "coarse", m, 1, 1, Default::default());
        let basis = p.transform.then(|| {
            let st = p.stride as i64;
            let nob = nn::ConvConfig { stride: st, bias: false, ..Default::default() };
            let enc_b = nn::conv3d(&ga / "basis", 1, m, st, nob);
            let dec_b = nn::conv_transpose3d(&gs / "basis", m, 1, st, nn::ConvTransposeConfig { stride: st, bias: false, ..Default::default() });
            (enc_b, dec_b)
        });
        let mut n = FastNets { profile: p.clone(), cond, enc, enc_sft, enc_out, tg0, tg1, dec_sft, dec, dec_out, coarse, basis };
        if p.transform {
            n.init_as_transform_codec();
        }
        n
    }

    /// Starts training from a DCT transform codec: the bases hold the DCT
    /// functions, enc_out is the identity, and the last layer of every
    /// nonlinear branch is zero, so those branches learn only what the linear
    /// transform misses (a cold start left the stacks at ~28 dB after hours
    /// of CPU training, below a plain truncated DCT's 35 dB).
    fn init_as_transform_codec(&mut self) {
        let p = &self.profile;
        let (m, st) = (p.m as i64, p.stride as i64);
        let b = Tensor::from_slice(&dct_basis(p.stride, p.m)).view([m, 1, st, st, st]);
        tch::no_grad(|| {
            let (enc_b, dec_b) = self.basis.as_mut().expect("transform profile");
            enc_b.ws.copy_(&(&b * BASIS_GAIN));
            dec_b.ws.copy_(&(&b / BASIS_GAIN));
            self.enc_out.ws.copy_(&Tensor::eye(m, (Kind::Float, Device::Cpu)).view([m, m, 1, 1, 1]));
            for conv in [&mut self.enc[2], &mut self.dec_out, &mut self.coarse] {
                let _ = conv.ws.zero_();
            }
            for bias in [&mut self.enc[2].bs, &mut self.enc_out.bs, &mut self.dec_out.bs, &mut self.coarse.bs].into_iter().flatten() {
                let _ = bias.zero_();
            }
        });
    }

    fn analysis(&self, x: &Tensor, imp: &Tensor) -> Tensor {
        let mut c = imp.shallow_clone();
        let mut h = x.shallow_clone();
        for i in 0..3 {
            c = self.cond[i].forward(&c).leaky_relu();
            h = self.enc[i].forward(&h);
            if i < 2 {
                h = h.leaky_relu();
            } else if let Some((b, _)) = &self.basis {
                h += b.forward(&(x - BASIS_CENTRE));
            }
            h = self.enc_sft[i].forward(&h, &c);
        }
        self.enc_out.forward(&h)
    }

    /// g_s: latent window `[B,M,Lw,Lw,Lw]` → block cores `[B,1,C,C,C]`.
    ///
    /// Each stage only computes what the kept core depends on: the halo ring
    /// is needed for context, not as output, so feature maps are cropped to
    /// the receptive field of the core before each upsampling (about 2x less
    /// work than decoding the whole window). Cropping is exact: the dropped
    /// outputs are exactly those that would not reach the core.
    fn synthesis(&self, y: &Tensor) -> Tensor {
        let p = &self.profile;
        let t = self.tg1.forward(&self.tg0.forward(y).leaky_relu()).leaky_relu();
        let mut h = self.dec_sft.forward(y, &t);
        let r = (p.out_kernel / 2) as i64;
        let plan = crop_plan(p.halo_vox as i64, p.core as i64, p.latent_window() as i64, r);
        let mut start = 0i64; // global index (at the current resolution) of h's first element
        for (d, &(lo, hi)) in self.dec.iter().zip(&plan) {
            h = channels_last(&narrow3(&h, lo - start, hi - lo + 1));
            h = d.forward(&h).leaky_relu();
            start = 2 * lo;
        }
        let (hv, c) = (p.halo_vox as i64, p.core as i64);
        let h = channels_last(&narrow3(&h, hv - r - start, c + 2 * r));
        // The output conv without padding: on the c + 2r crop it yields
        // exactly the c³ core a padded conv would after cropping its ring.
        let detail = h.conv3d(&self.dec_out.ws, self.dec_out.bs.as_ref(), [1, 1, 1], [0, 0, 0], [1, 1, 1], 1);
        // Coarse path over the latent window, cropped to the core after upsampling.
        let lw = p.latent_window() as i64;
        let up = self.coarse.forward(y).upsample_trilinear3d([lw * 8, lw * 8, lw * 8], false, None, None, None);
        let out = detail + narrow3(&up, hv, c);
        match &self.basis {
            // Kernel = stride: the core's voxels come from the core's latents only.
            Some((_, b)) => out + b.forward(&narrow3(y, p.latent_halo as i64, p.latent_core() as i64)) + BASIS_CENTRE,
            None => out,
        }
    }
}

impl Nets {
    pub fn new(vs: &nn::Path, profile: &Profile) -> Nets {
        let p = profile;
        let (m, nz, nh) = (p.m as i64, p.nz as i64, p.nh as i64);
        let k3 = nn::ConvConfig { padding: 1, ..Default::default() };
        // The entropy model (h_a, h_s) sits in optimiser group 1, which trains
        // at the density learning rate: at the model rate its output biases
        // moved by 0.1 in 700 steps where they need to move by several units.
        let ha = vs.set_group(HYPER_GROUP) / "h_a";
        let hs = vs.set_group(HYPER_GROUP) / "h_s";
        // h_s's names are fixed: the Rust twin (hyper.rs) reads them from the model file.
        let _ = (H_S_TCONV, H_S_MID, H_S_OUT);
        let hyper = Hyper {
            ha0: nn::conv3d(&ha / "0", m, nh, 3, k3),
            ha1: nn::conv3d(&ha / "1", nh, nz, 2, nn::ConvConfig { stride: 2, ..Default::default() }),
            hs0: nn::conv_transpose3d(&hs / "0", nz, nh, 2, nn::ConvTransposeConfig { stride: 2, ..Default::default() }),
            hs2: nn::conv3d(&hs / "2", nh, nh, 1, Default::default()),
            hs4: nn::conv3d(&hs / "4", nh, 2 * m, 1, Default::default()),
        };
        let body = match p.arch {
            super::profile::Arch::Paper => Body::Paper(PaperNets::new(vs, p)),
            super::profile::Arch::Fast => Body::Fast(FastNets::new(vs, p)),
        };
        Nets { profile: p.clone(), hyper, body }
    }

    /// g_a: x and importance `[B,1,W,W,W]` → y `[B,M,Lw,Lw,Lw]`.
    pub fn analysis(&self, x: &Tensor, imp: &Tensor) -> Tensor {
        match &self.body {
            Body::Fast(n) => n.analysis(x, imp),
            Body::Paper(n) => n.analysis(x, imp),
        }
    }

    /// g_s: latent window `[B,M,Lw,Lw,Lw]` → block cores `[B,1,C,C,C]`.
    pub fn synthesis(&self, y: &Tensor) -> Tensor {
        match &self.body {
            Body::Fast(n) => n.synthesis(y),
            Body::Paper(n) => n.synthesis(y),
        }
    }

    /// Warm start of the entropy model from the latents of real data: the
    /// hyper-decoder's output biases become each channel's mean and log
    /// standard deviation over `yc` (`[B,M,L,L,L]`), so coding costs about
    /// the zeroth-order entropy from the first step instead of several bits per
    /// latent under unit Gaussians.
    pub fn warm_start_entropy(&mut self, yc: &Tensor) {
        let m = self.profile.m as i64;
        let mean = yc.mean_dim([0i64, 2, 3, 4].as_slice(), false, Kind::Float);
        let log_std = yc.std_dim([0i64, 2, 3, 4].as_slice(), true, false).clamp(tables::SCALE_MIN, tables::SCALE_MAX).log();
        tch::no_grad(|| {
            let b = self.hyper.hs4.bs.as_mut().expect("h_s output has a bias");
            b.narrow(0, 0, m).copy_(&mean);
            b.narrow(0, m, m).copy_(&log_std);
        });
    }

    /// h_a: stored latents `[B,M,L,L,L]` → z `[B,nz,G,G,G]` (odd L padded by one).
    pub fn hyper_analysis(&self, y: &Tensor) -> Tensor {
        let l = y.size()[2];
        let y = if l % 2 == 1 { y.constant_pad_nd([0, 1, 0, 1, 0, 1]) } else { y.shallow_clone() };
        // Transform models feed y signed so h_s can predict the sign of DC-like
        // latents as a mean; the original fast model saw |y|.
        let y = if self.profile.transform { y } else { y.abs() };
        self.hyper.ha1.forward(&self.hyper.ha0.forward(&y).leaky_relu())
    }

    /// h_s (training twin of the Rust one): z → (mean, log-scale), each `[B,M,L,L,L]`.
    pub fn hyper_synthesis(&self, z: &Tensor) -> (Tensor, Tensor) {
        let h = self.hyper.hs0.forward(z).relu();
        let h = self.hyper.hs2.forward(&h).relu();
        let l = self.profile.latent_core() as i64;
        let o = narrow3(&self.hyper.hs4.forward(&h), 0, l);
        let m = self.profile.m as i64;
        (o.narrow(1, 0, m), o.narrow(1, m, m))
    }
}

/// Generalised divisive normalisation (Ballé): x / sqrt(beta + gamma * x^2),
/// or its inverse x * sqrt(...) in the decoder.
#[derive(Debug)]
struct Gdn {
    conv: nn::Conv3D,
    inverse: bool,
}

impl Gdn {
    fn new(p: nn::Path, ch: i64, inverse: bool) -> Gdn {
        let mut conv = nn::conv3d(p, ch, ch, 1, nn::ConvConfig { bs_init: nn::Init::Const(1.0), ..Default::default() });
        tch::no_grad(|| {
            let eye = Tensor::eye(ch, (Kind::Float, conv.ws.device())) * 0.1;
            conv.ws.copy_(&eye.view([ch, ch, 1, 1, 1]));
        });
        Gdn { conv, inverse }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        // |weights| and a floor on the bias keep the denominator positive.
        let w = self.conv.ws.abs();
        let b = self.conv.bs.as_ref().expect("gdn has a bias").clamp_min(1e-6);
        let norm = x.square().conv3d(&w, Some(&b), [1, 1, 1], [0, 0, 0], [1, 1, 1], 1).sqrt();
        if self.inverse {
            x * norm
        } else {
            x / norm
        }
    }
}

/// SFT whose condition is resized to the feature map (reference behaviour).
fn sft_pooled(s: &Sft, x: &Tensor, c: &Tensor) -> Tensor {
    let size = x.size();
    s.forward(x, &c.adaptive_avg_pool3d([size[2], size[3], size[4]]))
}

/// The reference architecture (Shen et al.): full-resolution SFT after every
/// GDN stage in g_a, and in g_s SFT conditioned on a T_g branch over y_hat.
#[derive(Debug)]
struct PaperNets {
    cond0: (nn::Conv3D, nn::Conv3D),
    cond: Vec<(nn::Conv3D, nn::Conv3D)>,
    enc: Vec<(nn::Conv3D, Gdn, Sft)>,
    enc_out: nn::Conv3D,
    tg0: (nn::Conv3D, nn::Conv3D),
    tg: Vec<(nn::ConvTranspose3D, nn::Conv3D)>,
    dec: Vec<(nn::ConvTranspose3D, Gdn, Sft)>,
    dec_out: nn::Conv3D,
    halo: i64,
    core: i64,
}

impl PaperNets {
    fn new(vs: &nn::Path, p: &Profile) -> PaperNets {
        let (m, n, cc, sh) = (p.m as i64, p.enc_ch as i64, p.cond_ch as i64, p.sft_hidden);
        let k3 = nn::ConvConfig { padding: 1, ..Default::default() };
        let k3s2 = nn::ConvConfig { padding: 1, stride: 2, ..Default::default() };
        let k5 = nn::ConvConfig { padding: 2, ..Default::default() };
        let k5s2 = nn::ConvConfig { padding: 2, stride: 2, ..Default::default() };
        let up = nn::ConvTransposeConfig { stride: 2, padding: 1, ..Default::default() };
        let ga = vs / "g_a";
        let gs = vs / "g_s";
        let cond0 = (nn::conv3d(&ga / "c0a", 1, 2 * cc, 3, k3), nn::conv3d(&ga / "c0b", 2 * cc, cc, 3, k3));
        let cond = (1..4).map(|i| (nn::conv3d(&ga / format!("c{i}a"), cc, cc, 3, k3s2), nn::conv3d(&ga / format!("c{i}b"), cc, cc, 1, Default::default()))).collect();
        let chans = [1, n / 4, n / 2, n];
        let enc = (0..3)
            .map(|i| {
                let cfg = if i == 0 { k5 } else { k5s2 };
                (
                    nn::conv3d(&ga / format!("conv{i}"), chans[i], chans[i + 1], 5, cfg),
                    Gdn::new(&ga / format!("gdn{i}"), chans[i + 1], false),
                    Sft::new(&ga / format!("sft{i}"), cc as usize, sh, chans[i + 1] as usize, 3),
                )
            })
            .collect();
        let enc_out = nn::conv3d(&ga / "out", n, m, 5, k5s2);
        let tg0 = (nn::conv3d(&gs / "t0a", m, 2 * cc, 3, k3), nn::conv3d(&gs / "t0b", 2 * cc, cc, 3, k3));
        let tg = (1..3).map(|i| (nn::conv_transpose3d(&gs / format!("t{i}a"), cc, cc, 4, up), nn::conv3d(&gs / format!("t{i}b"), cc, cc, 1, Default::default()))).collect();
        let dch = [m, n, n, n / 2];
        let dec = (0..3)
            .map(|i| {
                (
                    nn::conv_transpose3d(&gs / format!("up{i}"), dch[i], dch[i + 1], 4, up),
                    Gdn::new(&gs / format!("igdn{i}"), dch[i + 1], true),
                    Sft::new(&gs / format!("sft{i}"), cc as usize, sh, dch[i + 1] as usize, 3),
                )
            })
            .collect();
        let dec_out = nn::conv3d(&gs / "out", n / 2, 1, 5, k5);
        PaperNets { cond0, cond, enc, enc_out, tg0, tg, dec, dec_out, halo: p.halo_vox as i64, core: p.core as i64 }
    }

    fn analysis(&self, x: &Tensor, imp: &Tensor) -> Tensor {
        let mut c = self.cond0.1.forward(&self.cond0.0.forward(imp).leaky_relu());
        let mut h = x.shallow_clone();
        for (i, (conv, gdn, sft)) in self.enc.iter().enumerate() {
            if i > 0 {
                c = self.cond[i - 1].1.forward(&self.cond[i - 1].0.forward(&c).leaky_relu());
            }
            h = sft_pooled(sft, &gdn.forward(&conv.forward(&h)), &c);
        }
        self.enc_out.forward(&h)
    }

    fn synthesis(&self, y: &Tensor) -> Tensor {
        let mut w = self.tg0.1.forward(&self.tg0.0.forward(y).leaky_relu());
        let mut h = y.shallow_clone();
        for (i, (up, gdn, sft)) in self.dec.iter().enumerate() {
            if i > 0 {
                w = self.tg[i - 1].1.forward(&self.tg[i - 1].0.forward(&w).leaky_relu());
            }
            h = sft_pooled(sft, &gdn.forward(&up.forward(&channels_last(&h))), &w);
        }
        narrow3(&self.dec_out.forward(&channels_last(&h)), self.halo, self.core)
    }
}

/// The same tensor in channels-last (NDHWC) strides, which libtorch's CPU
/// convolutions run about 1.5x faster on than NCDHW for these shapes.
fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 4, 1]).contiguous().permute([0, 4, 1, 2, 3])
}

fn narrow3(t: &Tensor, start: i64, len: i64) -> Tensor {
    t.narrow(2, start, len).narrow(3, start, len).narrow(4, start, len)
}

/// Input index ranges each of the three k4-s2-p1 upsampling stages needs so
/// that the final conv (kernel radius `r`) can produce voxels `hv..hv+core`.
/// A transposed conv output `o` reads inputs `i` with `o = 2i - 1 + k`, `k` in 0..4.
pub fn crop_plan(hv: i64, core: i64, lw: i64, r: i64) -> [(i64, i64); 3] {
    let mut plan = [(0, 0); 3];
    let (mut a, mut b) = (hv - r, hv + core - 1 + r); // needed at the last stage's output
    let mut size = lw * 8;
    for s in (0..3).rev() {
        size /= 2;
        let lo = ((a - 2) as f64 / 2.0).ceil() as i64;
        let hi = (b + 1).div_euclid(2);
        plan[s] = (lo.max(0), hi.min(size - 1));
        (a, b) = plan[s];
    }
    plan
}

impl ZDensity {
    pub fn new(vs: &nn::Path, nz: usize) -> ZDensity {
        ZDensity { mean: vs.var("z_mean", &[nz as i64], nn::Init::Const(0.0)), log_scale: vs.var("z_log_scale", &[nz as i64], nn::Init::Const(0.5)) }
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

/// A freshly initialised (untrained) model: tests and speed benchmarks.
pub fn untrained(profile: &Profile, seed: i64) -> ModelFile {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let vsd = nn::VarStore::new(Device::Cpu);
    let _nets = Nets::new(&vs.root(), profile);
    let zd = ZDensity::new(&vsd.root(), profile.nz);
    export(profile, &vs, &zd, BTreeMap::new())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_basis_is_orthonormal_and_starts_with_the_mean() {
        let (n, m) = (8, 64);
        let b = dct_basis(n, m);
        let v = n * n * n;
        assert_eq!(b.len(), m * v);
        for i in 0..m {
            for j in 0..m {
                let dot: f64 = (0..v).map(|k| b[i * v + k] as f64 * b[j * v + k] as f64).sum();
                assert!((dot - (i == j) as u8 as f64).abs() < 1e-5, "<{i},{j}> = {dot}");
            }
        }
        assert!(b[..v].iter().all(|&x| (x - b[0]).abs() < 1e-7), "function 0 is constant");
        // Ordered by total frequency: the next three vary along one axis each.
        let varies = |f: usize, step: usize| (b[f * v] - b[f * v + step]).abs() > 1e-6;
        assert!((1..4).all(|f| [1, n, n * n].iter().filter(|&&s| varies(f, s)).count() == 1));
    }
}
