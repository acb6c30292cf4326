//! `idlat importance`.

use super::{CmdResult, NotImplemented};

/// Compute an importance map and write it as .raw + .mhd to inspect in ParaView.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
