//! `idlat info`.

use super::{CmdResult, NotImplemented};

/// Describe a container: volumes, blocks, model, sizes (--json for machines).
///
/// `--device` prints which compute device decoding would use.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
