//! `idlat pack`.

use super::{CmdResult, NotImplemented};

/// Compress volumes into one .idl container.
///
/// Inputs: raw bricks (with --dims/--dtype/--endian, .gz read transparently), .npy,
/// MetaImage .mhd/.mha, NRRD .nrrd/.nhdr, VTK XML .vti. An importance map
/// (--importance SPEC) decides where bits go.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CmdResult {
    Err(NotImplemented.into())
}
