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
    /// Block core edge in voxels.
    pub core: usize,
    /// Latent stride (product of the analysis transform's stride-2 stages).
    pub stride: usize,
    /// Latents of neighbouring blocks used around a block at decode time.
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
}

impl Profile {
    pub fn fast() -> Profile {
        Profile {
            name: "fast".into(),
            core: 32,
            stride: 8,
            latent_halo: 1,
            m: 32,
            nz: 16,
            nh: 48,
            enc_ch: 32,
            cond_ch: 16,
            sft_hidden: 32,
            dec_ch: [48, 24, 12],
        }
    }

    /// Geometry close to the paper's (16^3 core, 4-voxel halo, N = M = 16,
    /// condition width 16, SFT hidden 32), on the same tiling scheme.
    pub fn paper() -> Profile {
        Profile {
            name: "paper".into(),
            core: 16,
            stride: 8,
            latent_halo: 1,
            m: 16,
            nz: 16,
            nh: 32,
            enc_ch: 16,
            cond_ch: 16,
            sft_hidden: 32,
            dec_ch: [16, 16, 8],
        }
    }

    pub fn by_name(name: &str) -> Option<Profile> {
        match name {
            "fast" => Some(Profile::fast()),
            "paper" => Some(Profile::paper()),
            _ => None,
        }
    }

    /// Stored latents per axis per block.
    pub fn latent_core(&self) -> usize {
        self.core / self.stride
    }

    /// Latents per axis the synthesis transform sees for one block.
    pub fn latent_window(&self) -> usize {
        self.latent_core() + 2 * self.latent_halo
    }

    /// Voxel halo the analysis transform sees on each side.
    pub fn halo_vox(&self) -> usize {
        self.latent_halo * self.stride
    }

    /// Edge of the analysis input and of the synthesis output, in voxels.
    pub fn window(&self) -> usize {
        self.core + 2 * self.halo_vox()
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
