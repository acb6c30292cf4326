//! Model profiles: the architecture hyper-parameters recorded in every model file.
//!
//! Tiling scheme ("latent halo"): a block is a `core`^3 cube of voxels. The
//! analysis transform sees the core plus `halo_vox` voxels of real neighbouring
//! data on each side and produces a latent grid with stride `stride`; only the
//! central `core / stride` latents per axis are stored. The synthesis transform
//! decodes a block from its stored latents plus a ring of `latent_halo` latents
//! taken from the neighbouring blocks' stored latents, then keeps the central
//! `core`^3 voxels. This avoids block seams without paying the paper's 3.4x
//! halo cost in stored latents, and a block's output still depends only on
//! stored bits, so decode order and batching never change the result.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Profile name: `fast` (default) or `paper`.
    pub name: String,
    /// Network family.
    pub arch: Arch,
    /// Block core edge in voxels.
    pub core: usize,
    /// Voxels of real neighbouring data the analysis sees on each side.
    pub halo_vox: usize,
    /// Latent stride (product of the analysis transform's stride-2 stages).
    pub stride: usize,
    /// Latent ring (per side) taken from neighbouring blocks at decode time;
    /// 0 means a block stores all latents of its window and decodes alone.
    pub latent_halo: usize,
    /// Latent channels (M).
    pub m: usize,
    /// Hyper-latent channels.
    pub nz: usize,
    /// Hidden width of the hyper networks.
    pub nh: usize,
    /// Encoder channel width.
    pub enc_ch: usize,
    /// Condition-network width and SFT hidden width.
    pub cond_ch: usize,
    pub sft_hidden: usize,
    /// Decoder channels after each of the three upsampling stages.
    pub dec_ch: [usize; 3],
    /// `fast` only: a linear block-transform path beside the convolutional
    /// stacks (an 8³ analysis/synthesis basis per latent cell, initialised to
    /// the lowest-frequency DCT-II functions), and a signed hyper-analysis
    /// input. Models from before it was added lack the field and read as false.
    #[serde(default)]
    pub transform: bool,
    /// `fast` only: kernel edge of the decoder's last (full-resolution)
    /// convolution; models from before it was added used 3.
    #[serde(default = "three")]
    pub out_kernel: usize,
}

/// The network family of a profile (stored by name in model files: an unknown
/// one is an error, not a silent fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Cropped latent-halo decoder.
    Fast,
    /// The reference architecture: GDN, SFT at every stage, self-contained blocks.
    Paper,
}

fn three() -> usize {
    3
}

impl Profile {
    /// A profile small enough for unit tests of the networks (one shared fixture).
    #[cfg(all(test, feature = "torch"))]
    pub(crate) fn tiny() -> Profile {
        Profile {
            name: "tiny".into(),
            arch: Arch::Fast,
            core: 16,
            halo_vox: 8,
            stride: 8,
            latent_halo: 1,
            m: 4,
            nz: 4,
            nh: 8,
            enc_ch: 4,
            cond_ch: 4,
            sft_hidden: 4,
            dec_ch: [4, 4, 4],
            transform: true,
            out_kernel: 3,
        }
    }

    pub fn fast() -> Profile {
        Profile {
            name: "fast".into(),
            arch: Arch::Fast,
            core: 32,
            halo_vox: 8,
            stride: 8,
            latent_halo: 1,
            m: 64,
            nz: 16,
            nh: 48,
            enc_ch: 32,
            cond_ch: 16,
            sft_hidden: 32,
            dec_ch: [48, 24, 8],
            transform: true,
            out_kernel: 1,
        }
    }

    /// The reference architecture: 24^3 input, 16^3 core, 4-voxel halo,
    /// N = M = 16, condition width 16, SFT hidden 32, GDN; each block stores
    /// the 3^3 latents of its whole window and decodes alone.
    pub fn paper() -> Profile {
        Profile {
            name: "paper".into(),
            arch: Arch::Paper,
            core: 16,
            halo_vox: 4,
            stride: 8,
            latent_halo: 0,
            m: 16,
            nz: 16,
            nh: 32,
            enc_ch: 16,
            cond_ch: 16,
            sft_hidden: 32,
            dec_ch: [16, 16, 8],
            transform: false,
            out_kernel: 5,
        }
    }

    pub fn by_name(name: &str) -> Option<Profile> {
        match name {
            "fast" => Some(Profile::fast()),
            "paper" => Some(Profile::paper()),
            _ => None,
        }
    }

    /// Latents per axis the synthesis transform sees for one block.
    pub fn latent_window(&self) -> usize {
        self.window() / self.stride
    }

    /// Stored latents per axis per block.
    pub fn latent_core(&self) -> usize {
        self.latent_window() - 2 * self.latent_halo
    }

    /// Edge of the analysis input and of the synthesis output, in voxels.
    pub fn window(&self) -> usize {
        self.core + 2 * self.halo_vox
    }

    /// Checks the geometry is one the networks support.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.stride == 8
            && self.window() % 8 == 0
            && self.latent_window() > 2 * self.latent_halo
            && self.out_kernel % 2 == 1
            && (self.arch == Arch::Paper || (self.arch == Arch::Fast && self.halo_vox == self.latent_halo * self.stride));
        if ok {
            Ok(())
        } else {
            Err(format!("unsupported profile geometry: {self:?}"))
        }
    }

    /// Hyper-latent grid edge per block (one stride-2 stage over the latent core).
    pub fn z_grid(&self) -> usize {
        self.latent_core().div_ceil(2)
    }

    pub fn y_symbols(&self) -> usize {
        self.m * self.latent_core().pow(3)
    }

    pub fn z_symbols(&self) -> usize {
        self.nz * self.z_grid().pow(3)
    }

    /// Upsampling stages of the synthesis transform (log2 of the stride).
    pub fn stages(&self) -> usize {
        self.stride.trailing_zeros() as usize
    }
}
