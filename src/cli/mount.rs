//! `idlat mount`.

use super::{CmdResult, NotImplemented};

/// Mount a container read-only with FUSE: each volume appears as NAME.raw, NAME.mhd and NAME.nhdr.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
