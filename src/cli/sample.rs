//! `idlat sample`.

use super::{CmdResult, NotImplemented};

/// Generate deterministic synthetic stand-ins for the paper's datasets (vortex, nyx, isabel).
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
