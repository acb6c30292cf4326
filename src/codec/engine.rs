//! Batched inference on the selected device: analysis (pack time) and
//! synthesis (decode time) over many blocks at once.

use super::modelfile::ModelFile;
use super::net::{self, Nets};
use super::profile::Profile;
use tch::{nn, Device, Kind, Tensor};

pub use super::DeviceChoice;

/// Resolves a choice to a tch device; `cuda` without a GPU is an error, not a fallback.
pub fn select_device(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err("--device cuda requested but no CUDA device is available".into()),
    }
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i} ({} GPUs visible)", tch::Cuda::device_count()),
        d => format!("{d:?}"),
    }
}

pub struct Engine {
    pub profile: Profile,
    pub device: Device,
    nets: Nets,
    _vs: nn::VarStore,
}

impl Engine {
    pub fn load(mf: &ModelFile, device: Device) -> Result<Engine, String> {
        let mut vs = nn::VarStore::new(device);
        let nets = Nets::new(&vs.root(), &mf.profile);
        net::import(&mut vs, mf)?;
        vs.freeze();
        Ok(Engine { profile: mf.profile.clone(), device, nets, _vs: vs })
    }

    /// Analysis of `b` windows (x and importance, each `b * W^3`, x fastest):
    /// returns (latent cores `b * M * L^3`, rounded hyper-latents `b * nz * G^3`).
    pub fn analyse(&self, x: &[f32], imp: &[f32], b: usize) -> (Vec<f32>, Vec<i32>) {
        let p = &self.profile;
        let w = p.window() as i64;
        let (l, h) = (p.latent_core() as i64, p.latent_halo as i64);
        tch::no_grad(|| {
            let xt = Tensor::from_slice(x).view([b as i64, 1, w, w, w]).to_device(self.device);
            let it = Tensor::from_slice(imp).view([b as i64, 1, w, w, w]).to_device(self.device);
            let y = self.nets.analysis(&xt, &it);
            let core = y.narrow(2, h, l).narrow(3, h, l).narrow(4, h, l).contiguous();
            let z = self.nets.hyper_analysis(&core).round();
            (to_f32(&core), to_f32(&z).into_iter().map(|v| v as i32).collect())
        })
    }

    /// Synthesis of `b` latent windows (`b * M * Lw^3`) → cropped block cores (`b * core^3`).
    pub fn synthesise(&self, windows: &[f32], b: usize) -> Vec<f32> {
        let p = &self.profile;
        let lw = p.latent_window() as i64;
        tch::no_grad(|| {
            let y = Tensor::from_slice(windows).view([b as i64, p.m as i64, lw, lw, lw]).to_device(self.device);
            to_f32(&self.nets.synthesis(&y))
        })
    }
}

pub fn to_f32(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&t).expect("float tensor converts")
}

impl Engine {
    /// Full analysis window output (`M * Lw^3`) of one window; training validation uses it
    /// to stand in for neighbours' latents.
    pub fn analyse_full(&self, x: &[f32], imp: &[f32]) -> Vec<f32> {
        let w = self.profile.window() as i64;
        tch::no_grad(|| {
            let xt = Tensor::from_slice(x).view([1, 1, w, w, w]).to_device(self.device);
            let it = Tensor::from_slice(imp).view([1, 1, w, w, w]).to_device(self.device);
            to_f32(&self.nets.analysis(&xt, &it))
        })
    }
}
