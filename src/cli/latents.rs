//! `idlat latents`.

use super::{CmdResult, NotImplemented};

/// Entropy-decode per-block latent vectors straight from the bitstreams (no synthesis network).
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
