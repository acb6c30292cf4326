//! `idlat verify`.

use super::{CmdResult, NotImplemented};

/// Check every checksum and bound of a container; exit 1 naming each bad block or section.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
