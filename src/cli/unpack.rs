//! `idlat unpack`.

use super::{CmdResult, NotImplemented};

/// Decode volumes from a container to .raw+.mhd, .npy or .vti.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
