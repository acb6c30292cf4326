//! The IDLat codec (paper sections 3 and 5; ARCHITECTURE.md).
//!
//! - `profile`: architecture hyper-parameters and the latent-halo tiling.
//! - `tables`, `hyper`: pure-Rust, deterministic entropy coding (constriction
//!   ANS) with probabilities from integer tables and a Rust hyper-decoder.
//! - `modelfile`: safetensors model files, content-hashed.
//! - `net`, `engine`, `train` (feature `torch`): the tch networks, batched
//!   inference on CPU or CUDA, and training.
//! - `blocks`: volume ↔ blocks (windows with halo, normalisation, block kinds).
//! - `bound`: importance-driven error bounds (residual stream over the neural prediction).

pub mod blocks;
pub mod bound;
pub mod hyper;
pub mod modelfile;
pub mod profile;
#[cfg(feature = "torch")]
pub mod rate;
#[cfg(feature = "torch")]
pub mod store;
pub mod tables;
pub mod wavelet;

#[cfg(feature = "torch")]
pub mod engine;
#[cfg(feature = "torch")]
pub mod net;
#[cfg(feature = "torch")]
pub mod pipeline;
#[cfg(feature = "torch")]
pub mod train;

/// Where the networks run (a choice; `engine::select_device` resolves it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            _ => Err(format!("unknown device '{s}' (expected auto, cpu or cuda)")),
        }
    }
}

/// A volume's normalisation as the codecs use it.
pub fn store_norm(c: &crate::format::Container, v: crate::format::VolumeId) -> Result<blocks::Norm, String> {
    let m = c.volume(v).map_err(|e| e.to_string())?;
    Ok(m.norm)
}

/// Does any block of the container need the neural codec (libtorch)?
pub fn needs_neural(c: &crate::format::Container) -> bool {
    c.volumes().any(|(v, _)| volume_needs_neural(c, v))
}

/// Does any block of this volume need the neural codec?
pub fn volume_needs_neural(c: &crate::format::Container, v: crate::format::VolumeId) -> bool {
    use crate::format::{BlockId, BlockKind};
    c.volume(v).is_ok_and(|m| (0..m.block_count).any(|b| c.entry(v, BlockId(b)).is_ok_and(|e| e.kind == BlockKind::Neural as u8)))
}

/// Which device decoding would use, for `idlat info --device`.
pub fn device_description() -> String {
    #[cfg(feature = "torch")]
    {
        match engine::select_device(engine::DeviceChoice::Auto) {
            Ok(d) => format!("{} (CUDA available: {}, cuDNN: {})", engine::describe(d), tch::Cuda::is_available(), tch::Cuda::cudnn_is_available()),
            Err(e) => e,
        }
    }
    #[cfg(not(feature = "torch"))]
    {
        "none: built without the `torch` feature (neural blocks cannot be decoded)".to_string()
    }
}
