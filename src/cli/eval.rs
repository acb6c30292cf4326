//! `idlat eval`.

use super::{CmdResult, NotImplemented};

/// Compare a container against the original data: ratio, PSNR, wPSNR, max error.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
